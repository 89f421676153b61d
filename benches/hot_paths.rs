//! The pure functions on the phone request path, and the settings-script engine, timed with
//! criterion. Goals (docs/performance.md): a per-device file from 50 parameters over 5 layers
//! under 20 µs; parsing and evaluating a 1 MB settings template under 10 ms.
//!
//! `cargo bench --bench hot_paths`; `cargo bench --no-run` only checks that they build.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use edgeprov::model::{Device, DeviceState, Layer, Mac, ParamSet, Site};
use edgeprov::phone::authorize::{Proof, Target, authorize};
use edgeprov::phone::identify::{mac_from_path, parse_user_agent};
use edgeprov::settings::render::{Common, FileName, Requester, render_device};
use edgeprov::settings::{Script, Vars, evaluate};
use edgeprov::store::DeviceContext;

const AGENTS: [&str; 3] = [
    "Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:c81fea83e85a)",
    "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37",
    "FileTransport PolycomVVX-VVX_400-UA/4.1.4.7430 Type/Application",
];

fn identification(c: &mut Criterion) {
    for (name, ua) in ["avaya", "yealink", "poly"].into_iter().zip(AGENTS) {
        c.bench_function(&format!("parse_user_agent/{name}"), |b| {
            b.iter(|| parse_user_agent(black_box(ua)))
        });
    }
    let device = vec!["c81fea9b650d.txt".to_string()];
    let nested = vec!["c81fea9b650d".to_string(), "46xxsettings.txt".to_string()];
    let common = vec!["46xxsettings.txt".to_string()];
    c.bench_function("mac_from_path/device_file", |b| {
        b.iter(|| mac_from_path(black_box(&device)))
    });
    c.bench_function("mac_from_path/macaddr_dir", |b| {
        b.iter(|| mac_from_path(black_box(&nested)))
    });
    c.bench_function("mac_from_path/common_file", |b| {
        b.iter(|| mac_from_path(black_box(&common)))
    });
}

fn authorisation(c: &mut Criterion) {
    let mac = Mac::from_octets([0xc8, 0x1f, 0xea, 0x9b, 0x65, 0x0d]);
    let other = Mac::from_octets([0xc8, 0x1f, 0xea, 0x9b, 0x65, 0x0e]);
    let target = Target {
        device: mac,
        state: DeviceState::Active,
        associated_here: false,
        carries_secret: true,
    };
    c.bench_function("authorize/own_certificate", |b| {
        b.iter(|| authorize(black_box(&target), black_box(Proof::Certificate(mac))))
    });
    c.bench_function("authorize/other_certificate", |b| {
        b.iter(|| authorize(black_box(&target), black_box(Proof::Certificate(other))))
    });
}

fn params(layer: &str, n: usize, secrets: usize) -> ParamSet {
    let mut set = ParamSet::default();
    for i in 0..n {
        let value = format!("{layer} value {i}");
        if i < secrets {
            set.secrets.insert(format!("{layer}_SECRET_{i}"), value);
        } else {
            // Every other name is shared, so later layers really replace earlier ones.
            let name = if i % 2 == 0 {
                format!("SHARED_{i}")
            } else {
                format!("{layer}_PARAM_{i}")
            };
            set.params.insert(name, value);
        }
    }
    set
}

/// 50 parameters over 5 layers (global, site, group, model, device), 2 of them secret.
fn context() -> DeviceContext {
    let mut device = Device::new(Mac::from_octets([0xc8, 0x1f, 0xea, 0x9b, 0x65, 0x0d]));
    device.model = "J179".into();
    device.site = "hq".into();
    device.group = "sales".into();
    let own = params("DEVICE", 10, 2);
    device.params = own.params;
    device.secrets = own.secrets;
    DeviceContext {
        device,
        site: Some(Site {
            name: "hq".into(),
            label: String::new(),
            allow_http_auth: false,
            profile: None,
        }),
        layers: vec![
            (Layer::Global, params("GLOBAL", 10, 0)),
            (Layer::Site("hq".into()), params("SITE", 10, 0)),
            (Layer::Group("sales".into()), params("GROUP", 10, 0)),
            (Layer::Model("J179".into()), params("MODEL", 10, 0)),
        ],
    }
}

fn rendering(c: &mut Criterion) {
    let ctx = context();
    let file = FileName::AvayaDevice(ctx.device.mac);
    let (common, who) = (Common::default(), Requester::default());
    c.bench_function("render_device/avaya_txt/50_params_5_layers", |b| {
        b.iter(|| render_device(&file, black_box(&ctx), &common, &who))
    });
}

/// A settings file shaped like the official 1 MB template: mostly `##` commentary, a block of
/// settings per model reached through `IF $MODEL4 SEQ … GOTO`, and a common block at the end.
fn template() -> Vec<u8> {
    let models = [
        "J129", "J139", "J159", "J169", "J179", "J189", "K155", "K165", "K175",
    ];
    let mut out = String::from("## 46xxsettings.txt (synthetic template)\n");
    for m in models {
        out.push_str(&format!("IF $MODEL4 SEQ {m} GOTO {m}\n"));
    }
    out.push_str("GOTO COMMON\n");
    let mut block = 0;
    while out.len() < 1_000_000 {
        let m = models[block % models.len()];
        out.push_str(&format!(
            "# {m}{}\n",
            if block < models.len() { "" } else { "_MORE" }
        ));
        for i in 0..40 {
            out.push_str(&format!(
                "## SETTING_{block}_{i} controls something on the {m}; values 0 to 9, default 1.\n\
                 ##   Changing it affects every phone of this model at the next boot.\n\
                 ## SET SETTING_{block}_{i} 1\n"
            ));
            out.push_str(&format!("SET SETTING_{block}_{i} \"value {i} for {m}\"\n"));
        }
        out.push_str("GOTO COMMON\n");
        block += 1;
    }
    out.push_str("# COMMON\nSET SIPDOMAIN example.com\nGET $MACADDR.txt\n");
    out.into_bytes()
}

fn settings_script(c: &mut Criterion) {
    let src = template();
    let mut group = c.benchmark_group("settings_1MB");
    group.sample_size(20);
    group.bench_function("Script::parse", |b| {
        b.iter(|| Script::parse(black_box(&src)))
    });
    let vars = Vars::new()
        .with("MODEL4", "J179")
        .with("MACADDR", "c81fea9b650d");
    group.bench_function("parse+evaluate", |b| {
        b.iter(|| {
            evaluate("46xxsettings.txt", black_box(&vars), |name: &str| {
                (name == "46xxsettings.txt").then(|| src.clone())
            })
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    identification,
    authorisation,
    rendering,
    settings_script
);
criterion_main!(benches);
