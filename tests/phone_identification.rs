//! Who a certificate proves, when sources disagree or the certificate says little, on real TLS:
//! factory certificates that name the MAC only in a directory name or an EUI-64 device URN
//! among their alternative names, a certificate naming no MAC, and a MAC the path or the
//! User-Agent claims (which proves nothing).

mod common;

use common::*;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, SanType};
use serde_json::json;

const A: &str = "001122aabbcc";
const B: &str = "001122aabbcd";

/// A DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A subjectAltName extension holding one directoryName whose single attribute is `oid_tail`
/// (under 2.5.4: 3 CN, 5 serialNumber) with the PrintableString `value`.
fn san_directory_name(oid_tail: u8, value: &str) -> CustomExtension {
    let attribute = tlv(
        0x30,
        &[
            tlv(0x06, &[0x55, 0x04, oid_tail]),
            tlv(0x13, value.as_bytes()),
        ]
        .concat(),
    );
    let name = tlv(0x30, &tlv(0x31, &attribute));
    CustomExtension::from_oid_content(&[2, 5, 29, 17], tlv(0x30, &tlv(0xa4, &name)))
}

/// A subject that names no device.
fn anonymous_subject(p: &mut CertificateParams) {
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, "Factory Device Certificate");
}

async fn daemon_with_two_phones() -> Daemon {
    let d = Daemon::start();
    for mac in [A, B] {
        d.add_device(json!({"mac": mac, "secrets": {"SIP_PASSWORD": format!("pw-{mac}")}}))
            .await;
    }
    d
}

/// A vendor's factory certificate may name the phone only in a SAN directory name (its CN or
/// serialNumber, as secure elements write it) or as an RFC 9039 EUI-64 device URN. The box read
/// neither: the phone proved nothing and was refused its own file. Each now proves that MAC, and
/// only it: the other device's file is 403.
#[tokio::test]
async fn factory_certificates_naming_the_mac_in_other_san_forms_prove_it() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let forms = [
        (
            "directoryName serialNumber",
            d.mint(A, |p| {
                anonymous_subject(p);
                p.custom_extensions
                    .push(san_directory_name(5, "00-11-22-AA-BB-CC"));
            }),
        ),
        (
            "directoryName CN",
            d.mint(A, |p| {
                anonymous_subject(p);
                p.custom_extensions
                    .push(san_directory_name(3, "SEP001122AABBCC"));
            }),
        ),
        (
            "EUI-64 device URN",
            d.mint(A, |p| {
                anonymous_subject(p);
                p.subject_alt_names = vec![SanType::URI(
                    "urn:dev:mac:001122fffeaabbcc".try_into().unwrap(),
                )];
            }),
        ),
    ];
    for (form, id) in &forms {
        let own = send(
            d.https,
            client_config(&ca, Some(id)),
            get(&format!("/{A}.txt"), J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(own.status, 200, "{form}: {}", own.text());
        assert!(
            own.text().contains(&format!("SET SIP_PASSWORD pw-{A}")),
            "{form}"
        );
        let other = send(
            d.https,
            client_config(&ca, Some(id)),
            get(&format!("/{B}.txt"), J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(other.status, 403, "{form}");
        assert!(!other.text().contains("pw-"), "{form}");
    }
}

/// A trusted certificate that names no MAC (an EUI-64 that carries none, or no device name at
/// all) proves nothing, whatever MAC the path and the User-Agent claim: 403, never the secret.
#[tokio::test]
async fn a_certificate_naming_no_mac_proves_nothing_whatever_the_request_claims() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let nameless = [
        d.mint(A, anonymous_subject),
        d.mint(A, |p| {
            anonymous_subject(p);
            p.subject_alt_names = vec![SanType::URI(
                "urn:dev:mac:0011223344556677".try_into().unwrap(),
            )];
        }),
    ];
    for id in &nameless {
        for path in [format!("/{A}.txt"), format!("/{A}/{A}.txt")] {
            let r = send(d.https, client_config(&ca, Some(id)), get(&path, J179_UA))
                .await
                .unwrap();
            assert_eq!(r.status, 403, "{path}");
            assert!(!r.text().contains("pw-"), "{path}");
        }
    }
}

/// Cisco SPA phones and ATAs and Cisco's Multiplatform phones name themselves in their client
/// certificate's subject as `OU=<product>, L=<serial>, S=<MAC>`: such a phone proves its MAC
/// and gets its own file, not another's. A CN that merely holds a MAC among other text, the
/// serial in L, and Cisco's generic certificate (`S=ciscogeneric`) prove nothing: 403.
#[tokio::test]
async fn cisco_s_element_proves_the_mac_and_a_cn_merely_holding_one_does_not() {
    let d = daemon_with_two_phones().await;
    let ca = d.ca_pem();
    let cisco = |ou: &'static str, l: &'static str, st: &'static str| {
        move |p: &mut CertificateParams| {
            p.distinguished_name = DistinguishedName::new();
            p.distinguished_name
                .push(DnType::OrganizationalUnitName, ou);
            p.distinguished_name.push(DnType::LocalityName, l);
            p.distinguished_name.push(DnType::StateOrProvinceName, st);
        }
    };
    let spa = d.mint(A, cisco("SPA-962", "88012BA01234", A));
    let own = send(
        d.https,
        client_config(&ca, Some(&spa)),
        get(&format!("/{A}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(own.status, 200, "{}", own.text());
    assert!(own.text().contains(&format!("SET SIP_PASSWORD pw-{A}")));
    let other = send(
        d.https,
        client_config(&ca, Some(&spa)),
        get(&format!("/{B}.txt"), J179_UA),
    )
    .await
    .unwrap();
    assert_eq!(other.status, 403, "{}", other.text());
    assert!(!other.text().contains("pw-"));

    let unproven = [
        d.mint(A, |p| {
            p.distinguished_name = DistinguishedName::new();
            p.distinguished_name
                .push(DnType::CommonName, format!("Desk phone {A}"));
        }),
        d.mint(A, cisco("SPA-962", A, "ciscogeneric")),
        d.mint(A, cisco("cisco.com", "ciscogeneric", "ciscogeneric")),
    ];
    for id in &unproven {
        let r = send(
            d.https,
            client_config(&ca, Some(id)),
            get(&format!("/{A}.txt"), J179_UA),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(!r.text().contains("pw-"));
    }
}
