//! Property: generated files, read back the way the phone reads them, give exactly the
//! parameters that produced them, with the layer order global → site → group → model → device.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::name::FileName;
use super::{Common, Requester, avaya, poly, render_common, render_device, yealink};
use crate::model::{Device, Layer, Mac, ParamSet, Vendor};
use crate::settings::vocab::Native;
use crate::settings::{Vars, evaluate};
use crate::store::DeviceContext;

const MAC: Mac = Mac::from_octets([0x02, 0, 0, 0, 0, 0x42]);

fn value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:;/-][A-Za-z0-9 ._:;/-]{0,10}[A-Za-z0-9._-]"
}

/// Up to five native names per vendor, set at random layers (0 global … 4 device).
fn layered(
    prefix: &'static str,
    upper: bool,
) -> impl Strategy<Value = Vec<(usize, String, String)>> {
    let name = if upper {
        "[A-Z][A-Z0-9_]{0,5}"
    } else {
        "[a-z]{1,4}\\.[a-z0-9_]{1,4}"
    };
    prop::collection::vec((0usize..5, name, value()), 0..12).prop_map(move |v| {
        v.into_iter()
            .map(|(layer, n, val)| (layer, format!("{prefix}:{n}"), val))
            .collect()
    })
}

fn context(
    model: &str,
    entries: &[(usize, String, String)],
) -> (
    DeviceContext,
    Common,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
) {
    let mut sets: Vec<ParamSet> = vec![ParamSet::default(); 5];
    for (layer, name, val) in entries {
        sets[*layer].params.insert(name.clone(), val.clone());
    }
    let mut device = Device::new(MAC);
    device.model = model.into();
    device.site = "hq".into();
    device.group = "7".into();
    device.params = sets[4].params.clone();
    let layers = vec![
        (Layer::Global, sets[0].clone()),
        (Layer::Site("hq".into()), sets[1].clone()),
        (Layer::Group("7".into()), sets[2].clone()),
        (Layer::Model(model.into()), sets[3].clone()),
    ];
    let common = Common {
        global: sets[0].params.clone(),
        site: sets[1].params.clone(),
        groups: vec![
            ("7".into(), sets[2].params.clone()),
            (
                "8".into(),
                BTreeMap::from([("avaya:OTHER".into(), "x".into())]),
            ),
        ],
        models: vec![(model.into(), sets[3].params.clone())],
        specials: false,
        firmware: BTreeMap::new(),
        firmware_base: String::new(),
        scep_url: String::new(),
    };
    // The oracle: a plain fold over the layers, native prefix removed.
    let fold = |upto: usize| {
        let mut m = BTreeMap::new();
        for set in &sets[..upto] {
            for (k, v) in &set.params {
                m.insert(k.split_once(':').unwrap().1.to_string(), v.clone());
            }
        }
        m
    };
    let ctx = DeviceContext {
        device,
        site: None,
        layers,
    };
    (ctx, common, fold(4), fold(5))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn avaya_chain_evaluates_to_the_layers(entries in layered("avaya", true)) {
        let (ctx, common, shared, all) = context("J179", &entries);
        let who = Requester::default();
        let settings = render_common(&FileName::AvayaSettings, &common, &who).unwrap().bytes;
        let device = render_device(&FileName::AvayaDevice(MAC), &ctx, &common, &who).unwrap().bytes;
        let vars = Vars::new().with("MODEL4", "J179").with("GROUP", "7").with("MACADDR", MAC.to_string());
        let got = |with_device: bool| {
            let eval = evaluate("46xxsettings.txt", &vars, |n: &str| match n {
                "46xxsettings.txt" => Some(settings.clone()),
                n if with_device && n == format!("{MAC}.txt") => Some(device.clone()),
                _ => None,
            });
            eval.settings.into_iter().map(|s| (s.name, s.value)).collect::<BTreeMap<_, _>>()
        };
        prop_assert_eq!(got(false), shared, "the common file alone: global, site, group 7, J179");
        prop_assert_eq!(got(true), all, "with the per-device file: every layer");
    }

    #[test]
    fn yealink_files_read_back_to_the_layers(entries in layered("yealink", false)) {
        let (ctx, common, _, all) = context("T46S", &entries);
        let who = Requester { vendor: Some(Vendor::Yealink), model: "T46S".into(), firmware: "66.86.0.15".into() };
        let cfg = render_device(&FileName::DeviceCfg(MAC), &ctx, &common, &who).unwrap().bytes;
        prop_assert_eq!(yealink::parse_cfg(&cfg), all);
        let common_cfg = render_common(&FileName::YealinkCommon(66), &common, &who).unwrap().bytes;
        // Groups and models reach phones through their own file (the family file is shared by
        // every model of the family): the common file holds global and site.
        let mut expect = BTreeMap::new();
        for l in [0usize, 1] {
            for (layer, name, val) in &entries {
                if *layer == l {
                    expect.insert(name.split_once(':').unwrap().1.to_string(), val.clone());
                }
            }
        }
        prop_assert_eq!(yealink::parse_cfg(&common_cfg), expect);
    }

    #[test]
    fn poly_files_read_back_to_the_layers(entries in layered("poly", false)) {
        let (ctx, common, _, all) = context("VVX_400", &entries);
        let who = Requester::default();
        let file = render_device(&FileName::PolyDevice(MAC), &ctx, &common, &who).unwrap().bytes;
        prop_assert_eq!(poly::parse_params(&file), all);
    }

    /// Whatever a stored value holds, a device's file has one line per setting: a value can
    /// never add a line (a setting of its own) to a phone's file, in any vendor's format.
    #[test]
    fn no_value_adds_a_line_to_a_file(
        value in prop::collection::vec(
            prop_oneof![any::<char>(), Just('\n'), Just('\r'), Just('"'), Just('\u{85}')],
            0..24,
        ).prop_map(String::from_iter)
    ) {
        let line_ends = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
        let one = |v: &str| Native::from([("name.x".to_string(), v.to_string())]);
        let files = |v: &str| [
            avaya::device_file(MAC, &one(v), false),
            yealink::cfg(&one(v), "T46S", &Common::default()),
            poly::params_file(&one(v)),
        ];
        for (file, plain) in files(&value).iter().zip(files("x").iter()) {
            prop_assert_eq!(line_ends(file), line_ends(plain), "{}", String::from_utf8_lossy(file));
        }
    }
}
