//! Copying a step to an office for information (抄送, issue 11.2): by a role the step's `copy by`
//! names, while the step is open or once it is done (its result), to any office. The copy is
//! listed in that office's inbox, read-only, until a principal of the office marks it read
//! (已阅) — which may be done whatever became of the instance since, even suspended or ended:
//! reading acts on nothing.

use civicflow_dsl::ir;

use super::{Actor, Decision, Event, NodeStatus, Refusal};

impl Decision<'_> {
    pub(super) fn copy_to(&mut self, key: &str, to: &str, message: Option<&str>) -> Result<(), Refusal> {
        let to = to.trim();
        if to.is_empty() {
            return Err(Refusal::BadField { node: key.into(), field: "to".into(), problem: "name the office".into() });
        }
        let Some(n) = self.state.nodes.get(key) else {
            return Err(Refusal::UnknownStep { node: key.into() });
        };
        if !matches!(n.status, NodeStatus::Open | NodeStatus::Done) {
            let status = super::status_word_node(n.status).to_string();
            return Err(Refusal::StepNotOpen { node: key.into(), status });
        }
        if n.copies.get(to).is_some_and(|c| c.unread()) {
            return Err(Refusal::CopyRefused {
                node: key.into(),
                office: to.into(),
                why: "it was sent already and is not read yet".into(),
            });
        }
        let message = message.map(str::trim).filter(|m| !m.is_empty()).map(str::to_string);
        self.emit(Event::CopiedTo { node: key.into(), office: to.into(), message });
        Ok(())
    }

    /// 已阅: the actor's office reads its copy of the step.
    pub(super) fn mark_read(&mut self, actor: &Actor, key: &str) -> Result<(), Refusal> {
        let Some(n) = self.state.nodes.get(key) else {
            return Err(Refusal::UnknownStep { node: key.into() });
        };
        if !n.copies.get(&actor.office).is_some_and(|c| c.unread()) {
            return Err(Refusal::CopyRefused {
                node: key.into(),
                office: actor.office.clone(),
                why: "no unread copy of the step waits for the office".into(),
            });
        }
        self.emit(Event::CopyRead {
            node: key.into(),
            office: actor.office.clone(),
            principal: actor.principal.clone(),
        });
        Ok(())
    }
}

/// Whether `role` may copy the step (`copy by`).
pub(super) fn may_copy(def: &ir::Node, role: &str) -> bool {
    def.copy_by.iter().any(|r| r == role)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use crate::core::{open_steps, Action, Actor, Event, OpenStep, Reader};
    use crate::sim::Simulation;

    /// The office running the matter copies the decision to the discipline office (纪工委).
    const COPIED: &str = r#"
policy 抄送演练 {
  role 民生办
  role 分管领导
  step 受理: task { by 民生办 copy by 民生办 }
  step 审批: approval { by 分管领导 after 受理 }
}"#;

    fn office(name: &str, role: &str) -> Actor {
        Actor { principal: format!("{name}-张三"), office: name.into(), role: role.into() }
    }

    #[test]
    fn issue_11_2_a_copy_is_listed_for_the_office_until_it_is_read_even_after_the_step_is_done() {
        let mut s = Simulation::new(COPIED, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        let sent =
            s.act("民生办", "受理", Action::CopyTo { to: "纪工委".into(), message: Some("请知悉".into()) }).unwrap();
        assert_eq!(
            sent,
            vec![Event::CopiedTo {
                node: "受理".into(), office: "纪工委".into(), message: Some("请知悉".into())
            }]
        );
        // Open, it is listed for the office that acts and, read-only, for the office copied.
        let listed = open_steps(&s.program, &s.state);
        assert_eq!(
            listed[0].readers,
            vec![Reader::Acts { role: "民生办".into(), office: None }, Reader::CopiedTo { office: "纪工委".into() }]
        );
        let again = s.act("民生办", "受理", Action::CopyTo { to: "纪工委".into(), message: None }).unwrap_err();
        assert_eq!(again.code(), "F058");
        assert_eq!(again.to_string(), "the copy of step `受理` to `纪工委`: it was sent already and is not read yet");
        s.act("民生办", "受理", Action::Complete { report: "已受理".into() }).unwrap();
        // Done, the copy stays listed (its result), with no deadline.
        assert_eq!(
            open_steps(&s.program, &s.state)[0],
            OpenStep {
                node: "受理".into(),
                due_at: None,
                overdue: false,
                readers: vec![Reader::CopiedTo { office: "纪工委".into() }]
            }
        );
        // Another office has nothing to read; the office copied reads it, once.
        let other = s.act_as(office("城管科", "民生办"), "受理", Action::MarkRead).unwrap_err();
        assert_eq!(
            other.to_string(),
            "the copy of step `受理` to `城管科`: no unread copy of the step waits for the office"
        );
        let read = s.act_as(office("纪工委", "分管领导"), "受理", Action::MarkRead).unwrap();
        assert_eq!(
            read,
            vec![Event::CopyRead {
                node: "受理".into(), office: "纪工委".into(), principal: "纪工委-张三".into()
            }]
        );
        assert_eq!(s.act_as(office("纪工委", "分管领导"), "受理", Action::MarkRead).unwrap_err().code(), "F058");
        let c = &s.state.nodes.get("受理").unwrap().copies["纪工委"];
        assert_eq!(c.read.as_ref().map(|(p, _)| p.as_str()), Some("纪工委-张三"));
        assert_eq!(open_steps(&s.program, &s.state).iter().map(|o| o.node.as_str()).collect::<Vec<_>>(), vec!["审批"]);
        // Read, it may be sent again (the result, say); a step with no `copy by` may not be copied.
        s.act("民生办", "受理", Action::CopyTo { to: "纪工委".into(), message: None }).unwrap();
        let not = s.act("分管领导", "审批", Action::CopyTo { to: "纪工委".into(), message: None }).unwrap_err();
        assert_eq!(not.code(), "F057");
        assert_eq!(not.to_string(), "role `分管领导` may not copy step `审批` to another office; it may not be copied");
        assert_eq!(s.replayed(), s.state);
    }

    #[test]
    fn issue_11_2_a_copy_is_read_after_the_instance_ended_and_a_waiting_step_is_not_copied() {
        let mut s = Simulation::new(COPIED, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        let mut w = Simulation::new(&COPIED.replace("after 受理 }", "after 受理 copy by 民生办 }"), "2026-03-02 09:00")
            .unwrap();
        w.start(&[]).unwrap();
        let waiting = w.act("民生办", "审批", Action::CopyTo { to: "纪工委".into(), message: None }).unwrap_err();
        assert_eq!(waiting.to_string(), "step `审批` is waiting for earlier steps, not open for action");
        s.act("民生办", "受理", Action::Complete { report: "已受理".into() }).unwrap();
        s.act("民生办", "受理", Action::CopyTo { to: "纪工委".into(), message: None }).unwrap();
        s.act("分管领导", "审批", Action::Approve { comment: None }).unwrap();
        assert_eq!(s.state.status, crate::core::Status::Completed);
        assert_eq!(
            open_steps(&s.program, &s.state).iter().flat_map(|o| o.readers.clone()).collect::<Vec<_>>(),
            vec![Reader::CopiedTo { office: "纪工委".into() }]
        );
        s.act_as(office("纪工委", "分管领导"), "受理", Action::MarkRead).unwrap();
        assert!(open_steps(&s.program, &s.state).is_empty());
        assert_eq!(s.replayed(), s.state);
    }
}
