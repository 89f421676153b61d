//! The main promise: a file that carries a secret is served only to the device it belongs to,
//! proven by its client certificate (or by HTTP credentials the operator chose for it).

use crate::model::{AlarmKind, DeviceState, Mac};

/// What the requester has proven about itself on this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A client certificate that chained to a trusted root and names this MAC.
    Certificate(Mac),
    /// Per-device HTTP credentials, already verified, for this MAC.
    Credential(Mac),
    /// Nothing: no certificate (or one naming no MAC), or plain HTTP.
    None,
}

/// The file being asked for, as far as authorisation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub device: Mac,
    pub state: DeviceState,
    /// The device's site is this box's site (from cloud registration); a cloud-activated device
    /// of another site gets no secrets here.
    pub associated_here: bool,
    pub carries_secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Prove who you are: 401 with a challenge if HTTP credentials are allowed for the device,
    /// 403 otherwise (a client certificate has no HTTP challenge to offer).
    Unauthenticated {
        alarm: AlarmKind,
    },
    /// 403: proven, but not as this device, or this device may not have its secrets now.
    Forbidden {
        alarm: AlarmKind,
    },
}

pub fn authorize(target: &Target, proof: Proof) -> Decision {
    if !target.carries_secret {
        return Decision::Allow;
    }
    let proven = match proof {
        Proof::Certificate(m) | Proof::Credential(m) => m,
        Proof::None => {
            return Decision::Unauthenticated {
                alarm: AlarmKind::SecretWithoutProof,
            };
        }
    };
    if proven != target.device {
        return Decision::Forbidden {
            alarm: AlarmKind::CertificateMismatch,
        };
    }
    if !target.state.may_receive_secrets(target.associated_here) {
        return Decision::Forbidden {
            alarm: AlarmKind::InactiveDevice,
        };
    }
    Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac::from_octets([0, 0x11, 0x22, 0xaa, 0xbb, 0xcc]);
    const B: Mac = Mac::from_octets([0, 0x11, 0x22, 0xaa, 0xbb, 0xcd]);

    fn target(secret: bool, state: DeviceState) -> Target {
        Target {
            device: A,
            state,
            associated_here: true,
            carries_secret: secret,
        }
    }

    #[test]
    fn cloud_lifecycle_gates_secrets() {
        use DeviceState::*;
        for (state, here, allowed) in [
            (Activated, true, true),
            (Activated, false, false),
            (Associated, true, false),
            (Claimed, true, false),
            (Imported, true, false),
            (Deactivated, true, false),
            (Released, true, false),
            (Active, false, true),
            (Inactive, true, false),
        ] {
            let t = Target {
                associated_here: here,
                ..target(true, state)
            };
            let got = authorize(&t, Proof::Certificate(A));
            assert_eq!(got == Decision::Allow, allowed, "{state:?} here={here}");
        }
    }

    #[test]
    fn matrix() {
        use Decision::*;
        let active = DeviceState::Active;
        let cases = [
            (target(true, active), Proof::Certificate(A), Allow),
            (target(true, active), Proof::Credential(A), Allow),
            (
                target(true, active),
                Proof::Certificate(B),
                Forbidden {
                    alarm: AlarmKind::CertificateMismatch,
                },
            ),
            (
                target(true, active),
                Proof::Credential(B),
                Forbidden {
                    alarm: AlarmKind::CertificateMismatch,
                },
            ),
            (
                target(true, active),
                Proof::None,
                Unauthenticated {
                    alarm: AlarmKind::SecretWithoutProof,
                },
            ),
            (
                target(true, DeviceState::Inactive),
                Proof::Certificate(A),
                Forbidden {
                    alarm: AlarmKind::InactiveDevice,
                },
            ),
            (target(false, active), Proof::None, Allow),
            (target(false, active), Proof::Certificate(B), Allow),
        ];
        for (t, p, want) in cases {
            assert_eq!(authorize(&t, p), want, "{t:?} {p:?}");
        }
    }
}
