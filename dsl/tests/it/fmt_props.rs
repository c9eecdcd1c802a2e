//! Properties of the formatter and the parser.
//!
//! - Random well-formed syntax trees print to text that parses back to the same tree and formats
//!   to the same text again.
//! - Arbitrary text, token soup and mutations of a real policy never make the parser panic; when
//!   a mutation still parses, formatting it keeps its meaning and is idempotent.

use civicflow_dsl::ast::*;
use civicflow_dsl::{fmt, syntax};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

fn sp() -> Span {
    Span::default()
}

fn ex(kind: ExprKind) -> Expr {
    Expr { kind, span: sp() }
}

// ---- names and literals -----------------------------------------------------------------------

/// ASCII and Chinese names, and a few words that are keywords in some places but not reserved.
const NAMES: &[&str] = &[
    "a",
    "b2",
    "_x",
    "x_y",
    "é",
    "组织类型",
    "党员人数",
    "开始",
    "甲",
    "社区列表",
    "候选人",
    "days",
    "list",
    "roll",
    "approved",
    "end",
    "by",
];

fn ident() -> impl Strategy<Value = Ident> {
    prop::sample::select(NAMES).prop_map(|n| Ident { name: n.to_string(), span: sp() })
}

fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('a', 'z'),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('\n'),
        1 => Just('\t'),
        1 => Just('\r'),
        1 => Just('/'),
        1 => Just('{'),
        1 => Just('}'),
        1 => Just(' '),
        1 => Just('\u{3000}'),
        2 => prop::sample::select(vec!['社', '区', '公', '示', '甲', '乙']),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 0..8).prop_map(String::from_iter)
}

fn plain_str() -> impl Strategy<Value = Str> {
    text().prop_map(|value| Str { value, triple: false, span: sp() })
}

/// Plain or `"""…"""` (whose text can hold neither `"""` nor a final `"`).
fn str_lit() -> impl Strategy<Value = Str> {
    prop_oneof![
        plain_str(),
        text()
            .prop_filter("a triple-quoted string cannot hold that", |v| !v.contains("\"\"\"") && !v.ends_with('"'))
            .prop_map(|value| Str { value, triple: true, span: sp() }),
    ]
}

fn digits() -> impl Strategy<Value = String> {
    prop_oneof![Just("0".to_string()), "[1-9][0-9]{0,3}", "0[0-9]{1,2}", "[0-9]{25}"]
}

fn decimal() -> impl Strategy<Value = String> {
    (digits(), "[0-9]{1,3}").prop_map(|(a, b)| format!("{a}.{b}"))
}

fn date() -> impl Strategy<Value = String> {
    "[0-9]{4}-[0-9]{2}-[0-9]{2}"
}

fn time_unit() -> impl Strategy<Value = TimeUnit> {
    prop::sample::select(vec![TimeUnit::Days, TimeUnit::Workdays, TimeUnit::Months, TimeUnit::Years])
}

fn duration() -> impl Strategy<Value = Duration> {
    (prop_oneof![0u32..100, Just(u32::MAX)], time_unit()).prop_map(|(amount, unit)| Duration {
        amount,
        unit,
        span: sp(),
    })
}

// ---- expressions ------------------------------------------------------------------------------

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        1 => digits().prop_map(ExprKind::Int),
        1 => decimal().prop_map(ExprKind::Decimal),
        1 => prop_oneof![digits(), decimal()].prop_map(ExprKind::Percent),
        1 => date().prop_map(ExprKind::Date),
        1 => duration().prop_map(ExprKind::Duration),
        1 => str_lit().prop_map(ExprKind::Str),
        1 => any::<bool>().prop_map(ExprKind::Bool),
        3 => ident().prop_map(ExprKind::Name),
    ]
    .prop_map(ex)
}

fn binop() -> impl Strategy<Value = BinOp> {
    use BinOp::*;
    prop::sample::select(vec![Or, And, Eq, Ne, Lt, Le, Gt, Ge, Add, Sub, Mul, Div])
}

fn number() -> impl Strategy<Value = String> {
    (any::<bool>(), prop_oneof![digits(), decimal()]).prop_map(|(neg, n)| if neg { format!("-{n}") } else { n })
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        Just(PatternKind::Wildcard),
        (number(), number()).prop_map(|(l, h)| PatternKind::Range { low: Some(l), high: Some(h) }),
        number().prop_map(|h| PatternKind::Range { low: None, high: Some(h) }),
        number().prop_map(|l| PatternKind::Range { low: Some(l), high: None }),
        number().prop_map(PatternKind::Number),
        text().prop_map(PatternKind::Str),
        any::<bool>().prop_map(PatternKind::Bool),
        date().prop_map(PatternKind::Date),
    ]
    .prop_map(|kind| Pattern { kind, span: sp() })
}

/// Any expression tree, before the parentheses the parser needs are put in.
fn raw_expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 40, 4, |inner| {
        let b = |e: Expr| Box::new(e);
        prop_oneof![
            4 => (binop(), inner.clone(), inner.clone()).prop_map(move |(op, l, r)| ex(ExprKind::Binary(op, b(l), b(r)))),
            2 => (any::<bool>(), inner.clone()).prop_map(move |(not, e)| {
                ex(ExprKind::Unary(if not { UnOp::Not } else { UnOp::Neg }, b(e)))
            }),
            1 => (inner.clone(), ident()).prop_map(move |(e, n)| ex(ExprKind::Field(b(e), n))),
            1 => (ident(), prop::collection::vec(inner.clone(), 0..3)).prop_map(|(f, args)| ex(ExprKind::Call(f, args))),
            1 => prop::collection::vec(inner.clone(), 0..3).prop_map(|items| ex(ExprKind::List(items))),
            1 => (inner.clone(), inner.clone(), inner.clone()).prop_map(move |(c, t, o)| {
                ex(ExprKind::If { cond: b(c), then: b(t), otherwise: b(o) })
            }),
            1 => (inner.clone(), prop::collection::vec((pattern(), inner.clone()), 1..4)).prop_map(move |(s, arms)| {
                let arms = arms.into_iter().map(|(pattern, value)| MatchArm { pattern, value, span: sp() }).collect();
                ex(ExprKind::Match { scrutinee: b(s), arms })
            }),
            1 => inner.prop_map(move |e| ex(ExprKind::Paren(b(e)))),
        ]
    })
}

fn paren(e: Expr) -> Expr {
    ex(ExprKind::Paren(Box::new(e)))
}

/// Whether the expression ends in a `not` that would swallow an operator written after it
/// (`not a` binds everything down to `and`/`or`).
fn open_not(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Unary(UnOp::Not, _) => true,
        ExprKind::Unary(UnOp::Neg, x) | ExprKind::Binary(_, _, x) => open_not(x),
        _ => false,
    }
}

fn binary_prec(e: &Expr) -> Option<u8> {
    match &e.kind {
        ExprKind::Binary(op, ..) => Some(op.precedence()),
        _ => None,
    }
}

/// Puts in the parentheses without which the printed tree would parse differently: what a
/// well-formed tree (one the parser can produce) has.
fn well_formed(e: Expr) -> Expr {
    let fixb = |e: Box<Expr>| Box::new(well_formed(*e));
    let kind = match e.kind {
        ExprKind::Binary(op, l, r) => {
            let p = op.precedence();
            let (l, r) = (well_formed(*l), well_formed(*r));
            let l = if binary_prec(&l).is_some_and(|q| q < p) || (p >= 3 && open_not(&l)) { paren(l) } else { l };
            let r = if binary_prec(&r).is_some_and(|q| q <= p) { paren(r) } else { r };
            ExprKind::Binary(op, Box::new(l), Box::new(r))
        }
        ExprKind::Unary(UnOp::Not, x) => {
            let x = well_formed(*x);
            let x = if binary_prec(&x).is_some_and(|q| q < 3) { paren(x) } else { x };
            ExprKind::Unary(UnOp::Not, Box::new(x))
        }
        ExprKind::Unary(UnOp::Neg, x) => {
            let x = well_formed(*x);
            let x = if binary_prec(&x).is_some() { paren(x) } else { x };
            ExprKind::Unary(UnOp::Neg, Box::new(x))
        }
        ExprKind::Field(base, n) => {
            let base = well_formed(*base);
            let base = if matches!(base.kind, ExprKind::Binary(..) | ExprKind::Unary(..)) { paren(base) } else { base };
            ExprKind::Field(Box::new(base), n)
        }
        ExprKind::Call(f, args) => ExprKind::Call(f, args.into_iter().map(well_formed).collect()),
        ExprKind::List(items) => ExprKind::List(items.into_iter().map(well_formed).collect()),
        ExprKind::If { cond, then, otherwise } => {
            ExprKind::If { cond: fixb(cond), then: fixb(then), otherwise: fixb(otherwise) }
        }
        ExprKind::Match { scrutinee, arms } => ExprKind::Match {
            scrutinee: fixb(scrutinee),
            arms: arms.into_iter().map(|a| MatchArm { value: well_formed(a.value), ..a }).collect(),
        },
        ExprKind::Paren(x) => ExprKind::Paren(fixb(x)),
        other => other,
    };
    Expr { kind, span: e.span }
}

fn expr() -> BoxedStrategy<Expr> {
    raw_expr().prop_map(well_formed).boxed()
}

/// Whether the expression's text starts with a duration (`due 3 days + x` does not parse: after
/// `due`, a duration is the relative deadline).
fn starts_with_duration(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Duration(_) => true,
        ExprKind::Binary(_, l, _) | ExprKind::Field(l, _) => starts_with_duration(l),
        _ => false,
    }
}

// ---- types, clauses, items --------------------------------------------------------------------

fn type_expr() -> impl Strategy<Value = TypeExpr> {
    let leaf =
        prop::sample::select(vec![TypeKind::Int, TypeKind::Decimal, TypeKind::Text, TypeKind::Date, TypeKind::Bool])
            .prop_map(|kind| TypeExpr { kind, span: sp() });
    leaf.prop_recursive(3, 8, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| TypeKind::List(Box::new(t))),
            prop::collection::vec((ident(), inner), 0..3).prop_map(TypeKind::Record),
        ]
        .prop_map(|kind| TypeExpr { kind, span: sp() })
    })
}

fn names() -> impl Strategy<Value = Vec<Ident>> {
    prop::collection::vec(ident(), 1..4)
}

/// `X` or `X.Y.Z`.
fn step_path() -> impl Strategy<Value = StepPath> {
    (ident(), prop::collection::vec(ident(), 0..3)).prop_map(|(step, inner)| StepPath { step, inner })
}

fn form_item() -> impl Strategy<Value = FormItem> {
    prop_oneof![
        (ident(), type_expr(), any::<bool>(), any::<bool>()).prop_map(|(name, ty, optional, personal)| {
            FormItem::Field { name, ty, optional, personal, span: sp() }
        }),
        (expr(), str_lit()).prop_map(|(condition, message)| FormItem::Require { condition, message, span: sp() }),
    ]
}

fn clause() -> impl Strategy<Value = Clause> {
    let dep = || {
        (
            ident(),
            prop::collection::vec(ident(), 0..3),
            prop::option::of(prop::sample::select(vec![Outcome::Approved, Outcome::Rejected])),
        )
            .prop_map(|(step, inner, outcome)| Dependency { step, inner, outcome, span: sp() })
    };
    let rule = prop_oneof![
        Just(ApprovalRule::All),
        Just(ApprovalRule::Any),
        Just(ApprovalRule::Sequence),
        (any::<u32>(), any::<u32>()).prop_map(|(k, n)| ApprovalRule::KOfN { k, n }),
        (any::<bool>(), any::<u32>(), any::<u32>()).prop_map(|(strict, num, den)| ApprovalRule::Fraction {
            strict,
            num,
            den
        }),
    ];
    let deadline = prop_oneof![
        (duration(), prop::option::of(step_path()))
            .prop_map(|(duration, after)| Deadline::Relative { duration, after }),
        (amount(), time_unit(), prop::option::of(step_path())).prop_map(|(amount, unit, after)| Deadline::Amount {
            amount,
            unit,
            after
        }),
        expr()
            .prop_filter("a leading duration is a relative deadline", |e| { !starts_with_duration(e) })
            .prop_map(Deadline::At),
    ];
    let breach = prop_oneof![
        Just(BreachAction::Overdue),
        Just(BreachAction::Reject),
        ident().prop_map(BreachAction::Escalate),
        ident().prop_map(BreachAction::Notify),
        ident().prop_map(BreachAction::Reassign),
        step_path().prop_map(BreachAction::Return),
    ];
    let vote_key = prop::sample::select(vec![
        VoteKey::Seats,
        VoteKey::Eligible,
        VoteKey::Quorum,
        VoteKey::Elect,
        VoteKey::Slate,
        VoteKey::Ballot,
    ]);
    prop_oneof![
        names().prop_map(ClauseKind::By),
        prop::collection::vec(dep(), 1..4).prop_map(ClauseKind::After),
        prop::collection::vec(dep(), 1..4).prop_map(ClauseKind::AfterAny),
        expr().prop_map(ClauseKind::When),
        (expr(), expr()).prop_map(|(from, to)| ClauseKind::Window { from, to }),
        (ident(), expr()).prop_map(|(var, list)| ClauseKind::For { var, list }),
        rule.prop_map(ClauseKind::Rule),
        (deadline, any::<bool>()).prop_map(|(deadline, roll)| ClauseKind::Due { deadline, roll }),
        duration().prop_map(ClauseKind::Remind),
        prop::collection::vec(breach, 1..4).prop_map(ClauseKind::Breach),
        prop::option::of(step_path()).prop_map(ClauseKind::OnRejected),
        step_path().prop_map(ClauseKind::OnObjection),
        duration().prop_map(ClauseKind::Min),
        (amount(), time_unit()).prop_map(|(amount, unit)| ClauseKind::MinAmount { amount, unit }),
        prop::collection::vec(form_item(), 0..4).prop_map(ClauseKind::Form),
        (vote_key, expr(), prop::option::of(plain_str())).prop_map(|(key, value, message)| ClauseKind::Vote {
            key,
            value,
            message
        }),
        ident().prop_map(ClauseKind::UseTemplate),
        prop::collection::vec((ident(), expr()), 1..3).prop_map(ClauseKind::With),
        (expr(), plain_str()).prop_map(|(condition, message)| ClauseKind::ApproveOnly { condition, message }),
        (ident(), ident(), expr(), str_lit()).prop_map(|(policy, param, value, message)| ClauseKind::Requires {
            policy,
            param,
            value,
            message
        }),
        (prop::collection::vec(step_path(), 1..4), names())
            .prop_map(|(targets, by)| ClauseKind::MayReturn { targets, by }),
        names().prop_map(ClauseKind::UrgeBy),
        Just(ClauseKind::Owned),
    ]
    .prop_map(|kind| Clause { kind, span: sp() })
}

/// `due 3 days` directly followed by `after X` reads as `due 3 days after X`: a tree the parser
/// cannot produce, so keep it out (with `roll` in between it is fine).
fn no_due_then_after(clauses: &mut [&mut Clause]) {
    for i in 1..clauses.len() {
        if matches!(clauses[i].kind, ClauseKind::After(_) | ClauseKind::AfterAny(_)) {
            if let ClauseKind::Due {
                deadline: Deadline::Relative { after: None, .. } | Deadline::Amount { after: None, .. },
                roll,
            } = &mut clauses[i - 1].kind
            {
                *roll = true;
            }
        }
    }
}

fn step_kind() -> impl Strategy<Value = StepKind> {
    prop_oneof![
        prop::sample::select(vec![
            StepKind::Task,
            StepKind::Approval,
            StepKind::Filing,
            StepKind::Consultation,
            StepKind::Publicity,
            StepKind::Vote,
            StepKind::Meeting,
        ]),
        ident().prop_map(StepKind::Call),
    ]
}

fn step() -> impl Strategy<Value = Item> {
    (ident(), prop::option::of(str_lit()), step_kind(), prop::collection::vec(clause(), 0..5), any::<bool>()).prop_map(
        |(name, title, kind, mut clauses, block)| {
            let has_block = block || !clauses.is_empty();
            no_due_then_after(&mut clauses.iter_mut().collect::<Vec<_>>());
            Item::Step(Step { name, title, kind, kind_span: sp(), clauses, has_block, span: sp() })
        },
    )
}

fn phase_items(items: &mut [Item]) {
    let mut clauses: Vec<&mut Clause> = Vec::new();
    for it in items.iter_mut() {
        if let Item::Clause(c) = it {
            clauses.push(c);
        } else {
            no_due_then_after(&mut clauses);
            clauses.clear();
        }
    }
    no_due_then_after(&mut clauses);
}

fn phase() -> impl Strategy<Value = Item> {
    let leaf = (ident(), prop::option::of(str_lit()))
        .prop_map(|(name, title)| Item::Phase(Phase { name, title, items: vec![], span: sp() }));
    leaf.prop_recursive(3, 12, 4, |inner| {
        let member = prop_oneof![2 => step(), 2 => clause().prop_map(Item::Clause), 1 => inner];
        (ident(), prop::option::of(str_lit()), prop::collection::vec(member, 0..4)).prop_map(
            |(name, title, mut items)| {
                phase_items(&mut items);
                Item::Phase(Phase { name, title, items, span: sp() })
            },
        )
    })
}

fn binding() -> impl Strategy<Value = Binding> {
    (ident(), type_expr(), expr()).prop_map(|(name, ty, value)| Binding { name, ty, value, span: sp() })
}

/// The amount of `due AMOUNT UNIT` / `min AMOUNT UNIT`: a name or a parenthesised expression.
fn amount() -> impl Strategy<Value = Expr> {
    prop_oneof![ident().prop_map(|n| ex(ExprKind::Name(n))), expr().prop_map(paren)]
}

fn param_range() -> impl Strategy<Value = ParamRange> {
    prop_oneof![
        number().prop_map(|l| ParamRange { low: Some(l), high: None, between: false, span: sp() }),
        number().prop_map(|h| ParamRange { low: None, high: Some(h), between: false, span: sp() }),
        (number(), number()).prop_map(|(l, h)| ParamRange { low: Some(l), high: Some(h), between: true, span: sp() }),
    ]
}

fn param() -> impl Strategy<Value = Item> {
    (ident(), type_expr(), prop::option::of(param_range()), prop::option::of(expr()), any::<bool>()).prop_map(
        |(name, ty, range, default, personal)| {
            Item::Param(Param { name, ty, range, default, personal: personal.then(sp), span: sp() })
        },
    )
}

/// `role NAME ["…"] [bound by param P | starter | item | STEP.FIELD] [oversight] [may suspend,
/// correct]` (R6.1, R6.2, issues 11.3, 11.4).
fn role() -> impl Strategy<Value = Item> {
    let source = prop_oneof![
        ident().prop_map(BindSource::Param),
        Just(BindSource::Starter),
        Just(BindSource::Item),
        (ident(), ident()).prop_map(|(s, f)| BindSource::Field(s, f)),
    ];
    let bound = prop::option::of(source.prop_map(|source| RoleBound { source, span: sp() }));
    (ident(), prop::option::of(str_lit()), bound, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(name, description, bound, oversight, may_suspend, may_correct)| {
            Item::Role(Role { name, description, bound, oversight, may_suspend, may_correct, span: sp() })
        },
    )
}

fn procedure() -> impl Strategy<Value = Item> {
    let member = prop_oneof![param(), binding().prop_map(Item::Const), binding().prop_map(Item::Let), phase(), step()];
    (ident(), prop::collection::vec(member, 0..4))
        .prop_map(|(name, items)| Item::Procedure(Procedure { name, items, span: sp() }))
}

/// Every form of `recur`: a span or a calendar period, days fitting the period, any options.
fn recur() -> impl Strategy<Value = Item> {
    let every = prop_oneof![
        (any::<u32>(), prop::sample::select(vec![RecurUnit::Years, RecurUnit::Months]))
            .prop_map(|(n, unit)| RecurEvery::Every { n, unit }),
        prop::sample::select(vec![
            RecurEvery::Monthly,
            RecurEvery::Quarterly,
            RecurEvery::HalfYearly,
            RecurEvery::Yearly
        ]),
    ];
    let anchor = prop::option::of(prop_oneof![Just(RecurAnchor::Start), ident().prop_map(RecurAnchor::End)]);
    (
        every,
        prop::collection::vec((1u32..13, 1u32..32), 0..3),
        anchor,
        prop::collection::vec(ident(), 0..3),
        prop::option::of(ident()),
        prop::option::of(ident()),
    )
        .prop_map(|(every, days, from, carry, dated, by)| {
            let on: Vec<RecurDay> = match every {
                RecurEvery::Every { .. } => Vec::new(),
                RecurEvery::Yearly => days.iter().map(|(m, d)| RecurDay { month: Some(*m), day: *d }).collect(),
                _ => days.iter().map(|(_, d)| RecurDay { month: None, day: *d }).collect(),
            };
            let on_span = (!on.is_empty()).then(sp);
            Item::Recur(Recur { every, on, on_span, from, carry, dated, by, span: sp() })
        })
}

fn top_item() -> impl Strategy<Value = Item> {
    let key =
        prop::sample::select(vec![HeaderKey::Title, HeaderKey::Version, HeaderKey::Timezone, HeaderKey::Calendar]);
    prop_oneof![
        1 => (key, str_lit()).prop_map(|(key, value)| Item::Header(Header { key, value, span: sp() })),
        1 => param(),
        1 => binding().prop_map(Item::Const),
        1 => binding().prop_map(Item::Let),
        1 => role(),
        1 => (ident(), str_lit()).prop_map(|(name, body)| Item::Template(Template { name, body, span: sp() })),
        1 => procedure(),
        1 => recur(),
        1 => (expr(), expr(), str_lit())
            .prop_map(|(condition, share, message)| Item::Quota(Quota { condition, share, message, span: sp() })),
        2 => phase(),
        2 => step(),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (ident(), prop::collection::vec(top_item(), 0..8)).prop_map(|(name, items)| Policy { name, items, span: sp() })
}

// ---- properties -------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// format → parse gives the tree back, and formatting that again changes nothing.
    #[test]
    fn generated_trees_round_trip(policy in policy()) {
        let file = File { policy, comments: vec![] };
        let text = fmt::format(&file);
        let parsed = syntax::parse(&text).map_err(|d| TestCaseError::fail(format!("{} at {:?}\n{text}", d.message, d.span)))?;
        prop_assert_eq!(&parsed.policy, &file.policy, "\n{}", text);
        prop_assert_eq!(fmt::format(&parsed), text);
    }

    /// Any text: Ok or Err, never a panic.
    #[test]
    fn parse_never_panics_on_arbitrary_text(src in any::<String>()) {
        let _ = syntax::parse(&src);
    }

    /// Token soup, closer to the grammar than random text.
    #[test]
    fn parse_never_panics_on_token_soup(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..60)) {
        let src: String = tokens.concat();
        if let Ok(file) = syntax::parse(&src) {
            check_format(&file)?;
        }
    }

}

proptest! {
    // About one mutation in six still parses; those get the formatter checks.
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A real policy with characters inserted and deleted: never a panic; when it still parses,
    /// formatting keeps its meaning and its comments and is a fixed point.
    #[test]
    fn mutated_policies_never_panic_and_format_stably(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..3, prop::sample::select(INSERTS)), 1..4),
    ) {
        let mut chars: Vec<char> = BASE.chars().collect();
        for (at, deleted, inserted) in edits {
            let i = at.index(chars.len() + 1);
            let end = (i + deleted).min(chars.len());
            chars.splice(i..end, inserted.chars());
        }
        let src: String = chars.into_iter().collect();
        if let Ok(file) = syntax::parse(&src) {
            check_format(&file)?;
        }
    }
}

fn check_format(file: &File) -> Result<(), TestCaseError> {
    let text = fmt::format(file);
    let again =
        syntax::parse(&text).map_err(|d| TestCaseError::fail(format!("{} at {:?}\n{text}", d.message, d.span)))?;
    prop_assert_eq!(&again.policy, &file.policy, "\n{}", text);
    let texts = |f: &File| f.comments.iter().map(|c| c.text.trim_end().to_string()).collect::<Vec<_>>();
    prop_assert_eq!(texts(&again), texts(file), "comments lost or reordered\n{}", text);
    prop_assert_eq!(fmt::format(&again), text);
    Ok(())
}

const TOKENS: &[&str] = &[
    "policy ",
    "p ",
    "{",
    "}",
    "\n",
    " ",
    "step ",
    "s",
    ": ",
    "task",
    "approval",
    "phase ",
    "by ",
    "role r ",
    " bound by ",
    "param ",
    "starter",
    " item",
    " oversight",
    " personal",
    "after ",
    "when ",
    "window ",
    "..",
    "..=",
    "due ",
    "3 days",
    " workdays",
    "roll",
    "form ",
    "require ",
    " else ",
    "\"m\"",
    "\"\"\"t\"\"\"",
    "let ",
    "x",
    ": int",
    " = ",
    "1",
    "2.5",
    "30%",
    "2012-03-21",
    "+",
    "-",
    "*",
    "/",
    "<",
    ">=",
    "==",
    " and ",
    " or ",
    "not ",
    "(",
    ")",
    "[",
    "]",
    ",",
    "if ",
    "match ",
    "=>",
    "_",
    "// c\n",
    "甲",
    "list<",
    ">",
    "record {",
    "role ",
    "template ",
    "\"",
    "\\",
    ".",
    "on rejected ",
    "return ",
    "end",
    "with ",
    "call ",
    "procedure ",
];

const INSERTS: &[&str] = &[
    "",
    "",
    "",
    " ",
    "\n",
    "// note\n",
    "// 备注",
    "{",
    "}",
    "(",
    ")",
    "\"",
    "\"\"\"",
    "-",
    "not ",
    ",",
    ".",
    "..",
    "=>",
    "if ",
    "else ",
    "甲",
    "x",
    "1",
    " days",
    "roll ",
    "after ",
    "approved ",
    "\\",
    "/",
    "\u{3000}",
    "\r\n",
];

/// A policy with comments in every kind of place.
const BASE: &str = r#"// head
policy 换届 { // after the brace
  title "换届\t\"选举\"" // trailing
  version """2012 "1" """
  // before a param
  param 党员人数: int = 50 // default
  param 开始: date = 2012-03-21
  const 年: int = (3)
  let 类型: text = match 党员人数 { ..=50 => "党支部", // inside
    51..=99 => "党总支", 100.. => "党委", -5..=-1 => "负", _ => "x" }
  let y: bool = if 党员人数 > 1 { true } else if 党员人数 < -1 { false } else { not 1 + 2 * 3 > 4 and -3 < 30% }
  role 党组织 "党组织"
  template 公示 """
  {{社区}} // not a comment
  """
  phase 准备 "准备" {
    // first
    window 开始 .. 开始 + 10 days
    step 提名: task {
      by 党组织 // who
      form {
        a: int
        b: int optional // opt
        // R2.8
        require a >= 10 or b >= 50 else "至少" // msg
      }
      // end of step
    } // after step
    step 审查 "审查": approval { by 党组织
      after 提名 approved, 准备
      due 5 workdays roll
      remind 1 workdays before on breach escalate 党组织, overdue
      on rejected return 提名 }
    phase 内 { step 空: filing {} }
    step 无: task // no block
  }
  step 投票: vote { seats 5 quorum present > 4/5 * eligible elect votes > 1/2 * cast due 10 days after 提名 }
  procedure 子 { param q: list<record { n: text, m: list<int> }> step s: call 子 { with q = [1, 2,] } }
  recur every 3 years
  // end of policy
} // after policy
// last
"#;
