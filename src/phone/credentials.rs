//! Per-device HTTP credentials: the opt-in proof for phones that cannot present a client
//! certificate. Digest (RFC 7616, MD5 or SHA-256, qop=auth) on any connection; Basic only inside
//! TLS, where the password is not exposed on the wire. Repeated failures lock a device's
//! credentials for a while, as the cloud enrollment service does with wrong enrollment codes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
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
    /// A right Digest response that was already used once: a copy of a phone's header
    /// (seen on plain HTTP), not the phone. Refused, and not counted as a wrong guess.
    Replayed,
    /// A right Digest response to a nonce this box no longer honours: gone stale after its
    /// lifetime, or issued before a restart (a new key). The phone knows its password and only
    /// needs a fresh nonce (RFC 7616 `stale=true`), so this is no wrong guess: counting it
    /// locked out phones that keep their nonce between polls, and let an eavesdropper lock a
    /// phone out by replaying its old headers.
    Stale,
}

/// Issues and checks nonces statelessly: a nonce is a timestamp and its HMAC under a key made at
/// start-up, so no table of outstanding nonces can be filled by an attacker. What is kept is the
/// right responses of the nonces still fresh, each accepted once: only a client that knows the
/// password can add one, and it is forgotten when its nonce goes stale.
pub struct NonceKey {
    key: hmac::Key,
    epoch: Instant,
    used: Mutex<Used>,
}

/// Right Digest responses accepted, with the issue time of their nonce.
#[derive(Default)]
struct Used {
    responses: HashMap<String, u64>,
    /// Stale entries are dropped when the table reaches this size (then twice what is left), so
    /// the sweep costs a constant per insertion.
    sweep_at: usize,
}

impl NonceKey {
    pub fn new() -> NonceKey {
        let secret: [u8; 32] = crate::pki::random_bytes();
        NonceKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            epoch: Instant::now(),
            used: Mutex::default(),
        }
    }

    pub fn issue(&self) -> String {
        let t = self.epoch.elapsed().as_secs();
        format!(
            "{t:x}.{}",
            hex(&hmac::sign(&self.key, &t.to_be_bytes()).as_ref()[..16])
        )
    }

    /// The issue time of a nonce this key made and that is still fresh.
    fn check(&self, nonce: &str) -> Option<u64> {
        let (t, tag) = nonce.split_once('.')?;
        let t = u64::from_str_radix(t, 16).ok()?;
        let want = hex(&hmac::sign(&self.key, &t.to_be_bytes()).as_ref()[..16]);
        let fresh = self.epoch.elapsed().as_secs().saturating_sub(t) <= NONCE_LIFETIME.as_secs();
        (fresh && constant_time_eq(want.as_bytes(), tag.as_bytes())).then_some(t)
    }

    /// Records a right `response` to a nonce issued at `issued`; false when it was seen before.
    fn first_use(&self, issued: u64, response: &str) -> bool {
        let now = self.epoch.elapsed().as_secs();
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.responses.len() >= used.sweep_at {
            used.responses
                .retain(|_, t| now.saturating_sub(*t) <= NONCE_LIFETIME.as_secs());
            used.sweep_at = (2 * used.responses.len()).max(1024);
        }
        used.responses
            .insert(response.to_string(), issued)
            .is_none()
    }
}

impl Default for NonceKey {
    fn default() -> Self {
        NonceKey::new()
    }
}

/// The `WWW-Authenticate` values to send with a 401 (none goes out without them): SHA-256
/// Digest first, MD5 Digest for older phones, and Basic only when the connection is TLS. `stale` when the request's Digest answer
/// was right but its nonce is no longer honoured: the phone then retries with the fresh nonce
/// instead of taking its password for wrong.
pub fn challenges(nonces: &NonceKey, tls: bool, stale: bool) -> Vec<String> {
    let nonce = nonces.issue();
    let stale = if stale { ", stale=true" } else { "" };
    let mut out = vec![
        format!(r#"Digest realm="{REALM}", qop="auth", algorithm=SHA-256, nonce="{nonce}"{stale}"#),
        format!(r#"Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}"{stale}"#),
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
    target: &str,
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
    if get("username") != cred.username || get("realm") != REALM || !same_target(get("uri"), target)
    {
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
        // The response covers the nonce, nc, cnonce, method and target: the same one again is
        // the same request again.
        Some(e) if constant_time_eq(e.as_bytes(), get("response").as_bytes()) => {
            match nonces.check(get("nonce")) {
                Some(issued) if nonces.first_use(issued, &e) => Verdict::Valid,
                Some(_) => Verdict::Replayed,
                None => Verdict::Stale,
            }
        }
        _ => Verdict::Invalid,
    }
}

/// Whether a Digest `uri` names the request's own target (RFC 7616 §3.4.6), as sent or in
/// absolute form: otherwise a response captured for one file could be replayed for another,
/// a secret one, while its nonce is fresh.
fn same_target(digest_uri: &str, target: &str) -> bool {
    digest_uri == target
        || digest_uri
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.path_and_query().map(|p| p.as_str() == target))
            .unwrap_or(false)
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

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with or without its padding, and nothing else: a `=` before the end, a
/// stray symbol or non-zero spare bits make it another string, not the same credential.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(s)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The request-target of the requests below (the `uri` of `digest_header`).
    const T: &str = "/001122aabbcc.txt";

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
        assert_eq!(verify(h, "GET", T, &cred(), &nonces, true), Verdict::Valid);
        assert_eq!(
            verify(h, "GET", T, &cred(), &nonces, false),
            Verdict::BasicWithoutTls
        );
        let wrong = "Basic cGhvbmUxOndyb25n";
        assert_eq!(
            verify(wrong, "GET", T, &cred(), &nonces, true),
            Verdict::Invalid
        );
    }

    /// The Digest `response` (qop=auth, nc=1) a phone computes for a GET of `uri` with `cred`,
    /// as RFC 7616 says, independently of `verify`.
    fn digest_response(
        cred: &HttpCredential,
        alg: &str,
        uri: &str,
        nonce: &str,
        cnonce: &str,
    ) -> String {
        let h = |s: String| match alg {
            "MD5" => hex(&md5::Md5::digest(s.as_bytes())),
            _ => hex(digest::digest(&digest::SHA256, s.as_bytes()).as_ref()),
        };
        let ha1 = h(format!("{}:{REALM}:{}", cred.username, cred.password));
        let ha2 = h(format!("GET:{uri}"));
        h(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"))
    }

    fn digest_header(nonce: &str, password: &str, alg: &str) -> String {
        let claimed = HttpCredential {
            username: "phone1".into(),
            password: password.into(),
        };
        let resp = digest_response(&claimed, alg, "/001122aabbcc.txt", nonce, "abc");
        format!(
            r#"Digest username="phone1", realm="{REALM}", nonce="{nonce}", uri="/001122aabbcc.txt", algorithm={alg}, qop=auth, nc=00000001, cnonce="abc", response="{resp}""#
        )
    }

    /// A response computed for one file does not open another (a replay within the nonce's
    /// lifetime); the same target in absolute form does.
    #[test]
    fn digest_is_bound_to_the_request_target() {
        let nonces = NonceKey::new();
        let good = digest_header(&nonces.issue(), "s3cret pw", "SHA-256");
        let verdict = |target| verify(&good, "GET", target, &cred(), &nonces, false);
        assert_eq!(verdict("/46xxsettings.txt"), Verdict::Invalid);
        assert_eq!(verdict("/001122aabbcc.txt?x=1"), Verdict::Invalid);
        assert_eq!(verdict(T), Verdict::Valid);

        let nonce = nonces.issue();
        let uri = "http://prov.example/001122aabbcc.txt";
        let resp = digest_response(&cred(), "SHA-256", uri, &nonce, "abc");
        let absolute = format!(
            r#"Digest username="phone1", realm="{REALM}", nonce="{nonce}", uri="{uri}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="abc", response="{resp}""#
        );
        let verdict = |target| verify(&absolute, "GET", target, &cred(), &nonces, false);
        assert_eq!(verdict(T), Verdict::Valid);
        assert_eq!(verdict("/46xxsettings.txt"), Verdict::Invalid);
    }

    #[test]
    fn digest_md5_and_sha256() {
        let nonces = NonceKey::new();
        let nonce = nonces.issue();
        for alg in ["MD5", "SHA-256"] {
            let good = digest_header(&nonce, "s3cret pw", alg);
            assert_eq!(
                verify(&good, "GET", T, &cred(), &nonces, false),
                Verdict::Valid,
                "{alg}"
            );
            let bad = digest_header(&nonce, "guess", alg);
            assert_eq!(
                verify(&bad, "GET", T, &cred(), &nonces, false),
                Verdict::Invalid
            );
        }
        // A nonce this key did not make (another key's, before a restart): a right answer is
        // stale, a wrong one still wrong.
        let foreign = NonceKey::new().issue();
        let right = digest_header(&foreign, "s3cret pw", "MD5");
        assert_eq!(
            verify(&right, "GET", T, &cred(), &nonces, false),
            Verdict::Stale
        );
        let wrong = digest_header(&foreign, "guess", "MD5");
        assert_eq!(
            verify(&wrong, "GET", T, &cred(), &nonces, false),
            Verdict::Invalid
        );
    }

    /// A nonce of this key older than its lifetime: the right answer is stale (a fresh nonce
    /// is all the phone needs), the wrong one is wrong.
    #[test]
    fn an_expired_nonce_is_stale_not_wrong() {
        let lifetime = NONCE_LIFETIME + Duration::from_secs(1);
        let mut nonces = NonceKey::new();
        nonces.epoch = Instant::now()
            .checked_sub(lifetime)
            .expect("the monotonic clock runs longer than a nonce's lifetime");
        let t = 0u64;
        let expired = format!(
            "{t:x}.{}",
            hex(&hmac::sign(&nonces.key, &t.to_be_bytes()).as_ref()[..16])
        );
        let right = digest_header(&expired, "s3cret pw", "SHA-256");
        assert_eq!(
            verify(&right, "GET", T, &cred(), &nonces, false),
            Verdict::Stale
        );
        let wrong = digest_header(&expired, "guess", "SHA-256");
        assert_eq!(
            verify(&wrong, "GET", T, &cred(), &nonces, false),
            Verdict::Invalid
        );
        let fresh = digest_header(&nonces.issue(), "s3cret pw", "SHA-256");
        assert_eq!(
            verify(&fresh, "GET", T, &cred(), &nonces, false),
            Verdict::Valid
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
                verify(h, "GET", T, &cred(), &nonces, true),
                Verdict::Valid,
                "{h}"
            );
        }
    }

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// RFC 4648 base64, written here independently of the decoder under test.
    fn encode(bytes: &[u8], pad: bool) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .chain([0, 0].iter())
                .take(3)
                .fold(0u32, |n, b| (n << 8) | u32::from(*b));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
                } else if pad {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn malformed_base64_of_the_right_credential_does_not_verify() {
        let nonces = NonceKey::new();
        // "phone1:s3cret pw" is "cGhvbmUxOnMzY3JldCBwdw==".
        for h in [
            "Basic =cGhvbmUxOnMzY3JldCBwdw==",
            "Basic cGhvbmUxOnMzY3JldCBwdx==",
        ] {
            assert_eq!(
                verify(h, "GET", T, &cred(), &nonces, true),
                Verdict::Invalid,
                "{h}"
            );
        }
    }

    /// Credentials as the admin API accepts them (a username without `:`, any password), with
    /// usernames a Digest quoted-string carries unescaped (no `"` or `\`).
    fn credentials() -> impl Strategy<Value = HttpCredential> {
        ("[^:\"\\\\]{1,16}", ".{1,16}")
            .prop_map(|(username, password)| HttpCredential { username, password })
    }

    /// Text a quoted Digest parameter carries unescaped.
    const QUOTABLE: &str = "[^\"\\\\]{0,24}";
    /// An HTTP token (RFC 9110 §5.6.2): a parameter name or an unquoted value.
    const TOKEN: &str = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The `Authorization` header is attacker text on the path to every secret: whatever
        /// it says, it must not panic the daemon nor prove a device's credential, including
        /// Digest headers that name the right user, realm and a fresh nonce.
        #[test]
        fn arbitrary_headers_never_verify(
            scheme in proptest::sample::select(&["", "Basic ", "basic ", "Digest ", "DIGEST "][..]),
            text in any::<String>(),
            params in "[a-z=\", ]{0,40}",
            tls in any::<bool>(),
        ) {
            let nonces = NonceKey::new();
            let nonce = nonces.issue();
            for h in [
                format!("{scheme}{text}"),
                format!(
                    r#"Digest username="phone1", realm="{REALM}", nonce="{nonce}", {params}{text}"#
                ),
            ] {
                prop_assert_ne!(verify(&h, "GET", T, &cred(), &nonces, tls), Verdict::Valid, "{}", h);
            }
        }

        /// The parameter parser sees raw header text before any check: it must never panic,
        /// least of all on text made of the characters its grammar turns on.
        #[test]
        fn digest_params_never_panic(text in prop_oneof![any::<String>(), "[a-zé=\", ]{0,40}"]) {
            let _ = digest_params(&text);
        }

        /// Parameters written in any order, quoted or as tokens, with optional spaces around
        /// `=` and `,`, read back as exactly the names (lower-cased) and values written.
        #[test]
        fn digest_params_read_back_what_was_written(
            written in proptest::collection::btree_map(
                TOKEN,
                (
                    prop_oneof![QUOTABLE.prop_map(|v| (v, true)), TOKEN.prop_map(|v| (v, false))],
                    " ?",
                    " ?",
                ),
                0..8,
            ),
        ) {
            let header = written
                .iter()
                .map(|(k, ((v, quoted), sp1, sp2))| {
                    if *quoted {
                        format!(r#"{k}{sp1}={sp2}"{v}""#)
                    } else {
                        format!("{k}{sp1}={sp2}{v}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let want: BTreeMap<String, String> = written
                .iter()
                .map(|(k, ((v, _), _, _))| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            prop_assume!(want.len() == written.len());
            let got: BTreeMap<String, String> = digest_params(&header).into_iter().collect();
            prop_assert_eq!(got, want, "{}", header);
        }

        /// A phone that computes Digest correctly, for any credential, URI and parameter order,
        /// is let in; the same header for another method, or with a wrong password, is not.
        #[test]
        fn a_correct_digest_verifies_and_nothing_near_it_does(
            cred in credentials(),
            other_password in ".{1,16}",
            alg in proptest::sample::select(&["MD5", "SHA-256"][..]),
            uri in QUOTABLE,
            cnonce in QUOTABLE,
            order in Just((0..8).collect::<Vec<usize>>()).prop_shuffle(),
        ) {
            let nonces = NonceKey::new();
            let nonce = nonces.issue();
            let header = |cred: &HttpCredential| {
                let response = digest_response(cred, alg, &uri, &nonce, &cnonce);
                let params = [
                    format!(r#"username="{}""#, cred.username),
                    format!(r#"realm="{REALM}""#),
                    format!(r#"nonce="{nonce}""#),
                    format!(r#"uri="{uri}""#),
                    format!("algorithm={alg}"),
                    "qop=auth".to_string(),
                    "nc=00000001".to_string(),
                    format!(r#"cnonce="{cnonce}", response="{response}""#),
                ];
                let ordered: Vec<&str> = order.iter().map(|i| params[*i].as_str()).collect();
                format!("Digest {}", ordered.join(", "))
            };
            let good = header(&cred);
            let verdict = verify(&good, "GET", &uri, &cred, &nonces, false);
            prop_assert_eq!(verdict, Verdict::Valid, "{}", good);
            prop_assert_eq!(verify(&good, "PUT", &uri, &cred, &nonces, false), Verdict::Invalid);
            prop_assume!(!uri.ends_with(T));
            prop_assert_eq!(verify(&good, "GET", T, &cred, &nonces, false), Verdict::Invalid);
            prop_assume!(other_password != cred.password);
            let guessed = header(&HttpCredential { password: other_password, ..cred.clone() });
            prop_assert_eq!(verify(&guessed, "GET", &uri, &cred, &nonces, false), Verdict::Invalid);
        }

        /// Base64 written by any client, padded or not, decodes to exactly the bytes encoded.
        #[test]
        fn base64_round_trips(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            pad in any::<bool>(),
        ) {
            prop_assert_eq!(base64_decode(&encode(&bytes, pad)), Some(bytes));
        }

        /// Basic credentials verify in their one encoding (padding optional) inside TLS only;
        /// a symbol after the padding, a `=` inside the data or non-zero spare bits make it
        /// another header, which must not pass for the credential.
        #[test]
        fn basic_verifies_only_the_exact_encoding(
            cred in credentials(),
            pad in any::<bool>(),
            extra in proptest::sample::select([&ALPHABET[..], b"="].concat()),
            at in any::<proptest::sample::Index>(),
            spare in 1usize..4,
        ) {
            let nonces = NonceKey::new();
            let plain = format!("{}:{}", cred.username, cred.password);
            let enc = encode(plain.as_bytes(), pad);
            let check = |b64: &str, tls| {
                verify(&format!("Basic {b64}"), "GET", T, &cred, &nonces, tls)
            };
            prop_assert_eq!(check(&enc, true), Verdict::Valid);
            prop_assert_eq!(check(&enc, false), Verdict::BasicWithoutTls);

            let data = enc.trim_end_matches('=');
            let mut misplaced = enc.clone();
            misplaced.insert(at.index(data.len()), '=');
            let mut appended = encode(plain.as_bytes(), true);
            appended.push(char::from(extra));
            let mut malformed = vec![misplaced, appended];
            // The last symbol of a short final group (2 or 3 symbols) has 4 or 2 spare bits,
            // which must be 0; `spare` sets some of the lowest two.
            if !data.len().is_multiple_of(4) {
                let mut b = data.as_bytes().to_vec();
                let last = b.last_mut().unwrap();
                let value = ALPHABET.iter().position(|c| c == last).unwrap();
                *last = ALPHABET[value | spare];
                malformed.push(String::from_utf8(b).unwrap());
            }
            for m in malformed {
                prop_assert_eq!(check(&m, true), Verdict::Invalid, "{}", m);
            }
        }
    }
}
