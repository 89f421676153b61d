//! `/api/v1/tokens`: API tokens for people and scripts. A new token's secret is in the creating
//! response only; the store keeps its SHA-256.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::with_change;
use super::{AdminState, ApiError, Principal, blocking, parse_json};
use crate::model::{ApiToken, Role, now_unix};

/// A token as listed: everything but its hash.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub user: String,
    pub role: Role,
    pub sites: BTreeSet<String>,
    pub created: i64,
    pub created_by: String,
    /// Unix time of the last successful use, 0 for none; to the minute: a use less than a
    /// minute after the one recorded is not written (see `Store::touch_token`).
    pub last_used: i64,
    /// Unix time from which the token is refused; `null`: never.
    pub expires: Option<i64>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            user: t.user,
            role: t.role,
            sites: t.sites,
            created: t.created,
            created_by: t.created_by,
            last_used: t.last_used,
            expires: t.expires,
        }
    }
}

/// The answer to a creation: the only time the secret is shown.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewTokenView {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    user: String,
    role: Role,
    #[serde(default)]
    sites: BTreeSet<String>,
    /// Unix time from which the token is refused. None by default: a token made without it
    /// works until revoked, as every token did before tokens could expire.
    #[serde(default)]
    expires: Option<i64>,
}

impl NewToken {
    fn validate(&self, now: i64) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::BadRequest(m));
        if let Some(t) = self.expires.filter(|&t| t <= now) {
            return bad(format!(
                "expires: {t} is not in the future (now is {now}); a token that never works is \
                 not worth making"
            ));
        }
        if self.user.is_empty()
            || self.user.len() > 64
            || !self.user.chars().all(|c| c.is_ascii_graphic())
        {
            return bad("user: 1 to 64 printable characters, no spaces".into());
        }
        // The box's own token acts as this name: a stored token by it would share its audit
        // entries and, for jobs, its rights over every site.
        if self.user.eq_ignore_ascii_case(crate::model::BOX_ADMIN) {
            return bad(format!(
                "user: {:?} is the box's own administrator (the token file); choose another name",
                self.user
            ));
        }
        match self.role {
            Role::Operator if self.sites.is_empty() => {
                bad("sites: an operator needs at least one site".into())
            }
            Role::Administrator if !self.sites.is_empty() => {
                bad("sites: an administrator has every site; give no sites".into())
            }
            // The rule every site a device can be in passes: a longer limit would refuse a
            // site that exists, a looser one would give an operator a site no device can be in
            // (a name copied with a space at its end), which it would then be refused in.
            _ => self.sites.iter().try_for_each(|s| match s.is_empty() {
                true => bad("sites: a site name is not empty".into()),
                false => crate::model::check_name(s).or_else(|e| bad(format!("sites: {s:?}: {e}"))),
            }),
        }
    }
}

pub async fn list(State(st): State<AdminState>) -> Result<Json<Vec<TokenView>>, ApiError> {
    let store = st.store.clone();
    let tokens = blocking(move || store.list_tokens()).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

pub async fn create(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewToken = parse_json(&body)?;
    let now = now_unix();
    new.validate(now)?;
    // An operator's site must exist, or a typo would grant a site nobody configured.
    let (store, sites) = (st.store.clone(), new.sites.clone());
    blocking(move || store.require_sites("sites", &sites)).await?;
    let secret = format!(
        "ep_{}",
        crate::phone::credentials::hex(&crate::pki::random_bytes::<32>())
    );
    let token = ApiToken {
        id: String::new(),
        user: new.user,
        role: new.role,
        sites: new.sites,
        hash: super::auth::hash(&secret),
        created: now,
        created_by: who.user,
        last_used: 0,
        expires: new.expires,
    };
    let store = st.store.clone();
    let token = blocking(move || {
        store.add_token(token, || {
            crate::phone::credentials::hex(&crate::pki::random_bytes::<4>())
        })
    })
    .await?;
    tracing::info!(id = %token.id, user = %token.user, role = token.role.as_str(), "API token created");
    let view = NewTokenView {
        token: secret,
        info: token.into(),
    };
    let summary = format!(
        "token {} for {} ({}) created",
        view.info.id,
        view.info.user,
        view.info.role.as_str()
    );
    let resp = (StatusCode::CREATED, Json(&view)).into_response();
    Ok(with_change(resp, summary, Value::Null, &view.info))
}

/// Revokes a token; it is refused from the next request on.
pub async fn revoke(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = st.store.clone();
    let key = id.clone();
    match blocking(move || store.revoke_token(&key)).await? {
        Some(old) => {
            tracing::info!(%id, user = %old.user, "API token revoked");
            let summary = format!("token {id} of {} revoked", old.user);
            Ok(with_change(
                StatusCode::NO_CONTENT.into_response(),
                summary,
                TokenView::from(old),
                Value::Null,
            ))
        }
        None => Err(ApiError::NotFound(format!("token {id} not found"))),
    }
}
