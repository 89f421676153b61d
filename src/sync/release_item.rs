//! One firmware release of a pulled page, read from the text the cloud wrote for it: the
//! release, or what names it and why it is not one. Pure.
//!
//! A page's releases are read one by one ([`super::protocol::ChangesPage::firmware`]) so that
//! one the box cannot read (a field missing, a field of the wrong type) is refused alone, as
//! one with a bad value is, instead of failing the read of the whole page.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::protocol::FirmwareRelease;

/// A release that cannot be read as a [`FirmwareRelease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// What names it, as far as it can be read.
    pub label: Label,
    /// What serde said, naming the field (`missing field `sha256``, `url: invalid type: ...`),
    /// values cut to [`super::QUOTED`] characters.
    pub why: String,
}

/// The fields that name a release, each when it is present and a string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Label {
    #[serde(default, deserialize_with = "text")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub url: Option<String>,
}

/// Reads one release of a page.
pub fn read(raw: &RawValue) -> Result<FirmwareRelease, Unread> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| Unread {
        // A label that cannot be read either (not an object, a field given twice) names
        // nothing: the item's place in the page still does.
        label: serde_json::from_str(raw.get()).unwrap_or_default(),
        why: super::client::described(&e.path().to_string(), e.inner(), false),
    })
}

/// A string, or `None` for any other JSON value, which is passed over without being kept
/// (a field of the wrong type may be a large array or object).
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Text;

    impl<'de> Visitor<'de> for Text {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }

    d.deserialize_any(Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    fn label(model: Option<&str>, version: Option<&str>, url: Option<&str>) -> Label {
        Label {
            model: model.map(str::to_string),
            version: version.map(str::to_string),
            url: url.map(str::to_string),
        }
    }

    /// A release that reads is the release; unknown members are passed over.
    #[test]
    fn a_release_reads() {
        let f = read(&raw(
            r#"{"model":"J179","version":"4","url":"https://fw.example/a.bin","sha256":"ab","size":"big"}"#,
        ))
        .unwrap();
        assert_eq!((f.model.as_str(), f.removed), ("J179", false));
    }

    /// One that does not names the field serde complained about, without the position (it is
    /// the item's, not the page's), and what of its names can be read: strings only, a value
    /// of another type (however large) passed over.
    #[test]
    fn an_unread_release_names_the_field_and_what_names_it() {
        let cases = [
            (
                r#"{"model":"J179","version":"4","url":"https://fw.example/a.bin"}"#,
                label(Some("J179"), Some("4"), Some("https://fw.example/a.bin")),
                "missing field `sha256`",
            ),
            (
                r#"{"model":"J179","version":4,"url":"u","sha256":"ab"}"#,
                label(Some("J179"), None, Some("u")),
                "version: invalid type: integer `4`, expected a string",
            ),
            (
                r#"{"model":["J179",{"a":[1]}],"version":null,"url":{"x":"y"},"sha256":"ab"}"#,
                label(None, None, None),
                "model: invalid type: sequence, expected a string",
            ),
            (
                r#"{"model":"J179","version":"4","url":"u","sha256":"ab","removed":"yes"}"#,
                label(Some("J179"), Some("4"), Some("u")),
                "removed: invalid type: string \"yes\", expected a boolean",
            ),
            (
                r#"{"model":"J179","model":"J169","version":"4","url":"u","sha256":"ab"}"#,
                label(None, None, None),
                "duplicate field `model`",
            ),
            (
                "null",
                label(None, None, None),
                "invalid type: null, expected struct FirmwareRelease",
            ),
        ];
        for (text, label, why) in cases {
            let e = read(&raw(text)).unwrap_err();
            assert_eq!(
                e,
                Unread {
                    label,
                    why: why.to_string()
                },
                "{text}"
            );
        }
    }

    /// A value quoted in the message is cut: the message is stored and sent to the cloud.
    #[test]
    fn a_long_value_is_cut() {
        let long = "x".repeat(10_000);
        let text = format!(
            r#"{{"model":"J179","version":"4","url":"u","sha256":"ab","removed":"{long}"}}"#
        );
        let e = read(&raw(&text)).unwrap_err();
        assert!(e.why.len() < 400, "{}", e.why);
    }
}
