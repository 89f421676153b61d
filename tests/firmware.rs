//! Firmware cache end to end: a real upstream on loopback, the real daemon, phones over HTTP
//! and HTTPS.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::upstream::{Mode, Upstream, image, sha256_hex};
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::json;

const FILE: &str = "FW_S_J179_R4_1_3_0_6.bin";

fn release_toml(up: &Upstream, file: &str, models: &str, version: &str, size: bool) -> String {
    let size = if size {
        format!("size = {}\n", up.image.len())
    } else {
        String::new()
    };
    format!(
        "[[firmware.release]]\nmodels = [{models}]\nversion = \"{version}\"\nfile = \"{file}\"\nurls = [\"{}\"]\nsha256 = \"{}\"\n{size}",
        up.url(file),
        sha256_hex(&up.image)
    )
}

/// What a download produced, hashed as it streams (so hundreds of them stay small).
struct Got {
    status: u16,
    headers: http::HeaderMap,
    len: u64,
    sha: String,
}

async fn download(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Got {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("user-agent", J179_UA);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    let resp = match tls {
        Some(cfg) => {
            let s = tokio_rustls::TlsConnector::from(cfg)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .unwrap();
            tokio::spawn(conn);
            tx.send_request(req).await.unwrap()
        }
        None => {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            tx.send_request(req).await.unwrap()
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            len += data.len() as u64;
            ctx.update(&data);
        }
    }
    let sha = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Got {
        status,
        headers,
        len,
        sha,
    }
}

async fn alarms(d: &Daemon) -> String {
    let (status, v) = d.api("GET", "/alarms", None).await;
    assert_eq!(status, 200);
    v.to_string()
}

fn cached(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.data_dir().join("firmware/sha256"))
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_requests_cause_one_upstream_fetch() {
    let up = Upstream::start(image(2 * 1024 * 1024, 1)).await;
    // Slow enough that every phone asks while the one fetch is still running.
    up.set_default(Mode::Slow(64 * 1024, Duration::from_millis(30)));
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let want = sha256_hex(&up.image);
    let tls = client_config(&d.ca_pem(), None);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (http, https, tls) = (d.http.unwrap(), d.https, tls.clone());
        tasks.spawn(async move {
            match i % 4 {
                0 => download(https, Some(tls), "GET", &format!("/{FILE}"), &[]).await,
                1 => download(https, Some(tls), "GET", &format!("/firmware/{FILE}"), &[]).await,
                2 => download(http, None, "GET", &format!("/{FILE}"), &[]).await,
                _ => download(http, None, "GET", &format!("/sub/dir/{FILE}"), &[]).await,
            }
        });
    }
    let results = tokio::time::timeout(Duration::from_secs(120), tasks.join_all())
        .await
        .expect("all downloads finish");
    assert_eq!(results.len(), 200);
    for g in &results {
        assert_eq!(g.status, 200);
        assert_eq!(g.len, up.image.len() as u64);
        assert_eq!(g.sha, want, "identical, correct bytes");
    }
    assert_eq!(up.requests(), 1, "exactly one upstream fetch");
    assert_eq!(cached(&d), vec![want.clone()]);
    // Cached now: more requests do not go upstream.
    let g = download(d.http.unwrap(), None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!((g.status, g.sha), (200, want));
    assert_eq!(up.requests(), 1);
    let text = d.metrics().await;
    assert_eq!(
        metric(&text, "edgeprov_firmware_cache_fetches_total"),
        1,
        "{text}"
    );
    let (hits, misses) = (
        metric(&text, "edgeprov_firmware_cache_hits_total"),
        metric(&text, "edgeprov_firmware_cache_misses_total"),
    );
    assert_eq!(hits + misses, 201, "every request counted once: {text}");
    assert!(hits >= 1 && misses >= 1, "{text}");
}

/// Phones that keep arriving after a failed fetch are answered from its failure for a while
/// instead of each asking the upstream again (a boot storm against a vendor site that is down
/// would otherwise send it a request per phone, and raise the alarm per phone); after that
/// while, or at once for an operator's prefetch, the upstream is asked again.
#[tokio::test]
async fn phones_after_a_failed_fetch_do_not_each_ask_the_upstream_again() {
    let up = Upstream::start(image(100_000, 43)).await;
    up.set_default(Mode::Error);
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    d.add_device(json!({"mac": "001122aabbcc", "model": "J179"}))
        .await;
    let http = d.http.unwrap();
    let failed_at = Instant::now();
    for _ in 0..20 {
        let g = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
        assert_eq!(g.status, 503);
        assert_eq!(g.headers["retry-after"], "60");
    }
    assert_eq!(
        up.requests(),
        1,
        "one fetch failed; the other phones got its answer"
    );
    let (_, v) = d.api("GET", "/alarms", None).await;
    let alarm = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "firmware_upstream_unreachable")
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert_eq!(alarm["count"], 1, "{alarm}");

    // An operator's change (perhaps to the URL that failed) lets the next phone ask again.
    let (status, v) = d
        .api("PUT", "/firmware/policies/global", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{v}");
    let g = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 503);
    assert_eq!(up.requests(), 2);

    // The operator's prefetch asks again at once.
    up.set_default(Mode::Normal);
    let (status, job) = d.api("POST", "/firmware/prefetch", None).await;
    assert_eq!(status, 202, "{job}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, job) = d
            .api("GET", &format!("/firmware/jobs/{}", job["id"]), None)
            .await;
        if job["state"] != "running" {
            assert_eq!(job["state"], "done", "{job}");
            break;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failed_at.elapsed() < Duration::from_secs(10),
        "within the while"
    );
    let g = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!((g.status, g.sha), (200, sha256_hex(&up.image)));
    assert_eq!(up.requests(), 3);
}

#[tokio::test]
async fn wrong_bytes_are_never_served_and_raise_an_alarm() {
    let up = Upstream::start(image(512 * 1024, 2)).await;
    up.push(Mode::WrongBytes);
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", false));
    let http = d.http.unwrap();
    let g = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 503, "nothing served");
    assert_eq!(g.headers["retry-after"], "60");
    assert!(cached(&d).is_empty());
    assert!(
        std::fs::read_dir(d.data_dir().join("firmware/partial"))
            .unwrap()
            .next()
            .is_none(),
        "the wrong download is deleted"
    );
    assert!(alarms(&d).await.contains("firmware_checksum_mismatch"));
    // The phones after it are answered from that failure (a boot storm against an upstream
    // that sends wrong bytes would otherwise download the image once per phone)…
    let g = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 503);
    assert_eq!(up.requests(), 1, "no new fetch right after a failed one");
    // …until an operator's change (perhaps the hash that was wrong) asks again.
    let (status, v) = d
        .api("PUT", "/firmware/policies/global", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{v}");
    let g = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.sha, sha256_hex(&up.image));
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn unreachable_upstream_raises_an_alarm() {
    let up = Upstream::start(image(1024, 3)).await;
    up.set_default(Mode::Error);
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let g = download(d.http.unwrap(), None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 503);
    assert!(alarms(&d).await.contains("firmware_upstream_unreachable"));
}

#[tokio::test]
async fn an_image_larger_than_the_cache_raises_disk_full() {
    let up = Upstream::start(image(200_000, 16)).await;
    let d = Daemon::start_with(&format!(
        "[firmware]\nmax_cache_bytes = 100000\n{}",
        release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true)
    ));
    let g = download(d.http.unwrap(), None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 503);
    assert_eq!(up.requests(), 0, "refused before downloading");
    assert!(alarms(&d).await.contains("firmware_disk_full"));
}

#[tokio::test]
async fn a_broken_download_resumes_with_range() {
    let up = Upstream::start(image(1024 * 1024, 4)).await;
    up.push(Mode::CutAfter(300_000));
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let g = download(d.http.unwrap(), None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.sha, sha256_hex(&up.image));
    assert_eq!(up.ranges(), vec![None, Some("bytes=300000-".to_string())]);
}

/// A cached image that is there but cannot be opened (a symlink loop here: the daemon runs as
/// root, whom permissions do not stop) used to answer every phone 503 without `Retry-After`
/// and with no alarm, for as long as the file stayed so. Now the cache forgets it, fetches it
/// again over it, serves the phone, and a `firmware_cache_unreadable` alarm names the file.
#[tokio::test]
async fn a_cached_image_that_cannot_be_opened_is_fetched_again_with_an_alarm() {
    let up = Upstream::start(image(100_000, 21)).await;
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let http = d.http.unwrap();
    let first = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(first.status, 200);
    let sha = sha256_hex(&up.image);
    let path = d.data_dir().join("firmware/sha256").join(&sha);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&sha, &path).unwrap();

    let again = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(again.status, 200, "{}", d.log());
    assert_eq!(again.sha, sha);
    assert_eq!(up.requests(), 2, "fetched again");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        *up.image,
        "replaced by the image"
    );
    let (_, v) = d.api("GET", "/alarms", None).await;
    let alarm = v
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["kind"] == "firmware_cache_unreadable")
        .unwrap_or_else(|| panic!("no alarm: {v}"));
    assert_eq!(alarm["source"], path.display().to_string());
    assert!(alarm["message"].as_str().unwrap().contains(FILE), "{alarm}");

    // Served from the new copy: no further fetch.
    let third = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!((third.status, up.requests()), (200, 2));
}

/// A download resumed after a break whose bytes then do not make the image (the partial file's
/// tail zeroed by a power cut, or, as here, the upstream's bytes changed between the two
/// requests) used to fail the fetch with a `firmware_checksum_mismatch` alarm, the phone
/// answered 503, though a whole download from the same URL gives the image. Now the partial
/// file is dropped and the image downloaded whole, once, before that counts as a mismatch.
#[tokio::test]
async fn a_resumed_download_that_is_not_the_image_is_downloaded_whole_once() {
    let up = Upstream::start(image(1024 * 1024, 24)).await;
    up.push(Mode::CutAfter(300_000));
    // The resume gets the rest with a byte at 512 KiB flipped.
    up.push(Mode::WrongBytes);
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let g = download(d.http.unwrap(), None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 200, "{}", d.log());
    assert_eq!(g.sha, sha256_hex(&up.image));
    assert_eq!(
        up.ranges(),
        vec![None, Some("bytes=300000-".to_string()), None],
        "broken, resumed, then whole"
    );
    assert!(!alarms(&d).await.contains("firmware_checksum_mismatch"));

    // Wrong whole too: then it is a mismatch, alarmed, and nothing is served.
    let other = "other.bin";
    let up2 = Upstream::start(image(200_000, 25)).await;
    up2.set_default(Mode::WrongBytes);
    up2.push(Mode::CutAfter(50_000));
    let d2 = Daemon::start_with(&release_toml(&up2, other, "\"J179\"", "4.1.3.0.6", true));
    let g = download(d2.http.unwrap(), None, "GET", &format!("/{other}"), &[]).await;
    assert_eq!(g.status, 503);
    assert_eq!(up2.requests(), 3, "broken, resumed, whole: then given up");
    assert!(alarms(&d2).await.contains("firmware_checksum_mismatch"));
}

/// A phone waits for a slow fetch only `firmware.phone_wait_ms`, then gets 503 with
/// `Retry-After` while the one fetch goes on; asking again later gets the whole image from it.
#[tokio::test]
async fn a_slow_fetch_answers_waiting_phones_retry_later_and_goes_on() {
    let up = Upstream::start(image(1024 * 1024, 7)).await;
    up.set_default(Mode::Slow(64 * 1024, Duration::from_millis(100)));
    let d = Daemon::start_with(&format!(
        "[firmware]\nphone_wait_ms = 200\n{}",
        release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true)
    ));
    let http = d.http.unwrap();
    let first = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(first.status, 503);
    assert_eq!(first.headers.get("retry-after").unwrap(), "60");
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let g = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
        if g.status == 200 {
            break g;
        }
        assert_eq!(g.status, 503);
        assert!(Instant::now() < deadline, "the fetch never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(got.sha, sha256_hex(&up.image));
    assert_eq!(up.requests(), 1, "the retries joined the one fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_a_fetch_never_serves_a_partial_file() {
    let up = Upstream::start(image(2 * 1024 * 1024, 5)).await;
    up.set_default(Mode::Slow(32 * 1024, Duration::from_millis(20)));
    let mut d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let http = d.http.unwrap();
    let phone = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(http).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("/{FILE}"))
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        tx.send_request(req).await.map(|r| r.status().as_u16())
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while up.sent() < 1_000_000 {
        assert!(Instant::now() < deadline, "upstream transfer did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.kill9();
    let asked = phone.await.unwrap();
    assert!(
        asked.is_err(),
        "the waiting phone got no (partial) answer: {asked:?}"
    );
    assert!(cached(&d).is_empty(), "nothing published");
    let part = d
        .data_dir()
        .join(format!("firmware/partial/{}.part", sha256_hex(&up.image)));
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < up.image.len() as u64, "{kept}");

    up.set_default(Mode::Normal);
    let d = d.restart();
    // Every byte range a phone could ask for is either the real image or refused.
    let g = download(d.http.unwrap(), None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.sha, sha256_hex(&up.image));
    let last = up
        .ranges()
        .last()
        .cloned()
        .flatten()
        .expect("resumed with Range");
    let from: u64 = last
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from > 0 && from <= kept, "resumed at {from} of {kept} kept");
    assert!(!part.exists());
}

/// A partial download is resumed after a restart only while a release still names its image:
/// one the config dropped meanwhile is removed at start (it would otherwise stay on the disk
/// for ever, outside `max_cache_bytes`), one still named is kept and resumed.
#[tokio::test]
async fn a_partial_download_no_release_names_is_removed_at_start() {
    let (dropped, kept) = (
        Upstream::start(image(400_000, 41)).await,
        Upstream::start(image(400_000, 42)).await,
    );
    dropped.set_default(Mode::CutAfter(100_000));
    kept.set_default(Mode::CutAfter(100_000));
    let kept_toml = release_toml(&kept, "kept.bin", "\"J169\"", "2", true);
    let mut d = Daemon::start_with(&format!(
        "{}{kept_toml}",
        release_toml(&dropped, FILE, "\"J179\"", "4.1.3.0.6", true)
    ));
    let http = d.http.unwrap();
    for file in [FILE, "kept.bin"] {
        let g = download(http, None, "GET", &format!("/{file}"), &[]).await;
        assert_eq!(g.status, 503, "{file}");
    }
    let partial = d.data_dir().join("firmware/partial");
    let part_of = |up: &Upstream| partial.join(format!("{}.part", sha256_hex(&up.image)));
    assert!(part_of(&dropped).exists() && part_of(&kept).exists());
    std::fs::write(partial.join("stray.tmp"), b"left by something else").unwrap();
    let had = std::fs::metadata(part_of(&kept)).unwrap().len();

    d.stop();
    std::fs::write(d.config_path(), base_config(&d.data_dir(), &kept_toml)).unwrap();
    kept.set_default(Mode::Normal);
    let d = d.restart();
    let names: Vec<String> = std::fs::read_dir(&partial)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![format!("{}.part", sha256_hex(&kept.image))]);
    let g = download(d.http.unwrap(), None, "GET", "/kept.bin", &[]).await;
    assert_eq!((g.status, g.sha), (200, sha256_hex(&kept.image)));
    assert_eq!(
        kept.ranges().last().cloned().flatten().as_deref(),
        Some(format!("bytes={had}-").as_str()),
        "the kept partial download is resumed"
    );
}

#[tokio::test]
async fn ranges_head_etag_match_the_file() {
    let up = Upstream::start(image(100_000, 6)).await;
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let http = d.http.unwrap();
    let tls = client_config(&d.ca_pem(), None);
    let img = up.image.clone();
    let path = format!("/firmware/{FILE}");
    let full = download(d.https, Some(tls.clone()), "GET", &path, &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.headers["accept-ranges"], "bytes");
    assert_eq!(full.headers["content-length"], "100000");
    let etag = full.headers["etag"].to_str().unwrap().to_string();

    for (range, start, end) in [
        ("bytes=0-99", 0usize, 99usize),
        ("bytes=40000-40999", 40_000, 40_999),
        ("bytes=99990-", 99_990, 99_999),
        ("bytes=-10", 99_990, 99_999),
        ("bytes=99999-200000", 99_999, 99_999),
    ] {
        for tls in [None, Some(tls.clone())] {
            let addr = if tls.is_some() { d.https } else { http };
            let g = download(addr, tls, "GET", &path, &[("range", range)]).await;
            assert_eq!(g.status, 206, "{range}");
            assert_eq!(g.sha, sha256_hex(&img[start..=end]), "{range}");
            assert_eq!(
                g.headers["content-range"],
                format!("bytes {start}-{end}/100000").as_str()
            );
            assert_eq!(
                g.headers["content-length"],
                (end - start + 1).to_string().as_str()
            );
        }
    }
    let g = download(http, None, "GET", &path, &[("range", "bytes=100000-")]).await;
    assert_eq!(g.status, 416);
    assert_eq!(g.headers["content-range"], "bytes */100000");

    let g = download(
        http,
        None,
        "GET",
        &path,
        &[("range", "bytes=10-19"), ("if-range", &etag)],
    )
    .await;
    assert_eq!((g.status, g.len), (206, 10));
    let g = download(
        http,
        None,
        "GET",
        &path,
        &[("range", "bytes=10-19"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(
        (g.status, g.len),
        (200, 100_000),
        "a changed file is sent whole"
    );
    let g = download(http, None, "GET", &path, &[("range", "bytes=0-1,5-6")]).await;
    assert_eq!(
        (g.status, g.len),
        (200, 100_000),
        "multi-range gets the whole file"
    );

    let g = download(http, None, "HEAD", &path, &[]).await;
    assert_eq!((g.status, g.len), (200, 0));
    assert_eq!(g.headers["content-length"], "100000");
    let g = download(http, None, "GET", &path, &[("if-none-match", &etag)]).await;
    assert_eq!((g.status, g.len), (304, 0));
    // If-None-Match compares weakly: the tag a proxy weakened still names this image.
    let weak = format!("\"other\", W/{etag}");
    let g = download(http, None, "GET", &path, &[("if-none-match", &weak)]).await;
    assert_eq!((g.status, g.len), (304, 0));
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn eviction_keeps_images_a_policy_points_at() {
    let old = Upstream::start(image(400_000, 7)).await;
    let new = Upstream::start(image(400_000, 8)).await;
    let k = Upstream::start(image(400_000, 9)).await;
    let mut cfg = String::from("[firmware]\nmax_cache_bytes = 1000000\n");
    cfg += &release_toml(&new, "j179-new.bin", "\"J179\"", "4.1.10.0.1", true);
    cfg += &release_toml(&old, "j179-old.bin", "\"J179\"", "4.1.3.0.6", true);
    cfg += &release_toml(&k, "k175.bin", "\"K175\"", "2.0", true);
    let d = Daemon::start_with(&cfg);
    let http = d.http.unwrap();
    // Least recently used first: the latest J179 image (pinned by the default policy).
    for f in ["j179-new.bin", "j179-old.bin", "k175.bin"] {
        let g = download(http, None, "GET", &format!("/{f}"), &[]).await;
        assert_eq!(g.status, 200, "{f}");
    }
    let mut have = cached(&d);
    have.sort();
    let mut want = vec![sha256_hex(&new.image), sha256_hex(&k.image)];
    want.sort();
    assert_eq!(
        have, want,
        "the unpinned old image was evicted, not the pinned LRU one"
    );

    // Pin J179 to the old version: now the new one may go.
    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"J179": "4.1.3.0.6"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let g = download(http, None, "GET", "/j179-old.bin", &[]).await;
    assert_eq!(g.status, 200);
    let mut have = cached(&d);
    have.sort();
    let mut want = vec![sha256_hex(&old.image), sha256_hex(&k.image)];
    want.sort();
    assert_eq!(have, want);
}

/// A download of known size used to evict to make room before it started: when it then
/// failed (wrong bytes, an upstream refusing), the images evicted for it were gone for
/// nothing. Room is now made only for a verified image, so the cached image stays and is
/// served from the cache.
#[tokio::test]
async fn a_failed_fetch_evicts_nothing() {
    let old = Upstream::start(image(600_000, 21)).await;
    let new = Upstream::start(image(600_000, 22)).await;
    let mut cfg = String::from("[firmware]\nmax_cache_bytes = 1000000\n");
    cfg += &release_toml(&old, "j179-old.bin", "\"J179\"", "4.1.3.0.6", true);
    cfg += &release_toml(&new, "j179-new.bin", "\"J179\"", "4.1.10.0.1", true);
    let d = Daemon::start_with(&cfg);
    let http = d.http.unwrap();
    let g = download(http, None, "GET", "/j179-old.bin", &[]).await;
    assert_eq!((g.status, g.sha.clone()), (200, sha256_hex(&old.image)));
    // The new image is the one `latest` points at: the old one is unpinned, and the new one
    // does not fit beside it.
    for (mode, why) in [(Mode::WrongBytes, "wrong bytes"), (Mode::Error, "503")] {
        new.set_default(mode);
        // Asks the upstream again now, not after the last failure's while.
        let (status, v) = d
            .api("PUT", "/firmware/policies/global", Some(json!({})))
            .await;
        assert_eq!(status, 200, "{v}");
        let g = download(http, None, "GET", "/j179-new.bin", &[]).await;
        assert_eq!(g.status, 503, "{why}");
        assert_eq!(
            cached(&d),
            vec![sha256_hex(&old.image)],
            "the cached image stays after a failed fetch ({why})"
        );
        let g = download(http, None, "GET", "/j179-old.bin", &[]).await;
        assert_eq!((g.status, g.sha), (200, sha256_hex(&old.image)), "{why}");
        assert_eq!(old.requests(), 1, "served from the cache ({why})");
    }
    assert_eq!(new.requests(), 2, "each failure came from the upstream");
    let (status, v) = d.api("GET", "/firmware", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["cache"]["total_bytes"], 600_000, "{v}");
}

/// Yealink models are spelled `SIP-T54W` (as their User-Agents say) in some inventories and
/// `T54W` in others. A `T5*` release used to miss the first spelling: such a phone's own
/// `{mac}.cfg` named no firmware and both prefetches passed it by. Both spellings now get the
/// image, served and prefetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yealink_model_spelled_with_sip_matches_a_family_release() {
    let up = Upstream::start(image(100_000, 23)).await;
    let d = Daemon::start_with(&release_toml(&up, "t5.rom", "\"T5*\"", "96.86.0.70", true));
    let macs = [("001565aa0001", "SIP-T54W"), ("001565aa0002", "T54W")];
    for (mac, model) in macs {
        d.add_device(json!({"mac": mac, "model": model, "site": "hq"}))
            .await;
    }
    for (mac, model) in macs {
        let id = d.identity(mac).await;
        let ua = format!("Yealink SIP-T54W 96.86.0.70 {mac}");
        let mut req = get(&format!("/{mac}.cfg"), &ua);
        req.headers_mut()
            .insert("host", "localhost:8443".parse().unwrap());
        let r = send(d.https, client_config(&d.ca_pem(), Some(&id)), req)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{model}");
        assert!(
            r.text()
                .contains("static.firmware.url = https://localhost:8443/firmware/t5.rom"),
            "{model}: {}",
            r.text()
        );
    }

    let (status, job) = d.api("POST", "/firmware/prefetch", None).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["images"][0]["file"], "t5.rom", "{job}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let (_, v) = d
            .api("GET", &format!("/firmware/jobs/{}", job["id"]), None)
            .await;
        if v["state"] != "running" {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(cached(&d), vec![sha256_hex(&up.image)]);

    let (status, v) = d
        .api(
            "POST",
            "/jobs",
            Some(json!({"kind": "firmware_prefetch", "selection": {"site": "hq"}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let (_, v) = d.api("GET", &format!("/jobs/{}", v["id"]), None).await;
        if ["done", "failed", "stopped"].contains(&v["state"].as_str().unwrap()) {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let details: Vec<&str> = job["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details, ["t5.rom cached", "t5.rom cached"], "{job}");
    assert_eq!(up.requests(), 1);
}

/// Polls a firmware prefetch job until it is no longer running.
async fn prefetched(d: &Daemon, job: &serde_json::Value) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = d
            .api("GET", &format!("/firmware/jobs/{}", job["id"]), None)
            .await;
        if v["state"] != "running" {
            return v;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A release URL that carries a vendor portal's login used to be shown whole by the API, the
/// CLI, the alarms and the audit log, and its login went to the upstream in the Host header,
/// not as authorization. Now the password is masked everywhere an operator reads, and the
/// fetch authenticates with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_urls_password_is_masked_and_used_to_fetch() {
    let up = Upstream::start(image(50_000, 24)).await;
    let down = Upstream::start(image(50_000, 25)).await;
    down.set_default(Mode::Error);
    let d = Daemon::start();
    let secret = "s3cr%40t";
    let with_login = |u: &Upstream, file: &str| {
        u.url(file)
            .replacen("http://", &format!("http://vendor:{secret}@"), 1)
    };
    let masked =
        |u: &Upstream, file: &str| u.url(file).replacen("http://", "http://vendor:***@", 1);
    for (u, file, model) in [(&up, "t5.rom", "T5*"), (&down, "j179.bin", "J179")] {
        let (status, v) = d
            .api(
                "POST",
                "/firmware/releases",
                Some(json!({"file": file, "models": [model], "version": "1.0",
                    "sha256": sha256_hex(&u.image), "size": u.image.len(),
                    "urls": [with_login(u, file)]})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["urls"], json!([masked(u, file)]));
    }
    d.add_device(json!({"mac": "001565aa0001", "model": "T54W"}))
        .await;
    d.add_device(json!({"mac": "c81fea83e85a", "model": "J179"}))
        .await;
    let (status, job) = d.api("POST", "/firmware/prefetch", None).await;
    assert_eq!(status, 202, "{job}");
    let job = prefetched(&d, &job).await;
    assert_eq!(job["images"][0]["state"], "failed", "{job}");
    assert_eq!(job["images"][1]["state"], "cached", "{job}");

    let head = up.heads()[0].to_ascii_lowercase();
    // base64("vendor:s3cr@t")
    assert!(
        head.contains("authorization: basic dmvuzg9yonmzy3jada=="),
        "{head}"
    );
    assert!(
        head.contains(&format!("host: {}\r\n", up.addr)),
        "no login in the Host header: {head}"
    );

    let (_, firmware) = d.api("GET", "/firmware", None).await;
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let (_, audit) = d.api("GET", "/audit", None).await;
    let cli = d.cli(&["--json", "firmware", "list"]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli = String::from_utf8_lossy(&cli.stdout).into_owned();
    for (what, shown) in [
        ("GET /firmware", firmware.to_string()),
        ("the job", job.to_string()),
        ("the alarms", alarms.to_string()),
        ("the audit log", audit.to_string()),
        ("edgeprov firmware list", cli),
        ("the log", d.log()),
    ] {
        assert!(
            !shown.contains("s3cr"),
            "{what} shows the password: {shown}"
        );
    }
    assert!(firmware.to_string().contains(&masked(&up, "t5.rom")));
    assert!(
        alarms.to_string().contains(&masked(&down, "j179.bin")),
        "{alarms}"
    );
    assert!(
        audit.to_string().contains(&masked(&up, "t5.rom")),
        "{audit}"
    );

    let (status, _) = d.api("DELETE", "/firmware/releases/j179.bin", None).await;
    assert_eq!(status, 204);
    let (_, audit) = d.api("GET", "/audit", None).await;
    assert!(!audit.to_string().contains("s3cr"), "{audit}");
}

/// A signed link's secret is in its query (`?X-Amz-Signature=…`, `?token=…`): it used to be
/// shown whole by the API, the CLI, the job, the alarms, the audit log and the log, where a
/// `user:pass@` login was masked. Now every query value is masked there, and the fetch still
/// sends the link as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_release_urls_query_is_masked_and_used_to_fetch() {
    let up = Upstream::start(image(50_000, 28)).await;
    let down = Upstream::start(image(50_000, 29)).await;
    down.set_default(Mode::Error);
    let d = Daemon::start();
    let signed = |u: &Upstream, file: &str| {
        format!(
            "{}?X-Amz-Credential=AKIAQSECRETKEY&X-Amz-Signature=feedSECRETsig&token=SECRETtok",
            u.url(file)
        )
    };
    let masked = |u: &Upstream, file: &str| {
        format!(
            "{}?X-Amz-Credential=***&X-Amz-Signature=***&token=***",
            u.url(file)
        )
    };
    for (u, file, model) in [(&up, "t5.rom", "T5*"), (&down, "j179.bin", "J179")] {
        let (status, v) = d
            .api(
                "POST",
                "/firmware/releases",
                Some(json!({"file": file, "models": [model], "version": "1.0",
                    "sha256": sha256_hex(&u.image), "size": u.image.len(),
                    "urls": [signed(u, file)]})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["urls"], json!([masked(u, file)]));
    }
    d.add_device(json!({"mac": "001565aa0001", "model": "T54W"}))
        .await;
    d.add_device(json!({"mac": "c81fea83e85a", "model": "J179"}))
        .await;
    let (status, job) = d.api("POST", "/firmware/prefetch", None).await;
    assert_eq!(status, 202, "{job}");
    let job = prefetched(&d, &job).await;
    let state = |file: &str| {
        job["images"]
            .as_array()
            .and_then(|images| images.iter().find(|i| i["file"] == file))
            .map(|i| i["state"].clone())
    };
    assert_eq!(state("j179.bin"), Some(json!("failed")), "{job}");
    assert_eq!(state("t5.rom"), Some(json!("cached")), "{job}");
    let head = up.heads()[0].clone();
    assert!(
        head.contains("&X-Amz-Signature=feedSECRETsig&token=SECRETtok HTTP/1.1"),
        "the fetch sends the link as it is: {head}"
    );

    let (_, firmware) = d.api("GET", "/firmware", None).await;
    let (_, alarms) = d.api("GET", "/alarms", None).await;
    let cli = d.cli(&["--json", "firmware", "list"]);
    assert!(cli.status.success(), "{cli:?}");
    let cli = String::from_utf8_lossy(&cli.stdout).into_owned();
    let (status, _) = d.api("DELETE", "/firmware/releases/j179.bin", None).await;
    assert_eq!(status, 204);
    let (_, audit) = d.api("GET", "/audit", None).await;
    for (what, shown) in [
        ("GET /firmware", firmware.to_string()),
        ("the job", job.to_string()),
        ("the alarms", alarms.to_string()),
        ("the audit log", audit.to_string()),
        ("edgeprov firmware list", cli),
        ("the log", d.log()),
    ] {
        assert!(
            !shown.contains("SECRET"),
            "{what} shows the secret: {shown}"
        );
    }
    assert!(firmware.to_string().contains(&masked(&up, "t5.rom")));
    assert!(
        alarms.to_string().contains(&masked(&down, "j179.bin")),
        "{alarms}"
    );
    assert!(
        audit.to_string().contains(&masked(&up, "t5.rom")),
        "{audit}"
    );
}

/// Uploads, scrubs, prefetches and image removals used to be entered with their path only;
/// their entries now say what was done to which image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_actions_are_audited_with_their_facts() {
    let up = Upstream::start(image(40_000, 26)).await;
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let img = image(30_000, 27);
    let sha = sha256_hex(&img);
    let (status, v) = d
        .api(
            "POST",
            "/firmware/releases",
            Some(
                json!({"file": "k.bin", "models": ["K175"], "version": "2.0",
                "sha256": sha, "size": img.len()}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let entry = |resource: &'static str| {
        let d = &d;
        async move {
            let (_, v) = d
                .api("GET", &format!("/audit?resource=/api/v1{resource}"), None)
                .await;
            v.as_array().unwrap().last().unwrap().clone()
        }
    };

    assert_eq!(put_image(&d, "k.bin", 0, &img[..10_000]).await.0, 202);
    let e = entry("/firmware/images/k.bin").await;
    assert_eq!(
        e["summary"], "firmware image k.bin upload stored up to byte 10000, not complete",
        "{e}"
    );
    assert_eq!(put_image(&d, "k.bin", 10_000, &img[10_000..]).await.0, 201);
    let (_, v) = d
        .api("GET", "/audit?resource=/api/v1/firmware/images/k.bin", None)
        .await;
    let e = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == 201)
        .unwrap()
        .clone();
    assert_eq!(
        e["summary"],
        format!("firmware image k.bin uploaded: 30000 bytes, SHA-256 {sha} verified and cached"),
        "{e}"
    );
    assert_eq!(e["changes"]["version"], "2.0", "{e}");
    assert_eq!(e["changes"]["offset"], 10_000, "{e}");
    assert_eq!(e["changes"]["size"], 30_000, "{e}");

    d.add_device(json!({"mac": "c81fea83e85a", "model": "J179"}))
        .await;
    let (status, job) = d.api("POST", "/firmware/prefetch", None).await;
    assert_eq!(status, 202, "{job}");
    prefetched(&d, &job).await;
    let e = entry("/firmware/prefetch").await;
    assert_eq!(
        e["summary"],
        format!("firmware prefetch job {} started: 1 image(s)", job["id"]),
        "{e}"
    );
    assert_eq!(e["changes"]["job"], job["id"], "{e}");
    assert_eq!(e["changes"]["images"][0]["file"], FILE, "{e}");
    assert_eq!(
        e["changes"]["images"][0]["sha256"],
        sha256_hex(&up.image),
        "{e}"
    );

    std::fs::write(d.data_dir().join(format!("firmware/sha256/{sha}")), b"rot").unwrap();
    let (status, v) = d.api("POST", "/firmware/scrub", None).await;
    assert_eq!(status, 200, "{v}");
    let e = entry("/firmware/scrub").await;
    assert_eq!(
        e["summary"], "firmware cache scrubbed: 2 image(s) checked, 1 corrupted removed",
        "{e}"
    );
    assert_eq!(
        e["changes"]["removed"],
        json!([{"sha256": sha, "files": ["k.bin"]}]),
        "{e}"
    );

    let (status, _) = d
        .api("DELETE", &format!("/firmware/images/{FILE}"), None)
        .await;
    assert_eq!(status, 204);
    let e = entry("/firmware/images/FW_S_J179_R4_1_3_0_6.bin").await;
    assert_eq!(
        e["summary"],
        format!("cached image of firmware {FILE} removed"),
        "{e}"
    );
    assert_eq!(
        e["changes"]["release"]["sha256"],
        sha256_hex(&up.image),
        "{e}"
    );
}

#[tokio::test]
async fn upgrade_script_follows_the_policy() {
    let old = Upstream::start(image(1000, 10)).await;
    let new = Upstream::start(image(1000, 11)).await;
    let mut cfg = release_toml(
        &old,
        "j179-old.bin",
        "\"J179\", \"J169\"",
        "4.1.3.0.6",
        true,
    );
    cfg += &release_toml(
        &new,
        "j179-new.bin",
        "\"J179\", \"J169\"",
        "4.1.10.0.1",
        true,
    );
    let d = Daemon::start_with(&cfg);
    let script = || async {
        let r = send_plain(d.http.unwrap(), get("/J100Supgrade.txt", J179_UA))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        r.text()
    };
    let s = script().await;
    assert!(s.contains("SET APPNAME j179-new.bin"), "{s}");
    assert!(s.contains("IF $MODEL4 SEQ J169"), "{s}");

    let (status, _) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"*": "4.1.3.0.6"})),
        )
        .await;
    assert_eq!(status, 200);
    let s = script().await;
    assert!(s.contains("SET APPNAME j179-old.bin"), "{s}");
    assert!(!s.contains("j179-new.bin"), "{s}");
    let (status, audit) = d.api("GET", "/audit", None).await;
    assert_eq!(status, 200);
    let audit = audit.to_string();
    assert!(audit.contains("firmware policies of global set"), "{audit}");
    assert!(
        audit.contains("4.1.3.0.6"),
        "the audit shows the new policy: {audit}"
    );

    let (status, _) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"J169": "off"})),
        )
        .await;
    assert_eq!(status, 200);
    let s = script().await;
    assert!(!s.contains("J169"), "{s}");
    assert!(s.contains("SET APPNAME j179-new.bin"), "{s}");
    // An unknown version is refused, naming it and the model as the request spelled it.
    for model in ["J179", "j179"] {
        let (status, v) = d
            .api(
                "PUT",
                "/firmware/policies/global",
                Some(json!({model: "9.9"})),
            )
            .await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(
            v["error"],
            format!("{model}: no release of version 9.9 for this model in the catalogue")
        );
    }
    let (_, policies) = d.api("GET", "/firmware/policies", None).await;
    assert_eq!(policies["global"], json!({"J169": "off"}), "unchanged");
}

/// A raw-bytes PUT to the admin API.
async fn put_image(d: &Daemon, file: &str, offset: u64, bytes: &[u8]) -> (u16, serde_json::Value) {
    let path = format!("/firmware/images/{file}?offset={offset}");
    d.api_bytes("PUT", &path, bytes.to_vec(), Some(&d.token))
        .await
}

#[tokio::test]
async fn upload_resumes_by_offset_and_is_verified() {
    let img = image(300_000, 13);
    let sha = sha256_hex(&img);
    let d = Daemon::start_with(&format!(
        "[[firmware.release]]\nmodels = [\"J179\"]\nversion = \"1\"\nfile = \"up.bin\"\nsha256 = \"{sha}\"\nsize = 300000\n"
    ));
    let (status, v) = put_image(&d, "up.bin", 0, &img[..100_000]).await;
    assert_eq!((status, v["offset"].as_u64()), (202, Some(100_000)), "{v}");
    // Phones asking before the upload is complete are not served a partial image.
    let g = download(d.http.unwrap(), None, "GET", "/up.bin", &[]).await;
    assert_eq!(g.status, 503);
    let (status, v) = put_image(&d, "up.bin", 5, &img[5..10]).await;
    assert_eq!(
        status, 409,
        "an offset that does not continue is refused: {v}"
    );
    let (_, list) = d.api("GET", "/firmware", None).await;
    assert_eq!(list["releases"][0]["cache"], "partial");
    assert_eq!(list["releases"][0]["partial_bytes"], 100_000);
    let (status, v) = put_image(&d, "up.bin", 100_000, &img[100_000..]).await;
    assert_eq!((status, v["complete"].as_bool()), (201, Some(true)), "{v}");
    let g = download(d.http.unwrap(), None, "GET", "/up.bin", &[]).await;
    assert_eq!((g.status, g.sha), (200, sha));

    // Wrong bytes of the right size: refused, discarded, alarmed.
    let (status, v) = d
        .api(
            "POST",
            "/firmware/releases",
            Some(
                json!({"file": "other.bin", "models": ["K175"], "version": "2",
                        "sha256": sha256_hex(b"x"), "size": 1000}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = put_image(&d, "other.bin", 0, &[0u8; 1000]).await;
    assert_eq!(status, 400, "{v}");
    assert!(alarms(&d).await.contains("firmware_checksum_mismatch"));
    let (_, list) = d.api("GET", "/firmware", None).await;
    let other = list["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == "other.bin")
        .unwrap()
        .clone();
    assert_eq!(other["cache"], "missing");
    let (status, v) = d
        .api(
            "POST",
            "/firmware/releases",
            Some(json!({"file": "../x", "models": ["K175"],
            "version": "2", "sha256": sha256_hex(b"x")})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().starts_with("file:"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prefetch_list_policy_upload_scrub() {
    let up = Upstream::start(image(3 * 1024 * 1024, 14)).await;
    up.set_default(Mode::Slow(256 * 1024, Duration::from_millis(50)));
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    d.add_device(json!({"mac": "001122aabbcc", "model": "J179"}))
        .await;
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Standard error is no terminal here: no bar is drawn, and standard output has the
    // result alone, as a script or a log wants it.
    let out = d.cli(&["firmware", "prefetch"]);
    let (text, err) = (ok(out.clone()), String::from_utf8_lossy(&out.stderr));
    assert!(
        text.ends_with("100%  3.1/3.1 MB  1/1 images\n") && text.lines().count() == 1,
        "{text:?}"
    );
    assert!(!text.contains('\r') && err.is_empty(), "{text:?} {err:?}");
    assert_eq!(up.requests(), 1);
    let out = ok(d.cli(&["firmware", "list"]));
    assert!(out.contains(FILE) && out.contains("cached"), "{out}");

    let img = image(70_000, 15);
    let path = d.dir.path().join("img.bin");
    std::fs::write(&path, &img).unwrap();
    let sha = sha256_hex(&img);
    ok(d.cli(&[
        "firmware",
        "add",
        "k.bin",
        "--models",
        "K175,K165",
        "--version",
        "2.0",
        "--sha256",
        &sha,
    ]));
    let out = ok(d.cli(&[
        "firmware",
        "upload",
        "k.bin",
        "--from",
        path.to_str().unwrap(),
    ]));
    assert_eq!(out, "uploaded k.bin: 70000 bytes, verified\n");
    let g = download(d.http.unwrap(), None, "GET", "/k.bin", &[]).await;
    assert_eq!((g.status, g.sha), (200, sha.clone()));

    ok(d.cli(&["firmware", "policy", "global", "J179=off", "*=latest"]));
    let out = ok(d.cli(&["firmware", "policy"]));
    assert!(out.contains("J179") && out.contains("off"), "{out}");
    let r = send_plain(d.http.unwrap(), get("/J100Supgrade.txt", J179_UA))
        .await
        .unwrap();
    assert!(!r.text().contains("APPNAME"), "{}", r.text());

    // Bit rot in the cache: the scrub finds and removes it.
    std::fs::write(d.data_dir().join(format!("firmware/sha256/{sha}")), b"rot").unwrap();
    let out = ok(d.cli(&["firmware", "scrub"]));
    assert!(out.contains("1 corrupted"), "{out}");
    assert!(!cached(&d).contains(&sha));
    ok(d.cli(&["firmware", "rm", "--yes", "k.bin"]));
    let out = ok(d.cli(&["firmware", "list"]));
    assert!(!out.contains("k.bin"), "{out}");
}

/// `edgeprov firmware upload FILE --from PATH`: (success, stdout, stderr).
fn cli_upload(d: &Daemon, file: &str, from: &std::path::Path) -> (bool, String, String) {
    let o = d.cli(&["firmware", "upload", file, "--from", from.to_str().unwrap()]);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A daemon with one release of a 3 MB image known by size and SHA-256, nothing cached, and
/// the image in a local file.
fn daemon_with_release(file: &str, seed: u64) -> (Daemon, Vec<u8>, std::path::PathBuf) {
    let img = image(3_000_000, seed);
    let d = Daemon::start_with(&format!(
        "[[firmware.release]]\nmodels = [\"J179\"]\nversion = \"1\"\nfile = \"{file}\"\n\
         sha256 = \"{}\"\nsize = {}\n",
        sha256_hex(&img),
        img.len()
    ));
    let path = d.dir.path().join("fw.bin");
    std::fs::write(&path, &img).unwrap();
    (d, img, path)
}

/// Uploading the wrong file used to send it: its 100 bytes stayed as a partial upload, the
/// command said "the whole file was sent but its SHA-256 does not match" (it was the wrong
/// size), and the next upload of the right file resumed after those bytes and failed with a
/// major checksum alarm. The CLI now checks the file against the catalogue first: the wrong
/// size, and then the wrong digest, are refused naming both values, nothing is sent, nothing is
/// kept, and the right file uploads at its first try without an alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_the_image_is_refused_before_anything_is_sent() {
    let (d, img, path) = daemon_with_release("fw.bin", 51);
    let sha = sha256_hex(&img);
    let wrong = d.dir.path().join("wrong100.bin");
    std::fs::write(&wrong, &img[..100]).unwrap();

    let (success, _, err) = cli_upload(&d, "fw.bin", &wrong);
    assert!(!success);
    assert!(
        err.contains("wrong100.bin is 100 bytes")
            && err.contains("is 3000000 bytes")
            && err.contains("nothing was sent"),
        "{err}"
    );
    assert_eq!(
        d.firmware_cache_state("fw.bin").await,
        ("missing".into(), 0)
    );

    // The right size, the wrong bytes: refused by digest, both digests named.
    let mut same_size = img.clone();
    same_size[1_000_000] ^= 1;
    let other = d.dir.path().join("same-size.bin");
    std::fs::write(&other, &same_size).unwrap();
    let (success, _, err) = cli_upload(&d, "fw.bin", &other);
    assert!(!success);
    assert!(
        err.contains(&format!("has SHA-256 {}", sha256_hex(&same_size)))
            && err.contains(&format!("has SHA-256 {sha}"))
            && err.contains("nothing was sent"),
        "{err}"
    );
    assert_eq!(
        d.firmware_cache_state("fw.bin").await,
        ("missing".into(), 0)
    );

    let (success, out, err) = cli_upload(&d, "fw.bin", &path);
    assert!(success, "{err}");
    assert_eq!(out, "uploaded fw.bin: 3000000 bytes, verified\n");
    assert_eq!(d.firmware_cache_state("fw.bin").await, ("cached".into(), 0));
    assert!(!alarms(&d).await.contains("firmware_checksum_mismatch"));
}

/// A partial upload whose bytes are not the image's start (an API client's wrong file) used to
/// be resumed by the next upload of the right file, which then failed with a major checksum
/// alarm, and the upload was left to the operator to run again. Now a resumed upload that does
/// not verify drops the stored bytes and says to send the whole file from offset 0 (no alarm:
/// the stored bytes may be what was wrong), offset 0 starts afresh over a partial file, and
/// the CLI, which knows its file is the image, sends it whole again once, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_upload_that_is_not_the_image_is_sent_again_whole() {
    let (d, img, path) = daemon_with_release("fw.bin", 52);
    let junk = image(100, 53);

    // Over the raw API: the resumed whole is refused, and nothing of it is kept.
    assert_eq!(put_image(&d, "fw.bin", 0, &junk).await.0, 202);
    let (status, v) = put_image(&d, "fw.bin", 100, &img[100..]).await;
    assert_eq!(status, 400, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("the 100 bytes stored before this request")
            && error.contains("send the whole file again from ?offset=0"),
        "{error}"
    );
    assert_eq!(
        d.firmware_cache_state("fw.bin").await,
        ("missing".into(), 0)
    );
    assert!(!alarms(&d).await.contains("firmware_checksum_mismatch"));
    // Offset 0 over a partial file starts afresh instead of being refused.
    assert_eq!(put_image(&d, "fw.bin", 0, &junk).await.0, 202);
    let (status, v) = put_image(&d, "fw.bin", 0, &img).await;
    assert_eq!((status, v["complete"].as_bool()), (201, Some(true)), "{v}");

    // Through the CLI: the image dropped, and a wrong partial file stored again.
    let (status, v) = d.api("DELETE", "/firmware/images/fw.bin", None).await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(put_image(&d, "fw.bin", 0, &junk).await.0, 202);
    assert_eq!(
        d.firmware_cache_state("fw.bin").await,
        ("partial".into(), 100)
    );
    let (success, out, err) = cli_upload(&d, "fw.bin", &path);
    assert!(success, "{err}");
    assert!(
        err.contains("the 100 bytes stored of fw.bin before this upload were not the start of")
            && err.contains("the whole file is sent again"),
        "{err}"
    );
    assert_eq!(out, "uploaded fw.bin: 3000000 bytes, verified\n");
    assert_eq!(d.firmware_cache_state("fw.bin").await, ("cached".into(), 0));
    let g = download(d.http.unwrap(), None, "GET", "/fw.bin", &[]).await;
    assert_eq!((g.status, g.sha), (200, sha256_hex(&img)));
    assert!(!alarms(&d).await.contains("firmware_checksum_mismatch"));
}

/// An upload to an image already cached used to answer 201 "complete" without reading its
/// body, the CLI printing `uploaded FW: 100 bytes, verified` for 100 bytes of junk and the
/// audit log `uploaded: 3000000 bytes, SHA-256 … verified and cached`. Now the API answers 200
/// `already_cached` and audits that the body was not read; the CLI refuses the junk (nothing
/// sent) and says of the right file that the image is already cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_a_cached_image_does_not_claim_its_body_verified() {
    let (d, img, path) = daemon_with_release("fw.bin", 54);
    let sha = sha256_hex(&img);
    assert_eq!(put_image(&d, "fw.bin", 0, &img).await.0, 201);
    let junk = image(100, 55);

    let (status, v) = put_image(&d, "fw.bin", 0, &junk).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"file": "fw.bin", "complete": true, "already_cached": true, "size": 3_000_000})
    );
    let (_, audit) = d
        .api(
            "GET",
            "/audit?resource=/api/v1/firmware/images/fw.bin",
            None,
        )
        .await;
    let e = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == 200)
        .unwrap_or_else(|| panic!("an entry for the answer 200 in {audit}"));
    assert_eq!(
        e["summary"],
        format!(
            "firmware image fw.bin was already cached (3000000 bytes, SHA-256 {sha} verified \
             when it was cached): the upload's body was not read"
        ),
        "{e}"
    );
    // The cached image is untouched.
    let g = download(d.http.unwrap(), None, "GET", "/fw.bin", &[]).await;
    assert_eq!((g.status, g.sha), (200, sha.clone()));

    let junk_file = d.dir.path().join("junk.bin");
    std::fs::write(&junk_file, &junk).unwrap();
    let (success, out, err) = cli_upload(&d, "fw.bin", &junk_file);
    assert!(!success, "{out}");
    assert!(
        err.contains("junk.bin is 100 bytes") && err.contains("nothing was sent"),
        "{err}"
    );
    let (success, out, err) = cli_upload(&d, "fw.bin", &path);
    assert!(success, "{err}");
    assert_eq!(
        out,
        format!(
            "fw.bin is already cached: {} is its image (SHA-256 {sha}); nothing was sent\n",
            path.display()
        )
    );
}

fn files_under(d: &Daemon, dir: &str) -> Vec<String> {
    std::fs::read_dir(d.data_dir().join("firmware").join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Deleting a release while its image is being fetched used to leave the fetch running: the
/// whole image was still asked of the vendor, the phone waiting on it got 503 once the publish
/// found its partial file gone, and a fetch that resumed after the deletion wrote a new partial
/// file and published an image no release names. Now the deletion stops the fetch and waits
/// for it, the waiting phone gets 404 (as any phone asking for a file no release names), and
/// nothing of the image is left on disk, then or later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_release_while_its_image_is_fetched_stops_the_fetch_and_leaves_nothing() {
    let up = Upstream::start(image(2 * 1024 * 1024, 23)).await;
    // 32 chunks, 100 ms apart: over 3 s for the whole image.
    up.set_default(Mode::Slow(64 * 1024, Duration::from_millis(100)));
    let d = Daemon::start();
    let (status, v) = d
        .api(
            "POST",
            "/firmware/releases",
            Some(
                json!({"file": FILE, "models": ["J179"], "version": "4.1.3.0.6",
                        "urls": [up.url(FILE)], "sha256": sha256_hex(&up.image),
                        "size": up.image.len()}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let http = d.http.unwrap();
    let phone =
        tokio::spawn(async move { download(http, None, "GET", &format!("/{FILE}"), &[]).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.sent() < 128 * 1024 {
        assert!(Instant::now() < deadline, "the fetch never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, v) = d
        .api("DELETE", &format!("/firmware/releases/{FILE}"), None)
        .await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(files_under(&d, "partial"), Vec::<String>::new());
    assert_eq!(files_under(&d, "sha256"), Vec::<String>::new());
    let waiting = tokio::time::timeout(Duration::from_secs(10), phone)
        .await
        .expect("the waiting phone is answered")
        .unwrap();
    assert_eq!(waiting.status, 404);

    // Longer than the whole transfer would take: it was stopped, and nothing came back.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        up.sent() < up.image.len() as u64,
        "the fetch went on after the deletion: {} bytes sent",
        up.sent()
    );
    assert_eq!(files_under(&d, "partial"), Vec::<String>::new());
    assert_eq!(files_under(&d, "sha256"), Vec::<String>::new());
    let (_, v) = d.api("GET", "/firmware", None).await;
    assert_eq!(v["releases"], json!([]), "{v}");
    assert_eq!(v["cache"]["images"], json!([]), "{v}");
    let later = download(http, None, "GET", &format!("/{FILE}"), &[]).await;
    assert_eq!(later.status, 404);
    assert_eq!(up.requests(), 1);
}

/// Dropping a cached image (`DELETE /firmware/images/{file}`) while it is being fetched used
/// to remove the partial file under the fetch: its publish then failed and the phones waiting
/// on it got 503. It is refused (409) while a transfer of the image runs, and works after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_image_while_it_is_fetched_is_refused() {
    let up = Upstream::start(image(1024 * 1024, 26)).await;
    up.set_default(Mode::Slow(64 * 1024, Duration::from_millis(100)));
    let d = Daemon::start_with(&release_toml(&up, FILE, "\"J179\"", "4.1.3.0.6", true));
    let http = d.http.unwrap();
    let phone =
        tokio::spawn(async move { download(http, None, "GET", &format!("/{FILE}"), &[]).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.sent() < 128 * 1024 {
        assert!(Instant::now() < deadline, "the fetch never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, v) = d
        .api("DELETE", &format!("/firmware/images/{FILE}"), None)
        .await;
    assert_eq!(status, 409, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("in progress") && !error.contains("already exists"),
        "{v}"
    );

    let got = phone.await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.sha, sha256_hex(&up.image));
    let (status, v) = d
        .api("DELETE", &format!("/firmware/images/{FILE}"), None)
        .await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(files_under(&d, "sha256"), Vec::<String>::new());
}

/// A release a policy pins for one of its models cannot be deleted while no other release of
/// that version is left for it: phones would be pinned to nothing. Changing the policy first
/// lets it go.
#[tokio::test]
async fn a_pinned_release_is_deleted_only_after_its_policy_changes() {
    let d = Daemon::start();
    let (status, v) = d.api("POST", "/sites", Some(json!({"name": "hq"}))).await;
    assert_eq!(status, 201, "{v}");
    for file in ["pin-a.bin", "pin-b.bin"] {
        let (status, v) = d
            .api(
                "POST",
                "/firmware/releases",
                Some(json!({"file": file, "models": ["J179"], "version": "9.9",
                            "sha256": sha256_hex(file.as_bytes())})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/site:hq",
            Some(json!({"J179": "9.9"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // Another release of the version is left: this one may go.
    let (status, v) = d.api("DELETE", "/firmware/releases/pin-a.bin", None).await;
    assert!((200..300).contains(&status), "{status} {v}");
    let (status, v) = d.api("DELETE", "/firmware/releases/pin-b.bin", None).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("site:hq pins J179"),
        "{v}"
    );
    let (_, list) = d.api("GET", "/firmware", None).await;
    assert!(
        list.to_string().contains("pin-b.bin"),
        "still there: {list}"
    );

    let (status, _) = d
        .api(
            "PUT",
            "/firmware/policies/site:hq",
            Some(json!({"J179": "latest"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, v) = d.api("DELETE", "/firmware/releases/pin-b.bin", None).await;
    assert!((200..300).contains(&status), "{status} {v}");
}

async fn upgrade_script(d: &Daemon) -> String {
    let r = send_plain(d.http.unwrap(), get("/J100Supgrade.txt", J179_UA))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    r.text()
}

async fn pin_alarms(d: &Daemon) -> Vec<serde_json::Value> {
    let (status, v) = d
        .api("GET", "/alarms?kind=firmware_pin_orphaned", None)
        .await;
    assert_eq!(status, 200);
    v.as_array().unwrap().clone()
}

/// Editing the config to drop the only release a policy pins, then restarting, used to leave
/// the pin to nothing: the upgrade script silently named no firmware for the model. The daemon
/// starts, keeps serving the release for the pin, raises an alarm naming the scope, model and
/// version (and `edgeprov doctor` warns with the daemon stopped), until the policy changes:
/// then the release goes and the alarm clears.
#[tokio::test]
async fn a_config_that_drops_a_pinned_release_keeps_it_and_raises_an_alarm() {
    let old = Upstream::start(image(1000, 20)).await;
    let new = Upstream::start(image(1000, 21)).await;
    let newer = release_toml(&new, "j179-new.bin", "\"J179\"", "4.1.10.0.1", true);
    let cfg = release_toml(&old, "j179-old.bin", "\"J179\"", "4.1.3.0.6", true) + &newer;
    let d = Daemon::start_with(&cfg);
    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"J179": "4.1.3.0.6"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    std::fs::write(d.config_path(), base_config(&d.data_dir(), &newer)).unwrap();
    let mut d = d.restart();
    let s = upgrade_script(&d).await;
    assert!(s.contains("SET APPNAME j179-old.bin"), "{s}");
    let got = download(d.http.unwrap(), None, "GET", "/j179-old.bin", &[]).await;
    assert_eq!(
        (got.status, got.sha),
        (200, sha256_hex(&old.image)),
        "the kept release is still served"
    );
    let alarms = pin_alarms(&d).await;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["source"], "global J179=4.1.3.0.6");
    assert_eq!(alarms[0]["severity"], "warning");
    let message = alarms[0]["message"].as_str().unwrap();
    assert!(
        message.contains("no longer lists j179-old.bin"),
        "{message}"
    );

    d.stop();
    let out = d.cli(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("WARN firmware")
            && l.contains("policy global pins J179 to 4.1.3.0.6")),
        "{text}"
    );

    let d = d.restart();
    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"J179": "latest"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(pin_alarms(&d).await.is_empty(), "cleared");
    let s = upgrade_script(&d).await;
    assert!(s.contains("SET APPNAME j179-new.bin"), "{s}");
    let (_, list) = d.api("GET", "/firmware", None).await;
    assert!(!list.to_string().contains("j179-old.bin"), "gone: {list}");
}

/// A raw JSON body to the admin API: a `Value` cannot hold a key twice.
async fn api_raw(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    d.api_bytes(method, path, body.to_string(), Some(&d.token))
        .await
}

/// Policy models used to be stored as given (upper-cased): `J1*` was kept and never matched a
/// phone, and `J179` next to `j179` resolved to whichever the map kept. A model is `*` or one
/// model's name, stored in upper case; anything else, and one model given twice however it is
/// spelled, is refused with 400 naming it, through the API and the CLI, and changes nothing.
#[tokio::test]
async fn policy_models_are_one_model_each_in_one_case() {
    let up = Upstream::start(image(1000, 30)).await;
    let d = Daemon::start_with(&release_toml(
        &up,
        "j179.bin",
        "\"J179\"",
        "4.1.3.0.6",
        true,
    ));
    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"K175": "off"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let unchanged = json!({"global": {"K175": "off"}});

    for (body, names) in [
        (r#"{"J1*": "off"}"#, vec![r#""J1*""#, "family patterns"]),
        (r#"{"": "off"}"#, vec![r#"model """#]),
        (r#"{"J 179": "off"}"#, vec![r#""J 179""#]),
        (r#"{"J179/../x": "latest"}"#, vec![r#""J179/../x""#]),
        (
            r#"{"J179": "latest", "j179": "off"}"#,
            vec![r#""J179" and "j179" are the same model"#],
        ),
        (
            r#"{"J179": "latest", "J179": "off"}"#,
            vec![r#""J179" is given more than one policy"#],
        ),
    ] {
        let (status, v) = api_raw(&d, "PUT", "/firmware/policies/global", body).await;
        assert_eq!(status, 400, "{body}: {v}");
        let error = v["error"].as_str().unwrap();
        for name in names {
            assert!(error.contains(name), "{body}: {error}");
        }
        let (_, policies) = d.api("GET", "/firmware/policies", None).await;
        assert_eq!(policies, unchanged, "{body}");
    }

    let fails = |args: &[&str]| {
        let out = d.cli(args);
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = fails(&["firmware", "policy", "global", "J179=off", "j179=latest"]);
    assert!(e.contains(r#""J179" and "j179""#), "{e}");
    let e = fails(&["firmware", "policy", "global", "J179=off", "J179=latest"]);
    assert!(e.contains(r#""J179" is given more than one policy"#), "{e}");
    let e = fails(&["firmware", "policy", "global", "J1*=off"]);
    assert!(e.contains(r#""J1*""#), "{e}");
    let (_, policies) = d.api("GET", "/firmware/policies", None).await;
    assert_eq!(policies, unchanged);

    // One spelling, any case: stored in upper case, and it governs the model's phones.
    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"j179": "off", "*": "latest"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"J179": "off", "*": "latest"}));
    let (_, policies) = d.api("GET", "/firmware/policies", None).await;
    assert_eq!(policies, json!({"global": {"J179": "off", "*": "latest"}}));
    assert!(!upgrade_script(&d).await.contains("APPNAME"));
}

/// Policies an earlier edgeprov stored with models no policy may name do not stop the daemon:
/// it starts, serves phones, leaves them out, and raises an alarm naming each until the scope
/// is set again.
#[tokio::test]
async fn stored_policies_with_bad_models_are_ignored_with_an_alarm() {
    let up = Upstream::start(image(1000, 31)).await;
    let d = Daemon::start_with(&release_toml(
        &up,
        "j179.bin",
        "\"J179\"",
        "4.1.3.0.6",
        true,
    ));
    let mut d = d;
    assert!(d.stop().success());
    {
        use edgeprov::firmware::Policy;
        let store = edgeprov::store::Store::open(&d.data_dir().join("edgeprov.redb")).unwrap();
        // As the old admin API stored any request: upper case, unchecked.
        let stored = [
            ("J1*", Policy::Off),
            ("J 179", Policy::Off),
            ("K175", Policy::Off),
        ]
        .map(|(m, p)| (m.to_string(), p));
        store
            .put_firmware_policies("global", &stored.into_iter().collect())
            .unwrap();
    }
    let d = d.restart();
    let s = upgrade_script(&d).await;
    assert!(s.contains("SET APPNAME j179.bin"), "{s}");
    let (_, policies) = d.api("GET", "/firmware/policies", None).await;
    assert_eq!(policies, json!({"global": {"K175": "off"}}));
    let ignored = || async {
        let (status, v) = d
            .api("GET", "/alarms?kind=firmware_policy_ignored", None)
            .await;
        assert_eq!(status, 200);
        v.as_array().unwrap().clone()
    };
    let alarms = ignored().await;
    let mut sources: Vec<&str> = alarms
        .iter()
        .map(|a| a["source"].as_str().unwrap())
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        [r#"global "J 179""#, r#"global "J1*""#],
        "{alarms:?}"
    );
    let message = alarms
        .iter()
        .find(|a| a["source"] == r#"global "J1*""#)
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("family patterns"), "{message}");

    let (status, v) = d
        .api(
            "PUT",
            "/firmware/policies/global",
            Some(json!({"K175": "off"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(ignored().await.is_empty(), "cleared");
    let (_, audit) = d.api("GET", "/audit", None).await;
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.to_string().contains("firmware policies of global set"))
        .unwrap_or_else(|| panic!("{audit}"))
        .to_string();
    assert!(
        entry.contains("J1*"),
        "what was dropped is audited: {entry}"
    );
}

/// Deleting a site used to leave its `site:NAME` policies: the releases kept for their pins
/// stayed with their alarm, and a later site of the name silently inherited them. They go with
/// the site (deletion still refused while devices remain), the firmware snapshot follows at
/// once, and a site's policies need the site to exist.
#[tokio::test]
async fn a_sites_policies_need_the_site_and_go_with_it() {
    let old = Upstream::start(image(1000, 32)).await;
    let new = Upstream::start(image(1000, 33)).await;
    let newer = release_toml(&new, "j179-new.bin", "\"J179\"", "4.1.10.0.1", true);
    let cfg = release_toml(&old, "j179-old.bin", "\"J179\"", "4.1.3.0.6", true) + &newer;
    let d = Daemon::start_with(&cfg);
    let pin = Some(json!({"J179": "4.1.3.0.6"}));
    let (status, v) = d
        .api("PUT", "/firmware/policies/site:lab", pin.clone())
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("site lab not found"))
    );
    let (status, v) = d.api("POST", "/sites", Some(json!({"name": "lab"}))).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = d
        .api("PUT", "/firmware/policies/site:lab", pin.clone())
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = d
        .api("PUT", "/firmware/policies/site:LAB", pin.clone())
        .await;
    assert_eq!(status, 404, "site names are exact: {v}");

    // The config drops the pinned release: kept for the pin, with its alarm.
    std::fs::write(d.config_path(), base_config(&d.data_dir(), &newer)).unwrap();
    let d = d.restart();
    d.add_device(json!({"mac": "001122aabbcc", "model": "J179", "site": "lab"}))
        .await;
    let s = upgrade_script(&d).await;
    assert!(s.contains("SET APPNAME j179-old.bin"), "{s}");
    let alarms = pin_alarms(&d).await;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["source"], "site:lab J179=4.1.3.0.6");

    let (status, v) = d.api("DELETE", "/sites/lab", None).await;
    assert_eq!(status, 409, "a site with devices stays: {v}");
    let (_, policies) = d.api("GET", "/firmware/policies", None).await;
    assert_eq!(policies["site:lab"], json!({"J179": "4.1.3.0.6"}));
    let (status, v) = d.api("DELETE", "/devices/001122aabbcc", None).await;
    assert!((200..300).contains(&status), "{status} {v}");

    let (status, v) = d.api("DELETE", "/sites/lab", None).await;
    assert_eq!(status, 204, "{v}");
    let (_, policies) = d.api("GET", "/firmware/policies", None).await;
    assert_eq!(policies, json!({}), "gone with the site");
    assert!(pin_alarms(&d).await.is_empty(), "the pin's alarm cleared");
    let (_, list) = d.api("GET", "/firmware", None).await;
    assert!(
        !list.to_string().contains("j179-old.bin"),
        "the release kept for the pin went: {list}"
    );
    let (_, audit) = d.api("GET", "/audit", None).await;
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e.to_string()
                .contains("site lab deleted with its firmware policies")
        })
        .unwrap_or_else(|| panic!("{audit}"))
        .to_string();
    assert!(entry.contains("4.1.3.0.6"), "what went is audited: {entry}");

    // A new site of the name starts without them, and the deleted one's are not in the store.
    let (status, v) = d.api("POST", "/sites", Some(json!({"name": "lab"}))).await;
    assert_eq!(status, 201, "{v}");
    let mut d = d;
    d.stop();
    let d = d.restart();
    let (_, policies) = d.api("GET", "/firmware/policies", None).await;
    assert_eq!(policies, json!({}));
}
