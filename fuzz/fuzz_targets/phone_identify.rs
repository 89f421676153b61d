//! What the phone listener reads of a request to learn who asks, on arbitrary input: the
//! path's segments and the MAC they name (a device file, a `$MACADDR` directory, an upload),
//! the MACs an operator's file name holds, the User-Agent, and the client certificate's bytes.
//! None of it may panic, and what the path reader lets through never leaves the served tree.
//!
//! The input is split at the first two NUL bytes: path, User-Agent, certificate (DER).
#![no_main]

use edgeprov::model::UploadFile;
use edgeprov::phone::identify::{
    certificate_facts, mac_from_certificate, mac_from_path, mac_in_cn, macs_in_name,
    parse_user_agent,
};
use edgeprov::phone::path::segments;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let agent = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let cert = parts.next().unwrap_or_default();

    if let Ok(segs) = segments(&path) {
        for seg in &segs {
            assert!(seg != "." && seg != ".." && !seg.contains(['/', '\\']));
            assert!(!seg.chars().any(char::is_control));
            let _ = macs_in_name(seg);
            let _ = mac_in_cn(seg);
        }
        let _ = mac_from_path(&segs);
        if let Some((file, mac)) = segs.last().and_then(|name| UploadFile::parse(name)) {
            assert!(file.name(mac).eq_ignore_ascii_case(segs.last().unwrap()));
        }
    }
    let _ = parse_user_agent(&agent);
    let _ = mac_in_cn(&agent);
    let by_mac = mac_from_certificate(cert);
    if let Some(facts) = certificate_facts(cert, |_| false) {
        assert_eq!(facts.mac, by_mac);
        assert!(!facts.issued_here);
    }
});
