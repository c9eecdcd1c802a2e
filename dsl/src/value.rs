//! Runtime values of policy expressions. Numbers are exact fractions (`BigRational`): `4/5` of
//! 101 is 404/5, never 80.8000001.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};
use serde::{Deserialize, Serialize};

use crate::ir::Span;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// An `int` or `decimal`, written as `"13/10"` or `"5"` in JSON.
    Number(#[serde(with = "rational_text")] BigRational),
    Text(String),
    Bool(bool),
    Date(NaiveDate),
    Duration(Span),
    List(Vec<Value>),
    Record(BTreeMap<String, Value>),
}

impl Value {
    pub fn int(n: i64) -> Value {
        Value::Number(BigRational::from_integer(BigInt::from(n)))
    }
    pub fn as_number(&self) -> Option<&BigRational> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The integer value, if this is a whole number that fits.
    pub fn as_i64(&self) -> Option<i64> {
        let n = self.as_number()?;
        if !n.is_integer() {
            return None;
        }
        i64::try_from(n.to_integer()).ok()
    }
}

/// Parses `"13/10"`, `"5"`, `"-2"`, `"1.25"`.
pub fn parse_rational(s: &str) -> Option<BigRational> {
    let s = s.trim();
    if let Some((n, d)) = s.split_once('/') {
        let n: BigInt = n.trim().parse().ok()?;
        let d: BigInt = d.trim().parse().ok()?;
        if d.is_zero() {
            return None;
        }
        return Some(BigRational::new(n, d));
    }
    if let Some((whole, frac)) = s.split_once('.') {
        let negative = whole.starts_with('-');
        let digits = format!("{}{}", whole.trim_start_matches('-'), frac);
        let n: BigInt = digits.parse().ok()?;
        let mut d = BigInt::one();
        for _ in 0..frac.len() {
            d *= 10;
        }
        let r = BigRational::new(n, d);
        return Some(if negative { -r } else { r });
    }
    Some(BigRational::from_integer(s.parse().ok()?))
}

pub fn format_rational(r: &BigRational) -> String {
    if r.is_integer() {
        r.to_integer().to_string()
    } else {
        format!("{}/{}", r.numer(), r.denom())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => f.write_str(&format_rational(n)),
            Value::Text(t) => f.write_str(t),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "{d}"),
            Value::Duration(s) => write!(f, "{s}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Record(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

mod rational_text {
    use num_rational::BigRational;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &BigRational, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rational(r))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BigRational, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rational(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a number")))
    }
}

/// Reads a value of the given type from plain JSON, as the HTTP API receives it: numbers as JSON
/// numbers or exact strings (`"13/10"`), dates as `"YYYY-MM-DD"`.
pub fn from_json(ty: &crate::ir::Type, j: &serde_json::Value) -> Result<Value, String> {
    use crate::ir::Type;
    use serde_json::Value as J;
    match (ty, j) {
        (Type::Int | Type::Decimal, J::Number(n)) => {
            let r = parse_rational(&n.to_string()).ok_or_else(|| format!("`{n}` is not a number"))?;
            if *ty == Type::Int && !r.is_integer() {
                return Err(format!("`{n}` is not a whole number"));
            }
            Ok(Value::Number(r))
        }
        (Type::Int | Type::Decimal, J::String(s)) => {
            let r = parse_rational(s).ok_or_else(|| format!("`{s}` is not a number"))?;
            if *ty == Type::Int && !r.is_integer() {
                return Err(format!("`{s}` is not a whole number"));
            }
            Ok(Value::Number(r))
        }
        (Type::Text, J::String(s)) => Ok(Value::Text(s.clone())),
        (Type::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
        (Type::Date, J::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Value::Date)
            .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)")),
        (Type::List { of }, J::Array(items)) => {
            items.iter().map(|i| from_json(of, i)).collect::<Result<Vec<_>, _>>().map(Value::List)
        }
        (Type::Record { fields }, J::Object(map)) => {
            let mut out = BTreeMap::new();
            for (name, fty) in fields {
                let v = map.get(name).ok_or_else(|| format!("missing field `{name}`"))?;
                out.insert(name.clone(), from_json(fty, v).map_err(|e| format!("{name}: {e}"))?);
            }
            if let Some(extra) = map.keys().find(|k| !fields.iter().any(|(n, _)| n == *k)) {
                return Err(format!("unknown field `{extra}`"));
            }
            Ok(Value::Record(out))
        }
        (ty, j) => Err(format!("expected {ty}, got `{j}`")),
    }
}

/// Plain JSON for a value: whole numbers as JSON numbers when they fit, other fractions as
/// exact strings (`"13/10"`), dates as `"YYYY-MM-DD"`.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Number(n) => {
            if n.is_integer() {
                if let Ok(i) = i64::try_from(n.to_integer()) {
                    return J::from(i);
                }
            }
            J::String(format_rational(n))
        }
        Value::Text(t) => J::String(t.clone()),
        Value::Bool(b) => J::Bool(*b),
        Value::Date(d) => J::String(d.to_string()),
        Value::Duration(s) => J::String(s.to_string()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Record(fields) => J::Object(fields.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}
