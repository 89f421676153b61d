//! Turning a request path into safe segments. Phones only ever ask for plain file names, so
//! anything that could climb out of the served tree is refused before any lookup happens.

use percent_encoding::percent_decode_str;

/// Longest path accepted; real phone requests are well under 200 bytes.
pub const MAX_PATH: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is longer than {MAX_PATH} bytes")]
    TooLong,
    #[error("path tries to leave the served directory")]
    Traversal,
    #[error("path is not valid UTF-8 or contains control characters")]
    Malformed,
}

/// Splits `/a/b%20c/d.txt` into decoded segments `["a", "b c", "d.txt"]`. Refuses `.` and `..`
/// segments, encoded separators (`%2f`, `%5c`), backslashes and control bytes.
pub fn segments(raw_path: &str) -> Result<Vec<String>, PathError> {
    if raw_path.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    let mut out = Vec::new();
    for raw in raw_path.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| PathError::Malformed)?;
        if seg == "." || seg == ".." || seg.contains(['/', '\\']) {
            return Err(PathError::Traversal);
        }
        if seg.chars().any(char::is_control) {
            return Err(PathError::Malformed);
        }
        out.push(seg.into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use proptest::prelude::*;

    #[test]
    fn plain_paths() {
        assert_eq!(
            segments("/46xxsettings.txt").unwrap(),
            vec!["46xxsettings.txt"]
        );
        assert_eq!(segments("//a///b.txt").unwrap(), vec!["a", "b.txt"]);
        assert_eq!(segments("/a%20b.txt").unwrap(), vec!["a b.txt"]);
        assert!(segments("/").unwrap().is_empty());
    }

    #[test]
    fn traversal_is_refused() {
        for p in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/..%2fetc",
            "/a%5c..%5cb",
            "/a\\b",
            "/.",
        ] {
            assert_eq!(segments(p), Err(PathError::Traversal), "{p}");
        }
    }

    #[test]
    fn malformed_and_long() {
        assert_eq!(segments("/%ff%fe"), Err(PathError::Malformed));
        assert_eq!(segments("/a%00b"), Err(PathError::Malformed));
        assert_eq!(
            segments(&format!("/{}", "a".repeat(MAX_PATH))),
            Err(PathError::TooLong)
        );
    }

    /// Raw paths made of the pieces that matter here: separators, dots, backslashes, escapes
    /// (of those and of anything, invalid and truncated), control bytes and multi-byte
    /// characters.
    fn hostile_paths() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "/|\\.|\\.\\.|\\\\",
            2 => "%(2[eEfF]|5[cC])",
            4 => "[a-z0-9_.-]{1,8}",
            1 => "%[0-9a-fA-F]{2}",
            1 => "%[0-9a-zA-Z%]?",
            1 => "[\\x00-\\x1f\\x7f]",
            1 => any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..16).prop_map(|p| p.concat())
    }

    /// One segment of a file name, printable ASCII as phones use or any other text, without
    /// control characters, `/` or `\` and other than `.` and `..` (what a served file may be
    /// called).
    fn file_name() -> impl Strategy<Value = String> {
        prop_oneof!["[ -.0-\\[\\]-~]{1,12}", "[^\\p{Cc}/\\\\]{1,12}"]
            .prop_filter("dot segment", |s| s != "." && s != "..")
    }

    /// `.` or `..` spelt with any mix of literal and percent-encoded dots, in any case, or a
    /// segment that hides an encoded `/` or `\`.
    fn traversal() -> impl Strategy<Value = String> {
        let dot = prop_oneof![Just("."), Just("%2e"), Just("%2E")];
        let sep = prop_oneof![Just("%2f"), Just("%2F"), Just("%5c"), Just("%5C")];
        prop_oneof![
            proptest::collection::vec(dot, 1..=2).prop_map(|d| d.concat()),
            ("[a-z.]{0,4}", sep, "[a-z.]{0,4}").prop_map(|(a, s, b)| format!("{a}{s}{b}")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The path is the first thing a phone (or a scanner) controls: it must never panic the
        /// daemon, and whatever it accepts must be a plain name that cannot leave the served
        /// tree when joined to it.
        #[test]
        fn accepted_segments_cannot_leave_the_tree(
            raw in prop_oneof![
                hostile_paths(),
                "(/(\\.|%2[eE]|[a-z]){0,3}){0,6}",
                any::<String>(),
            ]
        ) {
            if let Ok(segs) = segments(&raw) {
                for s in &segs {
                    prop_assert!(!s.is_empty(), "{raw:?} gave an empty segment");
                    prop_assert!(s != "." && s != "..", "{raw:?} gave {s:?}");
                    prop_assert!(!s.contains(['/', '\\']), "{raw:?} gave {s:?}");
                    prop_assert!(!s.chars().any(char::is_control), "{raw:?} gave {s:?}");
                }
            }
        }

        /// A dot segment or an encoded separator anywhere in an otherwise good path is refused
        /// as traversal, however it is encoded.
        #[test]
        fn encoded_traversal_is_refused(
            before in proptest::collection::vec(file_name(), 0..3),
            bad in traversal(),
            after in proptest::collection::vec(file_name(), 0..3),
        ) {
            let enc = |v: &[String]| {
                v.iter()
                    .map(|s| format!("/{}", utf8_percent_encode(s, NON_ALPHANUMERIC)))
                    .collect::<String>()
            };
            let raw = format!("{}/{bad}{}", enc(&before), enc(&after));
            prop_assert_eq!(segments(&raw), Err(PathError::Traversal), "{}", raw);
        }

        /// Any file name, percent-encoded as a client would, comes back exactly: refusing too
        /// much would break phones whose file names need escaping.
        #[test]
        fn encoded_file_names_round_trip(names in proptest::collection::vec(file_name(), 0..6)) {
            let raw: String = names
                .iter()
                .map(|s| format!("/{}", utf8_percent_encode(s, NON_ALPHANUMERIC)))
                .collect();
            prop_assume!(raw.len() <= MAX_PATH);
            prop_assert_eq!(segments(&raw), Ok(names));
        }
    }
}
