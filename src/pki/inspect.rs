//! What an operator needs to know about a certificate: who it is for, who signed it, when it
//! expires, and its SHA-256 fingerprint (the name a trusted root is removed by).

use serde::{Deserialize, Serialize};
use x509_parser::certificate::X509Certificate;

/// A certificate described for the admin API and the CLI. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// The serial number, lower-case hex.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// Whole days until `not_after`; negative once it has expired.
    pub days_left: i64,
    /// SHA-256 of the DER certificate, 64 lower-case hex digits.
    pub sha256: String,
    /// DNS names and IP addresses (subject alternative names), lower case.
    pub names: Vec<String>,
    /// Whether it is a CA certificate (basic constraints cA).
    pub is_ca: bool,
}

/// SHA-256 of a DER certificate as 64 lower-case hex digits.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    crate::phone::credentials::hex(digest.as_ref())
}

/// Whole days from `now` until `not_after` (rounded down; negative once past).
pub fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now).div_euclid(86_400)
}

/// Describes a DER certificate as of `now`; the error is the parser's message.
pub fn describe(der: &[u8], now: i64) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    Ok(describe_parsed(&cert, der, now))
}

pub(super) fn describe_parsed(cert: &X509Certificate<'_>, der: &[u8], now: i64) -> CertInfo {
    let not_after = cert.validity().not_after.timestamp();
    CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: crate::phone::credentials::hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after,
        days_left: days_left(not_after, now),
        sha256: fingerprint(der),
        names: super::cert_names(cert).into_iter().collect(),
        is_ca: is_ca(cert),
    }
}

pub(super) fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// A fingerprint as typed by an operator (any case, optional `:` separators), normalised;
/// `None` when it is not 32 bytes of hex.
pub fn normalise_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_down_and_go_negative() {
        assert_eq!(days_left(86_400 * 3 - 1, 0), 2);
        assert_eq!(days_left(86_400 * 3, 0), 3);
        assert_eq!(days_left(-1, 0), -1);
    }

    #[test]
    fn fingerprints_are_normalised() {
        let fp = "AB:".repeat(31) + "AB";
        assert_eq!(normalise_fingerprint(&fp), Some("ab".repeat(32)));
        assert_eq!(normalise_fingerprint("abc"), None);
        assert_eq!(normalise_fingerprint(&"zz".repeat(32)), None);
    }
}
