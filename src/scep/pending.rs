//! Enrolments held for an operator's approval (`scep.approval = "operator"`): how a poll for
//! one is answered, which request a poll is for, and when a new request may take the place of
//! a held one. Pure, over the record the route reads from the store.
//!
//! A client asks again in one of two ways: a CertPoll (RFC 8894 §3.3.3) with the request's
//! transactionID, or the same PKCSReq sent again (micromdm's `scepclient` does this every 30
//! seconds). Both get the held request's answer: PENDING while it waits, SUCCESS with the
//! certificate once approved, FAILURE badRequest once rejected or expired.

use super::poll::PollSubject;
use super::{FailInfo, Refusal};
use crate::model::{Mac, PendingEnrolment, PendingState};

/// How long a request held for the operator keeps its place against another request for the
/// same device (another key or transactionID). Within it the newcomer is refused: otherwise
/// anyone holding the challenge could swap his own key in under the request the operator is
/// about to approve. Past it the newcomer replaces it (a phone reset since, with a new key,
/// is not locked out for `scep.pending_days`), with a new alarm the operator sees.
pub const KEEPS_ITS_PLACE_SECS: i64 = 3600;

/// The answer to a poll for a held request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollAnswer {
    Pending,
    /// Approved: the certificate issued then (DER).
    Granted {
        serial: String,
        cert: Vec<u8>,
    },
    Failed(Refusal),
}

/// Whether `held` was approved and the certificate issued then is among `valid_serials`, the
/// device's certificates on record neither revoked nor expired.
pub fn approved_cert_valid(held: &PendingEnrolment, valid_serials: &[String]) -> bool {
    match &held.state {
        PendingState::Approved { serial, .. } => valid_serials.contains(serial),
        _ => false,
    }
}

/// The answer for `held` at `now`. `cert_valid`: whether the certificate an approval issued is
/// still on record, neither revoked nor expired (one revoked since is not handed out again).
pub fn answer(
    held: &PendingEnrolment,
    now: i64,
    pending_days: u32,
    cert_valid: bool,
) -> PollAnswer {
    match &held.state {
        PendingState::Pending if held.expired(now, pending_days) => {
            PollAnswer::Failed(Refusal::new(
                FailInfo::BadRequest,
                format!(
                    "the enrolment request of {} was not approved within {pending_days} days (scep.pending_days) and has expired",
                    held.mac
                ),
            ))
        }
        PendingState::Pending => PollAnswer::Pending,
        PendingState::Approved { serial, cert, .. } if cert_valid => PollAnswer::Granted {
            serial: serial.clone(),
            cert: cert.clone(),
        },
        PendingState::Approved { serial, .. } => PollAnswer::Failed(Refusal::new(
            FailInfo::BadRequest,
            format!(
                "certificate {serial}, issued to {} when its enrolment was approved, has been revoked or has expired",
                held.mac
            ),
        )),
        PendingState::Rejected { by, .. } => PollAnswer::Failed(Refusal::new(
            FailInfo::BadRequest,
            format!("the enrolment request of {} was rejected by {by}", held.mac),
        )),
    }
}

/// Whether a PKCSReq is `held` sent again (same transactionID, same key), to be answered as
/// a poll. `cert_valid` as for [`answer`]: once the certificate an approval issued is revoked
/// or expired, the same request is decided afresh (held again), as a repeat of an immediate
/// grant is, rather than refused for ever for the revocation that was meant to let the device
/// enrol again.
pub fn is_resent(
    held: &PendingEnrolment,
    transaction_id: &str,
    key_sha256: &str,
    cert_valid: bool,
) -> bool {
    let lapsed = matches!(held.state, PendingState::Approved { .. }) && !cert_valid;
    held.transaction_id == transaction_id && held.key_sha256 == key_sha256 && !lapsed
}

/// The device a CertPoll is for: the MAC its subject's CN names. The subject is the request's
/// (RFC 8894 §3.3.3), and a request is held only when its CN names a MAC, so a poll naming
/// none is for nothing held. The request is looked up under that MAC, never by transactionID
/// across devices: the transactionID travels in clear, and anyone holding the challenge could
/// otherwise hold a request of his own under a victim's ID and have the victim's polls find
/// his.
pub fn polled_device(subject: &PollSubject) -> Result<Mac, Refusal> {
    subject.mac.ok_or_else(|| {
        Refusal::new(
            FailInfo::BadCertId,
            format!(
                "a poll whose subject CN {:?} names no MAC address, so no request held",
                subject.cn
            ),
        )
    })
}

/// The held request a CertPoll is for: `found`, the one held for the device the poll names
/// ([`polled_device`]), provided it has the poll's transactionID and was signed by the key
/// that signs the poll; else the poll is answered as for an unknown transaction, badCertId.
pub fn poll_for<'a>(
    found: Option<&'a PendingEnrolment>,
    transaction_id: &str,
    signer_key_sha256: &str,
) -> Result<&'a PendingEnrolment, Refusal> {
    let unknown = |why: &str| Refusal::new(FailInfo::BadCertId, why.to_string());
    let held = found.ok_or_else(|| unknown("a poll for a device no request is held for"))?;
    if held.transaction_id != transaction_id {
        return Err(unknown(
            "a poll for another transaction than the request held for its device",
        ));
    }
    if held.signer_key_sha256 != signer_key_sha256 {
        return Err(unknown(
            "a poll signed by another key than the request it names",
        ));
    }
    Ok(held)
}

/// Whether a new request for `held`'s device (not a resend of it) may replace it at `now`:
/// one decided or expired may always be, one still waiting only past
/// [`KEEPS_ITS_PLACE_SECS`]. The refusal says what the operator can do.
pub fn may_replace(held: &PendingEnrolment, now: i64, pending_days: u32) -> Result<(), Refusal> {
    let age = now.saturating_sub(held.requested_at);
    if !held.waiting(now, pending_days) || age >= KEEPS_ITS_PLACE_SECS {
        return Ok(());
    }
    Err(Refusal::new(
        FailInfo::BadRequest,
        format!(
            "another enrolment request for {} (from {}, {} key) has been waiting {age} s for the operator; a new one may replace it after an hour, or once it is rejected (edgeprov pki reject --mac {})",
            held.mac, held.source, held.key, held.mac
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac() -> Mac {
        Mac::parse("00040d112233").unwrap()
    }

    fn held(state: PendingState) -> PendingEnrolment {
        PendingEnrolment {
            mac: mac(),
            transaction_id: "tx-1".into(),
            spki: Vec::new(),
            key_sha256: "key".into(),
            key: "RSA 2048".into(),
            signer_key_sha256: "signer".into(),
            source: "10.0.0.7".into(),
            method: "POST".into(),
            requested_at: 1000,
            state,
        }
    }

    fn approved() -> PendingState {
        PendingState::Approved {
            by: "admin".into(),
            at: 2000,
            serial: "0a".into(),
            cert: vec![1, 2, 3],
        }
    }

    fn failed(a: PollAnswer) -> Refusal {
        match a {
            PollAnswer::Failed(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_poll_is_pending_then_granted_or_failed() {
        let day = 86_400;
        let waiting = held(PendingState::Pending);
        assert_eq!(answer(&waiting, 1000 + day, 7, false), PollAnswer::Pending);
        let expired = failed(answer(&waiting, 1001 + 7 * day, 7, false));
        assert_eq!(expired.fail, FailInfo::BadRequest);
        assert!(expired.reason.contains("expired"), "{}", expired.reason);
        assert_eq!(
            answer(&held(approved()), 1000 + 30 * day, 7, true),
            PollAnswer::Granted {
                serial: "0a".into(),
                cert: vec![1, 2, 3]
            }
        );
        let revoked = failed(answer(&held(approved()), 3000, 7, false));
        assert!(revoked.reason.contains("revoked"), "{}", revoked.reason);
        let rejected = held(PendingState::Rejected {
            by: "alice".into(),
            at: 1500,
        });
        let r = failed(answer(&rejected, 1600, 7, false));
        assert_eq!(r.fail, FailInfo::BadRequest);
        assert!(r.reason.contains("rejected by alice"), "{}", r.reason);
    }

    #[test]
    fn a_poll_is_for_its_request_only_when_signed_by_its_key_for_its_device() {
        let h = held(PendingState::Pending);
        let subject = |cn: &str| PollSubject {
            cn: cn.into(),
            mac: Mac::parse(cn).ok(),
        };
        assert_eq!(polled_device(&subject("00040d112233")).unwrap(), mac());
        let nameless = polled_device(&subject("softphone")).unwrap_err();
        assert_eq!(nameless.fail, FailInfo::BadCertId);
        assert!(
            nameless.reason.contains("\"softphone\""),
            "{}",
            nameless.reason
        );
        assert_eq!(poll_for(Some(&h), "tx-1", "signer").unwrap(), &h);
        for (found, tx, signer) in [
            (None, "tx-1", "signer"),
            (Some(&h), "tx-1", "other"),
            (Some(&h), "tx-2", "signer"),
        ] {
            assert_eq!(
                poll_for(found, tx, signer).unwrap_err().fail,
                FailInfo::BadCertId
            );
        }
        assert!(is_resent(&h, "tx-1", "key", false));
        assert!(!is_resent(&h, "tx-1", "other key", false) && !is_resent(&h, "tx-2", "key", false));
        let granted = held(approved());
        assert!(is_resent(&granted, "tx-1", "key", true));
        assert!(
            !is_resent(&granted, "tx-1", "key", false),
            "its certificate revoked, the request is a new one"
        );
    }

    /// Another request for a device whose request is waiting is refused for an hour, then
    /// replaces it; one decided or expired is replaced at once.
    #[test]
    fn a_waiting_request_keeps_its_place_for_an_hour() {
        let h = held(PendingState::Pending);
        let r = may_replace(&h, 1000 + KEEPS_ITS_PLACE_SECS - 1, 7).unwrap_err();
        assert_eq!(r.fail, FailInfo::BadRequest);
        assert!(r.reason.contains("10.0.0.7") && r.reason.contains("pki reject"));
        assert!(may_replace(&h, 1000 + KEEPS_ITS_PLACE_SECS, 7).is_ok());
        for state in [
            approved(),
            PendingState::Rejected {
                by: "a".into(),
                at: 1001,
            },
        ] {
            assert!(may_replace(&held(state), 1001, 7).is_ok());
        }
        let long_ago = PendingEnrolment {
            requested_at: -8 * 86_400,
            ..h
        };
        assert!(long_ago.expired(1000, 7));
        assert!(may_replace(&long_ago, 1000, 7).is_ok());
    }
}
