//! Text → [`ast::File`]. pest pairs never leave this module.
//!
//! The walker never panics: a pair of an unexpected shape (which would be a grammar bug) becomes
//! an E0001 diagnostic instead. Nesting is bounded before pest runs (E0002), so deeply nested input
//! cannot exhaust the stack.

use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::*;
use crate::diag::{Code, Diagnostic};

mod clauses;
mod expressions;

use self::clauses::{clause, param_range, recur, small_int};
use self::expressions::{bound_text, expr, primary};
#[cfg(test)]
mod tests;

#[derive(pest_derive::Parser)]
#[grammar = "syntax/grammar.pest"]
struct Grammar;

/// How deep brackets and blocks may nest. Real policies use fewer than 10 levels.
pub const MAX_NESTING: usize = 64;

type PResult<T> = Result<T, Diagnostic>;

/// Parses one policy file. Parse errors are single: pest stops at the first.
pub fn parse(source: &str) -> Result<File, Diagnostic> {
    check_nesting(source)?;
    // Bounds pathological backtracking as well as depth.
    pest::set_call_limit(std::num::NonZeroUsize::new(20_000_000usize.max(source.len().saturating_mul(64))));
    let mut pairs = Grammar::parse(Rule::file, source).map_err(|e| syntax_error(source, e))?;
    let file = pairs.next().ok_or_else(|| internal(Span::new(0, 0), "empty parse"))?;
    let mut comments = Vec::new();
    collect_comments(file.clone(), source, &mut comments);
    let mut ends: Vec<(usize, usize)> = comments.iter().map(|c| (c.span.start, c.span.end)).collect();
    ends.sort_by_key(|(_, e)| *e);
    COMMENT_ENDS.with(|c| *c.borrow_mut() = ends);
    let policy_pair = children(file)
        .find(|p| p.as_rule() == Rule::policy)
        .ok_or_else(|| internal(Span::new(0, source.len()), "no policy"))?;
    let policy = policy(policy_pair);
    COMMENT_ENDS.with(|c| c.borrow_mut().clear());
    Ok(File { policy: policy?, comments })
}

/// Bounds nesting before pest runs, so that no input can exhaust the stack. A small lexer: strings
/// (plain and triple-quoted) and comments are skipped; `(`, `[`, `{`, `list <` and the keywords `if`
/// and `match` open a level (`if if if …` recurses in the grammar before any bracket is seen; the
/// keyword's level becomes its block's). A `>` closes only a `list <`, so comparisons count for
/// nothing. The result depends on the tokens only, never on layout or comments.
fn check_nesting(source: &str) -> PResult<()> {
    let mut open: Vec<char> = Vec::new();
    let mut after_list = false;
    let mut i = 0;
    while let Some(c) = source.get(i..).and_then(|r| r.chars().next()) {
        let rest = &source[i..];
        let mut next = i + c.len_utf8();
        let mut push = None;
        if rest.starts_with("//") {
            next = rest.find('\n').map_or(source.len(), |n| i + n);
        } else if let Some(body) = rest.strip_prefix("\"\"\"") {
            next = body.find("\"\"\"").map_or(source.len(), |n| i + 3 + n + 3);
            after_list = false;
        } else if c == '"' {
            next = source.len();
            let mut chars = rest.char_indices().skip(1);
            while let Some((j, d)) = chars.next() {
                if d == '\\' {
                    chars.next();
                } else if d == '"' || d == '\n' {
                    next = i + j + d.len_utf8();
                    break;
                }
            }
            after_list = false;
        } else if c.is_alphanumeric() || c == '_' {
            let len = rest.find(|d: char| !(d.is_alphanumeric() || d == '_')).unwrap_or(rest.len());
            let word = &rest[..len];
            next = i + len;
            after_list = word == "list";
            if word == "if" || word == "match" {
                push = Some('k');
            }
        } else {
            match c {
                '(' | '[' => push = Some(c),
                '{' if open.last() == Some(&'k') => {
                    open.pop();
                    push = Some(c);
                }
                '{' => push = Some(c),
                '<' if after_list => push = Some(c),
                '>' if open.last() == Some(&'<') => {
                    open.pop();
                }
                ')' | ']' | '}' => {
                    open.pop();
                }
                _ => {}
            }
            if !is_space(c) {
                after_list = false;
            }
        }
        if let Some(o) = push {
            open.push(o);
            if open.len() > MAX_NESTING {
                return Err(Diagnostic::error(
                    Code::E0002,
                    Span::new(i, next),
                    format!("nesting deeper than {MAX_NESTING} levels"),
                )
                .with_label("too deep")
                .with_help("split the expression or the block into named parts (`let`, `procedure`)"));
            }
        }
        i = next;
    }
    Ok(())
}

/// The grammar's `WHITESPACE`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{3000}' | '\u{FEFF}')
}

/// Words for grammar rules in "expected …" messages.
pub fn rule_name(rule: &Rule) -> String {
    let s = match rule {
        Rule::EOI => "end of file",
        Rule::ident => "a name",
        Rule::string | Rule::plain_string | Rule::triple_string => "a string",
        Rule::int => "a whole number",
        Rule::expr | Rule::primary => "an expression",
        Rule::type_expr => "a type (`int`, `decimal`, `text`, `date`, `bool`, `list<…>`, `record {…}`)",
        Rule::step_kind => {
            "a step kind (`task`, `approval`, `filing`, `consultation`, `publicity`, `vote`, `meeting`, `call`)"
        }
        Rule::clause => "a clause (`by`, `after`, `window`, `due`, `rule`, `form`, …)",
        Rule::top_item => "a declaration (`param`, `let`, `role`, `phase`, `step`, …)",
        Rule::duration_lit => "a duration such as `3 days` or `10 workdays`",
        Rule::time_unit => "a time unit (`days`, `workdays`, `months`, `years`)",
        Rule::date_lit => "a date (`YYYY-MM-DD`)",
        Rule::approval_rule => "an approval rule (`all`, `any`, `sequence`, `K of N`, `> A/B`)",
        Rule::breach_action => {
            "a breach action (`overdue`, `escalate ROLE`, `notify ROLE`, `reassign ROLE`, `return STEP`, `reject`)"
        }
        Rule::step_path => "a step name (or `call_step.inner_step`)",
        Rule::deadline => "a deadline (`10 workdays`, `15 days after STEP`, a date)",
        Rule::pattern => "a pattern (`..=50`, `51..=99`, `100..`, a literal, `_`)",
        Rule::outcome => "`approved` or `rejected`",
        Rule::bind_source => "a binding (`param NAME`, `starter`, `item`, `STEP.FIELD`)",
        Rule::infix | Rule::op_or | Rule::op_and | Rule::op_add | Rule::op_sub | Rule::op_mul | Rule::op_div => {
            "an operator"
        }
        Rule::op_eq | Rule::op_ne | Rule::op_le | Rule::op_ge | Rule::op_lt | Rule::op_gt => "a comparison",
        Rule::field_access => "`.`",
        Rule::COMMENT => "a comment",
        other => {
            let name = format!("{other:?}");
            if let Some(kw) = name.strip_prefix("kw_") {
                return format!("`{kw}`");
            }
            return name.replace('_', " ");
        }
    };
    s.to_string()
}

fn syntax_error(source: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let (start, end) = match e.location {
        InputLocation::Pos(p) => (p, next_char_end(source, p)),
        InputLocation::Span((s, t)) => (s, t),
    };
    let found = source.get(start..).and_then(|s| s.chars().next());
    let found = match found {
        None => "end of file".to_string(),
        Some(c) if c.is_whitespace() => "white space".to_string(),
        Some(_) => {
            let word: String = source[start..].chars().take_while(|c| !c.is_whitespace()).take(20).collect();
            format!("`{word}`")
        }
    };
    let message = match &e.variant {
        ErrorVariant::ParsingError { positives, negatives } => {
            let mut names: Vec<String> = positives.iter().filter(|r| **r != Rule::COMMENT).map(rule_name).collect();
            names.sort();
            names.dedup();
            if names.is_empty() && !negatives.is_empty() {
                let mut neg: Vec<String> = negatives.iter().map(rule_name).collect();
                neg.sort();
                neg.dedup();
                format!("unexpected {}", neg.join(" or "))
            } else if names.is_empty() {
                format!("unexpected {found}")
            } else {
                format!("expected {}, found {found}", join_or(&names))
            }
        }
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let mut d = Diagnostic::error(Code::E0001, Span::new(start, end), message).with_label("here");
    if found == "end of file" {
        d = d.with_help("a block may be missing its closing `}`");
    } else if e.variant.message().contains("call limit") {
        d = d.with_help("the input is too complex to parse; simplify it");
    }
    d
}

fn join_or(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

fn next_char_end(source: &str, p: usize) -> usize {
    source.get(p..).and_then(|s| s.chars().next()).map_or(p, |c| p + c.len_utf8())
}

fn internal(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(Code::E0001, span, format!("could not read this part of the policy ({what})"))
        .with_help("this is a bug in civicflow's parser; please report it with the file")
}

thread_local! {
    /// Comment spans `(start, end)` of the file being walked, sorted by end, so that node spans
    /// can leave out trailing comments.
    static COMMENT_ENDS: std::cell::RefCell<Vec<(usize, usize)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The pair's span without the white space and comments pest may leave at its end.
fn span_of(p: &Pair<Rule>) -> Span {
    let s = p.as_span();
    let start = s.start();
    let text = p.as_str();
    let blank = |c: char| c.is_whitespace() || c == '\u{FEFF}';
    let mut end = start + text.trim_end_matches(blank).len();
    COMMENT_ENDS.with(|c| {
        let comments = c.borrow();
        // Trimming may stop inside a comment (its own trailing blanks or `\r`): the only comment
        // that can hold `end` is the first one ending at or after it.
        loop {
            let i = comments.partition_point(|(_, e)| *e < end);
            match comments.get(i) {
                Some(&(cstart, _)) if cstart > start && cstart < end => {
                    end = start + text[..cstart - start].trim_end_matches(blank).len();
                }
                _ => break,
            }
        }
    });
    Span::new(start, end)
}

fn children<'i>(p: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
    p.into_inner().filter(|c| c.as_rule() != Rule::COMMENT)
}

fn collect_comments(p: Pair<Rule>, source: &str, out: &mut Vec<Comment>) {
    for c in p.into_inner() {
        if c.as_rule() == Rule::COMMENT {
            let text = c.as_str().strip_prefix("//").unwrap_or("").trim_end_matches('\r').to_string();
            let raw = c.as_span();
            let before = source.get(..raw.start()).unwrap_or("").trim_end_matches(|c| is_space(c) && c != '\n');
            let trailing = !(before.is_empty() || before.ends_with('\n'));
            out.push(Comment { text, span: Span::new(raw.start(), raw.end()), trailing });
        } else {
            collect_comments(c, source, out);
        }
    }
}

/// A cursor over the meaningful children of a pair.
struct Kids<'i> {
    span: Span,
    what: Rule,
    it: std::iter::Peekable<Box<dyn Iterator<Item = Pair<'i, Rule>> + 'i>>,
}

impl<'i> Kids<'i> {
    fn of(p: Pair<'i, Rule>) -> Self {
        let span = span_of(&p);
        let what = p.as_rule();
        let it: Box<dyn Iterator<Item = Pair<'i, Rule>> + 'i> = Box::new(children(p));
        Kids { span, what, it: it.peekable() }
    }
    fn next(&mut self) -> PResult<Pair<'i, Rule>> {
        self.it.next().ok_or_else(|| internal(self.span, &format!("{:?} ended early", self.what)))
    }
    /// Next child, which must be of `rule`.
    fn expect(&mut self, rule: Rule) -> PResult<Pair<'i, Rule>> {
        let p = self.next()?;
        if p.as_rule() == rule {
            Ok(p)
        } else {
            Err(internal(span_of(&p), &format!("expected {rule:?} in {:?}, got {:?}", self.what, p.as_rule())))
        }
    }
    /// Skips a keyword child.
    fn kw(&mut self) -> PResult<()> {
        self.next().map(|_| ())
    }
    fn peek_is(&mut self, rule: Rule) -> bool {
        self.it.peek().is_some_and(|p| p.as_rule() == rule)
    }
    fn opt(&mut self, rule: Rule) -> Option<Pair<'i, Rule>> {
        if self.peek_is(rule) {
            self.it.next()
        } else {
            None
        }
    }
    fn rest(self) -> impl Iterator<Item = Pair<'i, Rule>> {
        self.it
    }
}

fn ident(p: Pair<Rule>) -> Ident {
    Ident { name: p.as_str().to_string(), span: span_of(&p) }
}

/// `X` or `X.Y.Z` (a step inside the procedure a `call` step runs).
fn step_path(p: Pair<Rule>) -> PResult<StepPath> {
    let mut k = Kids::of(p);
    let step = ident(k.expect(Rule::ident)?);
    Ok(StepPath { step, inner: k.rest().map(ident).collect() })
}

/// `bound by SOURCE` (R6.1).
fn role_bound(p: Pair<Rule>) -> PResult<RoleBound> {
    let span = span_of(&p);
    let mut k = Kids::of(p);
    k.kw()?;
    k.kw()?;
    let src = k.expect(Rule::bind_source)?;
    let inner = Kids::of(src).next()?;
    let source = match inner.as_rule() {
        Rule::bind_field => {
            let mut f = Kids::of(inner);
            let step = ident(f.expect(Rule::ident)?);
            let field = ident(f.expect(Rule::ident)?);
            BindSource::Field(step, field)
        }
        Rule::bind_param => {
            let mut f = Kids::of(inner);
            f.kw()?;
            BindSource::Param(ident(f.expect(Rule::ident)?))
        }
        Rule::kw_starter => BindSource::Starter,
        _ => BindSource::Item,
    };
    Ok(RoleBound { source, span })
}

fn policy(p: Pair<Rule>) -> PResult<Policy> {
    let span = span_of(&p);
    let mut k = Kids::of(p);
    k.kw()?;
    let name = ident(k.expect(Rule::ident)?);
    let items = k.rest().map(item).collect::<PResult<Vec<_>>>()?;
    Ok(Policy { name, items, span })
}

fn item(p: Pair<Rule>) -> PResult<Item> {
    let span = span_of(&p);
    Ok(match p.as_rule() {
        Rule::header_item => {
            let mut k = Kids::of(p);
            let key_pair = k.expect(Rule::header_key)?;
            let key = match Kids::of(key_pair).next()?.as_rule() {
                Rule::kw_title => HeaderKey::Title,
                Rule::kw_version => HeaderKey::Version,
                Rule::kw_timezone => HeaderKey::Timezone,
                _ => HeaderKey::Calendar,
            };
            let value = string(k.expect(Rule::string)?)?;
            Item::Header(Header { key, value, span })
        }
        Rule::param_decl => {
            let mut k = Kids::of(p);
            k.kw()?;
            let name = ident(k.expect(Rule::ident)?);
            let ty = type_expr(k.expect(Rule::type_expr)?)?;
            let range = k.opt(Rule::param_range).map(param_range).transpose()?;
            let personal = k.opt(Rule::personal).map(|p| span_of(&p));
            let default = k.opt(Rule::expr).map(expr).transpose()?;
            Item::Param(Param { name, ty, range, default, personal, span })
        }
        Rule::const_decl | Rule::let_decl => {
            let is_const = p.as_rule() == Rule::const_decl;
            let mut k = Kids::of(p);
            k.kw()?;
            let name = ident(k.expect(Rule::ident)?);
            let ty = type_expr(k.expect(Rule::type_expr)?)?;
            let value = expr(k.expect(Rule::expr)?)?;
            let b = Binding { name, ty, value, span };
            if is_const {
                Item::Const(b)
            } else {
                Item::Let(b)
            }
        }
        Rule::role_decl => {
            let mut k = Kids::of(p);
            k.kw()?;
            let name = ident(k.expect(Rule::ident)?);
            let description = k.opt(Rule::string).map(string).transpose()?;
            let bound = k.opt(Rule::role_bound).map(role_bound).transpose()?;
            let oversight = k.opt(Rule::oversight).is_some();
            let (mut may_suspend, mut may_correct) = (false, false);
            if let Some(powers) = k.opt(Rule::role_powers) {
                for power in powers.into_inner().filter(|x| x.as_rule() == Rule::role_power) {
                    match power.into_inner().next().map(|x| x.as_rule()) {
                        Some(Rule::kw_suspend) => may_suspend = true,
                        Some(Rule::kw_correct) => may_correct = true,
                        _ => {}
                    }
                }
            }
            Item::Role(Role { name, description, bound, oversight, may_suspend, may_correct, span })
        }
        Rule::template_decl => {
            let mut k = Kids::of(p);
            k.kw()?;
            let name = ident(k.expect(Rule::ident)?);
            let body = string(k.expect(Rule::string)?)?;
            Item::Template(Template { name, body, span })
        }
        Rule::recur_decl => recur(p)?,
        Rule::quota_decl => {
            let mut k = Kids::of(p);
            k.kw()?;
            let condition = expr(k.expect(Rule::expr)?)?;
            k.kw()?;
            k.kw()?;
            let share = expr(k.expect(Rule::expr)?)?;
            k.kw()?;
            k.kw()?;
            k.kw()?;
            let message = string(k.expect(Rule::string)?)?;
            Item::Quota(Quota { condition, share, message, span })
        }
        Rule::procedure_decl => {
            let mut k = Kids::of(p);
            k.kw()?;
            let name = ident(k.expect(Rule::ident)?);
            let items = k.rest().map(item).collect::<PResult<Vec<_>>>()?;
            Item::Procedure(Procedure { name, items, span })
        }
        Rule::phase_decl => {
            let mut k = Kids::of(p);
            k.kw()?;
            let name = ident(k.expect(Rule::ident)?);
            let title = k.opt(Rule::string).map(string).transpose()?;
            let items = k.rest().map(item).collect::<PResult<Vec<_>>>()?;
            Item::Phase(Phase { name, title, items, span })
        }
        Rule::step_decl => {
            let has_block = p.as_str().get(..span.end - span.start).is_some_and(|t| t.ends_with('}'));
            let mut k = Kids::of(p);
            k.kw()?;
            let name = ident(k.expect(Rule::ident)?);
            let title = k.opt(Rule::string).map(string).transpose()?;
            let kind_pair = k.expect(Rule::step_kind)?;
            let kind_span = span_of(&kind_pair);
            let kind_inner = Kids::of(kind_pair).next()?;
            let kind = match kind_inner.as_rule() {
                Rule::kw_task => StepKind::Task,
                Rule::kw_approval => StepKind::Approval,
                Rule::kw_filing => StepKind::Filing,
                Rule::kw_consultation => StepKind::Consultation,
                Rule::kw_publicity => StepKind::Publicity,
                Rule::kw_vote => StepKind::Vote,
                Rule::kw_meeting => StepKind::Meeting,
                _ => {
                    let mut ck = Kids::of(kind_inner);
                    ck.kw()?;
                    StepKind::Call(ident(ck.expect(Rule::ident)?))
                }
            };
            let clauses = k.rest().map(clause).collect::<PResult<Vec<_>>>()?;
            // A step whose block holds only comments still "has a block" only if written so.
            Item::Step(Step { name, title, kind, kind_span, clauses, has_block, span })
        }
        _ => Item::Clause(clause(p)?),
    })
}

fn duration(p: Pair<Rule>) -> PResult<Duration> {
    let span = span_of(&p);
    let mut k = Kids::of(p);
    let amount = small_int(k.expect(Rule::int)?)?;
    let unit = match k.expect(Rule::time_unit)?.as_str() {
        "workdays" | "workday" => TimeUnit::Workdays,
        "days" | "day" => TimeUnit::Days,
        "months" | "month" => TimeUnit::Months,
        _ => TimeUnit::Years,
    };
    Ok(Duration { amount, unit, span })
}

fn string(p: Pair<Rule>) -> PResult<Str> {
    let span = span_of(&p);
    let inner = Kids::of(p).next()?;
    let triple = inner.as_rule() == Rule::triple_string;
    let body = Kids::of(inner).next()?;
    let value = if triple { body.as_str().to_string() } else { unescape(body.as_str(), span)? };
    Ok(Str { value, triple, span })
}

fn unescape(s: &str, span: Span) -> PResult<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('u') => {
                let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).ok_or_else(|| {
                    Diagnostic::error(Code::E0001, span, format!("`\\u{{{hex}}}` is not a character"))
                        .with_label("in this string")
                })?;
                out.push(c);
            }
            _ => return Err(internal(span, "bad escape")),
        }
    }
    Ok(out)
}

fn type_expr(p: Pair<Rule>) -> PResult<TypeExpr> {
    let span = span_of(&p);
    let inner = Kids::of(p).next()?;
    let kind = match inner.as_rule() {
        Rule::kw_int => TypeKind::Int,
        Rule::kw_decimal => TypeKind::Decimal,
        Rule::kw_text => TypeKind::Text,
        Rule::kw_date => TypeKind::Date,
        Rule::kw_bool => TypeKind::Bool,
        Rule::list_type => {
            let mut k = Kids::of(inner);
            k.kw()?;
            TypeKind::List(Box::new(type_expr(k.expect(Rule::type_expr)?)?))
        }
        _ => {
            let mut k = Kids::of(inner);
            k.kw()?;
            let fields = k
                .rest()
                .map(|f| {
                    let mut fk = Kids::of(f);
                    let name = ident(fk.expect(Rule::ident)?);
                    let ty = type_expr(fk.expect(Rule::type_expr)?)?;
                    Ok((name, ty))
                })
                .collect::<PResult<Vec<_>>>()?;
            TypeKind::Record(fields)
        }
    };
    Ok(TypeExpr { kind, span })
}

/// How tall an expression tree may grow, operator chains included (`a + b + …` is as tall as it
/// is long). Every pass over the syntax tree recurses on expressions, so this bound keeps them all
/// — the formatter, the checker, even dropping the tree — within the stack.
pub const MAX_EXPR_DEPTH: usize = 256;

/// An expression and the height of its tree.
type Tall = (Expr, usize);
