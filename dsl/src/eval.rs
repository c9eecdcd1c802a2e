//! Evaluation of IR expressions: pure, exact, and total (every failure is an [`EvalError`]).
//!
//! The engine supplies names, node times and working-day arithmetic through [`Env`]; the compiler
//! uses the same evaluator for constants, defaults and decision tables.

use std::fmt;

use chrono::{Datelike, Months, NaiveDate};
use num_rational::BigRational;
use num_traits::{ToPrimitive, Zero};

use crate::ast::{BinOp, TimeUnit, UnOp};
use crate::ir::{Expr, Func, Pattern, RefKind, Span};
use crate::value::Value;

/// What an expression may look up.
pub trait Env {
    fn lookup(&self, kind: RefKind, id: &str) -> Option<Value>;
    /// When a node started (`end == false`) or ended; `None` while it has not.
    fn node_time(&self, _node: &str, _end: bool) -> Option<NaiveDate> {
        None
    }
    /// A field of the form a node recorded; `None` while it has not.
    fn node_field(&self, _node: &str, _field: &str) -> Option<Value> {
        None
    }
    /// `date + n workdays` (n may be negative) on the policy's calendar.
    fn add_workdays(&self, _date: NaiveDate, _n: i64) -> Result<NaiveDate, EvalError> {
        Err(EvalError::NoCalendar)
    }
}

/// An environment with nothing in it (for constants).
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn lookup(&self, _kind: RefKind, _id: &str) -> Option<Value> {
        None
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    Unbound {
        id: String,
    },
    NodeFieldUnknown {
        node: String,
        field: String,
    },
    NodeTimeUnknown {
        node: String,
    },
    DivisionByZero,
    NoMatch {
        value: String,
    },
    /// The operands do not fit the operator (the type checker rules this out for compiled IR).
    Mismatch {
        what: String,
    },
    /// The date falls outside the supported range.
    DateOutOfRange,
    NoCalendar,
    Calendar {
        message: String,
    },
    /// R0.2: working days counted into a year whose calendar is not published yet. Not a fault
    /// of the policy: the engine waits for the year (待{year}年日历公布).
    YearNotCovered {
        year: i32,
        message: String,
    },
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Unbound { id } => write!(f, "`{id}` has no value"),
            EvalError::NodeTimeUnknown { node } => write!(f, "`{node}` has not happened yet"),
            EvalError::NodeFieldUnknown { node, field } => write!(f, "`{node}` has not recorded `{field}` yet"),
            EvalError::DivisionByZero => f.write_str("division by zero"),
            EvalError::NoMatch { value } => write!(f, "no `match` arm covers `{value}`"),
            EvalError::Mismatch { what } => write!(f, "operands do not fit: {what}"),
            EvalError::DateOutOfRange => f.write_str("the date is out of range"),
            EvalError::NoCalendar => f.write_str("working days need a calendar"),
            EvalError::Calendar { message } | EvalError::YearNotCovered { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for EvalError {}

pub fn eval(expr: &Expr, env: &dyn Env) -> Result<Value, EvalError> {
    match expr {
        Expr::Lit { value } => Ok(value.clone()),
        Expr::Ref { kind, id } => env.lookup(*kind, id).ok_or_else(|| EvalError::Unbound { id: id.clone() }),
        Expr::Field { of, field } => match eval(of, env)? {
            Value::Record(fields) => fields.get(field).cloned().ok_or_else(|| EvalError::Unbound { id: field.clone() }),
            other => Err(mismatch(format!("`.{field}` on `{other}`"))),
        },
        Expr::List { items } => Ok(Value::List(items.iter().map(|e| eval(e, env)).collect::<Result<_, _>>()?)),
        Expr::Call { func, args } => call(*func, args, env),
        Expr::NodeField { node, field } => env
            .node_field(node, field)
            .ok_or_else(|| EvalError::NodeFieldUnknown { node: node.clone(), field: field.clone() }),
        Expr::NodeTime { node, end } => {
            env.node_time(node, *end).map(Value::Date).ok_or_else(|| EvalError::NodeTimeUnknown { node: node.clone() })
        }
        Expr::Unary { op, arg } => {
            let v = eval(arg, env)?;
            match (op, v) {
                (UnOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                (UnOp::Neg, Value::Number(n)) => Ok(Value::Number(-n)),
                (op, v) => Err(mismatch(format!("{op:?} `{v}`"))),
            }
        }
        Expr::Binary { op, lhs, rhs } => binary(*op, lhs, rhs, env),
        Expr::If { cond, then, otherwise } => match eval(cond, env)? {
            Value::Bool(true) => eval(then, env),
            Value::Bool(false) => eval(otherwise, env),
            v => Err(mismatch(format!("`if` on `{v}`"))),
        },
        Expr::Match { scrutinee, arms } => {
            let v = eval(scrutinee, env)?;
            for arm in arms {
                if matches(&arm.pattern, &v) {
                    return eval(&arm.value, env);
                }
            }
            Err(EvalError::NoMatch { value: v.to_string() })
        }
    }
}

/// Whether a value falls under a pattern (range ends included).
pub fn matches(pattern: &Pattern, v: &Value) -> bool {
    match pattern {
        Pattern::Any => true,
        Pattern::Equals { value } => value == v,
        Pattern::Range { low, high } => {
            let above = low.as_ref().is_none_or(|l| compare(l, v).is_some_and(|o| o.is_le()));
            let below = high.as_ref().is_none_or(|h| compare(v, h).is_some_and(|o| o.is_le()));
            above && below
        }
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn mismatch(what: String) -> EvalError {
    EvalError::Mismatch { what }
}

fn number(v: Value) -> Result<BigRational, EvalError> {
    match v {
        Value::Number(n) => Ok(n),
        other => Err(mismatch(format!("`{other}` is not a number"))),
    }
}

fn call(func: Func, args: &[Expr], env: &dyn Env) -> Result<Value, EvalError> {
    let vals = args.iter().map(|a| eval(a, env)).collect::<Result<Vec<_>, _>>()?;
    let mut it = vals.into_iter();
    let mut next = || it.next().ok_or_else(|| mismatch(format!("{func:?} needs more arguments")));
    Ok(match func {
        Func::Ceil => Value::Number(number(next()?)?.ceil()),
        Func::Floor => Value::Number(number(next()?)?.floor()),
        Func::Min | Func::Max => {
            let a = next()?;
            let b = next()?;
            let ord = compare(&a, &b).ok_or_else(|| mismatch(format!("min/max of `{a}` and `{b}`")))?;
            let take_a = if func == Func::Min { ord.is_le() } else { ord.is_ge() };
            if take_a {
                a
            } else {
                b
            }
        }
        Func::Len => match next()? {
            Value::List(items) => Value::int(i64::try_from(items.len()).unwrap_or(i64::MAX)),
            Value::Text(t) => Value::int(i64::try_from(t.chars().count()).unwrap_or(i64::MAX)),
            other => return Err(mismatch(format!("len of `{other}`"))),
        },
    })
}

fn binary(op: BinOp, lhs: &Expr, rhs: &Expr, env: &dyn Env) -> Result<Value, EvalError> {
    // `and` / `or` short-circuit: `a > 0 and b / a > 1` never divides by zero.
    if matches!(op, BinOp::And | BinOp::Or) {
        let l = eval(lhs, env)?.as_bool().ok_or_else(|| mismatch(format!("{} on a non-boolean", op.symbol())))?;
        if (op == BinOp::And && !l) || (op == BinOp::Or && l) {
            return Ok(Value::Bool(l));
        }
        let r = eval(rhs, env)?.as_bool().ok_or_else(|| mismatch(format!("{} on a non-boolean", op.symbol())))?;
        return Ok(Value::Bool(r));
    }
    let l = eval(lhs, env)?;
    let r = eval(rhs, env)?;
    match op {
        BinOp::Eq => Ok(Value::Bool(l == r)),
        BinOp::Ne => Ok(Value::Bool(l != r)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = compare(&l, &r).ok_or_else(|| mismatch(format!("`{l}` {} `{r}`", op.symbol())))?;
            Ok(Value::Bool(match op {
                BinOp::Lt => ord.is_lt(),
                BinOp::Le => ord.is_le(),
                BinOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            }))
        }
        BinOp::Add | BinOp::Sub => match (l, r) {
            (Value::Number(a), Value::Number(b)) => Ok(Value::Number(if op == BinOp::Add { a + b } else { a - b })),
            (Value::Date(d), Value::Duration(s)) => {
                let sign = if op == BinOp::Add { 1 } else { -1 };
                add_span(d, s, sign, env).map(Value::Date)
            }
            (Value::Duration(s), Value::Date(d)) if op == BinOp::Add => add_span(d, s, 1, env).map(Value::Date),
            (l, r) => Err(mismatch(format!("`{l}` {} `{r}`", op.symbol()))),
        },
        BinOp::Mul => Ok(Value::Number(number(l)? * number(r)?)),
        BinOp::Div => {
            let d = number(r)?;
            if d.is_zero() {
                return Err(EvalError::DivisionByZero);
            }
            Ok(Value::Number(number(l)? / d))
        }
        BinOp::And | BinOp::Or => Err(mismatch("unreachable".into())),
    }
}

/// `date ± span`. Months and years keep the day of month, clamped to the month's end.
pub fn add_span(date: NaiveDate, span: Span, sign: i64, env: &dyn Env) -> Result<NaiveDate, EvalError> {
    let n = i64::from(span.amount) * sign;
    match span.unit {
        TimeUnit::Days => date.checked_add_signed(chrono::Duration::days(n)).ok_or(EvalError::DateOutOfRange),
        TimeUnit::Workdays => env.add_workdays(date, n),
        TimeUnit::Months | TimeUnit::Years => {
            let months = if span.unit == TimeUnit::Years { n * 12 } else { n };
            let m = Months::new(u32::try_from(months.unsigned_abs()).map_err(|_| EvalError::DateOutOfRange)?);
            if months >= 0 { date.checked_add_months(m) } else { date.checked_sub_months(m) }
                .ok_or(EvalError::DateOutOfRange)
        }
    }
}

/// Days since 1970-01-01, for the schedule solver.
pub fn day_number(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce()) - 719_163
}

/// A rational as an `i64` if it is whole and fits.
pub fn to_i64(r: &BigRational) -> Option<i64> {
    if r.is_integer() {
        r.to_integer().to_i64()
    } else {
        None
    }
}

/// Parameters and derived values of one instance.
struct ValuesEnv<'a> {
    params: &'a std::collections::BTreeMap<String, Value>,
    values: &'a std::collections::BTreeMap<String, Value>,
}

impl Env for ValuesEnv<'_> {
    fn lookup(&self, kind: RefKind, id: &str) -> Option<Value> {
        match kind {
            RefKind::Param => self.params.get(id).cloned(),
            RefKind::Value => self.values.get(id).cloned(),
            _ => None,
        }
    }
}

/// Evaluates every constant and derived value of a policy (in declaration order) for the given
/// parameters; a parameter not given takes its default. This is how an instance's sizes
/// (R2.4–R2.7) are computed when it starts.
pub fn derived_values(
    policy: &crate::ir::Policy,
    given: &std::collections::BTreeMap<String, Value>,
) -> Result<std::collections::BTreeMap<String, Value>, EvalError> {
    let mut params = std::collections::BTreeMap::new();
    for p in &policy.params {
        match given.get(&p.id).or(p.default.as_ref()) {
            Some(v) => {
                params.insert(p.id.clone(), v.clone());
            }
            None => return Err(EvalError::Unbound { id: p.id.clone() }),
        }
    }
    let mut values = std::collections::BTreeMap::new();
    for d in &policy.values {
        let v = eval(&d.expr, &ValuesEnv { params: &params, values: &values })?;
        values.insert(d.id.clone(), v);
    }
    Ok(values)
}
