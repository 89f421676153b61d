//! Whole SCEP exchanges built in the test the way a client builds them: a request signed and
//! encrypted to an RA, read and opened by the server side, and the CertRep read back by the
//! client.

use der::Decode;
use der::asn1::OctetString;

use super::reply::{Outcome, any, attribute, cert_rep, printable, signed};
use super::*;

/// An RSA key with a self-signed certificate: the RA, or a client's signer, held as the RA
/// holds its own ([`RsaKey`]).
struct Identity {
    cert: Vec<u8>,
    rcgen_key: rcgen::KeyPair,
    key: RsaKey,
}

impl Identity {
    fn new(cn: &str) -> Identity {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.self_signed(&key).unwrap().der().to_vec();
        Identity {
            key: RsaKey::new(cert.clone(), &key.serialize_der()).unwrap(),
            cert,
            rcgen_key: key,
        }
    }
}

const NONCE: [u8; 16] = *b"0123456789abcdef";

/// A pkiMessage of `kind` from `client` to `ra` carrying `csr`, as clients build one.
fn request(
    client: &Identity,
    ra: &Identity,
    csr: &[u8],
    cipher: ContentCipher,
    kind: MessageType,
) -> Vec<u8> {
    let ra_cert = x509_cert::Certificate::from_der(&ra.cert).unwrap();
    let envelope = reply::enveloped(csr, cipher, &ra_cert).unwrap();
    sign_envelope(client, &envelope, kind)
}

/// A pkiMessage of `kind` from `client` carrying `envelope` as it is.
fn sign_envelope(client: &Identity, envelope: &[u8], kind: MessageType) -> Vec<u8> {
    let attrs = vec![
        attribute(oids::MESSAGE_TYPE, printable(kind.code()).unwrap()).unwrap(),
        attribute(oids::TRANSACTION_ID, printable("tx-42").unwrap()).unwrap(),
        attribute(
            oids::SENDER_NONCE,
            any(&OctetString::new(NONCE).unwrap()).unwrap(),
        )
        .unwrap(),
    ];
    signed(envelope, attrs, &client.cert, &|m| {
        client.key.sign_sha256(m)
    })
    .unwrap()
}

fn device_csr(challenge: Option<&str>) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    test_support::csr(&key, "00:04:0d:11:22:33", challenge)
}

#[test]
fn a_request_is_read_verified_and_opened_with_every_cipher() {
    let (ra, client) = (Identity::new("RA"), Identity::new("SCEP SIGNER"));
    let csr = device_csr(Some("s3cret"));
    for cipher in [
        ContentCipher::DesCbc,
        ContentCipher::DesEde3Cbc,
        ContentCipher::Aes128Cbc,
        ContentCipher::Aes256Cbc,
    ] {
        let msg = request(&client, &ra, &csr, cipher, MessageType::PkcsReq);
        let req = parse_request(&msg, &ra.key, true).unwrap();
        assert_eq!(req.header.message_type, MessageType::PkcsReq);
        assert_eq!(req.header.transaction_id, "tx-42");
        assert_eq!(req.header.sender_nonce, NONCE);
        assert_eq!(req.header.signer_der, client.cert);
        assert_eq!(req.cipher, cipher);
        assert_eq!(req.csr, read_csr(&csr).unwrap());
        assert_eq!(req.csr.challenge.as_deref(), Some("s3cret"));
        let shown = format!("{req:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[test]
fn single_des_is_refused_unless_allowed() {
    let (ra, client) = (Identity::new("RA"), Identity::new("signer"));
    let msg = request(
        &client,
        &ra,
        &device_csr(None),
        ContentCipher::DesCbc,
        MessageType::PkcsReq,
    );
    match parse_request(&msg, &ra.key, false) {
        Err(ScepError::Refused { fail, .. }) => assert_eq!(fail, FailInfo::BadAlg),
        other => panic!("{other:?}"),
    }
}

/// A message signed by one key with another's certificate, altered after signing, or
/// encrypted to another RA is refused with the failInfo RFC 8894 gives for it.
#[test]
fn forged_altered_and_misdirected_requests_are_refused() {
    let (ra, client) = (Identity::new("RA"), Identity::new("signer"));
    let csr = device_csr(Some("s3cret"));
    let fail = |msg: &[u8], ra: &Identity| match parse_request(msg, &ra.key, true) {
        Err(ScepError::Refused { fail, .. }) => fail,
        other => panic!("{other:?}"),
    };
    // Signed by another key than the certificate's.
    let impostor = Identity::new("impostor");
    let ra_cert = x509_cert::Certificate::from_der(&ra.cert).unwrap();
    let envelope = reply::enveloped(&csr, ContentCipher::Aes128Cbc, &ra_cert).unwrap();
    let attrs = vec![
        attribute(oids::MESSAGE_TYPE, printable("19").unwrap()).unwrap(),
        attribute(oids::TRANSACTION_ID, printable("t").unwrap()).unwrap(),
        attribute(
            oids::SENDER_NONCE,
            any(&OctetString::new(NONCE).unwrap()).unwrap(),
        )
        .unwrap(),
    ];
    let forged = signed(&envelope, attrs, &client.cert, &|m| {
        impostor.key.sign_sha256(m)
    })
    .unwrap();
    assert_eq!(fail(&forged, &ra), FailInfo::BadMessageCheck);

    // One content byte changed after signing: the messageDigest no longer matches.
    let good = request(
        &client,
        &ra,
        &csr,
        ContentCipher::Aes128Cbc,
        MessageType::PkcsReq,
    );
    let needle = &envelope[envelope.len() - 8..];
    let mut altered = good.clone();
    let at = altered
        .windows(8)
        .position(|w| w == needle)
        .unwrap_or(altered.len() / 2);
    altered[at] ^= 1;
    assert!(matches!(
        parse_request(&altered, &ra.key, true),
        Err(ScepError::Refused {
            fail: FailInfo::BadMessageCheck,
            ..
        }) | Err(ScepError::NotSignedData(_))
    ));

    // Encrypted to an RA that is not this one.
    assert_eq!(fail(&good, &Identity::new("other RA")), FailInfo::BadCertId);
}

/// No padding oracle: once the signature checks out, a request whose CBC padding is wrong and
/// one whose padding is right but whose content is no certificate request, or a request whose
/// self-signature fails, are refused alike. Told apart, an attacker replaying a captured
/// envelope with chosen IVs under a signature of his own would decrypt it byte by byte.
#[test]
fn what_fails_inside_the_envelope_is_refused_alike() {
    let (ra, client) = (Identity::new("RA"), Identity::new("signer"));
    let ra_cert = x509_cert::Certificate::from_der(&ra.cert).unwrap();
    let cipher = ContentCipher::Aes128Cbc;
    let csr = device_csr(Some("s3cret"));

    // The last byte of the last plaintext block is the padding length: XOR-ing it into the
    // same byte of the block before turns it into 0, never a valid PKCS#7 padding. The
    // encrypted content is the envelope's last field, so its last 32 bytes are those blocks.
    let mut bad_padding = reply::enveloped(&csr, cipher, &ra_cert).unwrap();
    let pad = (16 - csr.len() % 16) as u8;
    let at = bad_padding.len() - 17;
    bad_padding[at] ^= pad;
    let garbage = reply::enveloped(b"no certificate request", cipher, &ra_cert).unwrap();
    let mut forged_csr = csr.clone();
    let last = forged_csr.len() - 1;
    forged_csr[last] ^= 1;
    let forged_csr = reply::enveloped(&forged_csr, cipher, &ra_cert).unwrap();

    // The encrypted content key (the envelope's one 256-byte OCTET STRING) altered: its RSA
    // padding fails, and the key derived in its place opens nothing.
    let mut bad_key = reply::enveloped(&csr, cipher, &ra_cert).unwrap();
    let key_at = bad_key
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .unwrap()
        + 4;
    bad_key[key_at + 255] ^= 1;

    let refusals: Vec<_> = [bad_padding, garbage, forged_csr, bad_key]
        .iter()
        .map(|env| {
            let msg = sign_envelope(&client, env, MessageType::PkcsReq);
            parse_request(&msg, &ra.key, true).unwrap_err()
        })
        .collect();
    for r in &refusals {
        assert_eq!(
            r,
            &ScepError::Refused {
                fail: FailInfo::BadMessageCheck,
                reason: request::UNREADABLE.into(),
            }
        );
    }
}

#[test]
fn garbage_is_refused_without_a_panic() {
    let ra = Identity::new("RA");
    for body in [
        &b""[..],
        b"\x30",
        b"\x30\x80\x00\x00",
        b"not der at all",
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
    ] {
        assert!(parse_request(body, &ra.key, true).is_err());
    }
    // A well-formed SignedData of no SCEP request (the GetCACert answer).
    let certs = reply::ca_certs(&ra.cert, &ra.cert).unwrap();
    assert!(matches!(
        parse_request(&certs, &ra.key, true),
        Err(ScepError::Signer(_))
    ));
}

/// The client's side of the exchange: the CertRep verifies under the RA certificate, answers
/// the transaction with the request's nonce, and on success opens, with the key that signed
/// the request, to the certificate issued.
#[test]
fn a_cert_rep_answers_the_transaction_and_opens_to_the_certificate() {
    let (ra, client) = (Identity::new("RA"), Identity::new("signer"));
    let msg = request(
        &client,
        &ra,
        &device_csr(Some("s3cret")),
        ContentCipher::DesEde3Cbc,
        MessageType::PkcsReq,
    );
    let req = parse_request(&msg, &ra.key, false).unwrap();
    let issued = Identity::new("00040d112233").cert;

    let rep = cert_rep(
        &ra.key,
        &req.header,
        Outcome::Granted {
            cert: &issued,
            cipher: req.cipher,
        },
    )
    .unwrap();
    let read = read_header(&rep).unwrap();
    read.verify_signature().unwrap();
    assert_eq!(read.header.message_type, MessageType::CertRep);
    assert_eq!(read.header.transaction_id, "tx-42");
    assert_eq!(read.header.signer_der, ra.cert);
    assert_eq!(
        read.printable_attribute(&oids::PKI_STATUS).as_deref(),
        Some("0")
    );
    assert_eq!(read.printable_attribute(&oids::FAIL_INFO), None);
    let (cipher, content) = read.open_data(&client.key, false).unwrap();
    assert_eq!(cipher, ContentCipher::DesEde3Cbc);
    let ci = cms::content_info::ContentInfo::from_der(&content).unwrap();
    let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
    let certs: Vec<_> = sd.certificates.unwrap().0.into_vec();
    assert_eq!(certs.len(), 1);
    match &certs[0] {
        cms::cert::CertificateChoices::Certificate(c) => {
            assert_eq!(der::Encode::to_der(c).unwrap(), issued)
        }
        other => panic!("{other:?}"),
    }

    let rep = cert_rep(&ra.key, &req.header, Outcome::Failed(FailInfo::BadCertId)).unwrap();
    let read = read_header(&rep).unwrap();
    read.verify_signature().unwrap();
    assert_eq!(
        read.printable_attribute(&oids::PKI_STATUS).as_deref(),
        Some("2")
    );
    assert_eq!(
        read.printable_attribute(&oids::FAIL_INFO).as_deref(),
        Some("4")
    );
}

/// A request held for the operator is answered PENDING: a CertRep signed by the RA that our
/// own reader accepts, answering the transaction with the request's nonce, pkiStatus 3, no
/// failInfo and no content.
#[test]
fn a_pending_cert_rep_is_signed_answers_the_transaction_and_carries_nothing() {
    let (ra, client) = (Identity::new("RA"), Identity::new("signer"));
    let msg = request(
        &client,
        &ra,
        &device_csr(Some("s3cret")),
        ContentCipher::Aes128Cbc,
        MessageType::PkcsReq,
    );
    let req = parse_request(&msg, &ra.key, false).unwrap();
    let rep = cert_rep(&ra.key, &req.header, Outcome::Pending).unwrap();
    let read = read_header(&rep).unwrap();
    read.verify_signature().unwrap();
    assert_eq!(read.header.message_type, MessageType::CertRep);
    assert_eq!(read.header.transaction_id, "tx-42");
    assert_eq!(read.header.signer_der, ra.cert);
    assert_eq!(
        read.printable_attribute(&oids::PKI_STATUS).as_deref(),
        Some("3")
    );
    assert_eq!(read.printable_attribute(&oids::FAIL_INFO), None);
    let ci = cms::content_info::ContentInfo::from_der(&rep).unwrap();
    let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
    let si = sd.signer_infos.0.get(0).unwrap();
    let recipient = si
        .signed_attrs
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.oid == oids::RECIPIENT_NONCE)
        .unwrap()
        .values
        .get(0)
        .unwrap()
        .decode_as::<OctetString>()
        .unwrap();
    assert_eq!(recipient.as_bytes(), NONCE);
    let content = sd
        .encap_content_info
        .econtent
        .unwrap()
        .decode_as::<OctetString>()
        .unwrap();
    assert!(content.as_bytes().is_empty());
}

/// The IssuerAndSubject a CertPoll carries, DER.
fn issuer_and_subject(issuer: &str, subject: &str) -> Vec<u8> {
    use std::str::FromStr;
    der::Encode::to_der(&poll::IssuerAndSubject {
        issuer: x509_cert::name::Name::from_str(issuer).unwrap(),
        subject: x509_cert::name::Name::from_str(subject).unwrap(),
    })
    .unwrap()
}

/// A CertPoll opens to the subject it polls for; its content read as a certificate request,
/// or a certificate request read as a poll, is the one refusal every unreadable content gets.
#[test]
fn a_cert_poll_is_read_verified_and_opened_to_its_subject() {
    let (ra, client) = (Identity::new("RA"), Identity::new("signer"));
    let content = issuer_and_subject("CN=edgeprov device CA", "CN=00:04:0d:11:22:33");
    let msg = request(
        &client,
        &ra,
        &content,
        ContentCipher::Aes256Cbc,
        MessageType::CertPoll,
    );
    let polled = read_header(&msg)
        .unwrap()
        .open_poll(&ra.key, false)
        .unwrap();
    assert_eq!(polled.header.message_type, MessageType::CertPoll);
    assert_eq!(polled.header.transaction_id, "tx-42");
    assert_eq!(polled.cipher, ContentCipher::Aes256Cbc);
    assert_eq!(
        polled.subject.mac,
        crate::model::Mac::parse("00040d112233").ok()
    );
    let unreadable = |r: Box<(Header, Refusal)>| {
        let (_, r) = *r;
        assert_eq!(r.fail, FailInfo::BadMessageCheck);
        assert_eq!(r.reason, request::UNREADABLE);
    };
    unreadable(read_header(&msg).unwrap().open(&ra.key, false).unwrap_err());
    let pkcs_req = request(
        &client,
        &ra,
        &device_csr(Some("s3cret")),
        ContentCipher::Aes256Cbc,
        MessageType::PkcsReq,
    );
    unreadable(
        read_header(&pkcs_req)
            .unwrap()
            .open_poll(&ra.key, false)
            .unwrap_err(),
    );
    // Encrypted to another RA: refused by recipient, as a request is.
    let elsewhere = read_header(&msg)
        .unwrap()
        .open_poll(&Identity::new("other RA").key, false)
        .unwrap_err();
    assert_eq!(elsewhere.1.fail, FailInfo::BadCertId);
}

#[test]
fn the_recipient_nonce_is_the_requests_sender_nonce_and_the_sender_nonce_is_fresh() {
    let (ra, client) = (Identity::new("RA"), Identity::new("signer"));
    let msg = request(
        &client,
        &ra,
        &device_csr(None),
        ContentCipher::Aes256Cbc,
        MessageType::PkcsReq,
    );
    let req = parse_request(&msg, &ra.key, false).unwrap();
    let nonces = |rep: &[u8]| {
        let ci = cms::content_info::ContentInfo::from_der(rep).unwrap();
        let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
        let si = sd.signer_infos.0.get(0).unwrap().clone();
        let get = |oid| {
            si.signed_attrs
                .as_ref()
                .unwrap()
                .iter()
                .find(|a| a.oid == oid)
                .unwrap()
                .values
                .get(0)
                .unwrap()
                .decode_as::<OctetString>()
                .unwrap()
                .as_bytes()
                .to_vec()
        };
        (get(oids::SENDER_NONCE), get(oids::RECIPIENT_NONCE))
    };
    let (s1, r1) =
        nonces(&cert_rep(&ra.key, &req.header, Outcome::Failed(FailInfo::BadRequest)).unwrap());
    let (s2, _) =
        nonces(&cert_rep(&ra.key, &req.header, Outcome::Failed(FailInfo::BadRequest)).unwrap());
    assert_eq!(r1, NONCE);
    assert_eq!(s1.len(), 16);
    assert_ne!(s1, s2);
    assert_ne!(s1, NONCE);
}

#[test]
fn get_ca_cert_holds_the_ra_and_the_ca() {
    let (ra, ca) = (Identity::new("RA"), Identity::new("CA"));
    let der = reply::ca_certs(&ra.cert, &ca.cert).unwrap();
    let ci = cms::content_info::ContentInfo::from_der(&der).unwrap();
    assert_eq!(ci.content_type, oids::SIGNED_DATA);
    let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
    let mut got: Vec<Vec<u8>> = sd
        .certificates
        .unwrap()
        .0
        .iter()
        .map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => der::Encode::to_der(c).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    let mut want = vec![ra.cert.clone(), ca.cert.clone()];
    want.sort();
    assert_eq!(got, want);
    assert!(sd.signer_infos.0.is_empty());
}

#[test]
fn operations_and_message_types_are_read_exactly() {
    assert_eq!(Operation::parse("GetCACaps"), Some(Operation::GetCaCaps));
    assert_eq!(
        Operation::parse("PKIOperation"),
        Some(Operation::PkiOperation)
    );
    assert_eq!(Operation::parse("getcacaps"), None);
    assert_eq!(MessageType::parse("19"), Some(MessageType::PkcsReq));
    assert_eq!(MessageType::parse("17"), Some(MessageType::RenewalReq));
    assert_eq!(MessageType::parse("019"), None);
    assert!(capabilities().lines().any(|l| l == "POSTPKIOperation"));
    let _ = &Identity::new("x").rcgen_key;
}

mod hostile {
    use super::{ContentCipher, Identity, MessageType, device_csr, parse_request, request};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// One RA and one valid request, made once: each case alters a copy.
    fn fixture() -> &'static (Identity, Vec<u8>) {
        static F: OnceLock<(Identity, Vec<u8>)> = OnceLock::new();
        F.get_or_init(|| {
            let (ra, client) = (Identity::new("RA"), Identity::new("signer"));
            let msg = request(
                &client,
                &ra,
                &device_csr(Some("s3cret")),
                ContentCipher::Aes128Cbc,
                MessageType::PkcsReq,
            );
            (ra, msg)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever a peer sends, reading it ends in an answer or a refusal, never a panic:
        /// a real request with bytes changed, cut short or with bytes inserted, and noise.
        #[test]
        fn altered_requests_never_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            insert in any::<bool>(),
            noise in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let (ra, good) = fixture();
            let mut msg = good.clone();
            for (at, byte) in &edits {
                let i = at.index(msg.len());
                match insert {
                    true => msg.insert(i, *byte),
                    false => msg[i] = *byte,
                }
            }
            let _ = parse_request(&msg, &ra.key, true);
            msg.truncate(cut.index(msg.len() + 1));
            let _ = parse_request(&msg, &ra.key, true);
            let _ = parse_request(&noise, &ra.key, true);
        }
    }
}
