//! `edgeprov token create|list|revoke`: API tokens. A new token is printed once; only its hash
//! is kept.

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::client::{ApiClient, encode};
use super::{Output, UsageError, table};
use crate::admin::{NewTokenView, TokenView};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Administrator,
    Operator,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it (the only time it is shown).
    #[command(
        after_help = "Examples:\n  edgeprov token create --role operator --site hq --site branch --user olivia --expires +90d\n  edgeprov token create --role administrator --user inventory-sync --expires 2027-01-01T00:00:00Z\n\nBackups (edgeprov backup, GET /backup) take only the box's own admin.token, which no\ncreated token replaces: a backup script runs on the box as the daemon's user, or is given\na copy of admin.token (--token-file)."
    )]
    Create {
        /// administrator (everything) or operator (only its --site sites).
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A site the operator may manage (repeat for several).
        #[arg(long = "site", value_name = "SITE")]
        sites: Vec<String>,
        /// Who the token is for, a person or a script: the audit log's "who", and whose sites
        /// the user's jobs may reach. Required: named after the role by default, separate
        /// operators shared one name in the log and, for jobs, each other's sites.
        #[arg(long)]
        user: String,
        /// When the token stops working: RFC 3339 (2027-01-01T00:00:00Z), Unix seconds, or
        /// +DURATION from now (+90d, +12h). Default: never (until revoked).
        #[arg(long, value_name = "TIME")]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by its id (asks first; --yes does not).
    Revoke {
        id: String,
        #[command(flatten)]
        confirm: super::confirm::Confirm,
    },
}

/// `--expires TEXT` as Unix seconds. A time not after `now` is refused here, quoting it as
/// given: the API's refusal quotes the Unix seconds it was sent, which an administrator who
/// typed 2024-01-01T00:00:00Z does not recognise.
fn expiry(text: &str, now: i64) -> Result<i64> {
    let t = super::when::parse_time("--expires", text, now)?;
    if t <= now {
        return Err(UsageError(format!(
            "--expires {text:?} ({}) is not in the future (now is {}): a token that never works \
             is not worth making",
            super::time_text(t),
            super::time_text(now)
        ))
        .into());
    }
    Ok(t)
}

pub async fn run(cmd: TokenCmd, api: &ApiClient, out: Output) -> Result<()> {
    match cmd {
        TokenCmd::Create {
            role,
            sites,
            user,
            expires,
        } => {
            let role = match role {
                RoleArg::Administrator => "administrator",
                RoleArg::Operator => "operator",
            };
            let now = crate::model::now_unix();
            let expires = expires.map(|text| expiry(&text, now)).transpose()?;
            let body = json!({
                "user": user,
                "role": role,
                "sites": sites,
                "expires": expires,
            });
            let value = api.post("/tokens", &body).await?;
            if out.json {
                return out.print_json(&value);
            }
            let made: NewTokenView = serde_json::from_value(value)?;
            let until = made.info.expires.map_or_else(String::new, |t| {
                format!(", expires {}", super::time_text(t))
            });
            eprintln!(
                "token {} for {} ({}{until}); it is shown only now:",
                made.info.id,
                made.info.user,
                made.info.role.as_str()
            );
            println!("{}", made.token);
        }
        TokenCmd::List => {
            let value = api.get("/tokens").await?;
            if out.json {
                return out.print_json(&value);
            }
            let tokens: Vec<TokenView> = serde_json::from_value(value)?;
            let now = crate::model::now_unix();
            let rows: Vec<Vec<String>> = tokens
                .into_iter()
                .map(|t| {
                    vec![
                        t.id,
                        t.user,
                        t.role.as_str().to_string(),
                        t.sites.into_iter().collect::<Vec<_>>().join(","),
                        super::time_text(t.created),
                        if t.last_used == 0 {
                            "never".into()
                        } else {
                            super::time_text(t.last_used)
                        },
                        match t.expires {
                            None => "never".into(),
                            Some(e) if e <= now => format!("{} (expired)", super::time_text(e)),
                            Some(e) => super::time_text(e),
                        },
                    ]
                })
                .collect();
            table::print(
                &[
                    "ID",
                    "USER",
                    "ROLE",
                    "SITES",
                    "CREATED",
                    "LAST USED",
                    "EXPIRES",
                ],
                &rows,
            );
        }
        TokenCmd::Revoke { id, confirm } => {
            confirm.ask(&format!(
                "revoke token {id}: whoever uses it is refused from now on"
            ))?;
            api.delete(&format!("/tokens/{}", encode(&id))).await?;
            if out.json {
                return out.print_json(&serde_json::json!({ "revoked": id }));
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}
