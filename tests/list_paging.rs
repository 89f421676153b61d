//! `/alarms` and `/dhcp/leases` page as `/devices` does (`offset`, `limit`, `X-Total-Count`),
//! on the real daemon: they had no paging, so at a site of thousands of phones every request
//! carried every alarm and every lease. The pages of an unchanged list cover each entry exactly
//! once, the total is the number that match, a bad `offset` or `limit` is refused naming it,
//! and the CLI's `--limit`/`--offset` give the API's page.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::dhcp::*;
use common::*;
use serde_json::{Value, json};

/// Entries in each list: not a multiple of the page sizes below, so the last page is short.
const ENTRIES: usize = 23;

/// One page: status, entries and `X-Total-Count`.
async fn page(d: &Daemon, path: &str) -> (u16, Vec<Value>, Option<usize>) {
    let r = d.get_raw(path.to_string(), &d.token).await;
    let total = r
        .headers
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let entries = body.as_array().cloned().unwrap_or_default();
    assert!(r.status != 200 || body.is_array(), "{path}: {}", r.text());
    (r.status, entries, total)
}

/// Walks `base` (a path with its query, ending in `?` or `&`) page by page, `limit` at a time,
/// and checks that the pages, joined, are the whole list in the same order, with the total in
/// every page's `X-Total-Count`. Answers the whole list.
async fn walk(d: &Daemon, base: &str, limit: usize) -> Vec<Value> {
    let (status, whole, total) = page(d, base.trim_end_matches(['?', '&'])).await;
    assert_eq!(status, 200, "{base}");
    assert_eq!(
        total,
        Some(whole.len()),
        "{base}: total of the unpaged list"
    );
    let mut joined = Vec::new();
    // One request past the last page, to see it empty; bounded by the list's length.
    for n in 0..=whole.len().div_ceil(limit) {
        let path = format!("{base}offset={}&limit={limit}", n * limit);
        let (status, entries, total) = page(d, &path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(total, Some(whole.len()), "{path}");
        assert!(entries.len() <= limit, "{path}: {} entries", entries.len());
        if entries.is_empty() {
            break;
        }
        joined.extend(entries);
    }
    assert_eq!(joined, whole, "{base}: pages of {limit} joined");
    whole
}

/// A bad `offset` or `limit` is a 400 naming the field, on each route.
async fn refused(d: &Daemon, route: &str) {
    for (query, field) in [
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("offset=-5", "offset"),
        ("offset=1.5", "offset"),
    ] {
        let path = format!("{route}?{query}");
        let r = d.get_raw(path.clone(), &d.token).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(field), "{path}: {error}");
    }
}

/// A plain-HTTP GET sent from the loopback address `from`; the answer's status line.
async fn plain_get_from(from: Ipv4Addr, to: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {J179_UA}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_string()
}

/// The CLI's table of a page: its data rows (stdout, past the heading) and what it says on
/// stderr about the rest of the list.
fn cli_table(d: &Daemon, args: &[&str]) -> (usize, String) {
    let out = d.cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(out.status.success(), "{args:?}: {stderr}");
    let rows = String::from_utf8_lossy(&out.stdout).lines().count();
    (rows.saturating_sub(1), stderr)
}

fn cli_json(d: &Daemon, args: &[&str]) -> Vec<Value> {
    let out = d.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn alarms_page_by_offset_and_limit() {
    let d = Daemon::start();
    // A secret file asked for over plain HTTP raises one alarm per address asking.
    d.add_device(
        json!({"mac": "001122000101", "model": "J179", "secrets": {"SIP_PASSWORD": "pw"}}),
    )
    .await;
    for n in 0..ENTRIES {
        let from = Ipv4Addr::new(127, 0, 97, 10 + n as u8);
        let status = plain_get_from(from, d.http.unwrap(), "/001122000101.txt").await;
        assert!(status.starts_with("HTTP/1.1 403"), "{from}: {status}");
    }
    let whole = walk(&d, "/alarms?kind=secret_without_proof&", 5).await;
    assert_eq!(whole.len(), ENTRIES, "{whole:?}");
    let sources: BTreeSet<&str> = whole
        .iter()
        .map(|a| a["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), ENTRIES, "each alarm once: {sources:?}");

    // Every alarm has the same severity: the pages hold still on ties alone, both ways.
    walk(&d, "/alarms?sort=severity&", 4).await;
    walk(&d, "/alarms?sort=severity&order=asc&", 7).await;
    walk(&d, "/alarms?sort=source&order=asc&", 1).await;

    // The total is of what matches the filter, not of every alarm.
    let (_, entries, total) = page(&d, "/alarms?q=127.0.97.&limit=0").await;
    assert_eq!((entries.len(), total), (0, Some(ENTRIES)));
    let (_, _, total) = page(&d, "/alarms?q=no-such-source&limit=3").await;
    assert_eq!(total, Some(0));

    refused(&d, "/alarms").await;

    let (_, api, _) = page(&d, "/alarms?offset=3&limit=4").await;
    let cli = cli_json(&d, &["--json", "alarms", "--offset", "3", "--limit", "4"]);
    assert_eq!(cli, api);
    // A table that shows part of the list says so, and where the next page starts.
    assert_eq!(
        cli_table(&d, &["alarms", "--offset", "3", "--limit", "4"]),
        (4, "showing 4-7 of 23; --offset 7 for the next page".into())
    );
    assert_eq!(
        cli_table(&d, &["alarms", "--kind", "secret_without_proof"]),
        (ENTRIES, String::new())
    );
}

const GIADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 98, 1);

const DHCP: &str = r#"
[dhcp]
enabled = true
listen = "127.0.0.1:0"
provisioning_url = "https://127.0.0.1:8443/"
[[dhcp.subnet]]
network = "127.0.98.0/24"
ranges = [["127.0.98.100", "127.0.98.250"]]
router = "127.0.98.1"
lease_seconds = 3600
"#;

#[tokio::test]
async fn leases_page_by_offset_and_limit() {
    let d = Daemon::start_with(DHCP);
    let listeners: Value =
        serde_json::from_slice(&std::fs::read(d.data_dir().join("listeners.json")).unwrap())
            .unwrap();
    let server: std::net::SocketAddr = listeners["dhcp"].as_str().unwrap().parse().unwrap();
    let relay = Relay::bind(GIADDR, server.port(), server);
    let acked = tokio::task::spawn_blocking(move || {
        (0..ENTRIES as u32)
            .map(|n| {
                let (_, ack) = relay.dora(mac(n), 0x5000 + n, &[]).expect("DORA");
                assert_eq!(ack.msg_type, ACK, "client {n}");
                ack.yiaddr
            })
            .collect::<BTreeSet<Ipv4Addr>>()
    })
    .await
    .unwrap();
    assert_eq!(acked.len(), ENTRIES);

    let whole = walk(&d, "/dhcp/leases?", 5).await;
    let ips: Vec<Ipv4Addr> = whole
        .iter()
        .map(|l| l["ip"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ips, acked.into_iter().collect::<Vec<_>>(), "address order");
    walk(&d, "/dhcp/leases?state=bound&", 6).await;
    walk(&d, "/dhcp/leases?", 1).await;

    let (_, entries, total) = page(&d, "/dhcp/leases?state=released&limit=5").await;
    assert_eq!((entries.len(), total), (0, Some(0)));
    let (_, entries, total) = page(&d, "/dhcp/leases?offset=1000").await;
    assert_eq!((entries.len(), total), (0, Some(ENTRIES)));

    refused(&d, "/dhcp/leases").await;

    let (_, api, _) = page(&d, "/dhcp/leases?offset=20&limit=5").await;
    assert_eq!(api.len(), 3);
    let cli = cli_json(
        &d,
        &["--json", "dhcp", "leases", "--offset", "20", "--limit", "5"],
    );
    assert_eq!(cli, api);
    // The last page says what it shows, with no next page to point at.
    assert_eq!(
        cli_table(&d, &["dhcp", "leases", "--offset", "20", "--limit", "5"]),
        (3, "showing 21-23 of 23".into())
    );
}

/// `device list` takes the same `--limit`/`--offset` (one definition now) and still gives the
/// API's page.
#[tokio::test]
async fn device_list_still_pages() {
    let d = Daemon::start();
    for n in 0..5 {
        d.add_device(json!({"mac": format!("0011220002{n:02x}")}))
            .await;
    }
    walk(&d, "/devices?", 2).await;
    refused(&d, "/devices").await;
    let (_, api, _) = page(&d, "/devices?offset=1&limit=3").await;
    let cli = cli_json(
        &d,
        &["--json", "device", "list", "--offset", "1", "--limit", "3"],
    );
    assert_eq!(cli, api);
    assert_eq!(
        cli_table(&d, &["device", "list", "--limit", "1"]),
        (1, "showing 1 of 5; --offset 1 for the next page".into())
    );
    assert_eq!(cli_table(&d, &["device", "list"]), (5, String::new()));
}
