//! The values of `--secret` items (`param set`, `device add`). `--secret NAME=VALUE` puts the
//! value where `ps`, the shell's history and a sudo log show it; `--secret NAME` leaves it off
//! the command line: asked on the terminal without echo, or else read from standard input, one
//! line per such NAME in the order given, as `gh secret set NAME < file` reads its value. A
//! script pipes the values in (`printf '%s\n' "$PW" | edgeprov param set --secret NAME`), an
//! installer types them.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};

use anyhow::{Result, anyhow};

use super::UsageError;
use super::new_password::ask;

/// `items` (`NAME=VALUE` or `NAME`) as names and values, the missing values read as the module
/// says; `what` names where they go ("layer site:hq", "device 001122aabbcc") in the prompt.
pub fn secret_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let terminal = std::io::stdin().is_terminal();
    // Locked only when read from: `ask` takes the terminal's lock itself.
    let mut lines = (!terminal).then(|| std::io::stdin().lock().lines());
    for item in items {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name, value.to_string()),
            None if terminal => (
                item.as_str(),
                ask(&format!("Value of secret {item} for {what}: "))?,
            ),
            None => {
                let line = lines
                    .as_mut()
                    .and_then(Iterator::next)
                    .transpose()
                    .map_err(|e| anyhow!("--secret {item}: cannot read standard input: {e}"))?
                    .ok_or_else(|| {
                        anyhow!(
                            "--secret {item}: no value on standard input (one line for each \
                             --secret NAME given without =VALUE); nothing was changed"
                        )
                    })?;
                (item.as_str(), line.trim_end_matches('\r').to_string())
            }
        };
        if name.is_empty() {
            return Err(
                UsageError(format!("--secret {item:?}: expected NAME or NAME=VALUE")).into(),
            );
        }
        if value.is_empty() && !item.contains('=') {
            return Err(anyhow!(
                "--secret {name}: the value read is empty; nothing was changed"
            ));
        }
        out.insert(name.to_string(), value);
    }
    Ok(out)
}
