//! Parameters layered global → site → group → model → device: what one device ends up with,
//! and where each value came from.

use std::collections::{BTreeMap, BTreeSet};

use super::vocab::setting_key;
use crate::model::Layer;
use crate::store::DeviceContext;

/// Where an effective value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Layer(Layer),
    Device,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Layer(l) => l.fmt(f),
            Origin::Device => f.write_str("device"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub value: String,
    /// Secret if any layer declared the name secret, or the vocabulary knows it is one: a later
    /// layer cannot make a credential public by accident by setting it as a plain parameter.
    pub secret: bool,
    pub origin: Origin,
}

/// What the admin API shows in place of a secret value. Secrets are write-only; a preview of a
/// device's files or of its effective settings must not be a way to read them back.
pub const SECRET_MASK: &str = "********";

/// Replaces, in every layer and the device, each value of a name [`effective`] treats as
/// secret, and each value that carries a credential itself (a URL with a login), with
/// [`SECRET_MASK`]: what is rendered from the result shows where each secret goes,
/// never what it is.
pub fn mask_secrets(ctx: &mut DeviceContext) {
    let sets: Vec<_> = ctx
        .layers
        .iter_mut()
        .map(|(_, set)| (&mut set.params, &mut set.secrets))
        .chain(std::iter::once((
            &mut ctx.device.params,
            &mut ctx.device.secrets,
        )))
        .collect();
    let secret: BTreeSet<String> = sets
        .iter()
        .flat_map(|(params, secrets)| {
            let named = params.keys().filter(|n| super::vocab::is_secret(n));
            secrets.keys().chain(named)
        })
        .map(|name| setting_key(name))
        .collect();
    for (params, secrets) in sets {
        for (name, value) in params.iter_mut().chain(secrets.iter_mut()) {
            if secret.contains(&setting_key(name)) || super::vocab::is_secret_value(value) {
                *value = SECRET_MASK.to_string();
            }
        }
    }
}

/// The [`setting_key`]s of every name declared secret at some layer of `ctx` or the device.
fn declared_secret(ctx: &DeviceContext) -> BTreeSet<String> {
    ctx.layers
        .iter()
        .map(|(_, set)| &set.secrets)
        .chain(std::iter::once(&ctx.device.secrets))
        .flat_map(|secrets| secrets.keys().map(|k| setting_key(k)))
        .collect()
}

/// The device's effective parameters by name. A later layer replaces a value set earlier. A
/// value is secret when a layer declared its setting secret in any spelling
/// ([`setting_key`]), the vocabulary knows its name is one, or the value carries a credential
/// whatever its name ([`super::vocab::is_secret_value`]: a URL with a login).
pub fn effective(ctx: &DeviceContext) -> BTreeMap<String, Effective> {
    let declared = declared_secret(ctx);
    let mut out: BTreeMap<String, Effective> = BTreeMap::new();
    // Setting → the name it was last set under: a later layer's value replaces an earlier
    // one's also when the two spell the name differently (`SIP_TOKEN`, `avaya:SIP_TOKEN`).
    let mut spelled: BTreeMap<String, String> = BTreeMap::new();
    let layers = ctx
        .layers
        .iter()
        .map(|(l, set)| (Origin::Layer(l.clone()), &set.params, &set.secrets))
        .chain(std::iter::once((
            Origin::Device,
            &ctx.device.params,
            &ctx.device.secrets,
        )));
    for (origin, params, secrets) in layers {
        for (values, secret) in [(params, false), (secrets, true)] {
            for (name, value) in values {
                let key = setting_key(name);
                let was_secret = declared.contains(&key)
                    || super::vocab::is_secret(name)
                    || super::vocab::is_secret_value(value);
                if let Some(earlier) = spelled.insert(key, name.clone())
                    && earlier != *name
                {
                    out.remove(&earlier);
                }
                out.insert(
                    name.clone(),
                    Effective {
                        value: value.clone(),
                        secret: secret || was_secret,
                        origin: origin.clone(),
                    },
                );
            }
        }
    }
    out
}

/// `eff`'s entries in the order their layers apply (global, site, group, model, device; by
/// name within a layer). A neutral name and a native one can reach one phone setting
/// (`sip.domain` and `avaya:SIPDOMAIN`): rendered in this order the later layer's value wins,
/// where the names' own order would let whichever sorts last win.
pub fn in_layer_order<'e>(
    ctx: &DeviceContext,
    eff: &'e BTreeMap<String, Effective>,
) -> Vec<(&'e String, &'e Effective)> {
    let rank = |origin: &Origin| match origin {
        Origin::Layer(layer) => ctx
            .layers
            .iter()
            .position(|(l, _)| l == layer)
            .unwrap_or_default(),
        Origin::Device => ctx.layers.len(),
    };
    let mut entries: Vec<_> = eff.iter().collect();
    entries.sort_by_key(|(_, e)| rank(&e.origin));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Device, Mac, ParamSet};

    fn set(params: &[(&str, &str)], secrets: &[(&str, &str)]) -> ParamSet {
        ParamSet {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn later_layers_win_and_secrets_stick() {
        let mut device = Device::new(Mac::from_octets([0, 1, 2, 3, 4, 5]));
        device
            .params
            .insert("SIP_PASSWORD".into(), "devicepw".into());
        device.params.insert("DISPLAY".into(), "Reception".into());
        let ctx = DeviceContext {
            device,
            site: None,
            layers: vec![
                (
                    Layer::Global,
                    set(
                        &[("SNTPSRVR", "pool"), ("DISPLAY", "x")],
                        &[("SIP_PASSWORD", "g")],
                    ),
                ),
                (
                    Layer::Site("hq".into()),
                    set(&[("SNTPSRVR", "10.0.0.1")], &[]),
                ),
                (Layer::Model("J179".into()), set(&[("DISPLAY", "y")], &[])),
            ],
        };
        let e = effective(&ctx);
        assert_eq!(e["SNTPSRVR"].value, "10.0.0.1");
        assert_eq!(
            e["SNTPSRVR"].origin,
            Origin::Layer(Layer::Site("hq".into()))
        );
        assert_eq!(e["DISPLAY"].value, "Reception");
        assert_eq!(e["DISPLAY"].origin, Origin::Device);
        assert_eq!(e["SIP_PASSWORD"].value, "devicepw");
        assert!(
            e["SIP_PASSWORD"].secret,
            "secret-ness survives a plain override"
        );
        assert!(!e["SNTPSRVR"].secret);
    }

    /// A setting is one whatever the spelling of its name: a later layer's value replaces an
    /// earlier one's under another spelling, and a plain value of a setting declared secret
    /// under another spelling is secret too, and masked in a preview.
    #[test]
    fn a_settings_spellings_are_one_setting() {
        let mut device = Device::new(Mac::from_octets([0, 1, 2, 3, 4, 5]));
        device
            .params
            .insert("avaya:sip_token".into(), "device-plain".into());
        let mut ctx = DeviceContext {
            device,
            site: None,
            layers: vec![
                (Layer::Global, set(&[], &[("SIP_TOKEN", "g")])),
                (
                    Layer::Group("2".into()),
                    set(&[("yealink:wifi.key", "w")], &[]),
                ),
                (
                    Layer::Model("T46S".into()),
                    set(&[], &[("YEALINK:wifi.key", "m")]),
                ),
            ],
        };
        let e = effective(&ctx);
        assert_eq!(e["avaya:sip_token"].value, "device-plain");
        assert!(e["avaya:sip_token"].secret);
        assert!(!e.contains_key("SIP_TOKEN"), "{e:?}");
        assert_eq!(e["YEALINK:wifi.key"].value, "m");
        assert!(!e.contains_key("yealink:wifi.key"), "{e:?}");
        mask_secrets(&mut ctx);
        assert_eq!(ctx.device.params["avaya:sip_token"], SECRET_MASK);
        assert_eq!(ctx.layers[1].1.params["yealink:wifi.key"], SECRET_MASK);
    }

    #[test]
    fn masking_hides_every_secret_value_and_nothing_else() {
        let mut device = Device::new(Mac::from_octets([0, 1, 2, 3, 4, 5]));
        device
            .params
            .insert("TOKEN".into(), "plain-override".into());
        device.params.insert("DISPLAY".into(), "Reception".into());
        device
            .secrets
            .insert("line.1.password".into(), "pw1".into());
        let mut ctx = DeviceContext {
            device,
            site: None,
            layers: vec![(
                Layer::Global,
                set(
                    &[("ADMIN_PIN", "1234"), ("SNTPSRVR", "pool")],
                    &[("TOKEN", "g")],
                ),
            )],
        };
        mask_secrets(&mut ctx);
        let e = effective(&ctx);
        for name in ["TOKEN", "line.1.password", "ADMIN_PIN"] {
            assert_eq!(e[name].value, SECRET_MASK, "{name}");
            assert!(e[name].secret, "{name}");
        }
        assert_eq!(e["DISPLAY"].value, "Reception");
        assert_eq!(e["SNTPSRVR"].value, "pool");
        assert_eq!(ctx.layers[0].1.secrets["TOKEN"], SECRET_MASK);
    }
}
