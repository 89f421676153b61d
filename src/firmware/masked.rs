//! Release URLs as an operator sees them: a vendor portal's download link can carry its login
//! (`https://user:password@host/…`) or be a signed link whose query holds the secret
//! (`?X-Amz-Signature=…`, `?token=…`, `?sig=…`), which is needed to fetch but must not reach
//! the admin API's answers, the CLI, alarms, logs or the audit log (kept a year and exported).

use std::ops::Range;

use super::catalogue::Release;

/// What stands for a password in a URL shown.
pub const MASK: &str = "***";

/// `url` with the password of its userinfo masked (`https://user:***@host/…`); a userinfo
/// without a password is masked whole (`https://***@host/…`), since a lone name there is
/// usually a token. Every value of its query and fragment is masked too, the names kept
/// (`?X-Amz-Signature=***&X-Amz-Expires=***`): signed links put their secret under whatever
/// name their service chose (`token`, `sig`, `Signature`, `Policy`, `auth`, `key`…), so a
/// list of secret names would let the next one through, while the names still tell what kind
/// of link it is and the path names the file. A URL without either comes back as it is.
///
/// A value without `://` is no URL this product fetches (it is refused, quoting it), but it was
/// typed where one goes: `user:pw@portal/fw.rom`, or `https:/user:pw@…` with a slash missing.
/// Everything before its last `@` is masked then, and its query and fragment as above.
pub fn masked_url(url: &str) -> String {
    let Some(a) = authority(url.as_bytes()) else {
        let end = url.find(['?', '#']).unwrap_or(url.len());
        let (head, tail) = url.split_at(end);
        let head = match head.rsplit_once('@') {
            Some((_, host)) => format!("{MASK}@{host}"),
            None => head.to_string(),
        };
        return format!("{head}{}", masked_path(tail));
    };
    // Every range ends at an ASCII byte (`:`, `@`, `/`…), so each is a `str` boundary.
    let shown = match (a.userinfo, a.password) {
        (Some(_), Some(password)) => format!(
            "{}{MASK}{}",
            &url[a.whole.start..password.start],
            &url[password.end..a.whole.end]
        ),
        (Some(userinfo), None) => format!("{MASK}{}", &url[userinfo.end..a.whole.end]),
        (None, _) => url[a.whole.clone()].to_string(),
    };
    format!(
        "{}{shown}{}",
        &url[..a.whole.start],
        masked_path(&url[a.whole.end..])
    )
}

/// Where the parts of a URL's authority lie in its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// From after the first `://` to the first `/`, `?` or `#` after it.
    pub whole: Range<usize>,
    /// Before the authority's last `@`, when it has one.
    pub userinfo: Option<Range<usize>>,
    /// The userinfo after its first `:`, when it has one (`pa:ss` in `user:pa:ss`).
    pub password: Option<Range<usize>>,
}

/// The authority of `url` (`scheme://userinfo@host:port`), `None` without `://`. One parser
/// for what [`masked_url`] hides and for what the reading of settings files
/// (`settings::secrets`) calls a login in a URL, so that what is masked in one place is what
/// is protected in the other. Bytes, so that a settings file need not be UTF-8.
pub fn authority(url: &[u8]) -> Option<Authority> {
    let start = url.windows(3).position(|w| w == b"://")? + 3;
    let end = url[start..]
        .iter()
        .position(|b| b"/?#".contains(b))
        .map_or(url.len(), |i| start + i);
    let at = url[start..end].iter().rposition(|&b| b == b'@');
    let userinfo = at.map(|at| start..start + at);
    let password = userinfo.clone().and_then(|u| {
        let colon = url[u.clone()].iter().position(|&b| b == b':')?;
        Some(u.start + colon + 1..u.end)
    });
    Some(Authority {
        whole: start..end,
        userinfo,
        password,
    })
}

/// A URL's path with the values of its query and fragment masked.
fn masked_path(path: &str) -> String {
    let (path, fragment) = match path.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (path, None),
    };
    let mut shown = match path.split_once('?') {
        Some((path, query)) => format!("{path}?{}", masked_pairs(query)),
        None => path.to_string(),
    };
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(&masked_pairs(fragment));
    }
    shown
}

/// `a=1&b&c=` as `a=***&***&c=`: each value masked, a part without `=` (a bare token) whole.
fn masked_pairs(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, "")) => format!("{name}="),
            Some((name, _)) => format!("{name}={MASK}"),
            None if pair.is_empty() => String::new(),
            None => MASK.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Release {
    /// The release as the admin API, the CLI and the audit log show it: every URL
    /// [`masked_url`].
    pub fn masked(&self) -> Release {
        Release {
            urls: self.urls.iter().map(|u| masked_url(u)).collect(),
            ..self.clone()
        }
    }

    /// The source of this release's `firmware_upstream_unreachable` alarm: its URLs masked,
    /// space-separated. Made here alone, so that the fetch that raises the alarm and the
    /// caching of the image that clears it ([`super::Firmware::image_cached`]) name the same
    /// one.
    pub fn unreachable_alarm_source(&self) -> String {
        self.masked().urls.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signed links: every query value goes, whatever its name; the names, the host and the
    /// path stay.
    #[test]
    fn query_values_are_masked_whatever_their_names() {
        for (url, shown) in [
            (
                "https://bucket.s3.example/fw/a.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=deadbeef",
                "https://bucket.s3.example/fw/a.bin?X-Amz-Algorithm=***&X-Amz-Credential=***&X-Amz-Signature=***",
            ),
            (
                "https://cdn.example/a.bin?token=t0k&expires=1",
                "https://cdn.example/a.bin?token=***&expires=***",
            ),
            (
                "https://blob.example/a.bin?sv=2020&sig=abc%3D&empty=&bare",
                "https://blob.example/a.bin?sv=***&sig=***&empty=&***",
            ),
            (
                "https://u:p@cdn.example/a.bin?auth=x#access_token=y",
                "https://u:***@cdn.example/a.bin?auth=***#access_token=***",
            ),
            ("https://cdn.example?key=k", "https://cdn.example?key=***"),
            ("https://cdn.example/a.bin?", "https://cdn.example/a.bin?"),
        ] {
            assert_eq!(masked_url(url), shown, "{url}");
        }
    }

    /// A value typed where a URL goes but without `://` was quoted whole in the refusal (now
    /// kept in the audit log): its login and query are masked all the same.
    #[test]
    fn a_value_without_a_scheme_is_masked_too() {
        assert_eq!(masked_url("user:pw@portal/fw.rom"), "***@portal/fw.rom");
        assert_eq!(
            masked_url("https:/user:pw@portal/fw.rom?token=abc"),
            "***@portal/fw.rom?token=***"
        );
        assert_eq!(masked_url("fw.rom"), "fw.rom");
    }

    #[test]
    fn only_the_userinfo_secret_is_masked() {
        for (url, shown) in [
            (
                "https://user:pa:ss@vendor.example/fw/a.bin",
                "https://user:***@vendor.example/fw/a.bin",
            ),
            (
                "http://user:p%40ss@127.0.0.1:8080/a.bin?x=@y",
                "http://user:***@127.0.0.1:8080/a.bin?x=***",
            ),
            (
                "https://token@vendor.example/a.bin",
                "https://***@vendor.example/a.bin",
            ),
            (
                "https://vendor.example/a@b.bin",
                "https://vendor.example/a@b.bin",
            ),
            ("https://vendor.example", "https://vendor.example"),
            ("http://[::1]:80/a.bin", "http://[::1]:80/a.bin"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(masked_url(url), shown, "{url}");
        }
    }
}
