//! Parameter layers. A device's effective parameters are the layers applied in order
//! global → site → group → model → device, a later layer replacing a name set earlier.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One level of the hierarchy, addressed in the store and the API as `global`, `site:NAME`,
/// `group:NAME`, `model:NAME` (device parameters live in the device record).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    Global,
    Site(String),
    Group(String),
    Model(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a parameter layer: {0:?} (expected global, site:NAME, group:NAME or model:NAME)")]
pub struct LayerError(pub String);

impl Layer {
    pub fn parse(text: &str) -> Result<Layer, LayerError> {
        let err = || LayerError(text.to_string());
        if text == "global" {
            return Ok(Layer::Global);
        }
        let (kind, name) = text.split_once(':').ok_or_else(err)?;
        // As free as a device's site, group and model fields (a layer must be nameable for
        // every value they hold), but never a control character.
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(err());
        }
        match kind {
            "site" => Ok(Layer::Site(name.into())),
            "group" => Ok(Layer::Group(name.into())),
            "model" => Ok(Layer::Model(name.into())),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Global => f.write_str("global"),
            Layer::Site(n) => write!(f, "site:{n}"),
            Layer::Group(n) => write!(f, "group:{n}"),
            Layer::Model(n) => write!(f, "model:{n}"),
        }
    }
}

/// The parameters set at one layer; `secrets` are values only the device itself may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ParamSet {
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_round_trip() {
        for text in ["global", "site:hq", "group:2", "model:J179"] {
            assert_eq!(Layer::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "site:",
            "device:x",
            "Global",
            "site",
            "site:a\nb",
            "group:\u{7}",
        ] {
            assert!(Layer::parse(bad).is_err(), "{bad}");
        }
    }
}

/// Longest parameter value accepted; phones truncate or refuse longer ones anyway.
pub const MAX_VALUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error(
        "parameter name {0:?} must be 1-128 characters of letters, digits, '_', '.', '-' with an optional 'vendor:' prefix"
    )]
    Name(String),
    #[error(
        "parameter {name}: value must not contain double quotes, line breaks or control characters"
    )]
    Value { name: String },
    #[error("parameter {name}: value is longer than {MAX_VALUE} bytes")]
    TooLong { name: String },
}

/// Checked when a parameter is written, so every file rendered later can express it: the 46xx
/// language has no escape for `"` and a line break would inject another statement.
pub fn validate_param(name: &str, value: &str) -> Result<(), ParamError> {
    let (prefix, bare) = match name.split_once(':') {
        Some((p, b)) => (Some(p), b),
        None => (None, name),
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    if name.len() > 128 || !word(bare) || prefix.is_some_and(|p| !word(p)) {
        return Err(ParamError::Name(name.chars().take(140).collect()));
    }
    if value.len() > MAX_VALUE {
        return Err(ParamError::TooLong { name: name.into() });
    }
    if value.contains('"') || value.chars().any(char::is_control) {
        return Err(ParamError::Value { name: name.into() });
    }
    Ok(())
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    #[test]
    fn names_and_values() {
        assert!(validate_param("SIP_PASSWORD", "a b c").is_ok());
        assert!(validate_param("yealink:account.1.label", "Front desk").is_ok());
        assert!(validate_param("", "x").is_err());
        assert!(validate_param("A B", "x").is_err());
        assert!(validate_param("a:b:c", "x").is_err());
        assert!(validate_param("X", "say \"hi\"").is_err());
        assert!(validate_param("X", "line\nSET ADMIN_PASSWORD 0").is_err());
        assert!(validate_param("X", &"a".repeat(MAX_VALUE + 1)).is_err());
    }
}
