//! Cloud enrollment sync end to end: the real daemon against the reference cloud
//! (tests/common/cloud.rs) over HTTPS with mutual TLS on loopback.

#[path = "common/cloud.rs"]
mod cloud;
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cloud::Cloud;
use common::*;
use serde_json::{Value, json};

const SITE: &str = "hq";
const PHONE: &str = "001122aabbcc";

fn ua(mac: &str) -> String {
    format!("Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:{mac})")
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_registered(cloud: &Cloud, extra: &str) -> Daemon {
    let d = Daemon::start_with(&format!("{}{extra}", cloud.config()));
    register(&d, cloud);
    d
}

/// Waits for the daemon's first pull after registration.
async fn first_pull(d: &Daemon) {
    eventually(Duration::from_secs(10), "first pull", async || {
        !status(d).await["last_pull"].is_null()
    })
    .await;
}

/// `edgeprov cloud register` with the cloud's URL and a valid token.
fn try_register(d: &Daemon, cloud: &Cloud) -> std::process::Output {
    d.cli(&[
        "cloud",
        "register",
        "--url",
        &cloud.url(),
        "--token",
        &cloud.token(),
    ])
}

fn register(d: &Daemon, cloud: &Cloud) {
    let out = try_register(d, cloud);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn status(d: &Daemon) -> Value {
    let (code, v) = d.api("GET", "/sync", None).await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn device_state(d: &Daemon, mac: &str) -> Option<String> {
    let (code, v) = d.api("GET", &format!("/devices/{mac}"), None).await;
    (code == 200).then(|| v["state"].as_str().unwrap_or("").to_string())
}

async fn secret_file(d: &Daemon, id: &Identity) -> u16 {
    send(
        d.https,
        client_config(&d.ca_pem(), Some(id)),
        get(&format!("/{PHONE}.txt"), &ua(PHONE)),
    )
    .await
    .unwrap()
    .status
}

async fn alarm_kinds(d: &Daemon) -> Vec<String> {
    let (_, v) = d.api("GET", "/alarms", None).await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_associate_activate_then_release() {
    let cloud = Cloud::start(SITE);
    cloud.set_device(PHONE, "claimed", "", json!({"SIPDOMAIN": "cloud.example"}));
    let d = start_registered(&cloud, "");
    let st = status(&d).await;
    assert_eq!(st["registered"], true);
    assert_eq!(st["site"], SITE);
    eventually(
        Duration::from_secs(10),
        "claimed device pulled",
        async || device_state(&d, PHONE).await.as_deref() == Some("claimed"),
    )
    .await;
    // The SIP password is the local administrator's; the cloud never sees or overwrites it.
    let (code, v) = d
        .api(
            "PATCH",
            &format!("/devices/{PHONE}"),
            Some(json!({"secrets": {"SIP_PASSWORD": "pw"}})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let id = d.identity(PHONE).await;
    assert_eq!(secret_file(&d, &id).await, 403, "claimed is not enough");

    cloud.set_device(
        PHONE,
        "associated",
        SITE,
        json!({"SIPDOMAIN": "cloud.example"}),
    );
    eventually(Duration::from_secs(10), "associated", async || {
        device_state(&d, PHONE).await.as_deref() == Some("associated")
    })
    .await;
    assert_eq!(secret_file(&d, &id).await, 403, "associated is not enough");

    cloud.set_device(
        PHONE,
        "activated",
        SITE,
        json!({"SIPDOMAIN": "cloud.example"}),
    );
    eventually(
        Duration::from_secs(10),
        "activated device gets its secret file",
        async || secret_file(&d, &id).await == 200,
    )
    .await;
    let body = send(
        d.https,
        client_config(&d.ca_pem(), Some(&id)),
        get(&format!("/{PHONE}.txt"), &ua(PHONE)),
    )
    .await
    .unwrap()
    .text();
    assert!(body.contains("SET SIP_PASSWORD pw"), "{body}");
    assert!(body.contains("SET SIPDOMAIN cloud.example"), "{body}");

    // Activated for another site: not served here.
    cloud.set_device(PHONE, "activated", "branch", json!({}));
    eventually(Duration::from_secs(10), "other site refused", async || {
        secret_file(&d, &id).await == 403
    })
    .await;
    cloud.set_device(PHONE, "activated", SITE, json!({}));
    eventually(Duration::from_secs(10), "back home", async || {
        secret_file(&d, &id).await == 200
    })
    .await;

    cloud.set_device(PHONE, "released", "", json!({}));
    let log_len = cloud.log_len().to_string();
    eventually(Duration::from_secs(10), "release pulled", async || {
        status(&d).await["cursor"] == log_len.as_str()
    })
    .await;
    assert_eq!(
        secret_file(&d, &id).await,
        403,
        "refused right after the pull"
    );

    // The cloud heard about each lifecycle step and the refusal.
    eventually(Duration::from_secs(10), "events delivered", async || {
        cloud.events_of("enrollment").len() >= 6 && !cloud.events_of("refusal").is_empty()
    })
    .await;
    let states: Vec<String> = cloud
        .events_of("enrollment")
        .iter()
        .map(|e| {
            format!(
                "{}@{}:{}",
                e["state"].as_str().unwrap(),
                e["site"].as_str().unwrap(),
                e["serving_secrets"]
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            "claimed@:false",
            "associated@hq:false",
            "activated@hq:true",
            "activated@branch:false",
            "activated@hq:true",
            "released@:false"
        ]
    );
    assert_eq!(cloud.model.lock().unwrap().unauthenticated, 0);
    let out = d.cli(&["cloud", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("last pull") && text.contains(SITE), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_down_then_every_event_delivered_exactly_once() {
    let cloud = Cloud::start(SITE);
    let d = start_registered(&cloud, "");
    first_pull(&d).await;
    cloud.faults().down = true;
    let http = d.http.unwrap();
    let macs: Vec<String> = (0..1000u32).map(|i| format!("0a0b0c{i:06x}")).collect();
    // 100 at a time: the point is a thousand events, and the harness's one-second header
    // deadline must hold on a loaded 2-core machine running other tests beside this one.
    for chunk in macs.chunks(100) {
        let mut tasks = Vec::new();
        for mac in chunk {
            let mac = mac.clone();
            tasks.push(tokio::spawn(async move {
                send_plain(http, get("/46xxsettings.txt", &ua(&mac)))
                    .await
                    .unwrap()
                    .status
            }));
        }
        for t in tasks {
            assert_eq!(
                t.await.unwrap(),
                200,
                "phones are served while the cloud is down"
            );
        }
    }
    // Timeouts too: answers slower than the client waits.
    {
        let mut f = cloud.faults();
        f.down = false;
        f.delay_ms = 1500;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = status(&d).await;
    assert!(st["outbox"]["events"].as_u64().unwrap() >= 1000, "{st}");
    assert!(!st["last_error"].is_null(), "{st}");
    assert!(!st["failing_since"].is_null(), "{st}");
    assert!(st["lag_secs"].as_i64().unwrap() >= 1, "{st}");
    // Raised at the first failure a whole second after the episode began: on a loaded machine
    // that failure (each waits for the request timeout) may still be on its way.
    eventually(
        Duration::from_secs(10),
        "the sync_failed alarm",
        async || alarm_kinds(&d).await.contains(&"sync_failed".to_string()),
    )
    .await;

    // Back, but the first two acknowledgements are lost after the cloud committed.
    {
        let mut f = cloud.faults();
        f.delay_ms = 0;
        f.lose_event_responses = 2;
    }
    eventually(Duration::from_secs(30), "outbox drained", async || {
        status(&d).await["outbox"]["events"] == 0
    })
    .await;
    let seen = cloud.events_of("seen_unclaimed");
    let mut per_mac: HashMap<String, u32> = HashMap::new();
    for e in &seen {
        *per_mac
            .entry(e["mac"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_mac.len(), 1000);
    assert!(
        per_mac.values().all(|n| *n == 1),
        "a sighting counted twice"
    );
    // Each phone only named its MAC in its User-Agent, over plain HTTP.
    assert!(seen.iter().all(|e| e["proof"] == "claim"), "{:?}", seen[0]);
    let m = cloud.model.lock().unwrap();
    assert!(
        m.duplicates > 0,
        "lost answers caused redelivery, and the cloud dropped them"
    );
    assert_eq!(m.received - m.duplicates, m.events.len() as u64);
}

/// A cloud that answers 503 with `Retry-After: 2` is left alone for those two seconds, pull and
/// push alike, although the backoff alone would have come back within 400 ms; the status says
/// what the cloud asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_by_pull_and_push() {
    let cloud = Cloud::start(SITE);
    let d = start_registered(&cloud, "");
    first_pull(&d).await;
    {
        let mut f = cloud.faults();
        f.down = true;
        f.retry_after = Some("2".into());
    }
    eventually(Duration::from_secs(10), "a 503 answered", async || {
        cloud.faults().down_answers > 0
    })
    .await;
    let first = Instant::now();
    let at_first = cloud.faults().down_answers;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let answers = cloud.faults().down_answers - at_first;
    assert_eq!(answers, 0, "{answers} requests within the 2 s asked");
    eventually(Duration::from_secs(5), "the retry after 2 s", async || {
        cloud.faults().down_answers > at_first
    })
    .await;
    assert!(first.elapsed() >= Duration::from_secs(2));
    let st = status(&d).await;
    let error = st["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("HTTP 503") && error.contains("asked to retry after 2s"),
        "{st}"
    );
    assert!(!error.contains("push:"), "the push was not tried: {error}");

    cloud.faults().down = false;
    eventually(Duration::from_secs(10), "sync working again", async || {
        status(&d).await["failing_since"].is_null()
    })
    .await;
}

/// The `sync_failed` alarm's message for the box's sync, once it is raised.
async fn sync_failed_message(d: &Daemon) -> Option<String> {
    let (_, v) = d.api("GET", "/alarms", None).await;
    v.as_array()?
        .iter()
        .find(|a| a["kind"] == "sync_failed")
        .and_then(|a| a["message"].as_str().map(str::to_string))
}

/// Serves TLS on `port` of 127.0.0.1 with a certificate for localhost from a CA the box does
/// not pin, as a cloud that changed its CA would; waits for the old listener to go.
async fn foreign_tls_server(port: u16) -> tokio::task::JoinHandle<()> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => break l,
            Err(e) => assert!(Instant::now() < deadline, "port {port}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    })
}

/// Over one long outage the cause changes: the cloud is gone (connection refused), then
/// something answers on its address with a certificate from another CA. The `sync_failed`
/// alarm says each in turn, so the operator is not sent after the cause already gone. Last,
/// the pinned CA's file goes missing: the alarm names the setting, not only a path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_failed_names_the_cause_of_now_refused_then_a_foreign_certificate_then_no_ca() {
    let cloud = Cloud::start(SITE);
    // The pinned CA outlives the cloud, whose files go with it.
    let kept = tempfile::tempdir().unwrap();
    let ca_file = kept.path().join("cloud-ca.pem");
    std::fs::copy(&cloud.ca_file, &ca_file).unwrap();
    let config = cloud.config().replace(
        &cloud.ca_file.display().to_string(),
        &ca_file.display().to_string(),
    );
    let d = Daemon::start_with(&config);
    register(&d, &cloud);
    first_pull(&d).await;
    let port = cloud.addr.port();
    drop(cloud);
    eventually(
        Duration::from_secs(15),
        "sync_failed: refused",
        async || {
            sync_failed_message(&d)
                .await
                .is_some_and(|m| m.contains("cannot connect to the cloud") && m.contains("refused"))
        },
    )
    .await;
    let server = foreign_tls_server(port).await;
    eventually(
        Duration::from_secs(15),
        "sync_failed: the foreign CA",
        async || {
            sync_failed_message(&d)
                .await
                .is_some_and(|m| m.contains("not issued by the CA pinned in [cloud] ca_file"))
        },
    )
    .await;
    assert!(
        status(&d).await["last_error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("pull: TLS with the cloud"),
        "the push is not tried when the cloud cannot be reached"
    );
    std::fs::remove_file(&ca_file).unwrap();
    eventually(
        Duration::from_secs(15),
        "sync_failed: no CA file",
        async || {
            sync_failed_message(&d)
                .await
                .is_some_and(|m| m.contains("the cloud's CA ([cloud] ca_file): "))
        },
    )
    .await;
    server.abort();
}

/// A backlog of events (a boot storm's sightings, delivered one per batch here) does not hold
/// back pulls: after at most 100 batches the box asks the cloud for changes again, and it
/// goes on at once rather than after the pull interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_push_backlog_does_not_starve_pulls() {
    let cloud = Cloud::start(SITE);
    let config = cloud.config().replace(
        "pull_interval_ms = 100\n",
        "pull_interval_ms = 600000\npush_batch = 1\n",
    );
    let d = Daemon::start_with(&config);
    register(&d, &cloud);
    first_pull(&d).await;
    cloud.faults().down = true;
    let http = d.http.unwrap();
    for i in 0..250u32 {
        let mac = format!("0a0b0d{i:06x}");
        let r = send_plain(http, get("/46xxsettings.txt", &ua(&mac)))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    eventually(Duration::from_secs(10), "250 events queued", async || {
        status(&d).await["outbox"]["events"].as_u64() >= Some(250)
    })
    .await;
    cloud.faults().down = false;
    d.cli(&["cloud", "sync"]);
    eventually(Duration::from_secs(30), "outbox drained", async || {
        status(&d).await["outbox"]["events"] == 0
    })
    .await;
    let order = cloud.model.lock().unwrap().order.clone();
    let longest = order.split('p').map(str::len).max().unwrap_or(0);
    assert!(longest <= 100, "{longest} event posts in a row: {order}");
    assert!(order.matches('e').count() >= 250, "{order}");
}

/// A page the box rejects holds back only what the box learns: every round still delivers the
/// outbox, so with a small outbox each sighting reaches the cloud and nothing is dropped, and
/// the `sync_rejected` alarm each retry raises takes one outbox entry, not one per retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_page_does_not_hold_back_events() {
    let cloud = Cloud::start(SITE);
    let d = start_registered(&cloud, "outbox_max = 3\n");
    first_pull(&d).await;
    const PAGES: usize = 100_000;
    let bad = json!({"version": 2, "cursor": "0", "next_cursor": "1"}).to_string();
    cloud.faults().raw_pages = vec![bad; PAGES];
    for i in 0..10u32 {
        let mac = format!("0a0b0e{i:06x}");
        let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", &ua(&mac)))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        eventually(Duration::from_secs(10), "sighting delivered", async || {
            cloud
                .events_of("seen_unclaimed")
                .iter()
                .any(|e| e["mac"] == mac.as_str())
        })
        .await;
    }
    assert!(cloud.faults().raw_pages.len() < PAGES, "no page was pulled");
    eventually(
        Duration::from_secs(10),
        "sync_rejected delivered",
        async || {
            cloud
                .events_of("alarm")
                .iter()
                .any(|e| e["kind"] == "sync_rejected")
        },
    )
    .await;
    let kinds = alarm_kinds(&d).await;
    assert!(kinds.contains(&"sync_rejected".to_string()), "{kinds:?}");
    assert!(!kinds.contains(&"outbox_overflow".to_string()), "{kinds:?}");
    assert!(cloud.events_of("outbox_overflow").is_empty());
}

/// A page whose values are megabytes long is rejected with a short message: the alarm, the
/// last error and the alarm events sent to the cloud quote only the start of each value, and
/// the retries' alarms take one outbox entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_huge_values_is_rejected_in_few_words() {
    let cloud = Cloud::start(SITE);
    let d = start_registered(&cloud, "");
    first_pull(&d).await;
    let huge = "A".repeat(2_000_000);
    let pages = [
        json!({"version": 1, "cursor": "0", "next_cursor": "1",
               "devices": [{"mac": huge, "state": "claimed"}]}),
        json!({"version": 1, "cursor": "0", "next_cursor": "1",
               "devices": [{"mac": PHONE, "state": huge}]}),
    ];
    cloud.faults().raw_pages = (0..4).map(|i| pages[i % 2].to_string()).collect();
    eventually(Duration::from_secs(20), "pages rejected", async || {
        cloud.faults().raw_pages.is_empty()
    })
    .await;
    let (_, alarms) = d.api("GET", "/alarms?kind=sync_rejected", None).await;
    let message = alarms[0]["message"].as_str().unwrap();
    assert!(message.len() < 1000, "{} bytes", message.len());
    assert!(message.contains("AAAA"), "{message}");
    let last_error = status(&d).await["last_error"].as_str().unwrap().to_string();
    assert!(last_error.len() < 1000, "{} bytes", last_error.len());
    eventually(
        Duration::from_secs(10),
        "alarm events delivered",
        async || status(&d).await["outbox"]["events"] == 0,
    )
    .await;
    let sent = cloud.events_of("alarm");
    assert!(!sent.is_empty());
    for e in sent {
        let message = e["message"].as_str().unwrap();
        assert!(message.len() < 2000, "{} bytes", message.len());
    }
}

/// A page that asks for more at once but does not move the cursor is rejected and retried
/// with backoff, instead of being fetched and applied again as fast as the cloud answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_does_not_advance_is_not_fetched_in_a_loop() {
    let cloud = Cloud::start(SITE);
    let d = start_registered(&cloud, "");
    first_pull(&d).await;
    const PAGES: usize = 10_000;
    let stuck = json!({"version": 1, "cursor": "0", "next_cursor": "0", "more": true});
    cloud.faults().raw_pages = vec![stuck.to_string(); PAGES];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fetched = PAGES - cloud.faults().raw_pages.len();
    // Backoff from 50 ms to 400 ms allows about ten in 3 s; without it, hundreds.
    assert!(
        (1..=30).contains(&fetched),
        "{fetched} pages fetched in 3 s"
    );
    assert!(alarm_kinds(&d).await.contains(&"sync_rejected".to_string()));
    assert_eq!(status(&d).await["cursor"], "0");
}

/// A registration answer whose site name a page could not carry is refused whole, naming the
/// field: the box stays unregistered, with no cloud certificate installed.
#[tokio::test]
async fn a_registration_naming_a_bad_site_is_refused_and_nothing_kept() {
    let cloud = Cloud::start("hq\u{7}");
    let d = Daemon::start_with(&cloud.config());
    let out = try_register(&d, &cloud);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("registration answer: site"), "{stderr}");
    let st = status(&d).await;
    assert_eq!(
        (&st["registered"], &st["site"]),
        (&json!(false), &json!("")),
        "{st}"
    );
    assert!(!d.data_dir().join("pki/appliance.crt").exists());
}

/// Small deterministic PRNG: the test needs varied kill points, not cryptographic randomness.
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_pull_and_push_loses_and_duplicates_nothing() {
    let cloud = Cloud::start(SITE);
    let mut d = start_registered(&cloud, "");
    // Slow answers widen the windows in which a kill lands mid-request.
    cloud.faults().delay_ms = 20;
    let mut seed = 0x5eed_u64;
    let states = [
        "claimed",
        "associated",
        "activated",
        "deactivated",
        "released",
    ];
    let mut sightings = 0;
    let rounds = 20;
    for round in 0..rounds {
        // Cloud side: every device moves one lifecycle step; new devices appear.
        for i in 0..20 {
            let mac = format!("0c0000{:02x}{:04x}", round, i);
            cloud.set_device(&mac, "claimed", "", json!({"ROUND": round.to_string()}));
        }
        for i in 0..20 {
            let mac = format!("0c0000{:02x}{:04x}", round.max(1) - 1, i);
            let state = states[(round as usize + i) % states.len()];
            let site = if state == "claimed" || state == "released" {
                ""
            } else {
                SITE
            };
            cloud.set_device(&mac, state, site, json!({}));
        }
        // Box side: unknown phones asking for files, flushed so they are acknowledged writes.
        for i in 0..10 {
            let mac = format!("0d0000{:02x}{:04x}", round, i);
            let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", &ua(&mac)))
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            sightings += 1;
        }
        let _ = d.api("GET", "/alarms", None).await;
        tokio::time::sleep(Duration::from_millis(next(&mut seed) % 300)).await;
        d.kill9();
        d = d.restart();
    }
    let log_len = cloud.log_len().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = status(&d).await;
        if st["cursor"] == log_len.as_str() && st["outbox"]["events"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up after the crashes: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Sightings: each delivered exactly once.
    let seen = cloud.events_of("seen_unclaimed");
    let mut per_mac: HashMap<String, u32> = HashMap::new();
    for e in &seen {
        *per_mac
            .entry(e["mac"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_mac.len(), sightings, "a sighting was lost");
    assert!(
        per_mac.values().all(|n| *n == 1),
        "a sighting was duplicated"
    );

    // Every pulled change applied exactly once: one enrollment event per logged change whose
    // state or site differs from the device's previous one.
    let mut last: HashMap<String, (String, String)> = HashMap::new();
    let mut expected = 0;
    for entry in &cloud.model.lock().unwrap().log {
        let key = entry["mac"].as_str().unwrap().to_string();
        let now = (
            entry["state"].as_str().unwrap().to_string(),
            entry["site"].as_str().unwrap().to_string(),
        );
        if last.get(&key) != Some(&now) {
            expected += 1;
        }
        last.insert(key, now);
    }
    assert_eq!(cloud.events_of("enrollment").len(), expected);

    // The box mirrors the cloud's final state.
    let devices: HashMap<String, Value> = cloud
        .model
        .lock()
        .unwrap()
        .devices
        .clone()
        .into_iter()
        .collect();
    for (mac, dev) in devices {
        assert_eq!(
            device_state(&d, &mac).await.as_deref(),
            dev["state"].as_str(),
            "{mac}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_page_rejected_whole_previous_state_kept() {
    let cloud = Cloud::start(SITE);
    cloud.set_device(PHONE, "activated", SITE, json!({}));
    let d = start_registered(&cloud, "");
    eventually(Duration::from_secs(10), "activated", async || {
        device_state(&d, PHONE).await.as_deref() == Some("activated")
    })
    .await;
    let (code, _) = d
        .api(
            "PATCH",
            &format!("/devices/{PHONE}"),
            Some(json!({"secrets": {"SIP_PASSWORD": "pw"}})),
        )
        .await;
    assert_eq!(code, 200);
    let id = d.identity(PHONE).await;
    assert_eq!(secret_file(&d, &id).await, 200);
    let cursor = status(&d).await["cursor"].clone();

    // A page that releases the phone but also carries garbage; one missing a required field;
    // one that is not JSON; then an out-of-order page.
    let release = json!({"mac": PHONE, "state": "released"});
    let pages = [
        json!({"version": 1, "cursor": cursor, "next_cursor": "99",
               "devices": [release, {"mac": "not-a-mac", "state": "claimed"}]}),
        json!({"version": 1, "cursor": cursor, "devices": [release]}),
    ];
    {
        let mut f = cloud.faults();
        f.raw_pages = pages.iter().map(Value::to_string).collect();
        f.raw_pages.push("{\"version\":1,\"cursor\":".into());
        f.replay_from_start = true;
    }
    cloud.set_device(PHONE, "released", "", json!({}));
    // The real page (after the faults) releases the phone; before that, it keeps being served.
    let mut rejected = false;
    eventually(
        Duration::from_secs(20),
        "faults consumed and release applied",
        async || {
            if !rejected && alarm_kinds(&d).await.contains(&"sync_rejected".to_string()) {
                rejected = true;
            }
            // Read the box first: if faults were still pending afterwards, nothing after them
            // (the release) can have been applied yet.
            let state = device_state(&d, PHONE).await;
            let served = secret_file(&d, &id).await;
            let box_cursor = status(&d).await["cursor"].clone();
            let f = cloud.faults();
            let consumed = f.raw_pages.is_empty() && !f.replay_from_start;
            drop(f);
            if !consumed {
                assert_eq!(
                    state.as_deref(),
                    Some("activated"),
                    "a rejected page changed state"
                );
                assert_eq!(served, 200, "a rejected page stopped the phone");
                assert_eq!(box_cursor, cursor, "a rejected page moved the cursor");
            }
            consumed && state.as_deref() == Some("released")
        },
    )
    .await;
    assert!(rejected || alarm_kinds(&d).await.contains(&"sync_rejected".to_string()));
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let rejected = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "sync_rejected")
        .unwrap()
        .clone();
    assert!(rejected["count"].as_u64().unwrap() >= 4, "{rejected}");
    assert_eq!(secret_file(&d, &id).await, 403);
}

/// A page whose firmware policy names a family pattern is rejected whole, as other hostile
/// pages are: the device change it carries is not applied, the cursor stays, and the
/// `sync_rejected` alarm names the model (it used to be stored as it came).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_a_policy_for_a_family_pattern_is_rejected_whole() {
    let cloud = Cloud::start(SITE);
    cloud.set_device(PHONE, "activated", SITE, json!({}));
    let d = start_registered(&cloud, "");
    eventually(Duration::from_secs(10), "activated", async || {
        device_state(&d, PHONE).await.as_deref() == Some("activated")
    })
    .await;
    let cursor = status(&d).await["cursor"].clone();
    let page = json!({"version": 1, "cursor": cursor, "next_cursor": "99",
        "devices": [{"mac": PHONE, "state": "released"}],
        "policies": [{"site": SITE, "model": "J1*", "policy": "latest"}]});
    cloud.faults().raw_pages = vec![page.to_string()];
    eventually(Duration::from_secs(10), "sync_rejected", async || {
        alarm_kinds(&d).await.contains(&"sync_rejected".to_string())
    })
    .await;
    let (_, alarms) = d.api("GET", "/alarms?kind=sync_rejected", None).await;
    let message = alarms[0]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"model "J1*": family patterns are not supported"#),
        "{message}"
    );
    assert_eq!(device_state(&d, PHONE).await.as_deref(), Some("activated"));
    assert_eq!(status(&d).await["cursor"], cursor);
}

/// A page of a few devices, each with tens of thousands of parameters, holds more items in all
/// than a page may: every list is short, yet held in maps it would cost hundreds of megabytes.
/// It is refused before it is read, with a `sync_rejected` alarm saying so and where; the
/// device's state and the cursor stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_too_many_items_in_all_is_refused() {
    let cloud = Cloud::start(SITE);
    cloud.set_device(PHONE, "activated", SITE, json!({}));
    let d = start_registered(&cloud, "");
    eventually(Duration::from_secs(10), "activated", async || {
        device_state(&d, PHONE).await.as_deref() == Some("activated")
    })
    .await;
    let cursor = status(&d).await["cursor"].clone();
    let params: serde_json::Map<String, Value> =
        (0..40_000).map(|i| (format!("P{i}"), json!("v"))).collect();
    let device = |state: &str| json!({"mac": PHONE, "state": state, "params": params});
    let page = json!({"version": 1, "cursor": cursor, "next_cursor": "99",
        "devices": [device("claimed"), device("claimed"), device("released")]});
    cloud.faults().raw_pages = vec![page.to_string()];
    eventually(Duration::from_secs(20), "sync_rejected", async || {
        alarm_kinds(&d).await.contains(&"sync_rejected".to_string())
    })
    .await;
    let (_, alarms) = d.api("GET", "/alarms?kind=sync_rejected", None).await;
    let message = alarms[0]["message"].as_str().unwrap();
    assert!(
        message.contains("more than 100000 items in one page")
            && message.contains("devices[2].params"),
        "{message}"
    );
    assert_eq!(device_state(&d, PHONE).await.as_deref(), Some("activated"));
    assert_eq!(status(&d).await["cursor"], cursor);
}

/// Cursors that go round in a cycle (0 → A → B → 0, each page asking for more) end the round
/// as rejected at the page leading back, and the next round waits with backoff, instead of
/// the pages being pulled and applied as fast as the cloud answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_going_round_in_a_cycle_are_not_pulled_in_a_loop() {
    let cloud = Cloud::start(SITE);
    let d = start_registered(&cloud, "");
    first_pull(&d).await;
    assert_eq!(status(&d).await["cursor"], "0");
    cloud.faults().cycle = ["0", "A", "B"].map(String::from).to_vec();
    eventually(Duration::from_secs(10), "sync_rejected", async || {
        alarm_kinds(&d).await.contains(&"sync_rejected".to_string())
    })
    .await;
    let (_, alarms) = d.api("GET", "/alarms?kind=sync_rejected", None).await;
    let message = alarms[0]["message"].as_str().unwrap();
    assert!(message.contains("cursors go round in a cycle"), "{message}");
    let before = cloud.faults().cycle_pulls;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fetched = cloud.faults().cycle_pulls - before;
    // Three pages a round, rounds 50 ms to 400 ms apart with backoff: a few dozen in 3 s;
    // without the bound, a hundred pages a round and no pause, thousands.
    assert!(
        (3..=80).contains(&fetched),
        "{fetched} pages fetched in 3 s"
    );
    let (_, alarms) = d.api("GET", "/alarms?kind=sync_rejected", None).await;
    assert!(alarms[0]["count"].as_u64().unwrap() >= 2, "{alarms}");
}

/// A cloud that takes its time answering does not hold up a stop: SIGTERM during a pull that
/// would wait a minute ends the daemon cleanly within the drain time (well inside systemd's
/// `TimeoutStopSec=`, after which it would be killed with its queued check-ins).
#[tokio::test]
async fn a_stop_does_not_wait_for_a_slow_cloud() {
    let cloud = Cloud::start(SITE);
    let config = cloud
        .config()
        .replace("request_timeout_ms = 1000", "request_timeout_ms = 60000");
    let mut d = Daemon::start_with(&config);
    register(&d, &cloud);
    first_pull(&d).await;
    cloud.faults().delay_ms = 60_000;
    // The next pull (every 100 ms) is now waiting for the cloud.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    signal(d.child.as_ref().unwrap().id(), "TERM");
    let mut child = d.child.take().unwrap();
    let exit = wait_timeout(&mut child, Duration::from_secs(15));
    if exit.is_none() {
        let _ = child.kill();
    }
    let exit = exit.expect("stopped while a pull was waiting for the cloud");
    assert!(exit.success(), "{exit:?}\n{}", d.log());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(d.log().contains("stopped"), "{}", d.log());
    assert!(
        d.log().contains("cloud sync"),
        "the log names the loop: {}",
        d.log()
    );
}

/// The box registers again (another cloud) while a pull from the first one is on its way. The
/// first cloud's page arrives after the new registration, whose cursor (empty again) it
/// matches; it belongs to the old registration and is dropped: the box holds only what the
/// new cloud says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_pulled_before_registering_again_is_not_applied() {
    let old = Cloud::start(SITE);
    old.set_device(PHONE, "activated", SITE, json!({}));
    let new = Cloud::start(SITE);
    // One CA file trusting both clouds, and a timeout the old cloud's slow answer fits in.
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("clouds.pem");
    let pem = |c: &Cloud| std::fs::read_to_string(&c.ca_file).unwrap();
    std::fs::write(&both, pem(&old) + &pem(&new)).unwrap();
    let config = old
        .config()
        .replace(
            &old.ca_file.display().to_string(),
            &both.display().to_string(),
        )
        .replace("request_timeout_ms = 1000", "request_timeout_ms = 10000");
    let d = Daemon::start_with(&config);
    old.faults().delay_ms = 2000;
    register(&d, &old);
    // The first pull is now waiting for the old cloud's answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    register(&d, &new);
    assert_eq!(
        old.model.lock().unwrap().pulls,
        0,
        "old page already answered"
    );
    eventually(Duration::from_secs(10), "old page answered", async || {
        old.model.lock().unwrap().pulls >= 1
    })
    .await;
    eventually(Duration::from_secs(10), "new cloud pulled", async || {
        new.model.lock().unwrap().pulls >= 1 && !status(&d).await["last_pull"].is_null()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = status(&d).await;
    assert_eq!(st["url"], new.url().as_str(), "{st}");
    assert_eq!(st["cursor"], "0", "{st}");
    assert!(st["last_error"].is_null(), "{st}");
    assert_eq!(
        device_state(&d, PHONE).await,
        None,
        "the old cloud's page was applied"
    );
}

/// A registration decides which cloud the box obeys, yet its entry had the path alone
/// (`created`): it now names the cloud and the site, before and after, and never the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_is_audited_with_its_cloud_and_site() {
    let cloud = Cloud::start(SITE);
    let d = start_registered(&cloud, "");
    let (code, entries) = d
        .api("GET", "/audit?resource=/api/v1/sync/register", None)
        .await;
    assert_eq!(code, 200, "{entries}");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(
        e["summary"],
        format!(
            "registered with the cloud at {} for site {SITE}",
            cloud.url()
        ),
        "{e}"
    );
    assert_eq!(e["changes"]["site"]["after"], SITE, "{e}");
    assert_eq!(e["changes"]["registered"]["after"], true, "{e}");
    assert!(!e.to_string().contains(&cloud.token()), "{e}");
}

/// `cloud status` tells a box without `[cloud] ca_file` (which cannot register) from one
/// that is configured but not registered yet, in the API, the table and `cloud sync`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_whether_sync_is_configured() {
    let bare = Daemon::start();
    let st = status(&bare).await;
    assert_eq!(
        (st["configured"].clone(), st["registered"].clone()),
        (json!(false), json!(false)),
        "{st}"
    );
    let out = bare.cli(&["cloud", "status"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("not configured") && table.contains("ca_file"),
        "{table}"
    );
    let out = bare.cli(&["cloud", "sync"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not configured") && !err.contains("cloud register"),
        "{err}"
    );

    let cloud = Cloud::start(SITE);
    let d = Daemon::start_with(&cloud.config());
    let st = status(&d).await;
    assert_eq!(
        (st["configured"].clone(), st["registered"].clone()),
        (json!(true), json!(false)),
        "{st}"
    );
    let table = String::from_utf8_lossy(&d.cli(&["cloud", "status"]).stdout).into_owned();
    assert!(!table.contains("not configured"), "{table}");
    let out = d.cli(&["cloud", "sync"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not registered") && err.contains("cloud register --url URL"),
        "{err}"
    );
}

/// `cloud register` without `--token` reads the one-time token from standard input (a
/// terminal would be asked without echo), so it is in no process list or shell history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_reads_the_token_from_standard_input() {
    let cloud = Cloud::start(SITE);
    let d = Daemon::start_with(&cloud.config());
    let url = cloud.url();
    let register = |input: &str| d.cli_with_input(&["cloud", "register", "--url", &url], input);
    let out = register("");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no registration token"),
        "{out:?}"
    );
    assert_eq!(status(&d).await["registered"], false);
    let out = register(&format!("{}\n", cloud.token()));
    assert!(out.status.success(), "{out:?}");
    let st = status(&d).await;
    assert_eq!(st["registered"], true, "{st}");
    assert_eq!(st["site"], SITE, "{st}");
}

/// A cloud URL's login is masked wherever the box shows the URL: the status, the log, the
/// audit log, and a refusal (which the audit log keeps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_urls_login_is_masked() {
    let cloud = Cloud::start(SITE);
    let d = Daemon::start_with(&cloud.config());
    let url = cloud.url().replacen("https://", "https://edge:s3cret@", 1);
    let out = d.cli(&[
        "cloud",
        "register",
        "--url",
        &url,
        "--token",
        &cloud.token(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("s3cret"),
        "{out:?}"
    );
    let st = status(&d).await;
    assert_eq!(
        st["url"],
        cloud.url().replacen("https://", "https://edge:***@", 1),
        "{st}"
    );
    first_pull(&d).await;

    let plain = url.replacen("https://", "http://", 1);
    let out = d.cli(&["cloud", "register", "--url", &plain, "--token", "t"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http://edge:***@") && err.contains("https://"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    let (_, audit) = d
        .api("GET", "/audit?resource=/api/v1/sync/register", None)
        .await;
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");
    assert!(audit.to_string().contains("edge:***@"), "{audit}");
    assert!(!audit.to_string().contains("s3cret"), "{audit}");
    let log = d.log();
    assert!(log.contains("registered with the cloud"), "{log}");
    assert!(!log.contains("s3cret"), "{log}");
}

/// A cloud that refuses one event for good (422, naming it) and takes at most four a post
/// (413): the batches are split down to the event it refuses, which is set apart (listed,
/// counted, alarmed with the cloud's reason, never sent back as an alarm) while every other
/// event is delivered once, and later events flow. Requeued once the cloud takes it, it is
/// delivered too. Before, the refused batch was sent again at every retry, for ever, and no
/// event after it reached the cloud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_cloud_refuses_is_set_apart_and_holds_back_no_other() {
    const BAD: &str = "0a0b0f000005";
    let cloud = Cloud::start(SITE);
    let d = start_registered(&cloud, "");
    first_pull(&d).await;
    cloud.faults().down = true;
    let macs: Vec<String> = (0..10u32).map(|i| format!("0a0b0f{i:06x}")).collect();
    let sight = async |mac: &str| {
        let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", &ua(mac)))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    };
    for mac in &macs {
        sight(mac).await;
    }
    eventually(Duration::from_secs(10), "10 sightings queued", async || {
        status(&d).await["outbox"]["events"].as_u64() >= Some(10)
    })
    .await;
    {
        let mut f = cloud.faults();
        f.reject_macs.insert(BAD.to_string());
        f.max_events = Some(4);
        f.down = false;
    }
    d.cli(&["cloud", "sync"]);
    eventually(Duration::from_secs(30), "outbox drained", async || {
        status(&d).await["outbox"]["events"] == 0
    })
    .await;
    let delivered = |mac: &str| {
        cloud
            .events_of("seen_unclaimed")
            .iter()
            .filter(|e| e["mac"] == mac)
            .count()
    };
    for mac in &macs {
        assert_eq!(delivered(mac), usize::from(mac != BAD), "{mac}");
    }
    assert!(
        cloud.faults().refused_posts >= 2,
        "413 and 422 were answered"
    );

    let st = status(&d).await;
    assert_eq!(st["rejected"], 1, "{st}");
    let (code, r) = d.api("GET", "/sync/rejected", None).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["count"], 1, "{r}");
    let letter = &r["events"][0];
    assert_eq!(letter["event"]["mac"], BAD, "{r}");
    assert_eq!(letter["status"], 422, "{r}");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("is blocked here"),
        "{r}"
    );
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let alarm = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "sync_event_rejected")
        .unwrap_or_else(|| panic!("{alarms}"))
        .clone();
    let message = alarm["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 422") && message.contains("is blocked here"),
        "{message}"
    );
    assert_eq!(
        metric(&d.metrics().await, "edgeprov_sync_rejected_events"),
        1
    );
    let out = d.cli(&["cloud", "rejected"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    let id = letter["event"]["id"].as_str().unwrap();
    assert!(
        out.status.success() && listed.contains(id) && listed.contains("422"),
        "{listed}"
    );

    // Later events are not held back.
    sight("0a0b0f0000ff").await;
    eventually(Duration::from_secs(10), "a later sighting", async || {
        delivered("0a0b0f0000ff") == 1
    })
    .await;

    // The cloud takes it now: put back, it is delivered, and the alarm goes.
    cloud.faults().reject_macs.clear();
    let out = d.cli(&["cloud", "rejected", "--requeue"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        Duration::from_secs(10),
        "the requeued sighting",
        async || delivered(BAD) == 1,
    )
    .await;
    assert_eq!(status(&d).await["rejected"], 0);
    assert!(
        !alarm_kinds(&d)
            .await
            .contains(&"sync_event_rejected".to_string())
    );
    assert!(
        cloud
            .events_of("alarm")
            .iter()
            .all(|e| e["kind"] != "sync_event_rejected"),
        "the cloud is not told what it refused"
    );
}

/// A registered box backed up, wiped and restored is the same appliance to the cloud: its
/// events are delivered with no new registration, and the restore says so. Before, the backup
/// left out `pki/cloud/appliance.*`: the restored box kept the registration but every round
/// failed for want of its identity. A backup without the identity (as older ones are) is
/// restored with the advice to register again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_box_keeps_its_cloud_identity() {
    let cloud = Cloud::start(SITE);
    let mut d = start_registered(&cloud, "");
    first_pull(&d).await;
    let file = d.dir.path().join("box.backup");
    let backup = |d: &Daemon| {
        let out = d.cli(&["backup", "--out", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let restore = |d: &Daemon| {
        std::fs::remove_dir_all(d.data_dir()).unwrap();
        let out = d.cli(&["restore", "--yes", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    backup(&d);
    d.stop();
    let said = restore(&d);
    assert!(said.contains("same appliance to the cloud"), "{said}");
    assert!(said.contains("register this one again"), "{said}");
    let d = d.restart();
    let mac = "0a0b10000001";
    let r = send_plain(d.http.unwrap(), get("/46xxsettings.txt", &ua(mac)))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    eventually(Duration::from_secs(10), "sighting delivered", async || {
        cloud
            .events_of("seen_unclaimed")
            .iter()
            .any(|e| e["mac"] == mac)
    })
    .await;
    assert_eq!(
        cloud.model.lock().unwrap().appliances,
        1,
        "not registered again"
    );
    assert!(status(&d).await["last_error"].is_null());

    // A backup without the identity, as older edgeprovs made them.
    std::fs::remove_dir_all(d.data_dir().join("pki/cloud")).unwrap();
    backup(&d);
    let mut d = d;
    d.stop();
    let said = restore(&d);
    assert!(said.contains("registers again"), "{said}");
}

/// A DHCP reservation the cloud sends (the device parameter `dhcp:address` of a pulled page)
/// is honoured: the phone is handed that address. One the box cannot honour (another device's
/// address, outside every subnet) is refused with an alarm naming the device, never applied,
/// and never stops the rest of the page. Before, only locally set parameters were read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_reservations_from_the_cloud_are_honoured_or_refused_with_an_alarm() {
    use common::dhcp::*;
    use std::net::{Ipv4Addr, SocketAddr};
    const GIADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 98, 1);
    let cloud = Cloud::start(SITE);
    let fixed = "127.0.98.30";
    // mac(1) and mac(2) of the test DHCP client: 02ed00000001, 02ed00000002, 02ed00000003.
    cloud.set_device(
        "02ed00000001",
        "activated",
        SITE,
        json!({"dhcp:address": fixed}),
    );
    cloud.set_device(
        "02ed00000002",
        "activated",
        SITE,
        json!({"dhcp:address": fixed}),
    );
    cloud.set_device(
        "02ed00000003",
        "activated",
        SITE,
        json!({"dhcp:address": "10.9.9.9"}),
    );
    let d = start_registered(
        &cloud,
        r#"
[dhcp]
enabled = true
listen = "127.0.0.1:0"
provisioning_url = "https://127.0.0.1:8443/"
[[dhcp.subnet]]
network = "127.0.98.0/24"
ranges = [["127.0.98.100", "127.0.98.200"]]
"#,
    );
    let alarms = async || {
        let (code, v) = d
            .api("GET", "/alarms?kind=dhcp_reservation_refused", None)
            .await;
        assert_eq!(code, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    };
    // Reservations are read again every 10 s.
    eventually(
        Duration::from_secs(25),
        "the refused reservations alarmed",
        async || alarms().await.len() == 2,
    )
    .await;
    let mut sources: Vec<String> = alarms()
        .await
        .iter()
        .map(|a| a["source"].as_str().unwrap_or_default().to_string())
        .collect();
    sources.sort();
    assert_eq!(sources, ["02ed00000002", "02ed00000003"]);
    let listeners: Value =
        serde_json::from_slice(&std::fs::read(d.data_dir().join("listeners.json")).unwrap())
            .unwrap();
    let server: SocketAddr = listeners["dhcp"].as_str().unwrap().parse().unwrap();
    let acks = tokio::task::spawn_blocking(move || {
        let relay = Relay::bind(GIADDR, server.port(), server);
        [1, 2, 3].map(|n| relay.dora(mac(n), 0x9000 + n, &[]).map(|(_, ack)| ack))
    })
    .await
    .unwrap();
    let ips: Vec<_> = acks
        .iter()
        .map(|a| a.as_ref().map(|a| (a.msg_type, a.yiaddr.to_string())))
        .collect();
    assert_eq!(ips[0], Some((ACK, fixed.to_string())), "{ips:?}");
    for other in &ips[1..] {
        let (kind, ip) = other.clone().expect("a dynamic lease");
        assert_eq!(kind, ACK);
        assert_ne!(ip, fixed, "{ips:?}");
    }

    // The cloud corrects one: its alarm clears and the phone gets the address on its next DORA.
    cloud.set_device(
        "02ed00000003",
        "activated",
        SITE,
        json!({"dhcp:address": "127.0.98.40"}),
    );
    eventually(
        Duration::from_secs(25),
        "the corrected one cleared",
        async || alarms().await.len() == 1,
    )
    .await;
    assert_eq!(alarms().await[0]["source"], "02ed00000002");
    let ack = tokio::task::spawn_blocking(move || {
        let relay = Relay::bind(GIADDR, server.port(), server);
        relay.dora(mac(3), 0x9103, &[]).map(|(_, ack)| ack)
    })
    .await
    .unwrap()
    .expect("DORA");
    assert_eq!(
        (ack.msg_type, ack.yiaddr.to_string()),
        (ACK, "127.0.98.40".into())
    );
}
