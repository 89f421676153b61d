//! Admin API tokens: who may call the API, with which role and over which sites. The secret is
//! kept only as its SHA-256, so a stolen database or backup does not hand out working tokens.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// What a token may do. An administrator may do everything; an operator sees and changes only
/// the devices, parameters and files of the sites assigned to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Administrator,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Operator => "operator",
        }
    }
}

/// The user name of the box's own administrator token, the file made on first start. It is not
/// a stored token, so whatever reads the rights of a user from the stored tokens must know it.
pub const BOX_ADMIN: &str = "admin";

/// A stored token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Short public handle, used to list and revoke.
    pub id: String,
    /// The person or system the token was made for; the audit log's "who".
    pub user: String,
    pub role: Role,
    /// The operator's sites (empty for an administrator).
    #[serde(default)]
    pub sites: BTreeSet<String>,
    /// Hex SHA-256 of the secret token.
    pub hash: String,
    pub created: i64,
    pub created_by: String,
    /// Last successful use (seconds), 0 when never used.
    #[serde(default)]
    pub last_used: i64,
}
