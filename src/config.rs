//! The daemon's one configuration shape: TOML, validated once at load, with defaults that run
//! without root and without any file (high ports, data under `./edgeprov-data`).
//!
//! Unknown keys are refused rather than ignored: a misspelt key silently falling back to a
//! default is how a box ends up serving plain HTTP when its installer thought it did not.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the packaged service keeps its configuration; used when no other is named.
pub const SYSTEM_CONFIG: &str = "/etc/edgeprov/edgeprov.toml";

/// Environment variable naming a config file when `--config` is not given. Set but empty, it
/// counts as unset, as an empty path variable does for most tools (`EDGEPROV_CONFIG= cmd` is
/// how a shell clears it for one command).
pub const CONFIG_ENV: &str = "EDGEPROV_CONFIG";

/// Most phone connections `phone.max_connections` may allow: a million connections' buffers
/// (~24 GB) are already more than any box running this has.
const MAX_PHONE_CONNECTIONS: usize = 1_000_000;

/// Longest `phone.auth_lockout_secs`: a year is "until someone looks", and a lockout's end must
/// stay a time the clock can hold (a failed attempt adds it to the present).
const MAX_AUTH_LOCKOUT_SECS: u64 = 365 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}{}: {key}: {message}", line.map(|n| format!(", line {n}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        key: &'static str,
        /// Where the file sets `key`, when it does (see [`key_line`]).
        line: Option<usize>,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Database, PKI, admin token and listener file live here.
    pub data_dir: PathBuf,
    /// `error`, `warn`, `info`, `debug`, `trace` or `off`, or a tracing filter whose every
    /// directive is a level or names one (`warn,edgeprov=debug`): see [`crate::logging::check_level`].
    pub log_level: String,
    pub phone: PhoneConfig,
    pub admin: AdminConfig,
    pub pki: PkiConfig,
    pub dns: crate::dns::DnsConfig,
    pub firmware: crate::firmware::FirmwareConfig,
    pub cloud: crate::sync::CloudConfig,
    pub dhcp: crate::dhcp::DhcpConfig,
    pub pnp: crate::pnp::PnpConfig,
    pub scep: ScepConfig,
    pub uploads: UploadsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneConfig {
    /// Mutual-TLS listeners for phones (at least one: a client certificate is how a phone
    /// proves which device it is). An IPv6 address listens on IPv6 only.
    pub https_listen: Vec<SocketAddr>,
    /// Plain HTTP for phones that cannot do TLS; an empty list turns it off.
    pub http_listen: Vec<SocketAddr>,
    /// A TLS handshake must finish within this time, so half-open sockets cannot pile up.
    pub handshake_timeout_ms: u64,
    /// Time allowed for a request's headers to arrive (slowloris protection).
    pub header_timeout_ms: u64,
    /// A connection whose peer takes none of a response's bytes for this long is closed: a
    /// client that sends requests but never reads the answers would otherwise hold its
    /// connection, and one of `max_connections`, for ever.
    pub send_timeout_ms: u64,
    /// Phone connections (HTTPS and HTTP together) open at once. Each holds about 24 KB of
    /// buffers; beyond the limit new connections wait in the kernel's listen queue until one
    /// closes, so a flood of connections slows phones down instead of exhausting memory. A boot
    /// storm at 3,500 phones a second keeps about a hundred open (~30 ms each).
    pub max_connections: usize,
    /// Phone connections open at once from one source: an IPv4 address (IPv4-mapped IPv6 counts
    /// as its IPv4) or an IPv6 /64. Without it one host holding connections idle, or flooding
    /// handshakes, could take every one of `max_connections` and starve every other phone; a
    /// connection beyond it is closed as soon as it is accepted, before its TLS handshake.
    /// Not set: a quarter of `max_connections`, rounded up (512 by default), which phones
    /// behind one NAT and a boot-storm simulator at the documented concurrency stay under;
    /// 0: no per-address limit. At most `max_connections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_address: Option<usize>,
    /// Failed HTTP-credential attempts per device before its credentials are locked.
    pub auth_max_failures: u32,
    /// How long locked HTTP credentials stay locked (1 s to a year).
    pub auth_lockout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The admin API and `/metrics`: HTTPS with the server certificate and a bearer token.
    /// Loopback by default, so the API is reachable from the box alone until opened.
    pub listen: SocketAddr,
    /// Wrong or missing tokens accepted from one address per minute before it is answered 429
    /// for the rest of that minute.
    pub auth_failures_per_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    /// Subject alternative names of the generated server certificate (DNS names or IPs).
    pub server_names: Vec<String>,
    /// Extra PEM files with vendors' factory device roots, trusted for client certificates.
    pub trusted_device_roots: Vec<PathBuf>,
    /// Where clients fetch the CA's revocation list, written into the server certificate.
    /// Empty: derived from the first server name and the first plain-HTTP port
    /// (`http://NAME[:PORT]/ca.crl`; a port of 0 or 80 is left out), or with plain HTTP off
    /// the first HTTPS port (`https://NAME[:PORT]/ca.crl`, 0 or 443 left out).
    pub crl_url: String,
    /// Days before a device certificate the box issued expires from which the
    /// `device_certs_expiring` alarm is raised; 0 turns it off.
    pub device_cert_warn_days: u32,
}

/// SCEP enrolment (RFC 8894) on the phone listeners, at `/scep` and `/cgi-bin/pkiclient.exe`:
/// phones get their client certificate from the box's CA. See docs/certificates.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScepConfig {
    /// Off by default: while off, the SCEP paths are not served at all.
    pub enabled: bool,
    /// The file whose first line is the challenge password phones send (Avaya
    /// `SCEPPASSWORD`). A secret, so it is kept out of this file, which many may read; it must
    /// not be readable by every user. Read at each enrolment: replacing it changes the
    /// challenge without a restart.
    pub challenge_file: PathBuf,
    /// How long the certificates issued last, in days (1 to 3650).
    pub cert_days: u32,
    /// Accept requests encrypted with single DES (56-bit keys, which an eavesdropper who
    /// recorded the request can search through to read the challenge). Some clients speak
    /// nothing else; the answer to them carries only a public certificate.
    pub allow_single_des: bool,
    /// Refused enrolments accepted per minute from one source (an IPv4 address or an IPv6
    /// /64) before it is answered HTTP 429 for the rest of the minute: guessing the challenge
    /// then costs time, and the alarms a flood raises are bounded.
    pub refusals_per_minute: u32,
    /// Until when first enrolments by the challenge are granted (RFC 3339 in the file, Unix
    /// seconds here); after it they are refused ("enrolment closed") while renewals signed by
    /// a device's current certificate still are. Unset: enrolment stays open. Closing it after
    /// the roll-out ends what a leaked challenge can do.
    #[serde(
        default,
        with = "rfc3339_unix",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_until: Option<i64>,
    /// Who grants a first enrolment that passes every check: the challenge alone
    /// (`challenge`), or an operator who approves it through the admin API (`operator`),
    /// the phone being told PENDING and polling meanwhile. Renewals are granted at once either
    /// way: they are signed by the device's current certificate.
    pub approval: ScepApproval,
    /// How long a request held for the operator waits (1 to 365 days) before it expires and
    /// its polls are answered FAILURE.
    pub pending_days: u32,
}

/// `scep.approval`: what grants a first enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScepApproval {
    /// The challenge, the inventory and the key suffice (anyone holding the challenge can
    /// enrol as a device that has no certificate yet).
    #[default]
    Challenge,
    /// Each first enrolment is held until an operator approves it.
    Operator,
}

/// Files phones upload to the box (Poly: their logs, and the settings changed on the phone or
/// its web page), kept per device in the database. See README "Uploads from phones".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Off, every PUT is answered 405 as before and nothing is stored; stored uploads are
    /// still listed and served.
    pub enabled: bool,
    /// The largest file accepted; a larger one is answered 413 without reading it past this.
    pub max_file_bytes: u64,
    /// What all uploads together may hold: past it the oldest logs of any device are dropped,
    /// and an override that still does not fit is refused (507).
    pub max_total_bytes: u64,
    /// How many uploads the daemon reads at once, of all phones together: each is held in
    /// memory whole (up to `max_file_bytes`) until it is stored, so this times that is the
    /// most the uploads in flight hold, however many connections are open. One more is
    /// answered 503 with `Retry-After` before its body is read.
    pub max_in_flight: u32,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            enabled: true,
            max_file_bytes: 2 << 20,
            max_total_bytes: 256 << 20,
            max_in_flight: 8,
        }
    }
}

/// The most `uploads.max_file_bytes` may be: a file is read into memory whole before it is
/// stored in one transaction, so it is bounded well below what a small box has.
const MAX_UPLOAD_FILE_BYTES: u64 = 64 << 20;

/// The most `uploads.max_in_flight × uploads.max_file_bytes` may be: the memory the uploads
/// being read may hold together, kept well below what a small box has.
const MAX_UPLOAD_BYTES_IN_FLIGHT: u64 = 1 << 30;

/// `scep.open_until`: an RFC 3339 time in the file (`2026-12-31T23:59:59Z`), Unix seconds in
/// memory; a value that is not one stops the load naming the key.
mod rfc3339_unix {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;

    pub fn serialize<S: Serializer>(value: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        let text = value
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let text = String::deserialize(d)?;
        time::OffsetDateTime::parse(&text, &Rfc3339)
            .map(|t| Some(t.unix_timestamp()))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "scep.open_until: {text:?} is not an RFC 3339 time such as 2026-12-31T23:59:59Z ({e})"
                ))
            })
    }
}

impl Default for ScepConfig {
    fn default() -> Self {
        ScepConfig {
            enabled: false,
            challenge_file: PathBuf::new(),
            cert_days: 3650,
            allow_single_des: false,
            refusals_per_minute: 10,
            open_until: None,
            approval: ScepApproval::Challenge,
            pending_days: 7,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./edgeprov-data"),
            log_level: "info".into(),
            phone: PhoneConfig::default(),
            admin: AdminConfig::default(),
            pki: PkiConfig::default(),
            dns: crate::dns::DnsConfig::default(),
            firmware: crate::firmware::FirmwareConfig::default(),
            cloud: crate::sync::CloudConfig::default(),
            dhcp: crate::dhcp::DhcpConfig::default(),
            pnp: crate::pnp::PnpConfig::default(),
            scep: ScepConfig::default(),
            uploads: UploadsConfig::default(),
        }
    }
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            https_listen: vec![SocketAddr::from(([0, 0, 0, 0], 8443))],
            http_listen: vec![SocketAddr::from(([0, 0, 0, 0], 8080))],
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            send_timeout_ms: 30_000,
            max_connections: 2_048,
            max_connections_per_address: None,
            auth_max_failures: 5,
            auth_lockout_secs: 900,
        }
    }
}

impl PhoneConfig {
    /// `max_connections_per_address` as applied: a quarter of `max_connections` (rounded up,
    /// so never 0) when the file leaves it out; 0 means no per-address limit.
    pub fn connections_per_address(&self) -> usize {
        self.max_connections_per_address
            .unwrap_or(self.max_connections.div_ceil(4))
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9443)),
            auth_failures_per_minute: 10,
        }
    }
}

/// The default of [`PkiConfig::device_cert_warn_days`]: a month leaves time to issue and push
/// new certificates (and for phones that fetch their settings weekly to pick them up) before
/// the old ones stop a handshake.
pub const DEVICE_CERT_WARN_DAYS: u32 = 30;

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            trusted_device_roots: Vec::new(),
            crl_url: String::new(),
            device_cert_warn_days: DEVICE_CERT_WARN_DAYS,
        }
    }
}

/// Which file the configuration came from, if any (shown by `doctor` and in start-up logs).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: Option<PathBuf>,
}

impl Config {
    /// Finds the configuration the way every command does: `--config` (`explicit`), else
    /// `$EDGEPROV_CONFIG` unless it is empty, else the system file if it exists, else the
    /// embedded defaults.
    pub fn discover(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
        let from_env = || {
            std::env::var_os(CONFIG_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let path = explicit
            .map(Path::to_path_buf)
            .or_else(from_env)
            .or_else(|| Some(PathBuf::from(SYSTEM_CONFIG)).filter(|p| p.exists()));
        match path {
            Some(path) => Ok(Loaded {
                config: Config::load(&path)?,
                source: Some(path),
            }),
            None => Ok(Loaded {
                config: Config::default(),
                source: None,
            }),
        }
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate(path).map_err(|e| match e {
            ConfigError::Invalid {
                path, key, message, ..
            } => ConfigError::Invalid {
                line: key_line(text, key),
                path,
                key,
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            line: None,
            message: message.to_string(),
        };
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if let Err(e) = crate::logging::check_level(&self.log_level) {
            return Err(invalid("log_level", &e));
        }
        if self.phone.https_listen.is_empty() {
            return Err(invalid(
                "phone.https_listen",
                "at least one address is needed: HTTPS is how phones prove who they are",
            ));
        }
        for (key, ms) in [
            (
                "phone.handshake_timeout_ms",
                self.phone.handshake_timeout_ms,
            ),
            ("phone.header_timeout_ms", self.phone.header_timeout_ms),
            ("phone.send_timeout_ms", self.phone.send_timeout_ms),
        ] {
            if ms == 0 {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        if !(1..=MAX_PHONE_CONNECTIONS).contains(&self.phone.max_connections) {
            return Err(invalid(
                "phone.max_connections",
                &format!("must be 1 to {MAX_PHONE_CONNECTIONS}"),
            ));
        }
        if let Some(n) = self.phone.max_connections_per_address
            && n > self.phone.max_connections
        {
            return Err(invalid(
                "phone.max_connections_per_address",
                &format!(
                    "{n} is more than phone.max_connections ({}): at most that, or 0 for no \
                     per-address limit",
                    self.phone.max_connections
                ),
            ));
        }
        if self.phone.auth_max_failures == 0 {
            return Err(invalid("phone.auth_max_failures", "must be at least 1"));
        }
        if !(1..=MAX_AUTH_LOCKOUT_SECS).contains(&self.phone.auth_lockout_secs) {
            return Err(invalid(
                "phone.auth_lockout_secs",
                &format!(
                    "must be 1 to {MAX_AUTH_LOCKOUT_SECS} (a year): 0 would lock nothing while \
                     still raising the lockout alarm"
                ),
            ));
        }
        if self.admin.auth_failures_per_minute == 0 {
            return Err(invalid(
                "admin.auth_failures_per_minute",
                "must be at least 1",
            ));
        }
        self.listeners_apart()
            .map_err(|(key, message)| invalid(key, &message))?;
        if self.pki.server_names.is_empty() {
            return Err(invalid("pki.server_names", "at least one name is needed"));
        }
        if self.pki.server_names.iter().any(|n| n.trim().is_empty()) {
            return Err(invalid("pki.server_names", "names must not be empty"));
        }
        // The rule TLS clients, the CLI among them, check a certificate's names by: an entry
        // that fails it (a port or a URL pasted in) would go into the server certificate as a
        // name nothing can match.
        if let Some(bad) = self
            .pki
            .server_names
            .iter()
            .find(|n| rustls_pki_types::ServerName::try_from(n.as_str()).is_err())
        {
            return Err(invalid(
                "pki.server_names",
                &format!(
                    "{bad:?} is not an IP address or a host name (no scheme, port or path: \
                     \"prov.example.lan\", \"192.0.2.10\")"
                ),
            ));
        }
        if self.pki.device_cert_warn_days > 3650 {
            return Err(invalid(
                "pki.device_cert_warn_days",
                "must be 0 (off) to 3650, the longest a device certificate is issued for",
            ));
        }
        let url = &self.pki.crl_url;
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(invalid("pki.crl_url", "must be an http:// or https:// URL"));
        }
        self.dns
            .validate()
            .map_err(|(key, message)| invalid(key, &message))?;
        self.firmware
            .validate()
            .map_err(|(key, message)| invalid(key, &message))?;
        self.cloud
            .validate()
            .map_err(|(key, message)| invalid(key, &message))?;
        crate::dhcp::validate(self).map_err(|(key, message)| invalid(key, &message))?;
        crate::pnp::validate(self).map_err(|(key, message)| invalid(key, &message))?;
        if self.scep.enabled && self.scep.challenge_file.as_os_str().is_empty() {
            return Err(invalid(
                "scep.challenge_file",
                "SCEP is enabled: name the file that holds the challenge password",
            ));
        }
        if !(1..=3650).contains(&self.scep.cert_days) {
            return Err(invalid("scep.cert_days", "must be 1 to 3650"));
        }
        if self.scep.refusals_per_minute == 0 {
            return Err(invalid("scep.refusals_per_minute", "must be at least 1"));
        }
        if !(1..=365).contains(&self.scep.pending_days) {
            return Err(invalid("scep.pending_days", "must be 1 to 365"));
        }
        let uploads = &self.uploads;
        if !(1..=MAX_UPLOAD_FILE_BYTES).contains(&uploads.max_file_bytes) {
            return Err(invalid(
                "uploads.max_file_bytes",
                &format!("must be 1 to {MAX_UPLOAD_FILE_BYTES} (64 MiB)"),
            ));
        }
        if uploads.max_total_bytes < uploads.max_file_bytes {
            return Err(invalid(
                "uploads.max_total_bytes",
                &format!(
                    "{} is less than uploads.max_file_bytes ({}): a file that may be sent \
                     could never be kept",
                    uploads.max_total_bytes, uploads.max_file_bytes
                ),
            ));
        }
        if uploads.max_in_flight == 0 {
            return Err(invalid("uploads.max_in_flight", "must be at least 1"));
        }
        let in_flight = u64::from(uploads.max_in_flight).saturating_mul(uploads.max_file_bytes);
        if in_flight > MAX_UPLOAD_BYTES_IN_FLIGHT {
            return Err(invalid(
                "uploads.max_in_flight",
                &format!(
                    "{} uploads of up to uploads.max_file_bytes ({}) could hold {in_flight} \
                     bytes in memory at once; at most {MAX_UPLOAD_BYTES_IN_FLIGHT} (1 GiB)",
                    uploads.max_in_flight, uploads.max_file_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Two listeners of one protocol on the same port and overlapping addresses: the second
    /// would fail the start with "address in use", as if another program had the port, and a
    /// reload would accept the file that a restart then cannot run. IPv6 sockets take IPv6
    /// only (`daemon::bind`), so `0.0.0.0:443` and `[::]:443` are apart.
    fn listeners_apart(&self) -> Result<(), (&'static str, String)> {
        let dns = &self.dns.listen;
        let tcp = (self
            .phone
            .https_listen
            .iter()
            .map(|a| ("phone.https_listen", a)))
        .chain(
            self.phone
                .http_listen
                .iter()
                .map(|a| ("phone.http_listen", a)),
        )
        .chain([("admin.listen", &self.admin.listen)])
        .chain(dns.iter().map(|a| ("dns.listen", a)));
        let dhcp = self
            .dhcp
            .enabled
            .then_some(("dhcp.listen", &self.dhcp.listen));
        let pnp = self.pnp.enabled.then_some(("pnp.listen", &self.pnp.listen));
        let udp = dns.iter().map(|a| ("dns.listen", a)).chain(dhcp).chain(pnp);
        for (protocol, list) in [("TCP", tcp.collect::<Vec<_>>()), ("UDP", udp.collect())] {
            for (i, (key, addr)) in list.iter().enumerate() {
                if let Some((other, taken)) = list[..i].iter().find(|(_, b)| overlap(addr, b)) {
                    return Err((
                        key,
                        format!(
                            "{addr} overlaps {taken} ({other}) on {protocol} port {}: one \
                             listener per address and port",
                            addr.port()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The CRL URL to put in the server certificate (see [`PkiConfig::crl_url`]).
    pub fn crl_url(&self) -> String {
        if !self.pki.crl_url.is_empty() {
            return self.pki.crl_url.clone();
        }
        let name = &self.pki.server_names[0];
        let host = if name.contains(':') {
            format!("[{name}]")
        } else {
            name.clone()
        };
        let (scheme, port, default) = match self.phone.http_listen.first() {
            Some(a) => ("http", a.port(), 80),
            None => ("https", self.phone.https_listen[0].port(), 443),
        };
        if port == 0 || port == default {
            format!("{scheme}://{host}/ca.crl")
        } else {
            format!("{scheme}://{host}:{port}/ca.crl")
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("edgeprov.redb")
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }

    pub fn token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    /// Written by the daemon once every listener is bound: the addresses actually in use
    /// (port 0 in the config becomes the port the kernel chose).
    pub fn listeners_path(&self) -> PathBuf {
        self.data_dir.join("listeners.json")
    }
}

/// The line (1-based) of `text` that sets the dotted `key`, so that a value refused after
/// parsing is pointed at like a syntax error is. None when the file leaves the key to its
/// default, or when it is inside an array of tables (`firmware.release.file`): which element
/// the refusal is about the key alone does not say.
fn key_line(text: &str, key: &str) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, value) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        match value.get_ref() {
            toml::de::DeValue::Table(inner) if parts.peek().is_some() => table = inner,
            _ if parts.peek().is_some() => return None,
            _ => return Some(text[..name.span().start].matches('\n').count() + 1),
        }
    }
    None
}

/// Whether sockets bound to `a` and `b` would take the same port on some address. Port 0 asks
/// the kernel for a free port, so it never clashes.
fn overlap(a: &SocketAddr, b: &SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers = |wild: &SocketAddr, other: &SocketAddr| {
        wild.ip().is_unspecified() && wild.is_ipv6() == other.is_ipv6()
    };
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn contract_keys_parse() {
        let c = parse(
            r#"
data_dir = "/var/lib/edgeprov"
[phone]
https_listen = ["0.0.0.0:443", "[::]:443"]
http_listen = []
[admin]
listen = "127.0.0.1:9443"
[pki]
server_names = ["prov.example.lan", "10.0.0.5"]
trusted_device_roots = ["/etc/edgeprov/roots/avaya.pem"]
"#,
        )
        .unwrap();
        assert_eq!(c.phone.https_listen.len(), 2);
        assert!(c.phone.http_listen.is_empty());
        assert_eq!(c.pki.server_names[1], "10.0.0.5");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("data_dir = \"x\"\n[phone]\nhttps_lisen = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("https_lisen"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_address_names_line() {
        let err = parse("[admin]\nlisten = \"localhost:notaport\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("listen"), "{err}");
    }

    #[test]
    fn device_cert_warn_days_defaults_to_a_month_and_is_bounded() {
        assert_eq!(parse("").unwrap().pki.device_cert_warn_days, 30);
        assert_eq!(
            parse("[pki]\ndevice_cert_warn_days = 0\n")
                .unwrap()
                .pki
                .device_cert_warn_days,
            0
        );
        let err = parse("[pki]\ndevice_cert_warn_days = 3651\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pki.device_cert_warn_days"), "{err}");
    }

    #[test]
    fn crl_url_follows_name_and_http_port() {
        let c = parse("").unwrap();
        assert_eq!(c.crl_url(), "http://localhost:8080/ca.crl");
        let c =
            parse("[phone]\nhttp_listen = [\"0.0.0.0:80\"]\n[pki]\nserver_names = [\"fd00::5\"]\n")
                .unwrap();
        assert_eq!(c.crl_url(), "http://[fd00::5]/ca.crl");
        let c = parse("[phone]\nhttp_listen = []\nhttps_listen = [\"0.0.0.0:443\"]\n").unwrap();
        assert_eq!(c.crl_url(), "https://localhost/ca.crl");
        assert!(parse("[pki]\ncrl_url = \"ftp://x\"\n").is_err());
    }

    #[test]
    fn cloud_table_parses_and_is_checked() {
        let c =
            parse("[cloud]\nca_file = \"/etc/edgeprov/cloud-ca.pem\"\noutbox_max = 50\n").unwrap();
        assert_eq!(c.cloud.outbox_max, 50);
        let err = parse("[cloud]\noutbox_max = 0\n").unwrap_err().to_string();
        assert!(err.contains("cloud.outbox_max"), "{err}");
        let err = parse("[cloud]\nretry_min_ms = 10\nretry_max_ms = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cloud.retry_max_ms"), "{err}");
    }

    #[test]
    fn listeners_on_one_port_are_refused_naming_both() {
        let err =
            parse("[phone]\nhttps_listen = [\"0.0.0.0:443\"]\nhttp_listen = [\"127.0.0.1:443\"]\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains(
                "phone.http_listen: 127.0.0.1:443 overlaps 0.0.0.0:443 (phone.https_listen)"
            ),
            "{err}"
        );
        let err = parse("[phone]\nhttps_listen = [\"[::]:443\", \"[::1]:443\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("phone.https_listen: [::1]:443 overlaps [::]:443"),
            "{err}"
        );
        let err = parse("[admin]\nlisten = \"127.0.0.1:8080\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("admin.listen") && err.contains("phone.http_listen"),
            "{err}"
        );
        let err = parse("[dns]\nlisten = [\"127.0.0.1:8443\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dns.listen") && err.contains("TCP port 8443"),
            "{err}"
        );

        // Apart: other addresses, other families, other protocols, kernel-chosen ports.
        parse("[phone]\nhttps_listen = [\"127.0.0.1:443\", \"127.0.0.2:443\", \"[::1]:443\"]\n")
            .unwrap();
        parse("[phone]\nhttps_listen = [\"127.0.0.1:0\"]\nhttp_listen = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[dns]\nlisten = [\"127.0.0.1:0\"]\n")
            .unwrap();
    }

    #[test]
    fn a_refused_value_is_named_with_its_line() {
        let err = parse("data_dir = \"x\"\n\n[phone]\nhttp_listen = []\nmax_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 5: phone.max_connections: must be 1 to"),
            "{err}"
        );
        let err = parse("log_level = \"info\"\nphone.header_timeout_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: phone.header_timeout_ms"), "{err}");
        // Left to its default, the key has no line to point at.
        let err = parse("[phone]\nhttp_listen = [\"127.0.0.1:9443\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test.toml: admin.listen: 127.0.0.1:9443 overlaps"),
            "{err}"
        );
    }

    /// SCEP on needs the file of its challenge; the certificates' life and the refusal limit
    /// are bounded, each error naming its key and line.
    #[test]
    fn scep_is_validated_at_load() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        let e = err("[scep]\nenabled = true\n");
        assert!(
            e.contains("scep.challenge_file") && e.contains("test.toml"),
            "{e}"
        );
        let e = err("[scep]\ncert_days = 0\n");
        assert!(e.contains("scep.cert_days"), "{e}");
        let e = err("[scep]\nrefusals_per_minute = 0\n");
        assert!(e.contains("scep.refusals_per_minute"), "{e}");
        let c = parse("[scep]\nenabled = true\nchallenge_file = \"/etc/edgeprov/scep\"\n").unwrap();
        assert!(c.scep.enabled && !c.scep.allow_single_des);
        assert_eq!(c.scep.cert_days, 3650);
        assert_eq!(c.scep.open_until, None);
        assert!(!Config::default().scep.enabled);
        let e = err("[scep]\nopen_until = \"next friday\"\n");
        assert!(
            e.contains("scep.open_until") && e.contains("test.toml"),
            "{e}"
        );
        let c = parse("[scep]\nopen_until = \"2026-12-31T23:00:00+01:00\"\n").unwrap();
        assert_eq!(c.scep.open_until, Some(1_798_754_400));
    }

    /// `scep.approval` is one of two words (the challenge by default), and a request held for
    /// the operator waits 1 to 365 days; anything else stops the load naming the key.
    #[test]
    fn scep_approval_and_pending_days_are_validated_at_load() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(Config::default().scep.approval, ScepApproval::Challenge);
        assert_eq!(Config::default().scep.pending_days, 7);
        let c = parse("[scep]\napproval = \"operator\"\npending_days = 2\n").unwrap();
        assert_eq!(
            (c.scep.approval, c.scep.pending_days),
            (ScepApproval::Operator, 2)
        );
        let e = err("[scep]\napproval = \"manual\"\n");
        assert!(e.contains("approval") && e.contains("operator"), "{e}");
        for days in ["0", "366"] {
            let e = err(&format!("[scep]\npending_days = {days}\n"));
            assert!(
                e.contains("scep.pending_days") && e.contains("test.toml"),
                "{e}"
            );
        }
    }

    /// The upload bounds are checked at load, each refusal naming its key and line: a file
    /// bound of 0 would refuse every upload, and a total below it could keep no file sent.
    #[test]
    fn uploads_are_validated_at_load() {
        let c = parse("").unwrap().uploads;
        assert!(c.enabled);
        assert_eq!((c.max_file_bytes, c.max_total_bytes), (2 << 20, 256 << 20));
        let err = |text: &str| parse(text).unwrap_err().to_string();
        let e = err("[uploads]\nmax_file_bytes = 0\n");
        assert!(
            e.contains("line 2: uploads.max_file_bytes: must be 1 to"),
            "{e}"
        );
        let e = err("[uploads]\nmax_file_bytes = 67108865\n");
        assert!(e.contains("uploads.max_file_bytes"), "{e}");
        assert_eq!(c.max_in_flight, 8);
        let e = err("[uploads]\nmax_in_flight = 0\n");
        assert!(
            e.contains("line 2: uploads.max_in_flight: must be at least 1"),
            "{e}"
        );
        // 32 × 64 MiB is 2 GiB of bodies in memory at once: refused, naming the product.
        let e = err(
            "[uploads]\nmax_file_bytes = 67108864\nmax_total_bytes = 67108864\nmax_in_flight = 32\n",
        );
        assert!(
            e.contains("uploads.max_in_flight") && e.contains("2147483648 bytes"),
            "{e}"
        );
        let e = err("[uploads]\nmax_file_bytes = 1000\nmax_total_bytes = 999\n");
        assert!(
            e.contains("line 3: uploads.max_total_bytes: 999 is less than uploads.max_file_bytes"),
            "{e}"
        );
        let e = err("[uploads]\nmax_bytes = 1\n");
        assert!(e.contains("max_bytes"), "{e}");
        let c = parse("[uploads]\nenabled = false\nmax_file_bytes = 10\nmax_total_bytes = 10\n")
            .unwrap()
            .uploads;
        assert!(!c.enabled);
    }

    /// docs/configuration.md (shipped with the package) names every key of the tables it
    /// documents, so a key added to the code cannot be left out of it.
    #[test]
    fn the_reference_names_every_key_it_documents() {
        let doc = include_str!("../docs/configuration.md");
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        for table in ["dns", "dhcp", "pnp", "cloud", "scep", "uploads"] {
            for key in defaults[table].as_table().unwrap().keys() {
                assert!(doc.contains(&format!("| `{key}` |")), "{table}.{key}");
            }
        }
        // The phone listener's connection limits are there too, with why one address is limited.
        for key in ["max_connections", "max_connections_per_address"] {
            assert!(doc.contains(&format!("| `{key}` |")), "phone.{key}");
        }
        let subnet: crate::dhcp::config::SubnetConfig =
            toml::from_str("network = \"192.0.2.0/24\"").unwrap();
        let nested = toml::Value::try_from(subnet).unwrap();
        let nested = nested.as_table().unwrap().keys().map(String::as_str);
        for key in nested.chain(["match", "name", "type", "value", "ttl"]) {
            assert!(doc.contains(&format!("`{key}`")), "{key}");
        }
    }

    /// The ```toml block of the README's Configuration section: every key of the top level,
    /// `[phone]`, `[admin]`, `[pki]`, `[firmware]` and `[uploads]` is there, with the value the daemon uses
    /// when the file leaves it out, so an installer who copies a line gets the default.
    #[test]
    fn the_readme_states_every_top_level_key_with_its_default() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("\n## Configuration\n").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").unwrap()];
        let documented: toml::Table = toml::from_str(block).unwrap();
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut wrong = Vec::new();
        let mut compare = |path: String, doc: Option<&toml::Value>, code: &toml::Value| {
            if doc != Some(code) {
                wrong.push(format!("{path}: README {doc:?}, code {code}"));
            }
        };
        for (key, code) in defaults.as_table().unwrap() {
            match code.as_table() {
                Some(table)
                    if ["phone", "admin", "pki", "firmware", "uploads"].contains(&key.as_str()) =>
                {
                    let doc = documented.get(key).and_then(toml::Value::as_table);
                    for (inner, code) in table {
                        // The release list's default is empty; the README shows one release.
                        if inner != "release" {
                            let doc = doc.and_then(|t| t.get(inner));
                            compare(format!("{key}.{inner}"), doc, code);
                        }
                    }
                }
                Some(_) => {}
                None => compare(key.clone(), documented.get(key), code),
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// Each row of docs/configuration.md gives its key's default in backticks as a TOML value;
    /// it must be the default the code has (a prose default names what the code computes).
    #[test]
    fn the_reference_states_the_defaults_the_code_has() {
        let doc = include_str!("../docs/configuration.md");
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut table = None;
        let mut checked = 0;
        let mut wrong = Vec::new();
        for line in doc.lines() {
            if let Some(rest) = line.strip_prefix("## `[") {
                table = rest.split(']').next();
                continue;
            }
            let cells: Vec<&str> = line.split(" | ").collect();
            let (Some(table), [first, default, ..]) = (table, cells.as_slice()) else {
                continue;
            };
            let Some(key) = first.strip_prefix("| `").and_then(|k| k.strip_suffix('`')) else {
                continue;
            };
            let Some(value) = default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) else {
                continue;
            };
            let parsed: toml::Table = toml::from_str(&format!("v = {value}")).unwrap();
            let code = &defaults[table][key];
            if &parsed["v"] != code {
                wrong.push(format!("{table}.{key}: documented {value}, code {code}"));
            }
            checked += 1;
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert!(
            checked > 40,
            "only {checked} rows were read: has the table layout changed?"
        );
    }

    /// No key in the docs is one the daemon lacks: the README's block deserialises as a
    /// `Config` (which refuses unknown keys), and every key row of docs/configuration.md and of
    /// the `[cloud]` table in docs/sync-protocol.md names a key of its table.
    #[test]
    fn the_docs_name_no_key_the_daemon_lacks() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("\n## Configuration\n").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").unwrap()];
        if let Err(e) = toml::from_str::<Config>(block) {
            panic!("README's Configuration block: {e}");
        }

        // Every key, the optional ones too (left out of the defaults when unset).
        let mut every = Config::default();
        every.phone.max_connections_per_address = Some(0);
        every.scep.open_until = Some(0);
        let defaults = toml::Value::try_from(every).unwrap();
        let mut unknown = Vec::new();
        let mut rows = 0;
        for (file, doc) in [
            ("configuration.md", include_str!("../docs/configuration.md")),
            ("sync-protocol.md", include_str!("../docs/sync-protocol.md")),
        ] {
            let mut table = None;
            for line in doc.lines() {
                if line.starts_with("## ") {
                    table = line
                        .split("`[")
                        .nth(1)
                        .and_then(|rest| rest.split(']').next());
                    continue;
                }
                let (Some(table), Some(first)) = (table, line.strip_prefix("| `")) else {
                    continue;
                };
                let cell = first.split(" |").next().unwrap_or_default();
                for key in cell.split('`').step_by(2).map(str::trim) {
                    let key = key.trim_start_matches("/ ").trim();
                    if key.is_empty() {
                        continue;
                    }
                    rows += 1;
                    if defaults[table].get(key).is_none() {
                        unknown.push(format!("{file}: {table}.{key}"));
                    }
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "documented keys the daemon lacks: {unknown:#?}"
        );
        assert!(
            rows > 50,
            "only {rows} key rows read: has the layout changed?"
        );
    }

    /// The config the package ships loads, and has what the README promises of it: data in
    /// /var/lib/edgeprov, HTTPS 443, HTTP 80, DNS 53, DHCP off.
    #[test]
    fn the_shipped_config_loads_with_the_documented_ports() {
        let shipped = include_str!("../packaging/edgeprov.toml");
        let c = match Config::parse(shipped, Path::new("packaging/edgeprov.toml")) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/edgeprov"));
        let ports = |list: &[SocketAddr]| list.iter().map(SocketAddr::port).collect::<Vec<_>>();
        assert_eq!(ports(&c.phone.https_listen), [443]);
        assert_eq!(ports(&c.phone.http_listen), [80]);
        assert_eq!(ports(&c.dns.listen), [53]);
        assert!(!c.dhcp.enabled);
        let readme = include_str!("../README.md");
        assert!(
            readme.contains("with the standard ports: HTTPS 443,\nHTTP 80, DNS 53, DHCP off"),
            "the README's install section no longer says which ports the package ships"
        );
    }

    #[test]
    fn a_zero_timeout_is_named() {
        for key in ["handshake_timeout_ms", "header_timeout_ms"] {
            let err = parse(&format!("[phone]\n{key} = 0\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("phone.{key}: must be greater than zero")),
                "{err}"
            );
        }
    }

    /// A server name that is neither an IP address nor a host name (a port or a URL pasted in)
    /// went into the server certificate as a name no client can match, and the CLI refused it
    /// only when it came to connect: it is refused at load, naming the entry and its line.
    #[test]
    fn a_server_name_that_is_no_host_name_is_refused_with_its_line() {
        for bad in [
            "10.0.0.5:443",
            "https://prov.example.lan/",
            "prov example lan",
        ] {
            let err = parse(&format!(
                "[pki]\ndevice_cert_warn_days = 30\nserver_names = [\"prov.example.lan\", \"{bad}\"]\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(&format!("line 3: pki.server_names: {bad:?} is not")),
                "{bad}: {err}"
            );
        }
        let c = parse(
            "[pki]\nserver_names = [\"prov.example.lan\", \"10.0.0.5\", \"fd00::5\", \"box_1\"]\n",
        )
        .unwrap();
        assert_eq!(c.pki.server_names.len(), 4);
    }

    /// Each listed interface gets a socket on the DHCP port (SO_REUSEADDR); one listed twice
    /// got two, and a broadcast request is delivered to both, so every DISCOVER was answered
    /// twice. A repeated name is refused, naming it and the line.
    #[test]
    fn a_dhcp_interface_listed_twice_is_refused_with_its_line() {
        let err = parse("[dhcp]\nmode = \"inform\"\ninterfaces = [\"eth0\", \"eth1\", \"eth0\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3: dhcp.interfaces: \"eth0\" is listed twice"),
            "{err}"
        );
        let c = parse("[dhcp]\ninterfaces = [\"eth0\", \"eth1\"]\n").unwrap();
        assert_eq!(c.dhcp.interfaces, ["eth0", "eth1"]);
    }

    /// A declined address is one another host answers ARP for (RFC 2131 4.3.3): kept out of use
    /// for 0 seconds, it went to the next client at once, a second host on the same address.
    #[test]
    fn a_decline_time_of_zero_is_refused_with_its_line() {
        let err = parse("[dhcp]\nmode = \"inform\"\ndecline_seconds = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3: dhcp.decline_seconds: must be at least 1"),
            "{err}"
        );
        assert_eq!(
            parse("[dhcp]\ndecline_seconds = 1\n")
                .unwrap()
                .dhcp
                .decline_seconds,
            1
        );
    }

    /// A release of 0 bytes refuses every download past its first byte, so it could never be
    /// cached; the file loaded and the release failed only when a phone asked for it.
    #[test]
    fn a_firmware_release_of_zero_bytes_is_refused() {
        let release = |size: &str| {
            format!(
                "[[firmware.release]]\nmodels = [\"J179\"]\nversion = \"1\"\nfile = \"j.bin\"\nsha256 = \"{}\"\n{size}",
                "ab".repeat(32)
            )
        };
        let err = parse(&release("size = 0\n")).unwrap_err().to_string();
        assert!(
            err.contains("firmware.release.size: release 1 (j.bin): must be greater than zero"),
            "{err}"
        );
        assert_eq!(
            parse(&release("size = 1\n")).unwrap().firmware.releases[0].size,
            Some(1)
        );
        assert_eq!(parse(&release("")).unwrap().firmware.releases[0].size, None);
    }

    /// `[pnp]` is off by default on 5060; each refused value names its key and line, and its
    /// port may not be another UDP listener's.
    #[test]
    fn pnp_is_off_by_default_and_its_refused_values_name_their_keys() {
        let c = parse("").unwrap();
        assert!(!c.pnp.enabled);
        assert_eq!(c.pnp.listen, "0.0.0.0:5060".parse().unwrap());
        for (text, expected) in [
            (
                "[pnp]\nenabled = true\nlisten = \"[::]:5060\"\n",
                "line 3: pnp.listen: plug-and-play multicast (224.0.1.75) is IPv4",
            ),
            (
                "[pnp]\nurl = \"ftp://prov\"\n",
                "line 2: pnp.url: \"ftp://prov\": expected http:// or https://",
            ),
            (
                "[pnp]\nlisten = \"224.0.1.75:5060\"\n",
                "line 2: pnp.listen: 224.0.1.75 is a multicast address",
            ),
            (
                "[pnp]\nlisten = \"255.255.255.255:5060\"\n",
                "line 2: pnp.listen: 255.255.255.255 is the broadcast address",
            ),
            (
                "[pnp]\ninterfaces = [\"eth0\", \"eth0\"]\n",
                "line 2: pnp.interfaces: \"eth0\" is listed twice",
            ),
            (
                "[dns]\nlisten = [\"0.0.0.0:5060\"]\n[pnp]\nenabled = true\n",
                "pnp.listen: 0.0.0.0:5060 overlaps 0.0.0.0:5060 (dns.listen) on UDP port 5060",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let c = parse("[pnp]\nenabled = true\nurl = \"http://10.0.0.5/prov/\"\n").unwrap();
        assert_eq!(c.pnp.url, "http://10.0.0.5/prov/");
        // A first server name no URL can be made of: refused at load, not at start.
        let text = "[pki]\nserver_names = [\"::1\"]\n[pnp]\nenabled = true\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.contains("pnp.url: ") && err.contains("set dhcp.provisioning_url"),
            "{err}"
        );
        assert!(parse(&text.replace("enabled = true", "enabled = false")).is_ok());
    }

    /// DHCP answers clients on the port after its own (68 for 67): on 65535 that port does not
    /// exist, and every reply would go to port 0, which no client listens on.
    #[test]
    fn a_dhcp_port_with_no_client_port_after_it_is_refused() {
        let err = parse("[dhcp]\nmode = \"inform\"\nlisten = \"127.0.0.1:65535\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3: dhcp.listen: port 65535 leaves no port for the clients"),
            "{err}"
        );
        for port in [0, 67, 65534] {
            let c = parse(&format!("[dhcp]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
            assert_eq!(c.dhcp.listen.port(), port);
        }
    }

    /// A blank `log_level` parses as a tracing filter with no directives, which enables
    /// nothing: the daemon would run without logging even its errors.
    #[test]
    fn a_blank_log_level_is_refused_with_its_line() {
        for value in ["\"\"", "\"  \""] {
            let err = parse(&format!("data_dir = \"x\"\nlog_level = {value}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("line 2: log_level: "), "{value}: {err}");
        }
        assert_eq!(
            parse("log_level = \"warn,edgeprov=debug\"\n")
                .unwrap()
                .log_level,
            "warn,edgeprov=debug"
        );
    }

    /// EnvFilter reads a bare word that is not a level as a target at every level, everything
    /// else off: `inof` had the daemon log next to nothing. Such a word is refused, naming it,
    /// the levels and the `target=level` form; the forms with a level still load.
    #[test]
    fn a_log_level_word_that_is_no_level_is_refused_with_its_line() {
        for (value, word) in [
            ("inof", "inof"),
            ("hyper", "hyper"),
            ("warn,edgeprov", "edgeprov"),
            ("info, [request]", "[request]"),
        ] {
            let err = parse(&format!("data_dir = \"x\"\nlog_level = \"{value}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "line 2: log_level: {word:?} is not a level (trace, debug, info, warn, \
                     error, off); to filter a target give it a level: \"edgeprov=debug\""
                )),
                "{value}: {err}"
            );
        }
        for value in [
            "info",
            "WARN",
            "off",
            "warn,edgeprov=debug",
            "edgeprov::phone=trace",
            "[request]=debug",
            "info,[request{peer=x}]=trace",
        ] {
            let c = parse(&format!("log_level = \"{value}\"\n"));
            assert_eq!(c.map(|c| c.log_level).ok().as_deref(), Some(value));
        }
    }

    /// Each DNS key refused is named itself, with its line: "dns: timeouts" or "dns.ttl" for
    /// `negative_ttl` left the administrator guessing which line of the table to fix.
    #[test]
    fn a_refused_dns_value_names_its_own_key_and_line() {
        for (key, value) in [
            ("forward_timeout_ms", "0"),
            ("tcp_timeout_ms", "0"),
            ("ttl", "604801"),
            ("negative_ttl", "604801"),
            ("srv_https", "[\"a..b\"]"),
            ("srv_http", "[\"a..b\"]"),
        ] {
            let err = parse(&format!("[dns]\ncache_size = 10\n{key} = {value}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("test.toml, line 3: dns.{key}: ")),
                "{key}: {err}"
            );
        }
    }

    /// A lockout of 0 seconds ended as it began: wrong passwords could be tried without end,
    /// while every `auth_max_failures` of them still raised the lockout alarm. One beyond what
    /// the clock can hold made the first locking failure panic its connection's task.
    #[test]
    fn a_lockout_of_zero_or_beyond_a_year_is_refused_with_its_line() {
        for value in ["0", "31536001", "18446744073709551615"] {
            let err = parse(&format!(
                "[phone]\nauth_max_failures = 3\nauth_lockout_secs = {value}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("line 3: phone.auth_lockout_secs: must be 1 to 31536000 (a year)"),
                "{value}: {err}"
            );
        }
        let c = parse("[phone]\nauth_lockout_secs = 31536000\n").unwrap();
        assert_eq!(c.phone.auth_lockout_secs, 31_536_000);
    }

    #[test]
    fn a_token_failure_limit_of_zero_is_refused() {
        let err = parse("[admin]\nauth_failures_per_minute = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("admin.auth_failures_per_minute: must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn empty_https_listen_is_refused() {
        let err = parse("[phone]\nhttps_listen = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("phone.https_listen"), "{err}");
    }

    #[test]
    fn a_zero_phone_timeout_is_refused_by_name() {
        for key in [
            "handshake_timeout_ms",
            "header_timeout_ms",
            "send_timeout_ms",
        ] {
            let err = parse(&format!("[phone]\n{key} = 0\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("phone.{key}")), "{err}");
        }
        let c = parse("[phone]\nsend_timeout_ms = 5000\n").unwrap();
        assert_eq!(c.phone.send_timeout_ms, 5_000);
    }

    #[test]
    fn max_connections_out_of_range_is_refused() {
        for value in ["0", "1000001", "9223372036854775807"] {
            let err = parse(&format!("[phone]\nmax_connections = {value}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("phone.max_connections"), "{value}: {err}");
            assert!(err.contains("1 to 1000000"), "{value}: {err}");
        }
        let c = parse("[phone]\nmax_connections = 1\n").unwrap();
        assert_eq!(c.phone.max_connections, 1);
    }

    #[test]
    fn connections_per_address_default_to_a_quarter_and_are_checked() {
        let c = parse("").unwrap();
        assert_eq!(c.phone.connections_per_address(), 512);
        let c = parse("[phone]\nmax_connections = 10\n").unwrap();
        assert_eq!(c.phone.connections_per_address(), 3, "rounded up");
        let c = parse("[phone]\nmax_connections = 1\n").unwrap();
        assert_eq!(c.phone.connections_per_address(), 1, "never 0 by default");
        let c = parse("[phone]\nmax_connections_per_address = 0\n").unwrap();
        assert_eq!(c.phone.connections_per_address(), 0, "off");
        let c = parse("[phone]\nmax_connections = 8\nmax_connections_per_address = 8\n").unwrap();
        assert_eq!(c.phone.connections_per_address(), 8);

        let err = parse("[phone]\nmax_connections = 8\n\nmax_connections_per_address = 9\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "line 4: phone.max_connections_per_address: 9 is more than \
                 phone.max_connections (8)"
            ),
            "{err}"
        );
        let err = parse("[phone]\nmax_connections_per_address = -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_connections_per_address"), "{err}");
    }

    #[test]
    fn firmware_phone_wait_out_of_range_is_refused() {
        for value in ["0", "600001"] {
            let err = parse(&format!("[firmware]\nphone_wait_ms = {value}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("firmware.phone_wait_ms"), "{value}: {err}");
        }
        let c = parse("[firmware]\nphone_wait_ms = 600000\n").unwrap();
        assert_eq!(c.firmware.phone_wait_ms, 600_000);
    }

    #[test]
    fn firmware_stall_out_of_range_is_refused() {
        for value in ["0", "3601"] {
            let err = parse(&format!("[firmware]\nstall_secs = {value}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("firmware.stall_secs"), "{value}: {err}");
        }
        assert_eq!(parse("").unwrap().firmware.stall_secs, 30);
    }

    #[test]
    fn firmware_keys_parse_and_releases_are_checked() {
        let sha = "ab".repeat(32);
        let c = parse(&format!(
            r#"
data_dir = "/var/lib/edgeprov"
[firmware]
max_cache_bytes = 20_000_000_000
[[firmware.release]]
models = ["J179", "J169"]
version = "4.1.3.0.6"
file = "FW_S_J179_R4_1_3_0_6.bin"
urls = ["http://127.0.0.1:9000/FW_S_J179_R4_1_3_0_6.bin"]
sha256 = "{sha}"
"#
        ))
        .unwrap();
        assert_eq!(c.firmware.releases.len(), 1);
        assert_eq!(
            c.firmware.cache_dir(&c.data_dir),
            PathBuf::from("/var/lib/edgeprov/firmware")
        );
        let bad = |release: &str| {
            parse(&format!("[[firmware.release]]\n{release}"))
                .unwrap_err()
                .to_string()
        };
        let ok_rest = format!("models = [\"J179\"]\nversion = \"1\"\nsha256 = \"{sha}\"\n");
        let err = bad(&format!("file = \"../x.bin\"\n{ok_rest}"));
        assert!(err.contains("firmware.release.file"), "{err}");
        let err = bad("file = \"x.bin\"\nmodels = [\"J179\"]\nversion = \"1\"\nsha256 = \"abc\"\n");
        assert!(err.contains("firmware.release.sha256"), "{err}");
        let err = bad(&format!(
            "file = \"x.bin\"\nurls = [\"ftp://h/x\"]\n{ok_rest}"
        ));
        assert!(err.contains("firmware.release.urls"), "{err}");
        let err = bad(&format!("file = \"x.bin\"\nchecksum = \"1\"\n{ok_rest}"));
        assert!(err.contains("checksum"), "{err}");
    }
}
