//! Choice rules: comparison operators, And / Or / Not, and their evaluation.

use crate::error::{Failure, ValidationIssue};
use crate::path::Path;
use crate::template::Template;
use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeTest {
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

#[derive(Debug, Clone)]
pub enum Operand {
    Value(Value),
    Path(Path),
}

#[derive(Debug, Clone)]
pub enum ChoiceRule {
    And(Vec<ChoiceRule>),
    Or(Vec<ChoiceRule>),
    Not(Box<ChoiceRule>),
    Compare {
        variable: Path,
        kind: Kind,
        cmp: Cmp,
        operand: Operand,
    },
    Matches {
        variable: Path,
        pattern: String,
    },
    Test {
        variable: Path,
        test: TypeTest,
        expected: bool,
    },
}

/// A top-level rule with its target state.
#[derive(Debug, Clone)]
pub struct ChoiceBranch {
    pub rule: ChoiceRule,
    pub next: String,
    pub assign: Option<Template>,
}

const KINDS: [(&str, Kind); 4] = [
    ("String", Kind::String),
    ("Numeric", Kind::Numeric),
    ("Boolean", Kind::Boolean),
    ("Timestamp", Kind::Timestamp),
];
const CMPS: [(&str, Cmp); 5] = [
    ("Equals", Cmp::Equals),
    ("LessThanEquals", Cmp::LessThanEquals),
    ("GreaterThanEquals", Cmp::GreaterThanEquals),
    ("LessThan", Cmp::LessThan),
    ("GreaterThan", Cmp::GreaterThan),
];
const TESTS: [(&str, TypeTest); 6] = [
    ("IsNull", TypeTest::IsNull),
    ("IsPresent", TypeTest::IsPresent),
    ("IsNumeric", TypeTest::IsNumeric),
    ("IsString", TypeTest::IsString),
    ("IsBoolean", TypeTest::IsBoolean),
    ("IsTimestamp", TypeTest::IsTimestamp),
];

/// Parses an RFC 3339 timestamp (Step Functions requires an uppercase T and a zone).
pub fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    if !s.contains('T') {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

fn issue(loc: &str, msg: impl Into<String>) -> Vec<ValidationIssue> {
    vec![ValidationIssue {
        location: loc.to_string(),
        message: msg.into(),
    }]
}

/// Parses a top-level choice rule (which must have `Next`).
pub fn parse_branch(v: &Value, loc: &str) -> Result<ChoiceBranch, Vec<ValidationIssue>> {
    let Value::Object(m) = v else {
        return Err(issue(loc, "a choice rule must be an object"));
    };
    let next = match m.get("Next") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(issue(
                &format!("{loc}.Next"),
                "is required and must be a string",
            ))
        }
    };
    let rule = parse_rule(m, loc, true)?;
    Ok(ChoiceBranch {
        rule,
        next,
        assign: None,
    })
}

fn parse_rule(
    m: &Map<String, Value>,
    loc: &str,
    top: bool,
) -> Result<ChoiceRule, Vec<ValidationIssue>> {
    let mut ops: Vec<&String> = Vec::new();
    for k in m.keys() {
        match k.as_str() {
            "Variable" | "Comment" => {}
            "Next" | "Assign" if top => {}
            "Next" | "Assign" => {
                return Err(issue(
                    &format!("{loc}.{k}"),
                    "only allowed on a top-level choice rule",
                ))
            }
            _ => ops.push(k),
        }
    }
    if ops.len() != 1 {
        return Err(issue(
            loc,
            format!(
                "a choice rule needs exactly one comparison operator or And/Or/Not (found {})",
                ops.len()
            ),
        ));
    }
    let op = ops[0].as_str();
    let val = &m[op];
    let oploc = format!("{loc}.{op}");
    let nested = |v: &Value, l: &str| -> Result<ChoiceRule, Vec<ValidationIssue>> {
        match v {
            Value::Object(inner) => parse_rule(inner, l, false),
            _ => Err(issue(l, "must be a choice rule object")),
        }
    };
    match op {
        "And" | "Or" => {
            if m.contains_key("Variable") {
                return Err(issue(&format!("{loc}.Variable"), "not allowed with And/Or"));
            }
            let Value::Array(items) = val else {
                return Err(issue(&oploc, "must be a non-empty array of choice rules"));
            };
            if items.is_empty() {
                return Err(issue(&oploc, "must be a non-empty array of choice rules"));
            }
            let mut rules = Vec::new();
            let mut errs = Vec::new();
            for (i, r) in items.iter().enumerate() {
                match nested(r, &format!("{oploc}[{i}]")) {
                    Ok(r) => rules.push(r),
                    Err(e) => errs.extend(e),
                }
            }
            if !errs.is_empty() {
                return Err(errs);
            }
            Ok(if op == "And" {
                ChoiceRule::And(rules)
            } else {
                ChoiceRule::Or(rules)
            })
        }
        "Not" => {
            if m.contains_key("Variable") {
                return Err(issue(&format!("{loc}.Variable"), "not allowed with Not"));
            }
            Ok(ChoiceRule::Not(Box::new(nested(val, &oploc)?)))
        }
        _ => {
            let variable = match m.get("Variable") {
                // The developer guide: Variable and *Path values must be Reference Paths.
                Some(Value::String(s)) => Path::parse_reference(s).map_err(|e| {
                    issue(
                        &format!("{loc}.Variable"),
                        format!("invalid path {s:?}: {e}"),
                    )
                })?,
                Some(_) => return Err(issue(&format!("{loc}.Variable"), "must be a string")),
                None => {
                    return Err(issue(
                        &format!("{loc}.Variable"),
                        format!("is required with {op}"),
                    ))
                }
            };
            if let Some((_, test)) = TESTS.iter().find(|(n, _)| *n == op) {
                let Value::Bool(expected) = val else {
                    return Err(issue(&oploc, "must be true or false"));
                };
                return Ok(ChoiceRule::Test {
                    variable,
                    test: *test,
                    expected: *expected,
                });
            }
            if op == "StringMatches" {
                let Value::String(pattern) = val else {
                    return Err(issue(&oploc, "must be a string pattern"));
                };
                return Ok(ChoiceRule::Matches {
                    variable,
                    pattern: pattern.clone(),
                });
            }
            let (base, is_path) = match op.strip_suffix("Path") {
                Some(b) => (b, true),
                None => (op, false),
            };
            let Some((kind, cmp)) = KINDS.iter().find_map(|(kn, k)| {
                let rest = base.strip_prefix(kn)?;
                CMPS.iter()
                    .find(|(cn, _)| *cn == rest)
                    .map(|(_, c)| (*k, *c))
            }) else {
                return Err(issue(&oploc, format!("unknown comparison operator {op:?}")));
            };
            if kind == Kind::Boolean && cmp != Cmp::Equals {
                return Err(issue(&oploc, format!("unknown comparison operator {op:?}")));
            }
            let operand = if is_path {
                let Value::String(s) = val else {
                    return Err(issue(&oploc, "must be a path string"));
                };
                Operand::Path(
                    Path::parse_reference(s)
                        .map_err(|e| issue(&oploc, format!("invalid path {s:?}: {e}")))?,
                )
            } else {
                let ok = match kind {
                    Kind::String => val.is_string(),
                    Kind::Numeric => val.is_number(),
                    Kind::Boolean => val.is_boolean(),
                    Kind::Timestamp => val.as_str().and_then(parse_timestamp).is_some(),
                };
                if !ok {
                    let what = match kind {
                        Kind::String => "a string",
                        Kind::Numeric => "a number",
                        Kind::Boolean => "a boolean",
                        Kind::Timestamp => "an RFC 3339 timestamp string",
                    };
                    return Err(issue(&oploc, format!("must be {what}")));
                }
                Operand::Value(val.clone())
            };
            Ok(ChoiceRule::Compare {
                variable,
                kind,
                cmp,
                operand,
            })
        }
    }
}

/// `*` matches any run of characters; `\*` and `\\` are literal.
pub fn string_matches(text: &str, pattern: &str) -> bool {
    enum Tok {
        Lit(char),
        Star,
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                if let Some(n) = it.next() {
                    toks.push(Tok::Lit(n));
                }
            }
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Lit(c)),
        }
    }
    let t: Vec<char> = text.chars().collect();
    // Classic wildcard matching with backtracking on the last star.
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match toks.get(pi) {
            Some(Tok::Lit(c)) if *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            Some(Tok::Star) => {
                star = Some((pi, ti));
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    while let Some(Tok::Star) = toks.get(pi) {
        pi += 1;
    }
    pi == toks.len()
}

impl ChoiceRule {
    /// Evaluates the rule; `resolve` yields `None` for a missing path.
    pub fn eval(&self, resolve: &dyn Fn(&Path) -> Option<Value>) -> Result<bool, Failure> {
        let lookup = |p: &Path| {
            resolve(p).ok_or_else(|| {
                Failure::runtime(format!(
                    "Invalid path '{p}': The choice state's condition path references an invalid value."
                ))
            })
        };
        Ok(match self {
            ChoiceRule::And(rules) => {
                for r in rules {
                    if !r.eval(resolve)? {
                        return Ok(false);
                    }
                }
                true
            }
            ChoiceRule::Or(rules) => {
                for r in rules {
                    if r.eval(resolve)? {
                        return Ok(true);
                    }
                }
                false
            }
            ChoiceRule::Not(r) => !r.eval(resolve)?,
            ChoiceRule::Test {
                variable,
                test,
                expected,
            } => {
                let v = resolve(variable);
                let actual = match (test, &v) {
                    (TypeTest::IsPresent, v) => v.is_some(),
                    (_, None) => {
                        lookup(variable)?;
                        false
                    }
                    (TypeTest::IsNull, Some(v)) => v.is_null(),
                    (TypeTest::IsNumeric, Some(v)) => v.is_number(),
                    (TypeTest::IsString, Some(v)) => v.is_string(),
                    (TypeTest::IsBoolean, Some(v)) => v.is_boolean(),
                    (TypeTest::IsTimestamp, Some(v)) => {
                        v.as_str().and_then(parse_timestamp).is_some()
                    }
                };
                actual == *expected
            }
            ChoiceRule::Matches { variable, pattern } => match lookup(variable)? {
                Value::String(s) => string_matches(&s, pattern),
                _ => false,
            },
            ChoiceRule::Compare {
                variable,
                kind,
                cmp,
                operand,
            } => {
                let left = lookup(variable)?;
                let right = match operand {
                    Operand::Value(v) => v.clone(),
                    Operand::Path(p) => lookup(p)?,
                };
                let ord = match kind {
                    Kind::String => match (left.as_str(), right.as_str()) {
                        (Some(a), Some(b)) => a.cmp(b),
                        _ => return Ok(false),
                    },
                    Kind::Numeric => match (left.as_f64(), right.as_f64()) {
                        (Some(a), Some(b)) if left.is_number() && right.is_number() => {
                            match a.partial_cmp(&b) {
                                Some(o) => o,
                                None => return Ok(false),
                            }
                        }
                        _ => return Ok(false),
                    },
                    Kind::Boolean => match (left.as_bool(), right.as_bool()) {
                        (Some(a), Some(b)) => a.cmp(&b),
                        _ => return Ok(false),
                    },
                    Kind::Timestamp => match (
                        left.as_str().and_then(parse_timestamp),
                        right.as_str().and_then(parse_timestamp),
                    ) {
                        (Some(a), Some(b)) => a.cmp(&b),
                        _ => return Ok(false),
                    },
                };
                use std::cmp::Ordering::*;
                match cmp {
                    Cmp::Equals => ord == Equal,
                    Cmp::LessThan => ord == Less,
                    Cmp::GreaterThan => ord == Greater,
                    Cmp::LessThanEquals => ord != Greater,
                    Cmp::GreaterThanEquals => ord != Less,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("abc", "*"));
        assert!(string_matches("", "*"));
        assert!(!string_matches("abc", "ab"));
        assert!(string_matches("a*c", r"a\*c"));
        assert!(!string_matches("abc", r"a\*c"));
        assert!(string_matches(r"a\b", r"a\\b"));
        assert!(string_matches("aXbXc", "*b*c"));
    }
}
