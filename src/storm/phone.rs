//! What one simulated phone is and does, as pure code: its MAC, User-Agent and secret, the
//! files its vendor fetches at boot, and the check of each response.

use crate::model::Mac;
use crate::settings::render::POLY_COMMON;

/// The phone families the simulator can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Vendor {
    Avaya,
    Yealink,
    Poly,
}

/// Marks every storm secret; the MAC that follows says whose it is, so a response can be checked
/// exactly for "its own secret and nobody else's".
pub const SECRET_MARK: &str = "stormpw-";

/// The first line of every Yealink boot and configuration file.
const YEALINK_VERSION: &str = "#!version:1.0.0.1";

/// Yealink firmware version the simulated phones run; its first number is the family that names
/// the common file (`y000000000028.cfg`), its second (83) a release with boot files, which
/// `phones.md` gives firmware 81 and later (earlier ones ask for the common file first).
const YEALINK_FIRMWARE: &str = "28.83.0.50";

/// The secret a phone's inventory entry carries, derived from its MAC.
pub fn secret_for(mac: Mac) -> String {
    format!("{SECRET_MARK}{mac}")
}

/// The MAC of phone `index`: the prefix (hex digits) followed by the index, zero-padded to 12
/// digits. `None` when the index does not fit after the prefix.
pub fn mac_for(prefix: &str, index: u64) -> Option<Mac> {
    let digits = 12usize.checked_sub(prefix.len())?;
    let text = format!("{prefix}{index:0digits$x}");
    if text.len() != 12 {
        return None;
    }
    Mac::parse(&text).ok()
}

/// A simulated phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub vendor: Vendor,
    pub mac: Mac,
}

/// One file of a boot sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The file as reported (`{mac}.txt` rather than the MAC itself), so latencies of every
    /// phone add up per file.
    pub label: &'static str,
    pub path: String,
    /// The per-device file: carries the phone's secret. Other files must carry no secret at all.
    pub device_file: bool,
}

impl Phone {
    pub fn model(&self) -> &'static str {
        match self.vendor {
            Vendor::Avaya => "J179",
            Vendor::Yealink => "T46G",
            Vendor::Poly => "VVX_400",
        }
    }

    /// The agent string the vendor's phones send (see `phones.md`).
    pub fn user_agent(&self) -> String {
        match self.vendor {
            Vendor::Avaya => format!(
                "Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:{})",
                self.mac
            ),
            Vendor::Yealink => format!(
                "Yealink SIP-T46G {YEALINK_FIRMWARE} {}",
                self.mac.colon_form()
            ),
            Vendor::Poly => {
                "FileTransport PolycomVVX-VVX_400-UA/4.1.4.7430 Type/Application".to_string()
            }
        }
    }

    /// The files fetched at boot, in order. `device_only` keeps just the per-device file.
    pub fn sequence(&self, device_only: bool) -> Vec<Step> {
        let step = |label: &'static str, device_file: bool| Step {
            label,
            path: format!("/{}", label.replace("{mac}", &self.mac.to_string())),
            device_file,
        };
        let mut steps = match self.vendor {
            Vendor::Avaya => vec![
                step("J100Supgrade.txt", false),
                step("46xxsettings.txt", false),
                step("{mac}.txt", true),
            ],
            // Firmware 81 and later asks for its own boot file first (`y000000000000.boot`
            // only when that is missing), then the files it includes: the family's common file,
            // then its own settings.
            Vendor::Yealink => vec![
                step("{mac}.boot", false),
                step(yealink_common_file(), false),
                step("{mac}.cfg", true),
            ],
            // A Poly phone asks for its own master file first (`000000000000.cfg` only when
            // that is missing), then the configuration files it lists, in order: its own
            // settings, then the common ones.
            Vendor::Poly => vec![
                step("{mac}.cfg", false),
                step("{mac}-phone.cfg", true),
                step(POLY_COMMON, false),
            ],
        };
        if device_only {
            steps.retain(|s| s.device_file);
        }
        steps
    }

    /// Checks a 200 response's body: the per-device file must carry this phone's secret and no
    /// other phone's; any other file must carry no storm secret at all; and every file must be
    /// one the phone can use ([`Phone::usable`]).
    pub fn check(&self, step: &Step, body: &[u8]) -> Result<(), CheckError> {
        let text = String::from_utf8_lossy(body);
        let own = secret_for(self.mac);
        let mut found_own = false;
        for (at, _) in text.match_indices(SECRET_MARK) {
            if text[at..].starts_with(&own) {
                found_own = true;
            } else {
                return Err(CheckError::ForeignSecret);
            }
        }
        match (step.device_file, found_own) {
            (true, false) => Err(CheckError::MissingSecret),
            (false, true) => Err(CheckError::SecretInCommonFile),
            _ if !self.usable(step, &text) => Err(CheckError::Unusable),
            _ => Ok(()),
        }
    }

    /// Whether the phone could use the file and go on with its boot: an empty body, an HTML
    /// page served with 200 for any path, or a file cut short (an answer whose end is only the
    /// connection's close) fails. Avaya scripts must lead on to the next file of the sequence
    /// (`phones.md`: the upgrade script ends with `GET 46xxsettings.txt`, and a per-device file
    /// is fetched only when a script says `GET $MACADDR.txt`); Yealink files start with their
    /// version line; Poly files are whole XML documents.
    fn usable(&self, step: &Step, text: &str) -> bool {
        let gets = |file: &str| {
            text.lines().any(|line| {
                let mut words = line.split_whitespace();
                words.next().is_some_and(|w| w.eq_ignore_ascii_case("GET"))
                    && words.next().is_some_and(|w| w.eq_ignore_ascii_case(file))
            })
        };
        match (self.vendor, step.label) {
            (Vendor::Avaya, "J100Supgrade.txt") => gets("46xxsettings.txt"),
            (Vendor::Avaya, "46xxsettings.txt") => gets("$MACADDR.txt"),
            (Vendor::Avaya, _) => !text.trim().is_empty(),
            (Vendor::Yealink, _) => text.lines().next().map(str::trim_end) == Some(YEALINK_VERSION),
            (Vendor::Poly, "{mac}.cfg") => {
                text.starts_with("<?xml")
                    && text.contains("<APPLICATION ")
                    && text.trim_end().ends_with("/>")
            }
            (Vendor::Poly, _) => {
                text.starts_with("<?xml") && text.trim_end().ends_with("</polycomConfig>")
            }
        }
    }
}

/// The Yealink common file for the simulated firmware family.
pub fn yealink_common_file() -> &'static str {
    "y000000000028.cfg"
}

/// What was wrong with a response that arrived with status 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("the per-device file lacks the phone's own secret")]
    MissingSecret,
    #[error("a response carries another phone's secret")]
    ForeignSecret,
    #[error("a common file carries a secret")]
    SecretInCommonFile,
    #[error("the file is not one the phone can use (empty, not its vendor's format, or cut short)")]
    Unusable,
}

/// The firmware image a response names, as a path on the same server: Avaya `SET APPNAME x`,
/// Yealink `static.firmware.url = x` (the key edgeprov writes, and current firmware reads) or
/// the older `firmware.url = x`, Poly `APP_FILE_PATH="x"`. An absolute URL keeps only its path.
/// A name no request line can carry (a space, a control character) names nothing a phone could
/// fetch, so it is no name.
pub fn firmware_named(vendor: Vendor, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let name = text.lines().find_map(|line| {
        let line = line.trim();
        match vendor {
            Vendor::Avaya => {
                let rest = line.strip_prefix("SET ")?.trim_start();
                let value = rest.strip_prefix("APPNAME")?.trim();
                Some(value.trim_matches('"').to_string())
            }
            Vendor::Yealink => {
                let (key, value) = line.split_once('=')?;
                matches!(key.trim(), "static.firmware.url" | "firmware.url")
                    .then(|| value.trim().to_string())
            }
            Vendor::Poly => {
                let at = line.find("APP_FILE_PATH=\"")? + "APP_FILE_PATH=\"".len();
                line[at..].split('"').next().map(str::to_string)
            }
        }
    })?;
    let path = match name.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| rest[i..].to_string())?,
        None => format!("/{}", name.trim_start_matches('/')),
    };
    (path.len() > 1 && path.parse::<http::uri::PathAndQuery>().is_ok()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::identify::{Vendor as Seen, parse_user_agent};

    fn phone(vendor: Vendor) -> Phone {
        Phone {
            vendor,
            mac: mac_for("0200", 7).unwrap(),
        }
    }

    #[test]
    fn macs_are_prefix_then_index() {
        assert_eq!(mac_for("0200", 7).unwrap().to_string(), "020000000007");
        assert_eq!(mac_for("", 0x1234).unwrap().to_string(), "000000001234");
        assert_eq!(
            mac_for("0200", 0xffff_ffff).unwrap().to_string(),
            "0200ffffffff"
        );
        assert_eq!(mac_for("0200", 0x1_0000_0000), None);
        assert_eq!(mac_for("02000000000000", 1), None);
        assert_eq!(mac_for("zz00", 1), None);
    }

    #[test]
    fn agents_are_understood_by_the_daemon() {
        for (vendor, seen, with_mac) in [
            (Vendor::Avaya, Seen::Avaya, true),
            (Vendor::Yealink, Seen::Yealink, true),
            (Vendor::Poly, Seen::Poly, false),
        ] {
            let p = phone(vendor);
            let agent = parse_user_agent(&p.user_agent()).unwrap();
            assert_eq!(agent.vendor, seen);
            assert_eq!(agent.model, p.model());
            assert_eq!(agent.mac, with_mac.then_some(p.mac));
        }
    }

    #[test]
    fn sequences_follow_each_vendor() {
        let paths = |v| {
            phone(v)
                .sequence(false)
                .into_iter()
                .map(|s| s.path)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(Vendor::Avaya),
            [
                "/J100Supgrade.txt",
                "/46xxsettings.txt",
                "/020000000007.txt"
            ]
        );
        assert_eq!(
            paths(Vendor::Yealink),
            [
                "/020000000007.boot",
                "/y000000000028.cfg",
                "/020000000007.cfg"
            ]
        );
        assert_eq!(
            paths(Vendor::Poly),
            [
                "/020000000007.cfg",
                "/020000000007-phone.cfg",
                "/edgeprov-common.cfg"
            ]
        );
        let poly = phone(Vendor::Poly).sequence(true);
        assert_eq!(poly.len(), 1);
        assert_eq!(poly[0].path, "/020000000007-phone.cfg");
        let only = phone(Vendor::Avaya).sequence(true);
        assert_eq!(only.len(), 1);
        assert!(only[0].device_file);
        assert_eq!(only[0].label, "{mac}.txt");
    }

    #[test]
    fn each_phone_must_get_its_own_secret_only() {
        let p = phone(Vendor::Avaya);
        let steps = p.sequence(false);
        let (common, device) = (&steps[0], &steps[2]);
        let own = format!("SET SIP_PASSWORD {}\n", secret_for(p.mac));
        let other = format!(
            "SET SIP_PASSWORD {}\n",
            secret_for(mac_for("0200", 8).unwrap())
        );
        assert_eq!(p.check(device, own.as_bytes()), Ok(()));
        assert_eq!(
            p.check(device, b"SET SIPDOMAIN x\n"),
            Err(CheckError::MissingSecret)
        );
        assert_eq!(
            p.check(device, format!("{own}{other}").as_bytes()),
            Err(CheckError::ForeignSecret)
        );
        assert_eq!(p.check(common, b"GET 46xxsettings.txt\n"), Ok(()));
        assert_eq!(p.check(common, b"get 46XXSETTINGS.TXT\n"), Ok(()));
        assert_eq!(
            p.check(common, own.as_bytes()),
            Err(CheckError::SecretInCommonFile)
        );
        assert_eq!(
            p.check(common, other.as_bytes()),
            Err(CheckError::ForeignSecret)
        );
    }

    #[test]
    fn empty_foreign_or_cut_files_are_unusable() {
        let html = b"<html><body>Not Found</body></html>\n";
        for (vendor, good) in [
            (
                Vendor::Avaya,
                [
                    "## upgrade\nGET 46xxsettings.txt\n",
                    "SET SIPDOMAIN x\nGET $MACADDR.txt\n",
                ],
            ),
            (
                Vendor::Yealink,
                [
                    "#!version:1.0.0.1\ninclude:config \"$mac.cfg\"\n",
                    "#!version:1.0.0.1\n",
                ],
            ),
            (
                Vendor::Poly,
                [
                    "<?xml version=\"1.0\"?>\n<APPLICATION APP_FILE_PATH=\"\"/>\n",
                    "<?xml version=\"1.0\"?>\n<polycomConfig>\n</polycomConfig>\n",
                ],
            ),
        ] {
            let p = phone(vendor);
            let commons: Vec<Step> = p
                .sequence(false)
                .into_iter()
                .filter(|s| !s.device_file)
                .collect();
            for (step, good) in commons.iter().zip(good) {
                assert_eq!(
                    p.check(step, good.as_bytes()),
                    Ok(()),
                    "{vendor:?} {}",
                    step.label
                );
                let good = good.as_bytes();
                let mut bad = vec![&b""[..], html, &good[..12]];
                // A Yealink file cut after its version line is still one the phone reads.
                if vendor != Vendor::Yealink {
                    bad.push(&good[..good.len() - 6]);
                }
                for bad in bad {
                    assert_eq!(
                        p.check(step, bad),
                        Err(CheckError::Unusable),
                        "{vendor:?} {} {:?}",
                        step.label,
                        String::from_utf8_lossy(bad)
                    );
                }
            }
        }
    }

    #[test]
    fn firmware_names_per_vendor() {
        assert_eq!(
            firmware_named(
                Vendor::Avaya,
                b"## x\nSET APPNAME J100-IPT-SIP-R4_1_3_0_6.bin\nGET 46xxsettings.txt\n"
            ),
            Some("/J100-IPT-SIP-R4_1_3_0_6.bin".into())
        );
        assert_eq!(
            firmware_named(
                Vendor::Yealink,
                b"#!version:1.0.0.1\nfirmware.url = https://h:8443/fw/T46G.rom\n"
            ),
            Some("/fw/T46G.rom".into())
        );
        assert_eq!(
            firmware_named(
                Vendor::Yealink,
                b"#!version:1.0.0.1\nstatic.firmware.url = https://h:8443/firmware/T46G-1.rom\n"
            ),
            Some("/firmware/T46G-1.rom".into())
        );
        assert_eq!(
            firmware_named(
                Vendor::Poly,
                b"<APPLICATION APP_FILE_PATH=\"sip.ld\" CONFIG_FILES=\"\"/>"
            ),
            Some("/sip.ld".into())
        );
        assert_eq!(firmware_named(Vendor::Avaya, b"SET APPNAME \n"), None);
        assert_eq!(
            firmware_named(Vendor::Avaya, b"SET APPNAME J100 R4.bin\n"),
            None
        );
        assert_eq!(
            firmware_named(Vendor::Poly, b"<APPLICATION APP_FILE_PATH=\"a\x01b.ld\"/>"),
            None
        );
        assert_eq!(firmware_named(Vendor::Yealink, b"a = b\n"), None);
    }
}
