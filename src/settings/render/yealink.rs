//! Yealink boot and configuration files: `#!version:1.0.0.1`, then `include:config` lines (boot
//! files) or `key = value` lines (cfg files).

use std::collections::BTreeMap;

use super::Common;
use crate::model::{Mac, Vendor, model_key};
use crate::settings::vocab::{Native, to_native};

const VERSION: &str = "#!version:1.0.0.1\n";

/// Model → common-file family: the models [`family_of_model`] knows, and which models read
/// each family file.
///
/// Only models whose common file a public source names are listed; any other model falls
/// back to its firmware's family. Sources, each a directory of common-file templates per model
/// or a model-to-file table of a provisioning project:
/// - FusionPBX, `resources/templates/provision/yealink/<model>/y0000000000NN.cfg`
///   (github.com/fusionpbx/fusionpbx): T23G/T23P 44, T27G 69, T27P 45, T29G 46, T31G 123,
///   T33G 124, T34W 171, T31W 172, T40G 76, T40P 54, T42U 116, T43U 107, T46U 108, T48U 109,
///   T53/T53W 95, T54W 96, T57W 97, T58W 150, CP920 78, CP925 148, CP960 73, CP965 143;
/// - Wazo's Yealink provd plugin, `plugins/xivo-yealink/v85/entry.py` and its successors
///   (github.com/wazo-platform/wazo-provd-plugins): T4xS 65 to 68 with firmware 66, the T3x
///   files 123, 124 and 127 with firmware 124, CP960 73, W60B 77;
/// - a FreePBX endpoint module's model table and a Perl provisioning script, both public: T46G
///   28, T42G 29, T48G 35, T41P 36, T54S 70, T52S 74, T30 and T30P 127, T31, T31P and T31G 123,
///   T33P and T33G 124, and the numbers above again where they list the model;
/// - a FreePBX endpoint-manager module's map of Yealink global files (`yealinkGlobalCfgMap`,
///   public PHP): T19(P) E2 53, T21(P) E2 52, T44U 173, T44W 174, T58A 58, VP59 91, with the
///   numbers above again; FusionPBX agrees on T44W (`yealink/t44w/y000000000174.cfg`, and its
///   `t44w+` boot file includes `y000000000174.cfg`), T19P E2 (`t19p/y000000000053.cfg`),
///   T21P E2 (`t21p/y000000000052.cfg`) and CP860 (`cp860/y000000000037.cfg`); the Perl
///   script on T58 58, T49G 51 and CP860 37.
///
/// Models none of them names (a T41U) are left out: they fall back to the firmware. A model
/// missing here is worse than a slow lookup: a T44U would be told its firmware's family file,
/// which is not the file Yealink's documents name for it, so an operator's
/// `y000000000173.cfg` would never reach it.
const FAMILIES: &[(&str, u32)] = &[
    ("T46G", 28),
    ("T42G", 29),
    ("T48G", 35),
    ("T41P", 36),
    ("CP860", 37),
    ("T23G", 44),
    ("T23P", 44),
    ("T27P", 45),
    ("T29G", 46),
    ("T49G", 51),
    ("T21P_E2", 52),
    ("T21_E2", 52),
    ("T19P_E2", 53),
    ("T19_E2", 53),
    ("T40P", 54),
    ("T58", 58),
    ("T58A", 58),
    ("T48S", 65),
    ("T46S", 66),
    ("T42S", 67),
    ("T41S", 68),
    ("T27G", 69),
    ("T54S", 70),
    ("CP960", 73),
    ("T52S", 74),
    ("T40G", 76),
    ("W60B", 77),
    ("CP920", 78),
    ("VP59", 91),
    ("T53", 95),
    ("T53W", 95),
    ("T54W", 96),
    ("T57W", 97),
    ("T43U", 107),
    ("T46U", 108),
    ("T48U", 109),
    ("T42U", 116),
    ("T31", 123),
    ("T31P", 123),
    ("T31G", 123),
    ("T33P", 124),
    ("T33G", 124),
    ("T30", 127),
    ("T30P", 127),
    ("CP965", 143),
    ("CP925", 148),
    ("T58W", 150),
    ("T34W", 171),
    ("T31W", 172),
    ("T44U", 173),
    ("T44W", 174),
];

/// The family number of a Yealink model's common file (`y` and the number zero-padded to
/// twelve digits, see [`common_name`]).
/// It is often also the first part of the model's firmware version (`28.72.0.1` on a T46G),
/// but not always: a T31P runs firmware `124.x` and reads `y000000000123.cfg`, a T48U runs
/// `108.x` and reads `y000000000109.cfg` (see [`family_of_requester`]).
pub fn family_of_model(model: &str) -> Option<u32> {
    let m = model_key(model);
    FAMILIES
        .iter()
        .find(|(name, _)| *name == m)
        .map(|(_, code)| *code)
}

/// The family number a firmware version starts with (`108` of `108.86.0.45`); numbers have
/// two or three digits (`28` on a T46G, `124` on a T33G).
pub fn family_of_firmware(firmware: &str) -> Option<u32> {
    firmware
        .split('.')
        .next()?
        .parse()
        .ok()
        .filter(|n| (1..1000).contains(n))
}

/// The family whose common file a phone not in the inventory reads: its model's, when the
/// table knows the model, else the first part of its firmware version. The model decides when
/// known: models that share a firmware release can read different common files (a T48S runs
/// T4xS firmware 66 but reads `y000000000065.cfg`).
pub fn family_of_requester(who: &super::Requester) -> Option<u32> {
    family_of_model(&who.model).or_else(|| family_of_firmware(&who.firmware))
}

/// `y` and the family number zero-padded to twelve digits: the name the phone itself asks for
/// when no boot file names one.
fn common_name(code: u32) -> String {
    format!("y{code:012}.cfg")
}

/// A boot file: the common file of the phone's family (when known) and its own file. Later
/// includes win, so the device's settings override the common ones.
pub fn boot(mac: Option<Mac>, family: Option<u32>) -> Vec<u8> {
    let mut out = format!("{VERSION}## edgeprov AUTOGENERATED\n");
    if let Some(code) = family {
        out.push_str(&format!("include:config \"{}\"\n", common_name(code)));
    }
    match mac {
        Some(m) => out.push_str(&format!("include:config \"{m}.cfg\"\n")),
        None => out.push_str("include:config \"$mac.cfg\"\n"),
    }
    out.push_str("overwrite_mode = 1\n");
    out.into_bytes()
}

/// Whether `key` can be a cfg key: a word of letters, digits, `_`, `.` and `-`, as parameter
/// names are. Writes refuse other names; one stored before could hold a blank or a line end
/// and give the phone a key, or a whole line, nobody set.
fn is_cfg_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// One `key = value` line per setting. A line end in a value would end the setting and start
/// another the phone reads as its own, and the format has no escape: control characters (which
/// writes refuse, so only a value stored before can hold one) are left out, as from Avaya's
/// `SET` lines, and a key that is no cfg key is left out whole.
fn cfg_lines(out: &mut String, native: &Native) {
    for (k, v) in native.iter().filter(|(k, _)| is_cfg_key(k)) {
        let v: String = v.chars().filter(|c| !c.is_control()).collect();
        out.push_str(&format!("{k} = {v}\n"));
    }
}

/// The firmware file of `model` (any case, with or without `SIP-`) the policies choose.
fn firmware_of<'a>(model: &str, firmware: &'a BTreeMap<String, String>) -> Option<&'a String> {
    let m = model_key(model);
    firmware
        .iter()
        .find(|(name, _)| model_key(name) == m)
        .map(|(_, file)| file)
}

/// The firmware file of family `code`'s common file: the one the policies choose for every
/// model that reads the file (those [`FAMILIES`] lists for it, and any other model of the
/// catalogue it gives the family), when they all get the same one; else none. The file is
/// shared, so an image one model's policy chose there would reach a model pinned to another
/// version, or set to `off`, too.
fn family_firmware(code: u32, firmware: &BTreeMap<String, String>) -> Option<&String> {
    let mut readers = FAMILIES
        .iter()
        .filter(|(_, c)| *c == code)
        .map(|(name, _)| (*name).to_string())
        .chain(
            firmware
                .keys()
                .filter(|m| family_of_model(m) == Some(code))
                .map(|m| model_key(m)),
        );
    let first = firmware_of(&readers.next()?, firmware)?;
    readers
        .all(|m| firmware_of(&m, firmware) == Some(first))
        .then_some(first)
}

/// The family's common file: global and site settings, and the firmware the policies choose
/// when they choose the same for every model of the family ([`family_firmware`]; an explicit
/// `firmware.file` in the global or site layer wins).
///
/// Model layers are left out. Every model of a family reads this one file (a T53 and a T53W
/// both read `y000000000095.cfg`) and the format has no conditionals, so a model layer here
/// would reach the family's other models too. A model layer reaches a phone of the inventory
/// through its own `{mac}.cfg`, which the boot file includes after this one; a phone not in the
/// inventory gets no model layer. The same goes for firmware: a phone of the inventory gets its
/// own model's in its `{mac}.cfg` ([`cfg`]).
pub fn common_cfg(code: u32, common: &Common) -> Vec<u8> {
    let mut out = format!("{VERSION}## edgeprov AUTOGENERATED common settings\n");
    let mut native = Native::new();
    if !common.firmware_base.is_empty()
        && let Some(file) = family_firmware(code, &common.firmware)
    {
        native.insert(
            "static.firmware.url".into(),
            format!("{}{file}", common.firmware_base),
        );
    }
    let mut set = to_native(Vendor::Yealink, &common.global, &BTreeMap::new());
    set.extend(to_native(Vendor::Yealink, &common.site, &common.global));
    file_urls(&mut set, &common.firmware_base);
    native.extend(set);
    cfg_lines(&mut out, &native);
    out.into_bytes()
}

/// Makes `static.firmware.url` and `static.trusted_certificates.url` of a layer's or device's
/// parameters (`native`) URLs, which is what the phone downloads from. `firmware.file` and
/// `tls.trusted_ca` name a file, as Avaya's `APPNAME` and `TRUSTCERTS` do (the vocabulary
/// renders both vendors' settings from them); a value without a scheme is this server's
/// `/firmware/{file}` under the address the phone reached it at (the box's CA certificate,
/// `edgeprov-ca.crt`, and an operator's files are served under any directory). Kept as it is
/// when that address is unknown.
fn file_urls(native: &mut Native, base: &str) {
    if base.is_empty() {
        return;
    }
    for key in ["static.firmware.url", "static.trusted_certificates.url"] {
        if let Some(url) = native.get_mut(key)
            && !url.is_empty()
            && !url.contains("://")
        {
            *url = format!("{base}{}", url.trim_start_matches('/'));
        }
    }
}

/// `{mac}.cfg`: the device's whole effective set, secrets included, and the firmware the
/// policies choose for its `model` (an explicit `firmware.file` in any layer wins). The family
/// file names firmware only when the family's models agree ([`family_firmware`]), so this is
/// where a phone of the inventory learns its own model's.
pub fn cfg(native: &Native, model: &str, common: &Common) -> Vec<u8> {
    let mut out = format!("{VERSION}## edgeprov AUTOGENERATED device settings\n");
    let mut native = native.clone();
    file_urls(&mut native, &common.firmware_base);
    if !common.firmware_base.is_empty()
        && let Some(file) = firmware_of(model, &common.firmware)
    {
        native
            .entry("static.firmware.url".into())
            .or_insert_with(|| format!("{}{file}", common.firmware_base));
    }
    cfg_lines(&mut out, &native);
    out.into_bytes()
}

/// Reads a cfg file back (`key = value` lines; `#` comments), as a phone would.
#[cfg(test)]
pub fn parse_cfg(bytes: &[u8]) -> Native {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_digit_families_name_a_twelve_digit_common_file() {
        assert_eq!(common_name(66), "y000000000066.cfg");
        assert_eq!(common_name(108), "y000000000108.cfg");
        assert_eq!(family_of_firmware("108.86.0.45"), Some(108));
        assert_eq!(family_of_firmware("124.86.0.40"), Some(124));
        assert_eq!(family_of_firmware("0.1"), None);
        assert_eq!(family_of_firmware("1000.1"), None);
        for (model, code) in [
            ("SIP-T46U", 108),
            ("T43U", 107),
            ("T48U", 109),
            ("T42U", 116),
            ("T33G", 124),
            ("T33P", 124),
            ("T31", 123),
            ("T31P", 123),
            ("SIP-T31G", 123),
            ("T30P", 127),
            ("T53", 95),
            ("T53W", 95),
            ("T54W", 96),
            ("T57W", 97),
            ("T58W", 150),
            ("SIP-T44U", 173),
            ("T44W", 174),
            ("SIP-T21P_E2", 52),
            ("T19P_E2", 53),
            ("T58A", 58),
            ("VP59", 91),
            ("CP860", 37),
        ] {
            assert_eq!(family_of_model(model), Some(code), "{model}");
        }
        let common = String::from_utf8(boot(None, family_of_firmware("108.86.0.45"))).unwrap();
        assert!(
            common.contains("include:config \"y000000000108.cfg\"\n"),
            "{common}"
        );
        let mac = Mac::parse("001565aaa937").unwrap();
        let own = String::from_utf8(boot(Some(mac), family_of_model("T33G"))).unwrap();
        assert!(
            own.contains("include:config \"y000000000124.cfg\"\n"),
            "{own}"
        );
        let own = String::from_utf8(boot(Some(mac), family_of_model("T31P"))).unwrap();
        assert!(
            own.contains("include:config \"y000000000123.cfg\"\n"),
            "{own}"
        );
    }

    #[test]
    fn a_phone_not_in_the_inventory_reads_its_models_common_file() {
        let who = |model: &str, firmware: &str| super::super::Requester {
            model: model.into(),
            firmware: firmware.into(),
            ..Default::default()
        };
        assert_eq!(family_of_requester(&who("T48S", "66.86.0.15")), Some(65));
        assert_eq!(family_of_requester(&who("T46S", "66.86.0.15")), Some(66));
        assert_eq!(family_of_requester(&who("T58W", "150.86.0.5")), Some(150));
        // Firmware 124 runs on the whole T3x range, whose models read three common files.
        assert_eq!(family_of_requester(&who("T31P", "124.86.0.40")), Some(123));
        assert_eq!(family_of_requester(&who("T30", "124.86.0.40")), Some(127));
        assert_eq!(family_of_requester(&who("T48U", "108.86.0.45")), Some(109));
        // A T44U or T44W reads its own file whatever its firmware's first number.
        assert_eq!(family_of_requester(&who("T44U", "108.87.0.10")), Some(173));
        assert_eq!(family_of_requester(&who("T44W", "108.87.0.10")), Some(174));
        // A model no source names falls back to its firmware.
        assert_eq!(family_of_requester(&who("T41U", "108.86.0.45")), Some(108));
        assert_eq!(family_of_requester(&who("", "")), None);
    }

    #[test]
    fn a_devices_own_firmware_setting_wins_over_its_models_policy() {
        let common = Common {
            firmware: BTreeMap::from([("T46S".into(), "t46s.rom".into())]),
            firmware_base: "https://box/firmware/".into(),
            ..Common::default()
        };
        let own = parse_cfg(&cfg(&Native::new(), "SIP-T46S", &common));
        assert_eq!(
            own.get("static.firmware.url").map(String::as_str),
            Some("https://box/firmware/t46s.rom")
        );
        let set = Native::from([(
            "static.firmware.url".into(),
            "http://elsewhere/x.rom".into(),
        )]);
        let own = parse_cfg(&cfg(&set, "T46S", &common));
        assert_eq!(
            own.get("static.firmware.url").map(String::as_str),
            Some("http://elsewhere/x.rom")
        );
        // `firmware.file` names a file, as for Avaya's APPNAME: the phone needs a URL.
        let file = to_native(
            Vendor::Yealink,
            &BTreeMap::from([("firmware.file".into(), "T46S-66.86.0.160.rom".into())]),
            &BTreeMap::new(),
        );
        let own = parse_cfg(&cfg(&file, "T46S", &common));
        assert_eq!(
            own.get("static.firmware.url").map(String::as_str),
            Some("https://box/firmware/T46S-66.86.0.160.rom")
        );
        let shared = Common {
            global: BTreeMap::from([("firmware.file".into(), "fam.rom".into())]),
            ..common.clone()
        };
        let family = parse_cfg(&common_cfg(66, &shared));
        assert_eq!(
            family.get("static.firmware.url").map(String::as_str),
            Some("https://box/firmware/fam.rom")
        );
        // `tls.trusted_ca` names a file too (Avaya's TRUSTCERTS): served by this box.
        let ca = to_native(
            Vendor::Yealink,
            &BTreeMap::from([("tls.trusted_ca".into(), "edgeprov-ca.crt".into())]),
            &BTreeMap::new(),
        );
        let own = parse_cfg(&cfg(&ca, "T46S", &common));
        assert_eq!(
            own.get("static.trusted_certificates.url")
                .map(String::as_str),
            Some("https://box/firmware/edgeprov-ca.crt")
        );
        let none = Common {
            firmware_base: String::new(),
            ..common
        };
        assert!(
            !parse_cfg(&cfg(&Native::new(), "T46S", &none)).contains_key("static.firmware.url")
        );
    }

    /// A value or name holding a line end, stored before writes refused them, must not add a
    /// line to the file: the phone would read the text after it as a setting of its own.
    #[test]
    fn a_line_end_in_a_name_or_value_adds_no_setting() {
        let native = Native::from([
            (
                "account.1.label".to_string(),
                "Desk\nstatic.security.user_password = admin:0wned\r\n".to_string(),
            ),
            (
                "bad\nstatic.network.vlan.internet_port_vid".to_string(),
                "7".to_string(),
            ),
            ("a b".to_string(), "1".to_string()),
            ("lang.gui".to_string(), "English".to_string()),
        ]);
        let file = cfg(&native, "T46S", &Common::default());
        let text = String::from_utf8_lossy(&file);
        let read = parse_cfg(&file);
        let keys: Vec<&str> = read.keys().map(String::as_str).collect();
        assert_eq!(keys, ["account.1.label", "lang.gui"], "{text}");
        assert_eq!(
            read["account.1.label"], "Deskstatic.security.user_password = admin:0wned",
            "{text}"
        );
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(!text.contains('\r'), "{text}");
    }

    #[test]
    fn a_model_layer_stays_out_of_the_family_file() {
        let layer = |key: &str, value: &str| {
            BTreeMap::from([(format!("yealink:{key}"), value.to_string())])
        };
        let common = Common {
            global: layer("features.global", "1"),
            models: vec![
                ("T53".into(), layer("features.shared", "t53")),
                ("T53W".into(), layer("features.only_t53w", "1")),
                ("T53W".into(), layer("features.shared", "t53w")),
            ],
            ..Common::default()
        };
        let file = parse_cfg(&common_cfg(95, &common));
        assert_eq!(file.get("features.global").map(String::as_str), Some("1"));
        assert!(!file.contains_key("features.only_t53w"), "{file:?}");
        assert!(!file.contains_key("features.shared"), "{file:?}");
    }
}
