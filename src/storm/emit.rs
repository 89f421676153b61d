//! What the target needs to know about the simulated phones: the device inventory (CSV for
//! `edgeprov device import`) and, for a plain web server, the same files as static files, so
//! another server can be measured doing the same work.

use std::io::Write;
use std::path::Path;

use super::StormError;
use super::phone::{Phone, Vendor, secret_for, yealink_common_file};
use crate::model::Device;
use crate::phone::identify::parse_user_agent;
use crate::settings::render::{
    Common, POLY_COMMON, Requester, classify, render_common, render_device,
};
use crate::store::DeviceContext;

/// The fixed columns of an inventory CSV; parameter columns follow, `secret:` ones are secret.
const CSV_HEAD: &str = "mac,model,serial,site,group,label";
const SITE: &str = "storm";
const SIP_DOMAIN: &str = "storm.example";

/// Size of the firmware image the files name (with `--firmware`) in the static tree.
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

/// The image the files name with `--firmware`.
fn firmware_file(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Avaya => "J100-IPT-SIP-R4_1_3_0_6.bin",
        Vendor::Yealink => "T46G-28.83.0.60.rom",
        Vendor::Poly => "VVX400-6.4.3.sip.ld",
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

/// The files edgeprov renders, for the phones of the emitted inventory, from nothing but that
/// inventory: no global, site, group or model parameters, and (with `firmware`) a firmware
/// policy that gives each phone's model its image. Rendered by edgeprov's own renderer, so the
/// static tree is byte for byte what edgeprov serves and a plain web server is measured on
/// identical work.
struct Rendering {
    common: Common,
    who: Requester,
}

/// Where a static tree's Yealink and Poly files say the images are: a path on the server that
/// serves the tree. The one place the tree differs from what edgeprov serves, and on purpose:
/// edgeprov names an absolute `https://HOST:PORT/firmware/` URL, the host and port the phone
/// reached it at, but the tree is written before it is known which server will serve it (in
/// `benches/storm-vs-nginx.sh`, nginx on its own port), and a URL naming edgeprov would send the
/// phones there for their image. The image is in the tree, at this path
/// (`storm::the_static_tree_is_what_edgeprov_serves` checks both halves).
const FIRMWARE_DIR: &str = "/firmware/";

impl Rendering {
    fn new(phone: &Phone, firmware: bool) -> Rendering {
        let agent = parse_user_agent(&phone.user_agent());
        let mut common = Common::default();
        if firmware {
            common.firmware.insert(
                phone.model().to_ascii_uppercase(),
                firmware_file(phone.vendor).to_string(),
            );
            common.firmware_base = FIRMWARE_DIR.to_string();
        }
        Rendering {
            common,
            who: Requester {
                vendor: agent.as_ref().map(|a| a.vendor),
                model: agent.as_ref().map(|a| a.model.clone()).unwrap_or_default(),
                firmware: agent.map(|a| a.firmware).unwrap_or_default(),
            },
        }
    }

    fn common_file(&self, name: &str) -> Result<(String, Vec<u8>), StormError> {
        classify(name)
            .and_then(|file| render_common(&file, &self.common, &self.who))
            .map(|r| (name.to_string(), r.bytes))
            .ok_or_else(|| StormError::Render(name.to_string()))
    }

    fn device_file(&self, phone: &Phone, name: String) -> Result<(String, Vec<u8>), StormError> {
        let (param, secret_name) = names(phone.vendor);
        let mut device = Device::new(phone.mac);
        device.model = phone.model().to_string();
        device.site = SITE.to_string();
        device
            .params
            .insert(param.to_string(), SIP_DOMAIN.to_string());
        device
            .secrets
            .insert(secret_name.to_string(), secret_for(phone.mac));
        let ctx = DeviceContext {
            device,
            site: None,
            layers: Vec::new(),
        };
        classify(&name)
            .and_then(|file| render_device(&file, &ctx, &self.common, &self.who))
            .map(|r| (name.clone(), r.bytes))
            .ok_or(StormError::Render(name))
    }
}

/// The vendor's files common to every phone, as edgeprov serves them: those its phones fetch
/// besides their own, and Yealink's `y000000000000.boot` (for a phone without a boot file of
/// its own).
/// `firmware` makes them name the vendor's image.
pub fn common_files(phone: &Phone, firmware: bool) -> Result<Vec<(String, Vec<u8>)>, StormError> {
    let names: [&str; 2] = match phone.vendor {
        Vendor::Avaya => ["J100Supgrade.txt", "46xxsettings.txt"],
        Vendor::Yealink => ["y000000000000.boot", yealink_common_file()],
        Vendor::Poly => ["000000000000.cfg", POLY_COMMON],
    };
    let rendering = Rendering::new(phone, firmware);
    names.iter().map(|n| rendering.common_file(n)).collect()
}

/// A phone's own files as edgeprov serves them from its inventory line: the per-device file
/// with its secret, and for Yealink also its boot file (`{mac}.boot`), for Poly its master file
/// (`{mac}.cfg`), neither with a secret.
pub fn device_files(phone: &Phone, firmware: bool) -> Result<Vec<(String, Vec<u8>)>, StormError> {
    let rendering = Rendering::new(phone, firmware);
    let mac = phone.mac;
    let names = match phone.vendor {
        Vendor::Avaya => vec![format!("{mac}.txt")],
        Vendor::Yealink => vec![format!("{mac}.boot"), format!("{mac}.cfg")],
        Vendor::Poly => vec![format!("{mac}.cfg"), format!("{mac}-phone.cfg")],
    };
    names
        .into_iter()
        .map(|n| rendering.device_file(phone, n))
        .collect()
}

/// Where the vendor's image lies in the static tree: where the rendered files name it.
fn firmware_path(vendor: Vendor) -> String {
    match vendor {
        Vendor::Yealink | Vendor::Poly => format!(
            "{}{}",
            FIRMWARE_DIR.trim_start_matches('/'),
            firmware_file(vendor)
        ),
        Vendor::Avaya => firmware_file(vendor).to_string(),
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
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io_err(&path))
    };
    if firmware {
        let image = firmware_path(first.vendor);
        if let Some(parent) = dir.join(&image).parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        write(&image, &vec![0x5a; FIRMWARE_BYTES])?;
    }
    for (name, bytes) in common_files(first, firmware)? {
        write(&name, &bytes)?;
    }
    for phone in phones {
        for (name, bytes) in device_files(phone, firmware)? {
            write(&name, &bytes)?;
        }
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
            let commons = common_files(&p, true).unwrap();
            let own = device_files(&p, true).unwrap();
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
            // The simulator asks for the image the first file that names one names, and the
            // static tree has it there.
            let named = p
                .sequence(false)
                .iter()
                .find_map(|s| firmware_named(v, &file(&s.path)))
                .unwrap();
            assert_eq!(named, format!("/{}", firmware_path(v)));
        }
        // Without firmware, Avaya and Yealink files name none (Poly's master file names Poly's
        // default `sip.ld`, as edgeprov's does).
        for v in [Vendor::Avaya, Vendor::Yealink] {
            let p = phone(v);
            assert!(
                common_files(&p, false)
                    .unwrap()
                    .iter()
                    .chain(&device_files(&p, false).unwrap())
                    .all(|(_, b)| firmware_named(v, b).is_none())
            );
        }
    }
}
