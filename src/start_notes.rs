//! What the daemon says when it has started, in words an installer reads in
//! `journalctl -u edgeprov` and on `systemctl status`: the journal's short output shows a
//! line's message and none of its fields, so the addresses and the first start's next steps
//! are in the message itself.

use std::path::Path;

use crate::daemon::Listeners;

/// Every address served, for the log line and the status line alike.
pub fn serving(l: &Listeners) -> String {
    let mut text = format!(
        "serving phones on {:?} (HTTP {:?}), admin on {}",
        l.phone_https, l.phone_http, l.admin
    );
    if !l.dns.is_empty() {
        text.push_str(&format!(", DNS on {:?}", l.dns));
    }
    if let Some(dhcp) = l.dhcp {
        text.push_str(&format!(", DHCP on {dhcp}"));
    }
    if let Some(pnp) = l.pnp {
        text.push_str(&format!(", SIP plug-and-play on {pnp}"));
    }
    text
}

/// Said once, on the start that made the administrator's token: where that token is (it is
/// never logged itself: the journal is readable by more than root) and what the installer
/// does next. The server name goes first because a fresh package names only `localhost`,
/// which phones cannot reach; a restart (not a reload) applies it where DNS or DHCP made their
/// records from it.
pub fn first_start(token: &Path, config: Option<&Path>) -> String {
    let config = match config {
        Some(path) => path.display().to_string(),
        None => "a config file (edgeprov serve --config FILE)".to_string(),
    };
    format!(
        "first start: the administrator's token is in {}; the CLI on this box reads it when \
         run as root or as the service user (edgeprov device list). Next: put this box's LAN \
         address or name first in pki.server_names in {config}, check with edgeprov doctor, \
         then systemctl restart edgeprov",
        token.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_names_dns_dhcp_and_pnp_only_when_on() {
        let mut l = Listeners {
            phone_https: vec!["0.0.0.0:443".parse().unwrap()],
            phone_http: vec![],
            admin: "127.0.0.1:9443".parse().unwrap(),
            dns: vec![],
            dhcp: None,
            pnp: None,
        };
        assert_eq!(
            serving(&l),
            "serving phones on [0.0.0.0:443] (HTTP []), admin on 127.0.0.1:9443"
        );
        l.dns = vec!["0.0.0.0:53".parse().unwrap()];
        l.dhcp = Some("0.0.0.0:67".parse().unwrap());
        l.pnp = Some("0.0.0.0:5060".parse().unwrap());
        assert!(
            serving(&l).ends_with(
                ", DNS on [0.0.0.0:53], DHCP on 0.0.0.0:67, SIP plug-and-play on 0.0.0.0:5060"
            ),
            "{}",
            serving(&l)
        );
    }

    #[test]
    fn first_start_names_the_token_file_and_the_config_to_edit() {
        let text = first_start(
            Path::new("/var/lib/edgeprov/admin.token"),
            Some(Path::new("/etc/edgeprov/edgeprov.toml")),
        );
        assert!(text.contains("/var/lib/edgeprov/admin.token"), "{text}");
        assert!(
            text.contains("pki.server_names in /etc/edgeprov/edgeprov.toml"),
            "{text}"
        );
        assert!(text.contains("edgeprov doctor"), "{text}");
    }
}
