//! What an applied import puts in its audit entry: the MACs it created, updated and left
//! unchanged, each created or updated one with its difference (as `POST` and `PATCH /devices`
//! give theirs). An import can touch 100,000 devices, so the record stops listing at
//! [`MAX_BYTES`] and only counts the devices after that (`not_listed`).

use serde_json::{Map, Value, json};

use crate::admin::devices::device_changes;
use crate::model::Device;

/// About how much of an entry's `changes` an import may fill.
pub const MAX_BYTES: usize = 128 * 1024;

#[derive(Debug, Default)]
pub struct Trail {
    created: Map<String, Value>,
    updated: Map<String, Value>,
    unchanged: Vec<Value>,
    /// Devices created, updated and unchanged that are not listed.
    not_listed: [usize; 3],
    bytes: usize,
}

impl Trail {
    /// Records one device the import writes: `before` is what was stored.
    pub fn record(&mut self, before: Option<&Device>, after: &Device) {
        let kind = match before {
            None => 0,
            Some(b) if b != after => 1,
            Some(_) => 2,
        };
        if self.bytes >= MAX_BYTES {
            self.not_listed[kind] += 1;
            return;
        }
        let mac = after.mac.to_string();
        let diff = match kind {
            2 => Value::Null,
            _ => device_changes(before, Some(after)),
        };
        self.bytes += mac.len() + diff.to_string().len() + 4;
        match kind {
            0 => drop(self.created.insert(mac, diff)),
            1 => drop(self.updated.insert(mac, diff)),
            _ => self.unchanged.push(Value::String(mac)),
        }
    }

    /// The entry's `changes`.
    pub fn into_changes(self) -> Value {
        let mut out = json!({
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
        });
        let [created, updated, unchanged] = self.not_listed;
        if created + updated + unchanged > 0 {
            out["not_listed"] =
                json!({"created": created, "updated": updated, "unchanged": unchanged});
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mac;

    fn device(i: u32) -> Device {
        let b = i.to_be_bytes();
        let mut d = Device::new(Mac::from_octets([2, 0, b[0], b[1], b[2], b[3]]));
        d.model = "J179".into();
        d.label = format!("desk {i}");
        d
    }

    #[test]
    fn lists_each_kind_with_its_difference() {
        let mut t = Trail::default();
        let (old, mut new) = (device(1), device(1));
        new.label = "lobby".into();
        t.record(None, &device(0));
        t.record(Some(&old), &new);
        t.record(Some(&old), &old);
        let c = t.into_changes();
        assert_eq!(c["created"]["020000000000"]["model"]["after"], "J179");
        assert_eq!(
            c["updated"]["020000000001"],
            json!({"label": {"before": "desk 1", "after": "lobby"}})
        );
        assert_eq!(c["unchanged"], json!(["020000000001"]));
        assert!(c.get("not_listed").is_none(), "{c}");
    }

    #[test]
    fn stops_listing_at_its_bound_and_counts_the_rest() {
        let mut t = Trail::default();
        for i in 0..100_000 {
            let mut changed = device(i);
            changed.params.insert("VLAN".into(), "20".into());
            t.record(Some(&device(i)), &changed);
            t.record(None, &device(i + 1_000_000));
        }
        let c = t.into_changes();
        assert!(
            c.to_string().len() < MAX_BYTES + 4096,
            "{}",
            c.to_string().len()
        );
        let listed =
            c["created"].as_object().unwrap().len() + c["updated"].as_object().unwrap().len();
        let not_listed = &c["not_listed"];
        let counted =
            not_listed["created"].as_u64().unwrap() + not_listed["updated"].as_u64().unwrap();
        assert_eq!(listed as u64 + counted, 200_000);
    }
}
