//! The `limit` of the list routes that page, one rule for all of them: a default when not
//! given, and a most, past which the request is refused (400 naming `limit`) rather than cut.
//! A cut page looks like the whole list to a script that asked for more, so it would stop
//! early without knowing; `/audit` refused past its most while `/devices/{mac}/checkins` and
//! `/sync/rejected` cut silently at 10,000.
//!
//! The lists an administrator pages through by position (`/devices`, `/alarms`,
//! `/dhcp/leases`) share [`window`] and [`total_count`]: `offset` and `limit` over the whole
//! sorted, filtered list, and its length in `X-Total-Count`, so a client knows when it has all.

use super::ApiError;

/// The number of entries a request asked for, or 400 naming `limit` and saying what to do
/// (`then`: how to get the rest) when it is more than `most`.
pub fn limit(
    given: Option<usize>,
    default: usize,
    most: usize,
    then: &str,
) -> Result<usize, ApiError> {
    let limit = given.unwrap_or(default);
    if limit > most {
        return Err(ApiError::BadRequest(format!(
            "limit: at most {most} entries a request ({limit} asked for); {then}"
        )));
    }
    Ok(limit)
}

/// The entries from `offset` on, at most `limit` of them (all the rest when not given), and
/// how many there are in all. An `offset` past the end gives an empty page, not an error: the
/// list may have shrunk since the page before.
pub fn window<T>(
    items: impl ExactSizeIterator<Item = T>,
    offset: usize,
    limit: Option<usize>,
) -> (Vec<T>, usize) {
    let total = items.len();
    let page = items
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    (page, total)
}

/// The `X-Total-Count` header of a paged answer: how many entries match, over all pages.
pub fn total_count(total: usize) -> [(&'static str, String); 1] {
    [("x-total-count", total.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_the_slice_from_offset_and_the_total_is_of_everything() {
        let w = |offset, limit| window(0..5, offset, limit);
        assert_eq!(w(0, None), (vec![0, 1, 2, 3, 4], 5));
        assert_eq!(w(1, Some(2)), (vec![1, 2], 5));
        assert_eq!(w(4, Some(2)), (vec![4], 5));
        assert_eq!(w(5, Some(2)), (vec![], 5));
        assert_eq!(w(usize::MAX, None), (vec![], 5));
        assert_eq!(w(0, Some(0)), (vec![], 5));
    }

    #[test]
    fn a_limit_past_the_most_is_refused_naming_the_field_not_cut() {
        assert_eq!(limit(None, 100, 10_000, "").unwrap(), 100);
        assert_eq!(limit(Some(10_000), 100, 10_000, "").unwrap(), 10_000);
        assert_eq!(limit(Some(0), 100, 10_000, "").unwrap(), 0);
        let err = limit(Some(10_001), 100, 10_000, "ask for fewer").unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "limit: at most 10000 entries a request (10001 asked for); ask for fewer"
        );
    }
}
