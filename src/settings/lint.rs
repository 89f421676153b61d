//! Finding the mistakes that make a phone silently ignore part of a settings file.
//!
//! Every finding here is something the phone does *not* report: a jump to a commented-out
//! label drops the rest of the file, an unquoted value with a blank is cut short, a quote left
//! open swallows everything after it. The linter says which line and why.

use std::collections::HashMap;
use std::fmt;

use super::file_kind::FileKind;
use super::lines::Lines;
use super::lint_poly::lint_poly;
use super::lint_yealink::lint_yealink;
use super::script::{Keyword, Kind, Problem, Script, Statement, Value};
use super::vars::KNOWN_VARIABLES;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Probably not what the author meant; the phone still reads the rest as intended.
    Warning,
    /// The phone ignores a statement or part of the file.
    Error,
}

/// One problem at one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file name given to [`lint`].
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong and what the phone does about it.
    pub message: String,
}

impl fmt::Display for Finding {
    /// `FILE:LINE: message`, the form editors and CI logs turn into links.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Length limits checked by the linter.
///
/// No vendor text gives the phone's line buffer size; most parameters are documented as at
/// most 255 characters and a few lists as longer. These are configurable so a site can match
/// its phones; both produce warnings, not errors, for that reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LintLimits {
    /// Longest physical line, line end excluded.
    pub max_line_bytes: usize,
    /// Longest `SET` value.
    pub max_value_bytes: usize,
}

/// Default line limit: 1024 bytes, a common fixed line buffer in embedded parsers.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024;
/// Default value limit: 255 bytes, the documented maximum of most phone parameters.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 255;

impl Default for LintLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// Lints the bytes of `file` by the rules of its `kind` ([`FileKind::of`] tells it from the
/// name and content): the 46xx script rules for Avaya, the cfg rules for Yealink
/// ([`lint_yealink`]), XML for Poly ([`lint_poly`]). Each format has its own mistakes; the
/// rules of one find only noise in another's files.
pub fn lint_file(file: &str, bytes: &[u8], kind: FileKind) -> Vec<Finding> {
    match kind {
        FileKind::Avaya => lint(file, &Script::parse(bytes)),
        FileKind::Yealink => lint_yealink(file, bytes),
        FileKind::Poly => lint_poly(file, bytes),
    }
}

/// Lints `script` (called `file` in findings) with the default limits.
pub fn lint(file: &str, script: &Script<'_>) -> Vec<Finding> {
    lint_with(file, script, &LintLimits::default())
}

/// Lints with explicit limits. Findings come in line order.
pub fn lint_with(file: &str, script: &Script<'_>, limits: &LintLimits) -> Vec<Finding> {
    let mut out = Linter::new(file);
    let statements = script.statements();
    let labels = labels(statements, &mut out);
    let mut unreachable_after: Option<usize> = None;
    for (at, statement) in statements.iter().enumerate() {
        let line = statement.line;
        check_lengths(statement, limits, &mut out);
        match &statement.kind {
            Kind::Label { .. } => unreachable_after = None,
            Kind::Set(_) | Kind::If(_) | Kind::Goto { .. } | Kind::Get { .. } => {
                if let Some(goto_line) = unreachable_after.take() {
                    out.warn(
                        line,
                        format!(
                            "unreachable: follows the unconditional GOTO on line {goto_line} \
                             and no label comes before it"
                        ),
                    );
                }
            }
            _ => {}
        }
        if has_curly_quote(statement) {
            out.warn(
                line,
                "curly quote is not a quote to the phone: it becomes part of the text".into(),
            );
        }
        match &statement.kind {
            Kind::Set(set) => {
                let name = String::from_utf8_lossy(set.name);
                let next = statements.get(at + 1);
                check_value(&name, &set.value, statement, next, limits, &mut out);
            }
            Kind::If(cond) => {
                if !cond.is_seq() {
                    out.error(
                        line,
                        format!(
                            "unknown operator `{}` (only SEQ exists): the condition is skipped",
                            String::from_utf8_lossy(cond.op)
                        ),
                    );
                }
                check_variable(cond.var, line, &mut out);
                check_target(cond.label, line, script, &labels, &mut out);
            }
            Kind::Goto { label } => {
                check_target(label, line, script, &labels, &mut out);
                unreachable_after = Some(line);
            }
            Kind::Invalid { keyword, problem } => out.error(line, invalid(*keyword, *problem)),
            Kind::Other => other(statement, &mut out),
            Kind::Get { .. } | Kind::Label { .. } | Kind::Comment | Kind::Blank => {}
        }
    }
    out.findings.sort_by_key(|f| f.line);
    out.findings
}

/// Findings of one file as they are found, for the linter of each format.
pub(crate) struct Linter<'f> {
    file: &'f str,
    pub(crate) findings: Vec<Finding>,
}

impl<'f> Linter<'f> {
    pub(crate) fn new(file: &'f str) -> Self {
        Self {
            file,
            findings: Vec::new(),
        }
    }

    fn push(&mut self, line: usize, severity: Severity, message: String) {
        self.findings.push(Finding {
            file: self.file.to_owned(),
            line,
            severity,
            message,
        });
    }

    pub(crate) fn warn(&mut self, line: usize, message: String) {
        self.push(line, Severity::Warning, message);
    }

    pub(crate) fn error(&mut self, line: usize, message: String) {
        self.push(line, Severity::Error, message);
    }
}

/// Label name to line of its first definition; reports duplicates.
fn labels<'a>(statements: &[Statement<'a>], out: &mut Linter<'_>) -> HashMap<&'a [u8], usize> {
    let mut labels = HashMap::new();
    for statement in statements {
        if let Kind::Label { name } = statement.kind {
            if let Some(first) = labels.get(name) {
                out.warn(
                    statement.line,
                    format!(
                        "label `{}` is already defined on line {first}; jumps go to the first",
                        String::from_utf8_lossy(name)
                    ),
                );
            } else {
                labels.insert(name, statement.line);
            }
        }
    }
    labels
}

/// The first physical line of a statement without its line end.
fn first_line<'a>(statement: &Statement<'a>) -> &'a [u8] {
    let raw = statement.raw;
    let end = raw
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(raw.len());
    &raw[..end]
}

fn check_target(
    label: &[u8],
    line: usize,
    script: &Script<'_>,
    labels: &HashMap<&[u8], usize>,
    out: &mut Linter<'_>,
) {
    if labels.contains_key(label) {
        return;
    }
    let shown = String::from_utf8_lossy(label);
    let mut message =
        format!("GOTO target `{shown}` does not exist: the phone ignores the rest of the file");
    if let Some(comment) = script.statements().iter().find(|s| {
        matches!(s.kind, Kind::Comment)
            && first_line(s)
                .strip_prefix(b"#")
                .is_some_and(|rest| trim_hashes(rest) == label)
    }) {
        message.push_str(&format!(
            " (label exists only as a comment `{}` on line {})",
            String::from_utf8_lossy(first_line(comment)).trim_end(),
            comment.line
        ));
    } else if let Some((other, at)) = labels.iter().find(|(l, _)| l.eq_ignore_ascii_case(label)) {
        message.push_str(&format!(
            " (label `{}` on line {at} differs in case)",
            String::from_utf8_lossy(other)
        ));
    }
    out.error(line, message);
}

/// `text` without leading `#`s and surrounding blanks: what is left of a commented label.
fn trim_hashes(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| b != b'#' && b != b' ' && b != b'\t')
        .unwrap_or(text.len());
    super::script::trim(&text[start..])
}

fn check_variable(var: &[u8], line: usize, out: &mut Linter<'_>) {
    if KNOWN_VARIABLES
        .iter()
        .any(|k| k.as_bytes().eq_ignore_ascii_case(var))
    {
        return;
    }
    let shown = String::from_utf8_lossy(var);
    let mut message =
        format!("`${shown}` is not a variable phones define: the condition is always skipped");
    if let Some(single) = var.strip_prefix(b"$") {
        message.push_str(&format!(
            " (did you mean `${}`?)",
            String::from_utf8_lossy(single)
        ));
    }
    out.warn(line, message);
}

fn check_value(
    name: &str,
    value: &Value<'_>,
    statement: &Statement<'_>,
    next: Option<&Statement<'_>>,
    limits: &LintLimits,
    out: &mut Linter<'_>,
) {
    let line = statement.line;
    match *value {
        Value::Missing => {
            let mut message = format!("SET {name} has no value: the phone ignores it");
            if next.is_some_and(|n| super::script::trim(first_line(n)).starts_with(b"\"")) {
                message.push_str(
                    "; the next line starts with a quoted string that probably belongs here",
                );
            }
            out.warn(line, message);
        }
        Value::Bare(text) => {
            if text.iter().any(|&b| b == b' ' || b == b'\t') {
                out.warn(
                    line,
                    format!(
                        "value of {name} has blanks but no quotes: the phone uses only `{}`",
                        String::from_utf8_lossy(super::script::first_word(text))
                    ),
                );
            }
        }
        Value::Quoted { closed: false, .. } => out.error(
            line,
            format!(
                "quoted value of {name} is never closed: it swallows lines {line}-{} and the \
                 phone ignores them",
                line + statement.lines - 1
            ),
        ),
        Value::Quoted { trailing, .. } => {
            if statement.lines > 1 {
                out.warn(
                    line,
                    format!(
                        "quoted value of {name} continues over {} lines; the line ends are \
                         dropped from it",
                        statement.lines
                    ),
                );
            }
            if !trailing.is_empty() {
                out.warn(
                    line,
                    format!(
                        "text after the closing quote of {name} is ignored: `{}`",
                        String::from_utf8_lossy(trailing)
                    ),
                );
            }
        }
    }
    if let Some(effective) = value.effective()
        && effective.len() > limits.max_value_bytes
    {
        out.warn(
            line,
            format!(
                "value of {name} is {} bytes, over the limit of {}",
                effective.len(),
                limits.max_value_bytes
            ),
        );
    }
}

fn check_lengths(statement: &Statement<'_>, limits: &LintLimits, out: &mut Linter<'_>) {
    for (line, physical) in (statement.line..).zip(Lines::new(statement.raw)) {
        let len = physical.content.len();
        if len > limits.max_line_bytes {
            out.warn(
                line,
                format!(
                    "line is {len} bytes, over the limit of {}",
                    limits.max_line_bytes
                ),
            );
        }
    }
}

fn has_curly_quote(statement: &Statement<'_>) -> bool {
    if !matches!(
        statement.kind,
        Kind::Set(_) | Kind::If(_) | Kind::Get { .. } | Kind::Goto { .. }
    ) {
        return false;
    }
    let raw = statement.raw;
    let utf8 = raw
        .windows(3)
        .any(|w| matches!(w, [0xE2, 0x80, 0x98 | 0x99 | 0x9C | 0x9D]));
    let windows_1252 =
        std::str::from_utf8(raw).is_err() && raw.iter().any(|&b| matches!(b, 0x91..=0x94));
    utf8 || windows_1252
}

fn invalid(keyword: Keyword, problem: Problem) -> String {
    let what = match problem {
        Problem::MissingName => "has no parameter name",
        Problem::MissingLabel => "has no label",
        Problem::MissingFile => "has no file name",
        Problem::ExtraWords => "has more than one word after the keyword",
        Problem::IfShape => "is not `IF $VAR SEQ value GOTO label`",
    };
    let keyword = match keyword {
        Keyword::Set => "SET",
        Keyword::If => "IF",
        Keyword::Goto => "GOTO",
        Keyword::Get => "GET",
    };
    format!("{keyword} {what}: the phone ignores this line")
}

fn other(statement: &Statement<'_>, out: &mut Linter<'_>) {
    let text = super::script::trim(first_line(statement));
    let message = if text.starts_with("\u{FEFF}".as_bytes()) {
        "line starts with a byte order mark: the phone does not see a statement here".to_owned()
    } else if super::script::first_word(text).eq_ignore_ascii_case(b"ADD") {
        "ADD is not evaluated by edgeprov (J100 only, meaning unconfirmed)".to_owned()
    } else {
        "not a statement or comment: the phone ignores this line".to_owned()
    };
    out.warn(statement.line, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(src: &str) -> Vec<String> {
        lint("f.txt", &Script::parse(src.as_bytes()))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn goto_to_commented_label_names_the_comment() {
        assert_eq!(
            findings("GOTO EQNX\n## EQNX\nSET A 1\n"),
            vec![
                "f.txt:1: GOTO target `EQNX` does not exist: the phone ignores the rest of the \
                 file (label exists only as a comment `## EQNX` on line 2)",
                "f.txt:3: unreachable: follows the unconditional GOTO on line 1 and no label \
                 comes before it",
            ]
        );
    }

    #[test]
    fn label_differing_in_case_is_pointed_out() {
        assert_eq!(
            findings("IF $GROUP SEQ 1 GOTO end\n# END\n"),
            vec![
                "f.txt:1: GOTO target `end` does not exist: the phone ignores the rest of the \
                 file (label `END` on line 2 differs in case)"
            ]
        );
    }

    #[test]
    fn clean_file_has_no_findings() {
        let src = "## comment\nIF $MODEL4 SEQ J179 GOTO J\nSET A \"x y\"\nGOTO END\n# J\nSET B 1\n# END\n";
        assert_eq!(findings(src), Vec::<String>::new());
    }

    #[test]
    fn duplicate_labels_and_unknown_operator() {
        let lines = findings("# A\nIF $SIG SNE 2 GOTO A\n# A\n");
        assert_eq!(
            lines,
            vec![
                "f.txt:2: unknown operator `SNE` (only SEQ exists): the condition is skipped",
                "f.txt:3: label `A` is already defined on line 1; jumps go to the first",
            ]
        );
    }

    #[test]
    fn values() {
        let lines = findings(
            "SET A a b\nSET OBSCURE\n\"X,Y\"\nSET C “x”\nSET D \"1\" 2\nSET E \"a\nb\"\nSET F \"open\nSET G 1\n",
        );
        assert_eq!(
            lines,
            vec![
                "f.txt:1: value of A has blanks but no quotes: the phone uses only `a`",
                "f.txt:2: SET OBSCURE has no value: the phone ignores it; the next line starts \
                 with a quoted string that probably belongs here",
                "f.txt:3: not a statement or comment: the phone ignores this line",
                "f.txt:4: curly quote is not a quote to the phone: it becomes part of the text",
                "f.txt:5: text after the closing quote of D is ignored: `2`",
                "f.txt:6: quoted value of E continues over 2 lines; the line ends are dropped \
                 from it",
                "f.txt:8: quoted value of F is never closed: it swallows lines 8-9 and the phone \
                 ignores them",
            ]
        );
    }

    #[test]
    fn variables_and_invalid_statements() {
        let lines = findings("IF $$SIG_IN_USE SEQ H323 GOTO X\nGET\nADD X 1\n# X\n");
        assert_eq!(
            lines,
            vec![
                "f.txt:1: `$$SIG_IN_USE` is not a variable phones define: the condition is \
                 always skipped (did you mean `$SIG_IN_USE`?)",
                "f.txt:2: GET has no file name: the phone ignores this line",
                "f.txt:3: ADD is not evaluated by edgeprov (J100 only, meaning unconfirmed)",
            ]
        );
    }

    #[test]
    fn limits_are_configurable() {
        let src = format!("SET A {}\n## {}\n", "v".repeat(20), "c".repeat(30));
        let limits = LintLimits {
            max_line_bytes: 30,
            max_value_bytes: 10,
        };
        let lines: Vec<_> = lint_with("f", &Script::parse(src.as_bytes()), &limits)
            .into_iter()
            .map(|f| (f.line, f.severity, f.message))
            .collect();
        assert_eq!(
            lines,
            vec![
                (
                    1,
                    Severity::Warning,
                    "value of A is 20 bytes, over the limit of 10".to_owned()
                ),
                (
                    2,
                    Severity::Warning,
                    "line is 33 bytes, over the limit of 30".to_owned()
                ),
            ]
        );
        assert!(findings(&src).is_empty());
    }

    #[test]
    fn byte_order_mark_hides_the_first_statement() {
        assert_eq!(
            findings("\u{FEFF}SET A 1\n"),
            vec![
                "f.txt:1: line starts with a byte order mark: the phone does not see a statement here"
            ]
        );
    }

    #[test]
    fn long_lines_inside_a_multi_line_value_get_their_own_number() {
        let src = format!("SET A \"x\r{}\ry\"\r", "z".repeat(40));
        let limits = LintLimits {
            max_line_bytes: 30,
            max_value_bytes: 1000,
        };
        let found: Vec<_> = lint_with("f", &Script::parse(src.as_bytes()), &limits)
            .into_iter()
            .map(|f| (f.line, f.message))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    1,
                    "quoted value of A continues over 3 lines; the line ends are dropped from it"
                        .to_owned()
                ),
                (2, "line is 40 bytes, over the limit of 30".to_owned()),
            ]
        );
    }
}
