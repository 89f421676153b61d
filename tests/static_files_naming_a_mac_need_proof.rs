//! An operator's static file whose name holds a device's MAC is that device's own file, whatever
//! vendor's naming puts the MAC where: Cisco SPA's `spa{mac}.xml`, Snom's `snom710-{MAC}.htm`,
//! Panasonic's `Config{MAC}.cfg`, a suffix after `_`, the dotted form. Such a file usually holds
//! the SIP password, so it reaches only the device that proves it is that MAC.

mod common;

use common::*;
use serde_json::json;

const A: &str = "001122aabbcc";
const B: &str = "001122aabbcd";
const SECRET: &str = "SIP_PASSWORD=topsecret";

#[tokio::test]
async fn a_static_file_holding_a_mac_anywhere_in_its_name_needs_that_devices_proof() {
    let d = Daemon::start();
    for mac in [A, B] {
        d.add_device(json!({"mac": mac, "secrets": {"SIP_PASSWORD": "x"}}))
            .await;
    }
    let upper = A.to_ascii_uppercase();
    let names = [
        format!("spa{A}.xml"),
        format!("snom710-{upper}.htm"),
        format!("Config{upper}.cfg"),
        format!("{A}_sip.cfg"),
        "0011.22aa.bbcc.xml".to_string(),
    ];
    for name in &names {
        d.put_file(name, SECRET).await;
    }
    // Operator overrides of common files stay common: Yealink's three-digit family files look
    // like a MAC of zeros.
    d.put_file("y000000000108.cfg", "common\n").await;

    let id_a = d.identity(A).await;
    let id_b = d.identity(B).await;
    let ca = d.ca_pem();
    for name in &names {
        let path = format!("/{name}");
        let plain = send_plain(d.http.unwrap(), get(&path, J179_UA))
            .await
            .unwrap();
        assert_eq!(plain.status, 403, "{name} over plain HTTP");
        assert!(!plain.text().contains("topsecret"), "{name}");
        let anonymous = send(d.https, client_config(&ca, None), get(&path, J179_UA))
            .await
            .unwrap();
        assert_eq!(anonymous.status, 403, "{name} without a certificate");
        let other = send(
            d.https,
            client_config(&ca, Some(&id_b)),
            get(&path, J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(
            other.status, 403,
            "{name} with another device's certificate"
        );
        assert!(!other.text().contains("topsecret"), "{name}");
        let own = send(
            d.https,
            client_config(&ca, Some(&id_a)),
            get(&path, J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(own.status, 200, "{name} with its own certificate");
        assert_eq!(own.text(), SECRET);
        assert_eq!(own.headers["cache-control"], "no-store");
    }
    let common = send_plain(d.http.unwrap(), get("/y000000000108.cfg", "Yealink"))
        .await
        .unwrap();
    assert_eq!(common.status, 200);

    // A device that is no longer active gets none of them, even with its own certificate.
    let (status, v) = d
        .api(
            "PATCH",
            &format!("/devices/{A}"),
            Some(json!({"state": "inactive"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    for name in &names {
        let r = send(
            d.https,
            client_config(&ca, Some(&id_a)),
            get(&format!("/{name}"), J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 403, "{name} of an inactive device");
    }
}

/// A MAC outside the inventory owns no file: `spa{A}.xml` also reads as the file of
/// `a001122aabbc` (the `a` of `spa` and eleven of A's digits), and a certificate for that MAC,
/// trusted but of no device of the inventory, got A's SIP password; a file naming only a device
/// outside the inventory reached whoever proved that MAC. Both are 403 with an alarm now, and
/// the device the file is for still gets it.
#[tokio::test]
async fn a_mac_outside_the_inventory_gets_no_static_file() {
    let d = Daemon::start();
    d.add_device(json!({"mac": A, "secrets": {"SIP_PASSWORD": "x"}}))
        .await;
    let spa = format!("spa{A}.xml");
    d.put_file(&spa, SECRET).await;
    const STRANGER: &str = "665544332211";
    let strangers = format!("spa{STRANGER}.xml");
    d.put_file(&strangers, SECRET).await;
    let ca = d.ca_pem();

    let shifted = d.mint("a001122aabbc", |_| {});
    let r = send(
        d.https,
        client_config(&ca, Some(&shifted)),
        get(&format!("/{spa}"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("topsecret"));

    let stranger = d.mint(STRANGER, |_| {});
    let r = send(
        d.https,
        client_config(&ca, Some(&stranger)),
        get(&format!("/{strangers}"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("topsecret"));

    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let alarms = alarms.as_array().unwrap();
    let with = |kind: &str, text: &str| {
        alarms
            .iter()
            .any(|a| a["kind"] == kind && a["message"].as_str().unwrap().contains(text))
    };
    assert!(
        with("certificate_mismatch", &spa),
        "the file is A's, proven by another: {alarms:?}"
    );
    assert!(
        with("inactive_device", "not in the inventory"),
        "{alarms:?}"
    );

    let own = send(
        d.https,
        client_config(&ca, Some(&d.identity(A).await)),
        get(&format!("/{spa}"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200);
    assert_eq!(own.text(), SECRET);
}
