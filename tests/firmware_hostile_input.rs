//! Firmware from a hostile or broken upstream, and uploads that cannot fit: the daemon stops
//! early, keeps nothing, says why, and keeps serving.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::upstream::{image, read_head, sha256_hex};
use common::*;
use http_body_util::Full;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// How the raw upstream answers one request.
#[derive(Clone)]
enum Answer {
    /// A head as written, then `body`, then the connection is closed.
    Raw { head: String, body: Vec<u8> },
    /// A chunked body that never ends (until the reader goes away).
    Endless,
    /// The image, honouring `Range: bytes=N-`.
    Image(Arc<Vec<u8>>),
}

/// Answers requests from a script, then with the last answer forever.
async fn upstream(script: Vec<Answer>) -> SocketAddr {
    upstream_counted(script).await.0
}

/// [`upstream`], with the number of connections it accepted so far (one request each).
async fn upstream_counted(script: Vec<Answer>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let answer = {
                let mut s = script.lock().unwrap();
                if s.len() > 1 {
                    s.pop_front().unwrap()
                } else {
                    s.front().unwrap().clone()
                }
            };
            tokio::spawn(async move {
                let _ = answer_one(sock, answer).await;
            });
        }
    });
    (addr, accepted)
}

async fn answer_one(mut sock: TcpStream, answer: Answer) -> std::io::Result<()> {
    let Some(head) = read_head(&mut sock).await? else {
        return Ok(());
    };
    match answer {
        Answer::Raw { head, body } => {
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(&body).await?;
        }
        Answer::Endless => {
            sock.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await?;
            let chunk = [0x5au8; 64 * 1024];
            loop {
                sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                sock.write_all(&chunk).await?;
                sock.write_all(b"\r\n").await?;
            }
        }
        Answer::Image(img) => {
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let start = text
                .lines()
                .find_map(|l| l.strip_prefix("range: bytes="))
                .and_then(|r| r.trim().trim_end_matches('-').parse::<usize>().ok())
                .unwrap_or(0);
            let status = if start > 0 {
                format!(
                    "206 Partial Content\r\ncontent-range: bytes {start}-{}/{}",
                    img.len() - 1,
                    img.len()
                )
            } else {
                "200 OK".to_string()
            };
            sock.write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    img.len() - start
                )
                .as_bytes(),
            )
            .await?;
            sock.write_all(&img[start..]).await?;
        }
    }
    sock.shutdown().await
}

/// A phone's GET of `/{file}` over plain HTTP: status and body.
async fn phone_get(d: &Daemon, file: &str) -> Resp {
    let fetch = send_plain(d.http.unwrap(), get(&format!("/{file}"), J179_UA));
    tokio::time::timeout(Duration::from_secs(30), fetch)
        .await
        .expect("the phone is answered within 30 s")
        .expect("the phone's request completes")
}

async fn alarms(d: &Daemon) -> String {
    let (status, v) = d.api("GET", "/alarms", None).await;
    assert_eq!(status, 200);
    v.to_string()
}

fn partial_files(d: &Daemon) -> Vec<(String, u64)> {
    std::fs::read_dir(d.data_dir().join("firmware/partial"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

fn release(file: &str, url: &str, sha: &str, size: Option<u64>) -> String {
    let size = size.map(|s| format!("size = {s}\n")).unwrap_or_default();
    format!(
        "[[firmware.release]]\nmodels = [\"J179\"]\nversion = \"1\"\nfile = \"{file}\"\nurls = [\"{url}\"]\nsha256 = \"{sha}\"\n{size}"
    )
}

/// An upstream whose body never ends, for a release of unknown size: the download stops once it
/// outgrows the whole cache, the partial file is removed, a disk-full alarm says why.
#[tokio::test]
async fn an_endless_body_of_unknown_size_stops_at_the_cache_limit() {
    let up = upstream(vec![Answer::Endless]).await;
    let d = Daemon::start_with(&format!(
        "[firmware]\nmax_cache_bytes = 1000000\n{}",
        release(
            "endless.bin",
            &format!("http://{up}/endless.bin"),
            &sha256_hex(b"an image"),
            None
        )
    ));
    let r = phone_get(&d, "endless.bin").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let alarms = alarms(&d).await;
    assert!(alarms.contains("firmware_disk_full"), "{alarms}");
    assert!(alarms.contains("max_cache_bytes"), "{alarms}");
    assert_eq!(partial_files(&d), vec![], "nothing of it is kept");
}

/// A resumed download whose answer announces a length near 2^64 (so offset + length overflows)
/// is refused as not the image; the next request fetches the image afresh and is served.
#[tokio::test]
async fn a_resume_announcing_an_absurd_length_is_refused_and_the_next_fetch_succeeds() {
    let img = Arc::new(image(300_000, 21));
    let up = upstream(vec![
        Answer::Raw {
            head: "HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n".into(),
            body: img[..100_000].to_vec(),
        },
        Answer::Raw {
            head: "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 100000-299999/300000\r\n\
                   content-length: 18446744073709551613\r\n\r\n"
                .into(),
            body: Vec::new(),
        },
        Answer::Image(img.clone()),
    ])
    .await;
    let d = Daemon::start_with(&release(
        "resume.bin",
        &format!("http://{up}/resume.bin"),
        &sha256_hex(&img),
        Some(300_000),
    ));
    let first = phone_get(&d, "resume.bin").await;
    assert_eq!(first.status, 503, "{}", first.text());
    assert!(alarms(&d).await.contains("firmware_checksum_mismatch"));
    // An operator's change asks the upstream again at once.
    let (status, v) = d
        .api("PUT", "/firmware/policies/global", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{v}");
    let again = phone_get(&d, "resume.bin").await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(sha256_hex(&again.body), sha256_hex(&img));
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

/// A vendor portal whose session expired answers the download link 200 with an HTML login
/// page. Each phone of a boot storm arriving after that failed fetch used to start a fetch of
/// its own (only an unreachable upstream was remembered): a request per phone to the vendor
/// and the alarm raised again per phone. The failure now answers them for a while, and the
/// alarm names the release and says what came instead of the image.
#[tokio::test]
async fn phones_after_an_html_page_instead_of_the_image_do_not_each_fetch_it_again() {
    let img = image(300_000, 36);
    let page = b"<!doctype html><title>Sign in</title><form>...</form>".to_vec();
    for size in [Some(300_000), None] {
        let (up, requests) = upstream_counted(vec![Answer::Raw {
            head: format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                page.len()
            ),
            body: page.clone(),
        }])
        .await;
        let d = Daemon::start_with(&release(
            "portal.bin",
            &format!("http://{up}/dl/portal.bin"),
            &sha256_hex(&img),
            size,
        ));
        for _ in 0..20 {
            let r = phone_get(&d, "portal.bin").await;
            assert_eq!(r.status, 503, "{size:?}: {}", r.text());
            assert_eq!(r.headers["retry-after"], "60");
        }
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "{size:?}: one fetch; the phones after it got its answer"
        );
        let (_, v) = d.api("GET", "/alarms", None).await;
        let alarm = v
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "firmware_checksum_mismatch")
            .unwrap_or_else(|| panic!("{v}"))
            .clone();
        assert_eq!(alarm["count"], 1, "{alarm}");
        let message = alarm["message"].as_str().unwrap();
        assert!(message.contains("portal.bin"), "{message}");
        assert!(message.contains("text/html"), "{message}");
        assert_eq!(partial_files(&d), vec![], "nothing of the page is kept");
    }
}

/// An upload for a release of unknown size that outgrows the whole cache is refused, naming
/// the limit, and nothing of it is kept.
#[tokio::test]
async fn an_upload_of_unknown_size_larger_than_the_cache_is_refused_and_not_kept() {
    let d = Daemon::start_with(&format!(
        "[firmware]\nmax_cache_bytes = 1000000\n\
         [[firmware.release]]\nmodels = [\"J179\"]\nversion = \"1\"\nfile = \"big.bin\"\nsha256 = \"{}\"\n",
        sha256_hex(b"an image")
    ));
    let req = http::Request::put("/api/v1/firmware/images/big.bin?offset=0")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", d.token))
        .body(Full::new(Bytes::from(image(1_500_000, 22))))
        .unwrap();
    let r = send(d.admin, client_config(&d.ca_pem(), None), req)
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("max_cache_bytes"), "{}", r.text());
    assert_eq!(partial_files(&d), vec![], "nothing of it is kept");
    assert!(alarms(&d).await.contains("firmware_disk_full"));
}

/// Prefetch sums the sizes of the images it fetches: sizes near 2^64 from the catalogue do not
/// overflow the sum, and the job reports the images it cannot fit.
#[tokio::test]
async fn prefetch_of_releases_with_absurd_sizes_answers_and_reports() {
    let d = Daemon::start();
    for (model, file, n) in [("J179", "a.bin", 1u8), ("J169", "b.bin", 2)] {
        let (status, v) = d
            .api(
                "POST",
                "/firmware/releases",
                Some(json!({
                    "models": [model], "version": "1", "file": file,
                    "urls": ["http://127.0.0.1:9/x"], "sha256": format!("{n:064x}"),
                    "size": u64::MAX,
                })),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        d.add_device(json!({"mac": format!("0011223344{n:02x}"), "model": model}))
            .await;
    }
    let (status, job) = d.api("POST", "/firmware/prefetch", None).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["total_bytes"], json!(u64::MAX), "{job}");
}

/// A daemon whose firmware cache is a tmpfs of `bytes`, mounted in a mount namespace of its
/// own (so the cache disk fills up for real without touching the machine's mounts). The test
/// cannot see into that namespace: it sees the cache through the admin API.
fn start_on_small_disk(bytes: u64, extra: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let config = dir.path().join("edgeprov.toml");
    let extra = format!("[firmware]\ncache_dir = \"{}\"\n{extra}", cache.display());
    std::fs::write(&config, base_config(&dir.path().join("data"), &extra)).unwrap();
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let child = std::process::Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs -o size=\"$1\" tmpfs \"$2\" && exec \"$0\" serve --config \"$3\"",
        ])
        .arg(BIN)
        .arg(bytes.to_string())
        .arg(&cache)
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let listeners = dir.path().join("data/listeners.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let parsed: serde_json::Value = loop {
        if let Ok(bytes) = std::fs::read(&listeners)
            && let Ok(v) = serde_json::from_slice(&bytes)
        {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "daemon did not start: {}",
            std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let addr = |v: &serde_json::Value| v.as_str().unwrap().parse::<SocketAddr>().unwrap();
    let token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
    Daemon {
        https: addr(&parsed["phone_https"][0]),
        http: parsed["phone_http"].get(0).map(addr),
        admin: addr(&parsed["admin"]),
        dns: None,
        token: token.trim().to_string(),
        child: Some(child),
        dir,
    }
}

/// A fetch or an upload that fills the cache disk (ENOSPC) fails with the disk-full alarm and
/// removes what it wrote: a partial file kept there would only fail again on resume, and it
/// would hold the space other images (and the store, on the same disk by default) need.
#[tokio::test]
async fn a_full_cache_disk_keeps_nothing_of_the_image_that_filled_it() {
    let big = Arc::new(image(1_500_000, 31));
    let small = Arc::new(image(600_000, 32));
    let (up_big, up_small) = (
        upstream(vec![Answer::Image(big.clone())]).await,
        upstream(vec![Answer::Image(small.clone())]).await,
    );
    let d = start_on_small_disk(
        1024 * 1024,
        &format!(
            "{}[[firmware.release]]\nmodels = [\"J169\"]\nversion = \"1\"\nfile = \"small.bin\"\n\
             urls = [\"http://{up_small}/small.bin\"]\nsha256 = \"{}\"\nsize = 600000\n",
            // Of unknown size, so that the download runs into ENOSPC (one of known size is
            // refused before it starts: see the next test).
            release(
                "big.bin",
                &format!("http://{up_big}/big.bin"),
                &sha256_hex(&big),
                None
            ),
            sha256_hex(&small),
        ),
    );
    let r = phone_get(&d, "big.bin").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let alarms = alarms(&d).await;
    assert!(alarms.contains("firmware_disk_full"), "{alarms}");
    assert!(alarms.contains("no space left"), "{alarms}");
    assert_eq!(
        d.firmware_cache_state("big.bin").await,
        ("missing".into(), 0)
    );
    // The space is free again: an image that fits is cached and served.
    let r = phone_get(&d, "small.bin").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&small));
    // An upload that fills what is left fails alike and keeps nothing.
    let req = http::Request::put("/api/v1/firmware/images/big.bin?offset=0")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", d.token))
        .body(Full::new(Bytes::from(big.to_vec())))
        .unwrap();
    let r = send(d.admin, client_config(&d.ca_pem(), None), req)
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("no space left"), "{}", r.text());
    assert_eq!(
        d.firmware_cache_state("big.bin").await,
        ("missing".into(), 0)
    );
    assert_eq!(
        d.firmware_cache_state("small.bin").await,
        ("cached".into(), 0)
    );
}

/// `max_cache_bytes` (20 GB by default) is often more than the cache disk holds. A download of
/// known size that cannot fit on the disk used to run until ENOSPC: the vendor asked for bytes
/// that were then deleted, the disk (the store's too, by default) filled up, and again for the
/// next phone. It is now refused before any byte is asked for, with the disk-full alarm naming
/// the release and the room it lacks.
#[tokio::test]
async fn an_image_larger_than_the_free_disk_is_refused_before_it_is_downloaded() {
    let up = common::upstream::Upstream::start(image(1_500_000, 37)).await;
    let d = start_on_small_disk(
        1024 * 1024,
        &release(
            "big.bin",
            &up.url("big.bin"),
            &sha256_hex(&up.image),
            Some(1_500_000),
        ),
    );
    let r = phone_get(&d, "big.bin").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.headers["retry-after"], "60");
    assert_eq!(up.requests(), 0, "nothing asked of the upstream");
    let alarms = alarms(&d).await;
    assert!(alarms.contains("firmware_disk_full"), "{alarms}");
    assert!(alarms.contains("big.bin: no space left"), "{alarms}");
    assert!(alarms.contains("1500000 more bytes needed"), "{alarms}");
    assert_eq!(
        d.firmware_cache_state("big.bin").await,
        ("missing".into(), 0)
    );
    // The operator's prefetch asks again, and is refused alike, saying why.
    d.add_device(json!({"mac": "001122aabbcc", "model": "J179"}))
        .await;
    let (status, job) = d.api("POST", "/firmware/prefetch", None).await;
    assert_eq!(status, 202, "{job}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let job = loop {
        let (_, v) = d
            .api("GET", &format!("/firmware/jobs/{}", job["id"]), None)
            .await;
        if v["state"] != "running" {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["images"][0]["error"].as_str().unwrap();
    assert!(error.contains("big.bin: no space left"), "{job}");
    assert_eq!(up.requests(), 0);
}

/// An upload of known size that the cache disk has no room for is refused (413, naming the
/// bytes it lacks) before its body is taken; it used to be read until the disk was full (the
/// store's too, by default) and only then refused.
#[tokio::test]
async fn an_upload_larger_than_the_free_disk_is_refused_before_its_body_is_read() {
    let d = start_on_small_disk(
        1024 * 1024,
        &release(
            "big.bin",
            "http://127.0.0.1:9/big.bin",
            &sha256_hex(b"an image"),
            Some(1_500_000),
        ),
    );
    let tcp = TcpStream::connect(d.admin).await.unwrap();
    let mut upload = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), None))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let head = format!(
        "PUT /api/v1/firmware/images/big.bin?offset=0 HTTP/1.1\r\nhost: localhost\r\n\
         authorization: Bearer {}\r\ncontent-length: 1500000\r\n\r\n",
        d.token
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(&[0u8; 1000]).await.unwrap();
    upload.flush().await.unwrap();
    // The rest of the body is never sent: only an answer that does not wait for it comes.
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("more bytes needed") {
            let n = tokio::io::AsyncReadExt::read(&mut upload, &mut buf).await?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("big.bin: no space left"), "{answer}");
    assert!(answer.contains("1500000 more bytes needed"), "{answer}");
    assert_eq!(
        d.firmware_cache_state("big.bin").await,
        ("missing".into(), 0)
    );
}

/// A download link that redirects to a CDN with a network-path `Location` (`//host/path`, no
/// scheme) is followed to that host: the image is fetched from there and served.
#[tokio::test]
async fn a_redirect_to_another_host_without_a_scheme_is_followed() {
    let img = Arc::new(image(200_000, 33));
    let cdn = upstream(vec![Answer::Image(img.clone())]).await;
    let link = upstream(vec![Answer::Raw {
        head: format!(
            "HTTP/1.1 302 Found\r\nlocation: //{cdn}/cdn/fw.bin\r\ncontent-length: 0\r\n\r\n"
        ),
        body: Vec::new(),
    }])
    .await;
    let d = Daemon::start_with(&release(
        "fw.bin",
        &format!("http://{link}/download/fw.bin"),
        &sha256_hex(&img),
        Some(200_000),
    ));
    let r = phone_get(&d, "fw.bin").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&img));
}

/// A release's URLs that all fail, each its own way: the alarm says why of each, naming the
/// release; it used to give only the last URL's reason, so an operator who fixed that one
/// learned of the first one's only when it failed again.
#[tokio::test]
async fn the_unreachable_alarm_says_why_each_url_failed() {
    let refusing = upstream(vec![Answer::Raw {
        head: "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".into(),
        body: Vec::new(),
    }])
    .await;
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let d = Daemon::start_with(&release(
        "two.bin",
        &format!("http://{refusing}/a/two.bin\", \"http://{closed}/b/two.bin"),
        &sha256_hex(b"an image"),
        Some(8),
    ));
    let r = phone_get(&d, "two.bin").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let (_, v) = d.api("GET", "/alarms", None).await;
    let alarm = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "firmware_upstream_unreachable")
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    let message = alarm["message"].as_str().unwrap();
    assert!(message.starts_with("two.bin: "), "{message}");
    assert!(
        message.contains(&format!(
            "http://{refusing}/a/two.bin answered 404 Not Found"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("cannot reach http://{closed}/b/two.bin")),
        "{message}"
    );
}

/// A 302 to `location`.
fn redirect(location: &str) -> Answer {
    Answer::Raw {
        head: format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"),
        body: Vec::new(),
    }
}

/// Up to five redirects are followed, as the docs say (a vendor link → a mirror → a CDN's
/// signed URL is three already); only four were. A loop ends after the fifth, with the
/// unreachable alarm naming the release and saying why.
#[tokio::test]
async fn five_redirects_are_followed_and_a_loop_ends_with_an_alarm() {
    let img = Arc::new(image(100_000, 38));
    let mut next = format!(
        "http://{}/cdn/fw.bin",
        upstream(vec![Answer::Image(img.clone())]).await
    );
    for hop in 0..5 {
        let addr = upstream(vec![redirect(&next)]).await;
        next = format!("http://{addr}/hop{hop}/fw.bin");
    }
    let (looping, requests) = upstream_counted(vec![redirect("/again/loop.bin")]).await;
    let d = Daemon::start_with(&format!(
        "{}{}",
        release("fw.bin", &next, &sha256_hex(&img), Some(100_000)),
        release(
            "loop.bin",
            &format!("http://{looping}/loop.bin"),
            &sha256_hex(b"another image"),
            Some(100_000)
        )
        .replace("\"J179\"", "\"J169\"")
    ));
    let r = phone_get(&d, "fw.bin").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&img));

    let r = phone_get(&d, "loop.bin").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        requests.load(Ordering::SeqCst),
        6,
        "the first request and five redirects, then the URL is given up"
    );
    let alarms = alarms(&d).await;
    assert!(alarms.contains("firmware_upstream_unreachable"), "{alarms}");
    assert!(alarms.contains("loop.bin: cannot reach"), "{alarms}");
    assert!(alarms.contains("too many redirects"), "{alarms}");
}

/// An upstream that trickles (here about 5 KB/s, under 64 KiB per `stall_secs`) is
/// broken off as stalled, resumed, and after three tries per URL given up with the unreachable
/// alarm, instead of holding the image's one fetch for ever with nothing saying why.
#[tokio::test]
async fn a_trickling_upstream_is_given_up_as_stalled_with_an_alarm() {
    let up = common::upstream::Upstream::start(image(200_000, 34)).await;
    up.set_default(common::upstream::Mode::Slow(
        500,
        Duration::from_millis(100),
    ));
    let d = Daemon::start_with(&format!(
        "[firmware]\nstall_secs = 1\nphone_wait_ms = 10000\n{}",
        release(
            "slow.bin",
            &up.url("slow.bin"),
            &sha256_hex(&up.image),
            Some(200_000)
        )
    ));
    let started = std::time::Instant::now();
    let r = phone_get(&d, "slow.bin").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "given up before the phone's wait"
    );
    let alarms = alarms(&d).await;
    assert!(alarms.contains("firmware_upstream_unreachable"), "{alarms}");
    assert!(alarms.contains("stalled"), "{alarms}");
    assert_eq!(up.requests(), 3, "three tries");
    let ranges = up.ranges();
    assert!(
        ranges[1..]
            .iter()
            .all(|r| r.as_deref().is_some_and(|r| r.starts_with("bytes="))),
        "the tries after the first resume: {ranges:?}"
    );
}

/// An upload that stops sending (the operator's laptop went to sleep) holds the image's one
/// flight only until `stall_secs` passes with less than 64 KiB received: it is then ended, what
/// arrived is kept, and phones get the image from the upstream, resumed from there.
#[tokio::test]
async fn an_upload_that_stops_sending_is_ended_and_phones_get_the_image() {
    let up = common::upstream::Upstream::start(image(300_000, 35)).await;
    let d = Daemon::start_with(&format!(
        "[firmware]\nstall_secs = 1\nphone_wait_ms = 10000\n{}",
        release(
            "up.bin",
            &up.url("up.bin"),
            &sha256_hex(&up.image),
            Some(300_000)
        )
    ));
    let tcp = TcpStream::connect(d.admin).await.unwrap();
    let mut upload = tokio_rustls::TlsConnector::from(client_config(&d.ca_pem(), None))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let head = format!(
        "PUT /api/v1/firmware/images/up.bin?offset=0 HTTP/1.1\r\nhost: localhost\r\n\
         authorization: Bearer {}\r\ncontent-length: 300000\r\n\r\n",
        d.token
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(&up.image[..1000]).await.unwrap();
    upload.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    let r = phone_get(&d, "up.bin").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered when the upload stalled, not after the phone's wait"
    );
    let r = phone_get(&d, "up.bin").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&up.image));
    assert_eq!(up.ranges(), vec![Some("bytes=1000-".to_string())]);
    drop(upload);
}
