//! Assertions on report paths — the CI contract: `resilience.detection_s.max <= 10`.
//!
//! A path is dotted keys into the JSON report (a number segment indexes an array:
//! `resilience.faults.0.failed_during`). Operators: `<`, `<=`, `>`, `>=`, `==`, `!=`.
//! The right-hand side is a number (or `true` / `false`). An assertion fails when the
//! comparison is false, when the value is `null` (e.g. a fault that was never detected
//! has no detection time), and when the path does not exist (the message lists the keys
//! that do). Written in a scenario as `[[assert]] expr = "…"` or
//! `{ path = "…", op = "<=", value = 10 }`, or on the command line as `--assert '…'`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// The right-hand side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rhs {
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
}

impl std::fmt::Display for Rhs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rhs::Num(n) => write!(f, "{n}"),
            Rhs::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One assertion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assertion {
    /// Dotted path into the report.
    pub path: String,
    /// Operator.
    pub op: Op,
    /// Right-hand side.
    pub value: Rhs,
}

/// `[[assert]]` as written: `expr`, or `path` + `op` + `value`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertSpec {
    /// `resilience.detection_s.max <= 10`
    #[serde(default)]
    pub expr: Option<String>,
    /// Dotted path.
    #[serde(default)]
    pub path: Option<String>,
    /// Operator.
    #[serde(default)]
    pub op: Option<Op>,
    /// Right-hand side.
    #[serde(default)]
    pub value: Option<Rhs>,
}

impl AssertSpec {
    /// The assertion, or what is wrong with it.
    pub fn resolve(&self) -> Result<Assertion, String> {
        match (&self.expr, &self.path, self.op, &self.value) {
            (Some(e), None, None, None) => e.parse(),
            (None, Some(p), Some(op), Some(v)) => Ok(Assertion {
                path: check_path(p)?,
                op,
                value: v.clone(),
            }),
            _ => Err(
                "write either expr = \"PATH OP VALUE\" or path, op and value (e.g. path = \"resilience.detection_s.max\", op = \"<=\", value = 10)"
                    .into(),
            ),
        }
    }
}

fn check_path(p: &str) -> Result<String, String> {
    let p = p.trim();
    if p.is_empty() || p.split('.').any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
        return Err(format!(
            "{p:?} is not a dotted report path (e.g. resilience.detection_s.max)"
        ));
    }
    Ok(p.to_string())
}

impl std::str::FromStr for Assertion {
    type Err = String;
    fn from_str(s: &str) -> Result<Assertion, String> {
        const OPS: [(&str, Op); 6] = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let bad =
            || format!("{s:?}: expected PATH OP VALUE, e.g. 'resilience.detection_s.max <= 10' (OP: < <= > >= == !=)");
        let (at, tok, op) = OPS
            .iter()
            .filter_map(|(t, o)| s.find(t).map(|i| (i, *t, *o)))
            .min_by_key(|(i, t, _)| (*i, std::cmp::Reverse(t.len())))
            .ok_or_else(bad)?;
        let path = check_path(&s[..at]).map_err(|m| format!("{s:?}: {m}"))?;
        let rhs = s[at + tok.len()..].trim();
        let value = match rhs {
            "true" => Rhs::Bool(true),
            "false" => Rhs::Bool(false),
            r => Rhs::Num(
                r.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("{s:?}: {r:?} is not a number"))?,
            ),
        };
        Ok(Assertion { path, op, value })
    }
}

impl std::fmt::Display for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.path, self.op.as_str(), self.value)
    }
}

/// The result of checking one assertion against one report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// The assertion, as text.
    pub assertion: String,
    /// Whether it held.
    pub passed: bool,
    /// The value found (`null` when absent).
    pub actual: Value,
    /// Why it failed (empty when it passed).
    pub message: String,
}

/// Looks `path` up in `report`.
pub fn lookup<'a>(report: &'a Value, path: &str) -> Result<&'a Value, String> {
    let mut v = report;
    let mut walked = Vec::new();
    for seg in path.split('.') {
        let next = match v {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => {
                let here = if walked.is_empty() {
                    "the report".to_string()
                } else {
                    format!("`{}`", walked.join("."))
                };
                let has = match v {
                    Value::Object(m) => format!("it has: {}", m.keys().cloned().collect::<Vec<_>>().join(", ")),
                    Value::Array(a) => format!("it is a list of {} (index it with a number)", a.len()),
                    other => format!("it is a value ({other})"),
                };
                return Err(format!("no `{seg}` in {here}; {has}"));
            }
        }
        walked.push(seg);
    }
    Ok(v)
}

impl Assertion {
    /// Checks the assertion against a JSON report.
    pub fn check(&self, report: &Value) -> Check {
        let text = self.to_string();
        let v = match lookup(report, &self.path) {
            Ok(v) => v,
            Err(m) => {
                return Check {
                    assertion: text,
                    passed: false,
                    actual: Value::Null,
                    message: m,
                }
            }
        };
        let held = match (&self.value, v) {
            (Rhs::Num(r), Value::Number(n)) => n.as_f64().map(|x| match self.op {
                Op::Lt => x < *r,
                Op::Le => x <= *r,
                Op::Gt => x > *r,
                Op::Ge => x >= *r,
                Op::Eq => x == *r,
                Op::Ne => x != *r,
            }),
            (Rhs::Bool(r), Value::Bool(b)) => match self.op {
                Op::Eq => Some(b == r),
                Op::Ne => Some(b != r),
                _ => None,
            },
            _ => None,
        };
        let message = match held {
            Some(true) => String::new(),
            Some(false) => format!("got {v}"),
            None if v.is_null() => "got null (not measured: e.g. never detected, never failed back)".into(),
            None => format!(
                "got {v}, which cannot be compared with {} {}",
                self.op.as_str(),
                self.value
            ),
        };
        Check {
            assertion: text,
            passed: held == Some(true),
            actual: v.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_expressions() {
        let a: Assertion = "resilience.detection_s.max <= 10".parse().unwrap();
        assert_eq!(
            (a.path.as_str(), a.op, a.value.clone()),
            ("resilience.detection_s.max", Op::Le, Rhs::Num(10.0))
        );
        let a: Assertion = "budget.consumed_pct.p95<2.5".parse().unwrap();
        assert_eq!((a.op, a.value), (Op::Lt, Rhs::Num(2.5)));
        let a: Assertion = "x.ok == true".parse().unwrap();
        assert_eq!(a.value, Rhs::Bool(true));
        assert!("resilience.detection_s.max".parse::<Assertion>().is_err());
        assert!("a b <= 1"
            .parse::<Assertion>()
            .unwrap_err()
            .contains("not a dotted report path"));
        assert!("a <= ten".parse::<Assertion>().unwrap_err().contains("not a number"));
        assert!("<= 3".parse::<Assertion>().is_err());
    }

    #[test]
    fn checks_values_nulls_and_missing_paths() {
        let r = json!({"resilience": {"detection_s": {"max": 12.5, "min": null}, "faults": [{"failed_during": 7}]}});
        let c = |s: &str| s.parse::<Assertion>().unwrap().check(&r);
        assert!(c("resilience.detection_s.max <= 12.5").passed);
        let f = c("resilience.detection_s.max < 10");
        assert!(!f.passed && f.message == "got 12.5", "{f:?}");
        assert!(c("resilience.faults.0.failed_during == 7").passed);
        let n = c("resilience.detection_s.min <= 10");
        assert!(!n.passed && n.message.contains("null"), "{n:?}");
        let m = c("resilience.detection.max <= 10");
        assert!(!m.passed && m.message.contains("it has: detection_s, faults"), "{m:?}");
        assert!(!c("resilience.faults.3.failed_during <= 1").passed);
    }

    #[test]
    fn spec_forms() {
        let s: AssertSpec = toml::from_str("path = \"a.b\"\nop = \">=\"\nvalue = 3").unwrap();
        assert_eq!(s.resolve().unwrap().to_string(), "a.b >= 3");
        let s: AssertSpec = toml::from_str("expr = \"a.b < 1\"\npath = \"a\"").unwrap();
        assert!(s.resolve().is_err());
        assert!(toml::from_str::<AssertSpec>("op = \"=~\"").is_err());
    }
}
