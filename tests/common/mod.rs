//! Test harness: starts the real `edgeprov` binary on loopback with port 0, and talks to it with
//! real TLS clients (tokio-rustls + hyper), as phones and administrators would.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod dhcp;
pub mod netns;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

pub mod upstream;

pub const BIN: &str = env!("CARGO_BIN_EXE_edgeprov");

pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The DNS responder (UDP and TCP), when `[dns] listen` is set.
    pub dns: Option<SocketAddr>,
    pub token: String,
}

/// The config every test daemon uses: loopback, kernel-chosen ports, short timeouts.
pub fn base_config(data_dir: &Path, extra: &str) -> String {
    format!(
        r#"data_dir = "{}"
log_level = "info"
[phone]
https_listen = ["127.0.0.1:0"]
http_listen = ["127.0.0.1:0"]
handshake_timeout_ms = 1000
header_timeout_ms = 1000
auth_max_failures = 3
auth_lockout_secs = 60
[admin]
listen = "127.0.0.1:0"
{extra}"#,
        data_dir.display()
    )
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with("")
    }

    /// Starts with extra TOML appended to the base config (e.g. a `[pki]` table).
    pub fn start_with(extra: &str) -> Daemon {
        Daemon::start_with_env(extra, &[])
    }

    /// Starts with extra TOML and extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = base_config(&dir.path().join("data"), extra);
        std::fs::write(dir.path().join("edgeprov.toml"), config).unwrap();
        Daemon::launch_env(dir, env)
    }

    /// Starts with extra TOML and environment variables on a data directory that `prepare`
    /// fills first (e.g. with a database an older edgeprov wrote).
    pub fn start_prepared(
        extra: &str,
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        prepare(&data);
        std::fs::write(dir.path().join("edgeprov.toml"), base_config(&data, extra)).unwrap();
        Daemon::launch_env(dir, env)
    }

    fn launch(dir: tempfile::TempDir) -> Daemon {
        Daemon::launch_env(dir, &[])
    }

    fn launch_env(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Daemon {
        Daemon::launch_wrapped(dir, env, &[], |_| {})
    }

    /// Starts with the data directory on a tmpfs of `size` bytes (`4m`…) in a mount namespace
    /// of the daemon's own, so that a test can fill it and no mount outlives the daemon. The
    /// daemon's data directory is `ns/data`; `data` links to it through `/proc/PID/root`, so
    /// the test sees the daemon's files where it always does. Needs root. A restart starts
    /// without the tmpfs, on an empty `ns/data`.
    pub fn start_on_tmpfs(size: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("ns/data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(dir.path().join("edgeprov.toml"), base_config(&data, "")).unwrap();
        let options = format!("size={size}");
        let wrapper = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            r#"mount -t tmpfs -o "$1" tmpfs "$2" && shift 2 && exec "$@""#,
            "sh",
            &options,
            data.to_str().unwrap(),
        ];
        let link = dir.path().join("data");
        Daemon::launch_wrapped(dir, &[], &wrapper, |pid| {
            let inside = format!("/proc/{pid}/root{}", data.display());
            std::os::unix::fs::symlink(inside, &link).unwrap();
        })
    }

    /// Starts with extra TOML in a mount namespace of the daemon's own whose `/etc/hosts` is
    /// `hosts`, so that the daemon's resolver answers names a test chooses (a name with a
    /// dead `::1` port beside a live `127.0.0.1` one) and no other process sees them. Needs
    /// root.
    pub fn start_with_hosts(extra: &str, hosts: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = base_config(&dir.path().join("data"), extra);
        std::fs::write(dir.path().join("edgeprov.toml"), config).unwrap();
        let file = dir.path().join("hosts");
        std::fs::write(&file, hosts).unwrap();
        let wrapper = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#,
            "sh",
            file.to_str().unwrap(),
        ];
        Daemon::launch_wrapped(dir, &[], &wrapper, |_| {})
    }

    /// Starts `edgeprov serve`, after `wrapper` (a command that ends by running its arguments
    /// in the same process), and calls `spawned` with the process id.
    fn launch_wrapped(
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        wrapper: &[&str],
        spawned: impl FnOnce(u32),
    ) -> Daemon {
        let listeners = dir.path().join("data/listeners.json");
        let _ = std::fs::remove_file(&listeners);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("daemon.log"))
            .unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("edgeprov.toml"))
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn edgeprov");
        spawned(child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        let parsed: Value = loop {
            if let Ok(bytes) = std::fs::read(&listeners)
                && let Ok(v) = serde_json::from_slice(&bytes)
            {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not start: {}",
                std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let addr = |v: &Value| v.as_str().unwrap().parse::<SocketAddr>().unwrap();
        let token = std::fs::read_to_string(dir.path().join("data/admin.token"))
            .unwrap()
            .trim()
            .to_string();
        Daemon {
            https: addr(&parsed["phone_https"][0]),
            http: parsed["phone_http"].get(0).map(addr),
            admin: addr(&parsed["admin"]),
            dns: parsed["dns"].get(0).map(addr),
            token,
            child: Some(child),
            dir,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("edgeprov.toml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("pki/ca.crt")).unwrap()
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        wait_timeout(&mut child, Duration::from_secs(20)).expect("daemon stops on SIGTERM")
    }

    /// Waits for a daemon that was already signalled to exit.
    pub fn stop_waiting(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_timeout(&mut child, Duration::from_secs(20)).expect("daemon exits")
    }

    /// SIGKILL: the crash case.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Stops (if running) and starts again on the same data directory and config.
    pub fn restart(mut self) -> Daemon {
        if self.child.is_some() {
            self.stop();
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Daemon::launch(dir)
    }

    /// Runs the CLI against this daemon.
    /// `edgeprov ARGS` with `input` on its standard input (a pipe, not a terminal).
    pub fn cli_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_remove("EDGEPROV_TOKEN");
        output_with_input(command, input)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_remove("EDGEPROV_TOKEN")
            .output()
            .expect("run edgeprov CLI")
    }

    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_with_token(method, path, body, Some(&self.token))
            .await
    }

    pub async fn api_with_token(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.api_bytes(method, path, body, token).await
    }

    /// An admin API request with a body of raw bytes: an upload, or JSON a `Value` cannot
    /// hold (a key given twice).
    pub async fn api_bytes(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let tls = client_config(&self.ca_pem(), None);
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header("host", "localhost");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = send(self.admin, tls, req.body(Full::new(body.into())).unwrap())
            .await
            .expect("admin API request");
        let v = if resp.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
        };
        (resp.status, v)
    }

    /// An admin API GET with `token`, answered as it came (a file's text is no JSON).
    pub async fn get_raw(&self, path: String, token: &str) -> Resp {
        let req = http::Request::builder()
            .uri(format!("/api/v1{path}"))
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(self.admin, client_config(&self.ca_pem(), None), req)
            .await
            .expect("admin API request")
    }

    /// The Prometheus text from the admin listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        let mut req = get("/metrics", "prometheus");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        let r = send(self.admin, client_config(&self.ca_pem(), None), req)
            .await
            .expect("metrics request");
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }

    /// Creates `site` unless it exists: a device, a move and an operator's token name only a
    /// site that exists.
    pub async fn ensure_site(&self, site: &str) {
        let (status, v) = self.api("GET", &format!("/sites/{site}"), None).await;
        if status == 404 {
            let new = serde_json::json!({"name": site});
            let (status, v) = self.api("POST", "/sites", Some(new)).await;
            assert_eq!(status, 201, "{v}");
        } else {
            assert_eq!(status, 200, "{v}");
        }
    }

    /// The secret of a new operator token of `user` holding `sites` (which need not exist).
    pub async fn operator_token(&self, user: &str, sites: &[&str]) -> String {
        let body = serde_json::json!({"user": user, "role": "operator", "sites": sites});
        let (status, v) = self.api("POST", "/tokens", Some(body)).await;
        assert_eq!(status, 201, "{v}");
        v["token"].as_str().expect("the token's secret").to_string()
    }

    /// `cache` and `partial_bytes` of the firmware release of `file`, as `GET /firmware`
    /// lists them.
    pub async fn firmware_cache_state(&self, file: &str) -> (String, u64) {
        let (status, list) = self.api("GET", "/firmware", None).await;
        assert_eq!(status, 200, "{list}");
        let r = list["releases"]
            .as_array()
            .expect("releases")
            .iter()
            .find(|r| r["file"] == file)
            .unwrap_or_else(|| panic!("{file} in {list}"));
        (
            r["cache"].as_str().expect("cache").to_string(),
            r["partial_bytes"].as_u64().expect("partial_bytes"),
        )
    }

    /// Adds a device, creating its site first when none exists.
    pub async fn add_device(&self, body: Value) {
        if let Some(site) = body["site"].as_str().filter(|s| !s.is_empty()) {
            self.ensure_site(site).await;
        }
        let (status, v) = self.api("POST", "/devices", Some(body)).await;
        assert_eq!(status, 201, "{v}");
    }

    /// Uploads a static file (`NAME` or `NAME?site=S`); answers the API's view of it.
    pub async fn put_file(&self, name_and_query: &str, body: impl Into<Bytes>) -> Value {
        let req = http::Request::builder()
            .method("PUT")
            .uri(format!("/api/v1/files/{name_and_query}"))
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(body.into()))
            .unwrap();
        let r = send(self.admin, client_config(&self.ca_pem(), None), req)
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{name_and_query}: {}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// A client identity for `mac` signed with the daemon's CA key file outside the daemon
    /// (so the daemon has no record of issuing it), after `adjust` changed its parameters.
    pub fn mint(&self, mac: &str, adjust: impl FnOnce(&mut rcgen::CertificateParams)) -> Identity {
        let ca_key = rcgen::KeyPair::from_pem(
            &std::fs::read_to_string(self.data_dir().join("pki/ca.key")).unwrap(),
        )
        .unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.ca_pem(), ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, mac);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        adjust(&mut p);
        Identity {
            cert_pem: p.signed_by(&key, &issuer).unwrap().pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client identity for `mac` issued by the daemon's CA through the admin API.
    pub async fn identity(&self, mac: &str) -> Identity {
        let (status, v) = self
            .api("POST", &format!("/devices/{mac}/certificate"), None)
            .await;
        assert_eq!(status, 201, "{v}");
        Identity {
            cert_pem: v["certificate"].as_str().unwrap().to_string(),
            key_pem: v["private_key"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits (up to 5 s) until the daemon's log says `text`.
pub async fn wait_for_log(d: &Daemon, text: &str) {
    for _ in 0..200 {
        if d.log().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("log never said {text:?}:\n{}", d.log());
}

pub fn signal(pid: u32, sig: &str) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

/// Runs `serve` and returns (exited successfully, stderr); a daemon still running after 20 s
/// is killed and counts as not refused.
pub fn run_serve(config: &Path) -> (bool, String) {
    let scratch = tempfile::tempdir().unwrap();
    let err_path = scratch.path().join("stderr");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // A daemon that starts when it should have refused is a failure, not a hang.
    let status = wait_timeout(&mut child, Duration::from_secs(20));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    (status.is_none_or(|s| s.success()), err)
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Clone)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn client_config(ca_pem: &str, identity: Option<&Identity>) -> Arc<rustls::ClientConfig> {
    Arc::new(client_config_with(
        rustls::DEFAULT_VERSIONS,
        ca_pem,
        identity,
    ))
}

/// A client of the given TLS versions trusting `ca_pem`, with `identity`'s certificate if any.
pub fn client_config_with(
    versions: &[&'static rustls::SupportedProtocolVersion],
    ca_pem: &str,
    identity: Option<&Identity>,
) -> rustls::ClientConfig {
    install_provider();
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots);
    match identity {
        Some(id) => {
            let chain: Vec<_> = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request over a fresh TLS connection; any TLS or HTTP failure is returned as text.
pub async fn send(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    req: http::Request<Full<Bytes>>,
) -> Result<Resp, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    request_over(TokioIo::new(stream), req).await
}

/// One request over plain HTTP.
pub async fn send_plain(addr: SocketAddr, req: http::Request<Full<Bytes>>) -> Result<Resp, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    request_over(TokioIo::new(tcp), req).await
}

async fn request_over<T>(io: T, req: http::Request<Full<Bytes>>) -> Result<Resp, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| {
        // The TLS alert that refused a certificate surfaces on the connection task.
        format!("{e}: {e:?}")
    })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    drop(sender);
    let _ = driver.await;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub fn get(path: &str, user_agent: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .uri(path)
        .header("host", "localhost")
        .header("user-agent", user_agent)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub const J179_UA: &str =
    "Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:001122aabbcc)";

/// The value of an unlabelled sample in Prometheus text (`name value` on its own line).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .parse()
        .unwrap()
}

/// The `nonce` of a `WWW-Authenticate: Digest …` challenge.
pub fn challenge_nonce(challenge: &str) -> &str {
    challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a Digest challenge carries a nonce")
}

/// Runs `command` with `input` written to its standard input, then closed; its output captured.
pub fn output_with_input(mut command: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the command");
    child
        .stdin
        .take()
        .expect("its standard input")
        .write_all(input.as_bytes())
        .expect("write its standard input");
    child.wait_with_output().expect("wait for the command")
}
