//! Every file a phone can ask for, rendered from layered parameters.
//!
//! Secrets only travel in per-device files: a common file (`46xxsettings.txt`, Yealink's common
//! `.cfg`, Poly's common file) never carries a secret, whatever layer it was set at, because it
//! is served to every phone. A per-device file carries the device's full effective set, secrets
//! included, and is authorised against the device's proof of identity.

mod avaya;
mod name;
mod poly;
#[cfg(test)]
mod proptests;
mod yealink;

use std::collections::{BTreeMap, BTreeSet};

pub use name::{FileName, POLY_COMMON, classify};

use super::layered::{effective, in_layer_order};
use super::vocab::{self, Native};
use crate::model::{Mac, ParamSet, Vendor};
use crate::store::{CommonLayers, DeviceContext};

/// A rendered file and whether it carries a secret (which decides who may read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub carries_secret: bool,
}

/// What common files are made of: the non-secret parameters of the layers that apply to the
/// requesting phone's site (all of them when the phone is not known yet).
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub global: BTreeMap<String, String>,
    pub site: BTreeMap<String, String>,
    /// `group:NAME` layers; for Avaya NAME is the phone's GROUP number.
    pub groups: Vec<(String, BTreeMap<String, String>)>,
    /// `model:NAME` layers; NAME is the phone's model (`$MODEL4` for Avaya).
    pub models: Vec<(String, BTreeMap<String, String>)>,
    /// An operator has uploaded `46xxspecials.txt`: generated Avaya files end by fetching it.
    pub specials: bool,
    /// Model (upper case) → firmware file the policies choose for this site; an explicit
    /// `firmware.file` parameter of a layer that reaches the phone wins over it. The models releases and
    /// policies name, plus, for one request, the model the file is about when only a family
    /// release covers it.
    pub firmware: BTreeMap<String, String>,
    /// Where phones download those files (`https://host:port/firmware/`), from the request;
    /// empty when unknown, and Yealink files then name no firmware URL.
    pub firmware_base: String,
    /// The box's SCEP URL (`http://host:port/scep`), from the request, when `[scep]` is on:
    /// Avaya's settings file then points phones at it; empty otherwise.
    pub scep_url: String,
}

impl Common {
    /// Keeps only what may be sent to every phone: no name the vocabulary calls a secret, no
    /// value that carries a credential ([`vocab::is_secret_value`]: a URL with a login), and
    /// none reaching a setting of `secret`, the [`vocab::setting_key`]s of the names some
    /// layer declared secret (in any spelling: `SIP_TOKEN`, `avaya:SIP_TOKEN`, `AVAYA:sip_token`
    /// are one Avaya setting).
    fn public(set: &ParamSet, secret: &BTreeSet<String>) -> BTreeMap<String, String> {
        set.params
            .iter()
            .filter(|(k, v)| {
                !vocab::is_secret(k)
                    && !vocab::is_secret_value(v)
                    && !secret.contains(&vocab::setting_key(k))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The common data of `layers`. A name set as a secret in any of them stays out of every
    /// common file, also where another layer sets it as a plain parameter: once secret at any
    /// layer a name stays secret (as in a device's effective set), so a plain value cannot
    /// make a credential public by accident.
    pub fn from_layers(layers: &CommonLayers, specials: bool) -> Common {
        let all = std::iter::once(&layers.global)
            .chain(&layers.site)
            .chain(layers.groups.iter().map(|(_, set)| set))
            .chain(layers.models.iter().map(|(_, set)| set));
        let secret: BTreeSet<String> = all
            .flat_map(|set| set.secrets.keys().map(|k| vocab::setting_key(k)))
            .collect();
        let public = |set: &ParamSet| Common::public(set, &secret);
        let named =
            |v: &[(String, ParamSet)]| v.iter().map(|(n, set)| (n.clone(), public(set))).collect();
        Common {
            global: public(&layers.global),
            site: layers.site.as_ref().map(public).unwrap_or_default(),
            groups: named(&layers.groups),
            models: named(&layers.models),
            specials,
            firmware: BTreeMap::new(),
            firmware_base: String::new(),
            scep_url: String::new(),
        }
    }

    fn base(&self) -> BTreeMap<String, String> {
        let mut b = self.global.clone();
        b.extend(self.site.iter().map(|(k, v)| (k.clone(), v.clone())));
        b
    }
}

/// The request as far as rendering cares: who asks (if known) and with which firmware.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// From the User-Agent, when it is a phone.
    pub vendor: Option<Vendor>,
    /// The model from the User-Agent (for Yealink, what names the family's common file).
    pub model: String,
    /// The firmware version from the User-Agent (Yealink's family number is its first part).
    pub firmware: String,
}

/// Renders a common file, or `None` when the name is not one edgeprov generates.
pub fn render_common(file: &FileName, common: &Common, who: &Requester) -> Option<Rendered> {
    let bytes = match file {
        FileName::AvayaSettings => avaya::settings_file(common),
        FileName::AvayaUpgrade(family) => avaya::upgrade_script(*family, common),
        FileName::YealinkBoot => yealink::boot(None, yealink::family_of_requester(who)),
        FileName::YealinkCommon(code) => yealink::common_cfg(*code, common),
        FileName::PolyMaster => poly::master(poly::shared_image(common).as_deref()),
        FileName::PolyCommon => poly::common(common),
        _ => return None,
    };
    Some(Rendered {
        bytes,
        carries_secret: false,
    })
}

/// What of the requester a common file's bytes depend on beyond [`Common`] (empty for most):
/// with the file, the common data and this, a rendered common file can be reused. A file that
/// names firmware per model depends on the requester's model when the family reads it: the
/// phone path adds that model's firmware when only a family release (`J1*`) covers it.
pub fn requester_part(file: &FileName, who: &Requester) -> String {
    match file {
        FileName::YealinkBoot => format!("{} {}", who.model, who.firmware),
        FileName::AvayaUpgrade(family) if family.contains(&who.model) => {
            who.model.to_ascii_uppercase()
        }
        FileName::YealinkCommon(code) if yealink::family_of_model(&who.model) == Some(*code) => {
            who.model.to_ascii_uppercase()
        }
        _ => String::new(),
    }
}

/// The vendor a device's files are for: its model, else what its User-Agent says.
pub fn device_vendor(ctx: &DeviceContext, who: &Requester) -> Option<Vendor> {
    Vendor::from_model(&ctx.device.model).or(who.vendor)
}

/// Renders a per-device file for `ctx`'s device, or `None` when that file does not exist for
/// the device's vendor (a Poly phone has no `.boot`).
pub fn render_device(
    file: &FileName,
    ctx: &DeviceContext,
    common: &Common,
    who: &Requester,
) -> Option<Rendered> {
    // `.txt` is Avaya's, `.boot` Yealink's, `-phone.cfg` Poly's whatever the inventory says;
    // only `{mac}.cfg` needs the device's vendor to tell Yealink from Poly.
    let vendor = match file {
        FileName::AvayaDevice(_) => Vendor::Avaya,
        FileName::DeviceBoot(_) => Vendor::Yealink,
        FileName::PolyDevice(_) => Vendor::Poly,
        _ => device_vendor(ctx, who)?,
    };
    let (native, carries_secret) = device_native(vendor, ctx);
    let bytes = match (file, vendor) {
        (FileName::AvayaDevice(_), _) => {
            avaya::device_file(ctx.device.mac, &native, common.specials)
        }
        (FileName::DeviceBoot(_), _) => {
            let code = yealink::family_of_model(&ctx.device.model).or_else(|| {
                ctx.device
                    .checkin
                    .as_ref()
                    .and_then(|c| yealink::family_of_firmware(&c.firmware))
            });
            return Some(Rendered {
                bytes: yealink::boot(Some(ctx.device.mac), code),
                carries_secret: false,
            });
        }
        (FileName::DeviceCfg(_), Vendor::Yealink) => {
            yealink::cfg(&native, &ctx.device.model, common)
        }
        (FileName::DeviceCfg(_), Vendor::Poly) => {
            // The device's effective `firmware.file` wins over the policy's image, as in a
            // Yealink phone's own file; set empty, it names none (Poly's `sip.ld`).
            let image = match effective(ctx).remove("firmware.file") {
                Some(e) if e.value.is_empty() => None,
                Some(e) => Some(poly::image_url(&e.value, &common.firmware_base)),
                None => poly::image_of(&ctx.device.model, common),
            };
            return Some(Rendered {
                bytes: poly::master(image.as_deref()),
                carries_secret: false,
            });
        }
        (FileName::PolyDevice(_), _) => poly::params_file(&native),
        _ => return None,
    };
    Some(Rendered {
        bytes,
        carries_secret,
    })
}

/// The device's effective parameters in its vendor's native names, and whether any secret
/// made it into them.
pub fn device_native(vendor: Vendor, ctx: &DeviceContext) -> (Native, bool) {
    let eff = effective(ctx);
    // One layer an entry, in the order their layers apply: the effective set names each
    // parameter once, so together they are that set.
    let entries: Vec<BTreeMap<String, String>> = in_layer_order(ctx, &eff)
        .into_iter()
        .map(|(name, e)| BTreeMap::from([(name.clone(), e.value.clone())]))
        .collect();
    let native = layered_native(vendor, &entries);
    // Any secret meant for this vendor (or for every vendor) marks the file. This errs on the
    // safe side: a neutral secret this vendor has no setting for still requires proof.
    let carries_secret = eff
        .iter()
        .any(|(name, e)| e.secret && vocab::applies_to(vendor, name));
    (native, carries_secret)
}

/// The native settings of `layers`, applied in order: of two names reaching one setting the
/// later layer's wins, and a composite setting (`SIP_CONTROLLER_LIST` is server, port and
/// transport) is computed from the values of all of them, a later layer's replacing an earlier
/// one's. Shared by a device's own file ([`device_native`]) and Avaya's sections for phones
/// matching a group's and a model's section (`avaya::pair_settings`), so that such a phone
/// gets what a device of that group and model would, by one rule rather than two kept alike.
fn layered_native<'l>(
    vendor: Vendor,
    layers: impl IntoIterator<Item = &'l BTreeMap<String, String>> + Clone,
) -> Native {
    let mut all = BTreeMap::new();
    for params in layers.clone() {
        all.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut native = Native::new();
    for params in layers {
        native.extend(vocab::to_native(vendor, params, &all));
    }
    native
}

/// The device a file name is about, for per-device files.
pub fn file_device(file: &FileName) -> Option<Mac> {
    match file {
        FileName::AvayaDevice(m)
        | FileName::DeviceBoot(m)
        | FileName::DeviceCfg(m)
        | FileName::PolyDevice(m) => Some(*m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(params: &[(&str, &str)], secrets: &[(&str, &str)]) -> ParamSet {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        ParamSet {
            params: map(params),
            secrets: map(secrets),
        }
    }

    /// A shared file that names firmware per model is kept per model of its family, as the
    /// phone path adds that model's firmware; for other models, and other files, the model
    /// makes no difference.
    #[test]
    fn files_naming_firmware_per_model_are_kept_per_model() {
        let who = |model: &str| Requester {
            model: model.into(),
            ..Requester::default()
        };
        let j100 = FileName::AvayaUpgrade(name::AvayaFamily::J100);
        assert_eq!(requester_part(&j100, &who("j179")), "J179");
        assert_eq!(requester_part(&j100, &who("K175")), "");
        assert_eq!(
            requester_part(&FileName::YealinkCommon(66), &who("T46S")),
            "T46S"
        );
        assert_eq!(
            requester_part(&FileName::YealinkCommon(66), &who("T48S")),
            ""
        );
        assert_eq!(requester_part(&FileName::AvayaSettings, &who("J179")), "");
    }

    /// `ENABLE_X` and `avaya:enable_x` are one Avaya setting (the phone upper-cases names):
    /// a later layer's value wins whichever spelling each layer used, in the shared file and
    /// in the device's own, each of which sets it once.
    #[test]
    fn a_later_layer_wins_over_another_spelling_of_the_name() {
        use crate::model::{Device, Layer};
        use crate::settings::{Vars, evaluate};
        let run = |name: &str, bytes: &[u8]| {
            let eval = evaluate(name, &Vars::new(), |n: &str| {
                (n == name).then(|| bytes.to_vec())
            });
            eval.get("ENABLE_X").map(str::to_string)
        };
        let layers = CommonLayers {
            global: set(&[("avaya:enable_x", "global")], &[]),
            site: Some(set(&[("ENABLE_X", "site")], &[])),
            ..CommonLayers::default()
        };
        let common = Common::from_layers(&layers, false);
        let file = render_common(&FileName::AvayaSettings, &common, &Requester::default())
            .map(|r| r.bytes)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&file);
        assert_eq!(
            run("46xxsettings.txt", &file).as_deref(),
            Some("site"),
            "{text}"
        );
        assert_eq!(
            text.to_ascii_uppercase().matches("SET ENABLE_X").count(),
            1,
            "{text}"
        );

        let mut device = Device::new(Mac::from_octets([0, 1, 2, 3, 4, 5]));
        device.model = "J179".into();
        device.params.insert("ENABLE_X".into(), "device".into());
        let ctx = DeviceContext {
            device,
            site: None,
            layers: vec![(Layer::Global, set(&[("avaya:enable_x", "global")], &[]))],
        };
        let file = FileName::AvayaDevice(ctx.device.mac);
        let own = render_device(&file, &ctx, &common, &Requester::default())
            .map(|r| r.bytes)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&own);
        assert_eq!(
            run("000102030405.txt", &own).as_deref(),
            Some("device"),
            "{text}"
        );
        assert_eq!(
            text.to_ascii_uppercase().matches("SET ENABLE_X").count(),
            1,
            "{text}"
        );
    }

    /// A setting secret at one layer stays secret in every spelling of its name: a plain
    /// `avaya:SIP_TOKEN`, `AVAYA:sip_token` or `Sip_Token` reaches the same Avaya setting as a
    /// secret `SIP_TOKEN` (the phone upper-cases names), and `YEALINK:wifi.key` the same as a
    /// secret `yealink:wifi.key`: no common file carries their values.
    #[test]
    fn a_secret_stays_out_of_common_files_in_every_spelling_of_its_name() {
        let layers = CommonLayers {
            global: set(
                &[("SIPDOMAIN", "example.com")],
                &[("SIP_TOKEN", "g"), ("yealink:wifi.key", "w")],
            ),
            site: Some(set(
                &[
                    ("avaya:SIP_TOKEN", "site-token"),
                    ("YEALINK:wifi.key", "site-wifi"),
                ],
                &[],
            )),
            groups: vec![("2".into(), set(&[("AVAYA:sip_token", "group-token")], &[]))],
            models: vec![("J179".into(), set(&[("Sip_Token", "model-token")], &[]))],
        };
        let common = Common::from_layers(&layers, false);
        let avaya = render_common(&FileName::AvayaSettings, &common, &Requester::default())
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .unwrap_or_default();
        assert!(avaya.contains("SET SIPDOMAIN example.com"), "{avaya}");
        assert!(!avaya.to_ascii_lowercase().contains("token"), "{avaya}");
        let yealink = render_common(&FileName::YealinkCommon(66), &common, &Requester::default())
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .unwrap_or_default();
        assert!(yealink.starts_with("#!version"), "{yealink}");
        assert!(!yealink.contains("wifi"), "{yealink}");
    }

    /// A key, a token, a community or a URL's login set as a plain global parameter went into
    /// the Yealink and Poly common files, which every phone may fetch; they stay out of them
    /// now and reach the device's own file, which then needs the device's proof. A key button
    /// and a URL without a login stay common.
    #[test]
    fn keys_tokens_and_url_logins_stay_out_of_common_files() {
        use crate::model::{Device, Layer};
        let global = set(
            &[
                ("yealink:static.auto_provision.aes_key_16.com", "aes-4711"),
                ("yealink:static.snmp.community", "snmp-4711"),
                (
                    "yealink:static.auto_provision.server.url",
                    "https://prov:url-4711@host/",
                ),
                ("yealink:linekey.1.type", "15"),
                ("poly:device.sec.configEncryption.key", "poly-4711"),
                (
                    "poly:device.prov.serverName",
                    "ftp://PlcmSpIp:poly-url-4711@host",
                ),
                ("poly:softkey.1.label", "Park"),
                ("poly:device.sntp.serverName", "https://time.example/"),
            ],
            &[],
        );
        let layers = CommonLayers {
            global: global.clone(),
            ..CommonLayers::default()
        };
        let common = Common::from_layers(&layers, false);
        let shared = |file: FileName| {
            render_common(&file, &common, &Requester::default())
                .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
                .unwrap_or_default()
        };
        let (yealink, poly) = (
            shared(FileName::YealinkCommon(66)),
            shared(FileName::PolyCommon),
        );
        assert!(yealink.contains("linekey.1.type = 15"), "{yealink}");
        assert!(poly.contains("softkey.1.label=\"Park\""), "{poly}");
        assert!(poly.contains("https://time.example/"), "{poly}");
        for text in [&yealink, &poly] {
            assert!(!text.contains("4711"), "{text}");
        }
        for (model, found) in [("T46S", "aes-4711"), ("VVX450", "poly-url-4711")] {
            let mut device = Device::new(Mac::from_octets([0, 1, 2, 3, 4, 5]));
            device.model = model.into();
            let ctx = DeviceContext {
                device,
                site: None,
                layers: vec![(Layer::Global, global.clone())],
            };
            let file = FileName::DeviceCfg(ctx.device.mac);
            let vendor_file = match model {
                "T46S" => file,
                _ => FileName::PolyDevice(ctx.device.mac),
            };
            let own = render_device(&vendor_file, &ctx, &common, &Requester::default())
                .expect("the device's own file");
            assert!(own.carries_secret, "{model}");
            let text = String::from_utf8_lossy(&own.bytes);
            assert!(text.contains(found), "{model}: {text}");
        }
    }

    /// A neutral name and a native one can reach the same phone setting (`sip.domain` and
    /// `avaya:SIPDOMAIN`, `sip.server` and `yealink:account.1.sip_server.1.address`): in a
    /// device's own file the later layer's value wins, whichever of the two names it used,
    /// not whichever name sorts last.
    #[test]
    fn a_later_layer_wins_over_a_neutral_or_native_name_for_the_same_setting() {
        use crate::model::{Device, Layer};
        let ctx = |global: &[(&str, &str)], device: &[(&str, &str)], model: &str| {
            let mut d = Device::new(Mac::from_octets([0, 1, 2, 3, 4, 5]));
            d.model = model.into();
            d.params = set(device, &[]).params;
            DeviceContext {
                device: d,
                site: None,
                layers: vec![(Layer::Global, set(global, &[]))],
            }
        };
        let avaya = |global: &[(&str, &str)], device: &[(&str, &str)]| {
            device_native(Vendor::Avaya, &ctx(global, device, "J179")).0
        };
        for (global, device) in [
            (
                ("sip.domain", "global.example"),
                ("avaya:SIPDOMAIN", "device.example"),
            ),
            (
                ("sip.domain", "global.example"),
                ("SIPDOMAIN", "device.example"),
            ),
            (
                ("SIPDOMAIN", "global.example"),
                ("sip.domain", "device.example"),
            ),
            (
                ("avaya:SIPDOMAIN", "global.example"),
                ("sip.domain", "device.example"),
            ),
        ] {
            let native = avaya(&[global], &[device]);
            assert_eq!(
                native.get("SIPDOMAIN").map(String::as_str),
                Some("device.example"),
                "global {global:?}, device {device:?}"
            );
        }
        let address = "account.1.sip_server.1.address";
        for (global, device) in [
            (
                (format!("yealink:{address}"), "old.example"),
                ("sip.server".to_string(), "new.example"),
            ),
            (
                ("sip.server".to_string(), "old.example"),
                (format!("yealink:{address}"), "new.example"),
            ),
        ] {
            let ctx = ctx(&[(&global.0, global.1)], &[(&device.0, device.1)], "T46S");
            let file = render_device(
                &FileName::DeviceCfg(ctx.device.mac),
                &ctx,
                &Common::default(),
                &Requester::default(),
            )
            .map(|r| r.bytes)
            .unwrap_or_default();
            assert_eq!(
                yealink::parse_cfg(&file).get(address).map(String::as_str),
                Some("new.example"),
                "global {global:?}, device {device:?}: {}",
                String::from_utf8_lossy(&file)
            );
        }
    }

    /// `firmware.file` reached no Poly file at any layer: the master file's `APP_FILE_PATH`
    /// named the policy's image or `sip.ld` whatever it said. A phone of the inventory now
    /// gets its effective `firmware.file` (any layer, its own included) in its own master file,
    /// over the policy's image; the shared master file, read by every model, the site's or the
    /// global one's. A file name is this server's `/firmware/{file}`, a URL is kept.
    #[test]
    fn firmware_file_reaches_polys_master_files() {
        use crate::model::{Device, Layer};
        let app = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let path = text
                .split("APP_FILE_PATH=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_string);
            (path, text)
        };
        let base = "https://box:443/firmware/";
        let mut device = Device::new(Mac::from_octets([0, 4, 0xf2, 1, 2, 3]));
        device.model = "VVX450".into();
        let mut ctx = DeviceContext {
            device,
            site: None,
            layers: vec![
                (Layer::Global, set(&[("firmware.file", "global.ld")], &[])),
                (
                    Layer::Model("VVX450".into()),
                    set(&[("firmware.file", "model.ld")], &[]),
                ),
            ],
        };
        let common = Common {
            global: set(&[("firmware.file", "global.ld")], &[]).params,
            firmware: BTreeMap::from([("VVX450".to_string(), "policy.ld".to_string())]),
            firmware_base: base.into(),
            ..Common::default()
        };
        let own = |ctx: &DeviceContext| {
            let file = FileName::DeviceCfg(ctx.device.mac);
            app(&render_device(&file, ctx, &common, &Requester::default())
                .map(|r| r.bytes)
                .unwrap_or_default())
        };
        let (path, text) = own(&ctx);
        assert_eq!(
            path.as_deref(),
            Some("https://box:443/firmware/model.ld"),
            "{text}"
        );
        ctx.device
            .params
            .insert("firmware.file".into(), "https://elsewhere/x.ld".into());
        let (path, text) = own(&ctx);
        assert_eq!(path.as_deref(), Some("https://elsewhere/x.ld"), "{text}");
        ctx.device.params.clear();
        ctx.layers.clear();
        let (path, text) = own(&ctx);
        assert_eq!(
            path.as_deref(),
            Some("https://box:443/firmware/policy.ld"),
            "{text}"
        );

        let shared = render_common(&FileName::PolyMaster, &common, &Requester::default())
            .map(|r| r.bytes)
            .unwrap_or_default();
        let (path, text) = app(&shared);
        assert_eq!(
            path.as_deref(),
            Some("https://box:443/firmware/global.ld"),
            "{text}"
        );
        let none = render_common(
            &FileName::PolyMaster,
            &Common::default(),
            &Requester::default(),
        )
        .map(|r| r.bytes)
        .unwrap_or_default();
        assert_eq!(app(&none).0.as_deref(), Some("sip.ld"));
    }

    /// A name declared secret at one layer and set as a plain parameter at another is still a
    /// secret: no common file of any vendor carries either value.
    #[test]
    fn a_name_secret_at_one_layer_stays_out_of_common_files() {
        let layers = CommonLayers {
            global: set(&[("SIPDOMAIN", "example.com")], &[("avaya:SIP_TOKEN", "g")]),
            site: Some(set(
                &[
                    ("avaya:SIP_TOKEN", "site-token"),
                    ("yealink:wifi.key", "w1"),
                ],
                &[],
            )),
            groups: vec![("2".into(), set(&[("avaya:SIP_TOKEN", "group-token")], &[]))],
            models: vec![("T46S".into(), set(&[], &[("yealink:wifi.key", "w2")]))],
        };
        let common = Common::from_layers(&layers, false);
        let avaya = render_common(&FileName::AvayaSettings, &common, &Requester::default())
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .unwrap_or_default();
        assert!(avaya.contains("SET SIPDOMAIN example.com"), "{avaya}");
        assert!(!avaya.contains("token"), "{avaya}");
        let yealink = render_common(&FileName::YealinkCommon(66), &common, &Requester::default())
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .unwrap_or_default();
        assert!(yealink.starts_with("#!version"), "{yealink}");
        assert!(!yealink.contains("wifi.key"), "{yealink}");
    }
}
