//! Pull: fetch changes after the stored cursor, check the whole page (pure), then apply it and
//! the new cursor in one store transaction. A page that fails any check is rejected whole:
//! nothing of it is applied, an alarm is raised, and the previous state is kept. A firmware
//! release that cannot be read or fails its checks is the exception: it is refused alone (see
//! [`firmware_item`]), so that one bad release does not hold back every device and site.

use std::collections::{BTreeMap, HashSet};

use crate::firmware::cloud::Refused;
use crate::firmware::{PolicyError, policy_model};
use crate::model::{
    CloudDevice, DeviceState, MAX_NAME, MAX_TEXT, MAX_VALUE, Mac, Site, SiteProfile, check_field,
    clip, validate_param,
};
use crate::store::{CLOUD_FIRMWARE, CLOUD_REFUSED, CLOUD_UNREAD, PullUpdate};

use super::client::CloudClient;
use super::page_items::{self, MAX_PAGE_ITEMS};
use super::protocol::{
    ChangesPage, FirmwarePolicy, FirmwareRelease, Lifecycle, MAX_ITEMS, PATH_CHANGES, VERSION,
};
use super::release_item::{self, Unread};
use super::{QUOTED, SyncError};

/// Longest cursor accepted (it is stored and echoed back).
const MAX_CURSOR: usize = 512;
/// Longest provisioning URL accepted: as long as a parameter's value, which is where a URL
/// a phone is given ends up.
const MAX_URL: usize = MAX_VALUE;
/// Largest root CA bundle accepted: room for a few dozen certificates, and a bound on what a
/// page can make the box store per site.
const MAX_ROOT_CA: usize = 64 * 1024;

/// Why a page was rejected; names the item at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("protocol version {0}, this box speaks {VERSION}")]
    Version(u32),
    #[error("page continues from cursor {got:?}, expected {expected:?} (out of order or replayed)")]
    Cursor { expected: String, got: String },
    #[error("next_cursor is empty or longer than {MAX_CURSOR} bytes")]
    NextCursor,
    #[error("more is true but next_cursor is the page's own cursor: the page does not advance")]
    Stuck,
    #[error(
        "next_cursor {0} was pulled from before in this round: the cloud's cursors go round in \
         a cycle"
    )]
    Cycle(String),
    #[error("{0} too many items in one page")]
    TooMany(&'static str),
    #[error("{0}")]
    Item(String),
}

fn item(what: String) -> PageError {
    PageError::Item(what)
}

/// A value from the page as a message quotes it: in quotes, cut to [`QUOTED`] characters.
fn quoted(value: &str) -> String {
    format!("{:?}", clip(value, QUOTED))
}

/// A name (site, group, model, firmware version, policy) under the admin API's rule for names
/// ([`crate::model::check_name`]), so a name the cloud gives can always be given a parameter
/// layer and exported and imported again.
pub(super) fn check_name(field: &str, value: &str) -> Result<(), PageError> {
    let shown = || value.chars().take(MAX_NAME + 1).collect::<String>();
    crate::model::check_name(value).map_err(|e| item(format!("{field} {:?}: {e}", shown())))
}

/// Checks a page and converts it to what the store applies. Pure.
pub fn validate(page: &ChangesPage, expected_cursor: &str) -> Result<PullUpdate, PageError> {
    if page.version != VERSION {
        return Err(PageError::Version(page.version));
    }
    if page.cursor != expected_cursor {
        return Err(PageError::Cursor {
            expected: clip(expected_cursor, QUOTED),
            got: clip(&page.cursor, QUOTED),
        });
    }
    if page.next_cursor.is_empty() || page.next_cursor.len() > MAX_CURSOR {
        return Err(PageError::NextCursor);
    }
    // `more` asks for the next page at once: from the same cursor, that would be this page
    // again, fetched and applied as fast as the cloud answers, with no pause.
    if page.more && page.next_cursor == page.cursor {
        return Err(PageError::Stuck);
    }
    // A page read from the cloud is bounded as it is read; this holds for any other page.
    for (name, n) in [
        ("devices:", page.devices.len()),
        ("sites:", page.sites.len()),
        ("firmware:", page.firmware.len()),
        ("policies:", page.policies.len()),
        ("lockouts:", page.lockouts.len()),
    ] {
        if n > MAX_ITEMS {
            return Err(PageError::TooMany(name));
        }
    }
    let mut update = PullUpdate {
        from_cursor: page.cursor.clone(),
        next_cursor: page.next_cursor.clone(),
        ..PullUpdate::default()
    };
    // A device may appear more than once (several changes in one page): applied in order.
    for d in &page.devices {
        let mac =
            Mac::parse(&d.mac).map_err(|e| item(format!("device {}: {e}", quoted(&d.mac))))?;
        for (field, v) in [
            ("site", &d.site),
            ("phone_group", &d.phone_group),
            ("model", &d.model),
        ] {
            check_name(&format!("device {mac} {field}"), v)?;
        }
        // Free text, as the admin API takes a device's serial.
        check_field(&d.serial, MAX_TEXT)
            .map_err(|e| item(format!("device {mac} serial {}: {e}", quoted(&d.serial))))?;
        let state = lifecycle(d.state);
        if matches!(d.state, Lifecycle::Associated | Lifecycle::Activated) && d.site.is_empty() {
            return Err(item(format!("device {mac} is {state:?} without a site")));
        }
        for (k, v) in &d.params {
            validate_param(k, v).map_err(|e| item(format!("device {mac}: {e}")))?;
        }
        update.devices.push(CloudDevice {
            mac,
            state,
            site: d.site.clone(),
            group: d.phone_group.clone(),
            model: d.model.clone(),
            serial: d.serial.clone(),
            params: d.params.clone(),
        });
    }
    for s in &page.sites {
        if s.name.is_empty() {
            return Err(item("a site without a name".into()));
        }
        check_name("site", &s.name)?;
        check_field(&s.label, MAX_TEXT).map_err(|e| item(format!("site {} label: {e}", s.name)))?;
        check_name(
            &format!("site {} phone_group", s.name),
            &s.profile.phone_group,
        )?;
        check_url(&s.profile.provisioning_url)
            .map_err(|e| item(format!("site {} provisioning_url: {e}", s.name)))?;
        check_root_ca(&s.profile.root_ca)
            .map_err(|e| item(format!("site {} root_ca: {e}", s.name)))?;
        update.sites.push(Site {
            name: s.name.clone(),
            label: s.label.clone(),
            allow_http_auth: false,
            profile: Some(SiteProfile {
                provisioning_url: s.profile.provisioning_url.clone(),
                phone_group: s.profile.phone_group.clone(),
                root_ca: s.profile.root_ca.clone(),
            }),
        });
    }
    let mut unnamed = Vec::new();
    for (index, raw) in page.firmware.iter().enumerate() {
        match release_item::read(raw) {
            Ok(f) => update.cloud_data.extend(firmware_item(&f)),
            Err(unread) => match unread_item(index, unread) {
                Ok(rows) => update.cloud_data.extend(rows),
                Err(refused) => unnamed.push(refused),
            },
        }
    }
    // The refusals of the releases that named no model and version are replaced by those of
    // each page that brings releases ([`CLOUD_UNREAD`]).
    if !page.firmware.is_empty() {
        let value = (!unnamed.is_empty()).then(|| json(&unnamed));
        update.cloud_data.push((CLOUD_UNREAD.to_string(), value));
    }
    // A policy's model as the admin API takes it, stored in one case. One model given again
    // in the same spelling is a later change (applied in order, as devices are); in another
    // spelling it is two models to the cloud and one here, so which one counts is unknown.
    let mut spelled: BTreeMap<(&str, String), &str> = BTreeMap::new();
    for p in &page.policies {
        check_name("policy site", &p.site)?;
        check_name("policy", &p.policy)?;
        let in_site = |e: PolicyError| item(format!("policy of site {:?}: {e}", p.site));
        let model = policy_model(&p.model).map_err(in_site)?;
        if let Some(first) = spelled.insert((&p.site, model.clone()), &p.model)
            && first != p.model
        {
            return Err(in_site(PolicyError::SameModel(
                first.to_string(),
                p.model.clone(),
            )));
        }
        let stored = FirmwarePolicy {
            model: model.clone(),
            ..p.clone()
        };
        update
            .cloud_data
            .push((format!("policy|{}|{model}", p.site), Some(json(&stored))));
    }
    for l in &page.lockouts {
        let mac =
            Mac::parse(&l.mac).map_err(|e| item(format!("lockout {}: {e}", quoted(&l.mac))))?;
        update
            .cloud_data
            .push((format!("lockout|{mac}"), Some(json(l))));
    }
    Ok(update)
}

/// What a firmware release of a page writes: the release (or its removal) and the removal of
/// an earlier refusal of it when it passes its checks; when it does not, the removal of the
/// release of its model and version stored before (the cloud changed it, and the old image
/// must not go on being served in its stead) and a refusal naming the release and the field,
/// which the catalogue raises as a `firmware_cloud_refused` alarm until the cloud sends the
/// release again valid or withdraws it. A release the cloud withdraws needs only its model and
/// version.
///
/// Refused alone rather than rejecting the page, as the catalogue refuses a release it cannot
/// serve: the release is the cloud's mistake, and the devices and sites of the page (and of
/// every later page) would otherwise wait for the cloud to fix it.
fn firmware_item(f: &FirmwareRelease) -> Vec<Row> {
    let keys = ReleaseKeys::of(&f.model, &f.version);
    if f.removed {
        return keys.rows(None, None);
    }
    match release_problem(f) {
        Ok(()) => keys.rows(Some(json(f)), None),
        Err(why) => keys.refused(String::new(), &why),
    }
}

/// What a firmware release of a page that cannot be read as one ([`release_item`]) writes.
/// One that names a model and a version (strings) is refused as [`firmware_item`] refuses one
/// with a bad field, and its message gives its place in the page and its file. One that does
/// not names no release the cloud could send again or withdraw: its refusal (`Err`) names it
/// by its place in the page and what of its model, version and file can be read, and is kept
/// only until the cloud's next page of releases.
fn unread_item(index: usize, unread: Unread) -> Result<Vec<Row>, Refused> {
    let Unread { label, why } = unread;
    let place = format!("firmware[{index}]");
    let file = label
        .url
        .as_deref()
        .and_then(crate::firmware::cloud::file_name)
        .map(|f| format!("file {f}"));
    if let (Some(model), Some(version)) = (&label.model, &label.version) {
        let about = [Some(place), file].into_iter().flatten();
        let about = format!(" ({})", about.collect::<Vec<_>>().join(", "));
        return Ok(ReleaseKeys::of(model, version).refused(about, &why));
    }
    let shown = |field: &str, value: &str| {
        if check_name(field, value).is_ok() {
            format!("{field} {value}")
        } else {
            format!("{field} {}", quoted(value))
        }
    };
    let names: Vec<String> = [("model", &label.model), ("version", &label.version)]
        .into_iter()
        .filter_map(|(field, value)| value.as_deref().map(|v| shown(field, v)))
        .chain(file)
        .collect();
    let about = if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    };
    Err(Refused {
        source: format!("cloud {place}"),
        message: format!("the cloud's firmware release {place}{about} is not served: {why}"),
    })
}

/// A row a page writes in `cloud_data`: the key, and the value or `None` to remove it.
type Row = (String, Option<Vec<u8>>);

/// Where a release of a model and version is kept: the release under both as given when they
/// are names (else it could not be stored or served), its refusal under both, quoted when
/// they are not names, and the two as messages show them.
struct ReleaseKeys {
    model: String,
    version: String,
    release: Option<String>,
    refusal: String,
}

impl ReleaseKeys {
    fn of(model: &str, version: &str) -> ReleaseKeys {
        let names_ok = check_name("model", model).is_ok() && check_name("version", version).is_ok();
        let (model, version) = if names_ok {
            (model.to_string(), version.to_string())
        } else {
            (quoted(model), quoted(version))
        };
        ReleaseKeys {
            release: names_ok.then(|| format!("{CLOUD_FIRMWARE}{model}|{version}")),
            refusal: format!("{CLOUD_REFUSED}{model}|{version}"),
            model,
            version,
        }
    }

    /// The release's row (when it has one) set to `release`, the refusal's to `refusal`.
    fn rows(self, release: Option<Vec<u8>>, refusal: Option<Vec<u8>>) -> Vec<Row> {
        let release = self.release.map(|k| (k, release));
        release
            .into_iter()
            .chain([(self.refusal, refusal)])
            .collect()
    }

    /// The rows of a refused release: the release stored before removed, and a refusal
    /// saying `why`, after the release's name and `about` it.
    fn refused(self, about: String, why: &str) -> Vec<Row> {
        let (model, version) = (&self.model, &self.version);
        let refused = Refused {
            source: format!("cloud firmware {model} {version}"),
            message: format!(
                "the cloud's firmware release {model} {version}{about} is not served: {why}"
            ),
        };
        let refused = json(&refused);
        self.rows(None, Some(refused))
    }
}

/// Why a firmware release of a page cannot be taken, naming the field: a model and a version
/// under the admin API's rule for names, a URL of [`check_release_url`], a SHA-256 of 64 hex
/// digits.
fn release_problem(f: &FirmwareRelease) -> Result<(), String> {
    let named = |field: &str, value: &str| {
        check_name(field, value).map_err(|e| match e {
            PageError::Item(m) => m,
            other => other.to_string(),
        })
    };
    named("model", &f.model)?;
    named("version", &f.version)?;
    check_release_url(&f.url).map_err(|e| format!("url: {e}"))?;
    if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("sha256 {}: not 64 hex digits", quoted(&f.sha256)));
    }
    Ok(())
}

/// A provisioning URL phones are pointed at: an http(s) URL with a host, parsed whole (a
/// check of its start alone let a line break carry a settings statement after it).
fn check_url(url: &str) -> Result<(), String> {
    check_url_shown(url, url)
}

/// [`check_url`], quoting the URL as `shown` in its errors.
fn check_url_shown(url: &str, shown: &str) -> Result<(), String> {
    if url.len() > MAX_URL {
        return Err(format!("longer than {MAX_URL} bytes"));
    }
    if url.chars().any(char::is_control) {
        return Err(format!("{}: contains control characters", quoted(shown)));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{}: not a URL ({e})", quoted(shown)))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("{} is not http(s)", quoted(shown)));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{} names no host", quoted(shown)));
    }
    Ok(())
}

/// Where the firmware cache fetches a release from: a provisioning URL's rules, and no
/// credentials in it. A `user:password@` would be stored in the catalogue, shown by the admin
/// API and written to logs with every fetch; a cloud that needs them must not hand them out
/// in the URL.
///
/// Errors quote the URL with its query values masked ([`crate::firmware::masked_url`]): a
/// signed link holds its secret there, and the error reaches alarms and logs.
fn check_release_url(url: &str) -> Result<(), String> {
    check_url_shown(url, &crate::firmware::masked_url(url))?;
    let authority = url.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    if authority.contains('@') {
        let host = authority.rsplit_once('@').map_or("", |(_, host)| host);
        return Err(format!(
            "{} carries credentials (user@host): not allowed",
            quoted(&url.replacen(authority, &format!("…@{host}"), 1))
        ));
    }
    Ok(())
}

/// The root CA phones of a site are told to trust (empty: none): PEM certificates only, each
/// one parsed, in a bounded text without control characters other than line ends.
fn check_root_ca(pem_text: &str) -> Result<(), String> {
    if pem_text.is_empty() {
        return Ok(());
    }
    if pem_text.len() > MAX_ROOT_CA {
        return Err(format!("larger than {MAX_ROOT_CA} bytes"));
    }
    if pem_text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err("contains control characters".into());
    }
    let blocks = pem::parse_many(pem_text)
        .map_err(|e| format!("not PEM ({})", clip(&e.to_string(), QUOTED)))?;
    if blocks.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    for (i, block) in blocks.iter().enumerate() {
        let n = i + 1;
        if block.tag() != "CERTIFICATE" {
            return Err(format!(
                "PEM block {n} is {}, not a CERTIFICATE",
                quoted(block.tag())
            ));
        }
        match x509_parser::parse_x509_certificate(block.contents()) {
            Ok(([], _)) => {}
            Ok(_) => return Err(format!("certificate {n} has trailing data")),
            Err(e) => return Err(format!("certificate {n} does not parse ({e})")),
        }
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("protocol types serialize")
}

fn lifecycle(l: Lifecycle) -> DeviceState {
    match l {
        Lifecycle::Imported => DeviceState::Imported,
        Lifecycle::Claimed => DeviceState::Claimed,
        Lifecycle::Associated => DeviceState::Associated,
        Lifecycle::Activated => DeviceState::Activated,
        Lifecycle::Deactivated => DeviceState::Deactivated,
        Lifecycle::Released => DeviceState::Released,
    }
}

/// A page may not lead back to a cursor pulled from before in the same round (`pulled`, the
/// round's start included): cursors only move forward, and a cycle (A → B → A, each page
/// asking for more) would otherwise be pulled and applied, page after page, for as long as
/// the round lasts and again in the next. Pure.
pub fn check_cycle(page: &ChangesPage, pulled: &HashSet<String>) -> Result<(), PageError> {
    if page.next_cursor != page.cursor && pulled.contains(&page.next_cursor) {
        return Err(PageError::Cycle(quoted(&page.next_cursor)));
    }
    Ok(())
}

/// Fetches and applies one page; returns whether the cloud has more ready. `pulled` holds the
/// cursors this round has pulled from; this page's is added. `registration` is the generation
/// of the registration `client` was made for: the page is applied only while it is current.
pub async fn pull_page(
    client: &CloudClient,
    store: &crate::store::Store,
    limit: usize,
    registration: u64,
    pulled: &mut HashSet<String>,
) -> Result<bool, SyncError> {
    let s = store.clone();
    let cursor = super::blocking(move || s.cursor()).await?;
    pulled.insert(cursor.clone());
    let query = format!(
        "{PATH_CHANGES}?cursor={}&limit={limit}",
        percent_encoding::utf8_percent_encode(&cursor, percent_encoding::NON_ALPHANUMERIC)
    );
    let body = client.get(&query).await?;
    page_items::check(&body, MAX_PAGE_ITEMS).map_err(SyncError::Rejected)?;
    let page: ChangesPage = super::client::decode(&body).map_err(|e| match e {
        SyncError::Schema(m) => SyncError::Rejected(format!("page does not parse: {m}")),
        other => other,
    })?;
    let update = validate(&page, &cursor)
        .and_then(|u| check_cycle(&page, pulled).map(|()| u))
        .map_err(|e| SyncError::Rejected(e.to_string()))?;
    let update = PullUpdate {
        registration,
        ..update
    };
    let s = store.clone();
    super::blocking(move || s.apply_pull(&update)).await?;
    Ok(page.more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(json: &str) -> ChangesPage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_good_page_converts() {
        let p = page(
            r#"{"version":1,"cursor":"","next_cursor":"c1","devices":[
                {"mac":"00:11:22:AA:BB:CC","state":"activated","site":"hq","phone_group":"7",
                 "params":{"SIP_DOMAIN":"example.com"}}],
              "sites":[{"name":"hq","profile":{"provisioning_url":"https://box/"}}]}"#,
        );
        let u = validate(&p, "").unwrap();
        assert_eq!(u.devices[0].state, DeviceState::Activated);
        assert_eq!(u.devices[0].group, "7");
        assert_eq!(u.next_cursor, "c1");
        assert_eq!(
            u.sites[0].profile.as_ref().unwrap().provisioning_url,
            "https://box/"
        );
    }

    #[test]
    fn hostile_pages_are_rejected_whole() {
        let bad = [
            r#"{"version":2,"cursor":"","next_cursor":"c"}"#,
            r#"{"version":1,"cursor":"other","next_cursor":"c"}"#,
            r#"{"version":1,"cursor":"","next_cursor":""}"#,
            r#"{"version":1,"cursor":"","next_cursor":"c","devices":[{"mac":"nope","state":"claimed"}]}"#,
            r#"{"version":1,"cursor":"","next_cursor":"c","devices":[{"mac":"001122aabbcc","state":"activated"}]}"#,
            r#"{"version":1,"cursor":"","next_cursor":"c","devices":[{"mac":"001122aabbcc","state":"claimed","params":{"BAD NAME\n":"x"}}]}"#,
            r#"{"version":1,"cursor":"","next_cursor":"c","sites":[{"name":"hq","profile":{"provisioning_url":"javascript:x"}}]}"#,
        ];
        for b in bad {
            assert!(validate(&page(b), "").is_err(), "{b}");
        }
    }

    /// Names take the admin API's rule: a `|` in a site, group or model rejects the page,
    /// naming the field; a serial is free text there, and so here.
    #[test]
    fn names_take_the_admin_apis_rule() {
        let device = |field: &str, value: &str| {
            page(&format!(
                r#"{{"version":1,"cursor":"","next_cursor":"c","devices":[
                    {{"mac":"001122aabbcc","state":"claimed","{field}":"{value}"}}]}}"#
            ))
        };
        for field in ["site", "phone_group", "model"] {
            let e = validate(&device(field, "a|b"), "").unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "device 001122aabbcc {field} \"a|b\": no '|' (it separates the parts of stored keys)"
                )
            );
        }
        let u = validate(&device("serial", "SN|1"), "").unwrap();
        assert_eq!(u.devices[0].serial, "SN|1");
        let long = "s".repeat(crate::model::MAX_TEXT + 1);
        assert!(validate(&device("serial", &long), "").is_err());
    }

    /// However long a value the cloud sends, a rejection quotes at most [`QUOTED`] characters
    /// of it: the message becomes an alarm, the last error and an event, once per retry.
    #[test]
    fn rejections_quote_cloud_values_briefly() {
        let huge = "A".repeat(2_000_000);
        let head = r#""version":1,"cursor":"","next_cursor":"c""#;
        let pages = [
            format!(r#"{{"version":1,"cursor":"{huge}","next_cursor":"c"}}"#),
            format!(r#"{{{head},"devices":[{{"mac":"{huge}","state":"claimed"}}]}}"#),
            format!(
                r#"{{{head},"devices":[{{"mac":"001122aabbcc","state":"claimed","site":"{huge}"}}]}}"#
            ),
            format!(
                r#"{{{head},"devices":[{{"mac":"001122aabbcc","state":"claimed","params":{{"{huge} ":"x"}}}}]}}"#
            ),
            format!(
                r#"{{{head},"sites":[{{"name":"hq","profile":{{"provisioning_url":"ftp://{huge}"}}}}]}}"#
            ),
            format!(r#"{{{head},"policies":[{{"site":"hq","model":"J*{huge}","policy":"x"}}]}}"#),
            format!(r#"{{{head},"lockouts":[{{"mac":"{huge}","until":1}}]}}"#),
        ];
        for p in &pages {
            let e = validate(&page(p), "").unwrap_err().to_string();
            assert!(e.len() < 2 * QUOTED, "{} bytes: {}", e.len(), clip(&e, 100));
        }
    }

    /// A page asking for more at once from where it started is rejected (and retried with
    /// backoff); without `more`, the same cursor is the caught-up answer, which changes nothing.
    #[test]
    fn a_page_that_does_not_advance_cannot_ask_for_more() {
        let stuck = page(r#"{"version":1,"cursor":"c","next_cursor":"c","more":true}"#);
        assert_eq!(validate(&stuck, "c").unwrap_err(), PageError::Stuck);
        let idle = page(r#"{"version":1,"cursor":"c","next_cursor":"c"}"#);
        assert!(validate(&idle, "c").unwrap().changes_nothing());
        let moved = page(r#"{"version":1,"cursor":"c","next_cursor":"d","more":true}"#);
        assert!(!validate(&moved, "c").unwrap().changes_nothing());
    }

    /// A page leading back to a cursor pulled from in this round is a cycle; a cursor not
    /// seen yet, or the caught-up answer (the page's own cursor, without `more`), is not.
    #[test]
    fn a_page_leading_back_to_a_pulled_cursor_is_a_cycle() {
        let pulled: HashSet<String> = ["a".to_string(), "b".to_string()].into();
        let back = page(r#"{"version":1,"cursor":"b","next_cursor":"a","more":true}"#);
        assert_eq!(
            check_cycle(&back, &pulled).unwrap_err().to_string(),
            "next_cursor \"a\" was pulled from before in this round: the cloud's cursors go \
             round in a cycle"
        );
        let back_and_done = page(r#"{"version":1,"cursor":"b","next_cursor":"a"}"#);
        assert!(check_cycle(&back_and_done, &pulled).is_err());
        let on = page(r#"{"version":1,"cursor":"b","next_cursor":"c","more":true}"#);
        assert_eq!(check_cycle(&on, &pulled), Ok(()));
        let idle = page(r#"{"version":1,"cursor":"b","next_cursor":"b"}"#);
        assert_eq!(check_cycle(&idle, &pulled), Ok(()));
    }

    fn site(label: &str, profile: serde_json::Value) -> ChangesPage {
        let s = serde_json::json!({"version": 1, "cursor": "", "next_cursor": "c",
            "sites": [{"name": "hq", "label": label, "profile": profile}]});
        serde_json::from_value(s).unwrap()
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    /// A site's label and profile pass the checks other fields do: a label is free text
    /// without control characters, the group a name, the URL a whole http(s) URL, the root CA
    /// a bounded PEM of certificates. Anything else rejects the page whole, naming the field.
    #[test]
    fn site_labels_and_profiles_are_checked() {
        let url = "https://prov.example:8443/edge/";
        let ca = ca_pem();
        let good = site(
            "Head office, 2nd floor",
            serde_json::json!({"provisioning_url": url, "phone_group": "7",
                "root_ca": format!("{ca}{ca}")}),
        );
        let u = validate(&good, "").unwrap();
        assert_eq!(
            u.sites[0].profile.as_ref().unwrap().root_ca,
            format!("{ca}{ca}")
        );
        assert!(validate(&site("", serde_json::json!({"provisioning_url": url})), "").is_ok());

        let key_pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let bad = [
            (
                site(
                    "Head\u{1b}]0;pwned\u{7}",
                    serde_json::json!({"provisioning_url": url}),
                ),
                "site hq label: no control characters",
            ),
            (
                site("Head\noffice", serde_json::json!({"provisioning_url": url})),
                "site hq label: no control characters",
            ),
            (
                site(
                    &"x".repeat(MAX_TEXT + 1),
                    serde_json::json!({"provisioning_url": url}),
                ),
                "site hq label: at most 256 bytes",
            ),
            (
                site(
                    "",
                    serde_json::json!({"provisioning_url": "https://x/\nSET ADMIN_PASSWORD 0"}),
                ),
                "site hq provisioning_url: \"https://x/\\nSET ADMIN_PASSWORD 0\": contains control characters",
            ),
            (
                site("", serde_json::json!({"provisioning_url": "https://x/a b"})),
                "site hq provisioning_url: \"https://x/a b\": not a URL",
            ),
            (
                site("", serde_json::json!({"provisioning_url": "https:///path"})),
                "site hq provisioning_url: \"https:///path\"",
            ),
            (
                site("", serde_json::json!({"provisioning_url": "javascript:x"})),
                "site hq provisioning_url: \"javascript:x\"",
            ),
            (
                site(
                    "",
                    serde_json::json!({"provisioning_url": format!("https://x/{}", "a".repeat(MAX_URL))}),
                ),
                "site hq provisioning_url: longer than 1024 bytes",
            ),
            (
                site(
                    "",
                    serde_json::json!({"provisioning_url": url, "phone_group": "g\u{0}\n"}),
                ),
                "site hq phone_group \"g\\0\\n\": no control characters",
            ),
            (
                site(
                    "",
                    serde_json::json!({"provisioning_url": url, "root_ca": ca.repeat(3_000_000 / ca.len())}),
                ),
                "site hq root_ca: larger than 65536 bytes",
            ),
            (
                site(
                    "",
                    serde_json::json!({"provisioning_url": url, "root_ca": "not a certificate"}),
                ),
                "site hq root_ca: holds no PEM certificate",
            ),
            (
                site(
                    "",
                    serde_json::json!({"provisioning_url": url, "root_ca": key_pem}),
                ),
                "site hq root_ca: PEM block 1 is \"PRIVATE KEY\", not a CERTIFICATE",
            ),
            (
                site(
                    "",
                    serde_json::json!({"provisioning_url": url,
                        "root_ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
                ),
                "site hq root_ca: certificate 1 does not parse",
            ),
            (
                site(
                    "",
                    serde_json::json!({"provisioning_url": url, "root_ca": format!("{ca}\u{1b}[2J")}),
                ),
                "site hq root_ca: contains control characters",
            ),
        ];
        for (page, expected) in bad {
            let e = validate(&page, "").unwrap_err().to_string();
            assert!(e.starts_with(expected), "{e}\nexpected: {expected}");
        }
    }

    fn release(url: &str) -> ChangesPage {
        let p = serde_json::json!({"version": 1, "cursor": "", "next_cursor": "c",
            "firmware": [{"model": "J179", "version": "4.1.3", "url": url,
                          "sha256": "0".repeat(64)}]});
        serde_json::from_value(p).unwrap()
    }

    /// The refusal a page stores for its one firmware release, if any.
    fn refusal(page: &ChangesPage) -> Option<Refused> {
        let u = validate(page, "").unwrap();
        u.cloud_data
            .iter()
            .find(|(k, _)| k.starts_with(CLOUD_REFUSED))
            .and_then(|(_, v)| v.as_ref())
            .map(|v| serde_json::from_slice(v).unwrap())
    }

    /// A release's URL is where the firmware cache fetches from: an http(s) URL with a host,
    /// bounded, without control characters or credentials. Anything else refuses the release
    /// (the rest of the page applies), naming it and the field; credentials are not quoted
    /// back.
    #[test]
    fn firmware_release_urls_are_checked() {
        for good in [
            "https://fw.example/j179/FW_S_J179_R4_1_3.bin",
            "http://[::1]:8080/fw.bin?sig=abc",
            "https://fw.example/path/with@sign.bin",
        ] {
            let u = validate(&release(good), "").unwrap();
            assert_eq!(u.cloud_data[0].0, "firmware|J179|4.1.3", "{good}");
            assert!(u.cloud_data[0].1.is_some(), "{good}");
            assert_eq!(
                u.cloud_data[1],
                ("firmware_refused|J179|4.1.3".to_string(), None),
                "an earlier refusal goes"
            );
        }
        let long = format!("https://fw.example/{}", "a".repeat(MAX_URL));
        let bad = [
            ("", "firmware J179 4.1.3 url: \"\": not a URL"),
            (
                "fw.bin",
                "firmware J179 4.1.3 url: \"fw.bin\" is not http(s)",
            ),
            (
                "ftp://fw.example/fw.bin",
                "firmware J179 4.1.3 url: \"ftp://fw.example/fw.bin\" is not http(s)",
            ),
            (
                "file:///etc/shadow",
                "firmware J179 4.1.3 url: \"file:///etc/shadow\"",
            ),
            (
                "https:///fw.bin",
                "firmware J179 4.1.3 url: \"https:///fw.bin\"",
            ),
            (
                "https://fw.example/a\r\nHost: x",
                "firmware J179 4.1.3 url: \"https://fw.example/a\\r\\nHost: x\": contains control characters",
            ),
            (
                long.as_str(),
                "firmware J179 4.1.3 url: longer than 1024 bytes",
            ),
            (
                "https://admin:s3cret@fw.example/fw.bin",
                "firmware J179 4.1.3 url: \"https://…@fw.example/fw.bin\" carries credentials",
            ),
            (
                "ftp://fw.example/fw.bin?token=s3cret",
                "firmware J179 4.1.3 url: \"ftp://fw.example/fw.bin?token=***\" is not http(s)",
            ),
            (
                "http://token@fw.example:8080/fw.bin",
                "firmware J179 4.1.3 url: \"http://…@fw.example:8080/fw.bin\" carries credentials",
            ),
        ];
        for (url, expected) in bad {
            let r = refusal(&release(url)).unwrap_or_else(|| panic!("{url}"));
            assert_eq!(r.source, "cloud firmware J179 4.1.3");
            let expected = expected.replacen(
                "firmware J179 4.1.3 url:",
                "the cloud's firmware release J179 4.1.3 is not served: url:",
                1,
            );
            let e = r.message;
            assert!(e.starts_with(&expected), "{e}\nexpected: {expected}");
            assert!(!e.contains("s3cret") && !e.contains("token@"), "{e}");
        }
    }

    /// A release that fails its checks is refused alone: the page's devices apply, the release
    /// stored before under its model and version goes (its image is no longer the cloud's), and
    /// the refusal names the release and the field. Names that are not names are quoted.
    #[test]
    fn a_bad_release_is_refused_alone() {
        let p = page(
            r#"{"version":1,"cursor":"","next_cursor":"c","devices":[
                {"mac":"001122aabbcc","state":"claimed"}],
              "firmware":[
                {"model":"J179","version":"4","url":"u","sha256":"zz"},
                {"model":"J169","version":"5","url":"https://fw.example/a.bin","sha256":"zz"},
                {"model":"J1|9","version":"6","url":"https://fw.example/b.bin",
                 "sha256":"0000000000000000000000000000000000000000000000000000000000000000"},
                {"model":"J139","version":"7","url":"u","sha256":"zz","removed":true}]}"#,
        );
        let u = validate(&p, "").unwrap();
        assert_eq!(u.devices.len(), 1);
        let rows: Vec<(&str, Option<Refused>)> = u
            .cloud_data
            .iter()
            .map(|(k, v)| {
                let refused = v.as_ref().map(|v| serde_json::from_slice(v).unwrap());
                (k.as_str(), refused)
            })
            .collect();
        let refused = |source: &str, why: &str| Refused {
            source: source.into(),
            message: format!(
                "the cloud's firmware release {} is not served: {why}",
                &source["cloud firmware ".len()..]
            ),
        };
        assert_eq!(
            rows,
            [
                ("firmware|J179|4", None),
                (
                    "firmware_refused|J179|4",
                    Some(refused(
                        "cloud firmware J179 4",
                        "url: \"u\" is not http(s)"
                    ))
                ),
                ("firmware|J169|5", None),
                (
                    "firmware_refused|J169|5",
                    Some(refused(
                        "cloud firmware J169 5",
                        "sha256 \"zz\": not 64 hex digits"
                    ))
                ),
                (
                    "firmware_refused|\"J1|9\"|\"6\"",
                    Some(refused(
                        "cloud firmware \"J1|9\" \"6\"",
                        "model \"J1|9\": no '|' (it separates the parts of stored keys)"
                    ))
                ),
                ("firmware|J139|7", None),
                ("firmware_refused|J139|7", None),
                ("firmware_unread", None),
            ]
        );
    }

    /// A release that cannot be read as one (a field missing or of the wrong type) is refused
    /// alone too, as one with a bad value is, and its message gives its place in the page, its
    /// file and what serde said of the field. One that names no model and version is refused
    /// by its place, with what of its names can be read, in the one row of the page's
    /// nameless releases (each page that brings releases replaces it, removes it when it has
    /// no nameless one; a page without releases leaves it). The page's other items apply.
    #[test]
    fn an_unreadable_release_is_refused_alone() {
        let hash = "0".repeat(64);
        let p = page(&format!(
            r#"{{"version":1,"cursor":"","next_cursor":"c","devices":[
                {{"mac":"001122aabbcc","state":"claimed"}}],
              "firmware":[
                {{"model":"J179","version":"4","url":"https://fw.example/a.bin","sha256":"{hash}"}},
                {{"model":"J169","version":"5","url":"https://fw.example/b.bin"}},
                {{"model":"J1|9","version":"6","url":"https://fw.example/c.bin","sha256":7}},
                {{"model":"J159","url":"https://fw.example/d.bin","sha256":"{hash}"}},
                {{"model":"J 9\n","version":["x"],"url":"https://fw.example/?q"}},
                42]}}"#
        ));
        let u = validate(&p, "").unwrap();
        assert_eq!(u.devices.len(), 1);
        let rows: Vec<(&str, Option<serde_json::Value>)> = u
            .cloud_data
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    v.as_ref().map(|v| serde_json::from_slice(v).unwrap()),
                )
            })
            .collect();
        let refused = |source: &str, message: &str| {
            Some(serde_json::json!({"source": source, "message": message}))
        };
        let release = serde_json::json!({"model": "J179", "version": "4",
            "url": "https://fw.example/a.bin", "sha256": hash});
        assert_eq!(
            rows,
            [
                ("firmware|J179|4", Some(release)),
                ("firmware_refused|J179|4", None),
                ("firmware|J169|5", None),
                (
                    "firmware_refused|J169|5",
                    refused(
                        "cloud firmware J169 5",
                        "the cloud's firmware release J169 5 (firmware[1], file b.bin) is not \
                         served: missing field `sha256`"
                    )
                ),
                (
                    "firmware_refused|\"J1|9\"|\"6\"",
                    refused(
                        "cloud firmware \"J1|9\" \"6\"",
                        "the cloud's firmware release \"J1|9\" \"6\" (firmware[2], file c.bin) \
                         is not served: sha256: invalid type: integer `7`, expected a string"
                    )
                ),
                (
                    "firmware_unread",
                    Some(serde_json::json!([
                        {"source": "cloud firmware[3]",
                         "message": "the cloud's firmware release firmware[3] (model J159, file \
                                     d.bin) is not served: missing field `version`"},
                        {"source": "cloud firmware[4]",
                         "message": "the cloud's firmware release firmware[4] (model \"J 9\\n\") \
                                     is not served: version: invalid type: sequence, expected a \
                                     string"},
                        {"source": "cloud firmware[5]",
                         "message": "the cloud's firmware release firmware[5] is not served: \
                                     invalid type: integer `42`, expected struct FirmwareRelease"},
                    ]))
                ),
            ]
        );
        let none = page(r#"{"version":1,"cursor":"","next_cursor":"c","firmware":[]}"#);
        assert!(
            validate(&none, "").unwrap().cloud_data.is_empty(),
            "no releases: kept"
        );
    }

    fn policies(items: &str) -> ChangesPage {
        page(&format!(
            r#"{{"version":1,"cursor":"","next_cursor":"c","policies":[{items}]}}"#
        ))
    }

    /// Policy models are checked as the admin API checks them: a family pattern, garbage or
    /// one model in two spellings for one site rejects the page whole, naming them; what is
    /// stored is keyed by the model in its one stored case.
    #[test]
    fn policy_models_are_checked_and_stored_in_one_case() {
        let err = |items: &str| validate(&policies(items), "").unwrap_err().to_string();
        assert_eq!(
            err(r#"{"site":"hq","model":"J1*","policy":"latest"}"#),
            "policy of site \"hq\": model \"J1*\": family patterns are not supported in \
             policies; name each model (J179), or use * for every model not named"
        );
        for garbage in ["", "J 179", "J179/../x"] {
            let e = err(&format!(
                r#"{{"site":"hq","model":"{garbage}","policy":"off"}}"#
            ));
            assert!(e.contains(&format!("model {garbage:?}")), "{e}");
        }
        assert_eq!(
            err(r#"{"site":"hq","model":"J179","policy":"latest"},
                   {"site":"hq","model":"j179","policy":"off"}"#),
            "policy of site \"hq\": models \"J179\" and \"j179\" are the same model (model \
             names are not case-sensitive, nor is a Yealink model's SIP- prefix): give it one \
             policy"
        );

        // The same spelling again is a later change; another site is another policy.
        let u = validate(
            &policies(
                r#"{"site":"hq","model":"j179","policy":"latest"},
                   {"site":"hq","model":"j179","policy":"off"},
                   {"site":"lab","model":"J179","policy":"off"}"#,
            ),
            "",
        )
        .unwrap();
        let stored: Vec<(&str, serde_json::Value)> = u
            .cloud_data
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    serde_json::from_slice(v.as_deref().unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            stored,
            [
                (
                    "policy|hq|J179",
                    serde_json::json!({"site":"hq","model":"J179","policy":"latest"})
                ),
                (
                    "policy|hq|J179",
                    serde_json::json!({"site":"hq","model":"J179","policy":"off"})
                ),
                (
                    "policy|lab|J179",
                    serde_json::json!({"site":"lab","model":"J179","policy":"off"})
                ),
            ]
        );
    }
}
