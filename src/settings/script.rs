//! The line model of a settings script: every statement keeps the exact bytes it came from.
//!
//! edgeprov rewrites, checks and serves files written by hand and by other systems; it must
//! never change a byte it was not asked to change. So parsing never fails: each physical line
//! becomes part of exactly one [`Statement`], and [`Script::print`] gives back the input byte
//! for byte. Classification borrows from the input and allocates only the statement vector,
//! which keeps parsing a 1 MB template well inside a millisecond budget.

use std::borrow::Cow;
use std::collections::HashMap;

use super::classify::classify;
use super::lines::Lines;

/// A parsed settings script, borrowing the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script<'a> {
    statements: Vec<Statement<'a>>,
}

/// One statement: usually one physical line, several when a quoted value spans line breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// 1-based number of the statement's first physical line, as an editor shows it.
    pub line: usize,
    /// How many physical lines the statement covers (at least 1).
    pub lines: usize,
    /// The original bytes of those lines, line ends included.
    pub raw: &'a [u8],
    /// What the phone makes of the statement.
    pub kind: Kind<'a>,
}

/// What a phone makes of a statement.
///
/// Keywords (`SET`, `IF`, `SEQ`, `GOTO`, `GET`) are matched without regard to case because
/// real files contain `goto` and `Set`; leading blanks before a keyword are allowed. Names,
/// labels and values are kept as bytes because files in the field are not always UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `SET NAME value`.
    Set(Set<'a>),
    /// `IF $VAR op value GOTO label`.
    If(If<'a>),
    /// `GOTO label`.
    Goto {
        /// The label to continue after.
        label: &'a [u8],
    },
    /// `# label`: a `#` in column one, exactly one space, then one word.
    ///
    /// `## LABEL`, `#LABEL`, `#  LABEL` and `# TWO WORDS` are comments, not labels: the
    /// reference lists "a commented-out label that a GOTO still targets" as a pitfall, that is
    /// the phone does not find it. Trailing blanks after the word are ignored (editors add
    /// them invisibly and nothing suggests a phone keeps them).
    Label {
        /// The label word.
        name: &'a [u8],
    },
    /// `GET filename`.
    Get {
        /// The file name as written, before `$VAR` substitution.
        file: &'a [u8],
    },
    /// A keyword statement the phone cannot use because a part is missing or misplaced.
    Invalid {
        /// The statement's keyword.
        keyword: Keyword,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A line whose first non-blank character is `#` and that is not a label.
    Comment,
    /// An empty or all-blank line.
    Blank,
    /// Any other text: the phone ignores it (this includes J100's `ADD`, whose meaning no
    /// vendor text confirms).
    Other,
}

/// The statement keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// `SET`
    Set,
    /// `IF`
    If,
    /// `GOTO`
    Goto,
    /// `GET`
    Get,
}

/// Why a keyword statement is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// `SET` with no parameter name.
    MissingName,
    /// `GOTO` with no label.
    MissingLabel,
    /// `GET` with no file name.
    MissingFile,
    /// More than one word where one was expected.
    ExtraWords,
    /// An `IF` that is not `IF $VAR op value GOTO label`.
    IfShape,
}

/// `SET NAME value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<'a> {
    /// The name as written; the phone sees it upper-cased.
    pub name: &'a [u8],
    /// The value as written.
    pub value: Value<'a>,
}

/// The value part of a `SET` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// Nothing after the name.
    Missing,
    /// An unquoted value: everything after the name up to the line end, trailing blanks
    /// removed. Only its first word is used (see [`Value::effective`]).
    Bare(&'a [u8]),
    /// A value in ASCII double quotes (curly quotes are ordinary characters).
    Quoted {
        /// The bytes between the quotes; contains line ends when the value spans lines.
        text: &'a [u8],
        /// False when no closing quote follows before the end of the file.
        closed: bool,
        /// Non-blank text after the closing quote on its line, which the phone ignores.
        trailing: &'a [u8],
    },
}

impl<'a> Value<'a> {
    /// The value the phone uses, or `None` when it has none to use.
    ///
    /// - Missing value: `None`. The reference says an invalid value is ignored and the previous
    ///   value kept; `SET NAME ""` is how a file sends an empty value.
    /// - Bare value: its first word. The reference requires quotes around a value with
    ///   spaces, so the phone splits on blanks; the linter reports the rest as ignored.
    /// - Quoted value spanning lines: the pieces joined without the line ends, because such
    ///   breaks come from editors wrapping long lists (unconfirmed on a phone).
    /// - Quoted value never closed: `None`; it swallows the rest of the file and is not a
    ///   value the phone can accept.
    pub fn effective(&self) -> Option<Cow<'a, [u8]>> {
        match *self {
            Value::Missing => None,
            Value::Bare(text) => Some(Cow::Borrowed(first_word(text))),
            Value::Quoted { closed: false, .. } => None,
            Value::Quoted { text, .. } => {
                if text.iter().any(|&b| b == b'\r' || b == b'\n') {
                    Some(Cow::Owned(
                        text.iter()
                            .copied()
                            .filter(|&b| b != b'\r' && b != b'\n')
                            .collect(),
                    ))
                } else {
                    Some(Cow::Borrowed(text))
                }
            }
        }
    }
}

/// `IF $VAR op value GOTO label`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct If<'a> {
    /// The variable name without its leading `$` (so `$$SIG_IN_USE` gives `$SIG_IN_USE`).
    pub var: &'a [u8],
    /// The operator as written; only `SEQ` is known.
    pub op: &'a [u8],
    /// The string compared with, without quotes if it was quoted.
    pub value: &'a [u8],
    /// The label to jump to when the condition holds.
    pub label: &'a [u8],
}

impl If<'_> {
    /// Whether the operator is the only one phones know, `SEQ` (any case).
    pub fn is_seq(&self) -> bool {
        self.op.eq_ignore_ascii_case(b"SEQ")
    }
}

/// The first blank-separated word of `text` (which has no leading blanks).
pub(crate) fn first_word(text: &[u8]) -> &[u8] {
    let end = text
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(text.len());
    &text[..end]
}

impl<'a> Script<'a> {
    /// Parses `src`. Never fails: a line the phone would not understand is kept as what it
    /// is ([`Kind::Other`], [`Kind::Invalid`]) so the linter can point at it.
    pub fn parse(src: &'a [u8]) -> Self {
        // One statement per LF-ended line at most (lone-CR files grow the vector instead):
        // counting first avoids both reallocation and over-allocating megabytes.
        let line_ends = src.iter().filter(|&&b| b == b'\n').count();
        let mut statements = Vec::with_capacity(line_ends + 1);
        let mut lines = Lines::new(src);
        let mut number = 0;
        while let Some(first) = lines.next() {
            number += 1;
            let (mut kind, open_quote) = classify(first.content);
            let mut end = first.start + first.full.len();
            let mut count = 1;
            if let (Some(text_at), Kind::Set(set)) = (open_quote, &mut kind) {
                let text_start = first.start + text_at;
                let mut closed_at = None;
                for next in lines.by_ref() {
                    count += 1;
                    end = next.start + next.full.len();
                    if let Some(q) = next.content.iter().position(|&b| b == b'"') {
                        closed_at = Some((next.start + q, &next.content[q + 1..]));
                        break;
                    }
                }
                set.value = match closed_at {
                    Some((close, after)) => Value::Quoted {
                        text: &src[text_start..close],
                        closed: true,
                        trailing: trim(after),
                    },
                    None => Value::Quoted {
                        text: &src[text_start..end],
                        closed: false,
                        trailing: b"",
                    },
                };
            }
            statements.push(Statement {
                line: number,
                lines: count,
                raw: &src[first.start..end],
                kind,
            });
            number += count - 1;
        }
        Self { statements }
    }

    /// The statements in file order.
    pub fn statements(&self) -> &[Statement<'a>] {
        &self.statements
    }

    /// The original bytes: `Script::parse(x).print() == x` for every input.
    pub fn print(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.statements.iter().map(|s| s.raw.len()).sum());
        for statement in &self.statements {
            out.extend_from_slice(statement.raw);
        }
        out
    }

    /// Where each label is: label name to statement index.
    ///
    /// Labels compare byte for byte, case included; the first of duplicate labels wins (the
    /// linter reports duplicates, so an author never depends on either choice). Built once per
    /// file so that each `GOTO` is a lookup, not a scan of a 1 MB template.
    pub fn labels(&self) -> HashMap<&'a [u8], usize> {
        let mut labels = HashMap::new();
        for (index, statement) in self.statements.iter().enumerate() {
            if let Kind::Label { name } = statement.kind {
                labels.entry(name).or_insert(index);
            }
        }
        labels
    }
}

/// `text` without leading and trailing blanks.
pub(crate) fn trim(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &text[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds<'a>(script: &Script<'a>) -> Vec<(usize, usize, Kind<'a>)> {
        script
            .statements()
            .iter()
            .map(|s| (s.line, s.lines, s.kind.clone()))
            .collect()
    }

    #[test]
    fn quoted_value_spanning_lines_is_one_statement() {
        let src = b"SET A \"one,\r\ntwo,\nthree\" x\nSET B 2";
        let script = Script::parse(src);
        let statements = script.statements();
        assert_eq!(statements.len(), 2);
        assert_eq!((statements[0].line, statements[0].lines), (1, 3));
        assert_eq!(statements[0].raw, b"SET A \"one,\r\ntwo,\nthree\" x\n");
        let Kind::Set(set) = &statements[0].kind else {
            panic!("not a SET")
        };
        assert_eq!(
            set.value,
            Value::Quoted {
                text: b"one,\r\ntwo,\nthree",
                closed: true,
                trailing: b"x"
            }
        );
        assert_eq!(set.value.effective().unwrap().as_ref(), b"one,two,three");
        assert_eq!(statements[1].line, 4);
        assert_eq!(script.print(), src);
    }

    #[test]
    fn quote_left_open_runs_to_end_of_file() {
        let src = b"SET A \"open\nSET B 2\n# END\n";
        let script = Script::parse(src);
        assert_eq!(script.statements().len(), 1);
        let statement = &script.statements()[0];
        assert_eq!(statement.lines, 3);
        let Kind::Set(set) = &statement.kind else {
            panic!("not a SET")
        };
        assert!(matches!(set.value, Value::Quoted { closed: false, .. }));
        assert_eq!(set.value.effective(), None);
        assert_eq!(script.print(), src);
    }

    #[test]
    fn curly_quotes_do_not_open_a_value() {
        let src = "SET A “open\nSET B 2\n".as_bytes();
        assert_eq!(Script::parse(src).statements().len(), 2);
    }

    #[test]
    fn line_numbers_count_every_line_end_style() {
        let script = Script::parse(b"\r\n# L\rGOTO L\n\n  \t\nx");
        assert_eq!(
            kinds(&script),
            vec![
                (1, 1, Kind::Blank),
                (2, 1, Kind::Label { name: b"L" }),
                (3, 1, Kind::Goto { label: b"L" }),
                (4, 1, Kind::Blank),
                (5, 1, Kind::Blank),
                (6, 1, Kind::Other),
            ]
        );
    }

    #[test]
    fn bare_value_uses_first_word() {
        assert_eq!(
            Value::Bare(b"a b").effective().unwrap().as_ref(),
            b"a".as_slice()
        );
        assert_eq!(Value::Missing.effective(), None);
    }

    #[test]
    fn first_duplicate_label_wins() {
        let script = Script::parse(b"# A\n# B\n# A\n");
        let labels = script.labels();
        assert_eq!(labels.get(b"A".as_slice()), Some(&0));
        assert_eq!(labels.get(b"B".as_slice()), Some(&1));
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn trim_handles_all_blank_and_empty() {
        assert_eq!(trim(b"  \t "), b"");
        assert_eq!(trim(b""), b"");
        assert_eq!(trim(b" a b "), b"a b");
    }
}
