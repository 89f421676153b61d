//! Running a script chain the way a phone does, to know what a device really ends up with.
//!
//! An operator who edits `46xxsettings.txt` wants to see, per device, which settings apply and
//! where each came from; a support engineer wants to know why a `SET` did not apply. So the
//! result carries the effective settings with their origin, the chain of files, a trace of
//! every applied `SET`, and notes for everything a phone does silently (skipped conditions,
//! missing labels, failed fetches). Evaluation is bounded: scripts that loop end with an
//! [`Outcome`] saying so, never with a hang.

use std::collections::HashMap;

use super::script::{Kind, Script};
use super::vars::Vars;

/// Loads a file by name for `GET`; `None` means the fetch failed (the phone then goes on
/// with the next line).
pub trait Loader {
    /// The file's bytes, or `None` when it cannot be fetched.
    fn load(&mut self, name: &str) -> Option<Vec<u8>>;
}

impl<F: FnMut(&str) -> Option<Vec<u8>>> Loader for F {
    fn load(&mut self, name: &str) -> Option<Vec<u8>> {
        self(name)
    }
}

/// Phone behaviours that differ between families, and the bounds that keep evaluation finite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// Compare `SEQ` without regard to ASCII case, as 1600 and early 9600 phones do; 96x1 and
    /// J100 compare exactly (the default).
    pub case_insensitive_seq: bool,
    /// Read `$$NAME` in a condition as `$NAME`. By default `$$SIG_IN_USE` names a variable
    /// called `$SIG_IN_USE` that no phone defines, so the condition is skipped: nothing
    /// documents a meaning for the doubled `$`, and a skipped condition is what a phone does
    /// with any name it does not know.
    pub dollar_dollar_is_variable: bool,
    /// Most statements executed over the whole chain before stopping. A `GOTO` back to an
    /// earlier label can loop forever on a phone; edgeprov reports it instead.
    pub max_steps: usize,
    /// Most files processed in one chain (the entry file included). A file that `GET`s itself
    /// or a cycle of files would otherwise never end. Only a successful fetch counts: a `GET`
    /// that fails at the limit still goes on with the next line, as on a phone.
    pub max_files: usize,
    /// Most bytes the trace and the notes may hold (names, values and file names, and each
    /// record's own size). The step limit alone does not bound memory: a loop that sets a
    /// 4 MB value keeps a copy per pass.
    pub max_bytes: usize,
}

impl Default for EvalOptions {
    /// 96x1/J100 behaviour; one million steps is 30 passes over the 1 MB official template,
    /// 16 files is four times the longest chain seen (upgrade script, settings, specials,
    /// per-device file), and 64 MiB is 64 times what the official template's settings take.
    fn default() -> Self {
        Self {
            case_insensitive_seq: false,
            dollar_dollar_is_variable: false,
            max_steps: 1_000_000,
            max_files: 16,
            max_bytes: 64 << 20,
        }
    }
}

impl EvalOptions {
    /// How a phone of `model` (`$MODEL`) compares: 1600 phones (`$MODEL4` `16..`) without
    /// regard to case, every other family exactly; the bounds are the defaults.
    pub fn for_model(model: &str) -> Self {
        Self {
            case_insensitive_seq: super::vars::model4(model).starts_with("16"),
            ..Self::default()
        }
    }
}

/// Where something is: a file name and a 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file name as fetched (after `$VAR` substitution).
    pub file: String,
    /// The statement's first line; 0 for the file as a whole.
    pub line: usize,
}

/// An effective setting: the last value set, at the position its name was first set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The name as the phone sees it (upper case).
    pub name: String,
    /// The value without its quotes (bytes that are not UTF-8 are replaced by U+FFFD).
    pub value: String,
    /// The `SET` that gave the value.
    pub origin: Origin,
}

/// Something a phone does without telling anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteKind {
    /// A condition tested a variable the device does not have, so it was skipped (noted once
    /// per variable).
    UnknownVariable(String),
    /// A condition used an operator other than `SEQ`; it was skipped.
    UnknownOperator(String),
    /// A jump to a label that does not exist: the rest of the file was ignored.
    UnknownLabel(String),
    /// A `GET` whose file could not be fetched: the file went on with the next line.
    GetFailed(String),
    /// A `SET` with no usable value (missing, or a quote never closed): ignored.
    SetIgnored(String),
    /// A keyword statement missing a part: ignored.
    InvalidStatement,
}

/// A [`NoteKind`] and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The statement concerned.
    pub origin: Origin,
    /// What happened.
    pub kind: NoteKind,
}

/// How evaluation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The last file ran to its end (or to a jump to a missing label).
    Completed,
    /// The entry file could not be loaded: the phone has no settings from this chain.
    EntryUnavailable,
    /// [`EvalOptions::max_steps`] was reached at this statement: the script loops.
    StepLimit(Origin),
    /// [`EvalOptions::max_files`] was reached at this `GET`: the files form a cycle.
    FileLimit(Origin),
    /// [`EvalOptions::max_bytes`] was reached at this statement: the script loops over long
    /// values or names. What it would have recorded is not in the trace or the notes.
    ByteLimit(Origin),
}

/// Said to an operator (the admin view, `edgeprov settings eval`), so that settings cut short
/// by a bound are never shown as if they were all a phone gets.
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Completed => f.write_str("completed"),
            Outcome::EntryUnavailable => f.write_str("the entry file could not be loaded"),
            Outcome::StepLimit(o) => write!(
                f,
                "stopped at {}:{}: too many statements, the script loops",
                o.file, o.line
            ),
            Outcome::FileLimit(o) => write!(
                f,
                "stopped at {}:{}: too many files, the GETs form a cycle",
                o.file, o.line
            ),
            Outcome::ByteLimit(o) => write!(
                f,
                "stopped at {}:{}: too much recorded, the script loops over long values",
                o.file, o.line
            ),
        }
    }
}

/// Everything evaluation found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Effective settings in order of first appearance, each with its last value.
    pub settings: Vec<Setting>,
    /// Files actually processed, in order (a file appears again each time it is re-entered).
    pub files: Vec<String>,
    /// Every applied `SET` in execution order.
    pub trace: Vec<Setting>,
    /// Silent phone behaviours worth showing to an operator.
    pub notes: Vec<Note>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Evaluation {
    /// The effective value of `name` (upper case, as the phone sees it).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value.as_str())
    }
}

/// Evaluates the chain starting at `entry` as a 96x1/J100 phone with these variables.
pub fn evaluate(entry: &str, vars: &Vars, loader: impl Loader) -> Evaluation {
    evaluate_with(entry, vars, loader, &EvalOptions::default())
}

/// Evaluates with explicit phone behaviours and bounds.
pub fn evaluate_with(
    entry: &str,
    vars: &Vars,
    mut loader: impl Loader,
    options: &EvalOptions,
) -> Evaluation {
    let mut run = Run {
        vars,
        options,
        steps: 0,
        kept: 0,
        full: false,
        index: HashMap::new(),
        noted_vars: Vec::new(),
        result: Evaluation {
            settings: Vec::new(),
            files: Vec::new(),
            trace: Vec::new(),
            notes: Vec::new(),
            outcome: Outcome::Completed,
        },
    };
    let Some(mut bytes) = loader.load(entry) else {
        run.result.outcome = Outcome::EntryUnavailable;
        return run.result;
    };
    let mut file = entry.to_owned();
    loop {
        run.result.files.push(file.clone());
        match run.file(&file, &bytes, &mut loader) {
            Next::Done => break,
            Next::Stop(outcome) => {
                run.result.outcome = outcome;
                break;
            }
            Next::File(name, content) => {
                file = name;
                bytes = content;
            }
        }
    }
    run.result
}

/// What to do after a file.
enum Next {
    Done,
    Stop(Outcome),
    File(String, Vec<u8>),
}

/// State of one evaluation.
struct Run<'v> {
    vars: &'v Vars,
    options: &'v EvalOptions,
    steps: usize,
    /// Bytes held by the trace and the notes, counted against [`EvalOptions::max_bytes`].
    kept: usize,
    /// Set when a record did not fit within [`EvalOptions::max_bytes`].
    full: bool,
    /// Setting name to its position in `result.settings`.
    index: HashMap<String, usize>,
    noted_vars: Vec<Vec<u8>>,
    result: Evaluation,
}

impl Run<'_> {
    fn file(&mut self, file: &str, bytes: &[u8], loader: &mut impl Loader) -> Next {
        let script = Script::parse(bytes);
        let statements = script.statements();
        let mut labels = None;
        let mut at = 0;
        while let Some(statement) = statements.get(at) {
            at += 1;
            self.steps += 1;
            let origin = || Origin {
                file: file.to_owned(),
                line: statement.line,
            };
            if self.steps > self.options.max_steps {
                return Next::Stop(Outcome::StepLimit(origin()));
            }
            let jump = match &statement.kind {
                Kind::Set(set) => {
                    let name = String::from_utf8_lossy(set.name).to_ascii_uppercase();
                    match set.value.effective() {
                        Some(value) => {
                            let value = String::from_utf8_lossy(&value).into_owned();
                            self.apply(name, value, origin());
                        }
                        None => self.note(origin(), NoteKind::SetIgnored(name)),
                    }
                    None
                }
                Kind::If(cond) => {
                    let var = match cond.var.strip_prefix(b"$") {
                        Some(single) if self.options.dollar_dollar_is_variable => single,
                        _ => cond.var,
                    };
                    match self.vars.get(var) {
                        None => {
                            if !self.noted_vars.iter().any(|v| v == var) {
                                self.noted_vars.push(var.to_vec());
                                let name = String::from_utf8_lossy(var).into_owned();
                                self.note(origin(), NoteKind::UnknownVariable(name));
                            }
                            None
                        }
                        Some(_) if !cond.is_seq() => {
                            let op = String::from_utf8_lossy(cond.op).into_owned();
                            self.note(origin(), NoteKind::UnknownOperator(op));
                            None
                        }
                        Some(value) => {
                            let value = value.as_bytes();
                            let holds = if self.options.case_insensitive_seq {
                                value.eq_ignore_ascii_case(cond.value)
                            } else {
                                value == cond.value
                            };
                            holds.then_some(cond.label)
                        }
                    }
                }
                Kind::Goto { label } => Some(*label),
                Kind::Get { file: name } => {
                    let name = self.vars.substitute(name);
                    let name = String::from_utf8_lossy(&name).into_owned();
                    match loader.load(&name) {
                        Some(_) if self.result.files.len() >= self.options.max_files => {
                            return Next::Stop(Outcome::FileLimit(origin()));
                        }
                        Some(content) => return Next::File(name, content),
                        None => self.note(origin(), NoteKind::GetFailed(name)),
                    }
                    None
                }
                Kind::Invalid { .. } => {
                    self.note(origin(), NoteKind::InvalidStatement);
                    None
                }
                Kind::Label { .. } | Kind::Comment | Kind::Blank | Kind::Other => None,
            };
            if self.full {
                return Next::Stop(Outcome::ByteLimit(origin()));
            }
            if let Some(label) = jump {
                match labels.get_or_insert_with(|| script.labels()).get(label) {
                    Some(&target) => at = target + 1,
                    None => {
                        let label = String::from_utf8_lossy(label).into_owned();
                        self.note(origin(), NoteKind::UnknownLabel(label));
                        return match self.full {
                            true => Next::Stop(Outcome::ByteLimit(origin())),
                            false => Next::Done,
                        };
                    }
                }
            }
        }
        Next::Done
    }

    /// Counts a record of `size` bytes (its strings) against the byte limit; false, and
    /// evaluation stops after the statement, when it does not fit.
    fn keep<T>(&mut self, size: usize) -> bool {
        let kept = self
            .kept
            .saturating_add(std::mem::size_of::<T>())
            .saturating_add(size);
        self.full = kept > self.options.max_bytes;
        if !self.full {
            self.kept = kept;
        }
        !self.full
    }

    fn apply(&mut self, name: String, value: String, origin: Origin) {
        if !self.keep::<Setting>(name.len() + value.len() + origin.file.len()) {
            return;
        }
        self.result.trace.push(Setting {
            name: name.clone(),
            value: value.clone(),
            origin: origin.clone(),
        });
        match self.index.get(&name) {
            Some(&at) => {
                if let Some(setting) = self.result.settings.get_mut(at) {
                    setting.value = value;
                    setting.origin = origin;
                }
            }
            None => {
                self.index.insert(name.clone(), self.result.settings.len());
                self.result.settings.push(Setting {
                    name,
                    value,
                    origin,
                });
            }
        }
    }

    fn note(&mut self, origin: Origin, kind: NoteKind) {
        let text = match &kind {
            NoteKind::UnknownVariable(t)
            | NoteKind::UnknownOperator(t)
            | NoteKind::UnknownLabel(t)
            | NoteKind::GetFailed(t)
            | NoteKind::SetIgnored(t) => t.len(),
            NoteKind::InvalidStatement => 0,
        };
        if self.keep::<Note>(text + origin.file.len()) {
            self.result.notes.push(Note { origin, kind });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> impl FnMut(&str) -> Option<Vec<u8>> + use<> {
        let map: HashMap<String, Vec<u8>> = list
            .iter()
            .map(|(n, c)| ((*n).to_owned(), c.as_bytes().to_vec()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn j179() -> Vars {
        Vars::new()
            .with("MODEL4", "J179")
            .with("MACADDR", "c81fea83e85a")
    }

    #[test]
    fn only_1600_phones_compare_without_case() {
        let src = "IF $GROUP SEQ a GOTO A\nSET R exact\nGOTO END\n# A\nSET R any_case\n# END\n";
        let run = |model: &str| {
            let vars = Vars::for_phone(model, "A", "");
            let e = evaluate_with(
                "a",
                &vars,
                files(&[("a", src)]),
                &EvalOptions::for_model(model),
            );
            e.get("R").map(str::to_owned)
        };
        assert_eq!(run("1608").as_deref(), Some("any_case"));
        assert_eq!(run("1616-I").as_deref(), Some("any_case"));
        assert_eq!(run("9641GS").as_deref(), Some("exact"));
        assert_eq!(run("J179").as_deref(), Some("exact"));
    }

    #[test]
    fn last_set_wins_at_first_position() {
        let e = evaluate(
            "a",
            &j179(),
            files(&[("a", "SET x 1\nSET Y 2\nset X \"3 4\"\n")]),
        );
        let names: Vec<_> = e.settings.iter().map(|s| (&*s.name, &*s.value)).collect();
        assert_eq!(names, vec![("X", "3 4"), ("Y", "2")]);
        assert_eq!(e.settings[0].origin.line, 3);
        assert_eq!(e.trace.len(), 3);
        assert_eq!(e.outcome, Outcome::Completed);
    }

    #[test]
    fn if_jumps_only_on_exact_match() {
        let src = "IF $MODEL4 SEQ j179 GOTO LOWER\nIF $MODEL4 SEQ J179 GOTO UPPER\nSET R none\nGOTO END\n# LOWER\nSET R lower\nGOTO END\n# UPPER\nSET R upper\n# END\n";
        let exact = evaluate("a", &j179(), files(&[("a", src)]));
        assert_eq!(exact.get("R"), Some("upper"));
        let options = EvalOptions {
            case_insensitive_seq: true,
            ..EvalOptions::default()
        };
        let loose = evaluate_with("a", &j179(), files(&[("a", src)]), &options);
        assert_eq!(loose.get("R"), Some("lower"));
    }

    #[test]
    fn unknown_variable_skips_condition_and_is_noted_once() {
        let src = "IF $GROUP SEQ 2 GOTO G\nIF $GROUP SEQ 3 GOTO G\nSET R fell\n# G\n";
        let e = evaluate("a", &j179(), files(&[("a", src)]));
        assert_eq!(e.get("R"), Some("fell"));
        assert_eq!(
            e.notes,
            vec![Note {
                origin: Origin {
                    file: "a".into(),
                    line: 1
                },
                kind: NoteKind::UnknownVariable("GROUP".into())
            }]
        );
    }

    #[test]
    fn dollar_dollar_is_unknown_unless_configured() {
        let vars = j179().with("SIG_IN_USE", "H323");
        let src = "IF $$SIG_IN_USE SEQ H323 GOTO H\nSET R sip\nGOTO END\n# H\nSET R h323\n# END\n";
        let default = evaluate("a", &vars, files(&[("a", src)]));
        assert_eq!(default.get("R"), Some("sip"));
        let options = EvalOptions {
            dollar_dollar_is_variable: true,
            ..EvalOptions::default()
        };
        let stripped = evaluate_with("a", &vars, files(&[("a", src)]), &options);
        assert_eq!(stripped.get("R"), Some("h323"));
    }

    #[test]
    fn unknown_operator_is_skipped() {
        let src = "IF $MODEL4 SNE J179 GOTO X\nSET R ok\n# X\n";
        let e = evaluate("a", &j179(), files(&[("a", src)]));
        assert_eq!(e.get("R"), Some("ok"));
        assert_eq!(e.notes[0].kind, NoteKind::UnknownOperator("SNE".into()));
    }

    #[test]
    fn missing_label_ends_the_file() {
        let src = "SET A 1\nGOTO NOWHERE\nSET B 2\n## NOWHERE\nSET C 3\n";
        let e = evaluate("a", &j179(), files(&[("a", src)]));
        assert_eq!(e.get("A"), Some("1"));
        assert_eq!(e.get("B"), None);
        assert_eq!(e.get("C"), None);
        assert_eq!(e.notes[0].kind, NoteKind::UnknownLabel("NOWHERE".into()));
        assert_eq!(e.outcome, Outcome::Completed);
    }

    #[test]
    fn get_continues_elsewhere_and_never_returns() {
        let e = evaluate(
            "a",
            &j179(),
            files(&[
                (
                    "a",
                    "SET A 1\nGET missing.txt\nGET $MACADDR.txt\nSET A back\n",
                ),
                ("c81fea83e85a.txt", "SET B 2\n"),
            ]),
        );
        assert_eq!(e.files, vec!["a", "c81fea83e85a.txt"]);
        assert_eq!(e.get("A"), Some("1"));
        assert_eq!(e.get("B"), Some("2"));
        assert_eq!(e.notes[0].kind, NoteKind::GetFailed("missing.txt".into()));
        assert_eq!(e.settings[1].origin.file, "c81fea83e85a.txt");
    }

    #[test]
    fn self_get_stops_at_file_limit() {
        let e = evaluate("a", &j179(), files(&[("a", "SET A 1\nGET a\n")]));
        assert_eq!(e.files.len(), EvalOptions::default().max_files);
        assert_eq!(
            e.outcome,
            Outcome::FileLimit(Origin {
                file: "a".into(),
                line: 2
            })
        );
        assert_eq!(e.get("A"), Some("1"));
    }

    #[test]
    fn failed_get_at_the_file_limit_goes_on() {
        let options = EvalOptions {
            max_files: 1,
            ..EvalOptions::default()
        };
        let e = evaluate_with(
            "a",
            &j179(),
            files(&[("a", "GET gone\nSET A 1\nGET a\nSET B 2\n")]),
            &options,
        );
        assert_eq!(e.get("A"), Some("1"));
        assert_eq!(e.get("B"), None);
        assert_eq!(
            e.outcome,
            Outcome::FileLimit(Origin {
                file: "a".into(),
                line: 3
            })
        );
    }

    #[test]
    fn goto_loop_stops_at_step_limit() {
        let options = EvalOptions {
            max_steps: 1000,
            ..EvalOptions::default()
        };
        let e = evaluate_with(
            "a",
            &j179(),
            files(&[("a", "# TOP\nSET A 1\nGOTO TOP\n")]),
            &options,
        );
        assert!(matches!(e.outcome, Outcome::StepLimit(_)));
        // Each pass runs SET and GOTO; the jump lands after the label line.
        assert_eq!(e.trace.len(), 500);
    }

    #[test]
    fn loops_over_long_values_or_names_stop_at_the_byte_limit() {
        // Each pass keeps 1 KiB in the trace (or the notes): a million steps would keep 500 MB,
        // and a 4 MiB static file 2 TB.
        let long = "v".repeat(1024);
        for src in [
            format!("# TOP\nSET A \"{long}\"\nGOTO TOP\n"),
            format!("# TOP\nSET {long}\nGOTO TOP\n"),
        ] {
            let e = evaluate("a", &j179(), files(&[("a", &src)]));
            let kept: usize = e
                .trace
                .iter()
                .map(|s| s.name.len() + s.value.len())
                .chain(e.notes.iter().map(|n| match &n.kind {
                    NoteKind::SetIgnored(name) => name.len(),
                    _ => 0,
                }))
                .sum();
            assert!(
                kept <= EvalOptions::default().max_bytes,
                "{kept} bytes kept"
            );
            assert_eq!(
                e.outcome,
                Outcome::ByteLimit(Origin {
                    file: "a".into(),
                    line: 2
                })
            );
        }
    }

    #[test]
    fn missing_entry_file() {
        let e = evaluate("a", &j179(), files(&[]));
        assert_eq!(e.outcome, Outcome::EntryUnavailable);
        assert!(e.files.is_empty());
    }

    #[test]
    fn set_without_usable_value_keeps_previous() {
        let e = evaluate(
            "a",
            &j179(),
            files(&[("a", "SET A 1\nSET A\nSET B \"open\n")]),
        );
        assert_eq!(e.get("A"), Some("1"));
        assert_eq!(e.get("B"), None);
        let ignored: Vec<_> = e.notes.iter().map(|n| &n.kind).collect();
        assert_eq!(
            ignored,
            vec![
                &NoteKind::SetIgnored("A".into()),
                &NoteKind::SetIgnored("B".into())
            ]
        );
    }
}
