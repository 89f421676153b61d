//! Any bytes parse, print back unchanged, and lint without panicking.
#![no_main]

use edgeprov::settings::{Script, lint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let script = Script::parse(data);
    assert_eq!(script.print(), data);
    let lines: usize = script.statements().iter().map(|s| s.lines).sum();
    for finding in lint("fuzz.txt", &script) {
        assert!(finding.line >= 1 && finding.line <= lines);
    }
});
