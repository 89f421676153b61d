//! The content of a CertPoll (RFC 8894 §3.3.3, "GetCertInitial" in older drafts): the
//! IssuerAndSubject of the request the client polls for.

use der::{Decode, Sequence};
use x509_cert::name::Name;

use crate::model::Mac;

/// `IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }` (public: a client builds its
/// polls with it).
#[derive(Sequence)]
pub struct IssuerAndSubject {
    pub issuer: Name,
    pub subject: Name,
}

/// What a poll's subject says: the subject of the certificate request it polls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSubject {
    /// The subject's CN as written, cut to 64 characters.
    pub cn: String,
    /// The MAC the CN names, read as in a certificate request.
    pub mac: Option<Mac>,
}

/// Reads an IssuerAndSubject (DER or BER). The issuer is read but not compared: clients put
/// the CA's name or the RA's there, and the transactionID and the signing key are what tie a
/// poll to its request.
pub fn read_issuer_and_subject(der: &[u8]) -> Option<PollSubject> {
    let parsed = IssuerAndSubject::from_ber(der).ok()?;
    let cn = parsed
        .subject
        .common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned())
        .unwrap_or_default();
    Some(PollSubject {
        mac: crate::phone::identify::mac_in_cn(&cn),
        cn: cn.chars().take(64).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;
    use std::str::FromStr;

    fn encoded(issuer: &str, subject: &str) -> Vec<u8> {
        IssuerAndSubject {
            issuer: Name::from_str(issuer).unwrap(),
            subject: Name::from_str(subject).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn a_poll_names_the_subject_it_polls_for() {
        let polled = read_issuer_and_subject(&encoded("CN=edgeprov CA", "CN=00040d112233"));
        assert_eq!(
            polled,
            Some(PollSubject {
                cn: "00040d112233".into(),
                mac: Mac::parse("00040d112233").ok(),
            })
        );
        let other = read_issuer_and_subject(&encoded("CN=x", "O=phones,CN=softphone")).unwrap();
        assert_eq!((other.cn.as_str(), other.mac), ("softphone", None));
        assert_eq!(read_issuer_and_subject(b"\x30\x03\x02\x01\x00"), None);
        assert_eq!(read_issuer_and_subject(b""), None);
    }
}
