//! A common settings file from the field often carries a site-wide password: the real
//! `opensip-j100.46xxsettings.txt` sets `FORCE_SIP_PASSWORD`. Uploaded as a static file, it goes
//! only to a device of the inventory that proves who it is, never to whoever asks; a static
//! file without a secret stays open to every phone.

mod common;

use common::*;
use serde_json::json;

/// In the inventory, site hq, active; J179_UA names it.
const A: &str = "001122aabbcc";

/// Changes the stored static files' flags (`site|name` → reading << 1 | holds_secret) of a
/// stopped daemon's database, as an earlier edgeprov would have left them.
fn edit_static_flags(d: &Daemon, edit: impl FnOnce(&mut redb::Table<&str, u8>)) {
    const FLAGS: redb::TableDefinition<&str, u8> = redb::TableDefinition::new("static_file_flags");
    let db = redb::Database::open(d.data_dir().join("edgeprov.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    edit(&mut tx.open_table(FLAGS).unwrap());
    tx.commit().unwrap();
}

/// `path` is refused (403, none of its secrets in the answer) over plain HTTP and over HTTPS
/// without a certificate, and served whole (`body`) to device A proven by its certificate.
async fn only_proven_a_gets(
    d: &Daemon,
    path: &str,
    ua: &str,
    body: &str,
    leaked: &dyn Fn(&Resp) -> bool,
) {
    let r = send_plain(d.http.unwrap(), get(path, ua)).await.unwrap();
    assert_eq!(r.status, 403, "{path}: {}", r.text());
    assert!(!leaked(&r), "{path}");
    let ca = d.ca_pem();
    let r = send(d.https, client_config(&ca, None), get(path, ua))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{path}: {}", r.text());
    assert!(!leaked(&r), "{path}");
    let r = send(
        d.https,
        client_config(&ca, Some(&d.identity(A).await)),
        get(path, ua),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.text(), body, "{path}");
}
/// In the inventory, site hq, inactive.
const B: &str = "001122aabbcd";
/// Not in the inventory.
const STRANGER: &str = "001122aabbce";
const FIELD_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/opensip-j100.46xxsettings.txt"
);

#[tokio::test]
async fn a_static_common_file_with_a_password_needs_a_proven_device() {
    let d = Daemon::start();
    let (s, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(s, 201, "{v}");
    for (mac, state) in [(A, "active"), (B, "inactive")] {
        d.add_device(json!({"mac": mac, "model": "J179", "site": "hq", "state": state}))
            .await;
    }
    let field = std::fs::read(FIELD_FILE).unwrap();
    let stored = d.put_file("46xxsettings.txt?site=hq", field.clone()).await;
    assert_eq!(stored["protected"], true, "{stored}");
    assert_eq!(
        stored["secrets"],
        json!(["line 59: FORCE_SIP_PASSWORD"]),
        "{stored}"
    );
    let open = d
        .put_file("46xxspecials.txt", &b"SET DISPLAY_NAME lobby\n"[..])
        .await;
    assert_eq!(open["protected"], false, "{open}");
    assert!(open.get("secrets").is_none(), "{open}");

    let ca = d.ca_pem();
    let leaked = |r: &Resp| r.text().contains("SIPPassword");

    // Claiming A's MAC proves nothing: not over HTTPS without a certificate, not over HTTP.
    let r = send(
        d.https,
        client_config(&ca, None),
        get("/46xxsettings.txt", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!leaked(&r));
    let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(!leaked(&r));
    // Asking as nobody in particular gets the box-wide file: the generated one.
    let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", "curl/8"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!leaked(&r));

    // A proven, active device of the site gets it, byte for byte.
    let id_a = d.identity(A).await;
    let r = send(
        d.https,
        client_config(&ca, Some(&id_a)),
        get("/46xxsettings.txt", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, field);
    assert_eq!(r.headers["cache-control"], "no-store");

    // Proven, but inactive: 403.
    let id_b = d.identity(B).await;
    let r = send(
        d.https,
        client_config(&ca, Some(&id_b)),
        get("/46xxsettings.txt", J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!leaked(&r));

    // A box-wide file with a secret: asking without any MAC is refused too.
    d.put_file(
        "y000000000028.cfg",
        &b"account.1.password = shared-secret\n"[..],
    )
    .await;
    let r = send_plain(d.http.unwrap(), get("/y000000000028.cfg", "curl/8"))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("shared-secret"));
    // Proven, but not in the inventory: 403; in it: the file.
    let r = send(
        d.https,
        client_config(&ca, Some(&d.mint(STRANGER, |_| {}))),
        get("/y000000000028.cfg", "Yealink SIP-T46S 66.86.0.15"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let r = send(
        d.https,
        client_config(&ca, Some(&id_a)),
        get("/y000000000028.cfg", "Yealink SIP-T46S 66.86.0.15"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("shared-secret"));

    // A static file without a secret is every phone's.
    let r = send_plain(d.http.unwrap(), get("/46xxspecials.txt", "curl/8"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "SET DISPLAY_NAME lobby\n");

    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let kinds: Vec<&str> = alarms
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"secret_without_proof"), "{alarms}");
    assert!(kinds.contains(&"inactive_device"), "{alarms}");
    let text = alarms.to_string();
    assert!(text.contains("not in the inventory"), "{text}");

    // The preview of what A gets shows where the secret goes, never the value.
    let mut req = get(
        &format!("/api/v1/devices/{A}/files/46xxsettings.txt"),
        "curl/8",
    );
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", d.token).parse().unwrap(),
    );
    let preview = send(d.admin, client_config(&ca, None), req).await.unwrap();
    assert_eq!(preview.status, 200, "{}", preview.text());
    let text = preview.text();
    assert!(text.contains("FORCE_SIP_PASSWORD"), "{text}");
    assert!(text.contains("********"), "{text}");
    assert!(!text.contains("SIPPassword"), "{text}");

    // The listing says which files need proof.
    let (_, files) = d.api("GET", "/files", None).await;
    let protected = |name: &str| {
        files
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["protected"].clone())
    };
    assert_eq!(protected("46xxsettings.txt"), Some(json!(true)), "{files}");
    assert_eq!(protected("46xxspecials.txt"), Some(json!(false)), "{files}");
}

/// A static file stored by an edgeprov that did not read files for secrets is read at the next
/// start: one that holds a password is from then on only a proven device's, and an alarm says
/// so, since phones that fetched it without proof no longer can.
#[tokio::test]
async fn a_file_stored_before_files_were_read_for_secrets_is_read_at_start() {
    let mut d = Daemon::start();
    d.put_file("46xxspecials.txt", "SET ADMIN_PASSWORD 27238\n")
        .await;
    d.stop();
    // As the earlier edgeprov left it: the file without its flag.
    edit_static_flags(&d, |flags| {
        flags
            .remove("|46xxspecials.txt")
            .unwrap()
            .expect("the flag was stored with the file");
    });
    let d = d.restart();
    let (_, alarms) = d
        .api("GET", "/alarms?kind=static_file_protected", None)
        .await;
    assert_eq!(alarms[0]["source"], "46xxspecials.txt", "{alarms}");
    let r = send_plain(d.http.unwrap(), get("/46xxspecials.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("27238"));
}

/// Passwords written in forms a phone reads but a line-by-line reading misses: an Avaya quoted
/// value continued on the next line, a Poly attribute whose `=` starts a line, a Cisco value
/// in a CDATA section, a JSON member. Each file needs proof, and nobody in particular gets it.
#[tokio::test]
async fn passwords_written_over_lines_or_in_cdata_need_proof() {
    let d = Daemon::start();
    for (name, body, secret) in [
        (
            "46xxspecials.txt",
            "SET A 1\r\nSET FORCE_SIP_PASSWORD \"\r\nhunter2\"\r\n",
            "line 2: FORCE_SIP_PASSWORD",
        ),
        (
            "edgeprov-extra.cfg",
            "<polycomConfig>\n<reg reg.1.address=\"201\"\n reg.1.auth.password\n=\"pw-poly\"/>\n</polycomConfig>\n",
            "line 4: reg.1.auth.password",
        ),
        (
            "XMLDefault.cnf.xml",
            "<flat-profile><Password_1_><![CDATA[pw-cisco]]></Password_1_></flat-profile>\n",
            "line 1: Password_1_",
        ),
        (
            "softphone.json",
            "{\n  \"server\": \"pbx\",\n  \"sipPassword\": \"pw-json\"\n}\n",
            "line 3: sipPassword",
        ),
    ] {
        let stored = d.put_file(name, body).await;
        assert_eq!(stored["protected"], true, "{name}: {stored}");
        assert_eq!(stored["secrets"], json!([secret]), "{name}: {stored}");
        let r = send_plain(d.http.unwrap(), get(&format!("/{name}"), "curl/8"))
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{name}: {}", r.text());
        for leaked in ["hunter2", "pw-poly", "pw-cisco", "pw-json"] {
            assert!(!r.text().contains(leaked), "{name}: {}", r.text());
        }
    }
}

/// An XML file whose elements and attributes carry a namespace prefix (`<voip:AdminPIN>`,
/// `ns:password="…"`, its `=` on the next line): the phone reads them by their local name, so
/// the file holds secrets and goes only to a proven device of the inventory.
#[tokio::test]
async fn a_file_with_prefixed_password_elements_is_served_only_with_proof() {
    let d = Daemon::start();
    let (s, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(s, 201, "{v}");
    d.add_device(json!({"mac": A, "model": "J179", "site": "hq", "state": "active"}))
        .await;
    let body = "<voip:config xmlns:voip=\"urn:x\" xmlns:ns=\"urn:y\">\n\
                <ns:Password>pw-element</ns:Password>\n\
                <voip:AdminPIN>4711</voip:AdminPIN>\n\
                <reg ns:password\n=\"pw-attr\"/>\n\
                </voip:config>\n";
    let stored = d.put_file("XMLDefault.cnf.xml", body).await;
    assert_eq!(stored["protected"], true, "{stored}");
    assert_eq!(
        stored["secrets"],
        json!([
            "line 2: ns:Password",
            "line 3: voip:AdminPIN",
            "line 5: ns:password"
        ]),
        "{stored}"
    );
    let leaked = |r: &Resp| {
        ["pw-element", "4711", "pw-attr"]
            .iter()
            .any(|s| r.text().contains(s))
    };
    only_proven_a_gets(&d, "/XMLDefault.cnf.xml", J179_UA, body, &leaked).await;
}

/// Grandstream's XML config file password (P1359) is the AES key of every encrypted
/// `cfg{mac}.xml`; in a common `cfg.xml` it went to whoever asked, over plain HTTP too. It is a
/// secret now: only a proven device of the inventory gets the file.
#[tokio::test]
async fn a_grandstream_cfg_xml_with_its_xml_config_password_needs_proof() {
    let d = Daemon::start();
    d.add_device(json!({"mac": A, "model": "GXP2170", "state": "active"}))
        .await;
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n\
                <gs_provision version=\"1\">\n<config version=\"1\">\n\
                <P1359>aes-key-4711</P1359>\n<P47>pbx.example</P47>\n\
                </config>\n</gs_provision>\n";
    let stored = d.put_file("cfg.xml", body).await;
    assert_eq!(stored["protected"], true, "{stored}");
    assert_eq!(stored["secrets"], json!(["line 4: P1359"]), "{stored}");
    let ua = format!("Grandstream Model HW GXP2170 SW 1.0.11.16 DevId {A}");
    let r = send_plain(d.http.unwrap(), get("/cfg.xml", &ua))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("aes-key"));
    let ca = d.ca_pem();
    let r = send(d.https, client_config(&ca, None), get("/cfg.xml", &ua))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let r = send(
        d.https,
        client_config(&ca, Some(&d.identity(A).await)),
        get("/cfg.xml", &ua),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), body);
    assert_eq!(r.headers["cache-control"], "no-store");
}

/// A Cisco common profile (`$PSN.xml`) that gives the key of the phones' encrypted profiles in
/// its Profile_Rule, or in GPP_SA, went to whoever asked; it is a secret file now, served only
/// to a proven device of the inventory.
#[tokio::test]
async fn a_cisco_profile_with_its_resync_key_needs_proof() {
    let d = Daemon::start();
    d.add_device(json!({"mac": A, "model": "CP-8841-3PCC", "state": "active"}))
        .await;
    let body = "<flat-profile>\n\
                <Profile_Rule ua=\"na\">[--key \"SecretPhrase1234\"] https://prov/spa$MA.cfg</Profile_Rule>\n\
                <GPP_SB ua=\"na\">other-key</GPP_SB>\n\
                </flat-profile>\n";
    let stored = d.put_file("8841.xml", body).await;
    assert_eq!(stored["protected"], true, "{stored}");
    assert_eq!(
        stored["secrets"],
        json!(["line 2: --key", "line 3: GPP_SB"]),
        "{stored}"
    );
    let ua = format!("Cisco-CP-8841-3PCC/11.3.1 ({A})");
    let leaked = |r: &Resp| r.text().contains("SecretPhrase") || r.text().contains("other-key");
    only_proven_a_gets(&d, "/8841.xml", &ua, body, &leaked).await;
}

/// Grandstream's version-2 XML gives a setting's fields in child elements (`<item
/// name="account.1.sip"><part name="password">…`); a password whose part or child has a plain
/// name (`<item name="users.admin.password"><value>…`) made a common `cfg.xml` look free of
/// secrets, so it went to whoever asked. Both forms need proof now, and the legacy
/// `cfg{mac}`, P-values joined by `&`, shows its SIP password after the first pair.
#[tokio::test]
async fn a_grandstream_v2_cfg_xml_with_nested_passwords_needs_proof() {
    let d = Daemon::start();
    for mac in [A, B] {
        d.add_device(json!({"mac": mac, "model": "GRP2614", "state": "active"}))
            .await;
    }
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                <gs_provision version=\"1\">\n<config version=\"2\">\n\
                <item name=\"account.1.sip\">\n<part name=\"userId\">1001</part>\n\
                <part name=\"password\">sip-pw-4711</part>\n</item>\n\
                <item name=\"users.admin.password\"><value>admin-pw-4711</value></item>\n\
                </config>\n</gs_provision>\n";
    let stored = d.put_file("cfg.xml", body).await;
    assert_eq!(stored["protected"], true, "{stored}");
    assert_eq!(
        stored["secrets"],
        json!(["line 6: password", "line 8: users.admin.password"]),
        "{stored}"
    );
    let leaked = |r: &Resp| r.text().contains("-pw-4711");
    let ua = format!("Grandstream Model HW GRP2614 SW 1.0.9.1 DevId {A}");
    only_proven_a_gets(&d, "/cfg.xml", &ua, body, &leaked).await;
    let ca = d.ca_pem();

    // The legacy file names A: B's certificate does not get it, and the upload says which
    // P-value is the secret.
    let legacy = format!("cfg{A}");
    let stored = d
        .put_file(&legacy, "P30=time.example&P34=sip-pw-4711&gnkey=0b82")
        .await;
    assert_eq!(stored["secrets"], json!(["line 1: P34"]), "{stored}");
    let r = send(
        d.https,
        client_config(&ca, Some(&d.identity(B).await)),
        get(&format!("/{legacy}"), &ua),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!leaked(&r));
}

/// A login in a URL is the provisioning server's password, and a Yealink AES key decrypts
/// every phone's provisioning files; in a common `y000000000108.cfg` they went to whoever
/// asked, over plain HTTP too, with `"protected": false`. The file needs proof now, and the
/// upload says which lines; a common file of key buttons alone stays every phone's.
#[tokio::test]
async fn a_yealink_common_file_with_a_url_login_or_aes_key_needs_proof() {
    let d = Daemon::start();
    d.add_device(json!({"mac": A, "model": "T46U", "state": "active"}))
        .await;
    let body = "#!version:1.0.0.1\n\
                static.auto_provision.server.url = https://prov:Hunter2pw@192.0.2.1/\n\
                static.auto_provision.aes_key_16.com = aes-4711-aes-471\n\
                linekey.1.type = 15\n";
    let stored = d.put_file("y000000000108.cfg", body).await;
    assert_eq!(stored["protected"], true, "{stored}");
    assert_eq!(
        stored["secrets"],
        json!([
            "line 2: static.auto_provision.server.url (login in its URL)",
            "line 3: static.auto_provision.aes_key_16.com"
        ]),
        "{stored}"
    );
    let ua = "Yealink SIP-T46U 108.86.0.45 00:11:22:aa:bb:cc";
    let leaked = |r: &Resp| r.text().contains("Hunter2pw") || r.text().contains("aes-4711");
    only_proven_a_gets(&d, "/y000000000108.cfg", ua, body, &leaked).await;

    // Buttons, a keypad lock and a login-free URL are no secrets: every phone gets them.
    let buttons = "#!version:1.0.0.1\n\
                   linekey.1.type = 15\nlinekey.1.value = 1001\n\
                   expansion_module.1.key.1.value = 2002\n\
                   phone_setting.keypad_lock.enable = 1\nfeatures.key_as_send = 1\n\
                   static.auto_provision.server.url = https://192.0.2.1/prov/\n";
    let stored = d.put_file("y000000000066.cfg", buttons).await;
    assert_eq!(stored["protected"], false, "{stored}");
    let r = send_plain(d.http.unwrap(), get("/y000000000066.cfg", "curl/8"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), buttons);
}

/// A file an earlier edgeprov judged free of secrets (its reading 9 knew no URL logins) is
/// read again at the next start, since what counts as a secret changed: a Poly file whose
/// provisioning server URL carries a login goes only to proven devices from then on, with an
/// alarm.
#[tokio::test]
async fn a_file_judged_by_an_earlier_reading_is_read_again_at_start() {
    let mut d = Daemon::start();
    let body = "<polycomConfig><device device.prov.serverName=\"ftp://PlcmSpIp:PlcmSpIp@192.0.2.1\"/></polycomConfig>\n";
    d.put_file("edgeprov-extra.cfg", body).await;
    d.stop();
    // As reading 9 left it: no secret (reading << 1 | holds_secret).
    edit_static_flags(&d, |flags| {
        flags.insert("|edgeprov-extra.cfg", 9u8 << 1).unwrap();
    });
    let d = d.restart();
    let (_, alarms) = d
        .api("GET", "/alarms?kind=static_file_protected", None)
        .await;
    assert_eq!(alarms[0]["source"], "edgeprov-extra.cfg", "{alarms}");
    let r = send_plain(d.http.unwrap(), get("/edgeprov-extra.cfg", "curl/8"))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("PlcmSpIp@"), "{}", r.text());
}
