//! The phone listener's request headers, on arbitrary text: the `Authorization` header (Digest
//! and Basic, checked against a device's credential) and `Range` / `If-Range` of a download.
//! No header may panic; a range that is served lies inside the file.
//!
//! The input is split at NUL bytes: Authorization, method, target, Range, If-Range, and the
//! file length as decimal text.
#![no_main]

use std::sync::OnceLock;

use edgeprov::firmware::range::{Plan, plan};
use edgeprov::model::HttpCredential;
use edgeprov::phone::credentials::{NonceKey, Verdict, digest_params, verify};
use libfuzzer_sys::fuzz_target;

fn nonces() -> &'static NonceKey {
    static KEY: OnceLock<NonceKey> = OnceLock::new();
    KEY.get_or_init(NonceKey::new)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let mut next = || parts.next().unwrap_or_default();
    let (header, method, target) = (next(), next(), next());
    let (range, if_range, len) = (next(), next(), next());

    let cred = HttpCredential {
        username: "phone".into(),
        password: "secret".into(),
    };
    let _ = digest_params(header);
    for tls in [false, true] {
        let verdict = verify(header, method, target, &cred, nonces(), tls);
        // A Digest answer needs a nonce this key issued, which no input can forge; Basic
        // holds the password itself, and only over TLS.
        if verdict == Verdict::Valid {
            let scheme = header.trim().split(' ').next().unwrap_or_default();
            assert!(tls && scheme.eq_ignore_ascii_case("basic"), "{header:?}");
        }
    }

    let len: u64 = len.parse().unwrap_or(1000);
    let etag = "\"e1\"";
    let if_range = (!if_range.is_empty()).then_some(if_range);
    match plan(Some(range), if_range, etag, len) {
        Plan::Partial { start, end } => assert!(start <= end && end < len, "{range:?} {len}"),
        Plan::Full | Plan::Unsatisfiable => {}
    }
});
