//! The `site` filter of a listing (`GET /devices`, `/devices/export`, `/groups`, `/files`) names a site
//! that exists, as a job's `selection.site` must: a typo (`stie01`) was answered with an empty
//! list, as if the site had no phones, and an operator's script took that for the truth. A
//! site that exists without devices still lists none.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;

use super::{AdminState, ApiError, Principal, blocking};

/// The query's `site`; its other fields are the route's own to read and refuse.
#[derive(Debug, Deserialize)]
pub struct SiteFilter {
    site: Option<String>,
}

/// Refuses a request whose `site` names no site, with the store's message (the field, the
/// name, and the existing site it most likely meant). A site the caller does not have is left
/// to the route, which refuses it with 403 whether it exists or not: an operator must not
/// learn from the answer which other sites exist. A query the route cannot read is also left
/// to it, so that its refusal names the field.
pub async fn must_exist(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<SiteFilter>, QueryRejection>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // An empty `site` lists the devices in no site: no name to check.
    if let Ok(Query(SiteFilter { site: Some(site) })) = query
        && !site.is_empty()
        && who.allows(&site)
    {
        let store = st.store.clone();
        blocking(move || store.require_sites("site", [&site])).await?;
    }
    Ok(next.run(req).await)
}
