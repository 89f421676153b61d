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
    /// Last successful use (Unix seconds), 0 when never used; at most a minute behind the
    /// last use (`Store::touch_token` writes it at most once a minute).
    #[serde(default)]
    pub last_used: i64,
    /// From this Unix time on the token is refused; `None`: it never expires. Records stored
    /// before tokens could expire have no such field and read as `None`, so they keep working.
    #[serde(default)]
    pub expires: Option<i64>,
}

impl ApiToken {
    /// Whether the token is past its expiry at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|t| now >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as edgeprov stored it before tokens could expire still loads, never expires,
    /// and keeps its other fields.
    #[test]
    fn a_token_stored_without_an_expiry_loads_and_never_expires() {
        let old = br#"{"id":"0a1b2c3d","user":"olivia","role":"operator","sites":["hq"],
            "hash":"ab","created":1700000000,"created_by":"admin","last_used":1700000100}"#;
        let t: ApiToken = serde_json::from_slice(old).unwrap();
        assert_eq!(t.expires, None);
        assert_eq!((t.user.as_str(), t.last_used), ("olivia", 1_700_000_100));
        assert!(!t.expired(i64::MAX));
    }

    #[test]
    fn a_token_expires_at_its_time() {
        let t = ApiToken {
            id: "0a1b2c3d".into(),
            user: "olivia".into(),
            role: Role::Operator,
            sites: BTreeSet::new(),
            hash: String::new(),
            created: 0,
            created_by: BOX_ADMIN.into(),
            last_used: 0,
            expires: Some(100),
        };
        assert!(!t.expired(99));
        assert!(t.expired(100));
    }
}
