//! The least a phone listener can do on edgeprov's stack, to measure the floor under
//! `edgeprov storm`'s server CPU per phone (docs/performance.md, "The floor of the stack"):
//! tokio, rustls with the phone listener's own TLS configuration, and a bare HTTP/1.1
//! keep-alive loop answering every GET from memory. No hyper, no store, no rendering, no
//! recorder. It answers what the Avaya storm checks: `/{mac}.txt` with that phone's storm
//! secret, any other file with a common body and no secret that leads on to the next file.
//!
//! `cargo run --release --example tls_floor -- DATA_DIR/pki [127.0.0.1:29443]`, then
//! `edgeprov storm --target https://127.0.0.1:29443 --vendor avaya --ca-cert … --ca-key …`.
//! Loopback only; a measuring tool, not a server to deploy.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request head larger than this ends the connection.
const MAX_HEAD: usize = 8192;

fn body_for(path: &str) -> String {
    let name = path.trim_start_matches('/');
    match name
        .strip_suffix(".txt")
        .and_then(|m| edgeprov::model::Mac::parse(m).ok())
    {
        Some(mac) => format!(
            "## device {mac}\nSET SIPDOMAIN storm.example\nSET SIP_PASSWORD stormpw-{mac}\n"
        ),
        _ => {
            let next = if name == "J100Supgrade.txt" {
                "GET 46xxsettings.txt\n"
            } else {
                "GET $MACADDR.txt\n"
            };
            "## common file\nSET SIPDOMAIN storm.example\nSET SNTPSRVR ntp.storm.example\n"
                .repeat(8)
                + next
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: tls_floor PKI_DIR [ADDR]")?);
    let addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:29443")
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("tls_floor listens on loopback only".into());
    }
    let pki = edgeprov::pki::Pki::load_or_init(
        &dir,
        &Default::default(),
        "",
        edgeprov::pki::Revocations::none(),
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(edgeprov::pki::phone_server_config(&pki)?);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    socket2::SockRef::from(&listener).set_tcp_nodelay(true)?;
    eprintln!("tls_floor: listening on {addr}");
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut pending = Vec::with_capacity(2048);
            let mut chunk = [0u8; 2048];
            loop {
                let n = match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&chunk[..n]);
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    pending.drain(..end + 4);
                    let body = body_for(head.split_whitespace().nth(1).unwrap_or("/"));
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if tls.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
                if pending.len() > MAX_HEAD {
                    return;
                }
            }
        });
    }
}
