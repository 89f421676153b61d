//! The DNS responder's fast path on arbitrary datagrams: the hand-written reader that looks at
//! every query before anything else does (the pre-encoded answers, and the truncated reply a
//! rate-limited client gets). Nothing may panic; an answer echoes the query's ID and question;
//! a truncated reply is never larger than the query (it must amplify nothing).
#![no_main]

use std::sync::OnceLock;

use edgeprov::dns::zone::{Provisioning, Zone};
use edgeprov::dns::{DnsConfig, FastPath, slip};
use libfuzzer_sys::fuzz_target;

/// The answers of a zone as the daemon derives it from the default `[dns]` table.
fn fast_path() -> &'static FastPath {
    static FAST: OnceLock<FastPath> = OnceLock::new();
    FAST.get_or_init(|| {
        let provisioning = Provisioning::derive(
            &DnsConfig::default(),
            &["prov.example.lan".into(), "10.0.0.5".into()],
            "0.0.0.0:8443".parse().unwrap(),
            Some("0.0.0.0:8080".parse().unwrap()),
        )
        .unwrap();
        let fast = FastPath::build(&Zone::build(provisioning, &[], 300, 60, 1), false);
        assert!(!fast.is_empty());
        fast
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(reply) = fast_path().answer(data) {
        assert_eq!(reply[..2], data[..2]);
        assert_eq!(reply[2] & 0x80, 0x80, "a reply has QR set");
        let mut question_end = 12;
        while data[question_end] != 0 {
            question_end += 1 + usize::from(data[question_end]);
        }
        question_end += 5;
        assert_eq!(reply[12..question_end], data[12..question_end]);
    }
    if let Some(truncated) = slip(data) {
        assert!(truncated.len() <= data.len());
        assert_eq!(truncated[..2], data[..2]);
        assert_eq!(truncated[2] & 0x82, 0x82, "QR and TC are set");
    }
});
