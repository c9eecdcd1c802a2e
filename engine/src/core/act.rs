//! Acting on a step: who may (entitlement, declared returns and urges, the bound office), when
//! (open, in its window, after its minimum duration, once per role), and what each action
//! records — approvals, votes, forms, withdrawals and returns that reset later steps.

use super::*;

impl Decision<'_> {
    pub(super) fn act(
        &mut self,
        actor: &Actor,
        key: &str,
        action: &Action,
        comment: Option<&str>,
    ) -> Result<(), Refusal> {
        let Some(n) = self.state.nodes.get(key) else {
            return Err(Refusal::UnknownStep { node: key.to_string() });
        };
        let def_id = n.def.clone();
        let Some(def) = self.ctx.program.node(&def_id) else {
            return Err(Refusal::UnknownStep { node: key.to_string() });
        };
        // After `on breach reassign R` the step is R's alone (提级办理).
        let running = breach::as_running(def, n);
        let def = &*running;
        let NodeKind::Step(kind) = def.kind else {
            return Err(Refusal::WrongAction {
                node: key.into(),
                kind: "phase".into(),
                action: action.name().into(),
                allowed: vec![],
            });
        };
        // Entitlement first: an office that may not act learns nothing more (403).
        let acting = self.entitled(key, def, actor, action)?;
        returns::allowed(key, def, n, &acting, action)?;
        self.office_bound(key, def, &acting)?; // R6.1: the role's office for this instance
                                               // 抄送 copies a step that is open or done (its result), so before the step must be open.
        if let Action::CopyTo { to, message } = action {
            return self.copy_to(key, to, message.as_deref().or(comment));
        }
        if n.status != NodeStatus::Open || (def.for_each.is_some() && n.element.is_none()) {
            let status = if def.for_each.is_some() && n.element.is_none() {
                "a group of copies (act on one of them)".to_string()
            } else {
                status_word_node(n.status).to_string()
            };
            return Err(Refusal::StepNotOpen { node: key.into(), status });
        }
        self.in_window(key)?;
        cycles::check_prerequisites(self, key, def, action)?;
        let act = |name: &str, text: Option<String>| Act {
            actor: acting.clone(),
            action: name.to_string(),
            at: self.now,
            text,
        };
        let text = comment.map(str::to_string);
        match action {
            Action::Urge { message } => {
                let a = act("urge", message.clone().or(text));
                self.emit(Event::Urged { node: key.into(), act: a });
                return Ok(());
            }
            Action::Delegate { to } => {
                if to.trim().is_empty() || *to == acting.principal {
                    return Err(Refusal::BadField {
                        node: key.into(),
                        field: "to".into(),
                        problem: "name another principal".into(),
                    });
                }
                let role = Some(acting.role.clone());
                self.emit(Event::Delegated { node: key.into(), from: acting.principal.clone(), to: to.clone(), role });
                return Ok(());
            }
            Action::Withdraw => return self.withdraw(key, &acting),
            Action::ReturnTo { target, reason } => return self.return_to(key, target, reason),
            Action::Extend { amount, reason } => return self.extend(key, def, *amount, reason),
            Action::ApproveExtension { comment: c } => {
                return self.decide_extension(key, def, true, c.as_deref().or(comment))
            }
            Action::RejectExtension { reason } => return self.decide_extension(key, def, false, Some(reason)),
            Action::Transfer { to, reason } => return self.transfer(key, def, to, reason),
            Action::AddApprover { role, reason } => return self.change_approvers(key, true, role, reason),
            Action::RemoveApprover { role, reason } => return self.change_approvers(key, false, role, reason),
            _ => {}
        }
        rules::allowed(kind, action).map_err(|allowed| Refusal::WrongAction {
            node: key.into(),
            kind: kind_word(kind).into(),
            action: action.name().into(),
            allowed,
        })?;
        match action {
            Action::SubmitForm { data } => {
                let data = rules::check_form(def, data).map_err(|(field, problem)| Refusal::BadField {
                    node: key.into(),
                    field,
                    problem,
                })?;
                for r in &def.requires {
                    let ok = eval::eval(&r.condition, &self.env(key, Some(&data), None)).map_err(eval_refusal)?;
                    if ok != Value::Bool(true) {
                        return Err(Refusal::RuleFailed { node: key.into(), message: r.message.clone() });
                    }
                }
                self.emit(Event::FormRecorded { node: key.into(), data });
                self.bind_from_form(key)?;
                if matches!(kind, StepKind::Task | StepKind::Meeting) {
                    self.min_elapsed(key)?;
                    self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
                }
            }
            Action::Complete { report } => {
                self.form_first(key, def)?;
                self.min_elapsed(key)?;
                self.emit(Event::Acted { node: key.into(), act: act("complete", Some(report.clone())) });
                self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
            }
            Action::Approve { comment: c } => {
                self.not_twice(key, &acting, "approve")?;
                self.form_first(key, def)?;
                if def.rule == Some(ir::ApprovalRule::Sequence) {
                    if let Some(next) = rules::next_in_sequence(def, self.node_acts(key)) {
                        if next != acting.role {
                            return Err(Refusal::NotYourTurn {
                                node: key.into(),
                                role: acting.role.clone(),
                                next: next.into(),
                            });
                        }
                    }
                }
                self.min_elapsed(key)?;
                for r in &def.approve_requires {
                    let ok = eval::eval(&r.condition, &self.env(key, None, None)).map_err(eval_refusal)?;
                    if ok != Value::Bool(true) {
                        return Err(Refusal::RuleFailed { node: key.into(), message: r.message.clone() });
                    }
                }
                self.emit(Event::Acted { node: key.into(), act: act("approve", c.clone().or(text)) });
                if let Some(outcome) = rules::approval_outcome(def, self.node_acts(key)) {
                    self.finish_approval(key, def, outcome)?;
                }
            }
            Action::Reject { reason } => {
                if reason.trim().is_empty() {
                    return Err(Refusal::ReasonRequired { action: "reject".into() });
                }
                self.not_twice(key, &acting, "reject")?;
                self.form_first(key, def)?;
                self.emit(Event::Acted { node: key.into(), act: act("reject", Some(reason.clone())) });
                if let Some(outcome) = rules::approval_outcome(def, self.node_acts(key)) {
                    self.finish_approval(key, def, outcome)?;
                }
            }
            Action::File { comment: c } => {
                self.not_twice(key, &acting, "file")?;
                self.form_first(key, def)?;
                self.min_elapsed(key)?;
                self.emit(Event::Acted { node: key.into(), act: act("file", c.clone().or(text)) });
                if rules::all_roles_did(def, self.node_acts(key), "file") {
                    self.emit(Event::Completed { node: key.into(), outcome: Outcome::Filed });
                }
            }
            Action::GiveOpinion { opinion } => {
                self.not_twice(key, &acting, "opinion")?;
                self.min_elapsed(key)?;
                self.emit(Event::Acted { node: key.into(), act: act("opinion", Some(opinion.clone())) });
                if rules::all_roles_did(def, self.node_acts(key), "opinion") {
                    self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
                }
            }
            Action::EnterVote { counts } => {
                self.min_elapsed(key)?;
                let result = self.vote(key, def, counts)?;
                self.emit(Event::VoteRecorded { node: key.into(), result });
                self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
            }
            Action::RaiseObjection { objection } => {
                if objection.trim().is_empty() {
                    return Err(Refusal::ReasonRequired { action: "raise_objection".into() });
                }
                self.emit(Event::ObjectionRaised { node: key.into(), act: act("objection", Some(objection.clone())) });
                if let Some(target) = def.on_objection.clone() {
                    self.do_return(key, &target, &format!("objection: {objection}"))?;
                }
            }
            Action::Urge { .. }
            | Action::Delegate { .. }
            | Action::Withdraw
            | Action::ReturnTo { .. }
            | Action::Extend { .. }
            | Action::ApproveExtension { .. }
            | Action::RejectExtension { .. }
            | Action::Transfer { .. }
            | Action::AddApprover { .. }
            | Action::RemoveApprover { .. }
            | Action::CopyTo { .. }
            | Action::MarkRead => {}
        }
        Ok(())
    }

    pub(super) fn node_acts(&self, key: &str) -> &[Act] {
        self.state.nodes.get(key).map_or(&[], |n| n.acts.as_slice())
    }

    /// The actor as recorded: itself if its role is named in `by`, or the delegating actor's
    /// role if the step was delegated to it.
    pub(super) fn entitled(&self, key: &str, def: &ir::Node, actor: &Actor, action: &Action) -> Result<Actor, Refusal> {
        if def.roles.contains(&actor.role) {
            return Ok(actor.clone());
        }
        let delegated = self.state.nodes.get(key).and_then(|n| n.delegations.get(&actor.principal));
        // A delegation recorded without its role (before events carried it) hands over nothing.
        if let Some(from) = delegated.filter(|from| def.roles.contains(&from.role)) {
            return Ok(Actor {
                principal: actor.principal.clone(),
                office: actor.office.clone(),
                role: from.role.clone(),
            });
        }
        // Narrowed to the roles the policy names by `returns::allowed`.
        let open_to_all =
            action.from_outside_by() && self.ctx.program.policy.roles.iter().any(|r| r.name == actor.role);
        if open_to_all {
            return Ok(actor.clone());
        }
        Err(Refusal::NotEntitled { node: key.into(), role: actor.role.clone(), allowed: def.roles.clone() })
    }

    pub(super) fn in_window(&self, key: &str) -> Result<(), Refusal> {
        // The step's own window and those of the phases around it.
        let offset = self.ctx.program.offset;
        let mut cur = Some(key.to_string());
        while let Some(k) = cur {
            let Some(n) = self.state.nodes.get(&k) else { break };
            if let Some(w) = n.window_awaiting {
                return Err(Refusal::WindowAwaitingCalendar { node: key.into(), year: w.year });
            }
            if let Some((from, to)) = n.window {
                if self.now < from {
                    return Err(Refusal::WindowNotOpen { node: key.into(), opens: local(from, offset) });
                }
                if self.now >= to {
                    return Err(Refusal::WindowClosed { node: key.into(), closed: local(to, offset) });
                }
            }
            let is_copy = n.element.is_some() && k != n.def;
            cur = if is_copy {
                Some(n.def.clone())
            } else {
                self.ctx.program.node(&n.def).and_then(|d| d.parent.clone())
            };
        }
        Ok(())
    }

    /// A step whose form has required fields is completed or decided only once the form, and so
    /// its rules, are recorded (R2.13 on 委员备案, R3.1 on 准入审批).
    pub(super) fn form_first(&self, key: &str, def: &ir::Node) -> Result<(), Refusal> {
        if def.form.iter().any(|f| !f.optional) && self.state.nodes.get(key).is_some_and(|n| n.form.is_none()) {
            return Err(Refusal::BadField {
                node: key.into(),
                field: def.form.iter().map(|f| f.name.clone()).collect::<Vec<_>>().join(", "),
                problem: "submit the form first".into(),
            });
        }
        Ok(())
    }

    pub(super) fn min_elapsed(&self, key: &str) -> Result<(), Refusal> {
        if let Some(w) = self.state.nodes.get(key).and_then(|n| n.min_awaiting) {
            return Err(Refusal::MinDurationAwaitingCalendar { node: key.into(), year: w.year });
        }
        if let Some(until) = self.state.nodes.get(key).and_then(|n| n.min_until) {
            if self.now < until {
                return Err(Refusal::MinDurationNotElapsed {
                    node: key.into(),
                    until: local(until, self.ctx.program.offset),
                });
            }
        }
        Ok(())
    }

    pub(super) fn not_twice(&self, key: &str, actor: &Actor, _what: &str) -> Result<(), Refusal> {
        let done = self.node_acts(key).iter().any(|a| {
            matches!(a.action.as_str(), "approve" | "reject" | "file" | "opinion")
                && (a.actor.principal == actor.principal || a.actor.role == actor.role)
        });
        if done {
            return Err(Refusal::AlreadyActed { node: key.into(), principal: actor.principal.clone() });
        }
        Ok(())
    }

    pub(super) fn finish_approval(&mut self, key: &str, def: &ir::Node, outcome: Outcome) -> Result<(), Refusal> {
        self.emit(Event::Completed { node: key.into(), outcome });
        if outcome == Outcome::Rejected {
            match &def.on_rejected {
                Some(ir::OnRejected::Return { node }) => {
                    let node = node.clone();
                    self.do_return(key, &node, "rejected")?;
                }
                Some(ir::OnRejected::End) => self.emit(Event::InstanceRejected { node: key.into() }),
                None => {}
            }
        }
        Ok(())
    }

    pub(super) fn withdraw(&mut self, key: &str, actor: &Actor) -> Result<(), Refusal> {
        let acts = self.node_acts(key);
        let Some(last_own) = acts.iter().rposition(|a| a.actor.principal == actor.principal && a.action != "urge")
        else {
            return Err(Refusal::NothingToWithdraw { node: key.into(), principal: actor.principal.clone() });
        };
        if acts.iter().skip(last_own + 1).any(|a| a.action != "urge") {
            return Err(Refusal::TooLateToWithdraw { node: key.into() });
        }
        self.emit(Event::Withdrawn { node: key.into(), principal: actor.principal.clone() });
        Ok(())
    }

    pub(super) fn return_to(&mut self, key: &str, target: &str, reason: &str) -> Result<(), Refusal> {
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired { action: "return_to".into() });
        }
        if self.ctx.program.node(target).is_none() {
            return Err(Refusal::UnknownStep { node: target.into() });
        }
        self.do_return(key, target, reason)
    }

    /// A return by hand or on an objection or rejection: out of an `owned` step it is passing
    /// the matter on (R3.5), then [`Self::reset_to`].
    pub(super) fn do_return(&mut self, from: &str, target: &str, reason: &str) -> Result<(), Refusal> {
        self.reset_to_checked(from, target)?;
        self.pass_on(from, target);
        self.reset_to(from, target, reason)
    }

    /// Refuses a return to a step that does not come before `from`.
    pub(super) fn reset_to_checked(&self, from: &str, target: &str) -> Result<(), Refusal> {
        let from_def = self.state.nodes.get(from).map(|n| n.def.clone()).unwrap_or_else(|| from.to_string());
        if from_def != target && !self.after_set(target).contains(&from_def) {
            return Err(Refusal::NotEarlier { node: from.into(), target: target.into() });
        }
        Ok(())
    }

    /// Reopens `target`: what came after it waits again, the phases that hold it reopen.
    pub(super) fn reset_to(&mut self, from: &str, target: &str, reason: &str) -> Result<(), Refusal> {
        self.reset_to_checked(from, target)?;
        let after = self.after_set(target);
        let program = self.ctx.program;
        let mut ancestors = Vec::new();
        let mut cur = program.node(target).and_then(|n| n.parent.clone());
        while let Some(p) = cur {
            cur = program.node(&p).and_then(|n| n.parent.clone());
            ancestors.push(p);
        }
        let mut reset: Vec<String> = vec![target.to_string()];
        reset.extend(
            after.into_iter().filter(|k| self.state.nodes.get(k).is_some_and(|n| n.status != NodeStatus::Waiting)),
        );
        // Copies of a fan-out node that is reset are dropped by `apply` and made again.
        let reopened: Vec<String> = ancestors
            .into_iter()
            .filter(|a| self.state.nodes.get(a).is_some_and(|n| n.status == NodeStatus::Done))
            .collect();
        self.emit(Event::Returned { from: from.into(), to: target.into(), reason: reason.into(), reset, reopened });
        Ok(())
    }

    /// Everything that (transitively) waits for `target` or for a phase holding it.
    pub(super) fn after_set(&self, target: &str) -> BTreeSet<String> {
        let program = self.ctx.program;
        let mut ancestors = Vec::new();
        let mut cur = program.node(target).and_then(|n| n.parent.clone());
        while let Some(p) = cur {
            cur = program.node(&p).and_then(|n| n.parent.clone());
            ancestors.push(p);
        }
        let mut after: BTreeSet<String> = BTreeSet::new();
        let mut queue: Vec<String> = vec![target.to_string()];
        queue.extend(ancestors.iter().cloned());
        while let Some(x) = queue.pop() {
            for d in program.dependents.get(&x).into_iter().flatten() {
                if after.insert(d.clone()) {
                    queue.push(d.clone());
                }
            }
            if !ancestors.contains(&x) {
                for c in program.children(&x) {
                    if after.insert(c.clone()) {
                        queue.push(c.clone());
                    }
                }
            }
        }
        after
    }

    pub(super) fn vote(&self, key: &str, def: &ir::Node, counts: &VoteCounts) -> Result<VoteResult, Refusal> {
        let Some(rules) = &def.vote else {
            return Err(Refusal::Evaluation { message: format!("`{key}` has no vote rules") });
        };
        rules::vote(key, rules, counts, &self.env(key, None, None))
    }
}
