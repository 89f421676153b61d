//! Progress bars on standard error for long operations (uploads, downloads, restores, jobs).
//! Drawn only when standard error is a terminal, at most ten times a second, so scripts and
//! logs see nothing but the final result.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WIDTH: usize = 30;
const EVERY: Duration = Duration::from_millis(100);

/// `[#########---------------------]` for a fraction of 0 to 1.
pub fn bar(fraction: f64) -> String {
    let filled = (fraction.clamp(0.0, 1.0) * WIDTH as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

/// A byte count against a total, drawn as `label [####----]  45%  12.3/27.0 MB`.
pub struct Progress {
    label: String,
    total: AtomicU64,
    done: AtomicU64,
    tty: bool,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Progress {
        Progress {
            label: label.to_string(),
            total: AtomicU64::new(total),
            done: AtomicU64::new(0),
            tty: std::io::stderr().is_terminal(),
            last: Mutex::new(None),
        }
    }

    /// Sets the total once it is known (a download's length).
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.draw(false);
    }

    pub fn set(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.draw(false);
    }

    /// Draws the final state and ends the line.
    pub fn finish(&self) {
        self.draw(true);
        if self.tty {
            eprintln!();
        }
    }

    /// The text of the bar as it stands.
    pub fn line(&self) -> String {
        let (done, total) = (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        let fraction = if total == 0 {
            0.0
        } else {
            done as f64 / total as f64
        };
        format!(
            "{} {} {:3.0}%  {:.1}/{:.1} MB",
            self.label,
            bar(fraction),
            fraction.min(1.0) * 100.0,
            done as f64 / 1e6,
            total as f64 / 1e6
        )
    }

    fn draw(&self, force: bool) {
        if !self.tty {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if !force && last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let mut err = std::io::stderr();
        let _ = write!(err, "\r\x1b[K{}", self.line());
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_fraction_and_sizes() {
        let p = Progress::new("upload", 4_000_000);
        p.add(1_000_000);
        assert_eq!(
            p.line(),
            format!(
                "upload [{}{}]  25%  1.0/4.0 MB",
                "#".repeat(8),
                "-".repeat(22)
            )
        );
        p.set(5_000_000);
        assert!(p.line().contains("100%"), "{}", p.line());
        assert_eq!(
            Progress::new("x", 0).line(),
            format!("x {}   0%  0.0/0.0 MB", bar(0.0))
        );
    }
}
