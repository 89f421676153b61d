//! A SIP message read from one UDP datagram (RFC 3261 §7): the start line, the headers and the
//! body. Only what plug-and-play needs, and tolerant the way phones' own stacks are: header
//! names in any case and in their compact forms (§7.3.3: `v` Via, `f` From, `t` To, `i`
//! Call-ID, `m` Contact, `o` Event, `l` Content-Length, `c` Content-Type, `k` Supported, `u`
//! Allow-Events), lines ended by CRLF or a bare LF, a datagram without the blank line after
//! its headers read as headers alone (over UDP the datagram bounds the message, §18.3).
//! Folded header lines (§7.3.1) are refused: no phone sends them in these requests.
//!
//! Sizes are bounded before anything is read, and every malformed input is a [`ParseError`],
//! never a panic: this reads whatever anyone on the network multicasts to port 5060.

/// Largest datagram read: RFC 3261 §18.1.1 keeps requests over UDP under 1300 bytes unless
/// the path takes more; a plug-and-play SUBSCRIBE is about 500. Anything longer is not one.
pub const MAX_MESSAGE: usize = 4096;
/// Most header lines read; a SUBSCRIBE has about fifteen.
pub const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0} bytes, more than the {MAX_MESSAGE} a plug-and-play message can be")]
    TooLong(usize),
    #[error("the header section is not text")]
    NotText,
    #[error("line 1 is neither a SIP request line nor a status line")]
    StartLine,
    #[error("line {0} is not a header (`Name: value`, no control characters)")]
    Header(usize),
    #[error("line {0} continues the line before it (header folding is not read)")]
    Folded(usize),
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("Content-Length {0:?} is not a length within the datagram")]
    ContentLength(String),
    #[error("no {0} header")]
    Missing(&'static str),
    #[error("{0} header {1:?} is malformed")]
    Malformed(&'static str, String),
}

/// The first line: a request's method and URI, or a response's status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request { method: &'a str, uri: &'a str },
    Response { code: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub start: StartLine<'a>,
    /// `(name, value)` in the order sent; names in lower case and in their long form.
    headers: Vec<(String, &'a str)>,
    pub body: &'a [u8],
}

/// The long form of a compact header name (already in lower case).
fn long_name(name: &str) -> &str {
    match name {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "o" => "event",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "u" => "allow-events",
        "e" => "content-encoding",
        "s" => "subject",
        other => other,
    }
}

/// The token characters of RFC 3261 §25.1, which a method and a header name are made of.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

fn start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    let mut parts = line.splitn(3, ' ');
    let (a, b, c) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), c) => (a, b, c),
        _ => return Err(ParseError::StartLine),
    };
    if a.eq_ignore_ascii_case("SIP/2.0") {
        let code = b
            .parse::<u16>()
            .ok()
            .filter(|c| (100..700).contains(c))
            .ok_or(ParseError::StartLine)?;
        return Ok(StartLine::Response { code });
    }
    match c {
        Some(v) if v.trim().eq_ignore_ascii_case("SIP/2.0") && is_token(a) && !b.is_empty() => {
            Ok(StartLine::Request { method: a, uri: b })
        }
        _ => Err(ParseError::StartLine),
    }
}

impl<'a> Message<'a> {
    /// Reads one datagram.
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(ParseError::TooLong(bytes.len()));
        }
        // The header section ends at the first empty line (CRLF CRLF, or LF LF from stacks
        // that write bare LFs); without one, the whole datagram is headers.
        let (head, rest) = match find_blank_line(bytes) {
            Some((end, body)) => (&bytes[..end], &bytes[body..]),
            None => (bytes, &bytes[bytes.len()..]),
        };
        let head = std::str::from_utf8(head).map_err(|_| ParseError::NotText)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let start = start_line(lines.next().unwrap_or_default())?;
        let mut headers = Vec::new();
        for (i, line) in lines.enumerate() {
            let number = i + 2;
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                return Err(ParseError::Folded(number));
            }
            if headers.len() == MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            let (name, value) = line.split_once(':').ok_or(ParseError::Header(number))?;
            let name = name.trim_end();
            // A control character (a lone CR above all) would be copied into our answers,
            // where a receiver may take it for the end of a line.
            if !is_token(name) || value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(ParseError::Header(number));
            }
            let name = long_name(&name.to_ascii_lowercase()).to_string();
            headers.push((name, value.trim()));
        }
        let mut message = Message {
            start,
            headers,
            body: rest,
        };
        if let Some(length) = message.header("content-length") {
            let n = length
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= rest.len())
                .ok_or_else(|| ParseError::ContentLength(length.to_string()))?;
            message.body = &rest[..n];
        }
        Ok(message)
    }

    /// The first value of the header `name` (lower case, long form).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// Every value of the header `name`, in the order sent.
    pub fn headers(&self, name: &str) -> impl Iterator<Item = &'a str> + '_ {
        let name = name.to_string();
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// [`Message::header`], or the error that names the missing header.
    pub fn required(&self, name: &'static str, shown: &'static str) -> Result<&'a str, ParseError> {
        self.header(name).ok_or(ParseError::Missing(shown))
    }

    /// The CSeq header's number and method.
    pub fn cseq(&self) -> Result<(u32, &'a str), ParseError> {
        let value = self.required("cseq", "CSeq")?;
        let malformed = || ParseError::Malformed("CSeq", value.chars().take(64).collect());
        let (number, method) = value.split_once([' ', '\t']).ok_or_else(malformed)?;
        let number = number.parse::<u32>().map_err(|_| malformed())?;
        let method = method.trim();
        if !is_token(method) {
            return Err(malformed());
        }
        Ok((number, method))
    }
}

/// Where the header section ends and the body begins, if the datagram has an empty line.
fn find_blank_line(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|b| *b == b'\n') {
        let nl = i + at;
        let next = &bytes[nl + 1..];
        if next.starts_with(b"\r\n") {
            return Some((nl, nl + 3));
        }
        if next.starts_with(b"\n") {
            return Some((nl, nl + 2));
        }
        i = nl + 1;
    }
    None
}

/// A header parameter's value (`tag`, `branch`, `profile-type`…) from a header value's
/// `;name=value` list, matched case-insensitively, without surrounding quotes. Parameters
/// inside `<…>` belong to the URI, not to the header, and are skipped.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(end) => &value[end + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| unquote(v.trim()))
    })
}

/// The values of a header that may carry several separated by commas (RFC 3261 §7.3.1: `Via:
/// a, b` is two Via headers), trimmed; a comma inside a quoted string separates nothing.
pub fn values(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|v| !v.is_empty());
    out
}

/// `value` without the quotes around it. Typographic quotes count too: a vendor's manual shows
/// `profile-type=“device“`, and phones built from such examples exist.
pub fn unquote(value: &str) -> &str {
    let quotes: &[char] = &['"', '\u{201c}', '\u{201d}', '\u{201e}'];
    value.trim_matches(quotes)
}

/// The URI of a name-addr or addr-spec header value (`"Bob" <sip:b@h>;tag=1` → `sip:b@h`).
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value.split(';').next().unwrap_or_default().trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_names_lf_lines_and_any_case_are_read() {
        let text = "SUBSCRIBE sip:224.0.1.75 SIP/2.0\nv: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1\n\
                    f: <sip:a@b>;tag=9\nT: <sip:a@b>\ni: abc\nCSEQ: 7 SUBSCRIBE\no: ua-profile\n\
                    m: <sip:10.0.0.9>\nl: 0\n\n";
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(
            m.start,
            StartLine::Request {
                method: "SUBSCRIBE",
                uri: "sip:224.0.1.75"
            }
        );
        assert_eq!(
            m.header("via"),
            Some("SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1")
        );
        assert_eq!(m.header("from"), Some("<sip:a@b>;tag=9"));
        assert_eq!(m.header("to"), Some("<sip:a@b>"));
        assert_eq!(m.header("call-id"), Some("abc"));
        assert_eq!(m.header("event"), Some("ua-profile"));
        assert_eq!(m.header("contact"), Some("<sip:10.0.0.9>"));
        assert_eq!(m.cseq().unwrap(), (7, "SUBSCRIBE"));
        assert!(m.body.is_empty());
    }

    #[test]
    fn the_body_is_cut_at_content_length_and_a_longer_length_is_refused() {
        let m = Message::parse(b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!(m.start, StartLine::Response { code: 200 });
        assert_eq!(m.body, b"abc");
        assert_eq!(
            Message::parse(b"SIP/2.0 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
            Err(ParseError::ContentLength("9".into()))
        );
        assert_eq!(
            Message::parse(b"SIP/2.0 200 OK\r\nl: -1\r\n\r\n"),
            Err(ParseError::ContentLength("-1".into()))
        );
    }

    #[test]
    fn a_datagram_without_its_blank_line_is_headers_alone() {
        let m = Message::parse(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1").unwrap();
        assert_eq!(m.header("call-id"), Some("1"));
        assert!(m.body.is_empty());
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for (bytes, err) in [
            (&b""[..], ParseError::StartLine),
            (b"\x16\x03\x01\x02\x00", ParseError::StartLine),
            (b"GET / HTTP/1.1\r\n\r\n", ParseError::StartLine),
            (b"SIP/2.0 99 Too Low\r\n\r\n", ParseError::StartLine),
            (
                b"SUBSCRIBE sip:x SIP/2.0\r\nno colon\r\n\r\n",
                ParseError::Header(2),
            ),
            (
                b"SUBSCRIBE sip:x SIP/2.0\r\nBad Name: 1\r\n\r\n",
                ParseError::Header(2),
            ),
            (
                b"SUBSCRIBE sip:x SIP/2.0\r\nCall-ID: 1\rTo: x\r\n\r\n",
                ParseError::Header(2),
            ),
            (
                b"SUBSCRIBE sip:x SIP/2.0\r\nTo: a\r\n b\r\n\r\n",
                ParseError::Folded(3),
            ),
            (
                b"SUBSCRIBE sip:x SIP/2.0\r\nTo: \xff\r\n\r\n",
                ParseError::NotText,
            ),
        ] {
            assert_eq!(Message::parse(bytes), Err(err), "{bytes:?}");
        }
        let many = format!("OPTIONS sip:x SIP/2.0\r\n{}\r\n", "X: 1\r\n".repeat(65));
        assert_eq!(
            Message::parse(many.as_bytes()),
            Err(ParseError::TooManyHeaders)
        );
        let long = vec![b'a'; MAX_MESSAGE + 1];
        assert_eq!(
            Message::parse(&long),
            Err(ParseError::TooLong(MAX_MESSAGE + 1))
        );
    }

    /// Any bytes at all, cut anywhere: an error or a message, never a panic.
    #[test]
    fn no_input_panics() {
        let sample = b"SUBSCRIBE sip:MAC%3a001565aabbcc@224.0.1.75 SIP/2.0\r\nVia: SIP/2.0/UDP \
                       1.2.3.4:5060;branch=z9hG4bK\r\nCSeq: 1 SUBSCRIBE\r\nl: 2\r\n\r\nab";
        for end in 0..=sample.len() {
            let m = Message::parse(&sample[..end]);
            if let Ok(m) = m {
                let _ = m.cseq();
            }
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..2_000 {
            let mut bytes = sample.to_vec();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let i = state as usize % bytes.len();
                bytes[i] = (state >> 8) as u8;
            }
            if let Ok(m) = Message::parse(&bytes) {
                let _ = m.cseq();
                let _ = m.header("via").map(|v| param(v, "branch"));
            }
        }
    }

    #[test]
    fn params_and_uris_are_read_outside_angle_brackets() {
        let from = "\"Bob\" <sip:b@h;tag=no>;TAG=\"42\";x";
        assert_eq!(param(from, "tag"), Some("42"));
        assert_eq!(param(from, "x"), Some(""));
        assert_eq!(uri_of(from), "sip:b@h;tag=no");
        assert_eq!(uri_of("sip:b@h;tag=1"), "sip:b@h");
        assert_eq!(
            param("ua-profile;profile-type=“device“", "profile-type"),
            Some("device")
        );
    }
}
