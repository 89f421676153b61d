//! Asking before a change that cannot be undone (removing, deleting, revoking, restoring).
//!
//! On a terminal the command asks and goes on only on `y`/`yes`; `--yes` skips the question.
//! Without a terminal there is nobody to ask, so the command refuses unless given `--yes`
//! (exit 2, as for any usage error): a script states that it means it, as with `gh` or
//! `terraform destroy -auto-approve`, instead of deleting because its input was redirected.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use clap::Args;

use super::UsageError;

#[derive(Debug, Clone, Copy, Args)]
pub struct Confirm {
    /// Do it without asking (needed when standard input is not a terminal, as in scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

impl Confirm {
    /// Goes on when confirmed; `what` says the change, as in "remove device 001122aabbcc".
    pub fn ask(&self, what: &str) -> Result<()> {
        if self.yes {
            return Ok(());
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(UsageError(format!(
                "{what}: add --yes to do it without asking (standard input is not a terminal, \
                 so nobody can answer); nothing changed"
            ))
            .into());
        }
        eprint!("{what}? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(());
        }
        bail!("{what}: not confirmed; nothing changed")
    }
}
