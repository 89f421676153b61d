//! Finding credentials in a settings file an operator uploaded, whatever its vendor's format.
//!
//! Files from the field often carry a site-wide SIP or admin password in a common file
//! (`SET FORCE_SIP_PASSWORD "…"` in a `46xxsettings.txt`, `account.1.password = …` in a
//! Yealink common cfg, `reg.1.auth.password="…"` in a Poly cfg, `<Password_1_>…</Password_1_>`
//! in a Cisco XML). Such a file must not go to whoever asks, so the phone service reads every
//! static file with [`secret_lines`] and serves one that holds a secret only to a device that
//! proves who it is. This is a reading of names, not of any one grammar: a name that says
//! password, passwd, pswd, pwd, passphrase, secret or pass (as a word), or ends in pin, with a
//! value that is not empty and not a switch (`0`, `1`, `true`, `off`…).

/// One assignment of a value to a secret-looking name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretLine {
    /// 1-based.
    pub line: usize,
    pub name: String,
}

/// Whether a setting's name says it holds a credential.
pub fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if ["password", "passwd", "pswd", "pwd", "passphrase", "secret"]
        .iter()
        .any(|w| lower.contains(w))
        || lower.ends_with("pin")
    {
        return true;
    }
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == "pass")
}

/// A value that is a switch, not a credential (`SET PRESERVE_LOGIN_PASSWORD 1`).
fn is_switch(value: &str) -> bool {
    [
        "0", "1", "true", "false", "yes", "no", "on", "off", "enable", "disable",
    ]
    .iter()
    .any(|s| value.eq_ignore_ascii_case(s))
}

fn holds_value(value: &str) -> bool {
    let v = value.trim().trim_matches(['"', '\'']).trim();
    !v.is_empty() && !is_switch(v)
}

/// Every line of `bytes` that gives a secret-looking name a value, in order. A line is read
/// in each of the forms the vendors use: `SET NAME value` (Avaya), `name = value` or
/// `name: value` (Yealink, Snom, INI-like), `name="value"` attributes and
/// `<name …>value</name>` elements (Poly, Cisco, Snom XML). Comment lines (`#`, `;`, `//`,
/// `!`) are skipped; so are Avaya `##` lines.
pub fn secret_lines(bytes: &[u8]) -> Vec<SecretLine> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim();
        if ["#", ";", "//", "!"].iter().any(|c| line.starts_with(c)) {
            continue;
        }
        if let Some(name) = assignments(line).find(|(n, v)| secret_name(n) && holds_value(v)) {
            out.push(SecretLine {
                line: i + 1,
                name: name.0.to_string(),
            });
        }
    }
    out
}

/// The (name, value) pairs a line may hold, in every form [`secret_lines`] reads.
fn assignments(line: &str) -> impl Iterator<Item = (&str, &str)> {
    let set = set_statement(line);
    let key_value = key_value(line);
    set.into_iter()
        .chain(key_value)
        .chain(attributes(line))
        .chain(elements(line))
}

/// `SET NAME value` (any case of SET).
fn set_statement(line: &str) -> Option<(&str, &str)> {
    let rest = line
        .get(..4)
        .filter(|k| k.eq_ignore_ascii_case("set "))
        .map(|_| line[4..].trim_start())?;
    let (name, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some((name, value))
}

/// `name = value` or `name: value`, the name one token without spaces or markup.
fn key_value(line: &str) -> Option<(&str, &str)> {
    let at = line.find(['=', ':'])?;
    let name = line[..at].trim();
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c));
    plain.then(|| (name, &line[at + 1..]))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-".contains(c)
}

/// `name="value"` and `name='value'` anywhere in the line (XML attributes).
fn attributes(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.match_indices('=').filter_map(move |(at, _)| {
        let before = line[..at].trim_end();
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_name_char(*c))
            .last()
            .map(|(i, _)| i)?;
        let after = line[at + 1..].trim_start();
        let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let value = &after[1..];
        let end = value.find(quote)?;
        Some((&before[start..], &value[..end]))
    })
}

/// `<name …>value</name>` on one line (XML elements).
fn elements(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.match_indices('<').filter_map(move |(at, _)| {
        let rest = &line[at + 1..];
        let name_len = rest.find(|c: char| !is_name_char(c))?;
        let name = &rest[..name_len];
        if name.is_empty() {
            return None;
        }
        let open_end = rest.find('>')?;
        if rest[..open_end].ends_with('/') {
            return None;
        }
        let body = &rest[open_end + 1..];
        let close = body.find(&format!("</{name}"))?;
        Some((name, &body[..close]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(text: &str) -> Vec<(usize, String)> {
        secret_lines(text.as_bytes())
            .into_iter()
            .map(|s| (s.line, s.name))
            .collect()
    }

    #[test]
    fn every_vendor_form_is_read() {
        let text = "\
SET SIPDOMAIN example.com
SET FORCE_SIP_PASSWORD \"SIPPassword\"
set admin_password 27238
SET PROCPSWD 1234
account.1.password = s3cret
static.security.user_password = admin:pw
<reg reg.1.auth.password=\"x1\" reg.1.address=\"100\"/>
<Password_1_ ua=\"na\">hunter2</Password_1_>
<user_pass idx=\"1\" perm=\"\">abc</user_pass>
http_pass: topsecret
lock.pin = 4711
";
        assert_eq!(
            names(text),
            [
                (2, "FORCE_SIP_PASSWORD".to_string()),
                (3, "admin_password".into()),
                (4, "PROCPSWD".into()),
                (5, "account.1.password".into()),
                (6, "static.security.user_password".into()),
                (7, "reg.1.auth.password".into()),
                (8, "Password_1_".into()),
                (9, "user_pass".into()),
                (10, "http_pass".into()),
                (11, "lock.pin".into()),
            ]
        );
    }

    #[test]
    fn switches_empty_values_comments_and_lookalikes_are_not_secrets() {
        let text = "\
SET PRESERVE_LOGIN_PASSWORD 1
SET FORCE_SIP_PASSWORD \"\"
## SET ADMIN_PASSWORD 1234
# account.1.password = x
; password = x
// password = x
SET PING_INTERVAL 30
SET SPINNER 5
account.1.password =
<reg reg.1.auth.password=\"\"/>
<Password_1_ ua=\"na\"></Password_1_>
SET ENABLE_PASSWORD_SAVE off
SET SIPDOMAIN passage.example
bypass = 7
";
        assert_eq!(names(text), []);
    }

    #[test]
    fn the_field_file_with_a_sip_password_is_found() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/opensip-j100.46xxsettings.txt"
        );
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            secret_lines(&bytes)
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["FORCE_SIP_PASSWORD"]
        );
        for clean in [
            "sip-9600.46xxsettings.txt",
            "ipo11-autogen-b.46xxsettings.txt",
        ] {
            let path = format!("{}/../shared/fixtures/{clean}", env!("CARGO_MANIFEST_DIR"));
            assert_eq!(secret_lines(&std::fs::read(path).unwrap()), [], "{clean}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = secret_lines(&bytes);
        }

        #[test]
        fn markup_like_text_is_read_without_panicking(text in "[<>=\"'/a-zA-Z_ .:-]{0,80}") {
            let _ = secret_lines(text.as_bytes());
        }
    }
}
