//! The OpenAPI 3 document of the admin API, served at `/api/v1/openapi.json`. It is built from
//! one table of routes; a test checks the table against the router (both ways) and calls every
//! route, so a route cannot be added without being documented, or documented without existing.

use serde_json::{Map, Value, json};

/// One documented operation.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Query parameters, by name.
    pub query: &'static [&'static str],
    pub access: Access,
}

/// Who may call a route (published as `x-access` on each operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any valid token.
    Any,
    /// Administrators, and operators for the sites assigned to them (checked by the handler).
    Sites,
    /// Administrators only.
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Any => "any",
            Access::Sites => "sites",
            Access::Admin => "administrator",
        }
    }
}

impl Route {
    /// Opens the route to operators, limited to their sites.
    const fn sites(self) -> Route {
        Route {
            access: Access::Sites,
            ..self
        }
    }

    const fn any(self) -> Route {
        Route {
            access: Access::Any,
            ..self
        }
    }
}

const fn r(method: &'static str, path: &'static str, summary: &'static str) -> Route {
    Route {
        method,
        path,
        summary,
        query: &[],
        access: Access::Admin,
    }
}

const fn q(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    query: &'static [&'static str],
) -> Route {
    Route {
        method,
        path,
        summary,
        query,
        access: Access::Admin,
    }
}

pub const ROUTES: &[Route] = &[
    r("get", "/openapi.json", "This document").any(),
    r("get", "/health", "Status, version and device count").any(),
    q(
        "get",
        "/devices",
        "List devices (filters, search, sort, paging; X-Total-Count)",
        &[
            "site",
            "group",
            "model",
            "state",
            "seen_before",
            "seen_after",
            "q",
            "sort",
            "order",
            "offset",
            "limit",
        ],
    )
    .sites(),
    r("post", "/devices", "Create a device").sites(),
    q(
        "post",
        "/devices/import",
        "Import devices from CSV or JSON, all or nothing",
        &["format", "dry_run"],
    )
    .sites(),
    q(
        "get",
        "/devices/export",
        "Export the inventory as CSV or JSON (no secret values)",
        &["format", "site"],
    )
    .sites(),
    r("get", "/devices/{mac}", "One device").sites(),
    r(
        "patch",
        "/devices/{mac}",
        "Change a device (null removes a parameter)",
    )
    .sites(),
    r("delete", "/devices/{mac}", "Remove a device").sites(),
    r(
        "post",
        "/devices/{mac}/certificate",
        "Issue a client certificate for the device",
    )
    .sites(),
    r(
        "get",
        "/devices/{mac}/certificates",
        "The client certificates the box issued to the device, newest first, with revocations",
    )
    .sites(),
    r(
        "post",
        "/devices/{mac}/certificates/revoke",
        "Revoke device certificates ({serial} | {all: true} | {pem}, optional reason); refused from the next handshake on and listed in /ca.crl",
    )
    .sites(),
    r(
        "get",
        "/devices/{mac}/files/{name}",
        "The file the device gets, secret values masked",
    )
    .sites(),
    r(
        "get",
        "/devices/{mac}/effective",
        "The device's evaluated settings with their origin, secret values masked",
    )
    .sites(),
    r(
        "get",
        "/params/{layer}",
        "Parameters of a layer (global, site:NAME, group:NAME, model:NAME)",
    )
    .sites(),
    r(
        "patch",
        "/params/{layer}",
        "Set or remove parameters of a layer (setting a site's needs the site; a new model layer's name must differ from every other's by more than case)",
    )
    .sites(),
    q(
        "get",
        "/devices/{mac}/checkins",
        "The device's check-in history, newest first",
        &["limit"],
    )
    .sites(),
    r("get", "/sites", "Sites with their device counts").sites(),
    r("post", "/sites", "Create a site"),
    r("get", "/sites/{site}", "One site").sites(),
    r(
        "patch",
        "/sites/{site}",
        "Change a site's label or HTTP-credential policy",
    )
    .sites(),
    r(
        "delete",
        "/sites/{site}",
        "Delete a site without devices, with its parameters, static files and firmware policies",
    ),
    q(
        "get",
        "/groups",
        "Groups in use, with their device counts",
        &["site"],
    )
    .sites(),
    r("get", "/tokens", "API tokens (never their secrets)"),
    r(
        "post",
        "/tokens",
        "Create a token ({user, role, sites, expires: Unix time or none for never}); its \
         secret is shown once",
    ),
    r("delete", "/tokens/{id}", "Revoke a token"),
    r(
        "get",
        "/preferences",
        "Log level and retention of check-ins and audit",
    ),
    r(
        "patch",
        "/preferences",
        "Change the log level (at once) or the retention",
    ),
    q("get", "/files", "List static files", &["site"]).sites(),
    q("get", "/files/{name}", "Download a static file", &["site"]).sites(),
    q(
        "put",
        "/files/{name}",
        "Upload a static file (wins over a generated one; a site's needs the site)",
        &["site"],
    )
    .sites(),
    q("delete", "/files/{name}", "Delete a static file", &["site"]).sites(),
    r(
        "get",
        "/metrics",
        "Prometheus metrics (text format; also served at /metrics)",
    ),
    r(
        "get",
        "/backup",
        "A consistent backup (X-Backup-Passphrase encrypts it); the box's own token only, as it holds that token",
    ),
    q(
        "get",
        "/alarms",
        "Alarms (filter, search, sort; newest first by default)",
        &["severity", "kind", "q", "sort", "order"],
    ),
    r(
        "post",
        "/alarms/clear",
        "Clear one alarm ({kind, source}); audited",
    ),
    q(
        "get",
        "/audit",
        "The audit log, newest first; before=SEQ gives the page after the entry SEQ",
        &[
            "who", "source", "method", "resource", "status", "since", "until", "q", "limit",
            "before",
        ],
    ),
    r("get", "/dns/records", "DNS records managed through the API"),
    r(
        "post",
        "/dns/records",
        "Add a DNS record (answered at once); a CNAME beside other data at its name, or data \
         beside a CNAME, is refused with 409",
    ),
    r("delete", "/dns/records/{id}", "Delete a DNS record"),
    r(
        "get",
        "/certs",
        "CA, server (generated or installed), admin certificate and trusted roots, with expiry",
    ),
    r(
        "put",
        "/certs/server",
        "Install a server identity for phones ({pem} or {pkcs12, password}); applied at once",
    ),
    r(
        "post",
        "/certs/server/regenerate",
        "New server certificate from the CA (drops an installed identity); applied at once",
    ),
    r("get", "/certs/roots", "Trusted device roots besides the CA"),
    r(
        "post",
        "/certs/roots",
        "Trust CA certificates ({pem}) for client certificates; applied at once",
    ),
    r(
        "delete",
        "/certs/roots/{fingerprint}",
        "Stop trusting a root added through the API (by SHA-256)",
    ),
    r("get", "/sync", "Cloud sync status"),
    r(
        "post",
        "/sync/register",
        "Register this box with the cloud enrollment service",
    ),
    r("post", "/sync/now", "Run a sync round now"),
    q(
        "get",
        "/sync/rejected",
        "Events the cloud refused for good, set apart from the outbox (oldest first)",
        &["limit"],
    ),
    r(
        "post",
        "/sync/rejected/requeue",
        "Put the events the cloud refused back in the outbox",
    ),
    r(
        "get",
        "/firmware",
        "Firmware catalogue with cache state and policies",
    ),
    r(
        "post",
        "/firmware/releases",
        "Add a release to the catalogue",
    ),
    r(
        "delete",
        "/firmware/releases/{file}",
        "Remove a release from the catalogue",
    ),
    q(
        "put",
        "/firmware/images/{file}",
        "Upload an image (resumable by offset, hash checked)",
        &["offset"],
    ),
    r("delete", "/firmware/images/{file}", "Delete a cached image"),
    r(
        "post",
        "/firmware/prefetch",
        "Fetch every image the inventory's policies point at, as a job",
    ),
    r("get", "/firmware/jobs/{id}", "Progress of a firmware job"),
    r("post", "/firmware/scrub", "Re-verify every cached image"),
    r(
        "get",
        "/firmware/policies",
        "Firmware policies per site and model",
    ),
    r(
        "put",
        "/firmware/policies/{scope}",
        "Set the policies of a scope (global or site:NAME of a site that exists)",
    ),
    q(
        "get",
        "/dhcp/leases",
        "DHCP leases (filter by MAC, IP, state)",
        &["mac", "ip", "state"],
    ),
    r("get", "/dhcp/stats", "DHCP counters"),
    q("get", "/jobs", "Bulk jobs, newest first", &["state"]).sites(),
    r(
        "post",
        "/jobs",
        "Create a bulk job (kind, selection, at, rate)",
    )
    .sites(),
    r(
        "get",
        "/jobs/{id}",
        "A bulk job with its per-device results",
    )
    .sites(),
    r("delete", "/jobs/{id}", "Delete a job (409 while running)").sites(),
    r(
        "post",
        "/jobs/{id}/pause",
        "Pause a scheduled or running job",
    )
    .sites(),
    r("post", "/jobs/{id}/resume", "Resume a paused job").sites(),
    r("post", "/jobs/{id}/stop", "Stop a job; the rest is skipped").sites(),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .chain(route.query.iter().map(|name| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}})))
            .collect();
        let op = json!({
            "summary": route.summary,
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '.'], "_")),
            "x-access": route.access.as_str(),
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Bad request: the message names the field", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "Missing, wrong or expired bearer token"},
                "403": {"description": "The token's role or sites do not allow this"},
                "429": {"description": "Too many wrong tokens from this address (Retry-After)"},
                "404": {"description": "Not found"},
            },
        });
        paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(route.method.to_string(), op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "edgeprov admin API", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}},
        },
        "paths": paths,
    })
}

pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}
