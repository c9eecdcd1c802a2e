//! Why a command is refused, in words an office understands, with a stable code.
//!
//! A refusal records nothing. The HTTP layer maps [`Refusal::class`] to a status: `Forbidden`
//! → 403, `Conflict` → 409, `Invalid` → 422.

use std::fmt;

use chrono::{DateTime, Utc};

/// How the edge should answer a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalClass {
    /// The actor may not do this (403).
    Forbidden,
    /// The instance or step is not in a state that allows it (409).
    Conflict,
    /// The data breaks a rule of the policy (422).
    Invalid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    AlreadyStarted,
    NotStarted,
    /// The instance is completed, rejected or cancelled.
    InstanceClosed {
        status: String,
    },
    UnknownStep {
        node: String,
    },
    /// The step is waiting, done or skipped.
    StepNotOpen {
        node: String,
        status: String,
    },
    NotEntitled {
        node: String,
        role: String,
        allowed: Vec<String>,
    },
    /// The role may act, but not in the actor's name (a principal acts for itself or by delegation).
    AlreadyActed {
        node: String,
        principal: String,
    },
    /// R1.1: acting before the window opens.
    WindowNotOpen {
        node: String,
        opens: String,
    },
    /// R1.1: acting after the window closed.
    WindowClosed {
        node: String,
        closed: String,
    },
    /// The action does not apply to this kind of step (e.g. rejecting a filing, R2.18).
    WrongAction {
        node: String,
        kind: String,
        action: String,
        allowed: Vec<&'static str>,
    },
    /// A required parameter is missing or has the wrong type.
    BadParam {
        param: String,
        problem: String,
    },
    /// A form field is missing, unknown or of the wrong type.
    BadField {
        node: String,
        field: String,
        problem: String,
    },
    /// A `require` rule of the form failed: its own message.
    RuleFailed {
        node: String,
        message: String,
    },
    /// A vote without its quorum (R2.14, R2.16).
    QuorumNotMet {
        node: String,
        rule: String,
        /// The rule's words from the policy (`quorum … else "R2.14 …"`), if it gives them.
        words: Option<String>,
        detail: String,
    },
    /// The slate does not have the number of candidates the rule needs (R2.11, R2.12, R2.17).
    SlateRule {
        node: String,
        rule: String,
        /// The rule's words from the policy (`slate … else "R2.12 …"`), if it gives them.
        words: Option<String>,
        detail: String,
    },
    /// Counts that cannot be true (more ballots than voters …).
    InconsistentCounts {
        node: String,
        detail: String,
    },
    /// The minimum duration (公示期) has not passed.
    MinDurationNotElapsed {
        node: String,
        until: String,
    },
    /// A reason is required (rejection, return, cancellation).
    ReasonRequired {
        action: String,
    },
    /// `return` to a step that does not come before.
    NotEarlier {
        node: String,
        target: String,
    },
    NothingToWithdraw {
        node: String,
        principal: String,
    },
    /// Someone else acted after; the act can no longer be withdrawn.
    TooLateToWithdraw {
        node: String,
    },
    /// A deadline needs a year the working-day calendar does not cover.
    Calendar {
        message: String,
    },
    /// An expression of the policy could not be evaluated (a missing value …).
    Evaluation {
        message: String,
    },
    /// A timer that is no longer relevant (its step moved on).
    StaleTimer {
        node: String,
    },
    /// Under a `sequence` rule, another role approves first.
    NotYourTurn {
        node: String,
        role: String,
        next: String,
    },
    /// R0.2: the minimum duration counts working days into a year whose calendar is not
    /// published yet; the step cannot end before the year is added.
    MinDurationAwaitingCalendar {
        node: String,
        year: i32,
    },
    /// R0.2: the step's window counts working days into a year whose calendar is not published
    /// yet: whether it is open is not known until the year is added.
    WindowAwaitingCalendar {
        node: String,
        year: i32,
    },
    /// R2.12, R2.17, R2.20: the tallies name candidates other than the approved list.
    BallotNotApproved {
        node: String,
        /// The list as the policy names it (`确定正式候选人.正式候选人名单`).
        list: String,
        /// Names entered that are not on the list.
        extra: Vec<String>,
        /// Names on the list without a tally.
        missing: Vec<String>,
    },
    /// A duration computed from the parameters (`due 办结时限 workdays`) is negative.
    NegativeDuration {
        node: String,
        amount: String,
        value: String,
    },
    /// R3.7: the rating would exceed the cap over the instances of the cycle; the rule's words.
    QuotaExceeded {
        node: String,
        message: String,
        used: u64,
        cap: u64,
        base: u64,
    },
    /// R3.6: another procedure about the same matter has not completed (or ended negative).
    PrerequisiteMissing {
        node: String,
        message: String,
        detail: String,
    },
    /// R0.3: there is no next cycle waiting to be started on this instance.
    NoNextCycleDue {
        detail: String,
    },
    /// A return by hand that the policy does not declare for this step, target and role
    /// (`may return`): nobody vetoes or escapes through a return (R2.18, R3.3, R3.5).
    ReturnNotDeclared {
        node: String,
        target: String,
        role: String,
        /// What the step declares, as `target by role, …` (empty: no return at all).
        declared: Vec<String>,
    },
    /// Urging (催办) is for the roles the policy names (`urge by`) and those the step was
    /// escalated to.
    UrgeNotAllowed {
        node: String,
        role: String,
        allowed: Vec<String>,
    },
    /// Issue 11.1: extending the deadline (延期) is for the roles the step's `extend by` names.
    ExtensionNotAllowed {
        node: String,
        role: String,
        allowed: Vec<String>,
    },
    /// Issue 11.1: the extension asked for is zero, or more than what is left of the step's
    /// `extend … max`.
    ExtensionTooLong {
        node: String,
        asked: u32,
        used: u32,
        max: civicflow_dsl::ir::Span,
    },
    /// Issue 11.1: the step has no deadline to extend now (it waits for its year's calendar).
    NoDeadlineToExtend {
        node: String,
    },
    /// Issue 11.1: an extension asked for waits for its approval already.
    ExtensionPending {
        node: String,
    },
    /// Issue 11.1: no extension asked for waits for approval on the step.
    NoExtensionAsked {
        node: String,
    },
    /// Issue 11.2: handing the step to another office (转办) is for the roles its `transfer by`
    /// names.
    TransferNotAllowed {
        node: String,
        role: String,
        allowed: Vec<String>,
    },
    /// Issue 11.2: the step acts in no role bound to an office: there is no office to hand it
    /// from (any office holding the role may already act).
    NothingToTransfer {
        node: String,
    },
    /// Issue 11.2: adding and removing approvers is for the roles the step's `approvers by`
    /// names.
    ApproversNotAllowed {
        node: String,
        role: String,
        allowed: Vec<String>,
    },
    /// Issue 11.2: the approver cannot be added or removed (not in the pool, already an
    /// approver, not one, has acted, or the rule would be left with too few).
    ApproverChangeRefused {
        node: String,
        role: String,
        why: String,
    },
    /// Issue 11.2: copying a step to another office (抄送) is for the roles its `copy by` names.
    CopyNotAllowed {
        node: String,
        role: String,
        allowed: Vec<String>,
    },
    /// Issue 11.2: the copy cannot be sent or marked read: the office was sent it and has not
    /// read it yet, or no unread copy of the step waits for the office.
    CopyRefused {
        node: String,
        office: String,
        why: String,
    },
    /// Issue 11.4: correcting a start parameter is for the roles the policy declares `may correct`.
    CorrectNotAllowed {
        role: String,
        allowed: Vec<String>,
    },
    /// Issue 11.4: the correction would make what a completed step decided invalid: the step and
    /// the rule it would break.
    CorrectionRefused {
        node: String,
        rule: String,
    },
    /// Issue 11.5: the instance cannot move to the new version as the plan maps it: the step (if
    /// one) and why (an approval would be lost, a completed step reopened, a window broken …).
    MigrationRefused {
        step: Option<String>,
        why: String,
    },
    /// Issue 11.3: the instance is suspended (挂起): nothing is acted on until it resumes.
    Suspended {
        since: chrono::DateTime<chrono::Utc>,
        reason: String,
    },
    /// Issue 11.3: resuming an instance that is not suspended.
    NotSuspended,
    /// Issue 11.3: suspending and resuming are for the roles the policy declares `may suspend`.
    SuspendNotAllowed {
        role: String,
        allowed: Vec<String>,
    },
    /// R6.1: the role is bound to another office for this instance (or this fan-out copy).
    OfficeNotBound {
        node: String,
        role: String,
        /// The office the role is bound to.
        bound: String,
        /// The acting principal's office.
        office: String,
    },
    /// R6.1: the role's office comes from something not recorded yet (a form field, a copy's
    /// element): nobody may act in it until then.
    RoleNotBound {
        node: String,
        role: String,
        source: String,
    },
}

impl Refusal {
    /// Stable code, for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::AlreadyStarted => "F001",
            Refusal::NotStarted => "F002",
            Refusal::InstanceClosed { .. } => "F003",
            Refusal::UnknownStep { .. } => "F004",
            Refusal::StepNotOpen { .. } => "F005",
            Refusal::NotEntitled { .. } => "F006",
            Refusal::AlreadyActed { .. } => "F007",
            Refusal::WindowNotOpen { .. } => "F008",
            Refusal::WindowClosed { .. } => "F009",
            Refusal::WrongAction { .. } => "F010",
            Refusal::BadParam { .. } => "F011",
            Refusal::BadField { .. } => "F012",
            Refusal::RuleFailed { .. } => "F013",
            Refusal::QuorumNotMet { .. } => "F014",
            Refusal::SlateRule { .. } => "F015",
            Refusal::InconsistentCounts { .. } => "F016",
            Refusal::MinDurationNotElapsed { .. } => "F017",
            Refusal::ReasonRequired { .. } => "F018",
            Refusal::NotEarlier { .. } => "F019",
            Refusal::NothingToWithdraw { .. } => "F020",
            Refusal::TooLateToWithdraw { .. } => "F021",
            Refusal::Calendar { .. } => "F022",
            Refusal::Evaluation { .. } => "F023",
            Refusal::StaleTimer { .. } => "F024",
            Refusal::NotYourTurn { .. } => "F025",
            Refusal::MinDurationAwaitingCalendar { .. } => "F026",
            Refusal::WindowAwaitingCalendar { .. } => "F027",
            Refusal::NegativeDuration { .. } => "F045",
            Refusal::QuotaExceeded { .. } => "F040",
            Refusal::PrerequisiteMissing { .. } => "F041",
            Refusal::NoNextCycleDue { .. } => "F042",
            Refusal::ReturnNotDeclared { .. } => "F030",
            Refusal::UrgeNotAllowed { .. } => "F031",
            Refusal::ExtensionNotAllowed { .. } => "F047",
            Refusal::ExtensionTooLong { .. } => "F048",
            Refusal::NoDeadlineToExtend { .. } => "F049",
            Refusal::Suspended { .. } => "F050",
            Refusal::TransferNotAllowed { .. } => "F053",
            Refusal::NothingToTransfer { .. } => "F054",
            Refusal::ApproversNotAllowed { .. } => "F055",
            Refusal::ApproverChangeRefused { .. } => "F056",
            Refusal::CopyNotAllowed { .. } => "F057",
            Refusal::CopyRefused { .. } => "F058",
            Refusal::CorrectNotAllowed { .. } => "F059",
            Refusal::CorrectionRefused { .. } => "F060",
            Refusal::MigrationRefused { .. } => "F061",
            Refusal::ExtensionPending { .. } => "F062",
            Refusal::NoExtensionAsked { .. } => "F063",
            Refusal::NotSuspended => "F051",
            Refusal::SuspendNotAllowed { .. } => "F052",
            Refusal::BallotNotApproved { .. } => "F046",
            Refusal::OfficeNotBound { .. } => "F035",
            Refusal::RoleNotBound { .. } => "F036",
        }
    }

    pub fn class(&self) -> RefusalClass {
        match self {
            Refusal::NotEntitled { .. }
            | Refusal::ReturnNotDeclared { .. }
            | Refusal::UrgeNotAllowed { .. }
            | Refusal::ExtensionNotAllowed { .. }
            | Refusal::SuspendNotAllowed { .. }
            | Refusal::TransferNotAllowed { .. }
            | Refusal::ApproversNotAllowed { .. }
            | Refusal::CopyNotAllowed { .. }
            | Refusal::CorrectNotAllowed { .. }
            | Refusal::OfficeNotBound { .. }
            | Refusal::RoleNotBound { .. } => RefusalClass::Forbidden,
            Refusal::AlreadyActed { .. }
            | Refusal::AlreadyStarted
            | Refusal::NotStarted
            | Refusal::InstanceClosed { .. }
            | Refusal::StepNotOpen { .. }
            | Refusal::WindowNotOpen { .. }
            | Refusal::WindowClosed { .. }
            | Refusal::MinDurationNotElapsed { .. }
            | Refusal::NothingToWithdraw { .. }
            | Refusal::TooLateToWithdraw { .. }
            | Refusal::StaleTimer { .. }
            | Refusal::NotYourTurn { .. }
            | Refusal::MinDurationAwaitingCalendar { .. }
            | Refusal::WindowAwaitingCalendar { .. }
            | Refusal::PrerequisiteMissing { .. }
            | Refusal::NoDeadlineToExtend { .. }
            | Refusal::Suspended { .. }
            | Refusal::NotSuspended
            | Refusal::CopyRefused { .. }
            | Refusal::MigrationRefused { .. }
            | Refusal::ExtensionPending { .. }
            | Refusal::NoExtensionAsked { .. }
            | Refusal::NoNextCycleDue { .. } => RefusalClass::Conflict,
            _ => RefusalClass::Invalid,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AlreadyStarted => f.write_str("the instance has already started"),
            Refusal::NotStarted => f.write_str("the instance has not started"),
            Refusal::InstanceClosed { status } => write!(f, "the instance is {status}; nothing more can be done on it"),
            Refusal::UnknownStep { node } => write!(f, "there is no step `{node}` in this procedure"),
            Refusal::StepNotOpen { node, status } => write!(f, "step `{node}` is {status}, not open for action"),
            Refusal::NotEntitled { node, role, allowed } => {
                write!(f, "role `{role}` may not act on step `{node}`; it is for {}", list(allowed))
            }
            Refusal::AlreadyActed { node, principal } => write!(f, "`{principal}` has already acted on step `{node}`"),
            Refusal::WindowNotOpen { node, opens } => {
                write!(f, "step `{node}` cannot be acted on before {opens} (its window)")
            }
            Refusal::WindowClosed { node, closed } => write!(f, "the window of step `{node}` closed at {closed}"),
            Refusal::WrongAction { node, kind, action, allowed } => {
                write!(f, "`{action}` does not apply to step `{node}`, a {kind} step; it takes {}", list(allowed))
            }
            Refusal::BadParam { param, problem } => write!(f, "parameter `{param}`: {problem}"),
            Refusal::BadField { node, field, problem } => write!(f, "step `{node}`, field `{field}`: {problem}"),
            Refusal::RuleFailed { node, message } => write!(f, "step `{node}`: {message}"),
            Refusal::QuorumNotMet { node, rule, words: None, detail } => {
                write!(f, "vote `{node}` is not valid: the quorum is `{rule}`; {detail}")
            }
            Refusal::QuorumNotMet { node, rule, words: Some(words), detail } => {
                write!(f, "vote `{node}` is not valid: {words} (the quorum is `{rule}`; {detail})")
            }
            Refusal::SlateRule { node, rule, words: None, detail } => {
                write!(f, "vote `{node}`: the slate must satisfy `{rule}`; {detail}")
            }
            Refusal::SlateRule { node, rule, words: Some(words), detail } => {
                write!(f, "vote `{node}`: {words} (the slate must satisfy `{rule}`; {detail})")
            }
            Refusal::InconsistentCounts { node, detail } => write!(f, "vote `{node}`: {detail}"),
            Refusal::MinDurationNotElapsed { node, until } => {
                write!(f, "step `{node}` cannot end before {until} (its minimum duration)")
            }
            Refusal::ReasonRequired { action } => write!(f, "`{action}` needs a reason"),
            Refusal::NotEarlier { node, target } => {
                write!(f, "step `{node}` cannot return to `{target}`, which does not come before it")
            }
            Refusal::NothingToWithdraw { node, principal } => {
                write!(f, "`{principal}` has no act on step `{node}` to withdraw")
            }
            Refusal::TooLateToWithdraw { node } => {
                write!(f, "someone acted on step `{node}` since; the act can no longer be withdrawn")
            }
            Refusal::Calendar { message } => f.write_str(message),
            Refusal::Evaluation { message } => write!(f, "the policy could not be evaluated: {message}"),
            Refusal::StaleTimer { node } => write!(f, "the timer of step `{node}` no longer applies"),
            Refusal::NotYourTurn { node, role, next } => {
                write!(f, "step `{node}` is approved in order: it is `{next}`'s turn, not `{role}`'s")
            }
            Refusal::MinDurationAwaitingCalendar { node, year } => write!(
                f,
                "step `{node}` cannot end yet: its minimum duration counts working days into {year}, \
                 whose working-day calendar is not published yet (awaiting the {year} calendar, 待{year}年日历公布)"
            ),
            Refusal::WindowAwaitingCalendar { node, year } => write!(
                f,
                "step `{node}` cannot be acted on yet: its window counts working days into {year}, \
                 whose working-day calendar is not published yet (awaiting the {year} calendar, 待{year}年日历公布)"
            ),
            Refusal::BallotNotApproved { node, list: approved, extra, missing } => {
                write!(f, "vote `{node}`: the candidates must be exactly the approved list `{approved}`")?;
                if !extra.is_empty() {
                    write!(f, "; not on the list: {}", list(extra))?;
                }
                if !missing.is_empty() {
                    write!(f, "; on the list but not on the ballot: {}", list(missing))?;
                }
                Ok(())
            }
            Refusal::NegativeDuration { node, amount, value } => {
                write!(f, "step `{node}`: its duration `{amount}` is {value}; a period cannot be negative")
            }
            Refusal::QuotaExceeded { node, message, used, cap, base } => write!(
                f,
                "step `{node}`: {message} ({used} of the {base} instances of this cycle have it already; at most {cap} may)"
            ),
            Refusal::PrerequisiteMissing { node, message, detail } => write!(f, "step `{node}`: {message} ({detail})"),
            Refusal::NoNextCycleDue { detail } => write!(f, "no next cycle is waiting to be started: {detail}"),
            Refusal::ReturnNotDeclared { node, target, role, declared } => {
                write!(
                    f,
                    "role `{role}` may not send step `{node}` back to `{target}`: a matter is returned only where \
                     the policy allows it; a filing cannot veto (R2.18), an approved matter is not sent back to be \
                     decided again (R3.3); "
                )?;
                if declared.is_empty() {
                    f.write_str("this step allows no return")
                } else {
                    write!(f, "this step allows {}", declared.join("; "))
                }
            }
            Refusal::UrgeNotAllowed { node, role, allowed } => {
                if allowed.is_empty() {
                    write!(f, "role `{role}` may not urge step `{node}`; the policy names nobody to urge it")
                } else {
                    write!(
                        f,
                        "role `{role}` may not urge step `{node}`; urging is for {} (named by the policy or \
                         escalated to)",
                        list(allowed)
                    )
                }
            }
            Refusal::ExtensionNotAllowed { node, role, allowed } => {
                if allowed.is_empty() {
                    write!(f, "role `{role}` may not extend step `{node}`; its deadline may not be extended")
                } else {
                    write!(f, "role `{role}` may not extend step `{node}`; extending it is for {}", list(allowed))
                }
            }
            Refusal::ExtensionTooLong { node, asked, used, max } => {
                let left = max.amount.saturating_sub(*used);
                if *asked == 0 {
                    write!(f, "an extension of step `{node}` must be of at least 1 {}", max.unit.keyword())
                } else {
                    write!(
                        f,
                        "step `{node}` may be extended by at most {max} in all; {used} used, {left} left, {asked} asked"
                    )
                }
            }
            Refusal::Suspended { since, reason } => {
                write!(f, "the instance is suspended (挂起) since {} for: {reason}; nothing is acted on until it resumes", since.to_rfc3339())
            }
            Refusal::NotSuspended => f.write_str("the instance is not suspended"),
            Refusal::TransferNotAllowed { node, role, allowed } => {
                if allowed.is_empty() {
                    write!(f, "role `{role}` may not transfer step `{node}`; it may not be transferred")
                } else {
                    write!(f, "role `{role}` may not transfer step `{node}`; transferring it is for {}", list(allowed))
                }
            }
            Refusal::ApproversNotAllowed { node, role, allowed } => {
                if allowed.is_empty() {
                    write!(f, "role `{role}` may not change the approvers of step `{node}`; they may not be changed")
                } else {
                    write!(f, "role `{role}` may not change the approvers of step `{node}`; that is for {}", list(allowed))
                }
            }
            Refusal::ApproverChangeRefused { node, role, why } => {
                write!(f, "the approvers of step `{node}` cannot change for `{role}`: {why}")
            }
            Refusal::CopyNotAllowed { node, role, allowed } => {
                if allowed.is_empty() {
                    write!(f, "role `{role}` may not copy step `{node}` to another office; it may not be copied")
                } else {
                    write!(f, "role `{role}` may not copy step `{node}` to another office; copying it is for {}", list(allowed))
                }
            }
            Refusal::CorrectNotAllowed { role, allowed } => {
                if allowed.is_empty() {
                    write!(f, "role `{role}` may not correct this instance's parameters; the policy names no role that may")
                } else {
                    write!(f, "role `{role}` may not correct this instance's parameters; that is for {}", list(allowed))
                }
            }
            Refusal::ExtensionPending { node } => {
                write!(f, "an extension of step `{node}` was asked for and waits for its approval")
            }
            Refusal::NoExtensionAsked { node } => {
                write!(f, "no extension of step `{node}` waits for approval")
            }
            Refusal::MigrationRefused { step: Some(step), why } => {
                write!(f, "the instance cannot move to the new version: step `{step}`: {why}")
            }
            Refusal::MigrationRefused { step: None, why } => {
                write!(f, "the instance cannot move to the new version: {why}")
            }
            Refusal::CorrectionRefused { node, rule } => {
                write!(f, "the correction would make completed step `{node}` invalid: {rule}")
            }
            Refusal::CopyRefused { node, office, why } => {
                write!(f, "the copy of step `{node}` to `{office}`: {why}")
            }
            Refusal::NothingToTransfer { node } => write!(
                f,
                "step `{node}` acts in no role bound to an office; there is no office to hand it from"
            ),
            Refusal::SuspendNotAllowed { role, allowed } => {
                if allowed.is_empty() {
                    write!(f, "role `{role}` may not suspend or resume this instance; the policy names no role that may")
                } else {
                    write!(f, "role `{role}` may not suspend or resume this instance; that is for {}", list(allowed))
                }
            }
            Refusal::NoDeadlineToExtend { node } => {
                write!(f, "step `{node}` has no deadline to extend now (it waits for its year's working-day calendar)")
            }
            Refusal::OfficeNotBound { node, role, bound, office } => write!(
                f,
                "role `{role}` on step `{node}` is bound to `{bound}` for this instance; `{office}` holds the role but may not act on it"
            ),
            Refusal::RoleNotBound { node, role, source } => write!(
                f,
                "role `{role}` on step `{node}` is bound by {source}, which has not been recorded yet; no office may act in it until then"
            ),
        }
    }
}

fn list<T: AsRef<str>>(items: &[T]) -> String {
    items.iter().map(|s| format!("`{}`", s.as_ref())).collect::<Vec<_>>().join(", ")
}

/// An instant as people read it: local date and time in the policy's zone.
pub fn local(at: DateTime<Utc>, offset: chrono::FixedOffset) -> String {
    at.with_timezone(&offset).format("%Y-%m-%d %H:%M %:z").to_string()
}
