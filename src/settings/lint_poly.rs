//! Linting Poly (UC Software) XML configuration files.
//!
//! A Poly phone reads a configuration file as XML and its settings are the attributes of its
//! elements. A file that is not well-formed XML is rejected whole, so the first such mistake is
//! an error and the check stops there (what follows cannot be read reliably). An attribute
//! given twice in one element is an XML error too; the same setting in two elements of one file
//! is legal XML but leaves one of the two values without effect, so it is a warning.
//!
//! The reading is a small XML 1.0 well-formedness check over bytes: declaration, comments,
//! processing instructions, a `DOCTYPE` (skipped), CDATA, elements, attributes and character
//! and entity references, with the line of every problem. No input makes it panic.

use std::collections::HashMap;

use super::lines::Lines;
use super::lint::{Finding, Linter};

/// Lints a Poly XML file (called `file` in findings). Findings come in line order.
pub fn lint_poly(file: &str, bytes: &[u8]) -> Vec<Finding> {
    let mut out = Linter::new(file);
    let mut reader = Reader::new(bytes, &mut out);
    if let Err((line, message)) = reader.document() {
        // A file that ends early fails past its last line end: name its last line.
        let last = Lines::new(bytes).count().max(1);
        reader.out.error(
            line.min(last),
            format!("{message}: not well-formed XML, the phone rejects the whole file"),
        );
    }
    out.findings.sort_by_key(|f| f.line);
    out.findings
}

/// An attribute of a Poly XML file: name, value and line.
pub type Attribute = (String, String, usize);

/// The attributes of a Poly XML file, in document order: name, value (references such as
/// `&amp;` replaced) and line. `Err` names the line and the first place the file stops being
/// well-formed XML: the phone then rejects the whole file.
pub fn poly_attributes(bytes: &[u8]) -> Result<Vec<Attribute>, Fail> {
    let mut out = Linter::new("");
    let mut reader = Reader::new(bytes, &mut out);
    reader.document()?;
    Ok(reader
        .attributes
        .into_iter()
        .map(|(name, value, line)| (shown(name), unescape(value), line))
        .collect())
}

/// An attribute value with its character and entity references replaced (well-formed: every
/// `&` starts one, [`Reader::references`]); an entity XML does not predefine is kept as written.
fn unescape(value: &[u8]) -> String {
    let text = shown(value);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let body = &rest[1..end];
        let number = match body.strip_prefix("#x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => body.strip_prefix('#').and_then(|d| d.parse().ok()),
        };
        match (body, number.and_then(char::from_u32)) {
            (_, Some(c)) => out.push(c),
            ("amp", _) => out.push('&'),
            ("lt", _) => out.push('<'),
            ("gt", _) => out.push('>'),
            ("quot", _) => out.push('"'),
            ("apos", _) => out.push('\''),
            _ => out.push_str(&rest[..=end]),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Where a file stops being well-formed XML: line and message.
pub type Fail = (usize, String);

struct Reader<'a, 'o, 'f> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    /// Attribute name → line of its first element, over the whole file.
    settings: HashMap<&'a [u8], usize>,
    /// Every attribute as written: name, value and line.
    attributes: Vec<(&'a [u8], &'a [u8], usize)>,
    out: &'o mut Linter<'f>,
}

/// Whether the byte at `at` ends a line: LF, or a CR not followed by LF (the CR of a CRLF
/// leaves the line to its LF), as [`Lines`] counts them for the other formats.
fn ends_line(src: &[u8], at: usize) -> bool {
    match src.get(at) {
        Some(b'\n') => true,
        Some(b'\r') => src.get(at + 1) != Some(&b'\n'),
        _ => false,
    }
}

fn name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn name_char(b: u8) -> bool {
    name_start(b) || b.is_ascii_digit() || b == b'.' || b == b'-'
}

fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl<'a, 'o, 'f> Reader<'a, 'o, 'f> {
    /// A reader at the start of `src`, its findings going to `out`.
    fn new(src: &'a [u8], out: &'o mut Linter<'f>) -> Self {
        Reader {
            src,
            pos: 0,
            line: 1,
            settings: HashMap::new(),
            attributes: Vec::new(),
            out,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn bump(&mut self, n: usize) {
        for _ in 0..n {
            if ends_line(self.src, self.pos) {
                self.line += 1;
            }
            self.pos += 1;
        }
    }

    fn fail<T>(&self, message: String) -> Result<T, Fail> {
        Err((self.line, message))
    }

    fn skip_space(&mut self) -> bool {
        let mut any = false;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.bump(1);
            any = true;
        }
        any
    }

    /// Moves past the next `end`; fails with `what` at the start line when there is none.
    fn skip_past(&mut self, end: &[u8], what: &str) -> Result<&'a [u8], Fail> {
        let start_line = self.line;
        let rest = self.rest();
        match rest.windows(end.len()).position(|w| w == end) {
            Some(at) => {
                self.bump(at + end.len());
                Ok(rest.get(..at).unwrap_or_default())
            }
            None => Err((start_line, format!("{what} is never closed"))),
        }
    }

    fn name(&mut self, what: &str) -> Result<&'a [u8], Fail> {
        let rest = self.rest();
        if !rest.first().is_some_and(|&b| name_start(b)) {
            let found = rest.first().map_or("the end of the file".into(), |&b| {
                format!("`{}`", shown(&[b]))
            });
            return self.fail(format!("expected {what}, found {found}"));
        }
        let len = rest.iter().take_while(|&&b| name_char(b)).count();
        self.bump(len);
        Ok(rest.get(..len).unwrap_or_default())
    }

    fn document(&mut self) -> Result<(), Fail> {
        if self.rest().starts_with(b"\xEF\xBB\xBF") {
            self.pos += 3;
        }
        if self.rest().starts_with(b"<?xml")
            && self.rest().get(5).is_some_and(u8::is_ascii_whitespace)
        {
            self.skip_past(b"?>", "the XML declaration")?;
        }
        let mut root = false;
        loop {
            self.skip_space();
            let rest = self.rest();
            if rest.is_empty() {
                break;
            }
            if rest.starts_with(b"<!--") {
                self.comment()?;
            } else if rest.starts_with(b"<?") {
                self.instruction()?;
            } else if rest.starts_with(b"<!DOCTYPE") && !root {
                self.doctype()?;
            } else if rest.starts_with(b"<") && !rest.starts_with(b"</") && !rest.starts_with(b"<!")
            {
                if root {
                    return self.fail("a second root element: an XML file has one".into());
                }
                self.element()?;
                root = true;
            } else if root {
                return self.fail("text or markup after the root element".into());
            } else {
                return self.fail("text or markup before the root element".into());
            }
        }
        if root {
            Ok(())
        } else {
            self.fail("no root element".into())
        }
    }

    fn comment(&mut self) -> Result<(), Fail> {
        let line = self.line;
        self.bump(4);
        let body = self.skip_past(b"-->", "a comment")?;
        if body.windows(2).any(|w| w == b"--") || body.ends_with(b"-") {
            return Err((line, "`--` inside a comment".into()));
        }
        Ok(())
    }

    fn instruction(&mut self) -> Result<(), Fail> {
        self.bump(2);
        let target = self.name("a processing instruction's name")?;
        if target.eq_ignore_ascii_case(b"xml") {
            return self.fail("an XML declaration that is not at the very start".into());
        }
        self.skip_past(b"?>", "a processing instruction")?;
        Ok(())
    }

    /// `<!DOCTYPE …>`, with an internal subset in brackets, skipped.
    fn doctype(&mut self) -> Result<(), Fail> {
        let line = self.line;
        let mut depth = 0usize;
        let mut quote = None;
        while let Some(b) = self.peek() {
            self.bump(1);
            match (quote, b) {
                (Some(q), _) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'') => quote = Some(b),
                (None, b'[') => depth += 1,
                (None, b']') => depth = depth.saturating_sub(1),
                (None, b'>') if depth == 0 => return Ok(()),
                _ => {}
            }
        }
        Err((line, "the DOCTYPE is never closed".into()))
    }

    /// An element from its `<` to the end of its end tag, iteratively (no recursion to
    /// exhaust on a deep file).
    fn element(&mut self) -> Result<(), Fail> {
        let mut open: Vec<(&'a [u8], usize)> = Vec::new();
        loop {
            let rest = self.rest();
            if rest.starts_with(b"</") {
                self.bump(2);
                let name = self.name("an end tag's name")?;
                self.skip_space();
                if self.peek() != Some(b'>') {
                    return self.fail(format!("end tag `</{}` is not closed by `>`", shown(name)));
                }
                self.bump(1);
                match open.pop() {
                    Some((start, _)) if start == name => {}
                    Some((start, line)) => {
                        return self.fail(format!(
                            "end tag `</{}>` does not match `<{}>` opened on line {line}",
                            shown(name),
                            shown(start)
                        ));
                    }
                    None => {
                        return self.fail(format!("end tag `</{}>` closes nothing", shown(name)));
                    }
                }
            } else if rest.starts_with(b"<!--") {
                self.comment()?;
            } else if rest.starts_with(b"<![CDATA[") {
                self.bump(9);
                self.skip_past(b"]]>", "a CDATA section")?;
            } else if rest.starts_with(b"<?") {
                self.instruction()?;
            } else if rest.starts_with(b"<") {
                let line = self.line;
                self.bump(1);
                let name = self.name("an element name")?;
                if !self.attributes()? {
                    open.push((name, line));
                }
            } else if rest.is_empty() {
                let (name, line) = open.last().copied().unwrap_or_default();
                return Err((line, format!("element `<{}>` is never closed", shown(name))));
            } else {
                self.text()?;
            }
            if open.is_empty() {
                return Ok(());
            }
        }
    }

    /// The attributes of a start tag up to its `>` or `/>`; `true` for an empty-element tag.
    fn attributes(&mut self) -> Result<bool, Fail> {
        let mut here: HashMap<&'a [u8], usize> = HashMap::new();
        loop {
            let spaced = self.skip_space();
            match self.peek() {
                Some(b'>') => {
                    self.bump(1);
                    return Ok(false);
                }
                Some(b'/') if self.rest().starts_with(b"/>") => {
                    self.bump(2);
                    return Ok(true);
                }
                None => return self.fail("a start tag is never closed".into()),
                Some(_) if !spaced => {
                    return self.fail("attributes must be separated by white space".into());
                }
                Some(_) => {}
            }
            let line = self.line;
            let name = self.name("an attribute name")?;
            self.skip_space();
            if self.peek() != Some(b'=') {
                return self.fail(format!("attribute `{}` has no `=\"value\"`", shown(name)));
            }
            self.bump(1);
            self.skip_space();
            let Some(quote @ (b'"' | b'\'')) = self.peek() else {
                return self.fail(format!(
                    "the value of attribute `{}` is not in quotes",
                    shown(name)
                ));
            };
            self.bump(1);
            let rest = self.rest();
            let Some(len) = rest.iter().position(|&b| b == quote) else {
                return Err((
                    line,
                    format!("the value of attribute `{}` is never closed", shown(name)),
                ));
            };
            let value = rest.get(..len).unwrap_or_default();
            if value.contains(&b'<') {
                return self.fail(format!("`<` in the value of attribute `{}`", shown(name)));
            }
            self.references(value)?;
            self.attributes.push((name, value, line));
            self.bump(len + 1);
            if let Some(first) = here.insert(name, line) {
                return Err((
                    line,
                    format!(
                        "attribute `{}` appears twice in one element (first on line {first})",
                        shown(name)
                    ),
                ));
            }
            if let Some(first) = self.settings.get(name) {
                self.out.warn(
                    line,
                    format!(
                        "`{}` is already set on line {first}: one of the two values has no effect",
                        shown(name)
                    ),
                );
            } else {
                self.settings.insert(name, line);
            }
        }
    }

    /// Character data up to the next `<`.
    fn text(&mut self) -> Result<(), Fail> {
        let rest = self.rest();
        let len = rest.iter().position(|&b| b == b'<').unwrap_or(rest.len());
        let text = rest.get(..len).unwrap_or_default();
        self.references(text)?;
        self.bump(len);
        Ok(())
    }

    /// Every `&` in `text` starts `&name;`, `&#digits;` or `&#xhex;` (line counted from here).
    fn references(&self, text: &[u8]) -> Result<(), Fail> {
        let mut line = self.line;
        for (i, &b) in text.iter().enumerate() {
            if ends_line(text, i) {
                line += 1;
            }
            if b != b'&' {
                continue;
            }
            let after = text.get(i + 1..).unwrap_or_default();
            let end = after.iter().position(|&c| c == b';');
            let body = end.and_then(|e| after.get(..e)).unwrap_or_default();
            let ok = match body {
                [b'#', b'x', hex @ ..] => !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit),
                [b'#', dec @ ..] => !dec.is_empty() && dec.iter().all(u8::is_ascii_digit),
                [first, more @ ..] => name_start(*first) && more.iter().all(|&c| name_char(c)),
                [] => false,
            };
            if !ok {
                return Err((
                    line,
                    "`&` that starts no reference (write `&amp;` for a literal `&`)".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(src: &str) -> Vec<String> {
        lint_poly("p.cfg", src.as_bytes())
            .iter()
            .map(|f| format!("{:?} {f}", f.severity))
            .collect()
    }

    const TAIL: &str = ": not well-formed XML, the phone rejects the whole file";

    #[test]
    fn a_well_formed_file_has_no_findings() {
        let src = "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
                   <!-- a comment -->\n<!DOCTYPE x [ <!ENTITY a \"b\"> ]>\n<polycomConfig>\n\
                   <reg reg.1.address='201' reg.1.label=\"A &amp; B &#65; &#x41;\"\n\
                   \treg.1.auth.userId = \"201\"/>\n<![CDATA[ <not a tag> ]]>\n<?pi x?>\n\
                   text &lt;\n</polycomConfig>\n<!-- after -->\n";
        assert_eq!(findings(src), Vec::<String>::new());
        let master = "<?xml version=\"1.0\" standalone=\"yes\"?>\n<APPLICATION APP_FILE_PATH=\"sip.ld\" CONFIG_FILES=\"a.cfg, b.cfg\"/>\n";
        assert_eq!(findings(master), Vec::<String>::new());
    }

    #[test]
    fn xml_mistakes_name_their_line() {
        let case = |src: &str, line: usize, what: &str| {
            assert_eq!(
                findings(src),
                vec![format!("Error p.cfg:{line}: {what}{TAIL}")],
                "{src}"
            );
        };
        case(
            "<a>\n<b>\n</a>\n",
            3,
            "end tag `</a>` does not match `<b>` opened on line 2",
        );
        case("<a>\n<b/>\n", 1, "element `<a>` is never closed");
        case(
            "<a x=\"1\"\n x=\"2\"/>",
            2,
            "attribute `x` appears twice in one element (first on line 1)",
        );
        case("<a x=1/>", 1, "the value of attribute `x` is not in quotes");
        case("<a x/>", 1, "attribute `x` has no `=\"value\"`");
        case(
            "<a x=\"1\"y=\"2\"/>",
            1,
            "attributes must be separated by white space",
        );
        case(
            "<a x=\"a & b\"/>",
            1,
            "`&` that starts no reference (write `&amp;` for a literal `&`)",
        );
        case("<a x=\"<\"/>", 1, "`<` in the value of attribute `x`");
        case(
            "<a/>\n<b/>",
            2,
            "a second root element: an XML file has one",
        );
        case("<a/>\ntext", 2, "text or markup after the root element");
        case("", 1, "no root element");
        case("\r\n", 1, "no root element");
        case(
            "<a>\r<b>\r\n</a>",
            3,
            "end tag `</a>` does not match `<b>` opened on line 2",
        );
        case(
            "<a x=\"1\r&\"/>",
            2,
            "`&` that starts no reference (write `&amp;` for a literal `&`)",
        );
        case("<!-- a -- b -->\n<a/>", 1, "`--` inside a comment");
        case(
            "<a>\n<?xml version=\"1.0\"?></a>",
            2,
            "an XML declaration that is not at the very start",
        );
        case(
            "<a x=\"1\n",
            1,
            "the value of attribute `x` is never closed",
        );
        case("<1a/>", 1, "expected an element name, found `1`");
        case("</a>", 1, "text or markup before the root element");
    }

    #[test]
    fn a_setting_in_two_elements_is_a_warning() {
        assert_eq!(
            findings("<c>\n<a reg.1.address=\"1\"/>\n<b reg.1.address=\"2\"/>\n</c>\n"),
            vec![
                "Warning p.cfg:3: `reg.1.address` is already set on line 2: one of the two values \
                 has no effect"
            ]
        );
    }

    #[test]
    fn deep_or_odd_input_does_not_panic() {
        let deep = "<a>".repeat(100_000);
        assert_eq!(lint_poly("p", deep.as_bytes()).len(), 1);
        for src in [
            "<",
            "<a",
            "<a x",
            "<a x=",
            "<a x='",
            "<!--",
            "<?",
            "<!DOCTYPE",
            "&",
            "<a>&#x;</a>",
            "\u{FEFF}",
        ] {
            assert_eq!(lint_poly("p", src.as_bytes()).len(), 1, "{src}");
        }
    }
}
