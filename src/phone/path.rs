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
}
