//! Writing `SET NAME value` lines that a phone reads back as exactly `NAME` and `value`.
//!
//! The script language has no escaping: a value either is one word, or sits between ASCII
//! double quotes and then cannot contain one. So some values cannot be expressed at all, and
//! edgeprov must say so rather than emit a line the phone reads differently.

use thiserror::Error;

/// Why a `SET` line cannot carry a name or value unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuoteError {
    /// Names are one word of visible characters.
    #[error("parameter name {0:?} is empty or contains blanks, quotes or control characters")]
    BadName(String),
    /// There is no escape for a `"` inside a value.
    #[error("value for {name} contains a double quote, which a settings file cannot express")]
    QuoteInValue {
        /// The parameter whose value was refused.
        name: String,
    },
    /// A line end would end the statement; other control characters are not text.
    #[error("value for {name} contains a line end or control character")]
    ControlInValue {
        /// The parameter whose value was refused.
        name: String,
    },
}

fn bad_value_char(c: char) -> bool {
    c == '"' || c.is_control() && c != '\t'
}

/// Whether `value` must be quoted to be read back whole.
///
/// Quoted when empty (an empty bare value is a `SET` without value, which the phone ignores),
/// when it contains a blank (a bare value ends at the first blank), and when it starts with
/// `#` or a curly quote, which a human reader could take for a comment or a quote.
fn needs_quotes(value: &str) -> bool {
    value.is_empty()
        || value.contains([' ', '\t'])
        || value.starts_with(['#', '\u{201C}', '\u{201D}'])
}

/// The line `SET NAME value` (no line end), quoting the value when needed, or why it cannot be
/// written. The name is upper-cased because that is how the phone sees it.
pub fn try_set_line(name: &str, value: &str) -> Result<String, QuoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '"' || c.is_whitespace() || c.is_control())
    {
        return Err(QuoteError::BadName(name.to_owned()));
    }
    let name = name.to_ascii_uppercase();
    if value.contains('"') {
        return Err(QuoteError::QuoteInValue { name });
    }
    if value.chars().any(bad_value_char) {
        return Err(QuoteError::ControlInValue { name });
    }
    Ok(if needs_quotes(value) {
        format!("SET {name} \"{value}\"")
    } else {
        format!("SET {name} {value}")
    })
}

/// Like [`try_set_line`], for callers that have already validated their values: characters
/// that cannot be expressed are dropped (double quotes, control characters other than tab;
/// blanks, quotes and control characters in the name, and a name left empty becomes `_`), so
/// the result is always one line the phone reads as one statement. Use [`try_set_line`]
/// wherever a changed value would matter.
pub fn set_line(name: &str, value: &str) -> String {
    let name: String = name
        .chars()
        .filter(|&c| c != '"' && !c.is_whitespace() && !c.is_control())
        .collect();
    let name = if name.is_empty() {
        "_".to_owned()
    } else {
        name
    };
    let value: String = value.chars().filter(|&c| !bad_value_char(c)).collect();
    try_set_line(&name, &value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::script::{Kind, Script};

    /// Reads a rendered line back through the parser: what the phone would see.
    fn read_back(line: &str) -> (String, String) {
        let script = Script::parse(line.as_bytes());
        match &script.statements()[0].kind {
            Kind::Set(set) => (
                String::from_utf8_lossy(set.name).into_owned(),
                String::from_utf8_lossy(&set.value.effective().unwrap()).into_owned(),
            ),
            other => panic!("not a SET: {other:?}"),
        }
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(set_line("sntpsrvr", "10.0.0.1"), "SET SNTPSRVR 10.0.0.1");
        assert_eq!(set_line("PHNOL", ""), "SET PHNOL \"\"");
        assert_eq!(
            set_line("DISPLAY_NAME", "Chef Telefon"),
            "SET DISPLAY_NAME \"Chef Telefon\""
        );
        assert_eq!(set_line("X", "#1"), "SET X \"#1\"");
        assert_eq!(set_line("X", "a\tb"), "SET X \"a\tb\"");
    }

    #[test]
    fn rendered_lines_read_back_unchanged() {
        for value in [
            "",
            "1",
            "a b",
            "  padded ",
            "“curly”",
            "#x",
            "ünï",
            "a;b=c,d",
        ] {
            let line = try_set_line("Name", value).unwrap();
            assert_eq!(
                read_back(&line),
                ("NAME".to_owned(), value.to_owned()),
                "{line}"
            );
        }
    }

    #[test]
    fn inexpressible_values_are_refused() {
        assert_eq!(
            try_set_line("X", "say \"hi\""),
            Err(QuoteError::QuoteInValue { name: "X".into() })
        );
        assert_eq!(
            try_set_line("x", "a\nb"),
            Err(QuoteError::ControlInValue { name: "X".into() })
        );
        assert_eq!(
            try_set_line("", "1"),
            Err(QuoteError::BadName(String::new()))
        );
        assert_eq!(
            try_set_line("A B", "1"),
            Err(QuoteError::BadName("A B".into()))
        );
    }

    #[test]
    fn unchecked_variant_drops_what_cannot_be_written() {
        assert_eq!(set_line("X", "say \"hi\"\r\n"), "SET X \"say hi\"");
        assert_eq!(set_line("A B\"", "1"), "SET AB 1");
        assert_eq!(set_line(" ", "1"), "SET _ 1");
    }

    #[test]
    fn error_messages_name_the_parameter() {
        let err = try_set_line("x", "\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "value for X contains a double quote, which a settings file cannot express"
        );
    }
}
