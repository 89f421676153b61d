//! A reference cloud enrollment service for tests: the sync protocol over real HTTPS with mutual
//! TLS on loopback, a small in-memory model (registration tokens, sites, devices and a change
//! log), event counters, and switches that inject faults.
//!
//! It runs on its own thread and runtime so tests may block (starting or killing the daemon)
//! without stalling it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

/// Fault switches; each "next" counter is consumed by one request.
#[derive(Debug, Default)]
pub struct Faults {
    /// Every request answers 503.
    pub down: bool,
    /// The `Retry-After` those 503s carry, if any.
    pub retry_after: Option<String>,
    /// Requests answered 503 for `down`.
    pub down_answers: u64,
    /// Each request waits this long before answering (beyond the client's timeout = a timeout).
    pub delay_ms: u64,
    /// The next N event posts are committed, then the connection is dropped without an answer.
    pub lose_event_responses: u32,
    /// The next N change requests get this raw body instead of the real page.
    pub raw_pages: Vec<String>,
    /// The next change request gets a page that continues from the very beginning (as if
    /// delivered out of order or replayed).
    pub replay_from_start: bool,
    /// A change request from one of these cursors answers a page leading to the next one (the
    /// last leads back to the first), asking for more, with nothing in it.
    pub cycle: Vec<String>,
    /// Change requests answered from `cycle`.
    pub cycle_pulls: u64,
    /// An event post holding an event for one of these MACs is refused whole (422), naming
    /// the event; nothing of it is taken.
    pub reject_macs: HashSet<String>,
    /// An event post with more events than this (when set) is refused whole (413).
    pub max_events: Option<usize>,
    /// Event posts refused (413 and 422).
    pub refused_posts: u64,
}

#[derive(Debug, Default)]
pub struct Model {
    pub site: String,
    pub tokens: HashSet<String>,
    pub appliances: u32,
    /// The change log: each entry is a device's full state after a change. Cursor = index.
    pub log: Vec<Value>,
    pub devices: BTreeMap<String, Value>,
    /// The firmware releases and policies sent with every page (none unless a test sets them).
    pub firmware: Vec<Value>,
    pub policies: Vec<Value>,
    /// Events by id, first delivery only, in arrival order.
    pub events: Vec<Value>,
    pub seen_ids: HashSet<String>,
    /// Every event received, duplicates included.
    pub received: u64,
    pub duplicates: u64,
    /// Change requests answered / refused for lack of a client certificate.
    pub pulls: u64,
    /// Every change request ('p') and event post ('e') answered, in the order they came.
    pub order: String,
    pub unauthenticated: u64,
}

pub struct Cloud {
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    pub model: Arc<Mutex<Model>>,
    pub faults: Arc<Mutex<Faults>>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Shared {
    model: Arc<Mutex<Model>>,
    faults: Arc<Mutex<Faults>>,
    issuer: Issuer<'static, KeyPair>,
}

impl Cloud {
    pub fn start(site: &str) -> Cloud {
        crate::common::install_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "reference cloud CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca_file = dir.path().join("cloud-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()
            .unwrap();
        let mut tls = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let model = Arc::new(Mutex::new(Model {
            site: site.to_string(),
            ..Model::default()
        }));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let shared = Arc::new(Shared {
            model: model.clone(),
            faults: faults.clone(),
            issuer,
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                        _ = &mut stop_rx => return,
                    };
                    let (acceptor, shared) = (acceptor.clone(), shared.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let authenticated = tls.get_ref().1.peer_certificates().is_some();
                        let svc = hyper::service::service_fn(move |req| {
                            let shared = shared.clone();
                            async move { handle(&shared, authenticated, req).await }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                    });
                }
            });
        });
        Cloud {
            addr,
            ca_file,
            model,
            faults,
            _dir: dir,
            stop: Some(stop_tx),
        }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// A one-time registration token.
    pub fn token(&self) -> String {
        let t = format!("tok-{}", self.model.lock().unwrap().tokens.len() + 1);
        self.model.lock().unwrap().tokens.insert(t.clone());
        t
    }

    /// The `[cloud]` table a daemon needs to talk to this cloud, with fast intervals.
    pub fn config(&self) -> String {
        format!(
            "[cloud]\nca_file = \"{}\"\npull_interval_ms = 100\nrequest_timeout_ms = 1000\nretry_min_ms = 50\nretry_max_ms = 400\nalarm_after_secs = 1\n",
            self.ca_file.display()
        )
    }

    /// Changes a device (creating it as imported first if new) and logs the change.
    pub fn set_device(&self, mac: &str, state: &str, site: &str, params: Value) {
        let mut m = self.model.lock().unwrap();
        let d = json!({
            "mac": mac, "state": state, "site": site, "phone_group": "7", "model": "J179",
            "params": params, "vendor_extension": {"ignored": true},
        });
        m.devices.insert(mac.to_string(), d.clone());
        m.log.push(d);
    }

    /// The firmware releases sent with every page from now on.
    pub fn set_firmware(&self, releases: Vec<Value>) {
        self.model.lock().unwrap().firmware = releases;
    }

    /// The firmware policies sent with every page from now on.
    pub fn set_policies(&self, policies: Vec<Value>) {
        self.model.lock().unwrap().policies = policies;
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap()
    }

    /// Unique events of one type.
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        let m = self.model.lock().unwrap();
        m.events
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    }

    pub fn log_len(&self) -> usize {
        self.model.lock().unwrap().log.len()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

/// Err = drop the connection without answering.
async fn handle(
    shared: &Shared,
    authenticated: bool,
    req: Request<Incoming>,
) -> Result<Resp, String> {
    let delay = shared.faults.lock().unwrap().delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    {
        let mut f = shared.faults.lock().unwrap();
        if f.down {
            f.down_answers += 1;
            let mut r = reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "down"}));
            if let Some(after) = &f.retry_after {
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, after.parse().unwrap());
            }
            return Ok(r);
        }
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    match path.as_str() {
        "/v1/appliances/register" => Ok(register(shared, &body)),
        "/v1/changes" | "/v1/events" if !authenticated => {
            shared.model.lock().unwrap().unauthenticated += 1;
            Ok(reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "client certificate required"}),
            ))
        }
        "/v1/changes" => Ok(changes(shared, &query)),
        "/v1/events" => events(shared, &body),
        _ => Ok(reply(
            StatusCode::NOT_FOUND,
            json!({"error": "no such path"}),
        )),
    }
}

fn register(shared: &Shared, body: &[u8]) -> Resp {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return reply(StatusCode::BAD_REQUEST, json!({"error": "not JSON"}));
    };
    let mut m = shared.model.lock().unwrap();
    if !m.tokens.remove(req["token"].as_str().unwrap_or("")) {
        return reply(
            StatusCode::FORBIDDEN,
            json!({"error": "unknown or used token"}),
        );
    }
    let Ok(csr) = CertificateSigningRequestParams::from_pem(req["csr"].as_str().unwrap_or(""))
    else {
        return reply(StatusCode::BAD_REQUEST, json!({"error": "bad CSR"}));
    };
    let cert = csr.signed_by(&shared.issuer).unwrap();
    m.appliances += 1;
    json_ok(json!({
        "version": 1, "certificate": cert.pem(), "site": m.site,
        "appliance_id": format!("app-{}", m.appliances), "welcome": "unknown fields are fine",
    }))
}

fn json_ok(v: Value) -> Resp {
    reply(StatusCode::OK, v)
}

fn changes(shared: &Shared, query: &str) -> Resp {
    let params: HashMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut faults = shared.faults.lock().unwrap();
    if !faults.raw_pages.is_empty() {
        let raw = faults.raw_pages.remove(0);
        return Response::new(Full::new(Bytes::from(raw)));
    }
    let asked = params.get("cursor").cloned().unwrap_or_default();
    if let Some(i) = faults.cycle.iter().position(|c| *c == asked) {
        let next = faults.cycle[(i + 1) % faults.cycle.len()].clone();
        faults.cycle_pulls += 1;
        return json_ok(json!({"version": 1, "cursor": asked, "next_cursor": next, "more": true}));
    }
    let replay = std::mem::take(&mut faults.replay_from_start);
    drop(faults);
    let mut m = shared.model.lock().unwrap();
    m.pulls += 1;
    m.order.push('p');
    let from: usize = if replay {
        0
    } else {
        asked.parse().unwrap_or(0)
    };
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .min(50);
    let end = (from + limit).min(m.log.len());
    let devices: Vec<Value> = m.log.get(from..end).unwrap_or_default().to_vec();
    json_ok(json!({
        "version": 1,
        "cursor": if replay { String::new() } else { asked },
        "next_cursor": end.to_string(),
        "more": end < m.log.len(),
        "devices": devices,
        "sites": [{"name": m.site, "label": "Head office",
                   "profile": {"provisioning_url": "https://prov.example/", "phone_group": "7"}}],
        "firmware": m.firmware,
        "policies": m.policies,
    }))
}

fn events(shared: &Shared, body: &[u8]) -> Result<Resp, String> {
    let Ok(batch) = serde_json::from_slice::<Value>(body) else {
        return Ok(reply(StatusCode::BAD_REQUEST, json!({"error": "not JSON"})));
    };
    let events = batch["events"].as_array().cloned().unwrap_or_default();
    {
        let mut f = shared.faults.lock().unwrap();
        if let Some(max) = f.max_events.filter(|max| events.len() > *max) {
            f.refused_posts += 1;
            return Ok(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": format!("at most {max} events a post") }),
            ));
        }
        let refused = events
            .iter()
            .find(|e| f.reject_macs.contains(e["mac"].as_str().unwrap_or("")));
        if let Some(e) = refused {
            let why = format!("event {}: device {} is blocked here", e["id"], e["mac"]);
            f.refused_posts += 1;
            return Ok(reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": why }),
            ));
        }
    }
    let mut accepted = 0;
    {
        let mut m = shared.model.lock().unwrap();
        m.order.push('e');
        for e in events {
            m.received += 1;
            let id = e["id"].as_str().unwrap_or("").to_string();
            if m.seen_ids.insert(id) {
                m.events.push(e);
                accepted += 1;
            } else {
                m.duplicates += 1;
            }
        }
    }
    let mut f = shared.faults.lock().unwrap();
    if f.lose_event_responses > 0 {
        f.lose_event_responses -= 1;
        return Err("response lost after commit".into());
    }
    Ok(json_ok(json!({"version": 1, "accepted": accepted})))
}
