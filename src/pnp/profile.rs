//! What a plug-and-play exchange says, as plain functions: whether a request is a phone asking
//! for its provisioning server (an RFC 6080 `ua-profile` SUBSCRIBE for the `device` profile),
//! the `200 OK` that answers it, the NOTIFY that carries the URL, and whether a response is the
//! phone's answer to that NOTIFY.
//!
//! The exchange, as RFC 6080 (with RFC 6665 for SUBSCRIBE/NOTIFY) describes it and as the
//! vendors' manuals show it on the wire (Yealink "Plug and Play (PnP)" in its auto-provisioning
//! guide; Snom "SIP Plug & Play" sample trace; AudioCodes 400HD and Planet VIP manuals):
//!
//! ```text
//! phone → 224.0.1.75:5060   SUBSCRIBE sip:MAC%3a00135E874B49@… SIP/2.0
//!                           Event: ua-profile;profile-type="device";vendor="…";model="…";version="…"
//!                           Accept: application/url      Expires: 0
//! box   → phone             SIP/2.0 200 OK   (Via, From, Call-ID, CSeq copied; To gets our tag)
//! box   → phone             NOTIFY <Contact of the SUBSCRIBE> SIP/2.0
//!                           Subscription-State: terminated;reason=timeout
//!                           Content-Type: application/url
//!                           <the provisioning URL>
//! phone → box               SIP/2.0 200 OK   (our Via branch, CSeq n NOTIFY)
//! ```
//!
//! The 200 OK follows RFC 3261 §8.2.6.2: every Via, From, Call-ID and CSeq copied, a tag added
//! to To, and the Contact RFC 6665 asks of a 2xx to SUBSCRIBE. The NOTIFY is a request in
//! the dialog the 200 made (§12.2.1.1): From is the SUBSCRIBE's To with our tag, To is its
//! From, the Request-URI its Contact, with our own Via and CSeq. The subscription ends with
//! the one NOTIFY (`terminated;reason=timeout`): phones ask with `Expires: 0` (a one-time
//! fetch in RFC 6665's terms), and it is what the vendors' own examples and PnP servers send.
//!
//! A SUBSCRIBE sent inside a dialog (a refresh: its To carries our tag) is answered in that
//! dialog when it is one of ours; otherwise [`refusal`] answers it (RFC 3261 §12.2.2).
//!
//! Other SIP (INVITE, REGISTER, OPTIONS, other events, `user` or `local-network` profiles) is
//! [`Incoming::Other`]: never answered, so that a PBX on the same network is not disturbed.

use std::net::{IpAddr, SocketAddr};

use super::message::{Message, ParseError, StartLine, param, uri_of, values};
use crate::model::Mac;

/// What the phone said about itself in the Event header (each at most [`MAX_FIELD`] chars).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Device {
    pub vendor: String,
    pub model: String,
    pub version: String,
    /// From the Request-URI's or From's user part (`MAC%3a00135E874B49`, `MAC=00304fa99948`,
    /// `001565aabbcc`); only logged.
    pub mac: Option<Mac>,
}

/// Longest vendor, model or version kept from a SUBSCRIBE: they go into logs and a file name.
const MAX_FIELD: usize = 64;

/// Most Via values a SUBSCRIBE may carry. A phone's multicast SUBSCRIBE has one (a proxy on
/// its way adds one each). The 200 gives every value back on a line of its own, and `Via: a,b,…`
/// of two-byte values came back four times the size: an answer to a spoofed source, many
/// times larger than what was sent to get it.
const MAX_VIA: usize = 8;

/// A ua-profile SUBSCRIBE, with what the answer and the NOTIFY need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub device: Device,
    pub call_id: String,
    pub cseq: u32,
    /// Every Via, in order, as sent: one a value, whether they came as headers of their own
    /// or as one header's comma-separated values.
    pub via: Vec<String>,
    pub from: String,
    pub from_tag: Option<String>,
    pub to: String,
    /// The To tag: set when the phone sends the SUBSCRIBE inside a dialog (a refresh), which
    /// must then be one of ours.
    pub to_tag: Option<String>,
    pub event: String,
    /// The Request-URI of our NOTIFY.
    pub contact: String,
}

/// Which transaction a SUBSCRIBE belongs to: a phone that did not get our 200 sends the same
/// one again (RFC 3261 §17.1.2.2), and gets the same answer rather than a second dialog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscribeKey {
    pub call_id: String,
    pub from_tag: Option<String>,
    pub cseq: u32,
}

impl Subscribe {
    pub fn key(&self) -> SubscribeKey {
        SubscribeKey {
            call_id: self.call_id.clone(),
            from_tag: self.from_tag.clone(),
            cseq: self.cseq,
        }
    }
}

/// A response to a NOTIFY: the top Via's branch, the Call-ID and the CSeq number name the
/// NOTIFY it answers (RFC 3261 §17.1.3), whichever port of the phone it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyResponse {
    pub branch: String,
    pub call_id: String,
    pub cseq: u32,
    pub code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Subscribe(Box<Subscribe>),
    NotifyResponse(NotifyResponse),
    /// Any other request or response: left alone.
    Other,
}

/// Reads one datagram. `Err` only for a message that is not well-formed SIP, or a ua-profile
/// SUBSCRIBE (or NOTIFY response) that lacks what an answer needs.
pub fn classify(bytes: &[u8]) -> Result<Incoming, ParseError> {
    let message = Message::parse(bytes)?;
    match message.start {
        StartLine::Request { method, uri } if method.eq_ignore_ascii_case("SUBSCRIBE") => {
            subscribe(&message, uri)
        }
        StartLine::Request { .. } => Ok(Incoming::Other),
        StartLine::Response { code } => response(&message, code),
    }
}

fn response(message: &Message<'_>, code: u16) -> Result<Incoming, ParseError> {
    let (cseq, method) = message.cseq()?;
    if !method.eq_ignore_ascii_case("NOTIFY") {
        return Ok(Incoming::Other);
    }
    // The top Via: the first value of the first Via header, which may carry several.
    let via = values(message.required("via", "Via")?);
    let Some(branch) = via.first().and_then(|top| param(top, "branch")) else {
        return Ok(Incoming::Other);
    };
    Ok(Incoming::NotifyResponse(NotifyResponse {
        branch: branch.to_string(),
        call_id: message.required("call-id", "Call-ID")?.to_string(),
        cseq,
        code,
    }))
}

/// Whether `event` names the ua-profile package for the device profile: RFC 6080's
/// `profile-type` parameter tells the `device` profile (the one that names the provisioning
/// server, what every PnP phone asks for) from the `user` and `local-network` ones.
fn device_profile(event: &str) -> bool {
    let package = event.split(';').next().unwrap_or_default().trim();
    package.eq_ignore_ascii_case("ua-profile")
        && param(event, "profile-type").is_some_and(|t| t.eq_ignore_ascii_case("device"))
}

/// Whether the Accept headers (if any) take `application/url`, the only body this service
/// sends. A SUBSCRIBE without Accept is taken as accepting it: every PnP phone seen asks for
/// the URL, and one that leaves the header out expects the package's usual body.
fn accepts_url<'a>(mut accept: impl Iterator<Item = &'a str>) -> bool {
    let mut any = false;
    let found = accept.any(|value| {
        any = true;
        value.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or_default().trim();
            ["application/url", "application/*", "*/*"]
                .iter()
                .any(|w| t.eq_ignore_ascii_case(w))
        })
    });
    found || !any
}

fn subscribe(message: &Message<'_>, uri: &str) -> Result<Incoming, ParseError> {
    let Some(event) = message.header("event") else {
        return Ok(Incoming::Other);
    };
    if !device_profile(event) || !accepts_url(message.headers("accept")) {
        return Ok(Incoming::Other);
    }
    let (cseq, method) = message.cseq()?;
    if !method.eq_ignore_ascii_case("SUBSCRIBE") {
        return Err(ParseError::Malformed("CSeq", format!("{cseq} {method}")));
    }
    let via: Vec<String> = message
        .headers("via")
        .flat_map(values)
        .map(str::to_string)
        .collect();
    if via.is_empty() {
        return Err(ParseError::Missing("Via"));
    }
    if via.len() > MAX_VIA {
        return Err(ParseError::Malformed(
            "Via",
            format!(
                "{} values, more than the {MAX_VIA} a SUBSCRIBE is answered with",
                via.len()
            ),
        ));
    }
    let from = message.required("from", "From")?;
    let to = message.required("to", "To")?;
    let contact = uri_of(message.required("contact", "Contact")?);
    if !contact.to_ascii_lowercase().starts_with("sip:") || contact.contains([' ', '\t']) {
        return Err(ParseError::Malformed("Contact", contact.to_string()));
    }
    let field = |name| {
        param(event, name)
            .map(|v| v.chars().take(MAX_FIELD).collect())
            .unwrap_or_default()
    };
    let device = Device {
        vendor: field("vendor"),
        model: field("model"),
        version: field("version"),
        mac: mac_in_uri(uri).or_else(|| mac_in_uri(uri_of(from))),
    };
    Ok(Incoming::Subscribe(Box::new(Subscribe {
        device,
        call_id: message.required("call-id", "Call-ID")?.to_string(),
        cseq,
        via,
        from: from.to_string(),
        from_tag: param(from, "tag").map(str::to_string),
        to: to.to_string(),
        to_tag: param(to, "tag").map(str::to_string),
        event: event.to_string(),
        contact: contact.to_string(),
    })))
}

/// The MAC in a SIP URI's user part, in the forms phones use: `MAC%3a00135E874B49` (Snom),
/// `MAC=00304fa99948` (Planet, Fanvil), `MAC:…`, or the bare twelve digits (Yealink).
fn mac_in_uri(uri: &str) -> Option<Mac> {
    let rest = uri
        .get(4..)
        .filter(|_| uri[..4].eq_ignore_ascii_case("sip:"))?;
    let user = rest.split_once('@')?.0;
    let user = percent_encoding::percent_decode_str(user)
        .decode_utf8()
        .ok()?;
    let digits = user
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("mac:") || p.eq_ignore_ascii_case("mac="))
        .map_or(&*user, |_| &user[4..]);
    Mac::parse(digits).ok()
}

/// Where our answers say we are: the address the phone reaches us at, and our port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local(pub SocketAddr);

impl Local {
    fn host_port(&self) -> String {
        match self.0.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", self.0.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.0.port()),
        }
    }
}

/// `value` (a From or To) with `;tag=tag` added unless it has a tag already.
fn tagged(value: &str, tag: &str) -> String {
    match param(value, "tag") {
        Some(_) => value.to_string(),
        None => format!("{value};tag={tag}"),
    }
}

/// The top Via as RFC 3581 §4 and RFC 3261 §18.2.1 want it back: `received` with the source
/// address, and an empty `rport` filled in with the source port.
fn top_via(via: &str, source: SocketAddr) -> String {
    let mut out = String::with_capacity(via.len() + 32);
    let mut parts = via.split(';');
    out.push_str(parts.next().unwrap_or_default());
    let mut received = false;
    for p in parts {
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("rport") {
            out.push_str(&format!(";rport={}", source.port()));
        } else {
            received |= name.eq_ignore_ascii_case("received");
            out.push(';');
            out.push_str(p);
        }
    }
    if !received {
        out.push_str(&format!(";received={}", source.ip()));
    }
    out
}

/// The start of every response to `sub`, which came from `source` (RFC 3261 §8.2.6.2): the
/// status line, every Via, From, `to`, Call-ID and CSeq.
fn response_head(sub: &Subscribe, source: SocketAddr, status: &str, to: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for (i, via) in sub.via.iter().enumerate() {
        let via = match i {
            0 => top_via(via, source),
            _ => via.clone(),
        };
        out.push_str(&format!("Via: {via}\r\n"));
    }
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} SUBSCRIBE\r\n",
        sub.from, sub.call_id, sub.cseq,
    ));
    out
}

/// The `200 OK` to `sub`, which came from `source`; `tag` is our To tag (already in the To of
/// a SUBSCRIBE sent inside our dialog).
pub fn ok_response(sub: &Subscribe, source: SocketAddr, local: Local, tag: &str) -> Vec<u8> {
    let mut out = response_head(sub, source, "200 OK", &tagged(&sub.to, tag));
    out.push_str(&format!(
        "Contact: <sip:{}>\r\nExpires: 0\r\nServer: edgeprov/{}\r\nContent-Length: 0\r\n\r\n",
        local.host_port(),
        env!("CARGO_PKG_VERSION"),
    ));
    out.into_bytes()
}

/// Why a SUBSCRIBE sent inside a dialog is refused (RFC 3261 §12.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its To tag names no dialog of ours (we restarted since, forgot it, or never made it):
    /// 481, after which the phone starts a new subscription (RFC 6665 §4.1.2.2).
    NoDialog,
    /// Its CSeq is below the last one seen in the dialog: 500.
    OutOfOrder,
}

impl Refusal {
    fn status(self) -> &'static str {
        match self {
            Refusal::NoDialog => "481 Call/Transaction Does Not Exist",
            Refusal::OutOfOrder => "500 Server Internal Error",
        }
    }
}

/// The answer that refuses `sub`, which came from `source`. Its To is the SUBSCRIBE's, which
/// carries the phone's idea of our tag, so the phone can match it to its request.
pub fn refusal(sub: &Subscribe, source: SocketAddr, why: Refusal) -> Vec<u8> {
    let mut out = response_head(sub, source, why.status(), &sub.to);
    out.push_str(&format!(
        "Server: edgeprov/{}\r\nContent-Length: 0\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
    ));
    out.into_bytes()
}

/// The NOTIFY that tells `sub`'s phone `url`. `tag` is the one the 200 gave; `branch` and
/// `cseq` name this transaction (its responses are matched on them).
pub fn notify(
    sub: &Subscribe,
    local: Local,
    tag: &str,
    branch: &str,
    cseq: u32,
    url: &str,
) -> Vec<u8> {
    let to = sub.from.clone();
    format!(
        "NOTIFY {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\nMax-Forwards: 70\r\n\
         From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} NOTIFY\r\nContact: <sip:{}>\r\n\
         Event: {}\r\nSubscription-State: terminated;reason=timeout\r\n\
         Content-Type: application/url\r\nContent-Length: {}\r\n\r\n{url}",
        sub.contact,
        local.host_port(),
        tagged(&sub.to, tag),
        sub.call_id,
        local.host_port(),
        sub.event,
        url.len(),
    )
    .into_bytes()
}

/// What the NOTIFY carries for `device`, given the box's provisioning URL `base`.
///
/// Vendors read the body differently:
/// - Yealink, Fanvil, Grandstream, Poly and most others take it as the provisioning *server*
///   (a directory) and ask it for their own files (`y000000000066.cfg`, `<mac>.cfg`,
///   `cfg<mac>.xml`); Grandstream needs it to end in `/` (a folder: so say the Grandstream PnP
///   responders, "must be a path ending in a slash"), which the derived URL does.
/// - Snom takes it as its `setting_server`, the URL of a settings *file* ("Configuring snom
///   phones for mass deployment": `http://server/snom200/snom200.htm`; the SIP Plug & Play
///   trace sends a file URL). A Snom phone that names its model (`snom710`) is sent
///   `<base><model>.htm`, the per-model file Snom's documents use, which an operator stores as
///   a static file.
///
/// A `base` that does not end in `/` names a file already (a `pnp.url` chosen so): it is sent
/// as it is to every vendor.
pub fn body_for(device: &Device, base: &str) -> String {
    let model = device.model.to_ascii_lowercase();
    let snom = device.vendor.eq_ignore_ascii_case("snom") || model.starts_with("snom");
    let safe = model.len() > 4
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if base.ends_with('/') && snom && model.starts_with("snom") && safe {
        format!("{base}{model}.htm")
    } else {
        base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yealink's PnP SUBSCRIBE as its auto-provisioning guide and packet captures show it:
    /// bare MAC as the user part, the group as the host.
    const YEALINK: &str = "SUBSCRIBE sip:001565aabbcc@224.0.1.75:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1817351226\r\n\
        From: <sip:001565aabbcc@224.0.1.75:5060>;tag=1450113437\r\n\
        To: <sip:001565aabbcc@224.0.1.75:5060>\r\n\
        Call-ID: 0_1853012396@192.168.1.20\r\n\
        CSeq: 1 SUBSCRIBE\r\n\
        Contact: <sip:192.168.1.20:5060>\r\n\
        Accept: application/url\r\n\
        Max-Forwards: 70\r\n\
        User-Agent: Yealink SIP-T46S 66.84.0.15\r\n\
        Expires: 0\r\n\
        Event: ua-profile;profile-type=\"device\";vendor=\"Yealink\";model=\"T46S\";version=\"66.84.0.15\"\r\n\
        Content-Length: 0\r\n\r\n";

    /// Snom's sample trace ("SIP Plug & Play"), LF line ends as printed there.
    const SNOM: &str = "SUBSCRIBE sip:MAC%3a00135E874B49@intern.snom.de SIP/2.0\n\
        Via: SIP/2.0/UDP 192.168.10.67:5060;rport\n\
        From: <sip:MAC%3a00135E874B49@intern.snom.de>;tag=658512961\n\
        To: <sip:MAC%3a00135E874B49@intern.snom.de>\n\
        Call-ID: 1930770594@192.168.10.67\n\
        CSeq: 1 SUBSCRIBE\n\
        Event: ua-profile;profile-type=\"device\";vendor=\"OEM\";model=\"OEM\";version=\"7.1.19\"\n\
        Expires: 0\n\
        Accept: application/url\n\
        Contact: <sip:192.168.10.67:5060>\n\
        Content-Length: 0\n\n";

    fn sub(text: &str) -> Subscribe {
        match classify(text.as_bytes()).unwrap() {
            Incoming::Subscribe(s) => *s,
            other => panic!("not a subscribe: {other:?}"),
        }
    }

    fn local() -> Local {
        Local("192.168.1.2:5060".parse().unwrap())
    }

    #[test]
    fn yealink_and_snom_subscribes_are_read() {
        let y = sub(YEALINK);
        assert_eq!(y.device.vendor, "Yealink");
        assert_eq!(y.device.model, "T46S");
        assert_eq!(y.device.version, "66.84.0.15");
        assert_eq!(y.device.mac, Mac::parse("001565aabbcc").ok());
        assert_eq!(y.contact, "sip:192.168.1.20:5060");
        assert_eq!(y.from_tag.as_deref(), Some("1450113437"));
        assert_eq!(y.cseq, 1);

        let s = sub(SNOM);
        assert_eq!(s.device.mac, Mac::parse("00135E874B49").ok());
        // Planet and Fanvil write `MAC=` in the Request-URI; a From of another user is no MAC.
        let planet = SNOM.replace("sip:MAC%3a00135E874B49@intern", "sip:MAC=00304fa99948@x");
        assert_eq!(sub(&planet).device.mac, Mac::parse("00304fa99948").ok());
        let none = SNOM.replace("MAC%3a00135E874B49", "512");
        assert_eq!(sub(&none).device.mac, None);
        assert_eq!(s.call_id, "1930770594@192.168.10.67");
        assert_eq!(s.via, ["SIP/2.0/UDP 192.168.10.67:5060;rport"]);
    }

    /// Each Via value comes back on a line of its own: a SUBSCRIBE of many short ones is not
    /// answered, so the box amplifies nothing to a spoofed source.
    #[test]
    fn a_subscribe_of_more_vias_than_proxies_add_is_not_answered() {
        let top = "Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1817351226";
        let eight = YEALINK.replace(top, &format!("{top}{}", ",a".repeat(MAX_VIA - 1)));
        assert_eq!(sub(&eight).via.len(), MAX_VIA);
        let many = YEALINK.replace(top, &format!("{top}{}", ",a".repeat(MAX_VIA)));
        match classify(many.as_bytes()) {
            Err(ParseError::Malformed("Via", why)) => assert!(why.contains("9 values"), "{why}"),
            other => panic!("answered: {other:?}"),
        }
    }

    #[test]
    fn compact_forms_are_the_same_subscribe() {
        let compact = YEALINK
            .replace("Via:", "v:")
            .replace("From:", "f:")
            .replace("To:", "t:")
            .replace("Call-ID:", "i:")
            .replace("Contact:", "m:")
            .replace("Event:", "o:")
            .replace("Content-Length:", "l:")
            .replace("\r\n", "\n");
        assert_eq!(sub(&compact), sub(YEALINK));
    }

    #[test]
    fn other_sip_is_left_alone() {
        for text in [
            YEALINK.replace("SUBSCRIBE sip:", "INVITE sip:"),
            YEALINK.replace("SUBSCRIBE sip:", "REGISTER sip:"),
            YEALINK.replace("SUBSCRIBE sip:", "OPTIONS sip:"),
            YEALINK.replace("ua-profile;", "presence;"),
            YEALINK.replace("profile-type=\"device\"", "profile-type=\"user\""),
            YEALINK.replace("Accept: application/url", "Accept: application/pidf+xml"),
            YEALINK.replace("Event: ua-profile", "X-Event: ua-profile"),
            "SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\nVia: SIP/2.0/UDP h;branch=z9\r\n\r\n".into(),
        ] {
            assert_eq!(classify(text.as_bytes()), Ok(Incoming::Other), "{text}");
        }
    }

    #[test]
    fn a_profile_subscribe_without_what_an_answer_needs_is_an_error() {
        for (header, missing) in [
            ("Call-ID", "Call-ID"),
            ("From", "From"),
            ("To", "To"),
            ("Contact", "Contact"),
        ] {
            let text: String = YEALINK
                .split("\r\n")
                .filter(|l| !l.starts_with(&format!("{header}:")))
                .collect::<Vec<_>>()
                .join("\r\n");
            assert_eq!(
                classify(text.as_bytes()),
                Err(ParseError::Missing(missing)),
                "{header}"
            );
        }
        let text = YEALINK.replace("CSeq: 1 SUBSCRIBE", "CSeq: one SUBSCRIBE");
        assert!(matches!(
            classify(text.as_bytes()),
            Err(ParseError::Malformed("CSeq", _))
        ));
    }

    #[test]
    fn the_ok_copies_what_rfc_3261_says_and_tags_the_to() {
        let s = sub(SNOM);
        let source: SocketAddr = "192.168.10.67:5060".parse().unwrap();
        let ok = String::from_utf8(ok_response(&s, source, local(), "abc")).unwrap();
        let m = Message::parse(ok.as_bytes()).unwrap();
        assert_eq!(m.start, StartLine::Response { code: 200 });
        assert_eq!(
            m.header("via"),
            Some("SIP/2.0/UDP 192.168.10.67:5060;rport=5060;received=192.168.10.67")
        );
        assert_eq!(m.header("from"), Some(s.from.as_str()));
        assert_eq!(
            m.header("to"),
            Some("<sip:MAC%3a00135E874B49@intern.snom.de>;tag=abc")
        );
        assert_eq!(m.header("call-id"), Some(s.call_id.as_str()));
        assert_eq!(m.cseq().unwrap(), (1, "SUBSCRIBE"));
        assert_eq!(m.header("contact"), Some("<sip:192.168.1.2:5060>"));
        assert_eq!(m.header("expires"), Some("0"));
    }

    /// A SUBSCRIBE sent inside a dialog carries a To tag: its 200 keeps that tag (no second
    /// one), and a refusal copies the request's To as it came.
    #[test]
    fn inside_a_dialog_the_to_tag_is_read_and_kept() {
        assert_eq!(sub(SNOM).to_tag, None);
        let refresh = SNOM
            .replace(
                "To: <sip:MAC%3a00135E874B49@intern.snom.de>",
                "To: <sip:MAC%3a00135E874B49@intern.snom.de>;tag=ours",
            )
            .replace("CSeq: 1 SUBSCRIBE", "CSeq: 2 SUBSCRIBE");
        let s = sub(&refresh);
        assert_eq!(s.to_tag.as_deref(), Some("ours"));
        let source: SocketAddr = "192.168.10.67:5060".parse().unwrap();
        let ok = ok_response(&s, source, local(), "ours");
        let m = Message::parse(&ok).unwrap();
        assert_eq!(m.header("to"), Some(s.to.as_str()));

        for (why, code) in [(Refusal::NoDialog, 481), (Refusal::OutOfOrder, 500)] {
            let answer = refusal(&s, source, why);
            let m = Message::parse(&answer).unwrap();
            assert_eq!(m.start, StartLine::Response { code });
            assert_eq!(
                m.header("via"),
                Some("SIP/2.0/UDP 192.168.10.67:5060;rport=5060;received=192.168.10.67")
            );
            assert_eq!(m.header("from"), Some(s.from.as_str()));
            assert_eq!(m.header("to"), Some(s.to.as_str()));
            assert_eq!(m.header("call-id"), Some(s.call_id.as_str()));
            assert_eq!(m.cseq().unwrap(), (2, "SUBSCRIBE"));
            assert_eq!(m.header("contact"), None);
        }
    }

    /// RFC 3261 §7.3.1: `Via: a, b` is two Vias. The top one is `a`, which gets `received`
    /// and `rport` and names the branch a response answers.
    #[test]
    fn a_via_header_with_several_values_is_that_many_vias() {
        let two = YEALINK.replace(
            "branch=z9hG4bK1817351226\r\n",
            "branch=z9hG4bK1817351226;rport , SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK2\r\n",
        );
        let s = sub(&two);
        let source: SocketAddr = "192.168.1.20:5062".parse().unwrap();
        let ok = String::from_utf8(ok_response(&s, source, local(), "abc")).unwrap();
        let m = Message::parse(ok.as_bytes()).unwrap();
        assert_eq!(
            m.headers("via").collect::<Vec<_>>(),
            [
                "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1817351226;rport=5062;received=192.168.1.20",
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK2",
            ]
        );
        let answer = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKedge1,\
                      SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKother\r\nCall-ID: c\r\n\
                      CSeq: 1 NOTIFY\r\n\r\n";
        assert_eq!(
            classify(answer.as_bytes()),
            Ok(Incoming::NotifyResponse(NotifyResponse {
                branch: "z9hG4bKedge1".into(),
                call_id: "c".into(),
                cseq: 1,
                code: 200
            }))
        );
    }

    #[test]
    fn the_notify_is_in_the_dialog_and_carries_the_url() {
        let s = sub(YEALINK);
        let url = "https://prov.example.lan:443/";
        let n = notify(&s, local(), "abc", "z9hG4bKedge1", 1, url);
        let m = Message::parse(&n).unwrap();
        assert_eq!(
            m.start,
            StartLine::Request {
                method: "NOTIFY",
                uri: "sip:192.168.1.20:5060"
            }
        );
        assert_eq!(m.header("call-id"), Some(s.call_id.as_str()));
        assert_eq!(m.header("to"), Some(s.from.as_str()));
        assert_eq!(param(m.header("from").unwrap(), "tag"), Some("abc"));
        assert_eq!(
            uri_of(m.header("from").unwrap()),
            "sip:001565aabbcc@224.0.1.75:5060"
        );
        assert_eq!(
            param(m.header("via").unwrap(), "branch"),
            Some("z9hG4bKedge1")
        );
        assert_eq!(m.cseq().unwrap(), (1, "NOTIFY"));
        assert_eq!(m.header("event"), Some(s.event.as_str()));
        assert_eq!(
            m.header("subscription-state"),
            Some("terminated;reason=timeout")
        );
        assert_eq!(m.header("content-type"), Some("application/url"));
        assert_eq!(m.body, url.as_bytes());

        // The phone's 200 to it is recognised by the branch.
        let answer = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nCall-ID: {}\r\nCSeq: 1 NOTIFY\r\nl: 0\r\n\r\n",
            m.header("via").unwrap(),
            s.call_id
        );
        assert_eq!(
            classify(answer.as_bytes()),
            Ok(Incoming::NotifyResponse(NotifyResponse {
                branch: "z9hG4bKedge1".into(),
                call_id: s.call_id.clone(),
                cseq: 1,
                code: 200
            }))
        );
    }

    #[test]
    fn snom_is_sent_its_model_file_everyone_else_the_server() {
        let base = "https://prov.example.lan/";
        let dev = |vendor: &str, model: &str| Device {
            vendor: vendor.into(),
            model: model.into(),
            ..Device::default()
        };
        assert_eq!(body_for(&dev("Yealink", "T46S"), base), base);
        assert_eq!(body_for(&dev("Grandstream", "GXP2170"), base), base);
        assert_eq!(
            body_for(&dev("snom", "snom710"), base),
            "https://prov.example.lan/snom710.htm"
        );
        assert_eq!(
            body_for(&dev("snom", "snomD785"), base),
            "https://prov.example.lan/snomd785.htm"
        );
        assert_eq!(body_for(&dev("OEM", "OEM"), base), base);
        assert_eq!(body_for(&dev("snom", "snom../x"), base), base);
        let file = "https://prov.example.lan/settings.xml";
        assert_eq!(body_for(&dev("snom", "snom710"), file), file);
    }
}
