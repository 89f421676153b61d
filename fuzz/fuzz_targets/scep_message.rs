//! SCEP on arbitrary bytes, as the phone listener's SCEP route reads a pkiMessage. The first
//! byte picks what the rest is:
//! - 0: a whole pkiMessage: its signed envelope read, then checked and opened by the RA;
//! - 1: the signed content alone (the EnvelopedData), wrapped here in a message correctly
//!   signed by a client key of the fuzzer's own, so that opening the envelope is reached as an
//!   attacker with a key of his own reaches it (the signature does not keep him out);
//! - 2: a PKCS#10 certificate request, as a decrypted envelope holds it;
//! - 3: a CertPoll's IssuerAndSubject.
//!
//! No input may panic, and a message whose envelope reads can be answered. The RA's certificate has a fixed issuer and serial (CN=RA, serial 1),
//! so that an input naming it stays valid across runs although the key is made at each start.
#![no_main]

use std::sync::OnceLock;

use der::asn1::{ObjectIdentifier, OctetString};
use edgeprov::scep::poll::read_issuer_and_subject;
use edgeprov::scep::reply::{Outcome, any, attribute, cert_rep, printable, signed};
use edgeprov::scep::{FailInfo, MessageType, RaKey, RsaKey, read_csr, read_header};
use libfuzzer_sys::fuzz_target;

const MESSAGE_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.2");
const SENDER_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.5");
const TRANSACTION_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.7");

struct Keys {
    ra: RsaKey,
    client: RsaKey,
}

/// A self-signed RSA 2048 certificate for `cn` with serial `serial`, and its key.
fn identity(cn: &str, serial: u8) -> RsaKey {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serial_number = Some(rcgen::SerialNumber::from(vec![serial]));
    let cert = params.self_signed(&key).unwrap().der().to_vec();
    RsaKey::new(cert, &key.serialize_der()).unwrap()
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        ra: identity("RA", 1),
        client: identity("00:04:0d:11:22:33", 2),
    })
}

/// Reads, checks and opens `message` as the route does, both as a request and as a poll. A
/// message whose envelope reads can always be answered with a CertRep FAILURE.
fn serve(message: &[u8]) {
    let ra = &keys().ra;
    if let Ok(signed) = read_header(message) {
        let refusal = cert_rep(ra, &signed.header, Outcome::Failed(FailInfo::BadRequest));
        assert!(refusal.is_ok(), "{refusal:?}");
        let _ = signed.verify_signature();
        let _ = signed.open(ra, true);
    }
    if let Ok(signed) = read_header(message) {
        let _ = signed.open_poll(ra, false);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => serve(rest),
        1 => {
            let client = &keys().client;
            let kind = [
                MessageType::PkcsReq,
                MessageType::RenewalReq,
                MessageType::CertPoll,
            ][usize::from(mode / 4) % 3];
            let attrs = vec![
                attribute(MESSAGE_TYPE, printable(kind.code()).unwrap()).unwrap(),
                attribute(TRANSACTION_ID, printable("fuzz").unwrap()).unwrap(),
                attribute(
                    SENDER_NONCE,
                    any(&OctetString::new([7; 16]).unwrap()).unwrap(),
                )
                .unwrap(),
            ];
            let message = signed(rest, attrs, client.cert_der(), &|m| client.sign_sha256(m))
                .expect("any content can be signed");
            let header = read_header(&message).expect("a message signed here reads");
            assert!(header.verify_signature().is_ok());
            serve(&message);
        }
        2 => {
            if let Ok(facts) = read_csr(rest) {
                assert!(facts.cn.chars().count() <= 64);
            }
        }
        _ => {
            if let Some(subject) = read_issuer_and_subject(rest) {
                assert!(subject.cn.chars().count() <= 64);
            }
        }
    }
});
