//! The device filters shared by `device list` and `job create`: the same names as the API's
//! query and selection fields.

use clap::Args;

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Devices of this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Devices of this group.
    #[arg(long)]
    pub group: Option<String>,
    /// Devices of this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Devices in this state (active, inactive, or a cloud lifecycle state).
    #[arg(long)]
    pub state: Option<String>,
    /// Devices where any field contains this text.
    #[arg(long)]
    pub search: Option<String>,
}

impl FilterArgs {
    /// The given filters as API field names and values.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("site", &self.site),
            ("group", &self.group),
            ("model", &self.model),
            ("state", &self.state),
            ("q", &self.search),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_deref()?)))
    }

    /// The filters as a query string fragment (`site=hq&q=desk`), values percent-encoded.
    pub fn query(&self) -> Vec<String> {
        self.fields()
            .map(|(k, v)| {
                let v =
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
                format!("{k}={v}")
            })
            .collect()
    }
}
