//! The values of secret parameters named on the command line (`param set --secret`, `device
//! add --secret`, `job create set-param --secret --set`). `NAME=VALUE` puts the value where
//! `ps`, the shell's history and sudo's log show it; `NAME` alone leaves it off the command
//! line: asked on the terminal without echo, or else read from standard input, one line for
//! each such NAME in the order given, as `gh secret set NAME < file` reads its value. A script
//! pipes the values in (`printf '%s\n' "$PW" | edgeprov param set --secret NAME`), an installer
//! types them.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Result, anyhow};

use super::UsageError;
use super::new_password::ask;

/// `items` of `flag` (`NAME=VALUE` or `NAME`) as names and values, the missing values read as
/// the module says; `what` names where they go ("layer site:hq") in the prompt.
pub fn secret_values(flag: &str, items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name, value.to_string()),
            None => (item.as_str(), secret_value(flag, item, what)?),
        };
        if name.is_empty() {
            return Err(UsageError(format!("{flag} {item:?}: expected NAME or NAME=VALUE")).into());
        }
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// The value of secret `name` given alone to `flag`: typed without echo on a terminal, else the
/// next line of standard input (its line end dropped). Standard input's buffer is shared by
/// every lock of it, so each call reads on where the last one stopped. An empty value is
/// refused: an empty line or an early end is a script's mistake, never a password.
pub fn secret_value(flag: &str, name: &str, what: &str) -> Result<String> {
    let value = secret_line(&format!("Value of secret {name} for {what}: "))
        .map_err(|e| anyhow!("{flag} {name}: {e}"))?
        .ok_or_else(|| {
            anyhow!(
                "{flag} {name}: no value on standard input (one line for each {flag} NAME given \
                 without =VALUE); nothing was changed"
            )
        })?;
    if value.is_empty() {
        return Err(anyhow!(
            "{flag} {name}: the value read is empty; nothing was changed"
        ));
    }
    Ok(value)
}

/// One secret kept off the command line: typed without echo on a terminal after `prompt`,
/// else the next line of standard input (its line end dropped); `None` when standard input
/// has already ended.
pub fn secret_line(prompt: &str) -> Result<Option<String>> {
    if std::io::stdin().is_terminal() {
        return ask(prompt).map(Some);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| anyhow!("cannot read standard input: {e}"))?;
    Ok((!line.is_empty()).then(|| line.trim_end_matches(['\n', '\r']).to_string()))
}
