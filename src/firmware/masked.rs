//! Release URLs as an operator sees them: a vendor portal's download link can carry its login
//! (`https://user:password@host/…`), which is needed to fetch but must not reach the admin API's
//! answers, the CLI, alarms, logs or the audit log (kept a year and exported).

use super::catalogue::Release;

/// What stands for a password in a URL shown.
pub const MASK: &str = "***";

/// `url` with the password of its userinfo masked (`https://user:***@host/…`); a userinfo
/// without a password is masked whole (`https://***@host/…`), since a lone name there is
/// usually a token. A URL without userinfo comes back as it is.
pub fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{MASK}"),
        None => MASK.to_string(),
    };
    format!("{scheme}://{shown}@{host}{path}")
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_userinfo_secret_is_masked() {
        for (url, shown) in [
            (
                "https://user:pa:ss@vendor.example/fw/a.bin",
                "https://user:***@vendor.example/fw/a.bin",
            ),
            (
                "http://user:p%40ss@127.0.0.1:8080/a.bin?x=@y",
                "http://user:***@127.0.0.1:8080/a.bin?x=@y",
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
