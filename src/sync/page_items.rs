//! The bound on a whole page: every list entry (devices, sites, firmware, policies, lockouts)
//! and every device parameter counts one item, and a page of more than [`MAX_PAGE_ITEMS`] is
//! refused before it is read into memory.
//!
//! Each list is bounded as it is read ([`super::protocol::MAX_ITEMS`]), but a device's
//! parameters are a map of their own: a few devices with millions of tiny parameters fit in
//! the largest answer taken and would cost hundreds of megabytes once held as strings in maps.
//! So the answer is walked once with a visitor that keeps nothing (no value is copied, only
//! the keys that name a list are looked at) and counts; only a page within the bound is then
//! read for real.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Most items (list entries and device parameters together) in one page. A list may hold
/// [`super::protocol::MAX_ITEMS`] entries; parameters fill the rest. Held in memory as model
/// types, this many items of the largest answer taken cost some tens of megabytes, not
/// hundreds.
pub const MAX_PAGE_ITEMS: usize = 100_000;

/// Counts a page's items in `body` without keeping any of it; `Err` says where the count
/// passed `max`. An answer that is not JSON, or whose lists and maps are of the wrong type, is
/// let through: the real read refuses it and says where better. A page or a device that is a
/// JSON array is refused here: serde would read it as the struct's fields in order, around
/// this count, and the protocol only ever sends objects.
pub fn check(body: &[u8], max: usize) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut counter = Counter {
        max,
        seen: 0,
        refused: None,
    };
    // The walk's own error only ends it; `refused` says whether it was this bound's.
    let _ = (&mut de).deserialize_any(Page(&mut counter));
    counter.refused.map_or(Ok(()), Err)
}

struct Counter {
    max: usize,
    seen: usize,
    refused: Option<String>,
}

impl Counter {
    /// Counts one item at `at` (`devices[12].params`); `Err`, which ends the walk, once over
    /// the bound.
    fn one<E: de::Error>(&mut self, at: impl FnOnce() -> String) -> Result<(), E> {
        self.seen += 1;
        if self.seen > self.max {
            let max = self.max;
            return self.refuse(format!(
                "more than {max} items in one page (list entries and device parameters \
                 together), counted up to {}: the cloud must split its changes over more pages",
                at()
            ));
        }
        Ok(())
    }

    fn refuse<E: de::Error>(&mut self, why: String) -> Result<(), E> {
        self.refused = Some(why);
        Err(E::custom("page refused"))
    }
}

/// The member names the count looks at; `Other` is everything passed over.
enum Key {
    List(&'static str),
    Params,
    Other,
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "devices" => Key::List("devices"),
            "sites" => Key::List("sites"),
            "firmware" => Key::List("firmware"),
            "policies" => Key::List("policies"),
            "lockouts" => Key::List("lockouts"),
            "params" => Key::Params,
            _ => Key::Other,
        })
    }
}

impl<'de> DeserializeSeed<'de> for KeyVisitor {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(self)
    }
}

/// The page object: counts the entries of its lists.
struct Page<'c>(&'c mut Counter);

impl<'de> Visitor<'de> for Page<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a page object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeyVisitor)? {
            match key {
                Key::List(name) => map.next_value_seed(List {
                    counter: &mut *self.0,
                    name,
                })?,
                Key::Params | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.0
            .refuse("the page is a JSON array, not an object".into())
    }
}

/// One of the page's lists: each entry counts, and a device's parameters too.
struct List<'c> {
    counter: &'c mut Counter,
    name: &'static str,
}

impl<'de> DeserializeSeed<'de> for List<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for List<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let name = self.name;
        for index in 0.. {
            let more = if name == "devices" {
                let device = Device {
                    counter: &mut *self.counter,
                    index,
                };
                seq.next_element_seed(device)?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                break;
            }
            self.counter.one(|| format!("{name}[{index}]"))?;
        }
        Ok(())
    }
}

/// One device: its parameters count, each one item.
struct Device<'c> {
    counter: &'c mut Counter,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for Device<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Device<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a device object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let index = self.index;
        while let Some(key) = map.next_key_seed(KeyVisitor)? {
            if matches!(key, Key::Params) {
                map.next_value_seed(Params {
                    counter: &mut *self.counter,
                    index,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        let index = self.index;
        self.counter
            .refuse(format!("devices[{index}] is a JSON array, not an object"))
    }
}

/// A device's parameters: each entry counts.
struct Params<'c> {
    counter: &'c mut Counter,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for Params<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Params<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parameters")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let index = self.index;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
            self.counter.one(|| format!("devices[{index}].params"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::protocol::ChangesPage;

    fn device(params: usize) -> String {
        let params: Vec<String> = (0..params).map(|i| format!(r#""P{i}":"v""#)).collect();
        format!(
            r#"{{"mac":"001122aabbcc","state":"claimed","params":{{{}}},"x":[1,2,3]}}"#,
            params.join(",")
        )
    }

    fn page(devices: &[String], lockouts: usize) -> String {
        let lockouts = vec![r#"{"mac":"001122aabbcc","until":1}"#; lockouts].join(",");
        format!(
            r#"{{"version":1,"cursor":"","next_cursor":"c","extension":{{"params":[1,2,3,4,5,6,7,8]}},
                "devices":[{}],"lockouts":[{lockouts}]}}"#,
            devices.join(",")
        )
    }

    /// Devices, their parameters and the other lists' entries count together; fields and
    /// unknown members do not. Exactly the bound is taken, one more is refused, naming where.
    #[test]
    fn list_entries_and_parameters_count_together() {
        // 2 devices + 3 + 4 parameters + 1 lockout = 10 items.
        let body = page(&[device(3), device(4)], 1);
        assert_eq!(check(body.as_bytes(), 10), Ok(()));
        let e = check(body.as_bytes(), 9).unwrap_err();
        assert!(
            e.starts_with("more than 9 items in one page (list entries and device parameters together), counted up to lockouts[0]"),
            "{e}"
        );
        let e = check(body.as_bytes(), 5).unwrap_err();
        assert!(e.contains("counted up to devices[1].params"), "{e}");
        // The page the count let through is one the real read takes.
        serde_json::from_str::<ChangesPage>(&body).unwrap();
    }

    /// Firmware releases count one each, read or not: the page keeps them as text and reads
    /// them one by one later, so one that is not a release (here a number, and one without its
    /// digest) still counts, and the page still reads.
    #[test]
    fn firmware_releases_count_as_raw_items() {
        let body = r#"{"version":1,"cursor":"","next_cursor":"c","firmware":[
            {"model":"J179","version":"4","url":"https://fw.example/a.bin","sha256":"ab"},
            {"model":"J179","version":"5","url":"https://fw.example/b.bin"},7]}"#;
        assert_eq!(check(body.as_bytes(), 3), Ok(()));
        let e = check(body.as_bytes(), 2).unwrap_err();
        assert!(e.contains("counted up to firmware[2]"), "{e}");
        let page = serde_json::from_str::<ChangesPage>(body).unwrap();
        assert_eq!(page.firmware.len(), 3);
    }

    /// A few devices with many parameters each: every list is short, the page is refused.
    #[test]
    fn a_few_devices_with_many_parameters_are_too_many() {
        let body = page(&vec![device(MAX_PAGE_ITEMS / 3); 4], 0);
        let e = check(body.as_bytes(), MAX_PAGE_ITEMS).unwrap_err();
        assert!(e.contains("counted up to devices[2].params"), "{e}");
        let fits = page(&vec![device(MAX_PAGE_ITEMS / 4 - 1); 4], 0);
        assert_eq!(check(fits.as_bytes(), MAX_PAGE_ITEMS), Ok(()));
    }

    /// What comes after the item beyond the bound is not read: here, not even JSON.
    #[test]
    fn the_count_stops_at_the_item_beyond() {
        let mut body = page(&[device(20)], 0);
        body.truncate(body.find("P15").unwrap());
        body.push_str("garbage");
        assert!(check(body.as_bytes(), 10).is_err());
        // Within the bound, a broken answer is left to the real read, which names the place.
        assert_eq!(check(body.as_bytes(), 100), Ok(()));
        assert_eq!(check(b"not json", 100), Ok(()));
        assert_eq!(check(br#"{"devices":7}"#, 100), Ok(()));
    }

    /// serde reads a JSON array as a struct's fields in order; the protocol sends objects, so
    /// an array page or device is refused rather than read around the count.
    #[test]
    fn array_shaped_pages_and_devices_are_refused() {
        let as_array = format!(r#"[1,"","c",false,[{}]]"#, device(50));
        assert!(serde_json::from_str::<ChangesPage>(&as_array).is_ok());
        assert_eq!(
            check(as_array.as_bytes(), 10).unwrap_err(),
            "the page is a JSON array, not an object"
        );
        let params: Vec<String> = (0..50).map(|i| format!(r#""P{i}":"v""#)).collect();
        let device = format!(
            r#"["001122aabbcc","claimed","","","","",{{{}}}]"#,
            params.join(",")
        );
        let body = page(&[device], 0);
        assert!(serde_json::from_str::<ChangesPage>(&body).is_ok());
        assert_eq!(
            check(body.as_bytes(), 10).unwrap_err(),
            "devices[0] is a JSON array, not an object"
        );
    }
}
