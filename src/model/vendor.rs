//! Phone vendors, told apart by model name when the inventory knows it, else by User-Agent.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Avaya,
    Yealink,
    Poly,
    Cisco,
    Snom,
    Grandstream,
}

impl Vendor {
    /// The vendor a model name belongs to: `J179`, `K175`, `9641`, `9641GS`, Workplace `acw` →
    /// Avaya; `T46S`, `SIP-T54W`, `W60B`, `CP920` → Yealink; `VVX_400`, `CCX600`, `Trio8800` →
    /// Poly.
    pub fn from_model(model: &str) -> Option<Vendor> {
        let m = model.trim().to_ascii_lowercase();
        let m = m.strip_prefix("sip-").unwrap_or(&m);
        let digits_after = |p: &str| {
            m.strip_prefix(p)
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        };
        if ["aca", "aci", "acm", "acw"].contains(&m)
            || digits_after("j")
            || digits_after("k")
            || avaya_desk(m)
        {
            Some(Vendor::Avaya)
        } else if digits_after("t") || digits_after("w") || digits_after("cp") || digits_after("vp")
        {
            Some(Vendor::Yealink)
        } else if m.starts_with("vvx")
            || m.starts_with("ccx")
            || m.starts_with("trio")
            || m.starts_with("soundpoint")
            || m.starts_with("edge")
        {
            Some(Vendor::Poly)
        } else if m.starts_with("cp-") {
            Some(Vendor::Cisco)
        } else if m.starts_with("snom") || digits_after("d") {
            Some(Vendor::Snom)
        } else if m.starts_with("gxp") || m.starts_with("grp") || m.starts_with("gxv") {
            Some(Vendor::Grandstream)
        } else {
            None
        }
    }
}

/// A model's name as edgeprov compares it everywhere (firmware releases and policies, model
/// layers, the inventory): upper case, and a Yealink model without the `SIP-` that its
/// User-Agents and some inventories put before it, so that `SIP-T54W`, `T54W` and `t54w` are
/// one model wherever they are spelled. Only before a Yealink model: the prefix is Yealink's
/// (`Yealink SIP-T46G …`), and whatever another vendor's model is called stays as it is.
pub fn model_key(model: &str) -> String {
    let m = model.to_ascii_uppercase();
    match m.strip_prefix("SIP-") {
        Some(bare) if Vendor::from_model(bare) == Some(Vendor::Yealink) => bare.to_string(),
        _ => m,
    }
}

/// A 1600 or 9600 desk phone (lower case): four digits, `16` or `96` first, then perhaps the
/// letters and digits of a variant (`9641`, `9641GS`, `9608G`, `1608-I`). The variant does not
/// make it another vendor's: the phone's `$MODEL4` is the four digits.
fn avaya_desk(m: &str) -> bool {
    let Some((head, rest)) = m.get(..4).zip(m.get(4..)) else {
        return false;
    };
    head.bytes().all(|b| b.is_ascii_digit())
        && (head.starts_with("96") || head.starts_with("16"))
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models() {
        for (m, v) in [
            ("J179", Vendor::Avaya),
            ("K175", Vendor::Avaya),
            ("9641", Vendor::Avaya),
            ("9641GS", Vendor::Avaya),
            ("9608G", Vendor::Avaya),
            ("1608-I", Vendor::Avaya),
            ("acw", Vendor::Avaya),
            ("T46S", Vendor::Yealink),
            ("SIP-T54W", Vendor::Yealink),
            ("W60B", Vendor::Yealink),
            ("VVX_400", Vendor::Poly),
            ("CCX600", Vendor::Poly),
            ("CP-7832-3PCC", Vendor::Cisco),
            ("snom710", Vendor::Snom),
            ("GXP1628", Vendor::Grandstream),
        ] {
            assert_eq!(Vendor::from_model(m), Some(v), "{m}");
        }
        assert_eq!(Vendor::from_model(""), None);
        assert_eq!(Vendor::from_model("toaster"), None);
        assert_eq!(Vendor::from_model("96"), None);
        assert_eq!(Vendor::from_model("9641 GS"), None);
        assert_eq!(Vendor::from_model("1234"), None);
    }
}
