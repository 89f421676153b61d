//! End to end: phones of three vendors, identified by User-Agent and client certificate, fetch
//! their boot sequence from the running daemon, and each file is right.

mod common;

use common::*;
use serde_json::json;

const AVAYA: &str = "c81fea83e85a";
const YEALINK: &str = "001565aaa937";
const POLY: &str = "0004f2123456";

async fn site() -> Daemon {
    let d = Daemon::start();
    let (s, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(s, 201, "{v}");
    let patch = |layer: &str, body: serde_json::Value| {
        let d = &d;
        let layer = layer.to_string();
        async move {
            let (s, v) = d
                .api("PATCH", &format!("/params/{layer}"), Some(body))
                .await;
            assert_eq!(s, 200, "{v}");
        }
    };
    patch("global", json!({"params": {"sip.server": "pbx.example.com", "sip.transport": "tls", "ntp.server": "10.0.0.1"},
                            "secrets": {"admin.password": "2580"}})).await;
    patch(
        "site:hq",
        json!({"params": {"language": "de_DE", "sip.domain": "hq.example.com"}}),
    )
    .await;
    patch("group:2", json!({"params": {"avaya:ENABLE_OPUS": "1"}})).await;
    patch(
        "model:J179",
        json!({"params": {"firmware.file": "FW_S_J179_R4_1_3_0_6.bin", "avaya:ENABLE_OPUS": "0"}}),
    )
    .await;
    patch(
        "model:T46S",
        json!({"params": {"yealink:features.dnd.enable": "1"}}),
    )
    .await;
    d.add_device(
        json!({"mac": AVAYA, "model": "J179", "site": "hq", "group": "2",
        "params": {"line.1.user": "201", "line.1.display_name": "Front desk"},
        "secrets": {"line.1.password": "pw-avaya"}}),
    )
    .await;
    d.add_device(json!({"mac": YEALINK, "model": "T46S", "site": "hq",
        "params": {"line.1.user": "202"}, "secrets": {"line.1.password": "pw-yealink"}}))
        .await;
    d.add_device(json!({"mac": POLY, "model": "VVX_400", "site": "hq",
        "params": {"line.1.user": "203"}, "secrets": {"line.1.password": "pw-poly"}}))
        .await;
    d
}

async fn fetch(d: &Daemon, id: &Identity, path: &str, ua: &str) -> Resp {
    send(d.https, client_config(&d.ca_pem(), Some(id)), get(path, ua))
        .await
        .unwrap()
}

#[tokio::test]
async fn avaya_yealink_and_poly_boot() {
    let d = site().await;

    // Avaya J179: upgrade script → 46xxsettings.txt → its own file.
    let ua = format!("Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:{AVAYA})");
    let id = d.identity(AVAYA).await;
    let up = fetch(&d, &id, "/J100Supgrade.txt", &ua).await;
    assert_eq!(up.status, 200);
    let up = up.text();
    assert!(up.contains("IF $MODEL4 SEQ J179 GOTO APP_J179"), "{up}");
    assert!(up.contains("SET APPNAME FW_S_J179_R4_1_3_0_6.bin"));
    assert_eq!(up.lines().last(), Some("GET 46xxsettings.txt"));
    let settings = fetch(&d, &id, "/46xxsettings.txt", &ua).await.text();
    assert!(
        settings.contains("SET SIP_CONTROLLER_LIST pbx.example.com:5061;transport=tls"),
        "{settings}"
    );
    assert!(
        settings.contains("SET SIPDOMAIN hq.example.com"),
        "site layer for a phone of site hq"
    );
    assert!(settings.contains("IF $GROUP SEQ 2 GOTO GROUP_2"));
    assert!(settings.contains("IF $MODEL4 SEQ J179 GOTO MODEL_J179"));
    assert!(settings.contains("GET $MACADDR.txt"));
    assert!(
        !settings.contains("2580"),
        "a secret never goes into a common file"
    );
    let own = fetch(&d, &id, &format!("/{AVAYA}.txt"), &ua).await;
    assert_eq!(own.status, 200);
    let own = own.text();
    for line in [
        "SET FORCE_SIP_PASSWORD pw-avaya",
        "SET FORCE_SIP_EXTENSION 201",
        "SET DISPLAY_NAME \"Front desk\"",
        "SET ADMIN_PASSWORD 2580",
        "SET ENABLE_OPUS 0",
    ] {
        assert!(own.contains(line), "{line} in\n{own}");
    }

    // Yealink T46S: boot file → common cfg of its family (66) → its own cfg.
    let ua = "Yealink SIP-T46S 66.86.0.15 00:15:65:aa:a9:37";
    let id = d.identity(YEALINK).await;
    let boot = fetch(&d, &id, "/y000000000000.boot", ua).await.text();
    assert!(boot.starts_with("#!version:1.0.0.1\n"));
    assert!(
        boot.contains("include:config \"y000000000066.cfg\""),
        "{boot}"
    );
    assert!(boot.contains("include:config \"$mac.cfg\""));
    let common = fetch(&d, &id, "/y000000000066.cfg", ua).await.text();
    assert!(
        common.contains("account.1.sip_server.1.address = pbx.example.com"),
        "{common}"
    );
    assert!(common.contains("account.1.sip_server.1.transport_type = 2"));
    assert!(common.contains("lang.gui = German"));
    assert!(
        !common.contains("features.dnd.enable"),
        "the family file is read by every model of the family: no model layer in it"
    );
    assert!(!common.contains("2580"));
    let cfg = fetch(&d, &id, &format!("/{YEALINK}.cfg"), ua).await;
    assert_eq!(cfg.status, 200);
    let cfg = cfg.text();
    assert!(cfg.contains("account.1.password = pw-yealink"), "{cfg}");
    assert!(
        cfg.contains("features.dnd.enable = 1"),
        "model layer in its own file"
    );
    assert!(cfg.contains("account.1.user_name = 202"));
    assert!(cfg.contains("static.security.user_password = admin:2580"));

    // Poly VVX 400 (its agent carries no MAC: the certificate says who it is).
    let ua = "FileTransport PolycomVVX-VVX_400-UA/4.1.4.7430 Type/Application";
    let id = d.identity(POLY).await;
    let master = fetch(&d, &id, "/000000000000.cfg", ua).await.text();
    assert!(
        master.contains("CONFIG_FILES=\"[PHONE_MAC_ADDRESS]-phone.cfg, edgeprov-common.cfg\""),
        "{master}"
    );
    let common = fetch(&d, &id, "/edgeprov-common.cfg", ua).await.text();
    assert!(
        common.contains("reg.1.server.1.transport=\"TLS\""),
        "{common}"
    );
    let own = fetch(&d, &id, &format!("/{POLY}-phone.cfg"), ua).await;
    assert_eq!(own.status, 200);
    assert!(
        own.text().contains("reg.1.auth.password=\"pw-poly\""),
        "{}",
        own.text()
    );

    // Each phone's own file is refused to the others.
    let r = fetch(&d, &id, &format!("/{YEALINK}.cfg"), ua).await;
    assert_eq!(r.status, 403);
    let r = send_plain(d.http.unwrap(), get(&format!("/{POLY}-phone.cfg"), ua))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}

/// A Yealink family with a three-digit number (a T46U's is 108): a phone that is not in
/// the inventory still gets its family's common file, named with twelve digits, from the boot
/// file and by name.
#[tokio::test]
async fn a_three_digit_yealink_family_gets_its_common_file() {
    let d = site().await;
    let ua = "Yealink SIP-T46U 108.86.0.45 00:15:65:bb:cc:01";
    let anonymous = client_config(&d.ca_pem(), None);
    let boot = send(d.https, anonymous.clone(), get("/y000000000000.boot", ua))
        .await
        .unwrap();
    assert_eq!(boot.status, 200);
    let boot = boot.text();
    assert!(
        boot.contains("include:config \"y000000000108.cfg\"\n"),
        "{boot}"
    );
    let common = send(d.https, anonymous, get("/y000000000108.cfg", ua))
        .await
        .unwrap();
    assert_eq!(common.status, 200);
    let common = common.text();
    assert!(
        common.contains("account.1.sip_server.1.address = pbx.example.com"),
        "{common}"
    );
    assert!(!common.contains("2580"), "{common}");

    // The model names the common file when the table knows it: a T48S runs the T4xS firmware
    // 66 but reads y000000000065.cfg.
    // So does a T31P, which runs the T3x firmware 124 but reads y000000000123.cfg.
    for (ua, family) in [
        (
            "Yealink SIP-T48S 66.86.0.15 00:15:65:bb:cc:02",
            "y000000000065.cfg",
        ),
        (
            "Yealink SIP-T31P 124.86.0.40 00:15:65:bb:cc:03",
            "y000000000123.cfg",
        ),
        // The T44U and T44W read files of their own whatever firmware they run (the version
        // here only shows that its first number does not decide).
        (
            "Yealink SIP-T44U 108.87.0.10 00:15:65:bb:cc:04",
            "y000000000173.cfg",
        ),
        (
            "Yealink SIP-T44W 108.87.0.10 00:15:65:bb:cc:05",
            "y000000000174.cfg",
        ),
        (
            "Yealink SIP-T21P_E2 52.84.0.15 00:15:65:bb:cc:06",
            "y000000000052.cfg",
        ),
    ] {
        let boot = send(
            d.https,
            client_config(&d.ca_pem(), None),
            get("/y000000000000.boot", ua),
        )
        .await
        .unwrap()
        .text();
        assert!(
            boot.contains(&format!("include:config \"{family}\"\n")),
            "{boot}"
        );
    }

    // A T44U of the inventory is told its family file in its own boot file, and gets it.
    let t44u = "001565bbcc07";
    d.add_device(json!({"mac": t44u, "model": "SIP-T44U", "site": "hq"}))
        .await;
    let id = d.identity(t44u).await;
    let ua = "Yealink SIP-T44U 108.87.0.10 00:15:65:bb:cc:07";
    let boot = fetch(&d, &id, &format!("/{t44u}.boot"), ua).await;
    assert_eq!(boot.status, 200, "{}", boot.text());
    assert!(
        boot.text()
            .contains("include:config \"y000000000173.cfg\"\n"),
        "{}",
        boot.text()
    );
    let common = fetch(&d, &id, "/y000000000173.cfg", ua).await;
    assert_eq!(common.status, 200, "{}", common.text());
    assert!(
        common
            .text()
            .contains("account.1.sip_server.1.address = pbx.example.com"),
        "{}",
        common.text()
    );
}

/// A T53 and a T53W read the same family file (`y000000000095.cfg`): a `model:T53W` layer must
/// not reach the T53 through it, and reaches a T53W of the inventory through its own file.
#[tokio::test]
async fn a_model_layer_reaches_only_that_model() {
    let d = site().await;
    let (s, v) = d
        .api(
            "PATCH",
            "/params/model:T53W",
            Some(json!({"params": {"yealink:features.only_t53w": "1"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let t53w = "001565aaa953";
    d.add_device(json!({"mac": t53w, "model": "T53W", "site": "hq"}))
        .await;
    let ua = "Yealink SIP-T53 95.86.0.45 00:15:65:bb:cc:53";
    let common = send(
        d.https,
        client_config(&d.ca_pem(), None),
        get("/y000000000095.cfg", ua),
    )
    .await
    .unwrap();
    assert_eq!(common.status, 200);
    let common = common.text();
    assert!(!common.contains("only_t53w"), "{common}");
    let ua = "Yealink SIP-T53W 95.86.0.45 00:15:65:aa:a9:53";
    let id = d.identity(t53w).await;
    let own = fetch(&d, &id, &format!("/{t53w}.cfg"), ua).await;
    assert_eq!(own.status, 200);
    assert!(
        own.text().contains("features.only_t53w = 1"),
        "{}",
        own.text()
    );
}

/// A firmware release of `models` through the admin API (its image is never fetched here).
async fn add_release(d: &Daemon, file: &str, models: &[&str], version: &str) {
    let (s, v) = d
        .api(
            "POST",
            "/firmware/releases",
            Some(json!({"file": file, "models": models, "version": version,
                        "sha256": "ab".repeat(32)})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

/// Models of one Yealink family read one common file, but each runs what its own policy says:
/// the family file names an image only while the policies give every model of the family the
/// same one, and a phone of the inventory gets its own model's in its `{mac}.cfg`.
#[tokio::test]
async fn each_yealink_model_gets_its_own_firmware() {
    let d = Daemon::start();
    let (t53, t53w) = ("001565aaa953", "001565aaa954");
    d.add_device(json!({"mac": t53, "model": "T53"})).await;
    d.add_device(json!({"mac": t53w, "model": "T53W"})).await;
    add_release(&d, "t5x.rom", &["T53", "T53W"], "96.86.0.45").await;
    add_release(&d, "t53w.rom", &["T53W"], "96.86.0.50").await;
    let url = |file: &str| format!("static.firmware.url = https://localhost/firmware/{file}\n");
    let ids = (d.identity(t53).await, d.identity(t53w).await);
    let files = || async {
        let ua = "Yealink SIP-T53 96.86.0.45 00:15:65:aa:a9:53";
        let family = fetch(&d, &ids.0, "/y000000000095.cfg", ua).await.text();
        let own_t53 = fetch(&d, &ids.0, &format!("/{t53}.cfg"), ua).await.text();
        let ua = "Yealink SIP-T53W 96.86.0.45 00:15:65:aa:a9:54";
        let own_t53w = fetch(&d, &ids.1, &format!("/{t53w}.cfg"), ua).await.text();
        (family, own_t53, own_t53w)
    };
    let policy = |body: serde_json::Value| async {
        let (s, v) = d.api("PUT", "/firmware/policies/global", Some(body)).await;
        assert_eq!(s, 200, "{v}");
    };

    // Latest for both: the T53W has a newer image of its own.
    let (family, own_t53, own_t53w) = files().await;
    assert!(!family.contains("firmware.url"), "{family}");
    assert!(own_t53.contains(&url("t5x.rom")), "{own_t53}");
    assert!(own_t53w.contains(&url("t53w.rom")), "{own_t53w}");

    // Both pinned to the shared image: the family file names it.
    policy(json!({"T53W": "96.86.0.45"})).await;
    let (family, own_t53, own_t53w) = files().await;
    assert!(family.contains(&url("t5x.rom")), "{family}");
    assert!(own_t53.contains(&url("t5x.rom")), "{own_t53}");
    assert!(own_t53w.contains(&url("t5x.rom")), "{own_t53w}");

    // The T53W set to off: no image reaches it, through either file.
    policy(json!({"T53W": "off"})).await;
    let (family, own_t53, own_t53w) = files().await;
    assert!(!family.contains("firmware.url"), "{family}");
    assert!(own_t53.contains(&url("t5x.rom")), "{own_t53}");
    assert!(!own_t53w.contains("firmware.url"), "{own_t53w}");
}

/// A Poly phone of the inventory is told its model's image in its own master file (`{mac}.cfg`),
/// as the policies choose it; the shared `000000000000.cfg`, read by every model, names only
/// Poly's default `sip.ld`, and so does a phone's own file once its model is set to `off`.
#[tokio::test]
async fn a_poly_phone_is_told_its_models_image() {
    let d = Daemon::start();
    let (vvx400, vvx500) = ("0004f2aaa400", "0004f2aaa500");
    d.add_device(json!({"mac": vvx400, "model": "VVX_400"}))
        .await;
    d.add_device(json!({"mac": vvx500, "model": "VVX_500"}))
        .await;
    add_release(&d, "vvx400-6.4.ld", &["VVX_400"], "6.4.3").await;
    let ua = "FileTransport PolycomVVX-VVX_400-UA/6.4.0.1 Type/Application";
    let ids = (d.identity(vvx400).await, d.identity(vvx500).await);
    let app = |text: &str| {
        let at = text.find("APP_FILE_PATH=\"").expect(text) + "APP_FILE_PATH=\"".len();
        text[at..at + text[at..].find('"').unwrap()].to_string()
    };
    let own = fetch(&d, &ids.0, &format!("/{vvx400}.cfg"), ua)
        .await
        .text();
    assert_eq!(
        app(&own),
        "https://localhost/firmware/vvx400-6.4.ld",
        "{own}"
    );
    let other = fetch(&d, &ids.1, &format!("/{vvx500}.cfg"), ua)
        .await
        .text();
    assert_eq!(app(&other), "sip.ld", "{other}");
    let shared = fetch(&d, &ids.0, "/000000000000.cfg", ua).await.text();
    assert_eq!(app(&shared), "sip.ld", "{shared}");

    let (s, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"VVX_400": "off"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let own = fetch(&d, &ids.0, &format!("/{vvx400}.cfg"), ua)
        .await
        .text();
    assert_eq!(app(&own), "sip.ld", "{own}");
}

/// The admin preview of a Yealink family file is what the phone gets, firmware URL included: a
/// phone reaches the box at the URL DHCP gives it, and the preview names firmware there.
#[tokio::test]
async fn the_preview_of_a_family_file_is_what_the_phone_gets() {
    let d = Daemon::start_with("[dhcp]\nprovisioning_url = \"https://localhost:8443/\"\n");
    d.add_device(json!({"mac": YEALINK, "model": "T46S",
        "params": {"line.1.user": "202"}, "secrets": {"line.1.password": "pw-yealink"}}))
        .await;
    add_release(&d, "t46s.rom", &["T46S"], "66.86.0.15").await;
    let ua = "Yealink SIP-T46S 66.86.0.15 00:15:65:aa:a9:37";
    let id = d.identity(YEALINK).await;
    let mut req = get("/y000000000066.cfg", ua);
    req.headers_mut()
        .insert("host", "localhost:8443".parse().unwrap());
    let served = send(d.https, client_config(&d.ca_pem(), Some(&id)), req)
        .await
        .unwrap();
    assert_eq!(served.status, 200);
    let served = served.text();
    assert!(
        served.contains("static.firmware.url = https://localhost:8443/firmware/t46s.rom"),
        "{served}"
    );
    let mut req = get(
        &format!("/api/v1/devices/{YEALINK}/files/y000000000066.cfg"),
        "curl/8",
    );
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", d.token).parse().unwrap(),
    );
    let preview = send(d.admin, client_config(&d.ca_pem(), None), req)
        .await
        .unwrap();
    assert_eq!(preview.status, 200, "{}", preview.text());
    assert_eq!(preview.text(), served);
}

/// The phone path keeps common files rendered per store generation; every change an operator
/// makes must still reach the very next request.
#[tokio::test]
async fn changes_after_a_cached_render_are_served_at_once() {
    let d = site().await;
    let ua = format!("Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:{AVAYA})");
    let id = d.identity(AVAYA).await;
    let settings = || async { fetch(&d, &id, "/46xxsettings.txt", &ua).await.text() };
    let upgrade = || async { fetch(&d, &id, "/J100Supgrade.txt", &ua).await.text() };
    let own = || async { fetch(&d, &id, &format!("/{AVAYA}.txt"), &ua).await.text() };
    for _ in 0..2 {
        assert!(settings().await.contains("SET SIPDOMAIN hq.example.com"));
        assert!(
            upgrade()
                .await
                .contains("SET APPNAME FW_S_J179_R4_1_3_0_6.bin")
        );
        assert!(!own().await.contains("46xxspecials.txt"));
    }

    // A layer: the site's, the model's.
    let (s, v) = d
        .api(
            "PATCH",
            "/params/site:hq",
            Some(json!({"params": {"sip.domain": "new.example.com"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let now = settings().await;
    assert!(now.contains("SET SIPDOMAIN new.example.com"), "{now}");
    let (s, v) = d
        .api(
            "PATCH",
            "/params/model:J179",
            Some(json!({"params": {"firmware.file": "FW_S_J179_R4_2_0_0_1.bin"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let now = upgrade().await;
    assert!(
        now.contains("SET APPNAME FW_S_J179_R4_2_0_0_1.bin"),
        "{now}"
    );
    // Another model layer differing only by case would share J179's section on phones that
    // compare `$MODEL4` without case: refused, naming the layer to use, and nothing changes.
    let (s, v) = d
        .api(
            "PATCH",
            "/params/model:j179",
            Some(json!({"params": {"firmware.file": "FW_S_J179_R4_0_0_0_1.bin"}})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("differs only by case from the existing layer model:J179"),
        "{v}"
    );
    assert_eq!(upgrade().await, now);

    // A static file: specials appear in the generated files, an override replaces one.
    let upload = |name: &str, body: &str| {
        let f = d.dir.path().join(name);
        std::fs::write(&f, body).unwrap();
        let out = d.cli(&["file", "put", name, "--from", f.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    upload("46xxspecials.txt", "SET ENABLE_OPUS 1\n");
    assert!(settings().await.contains("GET 46xxspecials.txt"));
    assert_eq!(own().await.lines().last(), Some("GET 46xxspecials.txt"));
    upload("J100Supgrade.txt", "GET 46xxsettings.txt\n");
    assert_eq!(upgrade().await, "GET 46xxsettings.txt\n");

    // The device moves to another site: it gets that site's common files at once.
    d.ensure_site("branch").await;
    let (s, v) = d
        .api(
            "PATCH",
            &format!("/devices/{AVAYA}"),
            Some(json!({"site": "branch"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let now = settings().await;
    assert!(!now.contains("SET SIPDOMAIN new.example.com"), "{now}");
    let (s, v) = d
        .api(
            "PATCH",
            "/params/site:branch",
            Some(json!({"params": {"sip.domain": "branch.example.com"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        settings()
            .await
            .contains("SET SIPDOMAIN branch.example.com")
    );
}

#[tokio::test]
async fn static_files_win_and_specials_are_fetched() {
    let d = site().await;
    let upload = |name: &str, site: Option<&str>, body: &str| {
        let dir = d.dir.path().join("upload");
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(name);
        std::fs::write(&f, body).unwrap();
        let mut args = vec!["file", "put", name, "--from", f.to_str().unwrap()];
        if let Some(s) = site {
            args.extend(["--site", s]);
        }
        let out = d.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    upload("46xxspecials.txt", None, "SET ENABLE_OPUS 1\n");
    let ua = format!("Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:{AVAYA})");
    let id = d.identity(AVAYA).await;
    let own = fetch(&d, &id, &format!("/{AVAYA}.txt"), &ua).await.text();
    assert_eq!(own.lines().last(), Some("GET 46xxspecials.txt"));
    let specials = fetch(&d, &id, "/46xxspecials.txt", &ua).await;
    assert_eq!(specials.text(), "SET ENABLE_OPUS 1\n");

    // The admin view shows exactly what the phone gets, and where each value came from.
    let (status, eff) = d
        .api("GET", &format!("/devices/{AVAYA}/effective"), None)
        .await;
    assert_eq!(status, 200, "{eff}");
    let chain: Vec<&str> = eff["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        chain,
        [
            "J100Supgrade.txt",
            "46xxsettings.txt",
            "c81fea83e85a.txt",
            "46xxspecials.txt"
        ]
    );
    let find = |name: &str| {
        eff["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    let opus = find("ENABLE_OPUS");
    assert_eq!(opus["value"], "1");
    assert_eq!(opus["file"], "46xxspecials.txt");
    assert_eq!(eff["outcome"], "completed");
    let pw = find("FORCE_SIP_PASSWORD");
    assert_eq!(pw["value"], "********", "secrets are write-only: {pw}");
    assert_eq!(pw["file"], "c81fea83e85a.txt");
    assert_eq!(pw["param"], "line.1.password");
    assert_eq!(pw["layer"], "device");
    let app = find("APPNAME");
    assert_eq!(app["layer"], "model:J179");

    // A site's static 46xxsettings.txt wins over the generated one, for that site only.
    upload(
        "46xxsettings.txt",
        Some("hq"),
        "SET SIPDOMAIN static.example.com\n",
    );
    let s = fetch(&d, &id, "/46xxsettings.txt", &ua).await;
    assert_eq!(s.text(), "SET SIPDOMAIN static.example.com\n");
    let etag = s.headers["etag"].to_str().unwrap().to_string();
    let mut again = get("/46xxsettings.txt", &ua);
    again
        .headers_mut()
        .insert("if-none-match", etag.parse().unwrap());
    let r = send(d.https, client_config(&d.ca_pem(), Some(&id)), again)
        .await
        .unwrap();
    assert_eq!(r.status, 304);
    let anonymous = send_plain(d.http.unwrap(), get("/46xxsettings.txt", "curl/8"))
        .await
        .unwrap();
    assert!(
        anonymous.text().contains("AUTOGENERATED"),
        "a phone of no known site gets the generated file"
    );

    // The admin view follows the override: the static file has no GET, so the chain ends there.
    let (_, eff) = d
        .api("GET", &format!("/devices/{AVAYA}/effective"), None)
        .await;
    assert_eq!(
        eff["chain"],
        json!(["J100Supgrade.txt", "46xxsettings.txt"])
    );
    assert_eq!(eff["settings"][1]["name"], "SIPDOMAIN");
    assert_eq!(eff["settings"][1]["value"], "static.example.com");
    assert_eq!(
        eff["settings"][1]["layer"], "",
        "from a static file, not a parameter"
    );

    // A static file that loops on a missing file: the view says where evaluation stopped
    // instead of passing what it has off as all the phone gets.
    upload(
        "46xxsettings.txt",
        Some("hq"),
        "SET SIPDOMAIN looped.example.com\n# AGAIN\nGET missing.txt\nGOTO AGAIN\n",
    );
    let (_, eff) = d
        .api("GET", &format!("/devices/{AVAYA}/effective"), None)
        .await;
    let outcome = eff["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("stopped at 46xxsettings.txt:") && outcome.contains("loops"),
        "{eff}"
    );
    upload(
        "46xxsettings.txt",
        Some("hq"),
        "SET SIPDOMAIN static.example.com\n",
    );

    let out = d.cli(&["render", "--mac", AVAYA, "J100Supgrade.txt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        rendered,
        fetch(&d, &id, "/J100Supgrade.txt", &ua).await.text()
    );

    // The preview of the device's own file is the phone's file with its secrets masked (its
    // SIP password, and the site's admin password): the phone gets them, the administrator
    // sees where they go.
    let file = format!("{AVAYA}.txt");
    let out = d.cli(&["render", "--mac", AVAYA, &file]);
    assert!(out.status.success(), "{out:?}");
    let preview = String::from_utf8(out.stdout).unwrap();
    let served = fetch(&d, &id, &format!("/{file}"), &ua).await.text();
    assert!(served.contains("pw-avaya"), "{served}");
    assert!(!preview.contains("pw-avaya"), "{preview}");
    assert_eq!(
        preview,
        served
            .replace("pw-avaya", "********")
            .replace("ADMIN_PASSWORD 2580", "ADMIN_PASSWORD ********")
    );
}

#[test]
fn settings_lint_and_eval_on_field_files() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");
    let file = format!("{fixtures}/ipo11-autogen-b.46xxsettings.txt");
    let out = std::process::Command::new(BIN)
        .args(["settings", "lint", &file])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the IP Office file has errors a phone ignores"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().all(|l| l.starts_with(&format!("{file}:"))),
        "{text}"
    );
    let clean = format!("{fixtures}/opensip-j100.46xxsettings.txt");
    let out = std::process::Command::new(BIN)
        .args(["settings", "lint", &clean])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = std::process::Command::new(BIN)
        .args([
            "settings",
            "eval",
            &file,
            "--var",
            "MODEL4=J179",
            "--var",
            "SIG_IN_USE=SIP",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("TLSPORT=411\n"), "{text}");
    assert!(text.contains("SIPDOMAIN=192.168.2.231\n"));
    assert!(
        text.trim_end()
            .ends_with("# GET chain: ipo11-autogen-b.46xxsettings.txt\n# completed"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let looping = dir.path().join("loop.txt");
    std::fs::write(&looping, "# TOP\nSET A 1\nGOTO TOP\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["settings", "eval", looping.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a chain cut short is not a success"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("# stopped at loop.txt:"), "{text}");
    let traced = std::process::Command::new(BIN)
        .args(["settings", "eval", &file, "--var", "MODEL4=J179", "--trace"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(traced.stdout)
            .unwrap()
            .contains("TLSPORT=411  # ipo11-autogen-b.46xxsettings.txt:")
    );
    let missing = std::process::Command::new(BIN)
        .args(["settings", "lint", "/nonexistent.txt"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.txt"));
}

/// A release may name a family (`J1*`, `T4*`): a phone whose model it covers is told its image
/// as one named model's would be, in the Avaya upgrade script under its own `$MODEL4` section
/// and in a Yealink phone's own `{mac}.cfg` and family file. Such releases used to be fetched
/// and served but never offered: no file named them.
#[tokio::test]
async fn a_family_release_is_offered_to_the_models_it_covers() {
    let d = Daemon::start();
    let (j179, t46s) = ("c81fea83e8aa", "001565aaa946");
    d.add_device(json!({"mac": j179, "model": "J179"})).await;
    d.add_device(json!({"mac": t46s, "model": "T46S"})).await;
    add_release(&d, "FW_S_J1XX.bin", &["J1*"], "4.1.3.0.6").await;
    add_release(&d, "t4x.rom", &["T4*"], "66.86.0.15").await;
    let avaya = format!("Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:{j179})");
    let yealink = "Yealink SIP-T46S 66.86.0.15 00:15:65:aa:a9:46";
    let ids = (d.identity(j179).await, d.identity(t46s).await);
    let url = "static.firmware.url = https://localhost/firmware/t4x.rom\n";

    let up = fetch(&d, &ids.0, "/J100Supgrade.txt", &avaya).await.text();
    assert!(up.contains("IF $MODEL4 SEQ J179 GOTO APP_J179"), "{up}");
    assert!(up.contains("SET APPNAME FW_S_J1XX.bin"), "{up}");
    let own = fetch(&d, &ids.1, &format!("/{t46s}.cfg"), yealink)
        .await
        .text();
    assert!(own.contains(url), "{own}");
    let family = fetch(&d, &ids.1, "/y000000000066.cfg", yealink)
        .await
        .text();
    assert!(family.contains(url), "{family}");

    // A J169 reading the same script (after the J179's was rendered) is told the image under
    // its own model's section.
    let j169 = "Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J169-4.1.3.0.6 (MAC:c81fea83e8ab)";
    let up = fetch(&d, &ids.0, "/J100Supgrade.txt", j169).await.text();
    assert!(up.contains("IF $MODEL4 SEQ J169 GOTO APP_J169"), "{up}");
    assert!(up.contains("SET APPNAME FW_S_J1XX.bin"), "{up}");

    // Set to off for the T46S and the J179: none of their files names the image any more,
    // while the J169 is still told it, in its own section only.
    let (s, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"T46S": "off", "J179": "off"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let own = fetch(&d, &ids.1, &format!("/{t46s}.cfg"), yealink)
        .await
        .text();
    assert!(!own.contains("firmware.url"), "{own}");
    let family = fetch(&d, &ids.1, "/y000000000066.cfg", yealink)
        .await
        .text();
    assert!(!family.contains("firmware.url"), "{family}");
    let up = fetch(&d, &ids.0, "/J100Supgrade.txt", &avaya).await.text();
    assert!(!up.contains("APPNAME"), "{up}");
    let up = fetch(&d, &ids.0, "/J100Supgrade.txt", j169).await.text();
    assert!(up.contains("SEQ J169"), "{up}");
    assert!(!up.contains("SEQ J179"), "{up}");
}
