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
    /// The statuses it answers when it works (200 unless it creates, accepts or deletes).
    pub ok: &'static [u16],
    /// Why an administrator-only route is not an operator's, where its subject (a device of
    /// the operator's own site) would suggest it is: said in the refusal and published as the
    /// operation's description.
    pub admin_because: Option<&'static str>,
}

/// Why obtaining a device's certificate is the administrator's.
const DEVICE_PROOF: &str = "whoever holds a certificate of a device proves that device to the \
     phone listener and is served every file the device gets, secrets included (its SIP \
     password, the site's PIN, the box-wide secrets), for as long as the certificate is valid, \
     whatever becomes of the token that obtained it";

/// Why approving a held SCEP enrolment is the administrator's.
const APPROVAL: &str = "an approval issues a certificate proving the device for the key the \
     request holds, and whoever sent that request (anyone holding the challenge, an operator \
     too) is then served every file the device gets, secrets included";

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

    /// Keeps the route the administrator's, saying why ([`Route::admin_because`]).
    const fn admin_because(self, why: &'static str) -> Route {
        Route {
            access: Access::Admin,
            admin_because: Some(why),
            ..self
        }
    }

    /// Answers these instead of 200 when it works.
    const fn answers(self, ok: &'static [u16]) -> Route {
        Route { ok, ..self }
    }
}

const fn r(method: &'static str, path: &'static str, summary: &'static str) -> Route {
    Route {
        method,
        path,
        summary,
        query: &[],
        access: Access::Admin,
        ok: &[200],
        admin_because: None,
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
        ok: &[200],
        admin_because: None,
    }
}

pub const ROUTES: &[Route] = &[
    r("get", "/openapi.json", "This document").any(),
    r(
        "get",
        "/health",
        "Status, version and device count (an operator's: its sites' devices)",
    )
    .any(),
    q(
        "get",
        "/devices",
        "List devices (filters, search, sort, paging; X-Total-Count); a `site` that names no \
         site is refused",
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
    r(
        "post",
        "/devices",
        "Create a device (state active or inactive: the cloud's lifecycle states come from \
         sync)",
    )
    .answers(&[201])
    .sites(),
    q(
        "post",
        "/devices/import",
        "Import devices from CSV or JSON, all or nothing",
        &["format", "dry_run", "create_sites"],
    )
    .sites(),
    q(
        "get",
        "/devices/export",
        "Export the inventory as CSV or JSON (no secret values); a `site` that names no site \
         is refused",
        &["format", "site"],
    )
    .sites(),
    r("get", "/devices/{mac}", "One device").sites(),
    r(
        "patch",
        "/devices/{mac}",
        "Change a device (null removes a parameter); the answer's `not_set` lists the names removed that the device did not have; a device managed here is active or inactive, not in a state of the cloud's lifecycle",
    )
    .sites(),
    r("delete", "/devices/{mac}", "Remove a device").answers(&[204]).sites(),
    r(
        "post",
        "/devices/{mac}/certificate",
        "Issue a client certificate for the device, with its private key",
    ).answers(&[201])
    .admin_because(DEVICE_PROOF),
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
    q(
        "get",
        "/scep/pending",
        "SCEP enrolments held for approval (scep.approval = \"operator\"), with their status; a `site` that names no site is refused",
        &["site"],
    )
    .sites(),
    r(
        "post",
        "/scep/pending/approve",
        "Approve every SCEP enrolment waiting in a site ({site}); each device's certificate is issued then",
    )
    .admin_because(APPROVAL),
    r(
        "post",
        "/scep/pending/{mac}/approve",
        "Approve the device's held SCEP enrolment whose key is {key_sha256} (16 to 64 hex digits of its SHA-256; 409 when the one held has another): its certificate is issued, and the phone gets it at its next poll",
    )
    .admin_because(APPROVAL),
    r(
        "post",
        "/scep/pending/{mac}/reject",
        "Reject the device's held SCEP enrolment: its polls are answered FAILURE",
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
        "Set or remove parameters of a layer (a site's layer needs the site, but for removing what it holds; a new model layer's name must differ from every other's by more than case); the answer's `not_set` lists the names removed that the layer did not hold",
    )
    .sites(),
    q(
        "get",
        "/devices/{mac}/checkins",
        "The device's check-in history, newest first",
        &["limit"],
    )
    .sites(),
    r(
        "get",
        "/devices/{mac}/uploads",
        "What the device uploaded (Poly logs and overrides): name, kind, size, received, from",
    )
    .sites(),
    r(
        "get",
        "/devices/{mac}/uploads/{name}",
        "One upload's bytes as the phone sent them (an override may hold passwords: an administrator's only, audited)",
    )
    .sites(),
    r("delete", "/devices/{mac}/uploads/{name}", "Delete one upload")
        .answers(&[204])
        .sites(),
    r("get", "/sites", "Sites with their device counts").sites(),
    r("post", "/sites", "Create a site").answers(&[201]),
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
        "Delete a site without devices, with its parameters, static files and firmware policies; every token holding it loses it",
    ).answers(&[204]),
    q(
        "get",
        "/groups",
        "Groups in use, with their device counts; a `site` that names no site is refused",
        &["site"],
    )
    .sites(),
    r("get", "/tokens", "API tokens (never their secrets)"),
    r(
        "post",
        "/tokens",
        "Create a token ({user, role, sites, expires: Unix time or none for never}); its \
         secret is shown once",
    ).answers(&[201]),
    r("delete", "/tokens/{id}", "Revoke a token").answers(&[204]),
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
    q(
        "get",
        "/files",
        "List static files; a `site` that names no site is refused",
        &["site"],
    )
    .sites(),
    q("get", "/files/{name}", "Download a static file", &["site"]).sites(),
    q(
        "put",
        "/files/{name}",
        "Upload a static file (wins over a generated one; a site's needs the site)",
        &["site"],
    ).answers(&[201])
    .sites(),
    q("delete", "/files/{name}", "Delete a static file", &["site"]).answers(&[204]).sites(),
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
        "Alarms (filter, search, sort, paging; X-Total-Count; newest first by default)",
        &["severity", "kind", "q", "sort", "order", "offset", "limit"],
    ),
    r(
        "post",
        "/alarms/clear",
        "Clear one alarm ({kind, source}); audited",
    ).answers(&[204]),
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
    ).answers(&[201]),
    r("delete", "/dns/records/{id}", "Delete a DNS record").answers(&[204]),
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
    ).answers(&[201]),
    r(
        "delete",
        "/certs/roots/{fingerprint}",
        "Stop trusting a root added through the API (by SHA-256)",
    ).answers(&[204]),
    r("get", "/sync", "Cloud sync status"),
    r(
        "post",
        "/sync/register",
        "Register this box with the cloud enrollment service",
    ).answers(&[201]),
    r("post", "/sync/now", "Run a sync round now").answers(&[202]),
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
    ).answers(&[201]),
    r(
        "delete",
        "/firmware/releases/{file}",
        "Remove a release from the catalogue",
    ).answers(&[204]),
    q(
        "put",
        "/firmware/images/{file}",
        "Upload an image (resumable by offset, hash checked; 200 when it was already cached)",
        &["offset"],
    ).answers(&[200, 201, 202]),
    r("delete", "/firmware/images/{file}", "Delete a cached image").answers(&[204]),
    r(
        "post",
        "/firmware/prefetch",
        "Fetch every image the inventory's policies point at, as a job",
    ).answers(&[202]),
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
        "DHCP leases by address (filter by MAC, IP, state; paging; X-Total-Count)",
        &["mac", "ip", "state", "offset", "limit"],
    ),
    r("get", "/dhcp/stats", "DHCP counters"),
    q("get", "/jobs", "Bulk jobs, newest first", &["state"]).sites(),
    r(
        "post",
        "/jobs",
        "Create a bulk job (kind, selection, at, rate); `selection.site` and a move's `site` \
         must exist",
    ).answers(&[201])
    .sites(),
    r(
        "get",
        "/jobs/{id}",
        "A bulk job with its per-device results",
    )
    .sites(),
    r("delete", "/jobs/{id}", "Delete a job (409 while running)").answers(&[204]).sites(),
    r(
        "post",
        "/jobs/{id}/pause",
        "Pause a scheduled or running job",
    )
    .sites(),
    r("post", "/jobs/{id}/resume", "Resume a paused job").sites(),
    r("post", "/jobs/{id}/stop", "Stop a job; the rest is skipped").sites(),
];

/// What a status means, for the document.
fn meaning(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created (an upload: complete and verified)",
        202 => "Accepted: under way (an upload: `{\"offset\"}` to continue from)",
        204 => "Done; no body",
        400 => "Bad request: the message names the field",
        401 => "Missing, wrong or expired bearer token",
        403 => "The token's role or sites do not allow this",
        404 => "Not found",
        409 => {
            "Conflicts with what is stored (exists already, in use, running); nothing was changed"
        }
        413 => "The body is too large",
        429 => "Too many wrong tokens from this address (Retry-After)",
        500 => "The store failed; nothing was changed",
        // 503, the one other status a route answers.
        _ => "The audit log cannot be written, so nothing was changed",
    }
}

/// A route's statuses: its own success statuses, those every route may answer, and, for a
/// request that may change something, a conflict, a body too large, or an audit log that
/// cannot be written (such a request is audited before it runs).
fn responses(route: &Route) -> Value {
    let changes: &[u16] = match route.method {
        "get" => &[],
        _ => &[409, 413, 503],
    };
    let mut out = Map::new();
    for &status in route
        .ok
        .iter()
        .chain(&[400, 401, 403, 404, 429, 500])
        .chain(changes)
    {
        let mut response = json!({"description": meaning(status)});
        if status >= 400 {
            response["content"] =
                json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
        }
        out.insert(status.to_string(), response);
    }
    Value::Object(out)
}

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
        let mut op = json!({
            "summary": route.summary,
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '.'], "_")),
            "x-access": route.access.as_str(),
            "parameters": params,
            "responses": responses(route),
        });
        if let Some(why) = route.admin_because {
            op["description"] = json!(format!("Administrators only: {why}."));
        }
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// A path with every `{parameter}` spelt `{}`: the README names some by example
    /// (`{global|site:NAME}`).
    fn shape(path: &str) -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The README's route table (`GET/PATCH /x/{id}?a=&b=`, `POST /jobs/{id}/pause\|resume`):
    /// every route with the query parameters it shows.
    fn readme_routes() -> BTreeMap<(String, String), BTreeSet<String>> {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("\n## Admin API\n").unwrap()..];
        let section = &section[..section[1..].find("\n## ").unwrap()];
        let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for line in section.lines() {
            let Some(cell) = line.strip_prefix("| ").and_then(|l| l.split(" | ").next()) else {
                continue;
            };
            for span in cell.split('`').skip(1).step_by(2) {
                let Some((methods, target)) = span.split_once(' ') else {
                    continue;
                };
                if !methods.starts_with(|c: char| c.is_ascii_uppercase()) {
                    continue;
                }
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let query: BTreeSet<String> = query
                    .split('&')
                    .filter_map(|kv| kv.split('=').next())
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect();
                let mut paths = vec![String::new()];
                for segment in path.split('/').skip(1) {
                    let choices: Vec<&str> = match segment.starts_with('{') {
                        true => vec!["{}"],
                        false => segment.split("\\|").collect(),
                    };
                    paths = paths
                        .iter()
                        .flat_map(|p| choices.iter().map(move |c| format!("{p}/{c}")))
                        .collect();
                }
                for method in methods.split('/') {
                    for path in &paths {
                        out.entry((method.to_lowercase(), path.clone()))
                            .or_default()
                            .extend(query.iter().cloned());
                    }
                }
            }
        }
        out
    }

    /// The README's table of routes has every route of the document and no other, and the
    /// query parameters it shows for one are those the route reads.
    #[test]
    fn the_readme_lists_every_route() {
        let readme = readme_routes();
        let documented: BTreeMap<(String, String), BTreeSet<String>> = ROUTES
            .iter()
            .map(|r| {
                let query = r.query.iter().map(|q| q.to_string()).collect();
                ((r.method.to_string(), shape(r.path)), query)
            })
            .collect();
        let missing: Vec<_> = documented
            .keys()
            .filter(|k| !readme.contains_key(*k))
            .collect();
        let extra: Vec<_> = readme
            .keys()
            .filter(|k| !documented.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "routes the README's table leaves out: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "routes in the README that do not exist: {extra:?}"
        );
        for (route, shown) in &readme {
            if !shown.is_empty() {
                assert_eq!(shown, &documented[route], "{route:?}: query parameters");
            }
        }
    }

    /// Every `METHOD /api/v1/PATH` the docs mention is a route.
    #[test]
    fn the_docs_mention_only_routes_that_exist() {
        let docs = [
            include_str!("../../README.md"),
            include_str!("../../docs/alarms.md"),
            include_str!("../../docs/certificates.md"),
            include_str!("../../docs/configuration.md"),
            include_str!("../../docs/firmware.md"),
            include_str!("../../docs/import-export.md"),
            include_str!("../../docs/jobs.md"),
            include_str!("../../docs/parameters.md"),
            include_str!("../../docs/performance.md"),
            include_str!("../../docs/sync-protocol.md"),
        ];
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_uppercase(), shape(r.path)))
            .collect();
        let mut mentioned = 0;
        let mut wrong = Vec::new();
        for doc in docs {
            for (i, _) in doc.match_indices(" /api/v1/") {
                let method = doc[..i]
                    .rsplit([' ', '`', '(', '\n'])
                    .next()
                    .unwrap_or_default();
                if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
                    continue;
                }
                let path: String = doc[i + " /api/v1".len()..]
                    .chars()
                    .take_while(|c| !matches!(c, ' ' | '`' | ')' | '?' | ',' | '\n'))
                    .collect();
                let shaped = path
                    .split('/')
                    .map(|s| match s.starts_with('{') || s.contains(':') {
                        true => "{}",
                        false => s,
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                mentioned += 1;
                if !routes.contains(&(method.to_string(), shaped)) {
                    wrong.push(format!("{method} /api/v1{path}"));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "the docs mention routes that do not exist: {wrong:?}"
        );
        assert!(mentioned > 15, "only {mentioned} mentions read");
    }

    /// Each operation lists the statuses it answers when it works, and those of a request
    /// that changes something only where one may.
    #[test]
    fn responses_are_the_route_s_own() {
        let doc = document();
        let codes = |method: &str, path: &str| -> Vec<String> {
            doc["paths"][path][method]["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert!(codes("post", "/devices").contains(&"201".to_string()));
        assert!(!codes("post", "/devices").contains(&"200".to_string()));
        assert!(codes("delete", "/devices/{mac}").contains(&"204".to_string()));
        let upload = codes("put", "/firmware/images/{file}");
        assert!(upload.contains(&"201".into()) && upload.contains(&"202".into()));
        assert!(codes("patch", "/devices/{mac}").contains(&"409".to_string()));
        assert!(!codes("get", "/devices").contains(&"409".to_string()));
    }
}
