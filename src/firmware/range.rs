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
    // RFC 9110 §14.1: range unit names are case-insensitive (`Bytes=` is `bytes=`).
    let Some(spec) = range
        .trim()
        .split_once('=')
        .filter(|(unit, _)| unit.eq_ignore_ascii_case("bytes"))
        .map(|(_, spec)| spec)
    else {
        return Plan::Full;
    };
    if spec.contains(',') {
        return Plan::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Plan::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    // RFC 9110 §14.1.1: numerals may exceed any integer type. One beyond `u64` is read as
    // `u64::MAX`, which no file reaches, so it still means "past the end".
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            Some(s.parse().unwrap_or(u64::MAX))
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
            Some(e) if !numeral_exceeds(first, last) => e,
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

/// Whether decimal numeral `a` is greater than `b`, compared as text so that numerals too large
/// for `u64` (read as `u64::MAX`) still order correctly.
fn numeral_exceeds(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) > (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// A client that spells the unit `Bytes` or `BYTES` gets its range, not the whole image.
    #[test]
    fn the_range_unit_is_case_insensitive() {
        for unit in ["Bytes", "BYTES", "bYtEs"] {
            assert_eq!(
                p(&format!("{unit}=500-599")),
                Plan::Partial {
                    start: 500,
                    end: 599
                },
                "{unit}"
            );
        }
        assert_eq!(p("bytesx=0-1"), Plan::Full);
        assert_eq!(p("=0-1"), Plan::Full);
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

    /// Lengths a file can have, weighted towards the edges where arithmetic goes wrong.
    fn lengths() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0), Just(1), Just(u64::MAX), 0..2_000u64, any::<u64>()]
    }

    /// What RFC 9110 §14.1.2 asks of one `bytes=first-last` with decimal numerals of any size,
    /// worked out in `u128` (numerals here have at most 25 digits, so nothing saturates).
    fn rfc(first: Option<&str>, last: Option<&str>, len: u64) -> Plan {
        let value = |s: &str| s.parse::<u128>().unwrap();
        let len = u128::from(len);
        let (start, end) = match (first.map(value), last.map(value)) {
            (None, None) => return Plan::Full,
            (None, Some(n)) if n == 0 || len == 0 => return Plan::Unsatisfiable,
            (None, Some(n)) => (len - n.min(len), len - 1),
            (Some(f), Some(l)) if f > l => return Plan::Full,
            (Some(f), _) if f >= len => return Plan::Unsatisfiable,
            (Some(f), l) => (f, l.unwrap_or(u128::MAX).min(len - 1)),
        };
        Plan::Partial {
            start: u64::try_from(start).unwrap(),
            end: u64::try_from(end).unwrap(),
        }
    }

    #[test]
    fn numerals_beyond_u64_are_read_as_huge_not_ignored() {
        let huge = "18446744073709551616"; // u64::MAX + 1
        assert_eq!(
            p(&format!("bytes=0-{huge}")),
            Plan::Partial { start: 0, end: 999 }
        );
        assert_eq!(
            p(&format!("bytes=-{huge}")),
            Plan::Partial { start: 0, end: 999 }
        );
        assert_eq!(p(&format!("bytes={huge}-")), Plan::Unsatisfiable);
        assert_eq!(p(&format!("bytes={huge}-{huge}")), Plan::Unsatisfiable);
        assert_eq!(
            p(&format!("bytes=18446744073709551617-{huge}")),
            Plan::Full,
            "first after last, both beyond u64"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// `Range` is client text and `len` any file size: no header may panic the planner
        /// (an overflow in `len - n` or `len - 1` would), and a 206 it plans must be servable,
        /// a non-empty range inside the file.
        #[test]
        fn any_header_plans_a_servable_response(
            range in prop_oneof![
                any::<String>(),
                "bytes=[-0-9, ]{0,48}",
                "bytes=[0-9]{0,24}-[0-9]{0,24}",
            ],
            if_range in proptest::option::of(prop_oneof![Just(TAG.to_string()), any::<String>()]),
            len in lengths(),
        ) {
            let planned = plan(Some(&range), if_range.as_deref(), TAG, len);
            if let Plan::Partial { start, end } = planned {
                prop_assert!(start <= end && end < len, "{range:?} len {len}: {start}..={end}");
            }
        }

        /// The range a resuming phone asks for is exactly what it gets, whether or not it
        /// sends `If-Range` with the current tag; with another tag it gets the whole file.
        #[test]
        fn a_range_inside_the_file_is_served_exactly(
            (len, a, b) in prop_oneof![1..2_000u64, 1..=u64::MAX]
                .prop_flat_map(|len| (Just(len), 0..len))
                .prop_flat_map(|(len, a)| (Just(len), Just(a), a..len)),
            if_range in proptest::option::of(Just(TAG)),
        ) {
            let range = format!("bytes={a}-{b}");
            prop_assert_eq!(
                plan(Some(&range), if_range, TAG, len),
                Plan::Partial { start: a, end: b }
            );
            prop_assert_eq!(plan(Some(&range), Some("\"older\""), TAG, len), Plan::Full);
        }

        /// Decimal numerals of any size (with leading zeros) mean what RFC 9110 says: a server
        /// must not misread a numeral that overflows its integers.
        #[test]
        fn single_ranges_follow_rfc_9110(
            first in proptest::option::of("[0-9]{1,25}"),
            last in proptest::option::of("[0-9]{1,25}"),
            len in lengths(),
        ) {
            let range = format!(
                "bytes={}-{}",
                first.as_deref().unwrap_or(""),
                last.as_deref().unwrap_or("")
            );
            prop_assert_eq!(
                plan(Some(&range), None, TAG, len),
                rfc(first.as_deref(), last.as_deref(), len),
                "{}", range
            );
        }
    }
}
