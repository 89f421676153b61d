//! Whether an enrolment is granted: pure, over facts the route gathers from the store and the
//! PKI.
//!
//! A first certificate needs the challenge; a device that already has a valid certificate from
//! the box's CA gets another only by renewal, signed with that certificate. So a common
//! challenge, once it leaks, cannot take over an enrolled phone's identity: the operator
//! revokes the certificate first. Where the operator approves first enrolments
//! (`scep.approval = "operator"`), one that passes every check is held rather than granted:
//! the challenge then only lets a request be put to the operator.

use super::csr::CsrFacts;
use super::{FailInfo, MessageType};
use crate::model::Mac;

/// What the decision needs to know about a request. Its Debug leaves the challenges out.
#[derive(Clone)]
pub struct Facts<'a> {
    pub message_type: MessageType,
    pub csr: &'a CsrFacts,
    /// The configured challenge.
    pub challenge: &'a str,
    /// Whether the request's signer certificate has an RSA key, which the answer is
    /// encrypted to.
    pub signer_rsa: bool,
    /// Whether the MAC the request names is a device of the inventory.
    pub in_inventory: bool,
    /// Whether that device is marked inactive (`inactive`, or the cloud's `deactivated` or
    /// `released`): it gets no certificate, by challenge or renewal.
    pub inactive: bool,
    /// Whether first enrolments by the challenge are still open (`scep.open_until`).
    pub enrolment_open: bool,
    /// Whether that device has a certificate from the box's CA on record, neither revoked nor
    /// expired.
    pub has_valid_cert: bool,
    /// The device the signer certificate proves, when it is a valid, unrevoked device
    /// certificate of the box's CA (a renewal).
    pub signer_device: Option<Mac>,
    /// Whether a first enrolment waits for an operator's approval (`scep.approval`).
    pub operator_approval: bool,
}

impl std::fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts")
            .field("message_type", &self.message_type)
            .field("csr", self.csr)
            .field("challenge", &"<redacted>")
            .field("signer_rsa", &self.signer_rsa)
            .field("in_inventory", &self.in_inventory)
            .field("inactive", &self.inactive)
            .field("enrolment_open", &self.enrolment_open)
            .field("has_valid_cert", &self.has_valid_cert)
            .field("signer_device", &self.signer_device)
            .field("operator_approval", &self.operator_approval)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Grant {
        mac: Mac,
        renewal: bool,
    },
    /// A first enrolment that passed every check, held for the operator's approval.
    Hold {
        mac: Mac,
    },
    Refuse {
        fail: FailInfo,
        reason: String,
    },
}

fn refuse(fail: FailInfo, reason: impl Into<String>) -> Decision {
    Decision::Refuse {
        fail,
        reason: reason.into(),
    }
}

/// Challenges compared as digests: the comparison takes as long whatever the length of the
/// challenge tried, and of the one configured.
fn same_challenge(given: &str, configured: &str) -> bool {
    let d = |s: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    crate::phone::credentials::constant_time_eq(d(given).as_ref(), d(configured).as_ref())
}

pub fn decide(f: &Facts<'_>) -> Decision {
    let renewal = match f.message_type {
        MessageType::PkcsReq => false,
        MessageType::RenewalReq => true,
        other => {
            return refuse(
                FailInfo::BadRequest,
                format!(
                    "message type {} is not decided here (only PKCSReq and RenewalReq)",
                    other.code()
                ),
            );
        }
    };
    // The answer is encrypted to the signer's key by RSA key transport, the one way clients
    // read (key agreement for EC keys, RFC 5652 KeyAgreeRecipientInfo, is not spoken). So a
    // device whose certificate key is EC cannot renew with it: it enrols again once revoked.
    if !f.signer_rsa && renewal {
        return refuse(
            FailInfo::BadAlg,
            "a renewal signed with a certificate whose key is EC cannot be answered (answers are encrypted by RSA only): revoke the device's certificates (edgeprov pki revoke --all) and let it enrol again with the challenge",
        );
    }
    if !f.signer_rsa {
        return refuse(
            FailInfo::BadAlg,
            "the request is signed with a key that is not RSA, to which no answer can be encrypted",
        );
    }
    if !f.csr.key.acceptable() {
        return refuse(
            FailInfo::BadAlg,
            format!(
                "the request's {} key is refused (EC P-256, P-384 or RSA of 2048 bits or more)",
                f.csr.key
            ),
        );
    }
    let Some(mac) = f.csr.mac else {
        return refuse(
            FailInfo::BadRequest,
            format!("the request's CN {:?} names no MAC address", f.csr.cn),
        );
    };
    if !f.in_inventory {
        return refuse(
            FailInfo::BadRequest,
            format!("{mac} is not a device of the inventory"),
        );
    }
    if f.inactive {
        return refuse(
            FailInfo::BadRequest,
            format!("{mac} is marked inactive in the inventory"),
        );
    }
    if renewal {
        return match f.signer_device {
            Some(signer) if signer == mac => Decision::Grant { mac, renewal },
            Some(other) => refuse(
                FailInfo::BadCertId,
                format!("a renewal for {mac} signed by the certificate of {other}"),
            ),
            None => refuse(
                FailInfo::BadCertId,
                format!(
                    "a renewal for {mac} not signed by a valid certificate of the box's CA for it"
                ),
            ),
        };
    }
    if !f.enrolment_open {
        return refuse(
            FailInfo::BadRequest,
            "enrolment closed (scep.open_until has passed): only renewals signed by a device's current certificate are granted",
        );
    }
    match &f.csr.challenge {
        None => {
            return refuse(
                FailInfo::BadRequest,
                "the request carries no challenge password",
            );
        }
        Some(given) if !same_challenge(given, f.challenge) => {
            return refuse(FailInfo::BadRequest, "wrong challenge password");
        }
        Some(_) => {}
    }
    if f.has_valid_cert {
        return refuse(
            FailInfo::BadRequest,
            format!(
                "{mac} already has a valid certificate from the box's CA: revoke it first (edgeprov pki revoke), or renew with it"
            ),
        );
    }
    if f.operator_approval {
        return Decision::Hold { mac };
    }
    Decision::Grant { mac, renewal }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scep::KeyKind;

    fn mac() -> Mac {
        Mac::parse("00040d112233").unwrap()
    }

    fn csr(challenge: Option<&str>) -> CsrFacts {
        CsrFacts {
            mac: Some(mac()),
            cn: "00040d112233".into(),
            challenge: challenge.map(str::to_string),
            key: KeyKind::Rsa { bits: 2048 },
            spki: Vec::new(),
        }
    }

    fn facts(csr: &CsrFacts) -> Facts<'_> {
        Facts {
            message_type: MessageType::PkcsReq,
            csr,
            challenge: "s3cret",
            signer_rsa: true,
            in_inventory: true,
            inactive: false,
            enrolment_open: true,
            has_valid_cert: false,
            signer_device: None,
            operator_approval: false,
        }
    }

    fn fail_of(d: Decision) -> FailInfo {
        match d {
            Decision::Refuse { fail, .. } => fail,
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn debug_output_leaves_both_challenges_out() {
        let c = csr(Some("given-Pw"));
        let f = Facts {
            challenge: "configured-Pw",
            ..facts(&c)
        };
        let shown = format!("{f:?}");
        assert!(
            !shown.contains("given-Pw") && !shown.contains("configured-Pw"),
            "{shown}"
        );
        assert!(shown.contains("in_inventory: true"), "{shown}");
    }

    #[test]
    fn a_first_enrolment_with_the_challenge_is_granted() {
        let c = csr(Some("s3cret"));
        assert_eq!(
            decide(&facts(&c)),
            Decision::Grant {
                mac: mac(),
                renewal: false
            }
        );
    }

    #[test]
    fn each_condition_refuses_on_its_own() {
        let good = csr(Some("s3cret"));
        let wrong = csr(Some("s3cret!"));
        assert_eq!(fail_of(decide(&facts(&wrong))), FailInfo::BadRequest);
        let none = csr(None);
        assert_eq!(fail_of(decide(&facts(&none))), FailInfo::BadRequest);
        let mut weak = csr(Some("s3cret"));
        weak.key = KeyKind::Rsa { bits: 1024 };
        assert_eq!(fail_of(decide(&facts(&weak))), FailInfo::BadAlg);
        let mut nameless = csr(Some("s3cret"));
        nameless.mac = None;
        assert_eq!(fail_of(decide(&facts(&nameless))), FailInfo::BadRequest);
        let unknown = Facts {
            in_inventory: false,
            ..facts(&good)
        };
        assert_eq!(fail_of(decide(&unknown)), FailInfo::BadRequest);
        let enrolled = Facts {
            has_valid_cert: true,
            ..facts(&good)
        };
        match decide(&enrolled) {
            Decision::Refuse { fail, reason } => {
                assert_eq!(fail, FailInfo::BadRequest);
                assert!(reason.contains("revoke it first"), "{reason}");
            }
            d => panic!("{d:?}"),
        }
        let ec_signer = Facts {
            signer_rsa: false,
            ..facts(&good)
        };
        assert_eq!(fail_of(decide(&ec_signer)), FailInfo::BadAlg);
        let poll = Facts {
            message_type: MessageType::CertPoll,
            ..facts(&good)
        };
        assert_eq!(fail_of(decide(&poll)), FailInfo::BadRequest);
    }

    /// A renewal needs no challenge, and is the one way an enrolled device gets another
    /// certificate; signed by anything but that device's own certificate it is refused.
    #[test]
    fn a_renewal_is_granted_only_when_signed_by_the_device_itself() {
        let c = csr(None);
        let renew = |signer| Facts {
            message_type: MessageType::RenewalReq,
            has_valid_cert: true,
            signer_device: signer,
            ..facts(&c)
        };
        assert_eq!(
            decide(&renew(Some(mac()))),
            Decision::Grant {
                mac: mac(),
                renewal: true
            }
        );
        let other = Mac::parse("00040d999999").unwrap();
        assert_eq!(fail_of(decide(&renew(Some(other)))), FailInfo::BadCertId);
        assert_eq!(fail_of(decide(&renew(None))), FailInfo::BadCertId);
    }

    /// After `scep.open_until` a first enrolment is refused, however right its challenge,
    /// while a renewal signed by the device's own certificate is still granted; an inactive
    /// device gets neither.
    #[test]
    fn closed_enrolment_refuses_the_challenge_but_not_a_renewal_and_inactive_devices_get_nothing() {
        let c = csr(Some("s3cret"));
        let closed = Facts {
            enrolment_open: false,
            ..facts(&c)
        };
        match decide(&closed) {
            Decision::Refuse { fail, reason } => {
                assert_eq!(fail, FailInfo::BadRequest);
                assert!(reason.contains("enrolment closed"), "{reason}");
            }
            d => panic!("{d:?}"),
        }
        let renewal = Facts {
            message_type: MessageType::RenewalReq,
            signer_device: Some(mac()),
            has_valid_cert: true,
            ..closed.clone()
        };
        assert_eq!(
            decide(&renewal),
            Decision::Grant {
                mac: mac(),
                renewal: true
            }
        );
        for inactive in [
            Facts {
                inactive: true,
                ..facts(&c)
            },
            Facts {
                inactive: true,
                ..renewal
            },
        ] {
            match decide(&inactive) {
                Decision::Refuse { fail, reason } => {
                    assert_eq!(fail, FailInfo::BadRequest);
                    assert!(reason.contains("inactive"), "{reason}");
                }
                d => panic!("{d:?}"),
            }
        }
    }

    /// A device with an EC certificate cannot renew with it (the answer could not be
    /// encrypted to it): the refusal says how it gets a new one.
    #[test]
    fn a_renewal_signed_by_an_ec_certificate_says_to_enrol_again() {
        let mut c = csr(None);
        c.key = KeyKind::Ec {
            curve: "1.2.840.10045.3.1.7".into(),
        };
        let renew = Facts {
            message_type: MessageType::RenewalReq,
            has_valid_cert: true,
            signer_device: Some(mac()),
            signer_rsa: false,
            ..facts(&c)
        };
        match decide(&renew) {
            Decision::Refuse { fail, reason } => {
                assert_eq!(fail, FailInfo::BadAlg);
                assert!(reason.contains("enrol again"), "{reason}");
            }
            d => panic!("{d:?}"),
        }
    }

    /// With the operator approving, a first enrolment that passes every check is held, not
    /// granted; one that fails a check is refused as before, and a renewal signed by the
    /// device's own certificate is still granted at once.
    #[test]
    fn with_operator_approval_a_first_enrolment_is_held_and_a_renewal_granted() {
        let c = csr(Some("s3cret"));
        let held = Facts {
            operator_approval: true,
            ..facts(&c)
        };
        assert_eq!(decide(&held), Decision::Hold { mac: mac() });
        let wrong = csr(Some("guess"));
        let wrong = Facts {
            operator_approval: true,
            ..facts(&wrong)
        };
        assert_eq!(fail_of(decide(&wrong)), FailInfo::BadRequest);
        let enrolled = Facts {
            has_valid_cert: true,
            ..held.clone()
        };
        assert_eq!(fail_of(decide(&enrolled)), FailInfo::BadRequest);
        let none = csr(None);
        let renewal = Facts {
            message_type: MessageType::RenewalReq,
            has_valid_cert: true,
            signer_device: Some(mac()),
            operator_approval: true,
            ..facts(&none)
        };
        assert_eq!(
            decide(&renewal),
            Decision::Grant {
                mac: mac(),
                renewal: true
            }
        );
    }
}
