//! RFC 9110 §15.5.2: a 401 carries at least one `WWW-Authenticate` challenge. A client
//! certificate is not an HTTP authentication scheme, so a file with a secret asked for without
//! proof is refused with 403 when no HTTP credential may be offered for the device, and with 401
//! and a Digest challenge only when one may. The phones care: an Avaya J100 answered 401 prompts
//! its user for a name and password, so a bare 401 put a credential prompt on every J100 that
//! asked for its own file over plain HTTP or without a certificate.

mod common;

use common::*;
use serde_json::json;

/// In the inventory, with a secret; J179_UA names it.
const A: &str = "001122aabbcc";

/// Every answer below holds to this: a 401 always carries a challenge, and no
/// refusal carries the secret.
fn assert_refused_by_the_rules(r: &Resp, what: &str) {
    assert!(
        r.status != 401 || r.headers.get("www-authenticate").is_some(),
        "{what}: 401 without WWW-Authenticate"
    );
    assert!(!r.text().contains("pw-a"), "{what}: {}", r.text());
}

#[tokio::test]
async fn a_401_always_carries_a_challenge_and_without_one_the_answer_is_403() {
    let d = Daemon::start();
    d.add_device(json!({
        "mac": A,
        "model": "J179",
        "secrets": {"SIP_PASSWORD": "pw-a"},
    }))
    .await;
    d.put_file(
        "y000000000028.cfg",
        &b"account.1.password = shared-secret\n"[..],
    )
    .await;
    let http = d.http.unwrap();
    let own = format!("/{A}.txt");

    // No HTTP credential for the device: nothing to challenge with, so 403, same short body.
    let plain = send_plain(http, get(&own, J179_UA)).await.unwrap();
    assert_eq!(plain.status, 403, "{}", plain.text());
    assert_eq!(plain.text(), "client certificate required\n");
    assert!(plain.headers.get("www-authenticate").is_none());
    assert_refused_by_the_rules(&plain, "plain HTTP, no credential");
    let tls = send(
        d.https,
        client_config(&d.ca_pem(), None),
        get(&own, J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(tls.status, 403, "{}", tls.text());
    assert_eq!(tls.text(), "client certificate required\n");
    assert_refused_by_the_rules(&tls, "TLS without a certificate, no credential");
    // A common file with a secret asked for by no known device: no device, no challenge.
    let nobody = send_plain(http, get("/y000000000028.cfg", "curl/8"))
        .await
        .unwrap();
    assert_eq!(nobody.status, 403, "{}", nobody.text());
    assert_eq!(nobody.text(), "client certificate required\n");
    assert!(!nobody.text().contains("shared-secret"));
    assert_refused_by_the_rules(&nobody, "common file, no known device");

    // The refusals are alarmed as before.
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let without = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "secret_without_proof")
        .cloned()
        .unwrap_or_else(|| panic!("no secret_without_proof alarm: {alarms}"));
    assert_eq!(without["count"], 3, "{without}");

    // With a credential allowed for the device: 401 and the Digest challenges.
    let (s, v) = d
        .api(
            "PATCH",
            &format!("/devices/{A}"),
            Some(json!({"allow_http_auth": true, "http_credential": {"username": "j179a", "password": "right"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let challenged = send_plain(http, get(&own, J179_UA)).await.unwrap();
    assert_eq!(challenged.status, 401, "{}", challenged.text());
    let offers: Vec<&str> = challenged
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        offers.iter().any(|o| o.starts_with("Digest ")),
        "{offers:?}"
    );
    assert_refused_by_the_rules(&challenged, "plain HTTP, credential allowed");
}
