//! The Avaya settings-file script language (`46xxsettings.txt`, upgrade scripts,
//! `46xxspecials.txt`): parse, print, evaluate, lint, and render `SET` lines.
//!
//! Pure code over bytes: no I/O, no panics on any input. Files from the field are kept byte
//! for byte ([`Script::parse`] / [`Script::print`]), evaluated the way a phone runs them
//! ([`evaluate`]) and checked for the mistakes a phone silently ignores ([`lint`]).

mod classify;
mod eval;
mod lines;
mod lint;
mod quote;
mod script;
mod vars;

pub use eval::{
    EvalOptions, Evaluation, Loader, Note, NoteKind, Origin, Outcome, Setting, evaluate,
    evaluate_with,
};
pub use lint::{
    DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_VALUE_BYTES, Finding, LintLimits, Severity, lint, lint_with,
};
pub use quote::{QuoteError, set_line, try_set_line};
pub use script::{If, Keyword, Kind, Problem, Script, Set, Statement, Value};
pub use vars::{KNOWN_VARIABLES, Vars};
