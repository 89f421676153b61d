//! Which generated file a requested name is. Matching is case-insensitive: phones differ in how
//! they spell MACs and file names.

use crate::model::Mac;

/// Avaya firmware families, each with its own upgrade script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AvayaFamily {
    J100,
    K100,
    Avaya96x1,
}

impl AvayaFamily {
    /// Whether `model` (`$MODEL4`, or a whole model such as `9641GS`) belongs to the family.
    pub fn contains(&self, model: &str) -> bool {
        let m = model.to_ascii_uppercase();
        match self {
            AvayaFamily::J100 => m.starts_with('J'),
            AvayaFamily::K100 => m.starts_with('K'),
            AvayaFamily::Avaya96x1 => m
                .get(..4)
                .is_some_and(|h| h.starts_with("96") && h.bytes().all(|b| b.is_ascii_digit())),
        }
    }
}

/// The file a name resolves to, whatever its letter case: the identity of a generated file
/// (the phone path keeps rendered common files under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileName {
    /// `46xxsettings.txt`
    AvayaSettings,
    /// `J100Supgrade.txt`, `K1xxSupgrade.txt`, `96x1Supgrade.txt`
    AvayaUpgrade(AvayaFamily),
    /// `{mac}.txt`
    AvayaDevice(Mac),
    /// `y000000000000.boot`
    YealinkBoot,
    /// `y` and twelve digits, `.cfg`: the common file of the Yealink family whose number the
    /// digits spell zero-padded (`y000000000066.cfg` for 66, `y000000000108.cfg` for 108).
    YealinkCommon(u32),
    /// `{mac}.boot` (Yealink)
    DeviceBoot(Mac),
    /// `{mac}.cfg`: Yealink's per-device settings, or Poly's per-phone master file
    DeviceCfg(Mac),
    /// `000000000000.cfg`, Poly's master file
    PolyMaster,
    /// `edgeprov-common.cfg`, Poly's common settings named by the master file
    PolyCommon,
    /// `{mac}-phone.cfg`, Poly's per-device settings
    PolyDevice(Mac),
}

/// The name of the Poly common settings file, listed in the master file.
pub const POLY_COMMON: &str = "edgeprov-common.cfg";

pub fn classify(name: &str) -> Option<FileName> {
    let lower = name.to_ascii_lowercase();
    let fixed = match lower.as_str() {
        "46xxsettings.txt" => Some(FileName::AvayaSettings),
        "j100supgrade.txt" => Some(FileName::AvayaUpgrade(AvayaFamily::J100)),
        "k1xxsupgrade.txt" => Some(FileName::AvayaUpgrade(AvayaFamily::K100)),
        "96x1supgrade.txt" => Some(FileName::AvayaUpgrade(AvayaFamily::Avaya96x1)),
        "y000000000000.boot" => Some(FileName::YealinkBoot),
        "000000000000.cfg" => Some(FileName::PolyMaster),
        POLY_COMMON => Some(FileName::PolyCommon),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    // Any family number, known to the model table or not: a model newer than the table still
    // gets the global and site settings. Zero is no family (`y000000000000` is the boot file's).
    if let Some(code) = lower
        .strip_prefix('y')
        .and_then(|r| r.strip_suffix(".cfg"))
        .filter(|c| c.len() == 12 && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u32>().ok())
        .filter(|c| *c != 0)
    {
        return Some(FileName::YealinkCommon(code));
    }
    let (stem, ext) = lower.rsplit_once('.')?;
    if let Some(mac_text) = stem.strip_suffix("-phone") {
        let mac = Mac::parse(mac_text).ok()?;
        return (ext == "cfg").then_some(FileName::PolyDevice(mac));
    }
    let mac = Mac::parse(stem).ok().filter(|m| m.octets() != [0; 6])?;
    match ext {
        "txt" => Some(FileName::AvayaDevice(mac)),
        "boot" => Some(FileName::DeviceBoot(mac)),
        "cfg" => Some(FileName::DeviceCfg(mac)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let mac = Mac::parse("001122aabbcc").unwrap();
        for (n, want) in [
            ("46xxsettings.txt", FileName::AvayaSettings),
            ("46XXSETTINGS.TXT", FileName::AvayaSettings),
            (
                "J100Supgrade.txt",
                FileName::AvayaUpgrade(AvayaFamily::J100),
            ),
            (
                "96x1Supgrade.txt",
                FileName::AvayaUpgrade(AvayaFamily::Avaya96x1),
            ),
            ("001122AABBCC.txt", FileName::AvayaDevice(mac)),
            ("00-11-22-aa-bb-cc.txt", FileName::AvayaDevice(mac)),
            ("y000000000000.boot", FileName::YealinkBoot),
            ("y000000000066.cfg", FileName::YealinkCommon(66)),
            ("y000000000108.cfg", FileName::YealinkCommon(108)),
            ("Y000000000124.CFG", FileName::YealinkCommon(124)),
            ("001122aabbcc.boot", FileName::DeviceBoot(mac)),
            ("001122aabbcc.cfg", FileName::DeviceCfg(mac)),
            ("000000000000.cfg", FileName::PolyMaster),
            ("001122aabbcc-phone.cfg", FileName::PolyDevice(mac)),
        ] {
            assert_eq!(classify(n), Some(want), "{n}");
        }
        for n in [
            "46xxspecials.txt",
            "y0000000000.cfg",
            "y00000000066.cfg",
            "y0000000000066.cfg",
            "y000000000000.cfg",
            "y00000000+066.cfg",
            "x.txt",
            "001122aabbcc.xml",
            "000000000000.txt",
        ] {
            assert_eq!(classify(n), None, "{n}");
        }
        assert!(AvayaFamily::J100.contains("J179"));
        assert!(AvayaFamily::Avaya96x1.contains("9641"));
        assert!(!AvayaFamily::Avaya96x1.contains("J179"));
    }
}
