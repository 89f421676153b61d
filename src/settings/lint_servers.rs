//! Avaya settings that send phones to another provisioning server. A static file copied from
//! an old server often still sets `HTTPSRVR` or `TLSSRVR` to it; a phone that reads the file
//! takes that server for its next boot and leaves this box, with nothing reported anywhere.

use super::lint::{Finding, Linter};
use super::script::{Kind, Script};

/// The settings that name the server an Avaya phone provisions from.
const SERVER_SETTINGS: [&str; 2] = ["HTTPSRVR", "TLSSRVR"];

/// A warning for each `SET HTTPSRVR` / `SET TLSSRVR` in the 46xx script `bytes` (called `file`)
/// whose value (a list of addresses or names, split at commas and blanks) names a server that
/// is not one of `own` (the box's `pki.server_names`; compared without case, an IPv6 address
/// with or without brackets). The box's own names are fine, and so is an empty value (the
/// phone then keeps what DHCP told it). Warnings only: the operator may mean to move phones.
pub fn foreign_servers(file: &str, bytes: &[u8], own: &[String]) -> Vec<Finding> {
    let script = Script::parse(bytes);
    let mut out = Linter::new(file);
    for statement in script.statements() {
        let Kind::Set(set) = &statement.kind else {
            continue;
        };
        let Some(setting) = SERVER_SETTINGS
            .iter()
            .find(|s| s.as_bytes().eq_ignore_ascii_case(set.name))
        else {
            continue;
        };
        let Some(value) = set.value.effective() else {
            continue;
        };
        let value = String::from_utf8_lossy(&value);
        let foreign: Vec<&str> = value
            .split([',', ' ', '\t'])
            .map(unbracketed)
            .filter(|a| !a.is_empty())
            .filter(|a| !own.iter().any(|o| unbracketed(o).eq_ignore_ascii_case(a)))
            .collect();
        if foreign.is_empty() {
            continue;
        }
        let names = match own.is_empty() {
            true => "none set".to_string(),
            false => own.join(", "),
        };
        out.warn(
            statement.line,
            format!(
                "SET {setting} names {}, not this box (pki.server_names: {names}): a phone that \
                 reads it provisions from there at its next boot",
                foreign.join(", ")
            ),
        );
    }
    out.findings
}

fn unbracketed(address: &str) -> &str {
    let a = address.trim();
    a.strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_setting_that_names_another_server_is_warned_about_by_line() {
        let own = ["prov.example.lan".to_string(), "fd00::5".to_string()];
        let file = b"## comment\n\
            SET HTTPSRVR 10.1.2.3\n\
            SET TLSSRVR \"prov.example.lan,old.example.com\"\n\
            SET httpsrvr PROV.example.lan\n\
            SET TLSSRVR [fd00::5]\n\
            SET HTTPSRVR \"\"\n\
            SET SIPDOMAIN example.com\n";
        let found = foreign_servers("46xxsettings.txt", file, &own);
        let lines: Vec<(usize, &str)> =
            found.iter().map(|f| (f.line, f.message.as_str())).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].0, 2);
        assert!(
            lines[0]
                .1
                .starts_with("SET HTTPSRVR names 10.1.2.3, not this box"),
            "{}",
            lines[0].1
        );
        assert_eq!(lines[1].0, 3);
        assert!(
            lines[1].1.starts_with("SET TLSSRVR names old.example.com,"),
            "{}",
            lines[1].1
        );
        assert!(
            found
                .iter()
                .all(|f| f.severity == super::super::Severity::Warning)
        );
        assert_eq!(
            found[0].to_string().split(':').next(),
            Some("46xxsettings.txt")
        );
    }
}
