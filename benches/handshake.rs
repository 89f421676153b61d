//! What one full mutual-TLS handshake costs the phone listener in user space, without sockets:
//! the floor under edgeprov's server CPU per phone in a boot storm (docs/performance.md, "What
//! bounds them").
//!
//! - `tls13_server_half` / `tls12_server_half`: rustls with the phone listener's own
//!   configuration (`pki::phone_server_config`, a CA made by `Pki::load_or_init`) against storm
//!   phones' client configurations (each its own minted certificate), in memory; only the
//!   server's calls are timed (`iter_custom`), the client's half runs untimed.
//! - `crypto/*`: the operations a full TLS 1.3 handshake makes the server do, one at a time,
//!   with aws-lc-rs (the provider rustls uses here): one X25519 key share, one ECDSA P-256
//!   signature (CertificateVerify), two ECDSA P-256 verifications (the client certificate's CA
//!   signature and the client's CertificateVerify).
//!
//! `cargo bench --bench handshake`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::agreement::{self, EphemeralPrivateKey, X25519};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use criterion::{Criterion, criterion_group, criterion_main};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use edgeprov::config::PkiConfig;
use edgeprov::model::Mac;
use edgeprov::pki::{DeviceMinter, Pki, Revocations, phone_server_config};

/// Phones whose certificates the handshakes take in turn.
const PHONES: u32 = 64;

struct Setup {
    server: Arc<ServerConfig>,
    tls13: Vec<Arc<ClientConfig>>,
    tls12: Vec<Arc<ClientConfig>>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temporary directory");
    let pki =
        Pki::load_or_init(dir.path(), &PkiConfig::default(), "", Revocations::none()).expect("PKI");
    let server = phone_server_config(&pki).expect("phone TLS configuration");
    let minter = DeviceMinter::from_files(&dir.path().join("ca.crt"), &dir.path().join("ca.key"))
        .expect("CA files");
    let mut roots = RootCertStore::empty();
    roots.add(minter.ca_cert().clone()).expect("CA certificate");
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = |i: u32, version: &'static rustls::SupportedProtocolVersion| {
        let mac = Mac::parse(&format!("0200{i:08x}")).expect("MAC");
        let (cert, key) = minter.mint(mac, 1).expect("device certificate");
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .expect("protocol version")
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(vec![cert], key)
            .expect("client certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    };
    Setup {
        server,
        tls13: (0..PHONES)
            .map(|i| client(i, &rustls::version::TLS13))
            .collect(),
        tls12: (0..PHONES)
            .map(|i| client(i, &rustls::version::TLS12))
            .collect(),
        _dir: dir,
    }
}

/// One full handshake (and the server's session ticket); returns the time spent in the
/// server's calls.
fn handshake(server_config: &Arc<ServerConfig>, client_config: &Arc<ClientConfig>) -> Duration {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut client = ClientConnection::new(client_config.clone(), name).expect("client");
    let started = Instant::now();
    let mut server = ServerConnection::new(server_config.clone()).expect("server");
    let mut spent = started.elapsed();
    loop {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).expect("client write");
        }
        let started = Instant::now();
        let mut bytes = &to_server[..];
        while !bytes.is_empty() {
            server.read_tls(&mut bytes).expect("server read");
            server.process_new_packets().expect("server handshake");
        }
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).expect("server write");
        }
        spent += started.elapsed();
        let mut bytes = &to_client[..];
        while !bytes.is_empty() {
            client.read_tls(&mut bytes).expect("client read");
            client.process_new_packets().expect("client handshake");
        }
        if to_server.is_empty() && to_client.is_empty() {
            break;
        }
    }
    assert!(
        !server.is_handshaking() && server.peer_certificates().is_some(),
        "the handshake completed with the client's certificate"
    );
    let started = Instant::now();
    drop(server);
    spent + started.elapsed()
}

fn server_half(c: &mut Criterion) {
    let setup = setup();
    for (name, clients) in [
        ("tls13_server_half", &setup.tls13),
        ("tls12_server_half", &setup.tls12),
    ] {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|i| handshake(&setup.server, &clients[(i % u64::from(PHONES)) as usize]))
                    .sum()
            })
        });
    }
}

fn crypto(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let peer = EphemeralPrivateKey::generate(&X25519, &rng).expect("X25519 key");
    let peer_public = peer.compute_public_key().expect("X25519 public key");
    c.bench_function("crypto/x25519_key_share", |b| {
        b.iter(|| {
            let mine = EphemeralPrivateKey::generate(&X25519, &rng).expect("X25519 key");
            let public = mine.compute_public_key().expect("X25519 public key");
            let peer = agreement::UnparsedPublicKey::new(&X25519, peer_public.as_ref());
            let secret = agreement::agree_ephemeral(mine, peer, (), |s| Ok(s[0]));
            black_box((public, secret))
        })
    });
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("P-256 key");
    let message = [0x20u8; 130];
    c.bench_function("crypto/ecdsa_p256_sign", |b| {
        b.iter(|| black_box(key.sign(&rng, black_box(&message)).expect("signature")))
    });
    let signature = key.sign(&rng, &message).expect("signature");
    let public = key.public_key().as_ref().to_vec();
    c.bench_function("crypto/ecdsa_p256_verify", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, black_box(&public))
                .verify(&message, signature.as_ref())
                .expect("valid signature")
        })
    });
}

criterion_group!(benches, server_half, crypto);
criterion_main!(benches);
