//! Everything a phone is sent, as pure code: the Avaya settings-file script language
//! (`46xxsettings.txt`, upgrade scripts, `46xxspecials.txt`: parse, print, evaluate, lint, and
//! render `SET` lines), parameters layered global → site → group → model → device
//! ([`layered`]), the vendor-neutral vocabulary ([`vocab`]) and every file rendered from them
//! ([`render`]).
//!
//! Pure code over bytes: no I/O, no panics on any input. Files from the field are kept byte
//! for byte ([`Script::parse`] / [`Script::print`]), evaluated the way a phone runs them
//! ([`evaluate`]) and checked for the mistakes a phone silently ignores ([`lint`]); Yealink
//! cfg and Poly XML files are checked by their own rules ([`lint_file`], [`FileKind`]).
//!
//! Decisions where the reference leaves room (each is documented where it is implemented):
//! - **Labels** are `#`, one space, one word, in column one. `## LABEL` is a comment: a
//!   `GOTO LABEL` then finds nothing and the phone ignores the rest of the file, which is the
//!   pitfall the reference describes; the linter names the commented label.
//! - **`$$SIG_IN_USE`** names a variable `$SIG_IN_USE` that no phone defines, so its condition
//!   is skipped; [`EvalOptions::dollar_dollar_is_variable`] reads it as `$SIG_IN_USE` instead.
//! - **Values**: a bare value is its first word; a quoted value runs to the next ASCII `"`,
//!   across line ends if needed (the line ends are dropped); curly quotes are plain text;
//!   `SET NAME` without a value is ignored. [`try_set_line`] refuses what cannot be written.
//! - **Limits**: [`LintLimits`] (1024-byte lines, 255-byte values by default, warnings only);
//!   evaluation stops after [`EvalOptions::max_steps`] statements,
//!   [`EvalOptions::max_files`] files or [`EvalOptions::max_bytes`] bytes of trace and notes,
//!   and says so in [`Evaluation::outcome`].

mod classify;
mod eval;
mod file_kind;
pub mod layered;
mod lines;
mod lint;
mod lint_poly;
mod lint_servers;
mod lint_yealink;
mod quote;
pub mod render;
mod script;
pub mod secrets;
pub mod served;
mod vars;
pub mod vocab;

pub use eval::{
    EvalOptions, Evaluation, Loader, Note, NoteKind, Origin, Outcome, Setting, evaluate,
    evaluate_with,
};
pub use file_kind::{FILE_KINDS, FileKind};
pub use lint::{
    DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_VALUE_BYTES, Finding, LintLimits, Severity, lint,
    lint_file, lint_with,
};
pub use lint_poly::lint_poly;
pub use lint_servers::foreign_servers;
pub use lint_yealink::lint_yealink;
pub use quote::{QuoteError, set_line, try_set_line};
pub use script::{If, Keyword, Kind, Problem, Script, Set, Statement, Value};
pub use vars::{KNOWN_VARIABLES, Vars, model4};
