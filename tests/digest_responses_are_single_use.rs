//! A Digest `Authorization` header seen on plain HTTP opens nothing a second time. The nonce is
//! fresh for minutes, so without this an eavesdropper who saw a phone's conditional request
//! (answered 304, no body) could send the same header without `If-None-Match` and read the SIP
//! password; and each replay of a right answer reset the device's failure count, so guesses
//! between replays never locked the credentials.

mod common;

use common::*;
use serde_json::json;

const A: &str = "001122aabbcc";

fn digest_header(nonce: &str, nc: &str, uri: &str) -> String {
    use md5::Digest;
    let h = |s: String| {
        md5::Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = h("j179a:edgeprov:right".to_string());
    let ha2 = h(format!("GET:{uri}"));
    let resp = h(format!("{ha1}:{nonce}:{nc}:c0ffee:auth:{ha2}"));
    format!(
        r#"Digest username="j179a", realm="edgeprov", nonce="{nonce}", uri="{uri}", algorithm=MD5, qop=auth, nc={nc}, cnonce="c0ffee", response="{resp}""#
    )
}

#[tokio::test]
async fn a_replayed_digest_header_is_refused() {
    let d = Daemon::start();
    d.add_device(json!({
        "mac": A,
        "secrets": {"SIP_PASSWORD": "pw-a"},
        "allow_http_auth": true,
        "http_credential": {"username": "j179a", "password": "right"},
    }))
    .await;
    let http = d.http.unwrap();
    let path = format!("/{A}.txt");
    let challenge = send_plain(http, get(&path, J179_UA)).await.unwrap();
    assert_eq!(challenge.status, 401);
    let md5 = challenge
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|o| o.contains("MD5"))
        .unwrap();
    let nonce = challenge_nonce(&md5);

    // The phone's first fetch, then a conditional one that is answered 304.
    let mut first = get(&path, J179_UA);
    first.headers_mut().insert(
        "authorization",
        digest_header(nonce, "00000001", &path).parse().unwrap(),
    );
    let r = send_plain(http, first).await.unwrap();
    assert_eq!(r.status, 200);
    let etag = r.headers["etag"].clone();
    let seen = digest_header(nonce, "00000002", &path);
    let mut conditional = get(&path, J179_UA);
    conditional
        .headers_mut()
        .insert("authorization", seen.parse().unwrap());
    conditional.headers_mut().insert("if-none-match", etag);
    let r = send_plain(http, conditional).await.unwrap();
    assert_eq!(r.status, 304);

    // The eavesdropper sends what it saw, without If-None-Match: no secret.
    let mut replay = get(&path, J179_UA);
    replay
        .headers_mut()
        .insert("authorization", seen.parse().unwrap());
    let r = send_plain(http, replay).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(!r.text().contains("pw-a"));

    // The phone's own next request (the next nonce count) still works.
    let mut next = get(&path, J179_UA);
    next.headers_mut().insert(
        "authorization",
        digest_header(nonce, "00000003", &path).parse().unwrap(),
    );
    let r = send_plain(http, next).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("pw-a"));
}
