//! Counting what a storm did: latency samples with exact percentiles, outcomes per file, and
//! errors by kind. Pure data; each worker keeps its own and they are merged at the end, so the
//! hot loop takes no lock.

use std::collections::BTreeMap;
use std::time::Duration;

/// Why a request (or the connection under it) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The TCP connection was refused or could not be made.
    Refused,
    /// The TLS handshake failed (certificate refused, protocol mismatch, reset during it).
    Tls,
    /// An answer other than 200.
    Status(u16),
    /// No answer within the per-request deadline.
    Timeout,
    /// The connection broke after the handshake (with TLS 1.3, after the server's first record
    /// that follows it), or the answer was not HTTP.
    Http,
    /// A 200 whose body failed the secret check.
    Check,
}

impl ErrorKind {
    /// The name used in reports and JSON (`status_404`).
    pub fn name(&self) -> String {
        match self {
            ErrorKind::Refused => "refused".into(),
            ErrorKind::Tls => "tls".into(),
            ErrorKind::Status(s) => format!("status_{s}"),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Http => "http".into(),
            ErrorKind::Check => "check".into(),
        }
    }
}

/// Latency samples in microseconds. Kept whole (4 bytes each, bounded by the phone count times
/// the files per phone) so percentiles are exact rather than bucketed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Samples {
    micros: Vec<u32>,
}

/// Percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Samples {
    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Nearest-rank percentiles: p-th is the smallest sample with at least p% of samples at or
    /// below it. All zero when there are no samples.
    pub fn summary(&self) -> Summary {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let Some(&max) = sorted.last() else {
            return Summary::default();
        };
        let rank = |p: f64| {
            let n = sorted.len();
            let i = ((p / 100.0) * n as f64).ceil() as usize;
            ms(sorted[i.clamp(1, n) - 1])
        };
        Summary {
            count: sorted.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: ms(max),
        }
    }
}

fn ms(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

/// Outcomes of one file of the sequence, over every phone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    pub ok: u64,
    pub errors: u64,
    pub bytes: u64,
    /// Time to the last body byte, for answered requests (any status).
    pub latency: Samples,
}

/// Everything one worker (or, merged, the whole storm) counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub phones: u64,
    pub phones_ok: u64,
    /// Answered HTTP requests (any status).
    pub requests: u64,
    pub full_handshakes: u64,
    pub resumed_handshakes: u64,
    /// New connections because the server closed a kept-alive one without saying so (found
    /// closed before a request, or closed under one before any byte of the answer, which is
    /// then asked again).
    pub reconnects: u64,
    /// TCP connect + TLS handshake.
    pub handshake: Samples,
    /// Every answered request, all files together.
    pub latency: Samples,
    /// Per file, in the order phones first asked for them.
    pub files: Vec<(&'static str, FileStats)>,
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl Tally {
    fn file(&mut self, name: &'static str) -> &mut FileStats {
        let at = match self.files.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                self.files.push((name, FileStats::default()));
                self.files.len() - 1
            }
        };
        &mut self.files[at].1
    }

    pub fn error(&mut self, file: Option<&'static str>, kind: ErrorKind) {
        *self.errors.entry(kind).or_default() += 1;
        if let Some(file) = file {
            self.file(file).errors += 1;
        }
    }

    pub fn answered(&mut self, file: &'static str, took: Duration, bytes: usize) {
        self.requests += 1;
        self.latency.record(took);
        let f = self.file(file);
        f.latency.record(took);
        f.bytes += bytes as u64;
    }

    pub fn file_ok(&mut self, file: &'static str) {
        self.file(file).ok += 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: Tally) {
        self.phones += other.phones;
        self.phones_ok += other.phones_ok;
        self.requests += other.requests;
        self.full_handshakes += other.full_handshakes;
        self.resumed_handshakes += other.resumed_handshakes;
        self.reconnects += other.reconnects;
        self.handshake.merge(other.handshake);
        self.latency.merge(other.latency);
        for (name, f) in other.files {
            let mine = self.file(name);
            mine.ok += f.ok;
            mine.errors += f.errors;
            mine.bytes += f.bytes;
            mine.latency.merge(f.latency);
        }
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ms: impl IntoIterator<Item = u64>) -> Samples {
        let mut s = Samples::default();
        for m in ms {
            s.record(Duration::from_millis(m));
        }
        s
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = samples(1..=100);
        let sum = s.summary();
        assert_eq!(sum.count, 100);
        assert_eq!(
            (sum.p50, sum.p90, sum.p99, sum.max),
            (50.0, 90.0, 99.0, 100.0)
        );
        let one = samples([7]).summary();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        let ten = samples([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]).summary();
        assert_eq!((ten.p50, ten.p90, ten.p99), (5.0, 9.0, 10.0));
    }

    #[test]
    fn empty_and_huge_samples() {
        assert_eq!(Samples::default().summary(), Summary::default());
        let mut s = Samples::default();
        s.record(Duration::from_secs(1_000_000));
        assert_eq!(s.summary().max, f64::from(u32::MAX) / 1000.0);
        s.record(Duration::from_micros(1500));
        assert_eq!(s.summary().p50, 1.5);
    }

    #[test]
    fn tallies_merge() {
        let mut a = Tally {
            phones: 2,
            ..Tally::default()
        };
        a.answered("{mac}.txt", Duration::from_millis(3), 10);
        a.file_ok("{mac}.txt");
        a.error(Some("46xxsettings.txt"), ErrorKind::Status(404));
        let mut b = Tally {
            phones: 1,
            ..Tally::default()
        };
        b.answered("{mac}.txt", Duration::from_millis(5), 12);
        b.error(None, ErrorKind::Refused);
        b.error(Some("46xxsettings.txt"), ErrorKind::Status(404));
        a.merge(b);
        assert_eq!(a.phones, 3);
        assert_eq!(a.requests, 2);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.errors[&ErrorKind::Status(404)], 2);
        let names: Vec<_> = a.files.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["{mac}.txt", "46xxsettings.txt"]);
        let f = &a.files[0].1;
        assert_eq!((f.ok, f.bytes, f.latency.len()), (1, 22, 2));
        assert_eq!(a.files[1].1.errors, 2);
        assert_eq!(ErrorKind::Status(404).name(), "status_404");
    }
}
