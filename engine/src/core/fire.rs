//! A timer firing: spent unless the state still asks for it at that instant; then the window
//! closes, the reminder is sent, or the deadline breaches (overdue, escalation, breach action).

use super::*;

impl Decision<'_> {
    pub(super) fn fire(&mut self, key: &str, kind: TimerKind, at: DateTime<Utc>) -> Result<(), Refusal> {
        // Only a timer the instance asks for, once it is due: delivered early or made up, it is spent.
        let timer = Timer { node: key.into(), kind, at };
        if self.now < at || !pending_timers(self.ctx, &self.state).contains(&timer) {
            return Ok(());
        }
        let Some(n) = self.state.nodes.get(key) else { return Ok(()) };
        if kind == TimerKind::Due && n.status == NodeStatus::Waiting {
            self.breach_kept_limit(key, at);
            return Ok(());
        }
        if n.status != NodeStatus::Open {
            return Ok(()); // the step moved on: the timer is spent
        }
        let Some(def) = self.ctx.program.node(&n.def) else { return Ok(()) };
        let (due_at, overdue, min_until, window) = (n.due_at, n.overdue, n.min_until, n.window);
        match kind {
            TimerKind::Due => {
                let Some(due) = due_at else { return Ok(()) };
                if overdue || due != at || self.now < due {
                    return Ok(());
                }
                self.breach(key, def, due)?;
            }
            TimerKind::Reminder => {
                let sent = self.state.nodes.get(key).map_or(0, |n| n.reminders_sent as usize);
                if let Some(due) = due_at {
                    let next = reminders(self.ctx, def, due).get(sent).copied();
                    if !overdue && next == Some(at) && self.now >= at {
                        self.emit(Event::Reminded { node: key.into(), due_at: due });
                    }
                }
            }
            TimerKind::MinDurationEnds => {
                if min_until == Some(at) && def.kind == NodeKind::Step(StepKind::Publicity) {
                    self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
                }
            }
            TimerKind::NextCycle => {} // decided by `cycles::fire`
            TimerKind::WindowCloses => {
                let closed = self.state.nodes.get(key).is_some_and(|n| n.window_closed);
                if window.map(|w| w.1) == Some(at) && !closed {
                    self.emit(Event::WindowClosed { node: key.into(), at });
                    // The step can no longer be done: whatever its deadline, this is the breach.
                    if !overdue {
                        self.breach(key, def, at)?;
                    }
                }
            }
        }
        Ok(())
    }
}
