//! `--limit`/`--offset` of the list commands that page by position (`device list`, `alarms`,
//! `dhcp leases`), as the API's `limit` and `offset`: one definition, so the three say and
//! send the same thing. A table that shows only part of the list says so on stderr, with the
//! `--offset` of the next page: the API gives the whole list's length (`X-Total-Count`), and an
//! operator reading a table of 50 alarms should not take it for all of them. With `--json` the
//! same line goes to stderr, stdout staying the API's array: a script that pages learns the
//! total there, and one that reads the array is not broken by a new shape.

use clap::Args;

#[derive(Debug, Args)]
pub struct PageArgs {
    /// Show at most this many entries (all of them when not given).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip this many entries first (for paging).
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
}

impl PageArgs {
    /// `offset=N` and, when given, `limit=N`, as query string fields.
    pub fn query(&self) -> Vec<String> {
        let mut query = vec![format!("offset={}", self.offset)];
        if let Some(l) = self.limit {
            query.push(format!("limit={l}"));
        }
        query
    }

    /// What a table of `shown` entries leaves out of the list's `total`, if anything: the
    /// entries shown, the total, and the `--offset` of the next page when there is one.
    pub fn footer(&self, shown: usize, total: Option<u64>) -> Option<String> {
        let total = usize::try_from(total?).unwrap_or(usize::MAX);
        if self.offset == 0 && shown >= total {
            return None;
        }
        let next = self.offset.saturating_add(shown);
        let range = match shown {
            0 => "none".to_string(),
            1 => next.to_string(),
            _ => format!("{}-{next}", self.offset + 1),
        };
        // A page of none (`--limit 0`) has no next page to point at: `--offset` as given
        // would show the same nothing again.
        Some(match next < total && shown > 0 {
            true => format!("showing {range} of {total}; --offset {next} for the next page"),
            false => format!("showing {range} of {total}"),
        })
    }

    /// Prints a page for `--json`: on stdout the array the API answered, one document whatever
    /// the paging (a script that reads `.[]` keeps working); on stderr, as under a table, the
    /// footer with the list's total when the page leaves entries out, the only place a script
    /// that pages learns it (`X-Total-Count`).
    pub fn print_json(
        &self,
        out: super::Output,
        page: &serde_json::Value,
        total: Option<u64>,
    ) -> anyhow::Result<()> {
        out.print_json(page)?;
        let shown = page.as_array().map_or(0, Vec::len);
        self.say_footer(shown, total);
        Ok(())
    }

    /// Prints [`PageArgs::footer`] on stderr, so stdout stays the table alone.
    pub fn say_footer(&self, shown: usize, total: Option<u64>) {
        if let Some(line) = self.footer(shown, total) {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PageArgs;

    fn page(offset: usize, limit: Option<usize>) -> PageArgs {
        PageArgs { limit, offset }
    }

    #[test]
    fn a_whole_list_has_no_footer() {
        assert_eq!(page(0, None).footer(3, Some(3)), None);
        assert_eq!(page(0, Some(10)).footer(3, Some(3)), None);
        assert_eq!(page(0, None).footer(0, Some(0)), None);
        assert_eq!(page(0, None).footer(3, None), None);
    }

    #[test]
    fn a_part_says_what_it_shows_and_where_the_next_page_starts() {
        assert_eq!(
            page(0, Some(2)).footer(2, Some(5)).as_deref(),
            Some("showing 1-2 of 5; --offset 2 for the next page")
        );
        assert_eq!(
            page(4, Some(2)).footer(1, Some(5)).as_deref(),
            Some("showing 5 of 5")
        );
        assert_eq!(
            page(9, None).footer(0, Some(5)).as_deref(),
            Some("showing none of 5")
        );
    }

    /// `--limit 0` shows none and points at no next page: it pointed at `--offset 0`, the same
    /// empty page, a loop for a script that follows the hint.
    #[test]
    fn a_page_of_none_points_at_no_next_page() {
        assert_eq!(
            page(0, Some(0)).footer(0, Some(3)).as_deref(),
            Some("showing none of 3")
        );
        assert_eq!(
            page(2, Some(0)).footer(0, Some(3)).as_deref(),
            Some("showing none of 3")
        );
    }
}
