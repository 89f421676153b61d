//! A password the operator chooses for a file the command writes (a PKCS#12 export), never on
//! the command line, where `ps` and the shell's history would show it: the first line of
//! `--password-file FILE`, or else, on a terminal, typed twice without echo (as `openssl pkcs12
//! -export` and `ssh-keygen` ask). Without either there is nobody to ask, and the command says
//! how to give one. No environment variable: a child process inherits it, and it stays readable
//! in `/proc` for the life of the process.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

use super::UsageError;
use crate::pki::check_pkcs12_password;

/// The password for `what` (as in "the PKCS#12 file"): from `file`, else asked on the terminal.
pub fn new_password(file: Option<&Path>, what: &str) -> Result<String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the password file {}", f.display()))?;
        let line = text.lines().next().unwrap_or("").to_string();
        check_pkcs12_password(&line).map_err(|e| anyhow!("{}: {e}", f.display()))?;
        return Ok(line);
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "{what} needs a password: give --password-file FILE (its first line is the \
             password), or run on a terminal to type it; nothing was done"
        ))
        .into());
    }
    // Three tries, as `sudo` gives.
    for _ in 0..3 {
        let first = ask(&format!("Password for {what}: "))?;
        if let Err(e) = check_pkcs12_password(&first) {
            eprintln!("{e}");
            continue;
        }
        if ask("The same again: ")? == first {
            return Ok(first);
        }
        eprintln!("the two differ; once more");
    }
    bail!("no usable password after three tries; nothing was done")
}

/// One line typed on the terminal after `prompt`, with echo off (restored afterwards, also on
/// error). The echo goes off before the prompt shows, so nothing typed after it is echoed, and
/// nothing typed ahead is discarded.
pub(super) fn ask(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn the echo off")?;
    let read = (|| {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map(|n| (n, line))
    })();
    tcsetattr(&stdin, SetArg::TCSANOW, &saved).context("cannot turn the echo back on")?;
    let (n, line) = read?;
    if n == 0 {
        bail!("nothing typed (end of input)");
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
