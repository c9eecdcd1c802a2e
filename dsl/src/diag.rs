//! Diagnostics: one data structure, two renderings (rustc-like text for the terminal, JSON for the
//! API). Every diagnostic has a stable code from [`Code`]; `docs/diagnostics.md` explains each.

use std::fmt;

use codespan_reporting::diagnostic as cr;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use serde::Serialize;

use crate::ast::Span;

/// Stable diagnostic codes. The number never changes meaning; retired codes are not reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Code {
    /// The text does not follow the grammar.
    E0001,
    /// Brackets or blocks nested deeper than the parser accepts.
    E0002,
    /// A name declared twice in the same scope.
    E0101,
    /// A role that is not declared.
    E0102,
    /// A step or phase that is not declared.
    E0103,
    /// A value name (parameter, constant, derived value, field) that is not declared.
    E0104,
    /// A date that does not exist in the calendar.
    E0105,
    /// A procedure that is not declared.
    E0106,
    /// A template that is not declared, or whose text is not a valid template.
    E0107,
    /// A header or clause given twice.
    E0108,
    /// A clause that does not apply where it is written.
    E0109,
    /// A step that lacks a clause its kind needs.
    E0110,
    /// A number out of the supported range.
    E0111,
    /// A dotted step name through a step that calls no procedure.
    E0123,
    E0124,
    E0125,
    E0126,
    E0127,
    /// A duration amount not known at start.
    E0122,
    /// A parameter default outside its range.
    E0121,
    /// A parameter range that cannot apply.
    E0120,
    /// A role bound by a parameter or form field that is not declared (R6.1).
    E0112,
    /// A role bound by a value that is not text (R6.1).
    E0113,
    /// A role bound by the fan-out item, named by a step without `for` (R6.1).
    E0114,
    /// `personal` written where it means nothing (R6.2).
    E0115,
    /// A step acts in a role bound by a form field that may not be recorded yet.
    E0116,
    /// Types that do not fit.
    E0201,
    /// An unknown function or a wrong number of arguments.
    E0202,
    /// A constant or default that depends on something not constant.
    E0203,
    /// A `match` whose arms overlap or leave values uncovered.
    E0204,
    /// A division by zero in a constant expression.
    E0205,
    /// `carry` or `dated` names something that is not a fitting parameter.
    E0206,
    /// The next cycle needs parameters given and no role is named to start it.
    E0207,
    /// A `quota` that cannot be counted.
    E0208,
    /// A `requires completed` clause that cannot name a matter.
    E0209,
    /// Steps that depend on each other in a cycle.
    E0301,
    /// A step that no role can complete.
    E0302,
    /// A step that can never open.
    E0303,
    /// A `return` that does not lead to an earlier step.
    E0304,
    /// A return declared on a filing or consultation step.
    E0305,
    /// A declared return that would let a body veto what it only files.
    E0306,
    /// Breach actions that contradict each other.
    E0307,
    /// A breach that hands the step to no one new.
    E0308,
    /// A window outside its parent's window.
    E0401,
    /// A schedule that cannot be met.
    E0402,
    /// A window that ends before it starts.
    E0403,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::E0001 => "E0001",
            Code::E0002 => "E0002",
            Code::E0101 => "E0101",
            Code::E0102 => "E0102",
            Code::E0103 => "E0103",
            Code::E0104 => "E0104",
            Code::E0105 => "E0105",
            Code::E0106 => "E0106",
            Code::E0107 => "E0107",
            Code::E0108 => "E0108",
            Code::E0109 => "E0109",
            Code::E0110 => "E0110",
            Code::E0111 => "E0111",
            Code::E0123 => "E0123",
            Code::E0124 => "E0124",
            Code::E0125 => "E0125",
            Code::E0126 => "E0126",
            Code::E0127 => "E0127",
            Code::E0122 => "E0122",
            Code::E0121 => "E0121",
            Code::E0120 => "E0120",
            Code::E0112 => "E0112",
            Code::E0113 => "E0113",
            Code::E0114 => "E0114",
            Code::E0115 => "E0115",
            Code::E0116 => "E0116",
            Code::E0201 => "E0201",
            Code::E0202 => "E0202",
            Code::E0203 => "E0203",
            Code::E0204 => "E0204",
            Code::E0205 => "E0205",
            Code::E0206 => "E0206",
            Code::E0207 => "E0207",
            Code::E0208 => "E0208",
            Code::E0209 => "E0209",
            Code::E0301 => "E0301",
            Code::E0302 => "E0302",
            Code::E0303 => "E0303",
            Code::E0304 => "E0304",
            Code::E0305 => "E0305",
            Code::E0306 => "E0306",
            Code::E0307 => "E0307",
            Code::E0308 => "E0308",
            Code::E0401 => "E0401",
            Code::E0402 => "E0402",
            Code::E0403 => "E0403",
        }
    }

    /// Every code, for the registry test and `civicflow explain`.
    pub const ALL: &'static [Code] = &[
        Code::E0001,
        Code::E0002,
        Code::E0101,
        Code::E0102,
        Code::E0103,
        Code::E0104,
        Code::E0105,
        Code::E0106,
        Code::E0107,
        Code::E0108,
        Code::E0109,
        Code::E0110,
        Code::E0111,
        Code::E0123,
        Code::E0124,
        Code::E0125,
        Code::E0126,
        Code::E0127,
        Code::E0122,
        Code::E0121,
        Code::E0120,
        Code::E0112,
        Code::E0113,
        Code::E0114,
        Code::E0115,
        Code::E0116,
        Code::E0201,
        Code::E0202,
        Code::E0203,
        Code::E0204,
        Code::E0205,
        Code::E0206,
        Code::E0207,
        Code::E0208,
        Code::E0209,
        Code::E0301,
        Code::E0302,
        Code::E0303,
        Code::E0304,
        Code::E0305,
        Code::E0306,
        Code::E0307,
        Code::E0308,
        Code::E0401,
        Code::E0402,
        Code::E0403,
    ];
}

impl Code {
    /// One line: what the code means.
    pub fn title(self) -> &'static str {
        match self {
            Code::E0001 => "the text does not follow the grammar",
            Code::E0002 => "brackets or blocks nested too deeply",
            Code::E0101 => "a name declared twice",
            Code::E0102 => "an unknown role",
            Code::E0103 => "an unknown step or phase",
            Code::E0104 => "an unknown value, field or procedure parameter",
            Code::E0105 => "a date that does not exist",
            Code::E0106 => "an unknown procedure",
            Code::E0107 => "an unknown or invalid template",
            Code::E0108 => "a header or clause given twice",
            Code::E0109 => "a clause that does not apply here",
            Code::E0110 => "a step lacks a clause its kind needs",
            Code::E0111 => "a number out of range",
            Code::E0123 => "a dotted step name through a step that calls no procedure",
            Code::E0124 => "a template partial that includes itself, or is named by an expression",
            Code::E0125 => "a template nested too deep, or expanding too large",
            Code::E0126 => "a template partial that is not defined",
            Code::E0127 => "a vote clause with words that nothing refuses",
            Code::E0122 => "a duration amount not known at start",
            Code::E0121 => "a parameter default outside its range",
            Code::E0120 => "a parameter range that cannot apply",
            Code::E0112 => "a role bound by an unknown parameter or field",
            Code::E0113 => "a role bound by a value that is not text",
            Code::E0114 => "a role bound by the fan-out item on a step without `for`",
            Code::E0115 => "`personal` outside a form",
            Code::E0116 => "a step in a role bound by a field recorded after it",
            Code::E0201 => "types that do not fit",
            Code::E0202 => "an unknown function or wrong number of arguments",
            Code::E0203 => "a constant that is not constant",
            Code::E0204 => "a decision table (`match`) with overlapping arms or uncovered values",
            Code::E0205 => "division by zero",
            Code::E0206 => "a recurrence that takes over something that is not a fitting parameter",
            Code::E0207 => "a next cycle nobody can start",
            Code::E0208 => "a quota that cannot be counted",
            Code::E0209 => "a prerequisite that cannot name its matter",
            Code::E0301 => "a dependency cycle",
            Code::E0302 => "a step no role can complete",
            Code::E0303 => "a step that can never open",
            Code::E0304 => "a `return` that does not lead to an earlier step",
            Code::E0305 => "a filing or consultation step that declares a return",
            Code::E0306 => "a declared return that would let a body veto what it only files",
            Code::E0307 => "breach actions that contradict each other",
            Code::E0308 => "a breach that reassigns the step to no one new",
            Code::E0401 => "a window outside its parent's window",
            Code::E0402 => "a schedule that cannot be met",
            Code::E0403 => "a window that ends before it starts",
        }
    }

    /// A paragraph for `civicflow explain`: why it is refused and how to fix it.
    pub fn explanation(self) -> &'static str {
        match self {
            Code::E0001 => "The parser could not read the file from this point. The message lists what it expected. Parsing stops at the first such error; fix it and run the check again to see the rest.",
            Code::E0002 => "Brackets and blocks may nest at most 64 levels deep, and one expression may be at most 256 operators or branches deep, so that no input can exhaust the parser's stack. Real policies need far fewer; name intermediate values with `let` or move steps into a `procedure`.",
            Code::E0101 => "Roles, templates, procedures, values (params, consts, lets), form fields and steps/phases each live in one namespace per policy or procedure. A second declaration of the same name is refused, because a reference to it would be ambiguous.",
            Code::E0102 => "`by`, `escalate` and `notify` name roles (offices or bodies). Every role must be declared at the top of the policy with `role NAME`, so that a typo cannot silently create an office nobody holds.",
            Code::E0103 => "`after`, `return`, `due … after` and `start()`/`end()` name steps or phases of the same policy or procedure. Check the spelling; a step inside a procedure is only visible inside it.",
            Code::E0104 => "Expressions may use parameters, constants, derived values (`let`), the fields of the step's form, the fan-out variable, and in vote rules the counts `eligible`, `present`, `cast`, `invalid`, `votes`, `seats`, `candidates`. Values must be declared before they are used.",
            Code::E0105 => "Date literals are `YYYY-MM-DD` and must exist in the Gregorian calendar: 2012-02-30 does not. An impossible date in an official document is a typo to be resolved with its author, not guessed.",
            Code::E0106 => "A `call` step runs a `procedure` declared in the same file. Declare it with `procedure NAME { … }` or correct the name.",
            Code::E0107 => "A `template` clause names a template declared with `template NAME \"…\"`, and every template must be valid handlebars (blocks closed, braces balanced) so a notice never fails to render when it is due.",
            Code::E0108 => "Each header (`title`, `version`, `timezone`, `calendar`), `recur`, and each clause of a step may be given once; two would contradict each other. `remind` may be repeated.",
            Code::E0109 => "Some clauses belong to one kind of node: `rule`, `on rejected` and `approve only when` to approvals, `on objection` to publicity, `seats`/`eligible`/`quorum`/`elect`/`slate`/`ballot` to votes, `with` to calls; `by`, `due`, `remind`, `on breach`, `min`, `form`, `for` and `template` to steps, not phases.",
            Code::E0110 => "A publicity step needs `min` (公示 runs for a minimum time); a vote needs `eligible` and `elect`; a reminder, a breach action or `owned` (the owner's limit, R3.5) needs `due`; `rule K of N` needs N to be the number of roles in `by`; a call must give every procedure parameter without a default.",
            Code::E0112 => "`role R bound by param P` and `role R bound by STEP.FIELD` take the office that holds R in an instance from a parameter of the policy or from a field a step records in its `form` (DOMAIN R6.1). The name must be declared; check the spelling.",
            Code::E0113 => "An office is named by text: the parameter or form field a role is bound by must be `text` (a role `bound by item`: the fan-out list must be `list<text>`), and its value must be the office's name as principals are registered with it (`甲社区`, `区卫健委`).",
            Code::E0114 => "`bound by item` binds a role, in each copy of a fan-out, to that copy's element (one community per copy). Every step that names such a role in `by` must therefore have `for NAME in LIST`; a step without it has no element to bind the role to.",
            Code::E0115 => "`personal` marks a form field that holds a resident's personal data (name, phone, address, ID number); its value is shown only to offices bound to the instance and to `oversight` roles (DOMAIN R6.2). Parameters and other places do not take it: record such data in a step's `form`.",
            Code::E0116 => "A role `bound by STEP.field` takes its office from the text that step records (the first receiver named by 民生办). Every other step that names the role in `by` must come after the recording step (wait for it, directly or through others): otherwise it may open with no office bound, nobody may act on it (R6.1: F036) and the matter stops.",
            Code::E0111 => "Durations, recurrence counts and approval counts must be whole numbers from 1 up to 4294967295.",
            Code::E0123 => "`A.B` names the step or phase `B` of the procedure that the `call` step `A` runs (`after 居委会换届.公布选举结果`, `end(居委会换届.公布选举结果)`, `居委会换届.推选成员代表.居民代表人数`). Only a `call` step has steps inside it.",
            Code::E0124 => "A notice is rendered by the server on every view. A partial (`{{#*inline \"p\"}}…{{/inline}}`, used as `{{> p}}`) that includes itself, directly or through other partials, would render for ever and take the server down, so it is refused; so is a partial named by an expression (`{{> (lookup …)}}`), which cannot be checked. Write the repetition with `{{#each}}` over a list instead.",
            Code::E0125 => "Blocks (`{{#if}}`, `{{#each}}`, `{{#*inline}}` …) and sub-expressions may nest at most 32 deep, and a template whose partials, each expanded where it is used, would make more than 100,000 elements is refused: both bound what rendering a notice can cost the server.",
            Code::E0126 => "A partial used with `{{> name}}` must be defined in the same template with `{{#*inline \"name\"}}…{{/inline}}`: no other partials are registered when notices are rendered.",
            Code::E0127 => "`quorum` and `slate` refuse a vote that breaks them; `else \"…\"` after them gives the rule's words with the refusal (start them with the DOMAIN rule, `R2.14 …`, and the API names it as the problem's `rule`). `seats`, `eligible`, `elect` and `ballot` refuse nothing by themselves, so words after them would never be shown.",
            Code::E0122 => "The amount of `due AMOUNT UNIT` or `min AMOUNT UNIT` is a name or a parenthesised expression of parameters and values, of type `int`: it is computed when the instance starts, where a negative amount is refused (F045). Form fields, step times and vote counts are not known then; a constant amount is written as a number (`3 days`).",
            Code::E0121 => "A parameter's default must lie within the range the parameter declares, or every instance started without the parameter would be refused.",
            Code::E0120 => "A range (`>= 0`, `<= 9`, `in 30..=50`) bounds a number parameter of the policy; values outside it are refused when an instance starts (F011). It needs an `int` or `decimal` parameter of the policy itself (a procedure parameter is bound by its call), and its low end may not exceed its high end.",
            Code::E0201 => "Arithmetic is exact: `/` gives a fraction, so a value declared `int` must round it with `floor` or `ceil`. Comparisons need two numbers, two dates or two texts; `and`/`or`/`not`/`when`/`require` need conditions; a date plus a duration is a date.",
            Code::E0202 => "The functions are `ceil(x)`, `floor(x)`, `min(a, b)`, `max(a, b)`, `len(list)`, `start(STEP)` and `end(STEP)`.",
            Code::E0203 => "A `const` and a parameter's default are fixed when the policy is compiled, so they cannot depend on parameters. Use `let` for a value computed from parameters (R2.4–R2.7 sizes are `let`s).",
            Code::E0204 => "A `match` over numbers is a decision table: every value must fall under exactly one arm. Ranges include both written ends (`51..=99`), so boundaries such as 50/51 and 99/100 must be written out; add `_ =>` for a deliberate catch-all.",
            Code::E0205 => "A constant expression divides by zero.",
            Code::E0206 => "`recur … carry A, B` hands parameters of this cycle to the next one, and `dated P` gives the next cycle its due date in the date parameter `P`; both must name parameters declared with `param` (`dated` a `date` one).",
            Code::E0207 => "When the next cycle opens (R0.3), every parameter without a default must come from somewhere: carried over (`carry`), the due date (`dated`), or given by a person. If some must be given, name the role that starts the next cycle with `by ROLE`: the engine then opens a task for it instead of starting the instance with parameters it does not know.",
            Code::E0208 => "`quota COND at most SHARE of cycle else \"…\"` (R3.7) caps how many instances of one cycle may meet a condition over one step's form (`评定.等次 == \"优秀\"`). The policy must recur (the cycle is its period), the condition must read exactly one step's fields and no parameters, and the share is a constant from 0% to 100%.",
            Code::E0209 => "`requires completed POLICY where PARAM == EXPR else \"…\"` (R3.6) looks for a completed instance of another procedure about the same matter: the value compared with its parameter must be a plain text, number or date, and the clause must carry the words of the rule for the refusal.",
            Code::E0301 => "The steps named wait for each other in a circle, so none of them can ever open. A phase waiting for one of its own steps is such a circle too.",
            Code::E0302 => "Every step except a `call` needs `by ROLE`, and its approval rule must be satisfiable by the listed roles: `rule 3 of 2` and `rule > 1/1` can never be met.",
            Code::E0303 => "The step waits for an outcome that cannot happen (a filing or task is never rejected; an approval that returns on rejection never ends rejected), or its `when` condition is always false. Steps after it are unreachable too.",
            Code::E0304 => "`on rejected return X`, `on objection return X` and `may return X by R` reopen earlier work, so X must be a step the returning step waits for, directly or through others.",
            Code::E0305 => "A filing (备案) records a result and a consultation (征求意见) an opinion; neither can veto, so neither step may declare `may return` (R2.18). The body that decides declares the return.",
            Code::E0306 => "A return reopens the target and everything after it. `may return T by R` on step S is refused (1) when R acts on no step among those it would reopen other than filings and consultations, so it would undo work in which it decides nothing; or (2) when it would reopen a vote or approval D that S waits for, R takes no part in D, and R files D's result: a filing body would force the decision to be taken again (R2.18, R3.3).",
            Code::E0307 => "At a breach the step ends one way: `reject` closes it, `return X` sends the matter back to an earlier step, `reassign R` hands it to another role. Two of these together (or one twice) would each undo the other, so a step's `on breach` may name at most one of them; `overdue`, `escalate` and `notify` go with any.",
            Code::E0308 => "`on breach reassign R` hands a late step to R (提级办理): R alone acts on it from then on and its one act decides. R must be a role that does not already hold the step alone: handing the matter back to the office that missed the limit changes nothing.",
            Code::E0401 => "A step or sub-phase runs inside its phase: its window must lie within the phase's window (R1.2 sub-steps within 具体实施阶段).",
            Code::E0402 => "Windows, dependencies and minimum durations are solved together as difference constraints. The listed chain needs more days than its windows allow; the message says how many. Working days count as at least one calendar day each.",
            Code::E0403 => "The window's start is after its end.",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// A secondary place in the source with a short message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// A problem found in a policy. Messages are lower-case, without a final period, with user
/// input in backticks; advice goes in `help`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    /// What the primary caret says (may be empty).
    pub label: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            label: String::new(),
            labels: Vec::new(),
            help: None,
            notes: Vec::new(),
        }
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label { span, message: message.into() });
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Line starts of a text, built once, so that positions are found by binary search.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

/// A 1-based line and column; the column counts characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub fn line_col(&self, text: &str, offset: usize) -> LineCol {
        let offset = clamp_to_char_boundary(text, offset);
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        LineCol { line: line + 1, column }
    }
}

fn clamp_to_char_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while o > 0 && !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// The JSON shape of a diagnostic, as the API returns it.
#[derive(Clone, Debug, Serialize)]
pub struct JsonDiagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: String,
    /// Where the primary span starts and ends; columns count characters.
    pub start: LineCol,
    pub end: LineCol,
    pub label: String,
    pub labels: Vec<JsonLabel>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JsonLabel {
    pub start: LineCol,
    pub end: LineCol,
    pub message: String,
}

/// Renders diagnostics of one source file.
pub struct Renderer<'a> {
    file_name: &'a str,
    source: &'a str,
    index: LineIndex,
}

impl<'a> Renderer<'a> {
    pub fn new(file_name: &'a str, source: &'a str) -> Self {
        Renderer { file_name, source, index: LineIndex::new(source) }
    }

    fn range(&self, span: Span) -> std::ops::Range<usize> {
        let s = clamp_to_char_boundary(self.source, span.start);
        let e = clamp_to_char_boundary(self.source, span.end.max(span.start));
        s..e
    }

    /// rustc-like text: header, `--> file:line:col`, the source line and carets, help.
    pub fn text(&self, diagnostics: &[Diagnostic], color: bool) -> String {
        let file = SimpleFile::new(self.file_name, self.source);
        let config = term::Config::default();
        let mut out = Vec::new();
        for d in diagnostics {
            let severity = match d.severity {
                Severity::Error => cr::Severity::Error,
                Severity::Warning => cr::Severity::Warning,
            };
            let mut labels = vec![cr::Label::primary((), self.range(d.span)).with_message(d.label.clone())];
            for l in &d.labels {
                labels.push(cr::Label::secondary((), self.range(l.span)).with_message(l.message.clone()));
            }
            let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
            if let Some(help) = &d.help {
                notes.push(format!("help: {help}"));
            }
            let diag = cr::Diagnostic::new(severity)
                .with_code(d.code.as_str())
                .with_message(d.message.clone())
                .with_labels(labels)
                .with_notes(notes);
            let result = if color {
                let mut w = term::termcolor::Ansi::new(&mut out);
                term::emit_to_write_style(&mut w, &config, &file, &diag)
            } else {
                let mut w = term::termcolor::NoColor::new(&mut out);
                term::emit_to_write_style(&mut w, &config, &file, &diag)
            };
            if let Err(e) = result {
                out.extend_from_slice(
                    format!("error[{}]: {} (could not render source: {e})\n", d.code, d.message).as_bytes(),
                );
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn json(&self, diagnostics: &[Diagnostic]) -> Vec<JsonDiagnostic> {
        diagnostics
            .iter()
            .map(|d| JsonDiagnostic {
                code: d.code.as_str(),
                severity: d.severity,
                message: d.message.clone(),
                file: self.file_name.to_string(),
                start: self.index.line_col(self.source, d.span.start),
                end: self.index.line_col(self.source, d.span.end),
                label: d.label.clone(),
                labels: d
                    .labels
                    .iter()
                    .map(|l| JsonLabel {
                        start: self.index.line_col(self.source, l.span.start),
                        end: self.index.line_col(self.source, l.span.end),
                        message: l.message.clone(),
                    })
                    .collect(),
                help: d.help.clone(),
                notes: d.notes.clone(),
            })
            .collect()
    }
}

/// Edit-distance suggestion for "did you mean".
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, c)| *d > 0 && *d <= (name.chars().count().max(c.chars().count()) / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
