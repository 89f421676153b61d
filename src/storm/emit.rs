//! What the target needs to know about the simulated phones: the device inventory (CSV for
//! `edgeprov device import`) and, for a plain web server, the same files as static files, so
//! another server can be measured doing the same work.

use std::io::Write;
use std::path::Path;

use super::StormError;
use super::phone::{Phone, Vendor, secret_for, yealink_common_file};
use crate::settings::render::POLY_COMMON;
use crate::settings::set_line;

/// The fixed columns of an inventory CSV; parameter columns follow, `secret:` ones are secret.
const CSV_HEAD: &str = "mac,model,serial,site,group,label";
const SITE: &str = "storm";
const SIP_DOMAIN: &str = "storm.example";

/// Firmware image the common files name (with `--firmware`) and its size in the static tree.
const FIRMWARE_BYTES: usize = 1 << 20;

/// The parameter each phone gets, and the name of its secret, in the vendor's naming.
fn names(vendor: Vendor) -> (&'static str, &'static str) {
    match vendor {
        Vendor::Avaya => ("SIPDOMAIN", "SIP_PASSWORD"),
        Vendor::Yealink => (
            "yealink:account.1.sip_server.1.address",
            "yealink:account.1.password",
        ),
        Vendor::Poly => ("poly:reg.1.server.1.address", "poly:reg.1.auth.password"),
    }
}

fn firmware_file(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Avaya => "J100-IPT-SIP-R4_1_3_0_6.bin",
        Vendor::Yealink => "T46G-28.72.0.1.rom",
        Vendor::Poly => "sip.ld",
    }
}

/// The header line of the inventory.
pub fn csv_header(vendor: Vendor) -> String {
    let (param, secret) = names(vendor);
    format!("{CSV_HEAD},{param},secret:{secret}\n")
}

/// One phone's inventory line (phone `index`, counted from 1 in labels).
pub fn csv_line(phone: &Phone, index: u64) -> String {
    format!(
        "{mac},{model},STORM{index:08},{SITE},,storm phone {index},{SIP_DOMAIN},{secret}\n",
        mac = phone.mac,
        model = phone.model(),
        secret = secret_for(phone.mac),
    )
}

/// The files every phone of the vendor fetches before its own, with their content. `firmware`
/// makes the first file name an image, as a real upgrade script would.
pub fn common_files(vendor: Vendor, firmware: bool) -> Vec<(String, Vec<u8>)> {
    let image = if firmware { firmware_file(vendor) } else { "" };
    let files: Vec<(&str, String)> = match vendor {
        Vendor::Avaya => {
            let mut settings = String::from("## 46xxsettings.txt for the storm site\n");
            for (name, value) in [
                (
                    "SIP_CONTROLLER_LIST",
                    "sip.storm.example:5061;transport=tls",
                ),
                ("SIPDOMAIN", SIP_DOMAIN),
                ("ENABLE_IPOFFICE", "0"),
                ("DSCPAUD", "46"),
                ("DSCPSIG", "34"),
                ("SNTPSRVR", "ntp.storm.example"),
                ("GMTOFFSET", "0:00"),
                ("DAYLIGHT_SAVING_SETTING_MODE", "2"),
                ("ENABLE_PRESENCE", "1"),
                ("LANG0STAT", "1"),
            ] {
                settings.push_str(&set_line(name, value));
                settings.push('\n');
            }
            settings.push_str("GET $MACADDR.txt\n");
            vec![
                (
                    "J100Supgrade.txt",
                    format!(
                        "## J100Supgrade.txt\nIF $MODEL4 SEQ J179 GOTO J179\nGOTO END\n# J179\n{}\n# END\nGET 46xxsettings.txt\n",
                        set_line("APPNAME", image)
                    ),
                ),
                ("46xxsettings.txt", settings),
            ]
        }
        Vendor::Yealink => vec![
            (
                "y000000000000.boot",
                format!(
                    "#!version:1.0.0.1\ninclude:config \"{}\"\ninclude:config \"$mac.cfg\"\noverwrite_mode = 1\n",
                    yealink_common_file()
                ),
            ),
            (
                yealink_common_file(),
                format!(
                    "#!version:1.0.0.1\nstatic.firmware.url = {image}\nlocal_time.time_zone = 0\nlocal_time.ntp_server1 = ntp.storm.example\naccount.1.sip_server.1.transport_type = 2\n"
                ),
            ),
        ],
        Vendor::Poly => vec![
            ("000000000000.cfg", poly_master(image)),
            (
                POLY_COMMON,
                poly_config(&[
                    ("tcpIpApp.sntp.address", "ntp.storm.example"),
                    ("tcpIpApp.sntp.gmtOffset", "0"),
                    ("voIpProt.SIP.outboundProxy.address", SIP_DOMAIN),
                ]),
            ),
        ],
    };
    files
        .into_iter()
        .map(|(name, text)| (name.to_string(), text.into_bytes()))
        .collect()
}

/// Poly's master file: the image and the configuration files, the phone's own first.
fn poly_master(image: &str) -> String {
    format!(
        "<?xml version=\"1.0\" standalone=\"yes\"?>\n<APPLICATION APP_FILE_PATH=\"{image}\" CONFIG_FILES=\"[PHONE_MAC_ADDRESS]-phone.cfg, {POLY_COMMON}\" MISC_FILES=\"\" LOG_FILE_DIRECTORY=\"\" OVERRIDES_DIRECTORY=\"\" CONTACTS_DIRECTORY=\"\" LICENSE_DIRECTORY=\"\"/>\n"
    )
}

/// A Poly configuration file: the settings as attributes of one element.
fn poly_config(settings: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<polycomConfig>\n  <edgeprov",
    );
    for (name, value) in settings {
        out.push_str(&format!("\n    {name}=\"{value}\""));
    }
    out.push_str("/>\n</polycomConfig>\n");
    out
}

/// A phone's own files as edgeprov renders them from the inventory line: the per-device file
/// with its secret, and for Poly also its master file (`{mac}.cfg`, no secret). `firmware`
/// makes that master file name the image, as the common ones do.
pub fn device_files(phone: &Phone, firmware: bool) -> Vec<(String, Vec<u8>)> {
    let (param, secret_name) = names(phone.vendor);
    let secret = secret_for(phone.mac);
    let mac = phone.mac;
    match phone.vendor {
        Vendor::Avaya => vec![(
            format!("{mac}.txt"),
            format!(
                "## edgeprov settings for device {mac}\n{}\n{}\n",
                set_line(param, SIP_DOMAIN),
                set_line(secret_name, &secret)
            )
            .into_bytes(),
        )],
        Vendor::Yealink => vec![(
            format!("{mac}.cfg"),
            format!(
                "#!version:1.0.0.1\n{} = {SIP_DOMAIN}\n{} = {secret}\n",
                param.trim_start_matches("yealink:"),
                secret_name.trim_start_matches("yealink:")
            )
            .into_bytes(),
        )],
        Vendor::Poly => vec![
            (
                format!("{mac}.cfg"),
                poly_master(if firmware {
                    firmware_file(phone.vendor)
                } else {
                    ""
                })
                .into_bytes(),
            ),
            (
                format!("{mac}-phone.cfg"),
                poly_config(&[
                    (param.trim_start_matches("poly:"), SIP_DOMAIN),
                    (secret_name.trim_start_matches("poly:"), &secret),
                ])
                .into_bytes(),
            ),
        ],
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StormError + '_ {
    move |source| StormError::Emit {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the inventory CSV for `phones` (numbered from 1).
pub fn write_inventory(path: &Path, phones: &[Phone]) -> Result<(), StormError> {
    let Some(first) = phones.first() else {
        return Ok(());
    };
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut out = std::io::BufWriter::new(file);
    out.write_all(csv_header(first.vendor).as_bytes())
        .map_err(io_err(path))?;
    for (i, phone) in phones.iter().enumerate() {
        out.write_all(csv_line(phone, i as u64 + 1).as_bytes())
            .map_err(io_err(path))?;
    }
    out.flush().map_err(io_err(path))
}

/// Writes the common files, every per-device file and (with `firmware`) the image into `dir`.
pub fn write_static(dir: &Path, phones: &[Phone], firmware: bool) -> Result<(), StormError> {
    let Some(first) = phones.first() else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut files = common_files(first.vendor, firmware);
    if firmware {
        files.push((
            firmware_file(first.vendor).to_string(),
            vec![0x5a; FIRMWARE_BYTES],
        ));
    }
    let own = phones.iter().flat_map(|p| device_files(p, firmware));
    for (name, bytes) in files.into_iter().chain(own) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io_err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storm::phone::{firmware_named, mac_for};

    fn phone(vendor: Vendor) -> Phone {
        Phone {
            vendor,
            mac: mac_for("0200", 1).unwrap(),
        }
    }

    #[test]
    fn inventory_lines_match_the_import_format() {
        assert_eq!(
            csv_header(Vendor::Avaya),
            "mac,model,serial,site,group,label,SIPDOMAIN,secret:SIP_PASSWORD\n"
        );
        assert_eq!(
            csv_line(&phone(Vendor::Avaya), 1),
            "020000000001,J179,STORM00000001,storm,,storm phone 1,storm.example,stormpw-020000000001\n"
        );
        for v in [Vendor::Avaya, Vendor::Yealink, Vendor::Poly] {
            let cols = csv_header(v).split(',').count();
            assert_eq!(csv_line(&phone(v), 9).split(',').count(), cols);
        }
    }

    #[test]
    fn static_files_pass_the_phones_own_checks() {
        for v in [Vendor::Avaya, Vendor::Yealink, Vendor::Poly] {
            let p = phone(v);
            let commons = common_files(v, true);
            let own = device_files(&p, true);
            let file = |path: &str| {
                commons
                    .iter()
                    .chain(&own)
                    .find(|(n, _)| format!("/{n}") == path)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_else(|| panic!("{v:?} has no {path}"))
            };
            for step in p.sequence(false) {
                assert_eq!(
                    own.iter().any(|(n, _)| format!("/{n}") == step.path),
                    step.path.contains(&p.mac.to_string()),
                    "{v:?} {}",
                    step.path
                );
                assert_eq!(
                    p.check(&step, &file(&step.path)),
                    Ok(()),
                    "{v:?} {}",
                    step.path
                );
            }
            // The simulator asks for the image the first file without a secret names.
            let named = p
                .sequence(false)
                .iter()
                .filter(|s| !s.device_file)
                .find_map(|s| firmware_named(v, &file(&s.path)))
                .unwrap();
            assert_eq!(named, format!("/{}", firmware_file(v)));
            assert!(
                common_files(v, false)
                    .iter()
                    .chain(&device_files(&p, false))
                    .all(|(_, b)| firmware_named(v, b).is_none())
            );
        }
    }
}
