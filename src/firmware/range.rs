//! `Range` and `If-Range` for file downloads (RFC 9110 §14), decided without I/O.
//!
//! Only single byte ranges are honoured. A request for several ranges gets the whole file
//! (200): ignoring `Range` is always allowed, phones resume with one range, and it spares a
//! multipart encoder on the hot path.

/// What to send for a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416: no byte of the file is in the range.
    Unsatisfiable,
}

/// Decides the response from the request's `Range` and `If-Range` headers and the file's
/// strong ETag. A syntactically wrong `Range` is ignored (full file), as the RFC asks.
pub fn plan(range: Option<&str>, if_range: Option<&str>, etag: &str, len: u64) -> Plan {
    let Some(range) = range else {
        return Plan::Full;
    };
    // If-Range with a date, or a different (or weak) tag: the client's copy is not this file.
    if let Some(v) = if_range
        && v.trim() != etag
    {
        return Plan::Full;
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Plan::Full;
    };
    if spec.contains(',') {
        return Plan::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Plan::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if first.is_empty() {
        // Suffix: the last N bytes.
        let Some(n) = num(last) else {
            return Plan::Full;
        };
        if n == 0 || len == 0 {
            return Plan::Unsatisfiable;
        }
        let n = n.min(len);
        return Plan::Partial {
            start: len - n,
            end: len - 1,
        };
    }
    let Some(start) = num(first) else {
        return Plan::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match num(last) {
            Some(e) if e >= start => e,
            _ => return Plan::Full,
        }
    };
    if start >= len {
        return Plan::Unsatisfiable;
    }
    Plan::Partial {
        start,
        end: end.min(len - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"abc\"";

    fn p(range: &str) -> Plan {
        plan(Some(range), None, TAG, 1000)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(p("bytes=0-99"), Plan::Partial { start: 0, end: 99 });
        assert_eq!(
            p("bytes=500-599"),
            Plan::Partial {
                start: 500,
                end: 599
            }
        );
        assert_eq!(
            p("bytes=900-"),
            Plan::Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            p("bytes=999-5000"),
            Plan::Partial {
                start: 999,
                end: 999
            }
        );
    }

    #[test]
    fn suffix_ranges() {
        assert_eq!(
            p("bytes=-100"),
            Plan::Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(p("bytes=-5000"), Plan::Partial { start: 0, end: 999 });
        assert_eq!(p("bytes=-0"), Plan::Unsatisfiable);
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(p("bytes=1000-"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=2000-3000"), Plan::Unsatisfiable);
        assert_eq!(plan(Some("bytes=0-"), None, TAG, 0), Plan::Unsatisfiable);
        assert_eq!(p("bytes=5-1"), Plan::Full);
        assert_eq!(p("items=0-1"), Plan::Full);
        assert_eq!(p("bytes=a-b"), Plan::Full);
        assert_eq!(p("bytes=+1-2"), Plan::Full);
        assert_eq!(
            p("bytes=0-1,5-6"),
            Plan::Full,
            "multi-range gets the whole file"
        );
        assert_eq!(plan(None, None, TAG, 10), Plan::Full);
    }

    #[test]
    fn if_range_must_match_the_etag() {
        assert_eq!(
            plan(Some("bytes=0-9"), Some(TAG), TAG, 100),
            Plan::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            plan(Some("bytes=0-9"), Some("\"other\""), TAG, 100),
            Plan::Full
        );
        assert_eq!(
            plan(
                Some("bytes=0-9"),
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                TAG,
                100
            ),
            Plan::Full
        );
    }
}
