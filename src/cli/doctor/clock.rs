//! Whether the kernel keeps its clock synchronised. Certificates are judged by it: the ones
//! edgeprov issues start at the box's "now", so a box that runs fast hands out certificates that
//! phones with the right time take as not yet valid, and one that runs slow refuses phones'
//! certificates that have just been made. Read from the kernel (adjtimex(2), asking no change)
//! rather than from `timedatectl`: it is what every NTP client (systemd-timesyncd, chrony, ntpd)
//! tells, needs no D-Bus and no network, and works in a container.

use super::{Check, Level, check};

/// The kernel's view of its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelClock {
    /// `STA_UNSYNC`: no NTP client has disciplined the clock, or it stopped doing so long
    /// enough ago that the kernel gave up on it.
    pub unsync: bool,
    /// The kernel's bound on the clock's error, in microseconds: set by the NTP client at each
    /// update, grown by 500 µs a second between them.
    pub max_error_us: i64,
}

/// The error past which a clock counts as unsynchronised although the flag is not set yet: the
/// kernel's own limit (`NTP_PHASE_LIMIT`, 16 s) before it sets `STA_UNSYNC` itself.
const MAX_ERROR_US: i64 = 16_000_000;

const FIX: &str = "enable time synchronisation: systemd-timesyncd (`timedatectl set-ntp true`) \
                   or chrony, with an NTP server the box can reach (the site's router, or the \
                   one the DHCP server names in option 42)";

/// Reads the kernel's clock state; changes nothing.
pub fn kernel_clock() -> std::io::Result<KernelClock> {
    // SAFETY: `timex` is plain data, for which all zeroes is a valid value; `modes` 0 asks the
    // kernel only to fill it in, so the call reads and sets nothing.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed `timex` for the duration of the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(KernelClock {
        unsync: tx.status & libc::STA_UNSYNC != 0 || state == libc::TIME_ERROR,
        max_error_us: tx.maxerror,
    })
}

/// The check for a reading of the kernel's clock: a warning, not a failure, when it is not
/// synchronised (the box works, but its certificates and the phones' handshakes depend on the
/// time being right), saying what to do.
pub fn judge(reading: std::io::Result<KernelClock>) -> Check {
    match reading {
        Err(e) => check(
            Level::Warn,
            "clock",
            format!("cannot read the kernel's clock state (adjtimex: {e})"),
            format!("check that the box's time is kept right; {FIX}"),
        ),
        Ok(k) if k.unsync => check(
            Level::Warn,
            "clock",
            "the clock is not synchronised (the kernel's STA_UNSYNC flag is set): phones may \
             refuse this box's certificates, and it theirs, once the time drifts",
            FIX,
        ),
        Ok(k) if k.max_error_us >= MAX_ERROR_US => check(
            Level::Warn,
            "clock",
            format!(
                "the clock may be off by up to {} s: its time source has not answered for a \
                 long time",
                k.max_error_us / 1_000_000
            ),
            FIX,
        ),
        Ok(k) => check(
            Level::Ok,
            "clock",
            format!(
                "the clock is synchronised (error at most {} ms)",
                k.max_error_us / 1_000
            ),
            "",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(unsync: bool, max_error_us: i64) -> std::io::Result<KernelClock> {
        Ok(KernelClock {
            unsync,
            max_error_us,
        })
    }

    #[test]
    fn a_synchronised_clock_is_ok_and_says_its_error() {
        let c = judge(reading(false, 12_500));
        assert_eq!(c.level, Level::Ok);
        assert_eq!(c.area, "clock");
        assert!(c.message.contains("12 ms"), "{}", c.message);
    }

    #[test]
    fn an_unsynchronised_clock_warns_and_says_what_to_do() {
        let c = judge(reading(true, 16_000_000));
        assert_eq!(c.level, Level::Warn);
        assert!(c.message.contains("not synchronised"), "{}", c.message);
        assert!(c.fix.contains("timedatectl set-ntp true"), "{}", c.fix);
        assert!(c.fix.contains("chrony"), "{}", c.fix);
        assert!(c.fix.contains("option 42"), "{}", c.fix);
    }

    #[test]
    fn an_error_grown_past_the_kernels_limit_warns_before_the_flag_is_set() {
        assert_eq!(judge(reading(false, 15_999_999)).level, Level::Ok);
        let c = judge(reading(false, 20_000_000));
        assert_eq!(c.level, Level::Warn);
        assert!(c.message.contains("20 s"), "{}", c.message);
    }

    #[test]
    fn a_clock_that_cannot_be_read_warns_naming_the_call() {
        let c = judge(Err(std::io::Error::from_raw_os_error(libc::EPERM)));
        assert_eq!(c.level, Level::Warn);
        assert!(c.message.contains("adjtimex"), "{}", c.message);
    }
}
