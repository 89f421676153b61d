//! The open-file limit. Every connection is a file descriptor, and the soft limit a shell hands
//! a process is often 1,024: started from one, the daemon would fail to accept connections long
//! before `phone.max_connections`. So at start it raises its soft limit to the hard one, as
//! nginx's `worker_rlimit_nofile` and the Go runtime do, and says so when even the hard limit is
//! below what its connection limits need.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Highest soft limit set when the hard limit is unlimited: the kernel's default `nr_open`.
const CEILING: u64 = 1 << 20;

/// The open-file limit before and after `raise`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: u64,
    pub now: u64,
}

/// Raises the soft open-file limit to the hard one.
pub fn raise() -> std::io::Result<OpenFiles> {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current.unwrap_or(CEILING);
    let Some(now) = raised(limit.current, limit.maximum) else {
        return Ok(OpenFiles {
            before,
            now: before,
        });
    };
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(now),
            maximum: limit.maximum,
        },
    )?;
    Ok(OpenFiles { before, now })
}

/// The soft limit to set for the soft and hard limits given (`None` is unlimited), if it
/// should change.
fn raised(soft: Option<u64>, hard: Option<u64>) -> Option<u64> {
    let soft = soft?;
    let target = hard.unwrap_or(CEILING).min(CEILING).max(soft);
    (target > soft).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_rises_to_the_hard_one() {
        assert_eq!(raised(Some(1024), Some(524_288)), Some(524_288));
        assert_eq!(raised(Some(1024), None), Some(CEILING));
        assert_eq!(raised(Some(1024), Some(1 << 30)), Some(CEILING));
    }

    #[test]
    fn a_limit_already_high_enough_is_left_alone() {
        assert_eq!(raised(Some(65_536), Some(65_536)), None);
        assert_eq!(raised(None, None), None);
        assert_eq!(raised(Some(2 << 20), Some(4 << 20)), None);
    }
}
