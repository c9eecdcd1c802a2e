//! The canonical layout of a policy file (`civicflow fmt`).
//!
//! The layout depends on the syntax tree and the comments only, never on the source's layout, so
//! formatting is idempotent, and the tree is printed token for token (parentheses as written, no
//! more), so `parse(format(x)) == parse(x)`:
//!
//! - two spaces of indent per block; one declaration, clause or form item per line; `{` on the
//!   line it opens, `}` on a line of its own; an empty block is `{}`;
//! - single spaces around binary operators, `a, b` in lists; a `match` puts one arm per line with
//!   a trailing comma; `else { if … }` is written `else if …`;
//! - in a policy, a procedure or a phase, a blank line between groups of declarations (headers;
//!   `param`/`const`/`let`; roles; templates; procedures; a phase's clauses; phases and steps;
//!   `recur`) and around every block (phase, procedure, step with a block); none inside steps
//!   and forms;
//! - strings re-escaped (`\"` `\\` `\n` `\t` `\r`), `"""…"""` strings verbatim, numbers, dates and
//!   patterns as written, a step without a block left without one.
//!
//! Comments are never lost. A comment goes on its own line, at the item's indent, before the next
//! item, clause or form item that starts after it; a comment inside a declaration or clause (in
//! an expression, say) moves before it; a comment that follows an item on the same line stays
//! there (`item // text`); comments left at the end of a block go before its `}`.

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::syntax;

#[cfg(test)]
mod tests;

/// Parses and formats; the error is the parse error.
#[allow(clippy::result_large_err, reason = "the parser's own error, as `syntax::parse` returns it")]
pub fn format_source(src: &str) -> Result<String, Diagnostic> {
    syntax::parse(src).map(|f| format(&f))
}

/// The canonical text of a file, comments included.
pub fn format(file: &File) -> String {
    let mut comments: Vec<&Comment> = file.comments.iter().collect();
    comments.sort_by_key(|c| c.span.start);
    let mut p = Printer { out: String::new(), comments, next: 0 };
    let policy = &file.policy;
    p.leading(policy.span.start, 0);
    p.out.push_str("policy ");
    p.out.push_str(&policy.name.name);
    p.block_body(&policy.items, policy.span.end, 0, Layout::Top);
    p.trailing(usize::MAX);
    p.out.push('\n');
    // Whatever is left (after the policy, or in a tree whose spans do not fit its comments).
    while let Some(c) = p.take_before(usize::MAX) {
        p.comment_line(c, 0);
    }
    p.out
}

const INDENT: &str = "  ";

/// Blank lines between the items of a block, or none.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// A policy, procedure or phase body: blank lines between groups and around blocks.
    Top,
    /// A step or form: no blank lines.
    Dense,
}

/// What a statement in a block is, for comment placement.
enum Node<'a> {
    Item(&'a Item),
    Clause(&'a Clause),
    FormItem(&'a FormItem),
}

impl Node<'_> {
    fn span(&self) -> Span {
        match self {
            Node::Item(i) => i.span(),
            Node::Clause(c) => c.span,
            Node::FormItem(FormItem::Field { span, .. } | FormItem::Require { span, .. }) => *span,
        }
    }
}

struct Printer<'a> {
    out: String,
    /// All comments by position; `next` is the first not yet printed.
    comments: Vec<&'a Comment>,
    next: usize,
}

impl<'a> Printer<'a> {
    /// The next comment, if it starts before `limit`; it counts as printed.
    fn take_before(&mut self, limit: usize) -> Option<&'a Comment> {
        let c = *self.comments.get(self.next)?;
        if c.span.start < limit {
            self.next += 1;
            Some(c)
        } else {
            None
        }
    }

    fn pending_before(&self, limit: usize) -> bool {
        self.comments.get(self.next).is_some_and(|c| c.span.start < limit)
    }

    fn comment_line(&mut self, c: &Comment, indent: usize) {
        push_indent(&mut self.out, indent);
        self.out.push_str("//");
        self.out.push_str(c.text.trim_end());
        self.out.push('\n');
    }

    /// Every comment before `limit`, each on its own line.
    fn leading(&mut self, limit: usize, indent: usize) {
        while let Some(c) = self.take_before(limit) {
            self.comment_line(c, indent);
        }
    }

    /// A comment on the line just printed (not yet ended), if the next one is such and starts
    /// before `limit`.
    fn trailing(&mut self, limit: usize) {
        if self.comments.get(self.next).is_some_and(|c| c.trailing && c.span.start < limit) {
            if let Some(c) = self.take_before(limit) {
                self.out.push_str(" //");
                self.out.push_str(c.text.trim_end());
            }
        }
    }

    /// ` {`, the nodes one per line, the comments left before `end`, `}` (no newline after it).
    /// The opening line is already printed up to where ` {` goes.
    fn block_body(&mut self, items: &'a [Item], end: usize, indent: usize, layout: Layout) {
        let nodes: Vec<Node<'a>> = items.iter().map(Node::Item).collect();
        self.block(&nodes, end, indent, layout);
    }

    fn block(&mut self, nodes: &[Node<'a>], end: usize, indent: usize, layout: Layout) {
        if nodes.is_empty() && !self.pending_before(end) {
            self.out.push_str(" {}");
            return;
        }
        self.out.push_str(" {\n");
        let inner = indent + 1;
        for (i, node) in nodes.iter().enumerate() {
            if i > 0 && layout == Layout::Top {
                if let (Node::Item(a), Node::Item(b)) = (&nodes[i - 1], node) {
                    if group(a) != group(b) || is_block(a) || is_block(b) {
                        self.out.push('\n');
                    }
                }
            }
            let limit = nodes.get(i + 1).map_or(end, |n| n.span().start);
            self.node(node, inner, limit);
        }
        self.leading(end, inner);
        push_indent(&mut self.out, indent);
        self.out.push('}');
    }

    /// One statement with its comments; `limit` is where the next one (or the block's `}`) starts.
    fn node(&mut self, node: &Node<'a>, indent: usize, limit: usize) {
        let span = node.span();
        let sub = match node {
            Node::Item(Item::Phase(ph)) => Some(Sub::Items(&ph.items, Layout::Top)),
            Node::Item(Item::Procedure(pr)) => Some(Sub::Items(&pr.items, Layout::Top)),
            // (A step with clauses gets a block even if a hand-made tree says it has none.)
            Node::Item(Item::Step(st)) if st.has_block || !st.clauses.is_empty() => Some(Sub::Clauses(&st.clauses)),
            Node::Item(Item::Clause(Clause { kind: ClauseKind::Form(f), .. }))
            | Node::Clause(Clause { kind: ClauseKind::Form(f), .. }) => Some(Sub::Form(f)),
            _ => None,
        };
        match sub {
            None => {
                // Comments inside a declaration or clause move before it.
                self.leading(span.end, indent);
                push_indent(&mut self.out, indent);
                let mut text = String::new();
                match node {
                    Node::Item(it) => item_head(it, indent, &mut text),
                    Node::Clause(c) => clause(c, indent, &mut text),
                    Node::FormItem(f) => form_item(f, indent, &mut text),
                }
                self.out.push_str(&text);
            }
            Some(sub) => {
                self.leading(span.start, indent);
                push_indent(&mut self.out, indent);
                let mut head = String::new();
                match node {
                    Node::Item(it) => item_head(it, indent, &mut head),
                    Node::Clause(c) => clause(c, indent, &mut head),
                    Node::FormItem(f) => form_item(f, indent, &mut head),
                }
                self.out.push_str(&head);
                match sub {
                    Sub::Items(items, layout) => self.block_body(items, span.end, indent, layout),
                    Sub::Clauses(cs) => {
                        let nodes: Vec<Node<'a>> = cs.iter().map(Node::Clause).collect();
                        self.block(&nodes, span.end, indent, Layout::Dense);
                    }
                    Sub::Form(fs) => {
                        let nodes: Vec<Node<'a>> = fs.iter().map(Node::FormItem).collect();
                        self.block(&nodes, span.end, indent, Layout::Dense);
                    }
                }
            }
        }
        self.trailing(limit);
        self.out.push('\n');
    }
}

/// The contents of a block statement.
enum Sub<'a> {
    Items(&'a [Item], Layout),
    Clauses(&'a [Clause]),
    Form(&'a [FormItem]),
}

fn push_indent(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push_str(INDENT);
    }
}

/// Declarations of one group sit together at the top of a policy or procedure.
fn group(item: &Item) -> u8 {
    match item {
        Item::Header(_) => 0,
        Item::Param(_) | Item::Const(_) | Item::Let(_) => 1,
        Item::Role(_) => 2,
        Item::Template(_) => 3,
        Item::Procedure(_) => 4,
        Item::Phase(_) | Item::Step(_) => 5,
        Item::Recur(_) | Item::Quota(_) => 6,
        // A phase's own clauses (`window`, `after`) come before its steps.
        Item::Clause(_) => 7,
    }
}

fn is_block(item: &Item) -> bool {
    match item {
        Item::Procedure(_) | Item::Phase(_) => true,
        Item::Step(s) => s.has_block || !s.clauses.is_empty(),
        _ => false,
    }
}

/// An item's text; for a block item, only its head (up to where ` {` goes).
fn item_head(item: &Item, indent: usize, out: &mut String) {
    match item {
        Item::Header(h) => {
            out.push_str(h.key.keyword());
            out.push(' ');
            string(&h.value, out);
        }
        Item::Param(p) => {
            out.push_str("param ");
            out.push_str(&p.name.name);
            out.push_str(": ");
            type_expr(&p.ty, out);
            if let Some(r) = &p.range {
                match (&r.low, &r.high, r.between) {
                    (Some(l), Some(h), true) => out.push_str(&format!(" in {l}..={h}")),
                    (Some(l), _, _) => out.push_str(&format!(" >= {l}")),
                    (None, Some(h), _) => out.push_str(&format!(" <= {h}")),
                    (None, None, _) => {}
                }
            }
            if p.personal.is_some() {
                out.push_str(" personal");
            }
            if let Some(d) = &p.default {
                out.push_str(" = ");
                expr(d, indent, out);
            }
        }
        Item::Const(b) | Item::Let(b) => {
            out.push_str(if matches!(item, Item::Const(_)) { "const " } else { "let " });
            out.push_str(&b.name.name);
            out.push_str(": ");
            type_expr(&b.ty, out);
            out.push_str(" = ");
            expr(&b.value, indent, out);
        }
        Item::Role(r) => {
            out.push_str("role ");
            out.push_str(&r.name.name);
            if let Some(d) = &r.description {
                out.push(' ');
                string(d, out);
            }
            if let Some(b) = &r.bound {
                out.push_str(" bound by ");
                match &b.source {
                    BindSource::Param(p) => {
                        out.push_str("param ");
                        out.push_str(&p.name);
                    }
                    BindSource::Starter => out.push_str("starter"),
                    BindSource::Item => out.push_str("item"),
                    BindSource::Field(step, field) => {
                        out.push_str(&step.name);
                        out.push('.');
                        out.push_str(&field.name);
                    }
                }
            }
            if r.oversight {
                out.push_str(" oversight");
            }
            match (r.may_suspend, r.may_correct) {
                (true, true) => out.push_str(" may suspend, correct"),
                (true, false) => out.push_str(" may suspend"),
                (false, true) => out.push_str(" may correct"),
                (false, false) => {}
            }
        }
        Item::Template(t) => {
            out.push_str("template ");
            out.push_str(&t.name.name);
            out.push(' ');
            string(&t.body, out);
        }
        Item::Procedure(p) => {
            out.push_str("procedure ");
            out.push_str(&p.name.name);
        }
        Item::Recur(r) => recur(r, out),
        Item::Quota(q) => {
            out.push_str("quota ");
            expr(&q.condition, indent, out);
            out.push_str(" at most ");
            expr(&q.share, indent, out);
            out.push_str(" of cycle else ");
            string(&q.message, out);
        }
        Item::Phase(p) => {
            out.push_str("phase ");
            out.push_str(&p.name.name);
            if let Some(t) = &p.title {
                out.push(' ');
                string(t, out);
            }
        }
        Item::Step(s) => {
            out.push_str("step ");
            out.push_str(&s.name.name);
            if let Some(t) = &s.title {
                out.push(' ');
                string(t, out);
            }
            out.push_str(": ");
            out.push_str(s.kind.keyword());
            if let StepKind::Call(p) = &s.kind {
                out.push(' ');
                out.push_str(&p.name);
            }
        }
        Item::Clause(c) => clause(c, indent, out),
    }
}

/// A clause's text; for `form`, only `form` (its block is printed by the caller).
fn clause(c: &Clause, indent: usize, out: &mut String) {
    match &c.kind {
        ClauseKind::By(roles) => {
            out.push_str("by ");
            names(roles, out);
        }
        ClauseKind::AfterAny(deps) => {
            out.push_str("after any(");
            dependencies(deps, out);
            out.push(')');
        }
        ClauseKind::After(deps) => {
            out.push_str("after ");
            dependencies(deps, out);
        }
        ClauseKind::When(e) => {
            out.push_str("when ");
            expr(e, indent, out);
        }
        ClauseKind::Window { from, to } => {
            out.push_str("window ");
            expr(from, indent, out);
            out.push_str(" .. ");
            expr(to, indent, out);
        }
        ClauseKind::For { var, list } => {
            out.push_str("for ");
            out.push_str(&var.name);
            out.push_str(" in ");
            expr(list, indent, out);
        }
        ClauseKind::Rule(r) => {
            out.push_str("rule ");
            match r {
                ApprovalRule::All => out.push_str("all"),
                ApprovalRule::Any => out.push_str("any"),
                ApprovalRule::Sequence => out.push_str("sequence"),
                ApprovalRule::KOfN { k, n } => out.push_str(&format!("{k} of {n}")),
                ApprovalRule::Fraction { strict, num, den } => {
                    out.push_str(&format!("{} {num}/{den}", if *strict { ">" } else { ">=" }));
                }
            }
        }
        ClauseKind::Due { deadline, roll } => {
            out.push_str("due ");
            match deadline {
                Deadline::Relative { duration: d, after } => {
                    duration(d, out);
                    if let Some(a) = after {
                        out.push_str(" after ");
                        out.push_str(&a.to_string());
                    }
                }
                Deadline::At(e) => expr(e, indent, out),
                Deadline::Amount { amount, unit, after } => {
                    expr(amount, indent, out);
                    out.push(' ');
                    out.push_str(unit.keyword());
                    if let Some(a) = after {
                        out.push_str(" after ");
                        out.push_str(&a.to_string());
                    }
                }
            }
            if *roll {
                out.push_str(" roll");
            }
        }
        ClauseKind::Remind(d) => {
            out.push_str("remind ");
            duration(d, out);
            out.push_str(" before");
        }
        ClauseKind::Breach(actions) => {
            out.push_str("on breach ");
            for (i, a) in actions.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match a {
                    BreachAction::Overdue => out.push_str("overdue"),
                    BreachAction::Reject => out.push_str("reject"),
                    BreachAction::Escalate(r) => {
                        out.push_str("escalate ");
                        out.push_str(&r.name);
                    }
                    BreachAction::Notify(r) => {
                        out.push_str("notify ");
                        out.push_str(&r.name);
                    }
                    BreachAction::Reassign(r) => {
                        out.push_str("reassign ");
                        out.push_str(&r.name);
                    }
                    BreachAction::Return(s) => {
                        out.push_str("return ");
                        out.push_str(&s.to_string());
                    }
                }
            }
        }
        ClauseKind::OnRejected(to) => match to {
            Some(s) => {
                out.push_str("on rejected return ");
                out.push_str(&s.to_string());
            }
            None => out.push_str("on rejected end"),
        },
        ClauseKind::OnObjection(s) => {
            out.push_str("on objection return ");
            out.push_str(&s.to_string());
        }
        ClauseKind::Min(d) => {
            out.push_str("min ");
            duration(d, out);
        }
        ClauseKind::MinAmount { amount, unit } => {
            out.push_str("min ");
            expr(amount, indent, out);
            out.push(' ');
            out.push_str(unit.keyword());
        }
        ClauseKind::Form(_) => out.push_str("form"),
        ClauseKind::Vote { key, value, message } => {
            out.push_str(key.keyword());
            out.push(' ');
            expr(value, indent, out);
            if let Some(m) = message {
                out.push_str(" else ");
                string(m, out);
            }
        }
        ClauseKind::UseTemplate(t) => {
            out.push_str("template ");
            out.push_str(&t.name);
        }
        ClauseKind::MayReturn { targets, by } => {
            out.push_str("may return ");
            let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
            out.push_str(&targets.join(", "));
            out.push_str(" by ");
            names(by, out);
        }
        ClauseKind::UrgeBy(roles) => {
            out.push_str("urge by ");
            names(roles, out);
        }
        ClauseKind::Owned => out.push_str("owned"),
        ClauseKind::CopyBy(roles) => {
            out.push_str("copy by ");
            names(roles, out);
        }
        ClauseKind::Approvers { by, pool, max } => {
            out.push_str("approvers by ");
            names(by, out);
            out.push_str(" from ");
            names(pool, out);
            if let Some(max) = max {
                out.push_str(&format!(" max {max}"));
            }
        }
        ClauseKind::Transfer { by, restart } => {
            out.push_str("transfer by ");
            names(by, out);
            if *restart {
                out.push_str(" restart");
            }
        }
        ClauseKind::Extend { by, max, approved_by } => {
            out.push_str("extend by ");
            names(by, out);
            out.push_str(&format!(" max {} {}", max.amount, max.unit.keyword()));
            if !approved_by.is_empty() {
                out.push_str(" approved by ");
                names(approved_by, out);
            }
        }
        ClauseKind::ApproveOnly { condition, message } => {
            out.push_str("approve only when ");
            expr(condition, indent, out);
            out.push_str(" else ");
            string(message, out);
        }
        ClauseKind::With(bindings) => {
            out.push_str("with ");
            for (i, (name, value)) in bindings.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&name.name);
                out.push_str(" = ");
                expr(value, indent, out);
            }
        }
        ClauseKind::Requires { policy, param, value, message } => {
            out.push_str("requires completed ");
            out.push_str(&policy.name);
            out.push_str(" where ");
            out.push_str(&param.name);
            out.push_str(" == ");
            expr(value, indent, out);
            out.push_str(" else ");
            string(message, out);
        }
    }
}

/// `recur …` in canonical order: period, days, anchor, carried parameters, date, role.
fn recur(r: &Recur, out: &mut String) {
    out.push_str("recur ");
    match r.every {
        RecurEvery::Every { n, unit } => {
            out.push_str("every ");
            out.push_str(&n.to_string());
            out.push_str(match unit {
                RecurUnit::Years => " years",
                RecurUnit::Months => " months",
            });
        }
        RecurEvery::Monthly => out.push_str("monthly"),
        RecurEvery::Quarterly => out.push_str("quarterly"),
        RecurEvery::HalfYearly => out.push_str("half-yearly"),
        RecurEvery::Yearly => out.push_str("yearly"),
    }
    if !r.on.is_empty() {
        out.push_str(" on ");
        if r.on[0].month.is_none() {
            out.push_str("day ");
        }
        for (i, d) in r.on.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match d.month {
                Some(m) => out.push_str(&format!("{m:02}-{:02}", d.day)),
                None => out.push_str(&d.day.to_string()),
            }
        }
    }
    match &r.from {
        None => {}
        Some(RecurAnchor::Start) => out.push_str(" from start"),
        Some(RecurAnchor::End(n)) => {
            out.push_str(" from end(");
            out.push_str(&n.name);
            out.push(')');
        }
    }
    if !r.carry.is_empty() {
        out.push_str(" carry ");
        let names: Vec<&str> = r.carry.iter().map(|i| i.name.as_str()).collect();
        out.push_str(&names.join(", "));
    }
    if let Some(d) = &r.dated {
        out.push_str(" dated ");
        out.push_str(&d.name);
    }
    if let Some(b) = &r.by {
        out.push_str(" by ");
        out.push_str(&b.name);
    }
}

fn form_item(f: &FormItem, indent: usize, out: &mut String) {
    match f {
        FormItem::Field { name, ty, optional, personal, .. } => {
            out.push_str(&name.name);
            out.push_str(": ");
            type_expr(ty, out);
            if *optional {
                out.push_str(" optional");
            }
            if *personal {
                out.push_str(" personal");
            }
        }
        FormItem::Require { condition, message, .. } => {
            out.push_str("require ");
            expr(condition, indent, out);
            out.push_str(" else ");
            string(message, out);
        }
    }
}

fn dependencies(deps: &[Dependency], out: &mut String) {
    for (i, d) in deps.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&d.step.name);
        for i in &d.inner {
            out.push('.');
            out.push_str(&i.name);
        }
        match d.outcome {
            Some(Outcome::Approved) => out.push_str(" approved"),
            Some(Outcome::Rejected) => out.push_str(" rejected"),
            None => {}
        }
    }
}

fn names(ids: &[Ident], out: &mut String) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&id.name);
    }
}

fn duration(d: &Duration, out: &mut String) {
    out.push_str(&d.amount.to_string());
    out.push(' ');
    out.push_str(d.unit.keyword());
}

fn type_expr(t: &TypeExpr, out: &mut String) {
    match &t.kind {
        TypeKind::Int => out.push_str("int"),
        TypeKind::Decimal => out.push_str("decimal"),
        TypeKind::Text => out.push_str("text"),
        TypeKind::Date => out.push_str("date"),
        TypeKind::Bool => out.push_str("bool"),
        TypeKind::List(inner) => {
            out.push_str("list<");
            type_expr(inner, out);
            out.push('>');
        }
        TypeKind::Record(fields) if fields.is_empty() => out.push_str("record {}"),
        TypeKind::Record(fields) => {
            out.push_str("record { ");
            for (i, (name, ty)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&name.name);
                out.push_str(": ");
                type_expr(ty, out);
            }
            out.push_str(" }");
        }
    }
}

/// A string literal: `"""…"""` verbatim when it was written so (and can be), else quoted.
fn string(s: &Str, out: &mut String) {
    if s.triple && !s.value.contains("\"\"\"") && !s.value.ends_with('"') {
        out.push_str("\"\"\"");
        out.push_str(&s.value);
        out.push_str("\"\"\"");
    } else {
        quoted(&s.value, out);
    }
}

fn quoted(value: &str, out: &mut String) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An expression, exactly as the tree has it: `indent` is that of the line it starts on (a
/// `match` puts its arms one level deeper).
fn expr(e: &Expr, indent: usize, out: &mut String) {
    match &e.kind {
        ExprKind::Int(s) | ExprKind::Decimal(s) | ExprKind::Date(s) => out.push_str(s),
        ExprKind::Percent(s) => {
            out.push_str(s);
            out.push('%');
        }
        ExprKind::Str(s) => string(s, out),
        ExprKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ExprKind::Duration(d) => duration(d, out),
        ExprKind::List(items) => {
            out.push('[');
            exprs(items, indent, out);
            out.push(']');
        }
        ExprKind::Name(n) => out.push_str(&n.name),
        ExprKind::Field(base, name) => {
            expr(base, indent, out);
            out.push('.');
            out.push_str(&name.name);
        }
        ExprKind::Call(f, args) => {
            out.push_str(&f.name);
            out.push('(');
            exprs(args, indent, out);
            out.push(')');
        }
        ExprKind::Unary(op, operand) => {
            out.push_str(match op {
                UnOp::Not => "not ",
                UnOp::Neg => "-",
            });
            expr(operand, indent, out);
        }
        ExprKind::Binary(op, l, r) => {
            expr(l, indent, out);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            expr(r, indent, out);
        }
        ExprKind::If { .. } => {
            // `else if` chains iteratively: they are as long as the source made them.
            let mut e = e;
            out.push_str("if ");
            while let ExprKind::If { cond, then, otherwise } = &e.kind {
                expr(cond, indent, out);
                out.push_str(" { ");
                expr(then, indent, out);
                out.push_str(" } else ");
                e = otherwise;
                if matches!(e.kind, ExprKind::If { .. }) {
                    out.push_str("if ");
                }
            }
            out.push_str("{ ");
            expr(e, indent, out);
            out.push_str(" }");
        }
        ExprKind::Match { scrutinee, arms } => {
            out.push_str("match ");
            expr(scrutinee, indent, out);
            out.push_str(" {\n");
            for arm in arms {
                push_indent(out, indent + 1);
                pattern(&arm.pattern, out);
                out.push_str(" => ");
                expr(&arm.value, indent + 1, out);
                out.push_str(",\n");
            }
            push_indent(out, indent);
            out.push('}');
        }
        ExprKind::Paren(inner) => {
            out.push('(');
            expr(inner, indent, out);
            out.push(')');
        }
    }
}

fn exprs(items: &[Expr], indent: usize, out: &mut String) {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        expr(e, indent, out);
    }
}

fn pattern(p: &Pattern, out: &mut String) {
    match &p.kind {
        PatternKind::Wildcard => out.push('_'),
        PatternKind::Range { low, high } => {
            if let Some(l) = low {
                out.push_str(l);
            }
            out.push_str("..");
            if let Some(h) = high {
                out.push('=');
                out.push_str(h);
            }
        }
        PatternKind::Number(s) | PatternKind::Date(s) => out.push_str(s),
        PatternKind::Str(s) => quoted(s, out),
        PatternKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
    }
}
