//! The syntax tree of one policy file, as written (before names are resolved or types checked).
//!
//! Every node that a diagnostic can point at carries a byte [`Span`]. Spans never take part in
//! equality: two trees that differ only in layout compare equal, which is what the formatter's
//! round-trip property relies on.

use std::fmt;

/// A byte range into the source text. Line and column are computed only when rendering.
#[derive(Clone, Copy, Default, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl PartialEq for Span {
    /// Spans are positions, not meaning: all spans compare equal.
    fn eq(&self, _other: &Span) -> bool {
        true
    }
}

impl std::hash::Hash for Span {
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A comment (`// …`), kept for the formatter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The text after `//`, untrimmed.
    pub text: String,
    pub span: Span,
    /// Code precedes it on its line (`x // …`); false for a comment on a line of its own.
    pub trailing: bool,
}

/// One parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub policy: Policy,
    /// All comments, in source order. Not part of the policy's meaning.
    pub comments: Vec<Comment>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub name: Ident,
    pub items: Vec<Item>,
    pub span: Span,
}

/// A declaration at the top of a policy or inside a procedure or phase.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Header(Header),
    Param(Param),
    Const(Binding),
    Let(Binding),
    Role(Role),
    Template(Template),
    Procedure(Procedure),
    Recur(Recur),
    /// `quota …` (R3.7): a cap over the instances of one cycle.
    Quota(Quota),
    Phase(Phase),
    Step(Step),
    /// A clause directly inside a phase block (`window`, `after`).
    Clause(Clause),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Header(x) => x.span,
            Item::Param(x) => x.span,
            Item::Const(x) | Item::Let(x) => x.span,
            Item::Role(x) => x.span,
            Item::Template(x) => x.span,
            Item::Procedure(x) => x.span,
            Item::Recur(x) => x.span,
            Item::Quota(x) => x.span,
            Item::Phase(x) => x.span,
            Item::Step(x) => x.span,
            Item::Clause(x) => x.span,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderKey {
    Title,
    Version,
    Timezone,
    Calendar,
}

impl HeaderKey {
    pub fn keyword(self) -> &'static str {
        match self {
            HeaderKey::Title => "title",
            HeaderKey::Version => "version",
            HeaderKey::Timezone => "timezone",
            HeaderKey::Calendar => "calendar",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub key: HeaderKey,
    pub value: Str,
    pub span: Span,
}

/// A string literal: its value (escapes resolved) and whether it was written `"""…"""`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Str {
    pub value: String,
    pub triple: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: TypeExpr,
    /// `>= 0`, `<= 9`, `in 30..=50`: the values an instance may be started with.
    pub range: Option<ParamRange>,
    pub default: Option<Expr>,
    /// A `personal` marker written here, which only form fields take (refused by the check).
    pub personal: Option<Span>,
    pub span: Span,
}

/// The range of a number parameter (取值范围), both written ends included; numbers as written.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamRange {
    pub low: Option<String>,
    pub high: Option<String>,
    /// Written `in LOW..=HIGH` (else `>= LOW` or `<= HIGH`).
    pub between: bool,
    pub span: Span,
}

/// `const NAME: T = E` or `let NAME: T = E`.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: Ident,
    pub ty: TypeExpr,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Role {
    pub name: Ident,
    pub description: Option<Str>,
    /// `bound by …`: the office holding the role is fixed per instance (R6.1).
    pub bound: Option<RoleBound>,
    /// `oversight`: principals in this role see personal data (R6.2, 纪委 / 监督).
    pub oversight: bool,
    /// `may suspend`: the role suspends (挂起) and resumes (激活) instances (issue 11.3).
    pub may_suspend: bool,
    /// `may correct`: the role corrects a start parameter of a running instance (issue 11.4).
    pub may_correct: bool,
    pub span: Span,
}

/// `bound by SOURCE` on a role (R6.1).
#[derive(Clone, Debug, PartialEq)]
pub struct RoleBound {
    pub source: BindSource,
    pub span: Span,
}

/// Where an instance takes the office bound to a role.
#[derive(Clone, Debug, PartialEq)]
pub enum BindSource {
    /// `param NAME`: a text parameter given at start (the community concerned).
    Param(Ident),
    /// `starter`: the office of the principal who started the instance.
    Starter,
    /// `item`: the element of each fan-out copy (one community per copy).
    Item,
    /// `STEP.FIELD`: a text field another step records (the first receiver, 首办部门).
    Field(Ident, Ident),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub name: Ident,
    pub body: Str,
    pub span: Span,
}

/// A sub-procedure, run by a `call` step.
#[derive(Clone, Debug, PartialEq)]
pub struct Procedure {
    pub name: Ident,
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecurUnit {
    Years,
    Months,
}

/// How often a recurring procedure comes round (R0.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecurEvery {
    /// `every N years|months`: N units after the anchor (R2.3: a term of three years).
    Every {
        n: u32,
        unit: RecurUnit,
    },
    /// `monthly` (月度), `quarterly` (季度), `half-yearly` (半年), `yearly` (年度): on chosen
    /// days of the calendar (R3.7, R4.2, R5.2).
    Monthly,
    Quarterly,
    HalfYearly,
    Yearly,
}

/// A day a calendar recurrence falls on: `day 1` (of the month) or `12-20` (of the year).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurDay {
    pub month: Option<u32>,
    pub day: u32,
}

/// Where the period of a recurrence is counted from.
#[derive(Clone, Debug, PartialEq)]
pub enum RecurAnchor {
    /// `from start`: the instance's start.
    Start,
    /// `from end(STEP)`: the end of a step or phase.
    End(Ident),
}

/// `recur every 3 years from end(总结完善) carry 社区名称 dated 开始 by 街道党工委`,
/// `recur monthly on day 1`, `recur yearly on 06-30, 12-20` (R0.3: the next cycle opens by itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Recur {
    pub every: RecurEvery,
    /// `on day 1, 15` / `on 12-20`; empty: the first day of the period.
    pub on: Vec<RecurDay>,
    pub on_span: Option<Span>,
    pub from: Option<RecurAnchor>,
    /// Parameters the next cycle takes over from this one.
    pub carry: Vec<Ident>,
    /// A date parameter the next cycle receives its due date in.
    pub dated: Option<Ident>,
    /// The role that starts the next cycle when it needs fresh parameters.
    pub by: Option<Ident>,
    pub span: Span,
}

/// `quota 评定.等次 == "优秀" at most 10% of cycle else "…"` (R3.7): at most this share of the
/// instances of one cycle may meet the condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Quota {
    pub condition: Expr,
    pub share: Expr,
    pub message: Str,
    pub span: Span,
}

/// A phase (阶段): a group of steps with a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub name: Ident,
    pub title: Option<Str>,
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: Ident,
    pub title: Option<Str>,
    pub kind: StepKind,
    pub kind_span: Span,
    pub clauses: Vec<Clause>,
    /// Whether the step was written with a `{ … }` block (kept so `fmt` keeps the choice).
    pub has_block: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    Task,
    Approval,
    Filing,
    Consultation,
    Publicity,
    Vote,
    Meeting,
    Call(Ident),
}

impl StepKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Task => "task",
            StepKind::Approval => "approval",
            StepKind::Filing => "filing",
            StepKind::Consultation => "consultation",
            StepKind::Publicity => "publicity",
            StepKind::Vote => "vote",
            StepKind::Meeting => "meeting",
            StepKind::Call(_) => "call",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Clause {
    pub kind: ClauseKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClauseKind {
    By(Vec<Ident>),
    After(Vec<Dependency>),
    /// `after any(A, B)`: the first of them done opens the node.
    AfterAny(Vec<Dependency>),
    When(Expr),
    Window {
        from: Expr,
        to: Expr,
    },
    For {
        var: Ident,
        list: Expr,
    },
    Rule(ApprovalRule),
    Due {
        deadline: Deadline,
        roll: bool,
    },
    Remind(Duration),
    Breach(Vec<BreachAction>),
    OnRejected(Option<StepPath>),
    OnObjection(StepPath),
    Min(Duration),
    /// `min 公示天数 days`: the amount is a parameter or value.
    MinAmount {
        amount: Expr,
        unit: TimeUnit,
    },
    Form(Vec<FormItem>),
    Vote {
        key: VoteKey,
        value: Expr,
        /// `else "…"`: the rule's words, given when a vote breaks it (only `quorum`, `slate`).
        message: Option<Str>,
    },
    UseTemplate(Ident),
    With(Vec<(Ident, Expr)>),
    /// `approve only when COND else "message"`: approving is refused with the message unless
    /// the condition holds (R4.2: a rating below 50 % cannot be approved as keeping the company).
    ApproveOnly {
        condition: Expr,
        message: Str,
    },
    /// `requires completed POLICY where PARAM == EXPR else "…"` (R3.6).
    Requires {
        policy: Ident,
        param: Ident,
        value: Expr,
        message: Str,
    },
    /// `may return X, Y by R, S`: the roles that may send the step back (退回) to those earlier
    /// steps; no other return by hand is allowed (R2.18, R3.3). May be repeated.
    MayReturn {
        targets: Vec<StepPath>,
        by: Vec<Ident>,
    },
    /// `urge by R, S`: the roles that may urge (催办) the step, besides those a breach escalated
    /// it to.
    UrgeBy(Vec<Ident>),
    /// `owned`: the step's deadline is the owner's limit (首办负责制, 限期办结): a return out of
    /// it is passing the matter on (推诿) and does not stop the limit (R3.5).
    Owned,
    /// `extend by R, S max 10 workdays`: the roles that may extend the step's deadline (延期),
    /// each time with a reason, by at most this much in all (issue 11.1).
    Extend {
        by: Vec<Ident>,
        max: Duration,
        /// `approved by S`: the extension takes effect when one of these roles approves it.
        approved_by: Vec<Ident>,
    },
    /// `transfer by R, S [restart]`: the roles that may hand the step to another office of the
    /// same kind (转办); its limit is kept unless `restart` (issue 11.2).
    Transfer {
        by: Vec<Ident>,
        restart: bool,
    },
    /// `copy by R, S`: the roles that may copy the step, or its result, to another office for
    /// information (抄送, issue 11.2).
    CopyBy(Vec<Ident>),
    /// `approvers by R from A, B`: the roles that may add approvers (加签) from the pool, or
    /// remove (减签) an approver who has not acted, while the step is open (issue 11.2).
    Approvers {
        by: Vec<Ident>,
        pool: Vec<Ident>,
        /// `max N`: the most approvers the step may have.
        max: Option<u32>,
    },
}

impl ClauseKind {
    /// The keyword(s) that start the clause, for messages.
    pub fn keyword(&self) -> &'static str {
        match self {
            ClauseKind::By(_) => "by",
            ClauseKind::After(_) => "after",
            ClauseKind::AfterAny(_) => "after any",
            ClauseKind::When(_) => "when",
            ClauseKind::Window { .. } => "window",
            ClauseKind::For { .. } => "for",
            ClauseKind::Rule(_) => "rule",
            ClauseKind::Due { .. } => "due",
            ClauseKind::Remind(_) => "remind",
            ClauseKind::Breach(_) => "on breach",
            ClauseKind::OnRejected(_) => "on rejected",
            ClauseKind::OnObjection(_) => "on objection",
            ClauseKind::Min(_) | ClauseKind::MinAmount { .. } => "min",
            ClauseKind::Form(_) => "form",
            ClauseKind::Vote { key, .. } => key.keyword(),
            ClauseKind::UseTemplate(_) => "template",
            ClauseKind::With(_) => "with",
            ClauseKind::ApproveOnly { .. } => "approve only when",
            ClauseKind::Requires { .. } => "requires",
            ClauseKind::MayReturn { .. } => "may return",
            ClauseKind::UrgeBy(_) => "urge by",
            ClauseKind::Owned => "owned",
            ClauseKind::Extend { .. } => "extend by",
            ClauseKind::Transfer { .. } => "transfer by",
            ClauseKind::Approvers { .. } => "approvers by",
            ClauseKind::CopyBy(_) => "copy by",
        }
    }
}

/// A step named where it is referred to: `X`, or `选举.居委会.差额选举` for a step inside the
/// procedure a `call` step runs (in `due … after`, `return` targets and `may return`).
#[derive(Clone, Debug, PartialEq)]
pub struct StepPath {
    pub step: Ident,
    /// The steps inside the procedure `step` calls, outermost first.
    pub inner: Vec<Ident>,
}

impl StepPath {
    /// A path of one name.
    pub fn single(step: Ident) -> StepPath {
        StepPath { step, inner: Vec::new() }
    }

    pub fn span(&self) -> Span {
        self.inner.last().map_or(self.step.span, |last| self.step.span.to(last.span))
    }
}

impl std::fmt::Display for StepPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.step.name)?;
        for part in &self.inner {
            write!(f, ".{}", part.name)?;
        }
        Ok(())
    }
}

/// `after X` or `after X approved` / `after X rejected`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    pub step: Ident,
    /// `after 居委会换届.公布选举结果`: the steps inside the procedure `step` calls, outermost first.
    pub inner: Vec<Ident>,
    pub outcome: Option<Outcome>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approved,
    Rejected,
}

/// Who must approve (会签 all, 或签 any, k of n, a fraction, a chain in order).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApprovalRule {
    All,
    Any,
    Sequence,
    KOfN { k: u32, n: u32 },
    Fraction { strict: bool, num: u32, den: u32 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Deadline {
    /// `due 10 workdays` (from when the step opens) or `due 10 days after X` (from X's end).
    Relative { duration: Duration, after: Option<StepPath> },
    /// `due 2008-03-20` or any date expression.
    At(Expr),
    /// `due 办结时限 workdays [after X]`: the amount is a parameter or value (a name or `( … )`).
    Amount { amount: Expr, unit: TimeUnit, after: Option<StepPath> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Calendar days.
    Days,
    /// Working days (工作日): skip weekends and holidays, count make-up days.
    Workdays,
    Months,
    Years,
}

impl TimeUnit {
    pub fn keyword(self) -> &'static str {
        match self {
            TimeUnit::Days => "days",
            TimeUnit::Workdays => "workdays",
            TimeUnit::Months => "months",
            TimeUnit::Years => "years",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    pub amount: u32,
    pub unit: TimeUnit,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum BreachAction {
    Overdue,
    Reject,
    Escalate(Ident),
    Notify(Ident),
    /// `return X`: send the matter back to an earlier step at the breach (the policy's own return).
    Return(StepPath),
    /// `reassign R`: the step is taken over by role R at the breach (提级办理).
    Reassign(Ident),
}

#[derive(Clone, Debug, PartialEq)]
pub enum FormItem {
    /// `personal`: a resident's personal data, shown only to bound offices and oversight (R6.2).
    Field {
        name: Ident,
        ty: TypeExpr,
        optional: bool,
        personal: bool,
        span: Span,
    },
    Require {
        condition: Expr,
        message: Str,
        span: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteKey {
    Seats,
    Eligible,
    Quorum,
    Elect,
    Slate,
    /// The names the ballot must carry, exactly (R2.12, R2.17, R2.20): a `list<text>`.
    Ballot,
}

impl VoteKey {
    pub fn keyword(self) -> &'static str {
        match self {
            VoteKey::Seats => "seats",
            VoteKey::Eligible => "eligible",
            VoteKey::Quorum => "quorum",
            VoteKey::Elect => "elect",
            VoteKey::Slate => "slate",
            VoteKey::Ballot => "ballot",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeKind {
    Int,
    Decimal,
    Text,
    Date,
    Bool,
    List(Box<TypeExpr>),
    Record(Vec<(Ident, TypeExpr)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div => 6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnOp {
    Not,
    Neg,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An integer literal, kept as written digits (arbitrary size).
    Int(String),
    /// `1.3` as written.
    Decimal(String),
    /// `30%` as written, without the `%`.
    Percent(String),
    Str(Str),
    Bool(bool),
    /// `2012-03-21` as written; validity is checked later (E0105).
    Date(String),
    Duration(Duration),
    List(Vec<Expr>),
    Name(Ident),
    Field(Box<Expr>, Ident),
    Call(Ident, Vec<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Match {
        scrutinee: Box<Expr>,
        arms: Vec<MatchArm>,
    },
    /// `( … )`, kept so the formatter reproduces the author's grouping.
    Paren(Box<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct MatchArm {
    pub pattern: Pattern,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    pub kind: PatternKind,
    pub span: Span,
}

/// Numbers in patterns are kept as written (`-3`, `2.5`).
#[derive(Clone, Debug, PartialEq)]
pub enum PatternKind {
    Wildcard,
    /// `a..=b`, `..=b`, `a..`: both written ends are included.
    Range {
        low: Option<String>,
        high: Option<String>,
    },
    Number(String),
    Str(String),
    Bool(bool),
    Date(String),
}
