//! Per-device HTTP credentials: the opt-in proof for phones that cannot present a client
//! certificate. Digest (RFC 7616, MD5 or SHA-256, qop=auth) on any connection; Basic only inside
//! TLS, where the password is not exposed on the wire. Repeated failures lock a device's
//! credentials for a while, as the cloud enrollment service does with wrong enrollment codes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::{digest, hmac};
use md5::Digest as _;

use crate::model::{HttpCredential, Mac};

pub const REALM: &str = "edgeprov";
/// A nonce older than this is refused as stale (the phone retries with a fresh challenge).
const NONCE_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    /// Basic credentials on plain HTTP: refused without looking at them.
    BasicWithoutTls,
}

/// Issues and checks nonces statelessly: a nonce is a timestamp and its HMAC under a key made at
/// start-up, so no table of outstanding nonces can be filled by an attacker.
pub struct NonceKey {
    key: hmac::Key,
    epoch: Instant,
}

impl NonceKey {
    pub fn new() -> NonceKey {
        let secret: [u8; 32] = crate::pki::random_bytes();
        NonceKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            epoch: Instant::now(),
        }
    }

    pub fn issue(&self) -> String {
        let t = self.epoch.elapsed().as_secs();
        format!(
            "{t:x}.{}",
            hex(&hmac::sign(&self.key, &t.to_be_bytes()).as_ref()[..16])
        )
    }

    fn check(&self, nonce: &str) -> bool {
        let Some((t, tag)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(t) = u64::from_str_radix(t, 16) else {
            return false;
        };
        let want = hex(&hmac::sign(&self.key, &t.to_be_bytes()).as_ref()[..16]);
        let fresh = self.epoch.elapsed().as_secs().saturating_sub(t) <= NONCE_LIFETIME.as_secs();
        fresh && constant_time_eq(want.as_bytes(), tag.as_bytes())
    }
}

impl Default for NonceKey {
    fn default() -> Self {
        NonceKey::new()
    }
}

/// The `WWW-Authenticate` values to send with a 401: SHA-256 Digest first, MD5 Digest for older
/// phones, and Basic only when the connection is TLS.
pub fn challenges(nonces: &NonceKey, tls: bool) -> Vec<String> {
    let nonce = nonces.issue();
    let mut out = vec![
        format!(r#"Digest realm="{REALM}", qop="auth", algorithm=SHA-256, nonce="{nonce}""#),
        format!(r#"Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}""#),
    ];
    if tls {
        out.push(format!(r#"Basic realm="{REALM}""#));
    }
    out
}

/// Checks an `Authorization` header against a device's credential.
pub fn verify(
    header: &str,
    method: &str,
    cred: &HttpCredential,
    nonces: &NonceKey,
    tls: bool,
) -> Verdict {
    let Some((scheme, rest)) = header.trim().split_once(' ') else {
        return Verdict::Invalid;
    };
    if scheme.eq_ignore_ascii_case("basic") {
        if !tls {
            return Verdict::BasicWithoutTls;
        }
        let expected = format!("{}:{}", cred.username, cred.password);
        return match base64_decode(rest.trim()) {
            Some(got) if constant_time_eq(&got, expected.as_bytes()) => Verdict::Valid,
            _ => Verdict::Invalid,
        };
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return Verdict::Invalid;
    }
    let p = digest_params(rest);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("username") != cred.username || get("realm") != REALM || !nonces.check(get("nonce")) {
        return Verdict::Invalid;
    }
    let algorithm = get("algorithm");
    let h = |s: &str| -> Option<String> {
        match algorithm.to_ascii_uppercase().as_str() {
            "" | "MD5" => Some(hex(&md5::Md5::digest(s.as_bytes()))),
            "SHA-256" => Some(hex(digest::digest(&digest::SHA256, s.as_bytes()).as_ref())),
            _ => None,
        }
    };
    let expected = (|| {
        let ha1 = h(&format!("{}:{REALM}:{}", cred.username, cred.password))?;
        let ha2 = h(&format!("{method}:{}", get("uri")))?;
        match get("qop") {
            "" => h(&format!("{ha1}:{}:{ha2}", get("nonce"))),
            "auth" => h(&format!(
                "{ha1}:{}:{}:{}:auth:{ha2}",
                get("nonce"),
                get("nc"),
                get("cnonce")
            )),
            _ => None,
        }
    })();
    match expected {
        Some(e) if constant_time_eq(e.as_bytes(), get("response").as_bytes()) => Verdict::Valid,
        _ => Verdict::Invalid,
    }
}

/// Parses `a="x", b=y` pairs of a Digest header; quoted values may contain commas.
pub fn digest_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Failed attempts per device, and the lockouts they cause.
pub struct Lockouts {
    max_failures: u32,
    lockout: Duration,
    state: Mutex<HashMap<Mac, (u32, Option<Instant>)>>,
}

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    Counted(u32),
    LockedNow,
}

impl Lockouts {
    pub fn new(max_failures: u32, lockout: Duration) -> Lockouts {
        Lockouts {
            max_failures,
            lockout,
            state: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_locked(&self, mac: Mac) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.get(&mac) {
            Some((_, Some(until))) if Instant::now() < *until => true,
            Some((_, Some(_))) => {
                state.remove(&mac);
                false
            }
            _ => false,
        }
    }

    pub fn failure(&self, mac: Mac) -> FailureOutcome {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let entry = state.entry(mac).or_insert((0, None));
        entry.0 += 1;
        if entry.0 >= self.max_failures {
            *entry = (0, Some(Instant::now() + self.lockout));
            FailureOutcome::LockedNow
        } else {
            FailureOutcome::Counted(entry.0)
        }
    }

    pub fn success(&self, mac: Mac) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&mac);
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred() -> HttpCredential {
        HttpCredential {
            username: "phone1".into(),
            password: "s3cret pw".into(),
        }
    }

    #[test]
    fn basic_only_inside_tls() {
        let nonces = NonceKey::new();
        // "phone1:s3cret pw"
        let h = "Basic cGhvbmUxOnMzY3JldCBwdw==";
        assert_eq!(verify(h, "GET", &cred(), &nonces, true), Verdict::Valid);
        assert_eq!(
            verify(h, "GET", &cred(), &nonces, false),
            Verdict::BasicWithoutTls
        );
        let wrong = "Basic cGhvbmUxOndyb25n";
        assert_eq!(
            verify(wrong, "GET", &cred(), &nonces, true),
            Verdict::Invalid
        );
    }

    fn digest_header(nonce: &str, password: &str, alg: &str) -> String {
        let h = |s: String| match alg {
            "MD5" => hex(&md5::Md5::digest(s.as_bytes())),
            _ => hex(digest::digest(&digest::SHA256, s.as_bytes()).as_ref()),
        };
        let ha1 = h(format!("phone1:{REALM}:{password}"));
        let ha2 = h("GET:/001122aabbcc.txt".to_string());
        let resp = h(format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
        format!(
            r#"Digest username="phone1", realm="{REALM}", nonce="{nonce}", uri="/001122aabbcc.txt", algorithm={alg}, qop=auth, nc=00000001, cnonce="abc", response="{resp}""#
        )
    }

    #[test]
    fn digest_md5_and_sha256() {
        let nonces = NonceKey::new();
        let nonce = nonces.issue();
        for alg in ["MD5", "SHA-256"] {
            let good = digest_header(&nonce, "s3cret pw", alg);
            assert_eq!(
                verify(&good, "GET", &cred(), &nonces, false),
                Verdict::Valid,
                "{alg}"
            );
            let bad = digest_header(&nonce, "guess", alg);
            assert_eq!(
                verify(&bad, "GET", &cred(), &nonces, false),
                Verdict::Invalid
            );
        }
        let forged = digest_header("0.00000000000000000000000000000000", "s3cret pw", "MD5");
        assert_eq!(
            verify(&forged, "GET", &cred(), &nonces, false),
            Verdict::Invalid
        );
    }

    #[test]
    fn lockout_after_max_failures() {
        let mac = Mac::from_octets([1, 2, 3, 4, 5, 6]);
        let l = Lockouts::new(3, Duration::from_secs(60));
        assert_eq!(l.failure(mac), FailureOutcome::Counted(1));
        assert_eq!(l.failure(mac), FailureOutcome::Counted(2));
        assert!(!l.is_locked(mac));
        assert_eq!(l.failure(mac), FailureOutcome::LockedNow);
        assert!(l.is_locked(mac));
        let short = Lockouts::new(1, Duration::from_millis(0));
        assert_eq!(short.failure(mac), FailureOutcome::LockedNow);
        assert!(
            !short.is_locked(mac),
            "a lockout ends when its time has passed"
        );
    }

    #[test]
    fn hostile_headers() {
        let nonces = NonceKey::new();
        for h in [
            "",
            "Digest",
            "Basic !!!",
            "Digest username=\"",
            "Bearer x",
            "Digest ,,,=,",
        ] {
            assert_ne!(
                verify(h, "GET", &cred(), &nonces, true),
                Verdict::Valid,
                "{h}"
            );
        }
    }
}
