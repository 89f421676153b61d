//! Parameter layers, and the one-transaction read of everything needed to render a device.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable};

use super::devices::site_exists;
use super::{DEVICES, LAYERS, SITES, Store, StoreError, decode, encode};
use crate::model::{Device, Layer, Mac, ParamSet, Site, model_key};

/// A device with its site and the parameter layers that apply to it, read in one snapshot so a
/// rendered file never mixes two versions of the data.
#[derive(Debug, Clone)]
pub struct DeviceContext {
    pub device: Device,
    pub site: Option<Site>,
    /// Global, site, group, model — in that order; layers with nothing set are omitted. The
    /// model's are every layer naming it in any spelling [`model_key`] takes as one, the one
    /// spelled as the device's model last.
    pub layers: Vec<(Layer, ParamSet)>,
}

/// The layers that common files are made of, for phones of one site (or of no known site).
#[derive(Debug, Clone, Default)]
pub struct CommonLayers {
    pub global: ParamSet,
    pub site: Option<ParamSet>,
    pub groups: Vec<(String, ParamSet)>,
    pub models: Vec<(String, ParamSet)>,
}

/// Reads every layer whose key starts with `prefix` (`group:`, `model:`), in key order.
fn layers_with_prefix(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<(String, ParamSet)>, StoreError> {
    let mut out = Vec::new();
    for row in table.range(prefix..)? {
        let (k, v) = row?;
        let Some(name) = k.value().strip_prefix(prefix) else {
            break;
        };
        out.push((name.to_string(), decode("layers", k.value(), v.value())?));
    }
    Ok(out)
}

/// The stored model layers of the model `model` names, spelled any way [`model_key`] takes as
/// one (`SIP-T54W`, `T54W`, `t54w`), in key order.
fn layers_of_model(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    model: &str,
) -> Result<Vec<(String, ParamSet)>, StoreError> {
    let key = model_key(model);
    let mut out = Vec::new();
    for row in table.range("model:"..)? {
        let (k, v) = row?;
        let Some(name) = k.value().strip_prefix("model:") else {
            break;
        };
        // Only the layers of this model are decoded: this runs for every phone request.
        if model_key(name) == key {
            out.push((name.to_string(), decode("layers", k.value(), v.value())?));
        }
    }
    Ok(out)
}

/// The layers of a device's model ([`layers_of_model`]), in the order they apply: one spelled
/// as the device's model last, so that its values win; others (stored before two spellings of
/// one model were refused) before it, in key order.
fn device_model_layers(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    model: &str,
) -> Result<Vec<(Layer, ParamSet)>, StoreError> {
    let mut layers = layers_of_model(table, model)?;
    layers.sort_by_key(|(name, _)| name == model);
    Ok(layers
        .into_iter()
        .map(|(name, set)| (Layer::Model(name), set))
        .collect())
}

impl Store {
    /// Global, the site's, and every group and model layer, in one snapshot.
    pub fn common_layers(&self, site: Option<&str>) -> Result<CommonLayers, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(LAYERS)?;
        let get = |key: String| -> Result<Option<ParamSet>, StoreError> {
            table
                .get(key.as_str())?
                .map(|v| decode("layers", &key, v.value()))
                .transpose()
        };
        Ok(CommonLayers {
            global: get(Layer::Global.to_string())?.unwrap_or_default(),
            site: match site.filter(|s| !s.is_empty()) {
                Some(s) => get(Layer::Site(s.to_string()).to_string())?,
                None => None,
            },
            groups: layers_with_prefix(&table, "group:")?,
            models: layers_with_prefix(&table, "model:")?,
        })
    }

    pub fn get_layer(&self, layer: &Layer) -> Result<ParamSet, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(LAYERS)?;
        let key = layer.to_string();
        let found = table.get(key.as_str())?;
        Ok(found
            .map(|v| decode("layers", &key, v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Changes one layer in one transaction and returns it before and after: a change made
    /// meanwhile by another writer is built on, never put back. An emptied layer is removed.
    ///
    /// A change that sets anything in a site's layer is refused while the site does not exist
    /// (no record, no device naming it), checked in this transaction as firmware policies are:
    /// site names are exact, so `site:HQ` for the site `hq` would silently wait for a site of
    /// that name, and a site deleted meanwhile would leave its successor settings. Removing from
    /// a layer that holds something is allowed whatever the site, so parameters an earlier
    /// version left can be cleared; removing from one of a site that does not exist and holds
    /// nothing is refused as setting is (`param unset --layer site:HQ` for the site `hq`
    /// otherwise answered as if it had removed something).
    ///
    /// A new model layer of a model that another stored layer already names, spelled another
    /// way ([`model_key`]), is refused: `j179` beside `J179` (1600 and early 9600 phones
    /// compare `IF $MODEL4 SEQ …` without regard to case, so in `46xxsettings.txt` the first of
    /// the two sections would take the phones of both), `SIP-T54W` beside `T54W` (one model, as
    /// for firmware: a device of either spelling would get both). Two such layers stored before
    /// this check both apply to the model's devices ([`Store::device_context`]).
    pub fn update_layer(
        &self,
        layer: &Layer,
        change: impl FnOnce(&mut ParamSet),
    ) -> Result<(ParamSet, ParamSet), StoreError> {
        let tx = self.begin_write()?;
        let changed = {
            let mut table = tx.open_table(LAYERS)?;
            let key = layer.to_string();
            let before: ParamSet = table
                .get(key.as_str())?
                .map(|v| decode("layers", &key, v.value()))
                .transpose()?
                .unwrap_or_default();
            let mut set = before.clone();
            change(&mut set);
            let sets = |after: &BTreeMap<String, String>, was: &BTreeMap<String, String>| {
                after.iter().any(|(k, v)| was.get(k) != Some(v))
            };
            // A site that does not exist is refused as `set` refuses it, but for removing
            // what its layer holds: one stored before sites had to exist stays clearable.
            let holds_nothing = before == ParamSet::default();
            if let Layer::Site(site) = layer
                && (sets(&set.params, &before.params)
                    || sets(&set.secrets, &before.secrets)
                    || holds_nothing)
                && !site_exists(&tx, site)?
            {
                return Err(StoreError::NotFound(format!("site {site}")));
            }
            let created = before == ParamSet::default() && set != before;
            if let Layer::Model(model) = layer
                && created
                && let Some((other, _)) = layers_of_model(&table, model)?
                    .into_iter()
                    .find(|(name, _)| name != model)
            {
                let (new, existing) = (layer.to_string(), Layer::Model(other.clone()).to_string());
                return Err(if other.eq_ignore_ascii_case(model) {
                    StoreError::CaseClash { new, existing }
                } else {
                    StoreError::SameModel { new, existing }
                });
            }
            if set.params.is_empty() && set.secrets.is_empty() {
                table.remove(key.as_str())?;
            } else {
                table.insert(key.as_str(), encode(&set).as_slice())?;
            }
            (before, set)
        };
        tx.commit()?;
        Ok(changed)
    }

    pub fn device_context(&self, mac: Mac) -> Result<Option<DeviceContext>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let key = mac.to_string();
        let mut device: Device = match tx.open_table(DEVICES)?.get(key.as_str())? {
            Some(v) => decode("devices", &key, v.value())?,
            None => return Ok(None),
        };
        // Rendering sees one device layer: the cloud's parameters under the local ones.
        device.params = device.effective_params();
        let site = if device.site.is_empty() {
            None
        } else {
            let sites = tx.open_table(SITES)?;
            let found = sites.get(device.site.as_str())?;
            found
                .map(|v| decode("sites", &device.site, v.value()))
                .transpose()?
        };
        let mut wanted = vec![Layer::Global];
        if !device.site.is_empty() {
            wanted.push(Layer::Site(device.site.clone()));
        }
        if !device.group.is_empty() {
            wanted.push(Layer::Group(device.group.clone()));
        }
        let table = tx.open_table(LAYERS)?;
        let mut layers = Vec::new();
        for layer in wanted {
            let key = layer.to_string();
            if let Some(v) = table.get(key.as_str())? {
                layers.push((layer, decode("layers", &key, v.value())?));
            }
        }
        if !device.model.is_empty() {
            layers.extend(device_model_layers(&table, &device.model)?);
        }
        Ok(Some(DeviceContext {
            device,
            site,
            layers,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opus(value: &str) -> impl FnOnce(&mut ParamSet) {
        let value = value.to_string();
        move |set| {
            set.params.insert("avaya:ENABLE_OPUS".into(), value);
        }
    }

    /// `j179` beside `J179` would share one `$MODEL4` section on phones that compare without
    /// case: refused, naming both, with nothing written; the existing layer stays editable, and
    /// once it is emptied the other spelling may be used.
    #[test]
    fn a_model_layer_differing_only_by_case_from_another_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let upper = Layer::Model("J179".into());
        let lower = Layer::Model("j179".into());
        store.update_layer(&upper, opus("1")).unwrap();
        let before = store.generation();
        let e = store.update_layer(&lower, opus("2")).unwrap_err();
        assert!(matches!(e, StoreError::CaseClash { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("model:j179: differs only by case from the existing layer model:J179"),
            "{text}"
        );
        assert_eq!(store.generation(), before, "nothing was written");
        assert_eq!(store.get_layer(&lower).unwrap(), ParamSet::default());
        assert_eq!(store.common_layers(None).unwrap().models.len(), 1);

        store.update_layer(&upper, opus("3")).unwrap();
        store
            .update_layer(&Layer::Model("J169".into()), opus("4"))
            .unwrap();
        store
            .update_layer(&upper, |set| set.params.clear())
            .unwrap();
        store.update_layer(&lower, opus("2")).unwrap();
        let models: Vec<String> = store
            .common_layers(None)
            .unwrap()
            .models
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(models, ["J169", "j179"]);
    }

    /// A Yealink User-Agent says `SIP-T54W`, an operator writes `model:T54W`: one model, as
    /// for firmware. The layer applies to a device of any spelling, a second spelling is refused
    /// naming the first, and two stored before that apply both, the device's own spelling last.
    #[test]
    fn a_model_layer_applies_to_every_spelling_of_its_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let set = |name: &str, value: &str| {
            let (name, value) = (name.to_string(), value.to_string());
            move |set: &mut ParamSet| {
                set.params.insert(name, value);
            }
        };
        let bare = Layer::Model("T54W".into());
        store
            .update_layer(&bare, set("ntp.server", "ntp.bare"))
            .unwrap();
        let macs = [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 6], [0, 1, 2, 3, 4, 7]];
        for (octets, model) in macs.iter().zip(["SIP-T54W", "T54W", "sip-t54w"]) {
            let mut device = Device::new(Mac::from_octets(*octets));
            device.model = model.into();
            store.create_device(device).unwrap();
        }
        let model_layers = |octets: [u8; 6]| {
            let ctx = store
                .device_context(Mac::from_octets(octets))
                .unwrap()
                .unwrap();
            ctx.layers
                .into_iter()
                .filter(|(l, _)| matches!(l, Layer::Model(_)))
                .map(|(l, set)| (l.to_string(), set.params["ntp.server"].clone()))
                .collect::<Vec<_>>()
        };
        for octets in macs {
            assert_eq!(
                model_layers(octets),
                [("model:T54W".to_string(), "ntp.bare".to_string())],
                "{octets:?}"
            );
        }

        let before = store.generation();
        let prefixed = Layer::Model("SIP-T54W".into());
        let e = store
            .update_layer(&prefixed, set("ntp.server", "ntp.sip"))
            .unwrap_err();
        assert!(matches!(e, StoreError::SameModel { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("model:SIP-T54W: is the same model as the existing layer model:T54W"),
            "{text}"
        );
        assert!(!text.contains("  "), "one space between words: {text}");
        assert_eq!(store.generation(), before, "nothing was written");
        // Another vendor's `SIP-` stays part of its model's name.
        store
            .update_layer(&Layer::Model("SIP-J179".into()), set("ntp.server", "x"))
            .unwrap();

        // Both spellings stored by an earlier edgeprov: both apply, the device's own last.
        {
            let tx = store.begin_write().unwrap();
            let mut table = tx.open_table(LAYERS).unwrap();
            let mut sip = ParamSet::default();
            sip.params.insert("ntp.server".into(), "ntp.sip".into());
            table
                .insert(prefixed.to_string().as_str(), encode(&sip).as_slice())
                .unwrap();
            drop(table);
            tx.commit().unwrap();
        }
        let sip = ("model:SIP-T54W".to_string(), "ntp.sip".to_string());
        let bare = ("model:T54W".to_string(), "ntp.bare".to_string());
        assert_eq!(model_layers(macs[0]), [bare.clone(), sip.clone()]);
        assert_eq!(model_layers(macs[1]), [sip.clone(), bare.clone()]);
        assert_eq!(model_layers(macs[2]), [sip, bare]);
    }
}
