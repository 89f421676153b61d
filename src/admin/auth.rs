//! Who is calling and what they may do. One middleware resolves the bearer token to a
//! [`Principal`] (the box's own administrator token file, or a token from the store), refuses
//! unknown tokens (rate-limited per address), and applies the route's access from the OpenAPI
//! table: administrator-only routes refuse operators here; site-scoped routes let the handler
//! check the sites through [`Principal::require_site`].

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::openapi::{Access, ROUTES};
use super::{AdminState, ApiError, token};
use crate::failure_limit::FailureLimiter;
use crate::model::{ApiToken, BOX_ADMIN, Mac, Role};
use crate::serve::ConnInfo;

/// The caller, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// An operator's sites; ignored for an administrator.
    pub sites: BTreeSet<String>,
    /// Whether the caller presented the box's own token (the token file), which no revocation
    /// reaches.
    pub box_token: bool,
}

/// Put into a response's extensions so the audit log can say who it was.
#[derive(Debug, Clone)]
pub struct Who(pub String);

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Administrator
    }

    /// Whether the caller may see and change things of `site`.
    pub fn allows(&self, site: &str) -> bool {
        self.is_admin() || self.sites.contains(site)
    }

    pub fn require_site(&self, site: &str) -> Result<(), ApiError> {
        if self.allows(site) {
            Ok(())
        } else if site.is_empty() {
            Err(ApiError::Forbidden(
                "only an administrator may change what belongs to no site".into(),
            ))
        } else {
            Err(ApiError::Forbidden(format!(
                "site {site} is not assigned to {}",
                self.user
            )))
        }
    }

    /// Refuses all but the box's own token: for what gives out that token itself (a backup),
    /// which a revocable token must not turn into one no revocation reaches.
    pub fn require_box_token(&self) -> Result<(), ApiError> {
        if self.box_token {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} uses an API token; this needs the box's own administrator token (the token \
                 file), which it would give out",
                self.user
            )))
        }
    }

    /// As [`Principal::require_site`] for the site device `mac` is in, without naming that
    /// site: it may be one the caller must not learn of.
    pub fn require_device_site(&self, mac: Mac, site: &str) -> Result<(), ApiError> {
        if self.allows(site) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "device {mac} is in a site not assigned to {}",
                self.user
            )))
        }
    }

    /// Refuses an operator giving a device an HTTP credential (`field` names where): the
    /// credential proves the device to the phone listener as its certificate does, so its
    /// knower is served every file the device gets, secrets included. Removing one, and
    /// `allow_http_auth`, stay the site's: neither tells anyone a credential.
    pub fn require_admin_for_credential(&self, field: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "{field}: {} is an operator; only an administrator may give a device an HTTP \
             credential: whoever knows it proves the device to the phone listener and is served \
             every file the device gets, secrets included",
            self.user
        )))
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require_admin_because(None)
    }

    /// As [`Principal::require_admin`], saying `why` when the route gives a reason: an operator
    /// refused something about a device of its own site learns what it would have given out.
    pub fn require_admin_because(&self, why: Option<&str>) -> Result<(), ApiError> {
        match (self.is_admin(), why) {
            (true, _) => Ok(()),
            (false, None) => Err(ApiError::Forbidden(format!(
                "{} is an operator; this needs an administrator",
                self.user
            ))),
            (false, Some(why)) => Err(ApiError::Forbidden(format!(
                "{} is an operator; this needs an administrator: {why}",
                self.user
            ))),
        }
    }
}

impl From<ApiToken> for Principal {
    fn from(t: ApiToken) -> Self {
        Principal {
            user: t.user,
            role: t.role,
            sites: t.sites,
            box_token: false,
        }
    }
}

/// What the guard needs besides the store: the token file's secret and the limiter.
pub struct Guard {
    pub box_token: Arc<str>,
    pub limiter: FailureLimiter,
}

/// Hex SHA-256 of a token's secret, the only form stored.
pub fn hash(token: &str) -> String {
    crate::phone::credentials::hex(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
    )
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The route's declared access, and why when it is the administrator's for a reason, found by
/// the path pattern axum matched. A route the table lacks is the administrator's.
fn access(req: &Request) -> (Access, Option<&'static str>) {
    let pattern = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().trim_start_matches("/api/v1").to_string())
        .unwrap_or_default();
    let method = req.method().as_str().to_ascii_lowercase();
    ROUTES
        .iter()
        .find(|r| r.path == pattern && r.method == method)
        .map_or((Access::Admin, None), |r| (r.access, r.admin_because))
}

pub async fn guard(State(st): State<AdminState>, mut req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<Arc<ConnInfo>>()
        .map(|c| c.peer.ip())
        .unwrap_or(std::net::Ipv6Addr::LOCALHOST.into());
    // Token expiry is a wall-clock time (that is what the token was given); the failure limit
    // is measured on the monotonic clock, which a stepped wall clock cannot stretch or end.
    let now = crate::model::now_unix();
    let mono = std::time::Instant::now();
    if let Some(blocked) = st.guard.limiter.blocked(ip, mono) {
        let mut resp = ApiError::TooManyFailures(blocked.wait).into_response();
        resp.extensions_mut().insert(Who("anonymous".into()));
        if !blocked.first {
            resp.extensions_mut().insert(super::audit::Repeated);
        }
        return resp;
    }
    let principal = match bearer(&req).map(str::to_string) {
        // No token is refused as a wrong one is, and counted alike: each refusal is a durable
        // audit entry, which a client must not be able to ask for at will.
        None => {
            st.guard.limiter.fail(ip, mono);
            None
        }
        Some(given) if token::matches(&st.guard.box_token, &given) => Some(Principal {
            user: BOX_ADMIN.into(),
            role: Role::Administrator,
            sites: BTreeSet::new(),
            box_token: true,
        }),
        Some(given) => {
            let store = st.store.clone();
            let found = tokio::task::spawn_blocking(move || {
                let t = store.token_by_hash(&hash(&given))?;
                if let Some(t) = t.as_ref().filter(|t| !t.expired(now)) {
                    store.touch_token(t, now)?;
                }
                Ok::<_, crate::store::StoreError>(t)
            })
            .await;
            match found {
                // Counted and entered as a wrong token is, but under its user and saying why:
                // only the holder of the secret learns that it expired, so this tells a guesser
                // nothing, and tells the holder what to ask for.
                Ok(Ok(Some(t))) if t.expired(now) => {
                    st.guard.limiter.fail(ip, mono);
                    let expired = ApiError::TokenExpired {
                        id: t.id.clone(),
                        at: t.expires.unwrap_or(now),
                    };
                    let summary = format!("refused: {expired}");
                    let mut resp =
                        super::audit::with_changes(expired.into_response(), summary, Value::Null);
                    resp.extensions_mut().insert(Who(t.user));
                    return resp;
                }
                Ok(Ok(Some(t))) => Some(Principal::from(t)),
                Ok(Ok(None)) => {
                    st.guard.limiter.fail(ip, mono);
                    None
                }
                Ok(Err(e)) => return ApiError::from(e).into_response(),
                Err(e) => return ApiError::Internal(e.to_string()).into_response(),
            }
        }
    };
    let Some(principal) = principal else {
        let mut resp = ApiError::Unauthorized.into_response();
        resp.extensions_mut().insert(Who("anonymous".into()));
        return resp;
    };
    let who = Who(principal.user.clone());
    let (access, why) = access(&req);
    let mut resp = match (access, principal.require_admin_because(why)) {
        (Access::Admin, Err(refused)) => refused.into_response(),
        _ => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
    };
    resp.extensions_mut().insert(who);
    resp
}
