//! Classifying one physical line as the phone would read it.
//!
//! Kept apart from the line model so the rules a phone applies to a single line sit in one
//! place; joining lines for a quoted value that spans line breaks is the parser's job.

use super::script::{If, Keyword, Kind, Problem, Set, Value, trim};

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_start(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| !is_blank(b))
        .unwrap_or(text.len());
    &text[start..]
}

/// The next word of `text` (leading blanks skipped) and the text after it.
///
/// A word starting with an ASCII `"` runs to the next `"` and is returned without the quotes
/// (to the line end when there is none); any other word ends at a blank.
fn next_word(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let text = trim_start(text);
    match text.first()? {
        b'"' => {
            let inner = &text[1..];
            match inner.iter().position(|&b| b == b'"') {
                Some(close) => Some((&inner[..close], &inner[close + 1..])),
                None => Some((inner, b"")),
            }
        }
        _ => {
            let end = text.iter().position(|&b| is_blank(b)).unwrap_or(text.len());
            Some((&text[..end], &text[end..]))
        }
    }
}

/// Splits the keyword off a line: the keyword must be followed by a blank or the line end,
/// so `SETTINGS` or `GETX` are not statements.
fn keyword(text: &[u8]) -> Option<(Keyword, &[u8])> {
    let end = text.iter().position(|&b| is_blank(b)).unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    let keyword = if word.eq_ignore_ascii_case(b"SET") {
        Keyword::Set
    } else if word.eq_ignore_ascii_case(b"IF") {
        Keyword::If
    } else if word.eq_ignore_ascii_case(b"GOTO") {
        Keyword::Goto
    } else if word.eq_ignore_ascii_case(b"GET") {
        Keyword::Get
    } else {
        return None;
    };
    Some((keyword, rest))
}

/// Classifies one line's content (no line end).
///
/// The second result is set when the line is a `SET` whose quoted value is not closed on this
/// line: it is the offset in `content` where the value's text starts, so the parser can
/// extend the statement over the following lines.
pub(crate) fn classify(content: &[u8]) -> (Kind<'_>, Option<usize>) {
    if let Some(name) = label(content) {
        return (Kind::Label { name }, None);
    }
    let text = trim_start(content);
    match text.first() {
        None => return (Kind::Blank, None),
        Some(b'#') => return (Kind::Comment, None),
        Some(_) => {}
    }
    let Some((keyword, rest)) = keyword(text) else {
        return (Kind::Other, None);
    };
    let invalid = |problem| (Kind::Invalid { keyword, problem }, None);
    match keyword {
        Keyword::Set => {
            let Some((name, after_name)) = next_word(rest) else {
                return invalid(Problem::MissingName);
            };
            let value_text = trim_start(after_name);
            if let Some(quoted) = value_text.strip_prefix(b"\"") {
                return match quoted.iter().position(|&b| b == b'"') {
                    Some(close) => (
                        Kind::Set(Set {
                            name,
                            value: Value::Quoted {
                                text: &quoted[..close],
                                closed: true,
                                trailing: trim(&quoted[close + 1..]),
                            },
                        }),
                        None,
                    ),
                    None => {
                        let at = content.len() - quoted.len();
                        let set = Set {
                            name,
                            value: Value::Quoted {
                                text: quoted,
                                closed: false,
                                trailing: b"",
                            },
                        };
                        (Kind::Set(set), Some(at))
                    }
                };
            }
            let value_text = trim(value_text);
            let value = if value_text.is_empty() {
                Value::Missing
            } else {
                Value::Bare(value_text)
            };
            (Kind::Set(Set { name, value }), None)
        }
        Keyword::Goto => match one_word(rest) {
            Ok(label) => (Kind::Goto { label }, None),
            Err(None) => invalid(Problem::MissingLabel),
            Err(Some(problem)) => invalid(problem),
        },
        Keyword::Get => match one_word(rest) {
            Ok(file) => (Kind::Get { file }, None),
            Err(None) => invalid(Problem::MissingFile),
            Err(Some(problem)) => invalid(problem),
        },
        Keyword::If => match if_parts(rest) {
            Some(parts) => (Kind::If(parts), None),
            None => invalid(Problem::IfShape),
        },
    }
}

/// `# label`: `#` in column one, one space, one word, optional trailing blanks.
fn label(content: &[u8]) -> Option<&[u8]> {
    let rest = content.strip_prefix(b"# ")?;
    let name = trim(rest);
    let starts_right = rest.first().is_some_and(|&b| !is_blank(b));
    (starts_right && !name.is_empty() && !name.iter().any(|&b| is_blank(b))).then_some(name)
}

/// Exactly one word: `Err(None)` when there is none, `Err(Some(ExtraWords))` for more.
fn one_word(text: &[u8]) -> Result<&[u8], Option<Problem>> {
    let (word, rest) = next_word(text).ok_or(None)?;
    if trim(rest).is_empty() {
        Ok(word)
    } else {
        Err(Some(Problem::ExtraWords))
    }
}

/// `$VAR op value GOTO label` (after the `IF`), nothing more.
fn if_parts(text: &[u8]) -> Option<If<'_>> {
    let (var, text) = next_word(text)?;
    let var = var.strip_prefix(b"$").filter(|v| !v.is_empty())?;
    let (op, text) = next_word(text)?;
    let (value, text) = next_word(text)?;
    let (goto, text) = next_word(text)?;
    if !goto.eq_ignore_ascii_case(b"GOTO") {
        return None;
    }
    let label = one_word(text).ok()?;
    Some(If {
        var,
        op,
        value,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> Kind<'_> {
        classify(line.as_bytes()).0
    }

    #[test]
    fn labels_need_one_hash_one_space_one_word() {
        assert_eq!(kind("# END"), Kind::Label { name: b"END" });
        assert_eq!(kind("# END  \t"), Kind::Label { name: b"END" });
        assert_eq!(kind("## END"), Kind::Comment);
        assert_eq!(kind("#END"), Kind::Comment);
        assert_eq!(kind("#  END"), Kind::Comment);
        assert_eq!(kind(" # END"), Kind::Comment);
        assert_eq!(kind("# SET TRUSTCERTS WebRootCA.pem"), Kind::Comment);
        assert_eq!(kind("# "), Kind::Comment);
    }

    #[test]
    fn keywords_ignore_case_and_need_a_blank_after() {
        assert_eq!(kind("goto X"), Kind::Goto { label: b"X" });
        assert_eq!(kind("  GoTo\tX"), Kind::Goto { label: b"X" });
        assert_eq!(kind("SETTINGS X"), Kind::Other);
        assert_eq!(kind("ADD X 1"), Kind::Other);
        assert!(matches!(kind("Set X 1"), Kind::Set(Set { name: b"X", .. })));
    }

    #[test]
    fn set_values() {
        let value = |line| match kind(line) {
            Kind::Set(set) => set.value,
            other => panic!("not a SET: {other:?}"),
        };
        assert_eq!(value("SET A 1"), Value::Bare(b"1"));
        assert_eq!(value("SET A a b  "), Value::Bare(b"a b"));
        assert_eq!(value("SET A"), Value::Missing);
        assert_eq!(value("SET A   "), Value::Missing);
        assert_eq!(
            value("SET A \"x y\" z"),
            Value::Quoted {
                text: b"x y",
                closed: true,
                trailing: b"z"
            }
        );
        assert_eq!(value("SET A “x y”"), Value::Bare("“x y”".as_bytes()));
    }

    #[test]
    fn open_quote_reports_where_the_text_starts() {
        let (kind, at) = classify(b"SET A \"abc");
        assert_eq!(at, Some(7));
        assert!(matches!(kind, Kind::Set(_)));
    }

    #[test]
    fn if_statements() {
        assert_eq!(
            kind("IF $MODEL4 SEQ J179 GOTO X"),
            Kind::If(If {
                var: b"MODEL4",
                op: b"SEQ",
                value: b"J179",
                label: b"X"
            })
        );
        assert_eq!(
            kind("if $$SIG_IN_USE seq \"H 323\" goto Y"),
            Kind::If(If {
                var: b"$SIG_IN_USE",
                op: b"seq",
                value: b"H 323",
                label: b"Y"
            })
        );
        let shape = Kind::Invalid {
            keyword: Keyword::If,
            problem: Problem::IfShape,
        };
        assert_eq!(kind("IF MODEL4 SEQ J179 GOTO X"), shape);
        assert_eq!(kind("IF $MODEL4 SEQ J179 X"), shape);
        assert_eq!(kind("IF $MODEL4 SEQ J179 GOTO X Y"), shape);
        assert_eq!(kind("IF $ SEQ J179 GOTO X"), shape);
    }

    #[test]
    fn goto_and_get_take_one_word() {
        assert_eq!(kind("GET \"a b.txt\""), Kind::Get { file: b"a b.txt" });
        assert_eq!(
            kind("GET"),
            Kind::Invalid {
                keyword: Keyword::Get,
                problem: Problem::MissingFile
            }
        );
        assert_eq!(
            kind("GOTO A B"),
            Kind::Invalid {
                keyword: Keyword::Goto,
                problem: Problem::ExtraWords
            }
        );
    }
}
