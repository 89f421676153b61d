//! Any chain of files evaluates to an end without panicking or looping.
//!
//! The input is split at NUL bytes into files named `0`, `1`, ...; the first is the entry,
//! so `GET 1` or `GET $GROUP` (GROUP is "1") reach the others, including cycles.
#![no_main]

use edgeprov::settings::{EvalOptions, Outcome, Vars, evaluate_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files: Vec<&[u8]> = data.split(|&b| b == 0).take(8).collect();
    let vars = Vars::new()
        .with("MODEL4", "J179")
        .with("GROUP", "1")
        .with("MACADDR", "c81fea83e85a")
        .with("SIG_IN_USE", "SIP");
    let options = EvalOptions {
        max_steps: 2_000,
        ..EvalOptions::default()
    };
    let loader = |name: &str| {
        let index: usize = name.parse().ok()?;
        files.get(index).map(|f| f.to_vec())
    };
    let evaluation = evaluate_with("0", &vars, loader, &options);
    assert!(evaluation.files.len() <= options.max_files);
    assert!(evaluation.trace.len() <= options.max_steps);
    if evaluation.outcome == Outcome::Completed {
        assert!(!evaluation.files.is_empty());
    }
});
