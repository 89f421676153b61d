//! `--limit`/`--offset` of the list commands that page by position (`device list`, `alarms`,
//! `dhcp leases`), as the API's `limit` and `offset`: one definition, so the three say and
//! send the same thing.

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
}
