//! Which phones read a settings file, so the linter checks it by the rules of its format.
//!
//! A phone asks for a file by name, and the name decides how the phone reads it: an Avaya phone
//! runs whatever `46xxsettings.txt` holds as a script, even a Yealink file put there by mistake.
//! So a name edgeprov knows ([`classify`], the names the phone service renders) decides first,
//! then the extension, and the content only where those leave a choice: `{mac}.cfg` and any
//! other `.cfg` is a Poly file when it is XML and a Yealink one otherwise, and a file with no
//! telling name is judged by its first line or its statements.

use std::fmt;
use std::str::FromStr;

use super::render::{FileName, classify};
use super::script::{Kind, Script};

/// The format of a settings file, named for the vendor whose phones read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The 46xx script language: `46xxsettings.txt`, upgrade scripts, `{mac}.txt`.
    Avaya,
    /// `#!version:1.0.0.1`, then `key = value` (cfg) or `include:config` (boot) lines.
    Yealink,
    /// XML whose attributes are the settings (Poly UC Software `.cfg`).
    Poly,
}

/// The values `--kind` takes, as the error for an unknown kind lists them.
pub const FILE_KINDS: &str = "avaya|yealink|poly";

impl FromStr for FileKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "avaya" => Ok(FileKind::Avaya),
            "yealink" => Ok(FileKind::Yealink),
            "poly" | "polycom" => Ok(FileKind::Poly),
            _ => Err(format!("unknown kind {s:?}: expected one of {FILE_KINDS}")),
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Avaya => "avaya",
            FileKind::Yealink => "yealink",
            FileKind::Poly => "poly",
        })
    }
}

impl FileKind {
    /// The kind of the file called `name` (a path or a bare name) holding `bytes`; `None` when
    /// neither says.
    pub fn of(name: &str, bytes: &[u8]) -> Option<FileKind> {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        if let Some(kind) = classify(base).and_then(by_generated_name) {
            return Some(kind);
        }
        let ext = base
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "txt" => Some(FileKind::Avaya),
            "boot" => Some(FileKind::Yealink),
            "xml" => Some(FileKind::Poly),
            "cfg" => Some(cfg_kind(bytes)),
            _ => by_content(bytes),
        }
    }
}

/// The kind of a name the phone service renders; `None` for `{mac}.cfg`, which Yealink and
/// Poly phones both ask for.
fn by_generated_name(file: FileName) -> Option<FileKind> {
    match file {
        FileName::AvayaSettings | FileName::AvayaUpgrade(_) | FileName::AvayaDevice(_) => {
            Some(FileKind::Avaya)
        }
        FileName::YealinkBoot | FileName::YealinkCommon(_) | FileName::DeviceBoot(_) => {
            Some(FileKind::Yealink)
        }
        FileName::PolyMaster | FileName::PolyCommon | FileName::PolyDevice(_) => {
            Some(FileKind::Poly)
        }
        FileName::DeviceCfg(_) => None,
    }
}

/// The bytes after a UTF-8 byte order mark and leading white space.
fn start(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let at = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[at..]
}

/// A `.cfg` is Poly's when it is XML: Yealink cfg files are never XML.
fn cfg_kind(bytes: &[u8]) -> FileKind {
    if start(bytes).starts_with(b"<") {
        FileKind::Poly
    } else {
        FileKind::Yealink
    }
}

/// Yealink's version line, XML, or 46xx statements.
fn by_content(bytes: &[u8]) -> Option<FileKind> {
    let head = start(bytes);
    if head.starts_with(b"#!version:") {
        return Some(FileKind::Yealink);
    }
    if head.starts_with(b"<") {
        return Some(FileKind::Poly);
    }
    let script = Script::parse(bytes);
    script
        .statements()
        .iter()
        .any(|s| {
            matches!(
                s.kind,
                Kind::Set(_) | Kind::If(_) | Kind::Goto { .. } | Kind::Get { .. }
            )
        })
        .then_some(FileKind::Avaya)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decide_then_extensions_then_content() {
        let kind = FileKind::of;
        assert_eq!(kind("46xxsettings.txt", b""), Some(FileKind::Avaya));
        assert_eq!(kind("dir/46xxspecials.txt", b""), Some(FileKind::Avaya));
        // The name wins over content: an Avaya phone runs 46xxsettings.txt whatever it holds.
        assert_eq!(
            kind("46xxsettings.txt", b"#!version:1.0.0.1\n"),
            Some(FileKind::Avaya)
        );
        assert_eq!(kind("y000000000000.boot", b""), Some(FileKind::Yealink));
        assert_eq!(kind("y000000000066.cfg", b"<a/>"), Some(FileKind::Yealink));
        assert_eq!(
            kind("x/teams.y000000000000.boot", b""),
            Some(FileKind::Yealink)
        );
        assert_eq!(kind("000000000000.cfg", b""), Some(FileKind::Poly));
        assert_eq!(kind("001122aabbcc-phone.cfg", b""), Some(FileKind::Poly));
        assert_eq!(
            kind("001122aabbcc.cfg", b"a = 1\n"),
            Some(FileKind::Yealink)
        );
        assert_eq!(
            kind(
                "001122aabbcc.cfg",
                b"\xEF\xBB\xBF <?xml version=\"1.0\"?><a/>"
            ),
            Some(FileKind::Poly)
        );
        assert_eq!(kind("site.cfg", b"<polycomConfig/>"), Some(FileKind::Poly));
        assert_eq!(kind("site.cfg", b""), Some(FileKind::Yealink));
        assert_eq!(
            kind("a", b"#!version:1.0.0.1\na = 1\n"),
            Some(FileKind::Yealink)
        );
        assert_eq!(kind("a", b"<x/>"), Some(FileKind::Poly));
        assert_eq!(kind("a", b"## c\nSET A 1\n"), Some(FileKind::Avaya));
        assert_eq!(kind("a", b"## only a comment\n"), None);
        assert_eq!(kind("a.json", b"{}"), None);
        assert_eq!(kind("", b""), None);
    }

    #[test]
    fn kinds_parse_and_print() {
        for k in [FileKind::Avaya, FileKind::Yealink, FileKind::Poly] {
            assert_eq!(k.to_string().parse(), Ok(k));
        }
        assert_eq!("Polycom".parse(), Ok(FileKind::Poly));
        let err = "cisco".parse::<FileKind>().unwrap_err();
        assert!(err.contains("avaya|yealink|poly"), "{err}");
    }
}
