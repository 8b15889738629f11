//! Payload templates: Parameters, ResultSelector, ItemSelector and Assign,
//! where keys ending in `.$` take their value from a path or an intrinsic call.

use crate::error::Failure;
use crate::intrinsics::{looks_like_call, Call};
use crate::path::Path;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Literal(Value),
    /// `key.$: "$.path"`; the original key (with `.$`) is kept for messages.
    Path(Path, String),
    Call(Call),
}

impl Template {
    /// Compiles a template; errors are `(location suffix, message)`.
    pub fn compile(v: &Value) -> Result<Template, (String, String)> {
        Ok(match v {
            Value::Object(m) => {
                let mut fields = Vec::with_capacity(m.len());
                for (k, v) in m {
                    if let Some(name) = k.strip_suffix(".$") {
                        let Value::String(expr) = v else {
                            return Err((
                                k.clone(),
                                "the value of a field ending in '.$' must be a path or an intrinsic function string".into(),
                            ));
                        };
                        let t = if looks_like_call(expr) {
                            Template::Call(Call::parse(expr).map_err(|e| (k.clone(), e))?)
                        } else {
                            Template::Path(
                                Path::parse(expr)
                                    .map_err(|e| (k.clone(), format!("{expr:?}: {e}")))?,
                                k.clone(),
                            )
                        };
                        fields.push((name.to_string(), t));
                    } else {
                        let t =
                            Template::compile(v).map_err(|(loc, m)| (format!("{k}.{loc}"), m))?;
                        fields.push((k.clone(), t));
                    }
                }
                // The spec: no duplicate field names once ".$" suffixes are stripped.
                for (i, (k, _)) in fields.iter().enumerate() {
                    if fields[..i].iter().any(|(other, _)| other == k) {
                        return Err((
                            k.clone(),
                            format!("the field {k:?} appears twice once '.$' suffixes are removed"),
                        ));
                    }
                }
                Template::Object(fields)
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(
                        Template::compile(item).map_err(|(loc, m)| (format!("[{i}].{loc}"), m))?,
                    );
                }
                Template::Array(out)
            }
            other => Template::Literal(other.clone()),
        })
    }

    /// Builds the payload; `resolve` yields `None` for a missing path.
    pub fn eval(&self, resolve: &dyn Fn(&Path) -> Option<Value>) -> Result<Value, Failure> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(resolve))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    m.insert(k.clone(), t.eval(resolve)?);
                }
                Value::Object(m)
            }
            Template::Path(p, key) => resolve(p).ok_or_else(|| {
                Failure::runtime(format!(
                    "The JSONPath '{p}' specified for the field '{key}' could not be found in the input"
                ))
            })?,
            Template::Call(c) => c.eval(&|p: &Path| {
                resolve(p).ok_or_else(|| {
                    Failure::runtime(format!(
                        "The JSONPath '{p}' used as an intrinsic function argument could not be found in the input"
                    ))
                })
            })?,
        })
    }

    /// Every path the template reads, for validation.
    pub fn paths(&self, out: &mut Vec<Path>) {
        match self {
            Template::Object(f) => f.iter().for_each(|(_, t)| t.paths(out)),
            Template::Array(a) => a.iter().for_each(|t| t.paths(out)),
            Template::Path(p, _) => out.push(p.clone()),
            Template::Call(_) | Template::Literal(_) => {}
        }
    }
}
