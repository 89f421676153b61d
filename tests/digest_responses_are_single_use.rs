//! A Digest `Authorization` header seen on plain HTTP opens nothing a second time. The nonce is
//! fresh for minutes, so without this an eavesdropper who saw a phone's conditional request
//! (answered 304, no body) could send the same header without `If-None-Match` and read the SIP
//! password; and each replay of a right answer reset the device's failure count, so guesses
//! between replays never locked the credentials. A right answer on a nonce the box no longer
//! honours (stale, or from before a restart) is no wrong guess either.

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
    assert!(r.headers.get("www-authenticate").is_some());
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

/// The WWW-Authenticate values of a 401.
fn offers(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// A phone keeps its Digest nonce between polls; after the box restarts (a new nonce key), or
/// once the nonce is older than its lifetime, its right answer was counted as a wrong password:
/// `auth_max_failures` polls locked the phone out of its own file, with alarms saying its
/// credentials were wrong, and the 401 gave no `stale=true` to tell it to simply retry. Now
/// such a request gets 401 with `stale=true` and a fresh nonce, counts nothing, raises no
/// alarm, and the phone's retry with the fresh nonce gets its file.
#[tokio::test]
async fn a_right_answer_on_a_nonce_from_before_a_restart_is_stale_not_wrong() {
    let d = Daemon::start();
    d.add_device(json!({
        "mac": A,
        "secrets": {"SIP_PASSWORD": "pw-a"},
        "allow_http_auth": true,
        "http_credential": {"username": "j179a", "password": "right"},
    }))
    .await;
    let path = format!("/{A}.txt");
    let challenge = send_plain(d.http.unwrap(), get(&path, J179_UA))
        .await
        .unwrap();
    let old_nonce = challenge_nonce(&offers(&challenge)[1]).to_string();
    assert!(offers(&challenge).iter().all(|o| !o.contains("stale")));

    let d = d.restart();
    let http = d.http.unwrap();
    // More polls than auth_max_failures (3), each with the phone's next nonce count.
    for n in 1..=4 {
        let mut poll = get(&path, J179_UA);
        poll.headers_mut().insert(
            "authorization",
            digest_header(&old_nonce, &format!("{n:08x}"), &path)
                .parse()
                .unwrap(),
        );
        let r = send_plain(http, poll).await.unwrap();
        assert_eq!(r.status, 401, "poll {n}");
        assert!(!r.text().contains("pw-a"));
        let offered = offers(&r);
        assert!(
            offered
                .iter()
                .filter(|o| o.starts_with("Digest"))
                .all(|o| o.contains("stale=true")),
            "poll {n}: {offered:?}"
        );
    }
    // Only the first request's alarm (it asked without any proof), from before the restart.
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let alarms = alarms.as_array().unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["kind"], "secret_without_proof", "{alarms:?}");
    assert_eq!(alarms[0]["count"], 1, "{alarms:?}");

    // The retry with the fresh nonce of the last 401.
    let fresh = send_plain(http, get(&path, J179_UA)).await.unwrap();
    let nonce = challenge_nonce(&offers(&fresh)[1]).to_string();
    let mut retry = get(&path, J179_UA);
    retry.headers_mut().insert(
        "authorization",
        digest_header(&nonce, "00000001", &path).parse().unwrap(),
    );
    let r = send_plain(http, retry).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("pw-a"));
}
