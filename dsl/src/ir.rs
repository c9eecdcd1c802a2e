//! The graph IR: what the engine runs. A compatibility boundary — its JSON is stored with every
//! published policy version and its canonical encoding is hashed into the version id, so a change
//! here shows up in the golden files of every bundled policy.
//!
//! Names are resolved: every reference is a fully qualified id. A step or phase id is its path
//! (`选前准备/提名`; a sub-procedure's steps are prefixed with the calling step's id). There are no
//! spans: the same policy reformatted compiles to the same IR and the same hash.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::ast::{BinOp, Outcome, RecurUnit, TimeUnit, UnOp, VoteKey};
use crate::value::Value;

/// A compiled policy version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub title: Option<String>,
    /// The author's version label (`version "2012.1"`); the hash is the real identity.
    pub version: Option<String>,
    pub timezone: String,
    pub calendar: String,
    pub params: Vec<Param>,
    /// Constants and derived values, in evaluation order.
    pub values: Vec<Derived>,
    pub roles: Vec<Role>,
    pub templates: Vec<Template>,
    /// Phases and steps in declaration order (a parent before its children).
    pub nodes: Vec<Node>,
    /// Transitions between nodes.
    pub edges: Vec<Edge>,
    /// Every timer an instance of this policy can set.
    pub timers: Vec<TimerSpec>,
    /// The form of `recur` before anchors and calendar days existed; kept so stored versions
    /// still load (a new compile leaves it `None` and fills `cycles`).
    pub recurrence: Option<Recurrence>,
    /// How the procedure comes round (R0.3), one entry per `recur`; the earliest due opens the
    /// next cycle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cycles: Vec<Cycle>,
    /// Caps over the instances of one cycle (R3.7).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<Quota>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Type {
    Int,
    Decimal,
    Text,
    Date,
    Bool,
    Duration,
    List { of: Box<Type> },
    Record { fields: Vec<(String, Type)> },
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Type::Int => f.write_str("int"),
            Type::Decimal => f.write_str("decimal"),
            Type::Text => f.write_str("text"),
            Type::Date => f.write_str("date"),
            Type::Bool => f.write_str("bool"),
            Type::Duration => f.write_str("duration"),
            Type::List { of } => write!(f, "list<{of}>"),
            Type::Record { fields } => {
                f.write_str("record { ")?;
                for (i, (n, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n}: {t}")?;
                }
                f.write_str(" }")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Fully qualified (`党组织换届/党员人数` inside a sub-procedure call).
    pub id: String,
    pub ty: Type,
    pub default: Option<Value>,
    /// The values an instance may start with (`param 党员人数: int >= 0`); absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

/// A closed range of numbers; a missing end is unbounded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub low: Option<Value>,
    pub high: Option<Value>,
}

impl Range {
    /// Why `v` lies outside `range` (words for a message), or `None` if it is inside.
    pub fn violation(&self, v: &Value) -> Option<String> {
        let n = v.as_number()?;
        if let Some(l) = self.low.as_ref().and_then(Value::as_number) {
            if n < l {
                return Some(format!("must be at least {} (range `{self}`)", crate::value::format_rational(l)));
            }
        }
        if let Some(h) = self.high.as_ref().and_then(Value::as_number) {
            if n > h {
                return Some(format!("must be at most {} (range `{self}`)", crate::value::format_rational(h)));
            }
        }
        None
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.low, &self.high) {
            (Some(l), Some(h)) => write!(f, "in {l}..={h}"),
            (Some(l), None) => write!(f, ">= {l}"),
            (None, Some(h)) => write!(f, "<= {h}"),
            (None, None) => f.write_str("any"),
        }
    }
}

/// A `const` or `let`: evaluated once when an instance starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    pub id: String,
    pub ty: Type,
    pub expr: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub description: Option<String>,
    /// R6.1: where an instance takes the office that holds this role. `None`: any office
    /// holding the role may act (a street-level body that is unique).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<RoleBinding>,
    /// R6.2: principals in this role (纪委, 监督) see residents' personal data.
    #[serde(default, skip_serializing_if = "is_false")]
    pub oversight: bool,
    /// Issue 11.3: principals in this role suspend (挂起) and resume (激活) instances.
    #[serde(default, skip_serializing_if = "is_false")]
    pub may_suspend: bool,
    /// Issue 11.4: principals in this role correct a start parameter of a running instance.
    #[serde(default, skip_serializing_if = "is_false")]
    pub may_correct: bool,
}

/// Where an instance takes the office bound to a role (R6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum RoleBinding {
    /// A text parameter given at start (`bound by param 社区名称`).
    Param { param: String },
    /// The office of the principal who started the instance (`bound by starter`).
    Starter,
    /// The element of each fan-out copy whose step names the role (`bound by item`).
    Item,
    /// A text field recorded by a step (`bound by 民生办分流.首办部门名称`): chosen at run time.
    Field { node: String, field: String },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A handlebars notice or certificate (公示, 证书).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    pub source: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Task,
    Approval,
    Filing,
    Consultation,
    Publicity,
    Vote,
    Meeting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A phase (阶段): done when all its children are done or skipped.
    Phase,
    /// A sub-procedure call: done when the procedure's steps (its children) are done.
    Call,
    Step(StepKind),
}

/// A phase or step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub title: Option<String>,
    pub kind: NodeKind,
    pub parent: Option<String>,
    /// Roles entitled to act, in the order written (the order of a `sequence` rule).
    pub roles: Vec<String>,
    pub rule: Option<ApprovalRule>,
    /// Nodes that must be done (with the outcome, if given) before this one opens.
    pub after: Vec<Dependency>,
    /// Skip the node when this is false (evaluated when it would open).
    pub guard: Option<Expr>,
    pub window: Option<Window>,
    /// Fan-out: one copy of the node per element of the list.
    pub for_each: Option<ForEach>,
    pub deadline: Option<Deadline>,
    pub reminders: Vec<Span>,
    pub on_breach: Vec<BreachAction>,
    /// The step may not complete before this much time has passed since it opened.
    pub min_duration: Option<Span>,
    pub form: Vec<Field>,
    pub requires: Vec<Require>,
    /// Instances of other procedures that must have completed first (R3.6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    pub vote: Option<VoteRules>,
    pub template: Option<String>,
    pub on_rejected: Option<OnRejected>,
    pub on_objection: Option<String>,
    /// `due 办结时限 workdays`: the deadline's amount, an `int` of parameters and values computed
    /// at start (the deadline's span then carries only the unit, amount 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_amount: Option<Expr>,
    /// `min 公示天数 days`: the minimum duration's amount, as `due_amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<Expr>,
    /// `after any(A, B)`: the node also waits for the first of these to be done (an "any of" join).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_any: Vec<Dependency>,
    /// `approve only when …`: conditions an approval must meet, each with its words (R4.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approve_requires: Vec<Require>,
    /// Returns (退回) allowed by hand (`may return X by R`); no other is (R2.18, R3.3). Empty in a
    /// policy that declares none, so its encoding and hash do not change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<ReturnRule>,
    /// Roles that may urge (催办) the step (`urge by R`), besides those a breach escalated it to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urge_by: Vec<String>,
    /// The step's deadline is the owner's limit (首办负责制, 限期办结): a return out of it is
    /// passing the matter on (推诿), escalated at once, and the limit keeps running (R3.5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owned: bool,
    /// Who may extend the step's deadline (延期) and by how much in all (`extend by R max 10
    /// workdays`, issue 11.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend: Option<Extension>,
    /// Who may hand the step to another office of the same kind (转办, `transfer by R`, issue
    /// 11.2), and whether its limit starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// Who may copy the step, or its result, to another office for information (抄送, `copy by
    /// R`, issue 11.2): it is listed in that office's inbox, read-only, until marked read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_by: Vec<String>,
    /// Who may add approvers (加签) from a pool, or remove (减签) one who has not acted
    /// (`approvers by R from A, B`, issue 11.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<ApproverChanges>,
}

/// `approvers by R from A, B`: the roles that may change the approvers, and the roles that may be
/// added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverChanges {
    pub roles: Vec<String>,
    pub pool: Vec<String>,
    /// `max N`: the most approvers the step may have (加签 is refused past it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// `transfer by R, S [restart]`: the roles that may hand the step to another office holding its
/// bound role; the limit is kept unless `restart`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub roles: Vec<String>,
    pub restart: bool,
}

/// `extend by R, S max N UNIT`: the roles that may move the step's deadline later, with a
/// reason, by at most `max` in all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub roles: Vec<String>,
    pub max: Span,
    /// `approved by S` (issue 11.1): the extension the roles ask for takes effect when one of
    /// these approves it; empty, at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
}

/// `may return X, Y by R, S`: any of the roles may send the step back to any of the targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRule {
    /// Ids of earlier steps or phases.
    pub targets: Vec<String>,
    pub roles: Vec<String>,
}

/// A length of time in one unit (`3 days`, `10 workdays`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub amount: u32,
    pub unit: TimeUnit,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount, self.unit.keyword())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum ApprovalRule {
    /// 会签: every listed role.
    All,
    /// 或签: any one listed role.
    Any,
    /// The listed roles one after the other, in order.
    Sequence,
    /// At least `k` of the listed roles.
    AtLeast { k: u32 },
    /// More than (`strict`) or at least `num/den` of the listed roles.
    Fraction { strict: bool, num: u32, den: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub node: String,
    pub outcome: Option<Outcome>,
}

/// Acting outside `[from, to]` (whole days, both included) is refused (R1.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub from: Expr,
    pub to: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForEach {
    pub var: String,
    pub list: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum Deadline {
    /// A span after the node opened.
    AfterOpen { span: Span, roll: bool },
    /// A span after another node is done (`due 10 days after 组成新班子`).
    AfterDone { node: String, span: Span, roll: bool },
    /// A fixed instant: the end of the given day.
    At { date: Expr },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum BreachAction {
    /// Mark the step overdue (always recorded on a breach).
    Overdue,
    /// 追究责任: escalate to the accountable role.
    Escalate {
        role: String,
    },
    Notify {
        role: String,
    },
    /// Close the step as rejected.
    Reject,
    /// Send the matter back to an earlier step (its id), as `on rejected return` does: the work
    /// from there is done again. The policy's own return, so no role's permission applies.
    Return {
        node: String,
    },
    /// 提级办理: the role takes the step over; from the breach on it alone acts on it, and its one
    /// act decides (the roles that missed the limit no longer can).
    Reassign {
        role: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub ty: Type,
    pub optional: bool,
    /// R6.2: a resident's personal data (name, phone, address, ID number): its value is shown
    /// only to offices bound to the instance and to oversight roles.
    #[serde(default, skip_serializing_if = "is_false")]
    pub personal: bool,
}

/// A validation of a form: `require COND else "message"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Require {
    pub condition: Expr,
    pub message: String,
}

/// The rules of a vote step. Counts entered with the vote are visible to the expressions as
/// `present`, `cast`, `invalid`, `candidates`, `votes`; `eligible` and `seats` come from here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteRules {
    pub seats: Option<Expr>,
    pub eligible: Expr,
    pub quorum: Option<Expr>,
    pub slate: Option<Expr>,
    pub elect: Expr,
    /// The candidates the ballot must name, exactly: the list the approving step recorded
    /// (R2.12, R2.17, R2.20). A vote whose tallies name others is refused (F046).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ballot: Option<Expr>,
    /// The quorum rule's words (`quorum … else "R2.14 …"`), given with its refusal (F014).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_words: Option<String>,
    /// The slate rule's words (`slate … else "R2.12 …"`), given with its refusal (F015).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slate_words: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "then")]
pub enum OnRejected {
    /// 退回: reopen an earlier step.
    Return { node: String },
    /// The instance ends as rejected.
    End,
}

/// Why the engine moves from one node to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `to` waits for `from` to be done (any outcome).
    Done,
    Approved,
    Rejected,
    /// A rejection sends the instance back to `to`.
    ReturnOnRejection,
    /// An upheld objection during publicity sends the instance back to `to`.
    ReturnOnObjection,
    /// `to` is inside `from` and opens with it.
    Contains,
    /// A declared return by hand (`may return`): `from` may be sent back to `to`.
    MayReturn,
    /// A missed deadline sends the instance back to `to` (`on breach return`).
    ReturnOnBreach,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub on: Trigger,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    WindowOpens,
    WindowCloses,
    Due,
    Reminder,
    MinDurationEnds,
}

/// A timer the engine sets for a node; its instant is computed from the node's fields and the
/// calendar when the node opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerSpec {
    pub node: String,
    pub kind: TimerKind,
    /// For reminders: how long before the deadline.
    pub before: Option<Span>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub every: u32,
    pub unit: RecurUnit,
}

/// How often a cycle comes round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "every")]
pub enum CycleEvery {
    /// N months or years after the anchor's day (R0.1: the period ends at 24:00 of its last day).
    Span {
        n: u32,
        unit: RecurUnit,
    },
    Monthly,
    Quarterly,
    HalfYearly,
    Yearly,
}

/// A day a calendar cycle falls on: the `day` of every month of the period (`month: None`), or
/// a day of the year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleDay {
    pub month: Option<u32>,
    pub day: u32,
}

/// One `recur` (R0.3): when the next cycle is due and what it takes over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycle {
    pub every: CycleEvery,
    /// Days of a calendar cycle, in the order written (empty: the first day of each period).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<CycleDay>,
    /// The node whose end the period is counted from; `None`: the instance's start.
    pub anchor: Option<String>,
    /// Parameters the next cycle takes over.
    pub carry: Vec<String>,
    /// The date parameter that receives the next cycle's due date.
    pub dated: Option<String>,
    /// The role that starts the next cycle when it needs fresh parameters.
    pub by: Option<String>,
    /// Parameters neither carried, dated nor defaulted: the next cycle needs them given, so the
    /// engine opens a task for `by` instead of starting it.
    pub fresh: Vec<String>,
}

/// A cap over the instances of one cycle (R3.7): at most `share` of them may meet `condition`,
/// which reads the form of `node`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// A stable name: `quota1`, `quota2`, … in the order written.
    pub id: String,
    pub node: String,
    pub condition: Expr,
    /// A fraction (`10%` is 1/10).
    pub share: Value,
    pub message: String,
}

/// `requires completed POLICY where PARAM == EXPR` (R3.6): an instance of `policy` whose
/// parameter `param` equals `value` must have completed before the step is acted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prerequisite {
    pub policy: String,
    pub param: String,
    pub value: Expr,
    pub message: String,
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Func {
    Ceil,
    Floor,
    Min,
    Max,
    Len,
}

/// What a name refers to, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefKind {
    Param,
    Value,
    /// The element variable of a fan-out.
    Element,
    /// A field of the step's form.
    Field,
    /// A count of a vote (`present`, `cast`, …) or a vote rule value (`eligible`, `seats`).
    Vote,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "e")]
pub enum Expr {
    Lit {
        value: Value,
    },
    Ref {
        kind: RefKind,
        id: String,
    },
    Field {
        of: Box<Expr>,
        field: String,
    },
    List {
        items: Vec<Expr>,
    },
    Call {
        func: Func,
        args: Vec<Expr>,
    },
    /// A field of the form another step recorded (`选民登记.登记人数`), known once it has.
    NodeField {
        node: String,
        field: String,
    },
    /// When a node started or ended (`start(X)`, `end(X)`), known once it has.
    NodeTime {
        node: String,
        end: bool,
    },
    Unary {
        op: UnOp,
        arg: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Match {
        scrutinee: Box<Expr>,
        arms: Vec<Arm>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub pattern: Pattern,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "p")]
pub enum Pattern {
    Any,
    /// Both given ends included.
    Range {
        low: Option<Value>,
        high: Option<Value>,
    },
    Equals {
        value: Value,
    },
}

impl Policy {
    /// The canonical encoding: compact JSON of the IR. It is deterministic by construction:
    /// struct fields serialize in declaration order, the only maps are `BTreeMap`s (sorted), and
    /// there are no floats. Reordering or renaming a field changes every hash, which the golden
    /// snapshots in `policies/tests/it/snapshots/` make visible.
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The version id: SHA-256 of the canonical encoding, as lower-case hex.
    pub fn hash(&self) -> String {
        let digest = Sha256::digest(self.canonical_json());
        hex::encode(digest)
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The graph as petgraph sees it: nodes are node ids, edges carry their trigger.
    pub fn to_petgraph(&self) -> petgraph::graph::DiGraph<&str, Trigger> {
        let mut g = petgraph::graph::DiGraph::new();
        let mut index = BTreeMap::new();
        for n in &self.nodes {
            index.insert(n.id.as_str(), g.add_node(n.id.as_str()));
        }
        for e in &self.edges {
            if let (Some(a), Some(b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) {
                g.add_edge(*a, *b, e.on);
            }
        }
        g
    }
}
