mod common;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn probe_history_growth() {
    let d = Daemon::start();
    let db = d.data_dir().join("edgeprov.redb");
    let size = || std::fs::metadata(&db).unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("before: {}", size());
    let started = Instant::now();
    let mut total = 0;
    for round in 0..4 {
        let mut req = String::new();
        for i in 0..5000 {
            let ua = format!(
                "Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:0a{:02x}{:08x}) {}",
                round,
                i,
                "x".repeat(150)
            );
            req.push_str(&format!(
                "GET /46xxsettings.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: {ua}\r\n\r\n"
            ));
        }
        req.push_str("GET /46xxsettings.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut s = tokio::net::TcpStream::connect(d.http.unwrap())
            .await
            .unwrap();
        let (mut r, mut w) = s.split();
        let writer = async {
            w.write_all(req.as_bytes()).await.unwrap();
        };
        let mut out = Vec::new();
        let reader = async {
            let _ = r.read_to_end(&mut out).await;
        };
        tokio::join!(writer, reader);
        total += String::from_utf8_lossy(&out)
            .matches("HTTP/1.1 200")
            .count();
    }
    println!("{total} answered in {:?}", started.elapsed());
    let (_, _) = d.api("GET", "/alarms", None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("after: {}", size());
    let (_, v) = d.api("GET", "/devices/0a0000000001/history", None).await;
    println!("{v}");
}
