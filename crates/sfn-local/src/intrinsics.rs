//! Intrinsic functions of the JSONPath dialect (`States.Format(...)` and friends).

use crate::error::Failure;
use crate::path::Path;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// One argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A quoted string: `raw` is the text between the quotes, escapes intact
    /// (States.Format needs to tell `\{` from `{`).
    Str {
        raw: String,
    },
    Literal(Value),
    Path(Path),
    Call(Call),
}

/// A parsed call such as `States.Array($.a, 'b', 3)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Arg>,
}

/// (name, minimum arguments, maximum arguments)
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("States.Format", 1, usize::MAX),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, usize::MAX),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.Hash", 2, 2),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
];

/// True if a `.$` value is an intrinsic call rather than a path.
pub fn looks_like_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Call {
    pub fn parse(text: &str) -> Result<Call, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let call = p.call()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected text after the call at offset {}", p.i));
        }
        Ok(call)
    }

    /// Evaluates the call; `resolve` looks paths up (and fails with States.Runtime
    /// when a path is missing).
    pub fn eval(
        &self,
        resolve: &dyn Fn(&Path) -> Result<Value, Failure>,
    ) -> Result<Value, Failure> {
        let mut vals = Vec::with_capacity(self.args.len());
        for a in &self.args {
            vals.push(match a {
                Arg::Str { raw } => Value::String(unescape(raw)),
                Arg::Literal(v) => v.clone(),
                Arg::Path(p) => resolve(p)?,
                Arg::Call(c) => c.eval(resolve)?,
            });
        }
        let f = self.name.as_str();
        let fail = |msg: String| Failure::intrinsic(format!("Invalid arguments in {f}: {msg}"));
        match f {
            "States.Format" => {
                let template = match &self.args[0] {
                    Arg::Str { raw } => raw.clone(),
                    _ => match &vals[0] {
                        Value::String(s) => s.clone(),
                        _ => return Err(fail("the template must be a string".into())),
                    },
                };
                format(&template, &vals[1..])
                    .map(Value::String)
                    .map_err(fail)
            }
            "States.StringToJson" => {
                let s = as_str(&vals[0]).map_err(fail)?;
                serde_json::from_str(s).map_err(|e| fail(format!("not JSON: {e}")))
            }
            "States.JsonToString" => Ok(Value::String(vals[0].to_string())),
            "States.Array" => Ok(Value::Array(vals)),
            "States.ArrayPartition" => {
                let arr = as_array(&vals[0]).map_err(fail)?;
                let size = as_int(&vals[1]).map_err(fail)?;
                if size <= 0 {
                    return Err(fail("the chunk size must be greater than 0".into()));
                }
                Ok(Value::Array(
                    arr.chunks(size as usize)
                        .map(|c| Value::Array(c.to_vec()))
                        .collect(),
                ))
            }
            "States.ArrayContains" => {
                let arr = as_array(&vals[0]).map_err(fail)?;
                Ok(Value::Bool(arr.iter().any(|x| json_eq(x, &vals[1]))))
            }
            "States.ArrayRange" => {
                let first = as_int(&vals[0]).map_err(fail)?;
                let last = as_int(&vals[1]).map_err(fail)?;
                let step = as_int(&vals[2]).map_err(fail)?;
                if step == 0 {
                    return Err(fail("the step must not be 0".into()));
                }
                let mut out = Vec::new();
                let mut k = first;
                while (step > 0 && k <= last) || (step < 0 && k >= last) {
                    out.push(Value::from(k));
                    if out.len() > 1000 {
                        return Err(fail("the range has more than 1000 items".into()));
                    }
                    k += step;
                }
                Ok(Value::Array(out))
            }
            "States.ArrayGetItem" => {
                let arr = as_array(&vals[0]).map_err(fail)?;
                let idx = as_int(&vals[1]).map_err(fail)?;
                if idx < 0 || idx as usize >= arr.len() {
                    return Err(fail(format!("index {idx} is out of bounds")));
                }
                Ok(arr[idx as usize].clone())
            }
            "States.ArrayLength" => Ok(Value::from(as_array(&vals[0]).map_err(fail)?.len())),
            "States.ArrayUnique" => {
                let arr = as_array(&vals[0]).map_err(fail)?;
                let mut out: Vec<Value> = Vec::new();
                for x in arr {
                    if !out.iter().any(|y| json_eq(x, y)) {
                        out.push(x.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            "States.Base64Encode" => {
                let s = as_str(&vals[0]).map_err(fail)?;
                if s.chars().count() > 10_000 {
                    return Err(fail("the input is longer than 10000 characters".into()));
                }
                Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
                ))
            }
            "States.Base64Decode" => {
                let s = as_str(&vals[0]).map_err(fail)?;
                if s.chars().count() > 10_000 {
                    return Err(fail("the input is longer than 10000 characters".into()));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_err(|e| fail(format!("not base64: {e}")))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| fail("the decoded data is not UTF-8".into()))
            }
            "States.Hash" => {
                // AWS (as LocalStack's snapshots show) wants a string here.
                let data = as_str(&vals[0]).map_err(fail)?.to_string();
                if data.chars().count() > 10_000 {
                    return Err(fail("the input is longer than 10000 characters".into()));
                }
                let alg = as_str(&vals[1]).map_err(fail)?;
                hash(alg, data.as_bytes()).map(Value::String).map_err(fail)
            }
            "States.JsonMerge" => {
                let (Value::Object(a), Value::Object(b)) = (&vals[0], &vals[1]) else {
                    return Err(fail("both inputs must be JSON objects".into()));
                };
                match &vals[2] {
                    Value::Bool(false) => {}
                    Value::Bool(true) => {
                        return Err(fail("deep merging is not supported; pass false".into()))
                    }
                    _ => return Err(fail("the third argument must be the boolean false".into())),
                }
                let mut out: Map<String, Value> = a.clone();
                for (k, v) in b {
                    out.insert(k.clone(), v.clone());
                }
                Ok(Value::Object(out))
            }
            "States.MathRandom" => {
                use rand::{Rng, SeedableRng};
                let seed_or_random = |seed: Option<i64>| {
                    rand_chacha::ChaCha8Rng::seed_from_u64(
                        seed.map(|s| s as u64)
                            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u128() as u64),
                    )
                };
                let start = as_int(&vals[0]).map_err(fail)?;
                let end = as_int(&vals[1]).map_err(fail)?;
                // Both bounds inclusive, as LocalStack (whose engine moto ports) does.
                if start > end {
                    return Err(fail("the start must not be greater than the end".into()));
                }
                let n = match vals.get(2) {
                    Some(seed) => {
                        let seed = as_int(seed).map_err(fail)?;
                        seed_or_random(Some(seed)).random_range(start..=end)
                    }
                    None => seed_or_random(None).random_range(start..=end),
                };
                Ok(Value::from(n))
            }
            "States.MathAdd" => {
                let a = round_like_java(&vals[0]).map_err(fail)?;
                let b = round_like_java(&vals[1]).map_err(fail)?;
                a.checked_add(b)
                    .map(Value::from)
                    .ok_or_else(|| fail("the sum overflows".into()))
            }
            "States.StringSplit" => {
                let s = as_str(&vals[0]).map_err(fail)?;
                let delims = as_str(&vals[1]).map_err(fail)?;
                Ok(Value::Array(
                    s.split(|c: char| delims.contains(c))
                        .filter(|part| !part.is_empty())
                        .map(|part| Value::String(part.to_string()))
                        .collect(),
                ))
            }
            "States.UUID" => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
            other => Err(Failure::intrinsic(format!("unknown function {other}"))),
        }
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn as_str(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, got {v}"))
}

fn as_array(v: &Value) -> Result<&Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("expected an array, got {v}"))
}

fn as_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| format!("expected an integer, got {v}")),
        _ => Err(format!("expected an integer, got {v}")),
    }
}

/// The developer guide: non-integer arguments of States.MathAdd are rounded to the
/// nearest integer; Step Functions is Java, so halves round up (`Math.round`).
fn round_like_java(v: &Value) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 9.0e18 => Ok((f + 0.5).floor() as i64),
        _ => Err(format!("expected a number, got {v}")),
    }
}

fn hash(alg: &str, data: &[u8]) -> Result<String, String> {
    use sha2::Digest;
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    Ok(match alg {
        "MD5" => hex(&md5::Md5::digest(data)),
        "SHA-1" => hex(&sha1::Sha1::digest(data)),
        "SHA-256" => hex(&sha2::Sha256::digest(data)),
        "SHA-384" => hex(&sha2::Sha384::digest(data)),
        "SHA-512" => hex(&sha2::Sha512::digest(data)),
        other => {
            return Err(format!(
                "unknown algorithm {other:?}; use MD5, SHA-1, SHA-256, SHA-384 or SHA-512"
            ))
        }
    })
}

/// Removes the escapes of an intrinsic string literal.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How States.Format renders a value: strings bare, scalars as JSON, and (though the
/// spec forbids them) objects and arrays the way AWS does, Java-style: `{a=1, b=[x, y]}`.
fn format_arg(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(format_arg).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}={}", format_arg(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn format(template: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let mut used = 0;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                let Some(arg) = args.get(used) else {
                    return Err("more placeholders than arguments".into());
                };
                used += 1;
                out.push_str(&format_arg(arg));
            }
            c => out.push(c),
        }
    }
    if used != args.len() {
        return Err(format!(
            "the template has {used} placeholders but {} arguments were given",
            args.len()
        ));
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn text(&self, a: usize, b: usize) -> String {
        String::from_utf8_lossy(&self.s[a..b]).into_owned()
    }

    fn call(&mut self) -> Result<Call, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        {
            self.i += 1;
        }
        let name = self.text(start, self.i);
        let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(n, _, _)| *n == name) else {
            return Err(format!("unknown intrinsic function {name:?}"));
        };
        self.ws();
        if self.peek() != Some(b'(') {
            return Err(format!("expected '(' after {name}"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.peek() == Some(b')') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                args.push(self.arg()?);
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b')') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(format!("expected ',' or ')' at offset {}", self.i)),
                }
            }
        }
        if name == "States.JsonToString" && !matches!(args.first(), Some(Arg::Path(_))) {
            return Err("States.JsonToString takes a single argument, which must be a path".into());
        }
        if args.len() < min || args.len() > max {
            return Err(if min == max {
                format!("{name} takes {min} argument(s), got {}", args.len())
            } else if max == usize::MAX {
                format!(
                    "{name} takes at least {min} argument(s), got {}",
                    args.len()
                )
            } else {
                format!("{name} takes {min} to {max} arguments, got {}", args.len())
            });
        }
        Ok(Call { name, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        match self.peek() {
            Some(b'\'') => {
                self.i += 1;
                let start = self.i;
                loop {
                    match self.peek() {
                        None => return Err("unterminated string literal".into()),
                        Some(b'\\') => self.i += 2,
                        Some(b'\'') => break,
                        Some(_) => self.i += 1,
                    }
                }
                let raw = self.text(start, self.i.min(self.s.len()));
                self.i += 1;
                Ok(Arg::Str { raw })
            }
            Some(b'$') => {
                let start = self.i;
                let mut depth = 0i32;
                let mut quote: Option<u8> = None;
                while let Some(b) = self.peek() {
                    if let Some(q) = quote {
                        if b == q {
                            quote = None;
                        }
                    } else {
                        match b {
                            b'\'' | b'"' if depth > 0 => quote = Some(b),
                            b'[' | b'(' => depth += 1,
                            b']' => depth -= 1,
                            b')' if depth == 0 => break,
                            b')' => depth -= 1,
                            b',' if depth == 0 => break,
                            b if b.is_ascii_whitespace() && depth == 0 => break,
                            _ => {}
                        }
                    }
                    self.i += 1;
                }
                let text = self.text(start, self.i);
                Path::parse(&text)
                    .map(Arg::Path)
                    .map_err(|e| format!("bad path {text:?}: {e}"))
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let rest = &self.s[self.i..];
                for (word, v) in [
                    (&b"true"[..], Value::Bool(true)),
                    (b"false", Value::Bool(false)),
                    (b"null", Value::Null),
                ] {
                    let after = rest.get(word.len()).copied();
                    if rest.starts_with(word)
                        && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.')
                    {
                        self.i += word.len();
                        return Ok(Arg::Literal(v));
                    }
                }
                Ok(Arg::Call(self.call()?))
            }
            Some(b) if b == b'-' || b.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self.peek().is_some_and(|b| {
                    b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')
                }) {
                    self.i += 1;
                }
                let text = self.text(start, self.i);
                let n: Number = serde_json::from_str(&text)
                    .map_err(|_| format!("bad number literal {text:?}"))?;
                Ok(Arg::Literal(Value::Number(n)))
            }
            _ => Err(format!("expected an argument at offset {}", self.i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(expr: &str, input: Value) -> Result<Value, Failure> {
        let call = Call::parse(expr).unwrap();
        call.eval(&|p: &Path| {
            p.select(&input)
                .ok_or_else(|| Failure::runtime(format!("missing {p}")))
        })
    }

    #[test]
    fn parses_nested_calls_and_escapes() {
        let v = run(
            r"States.Format('a \{\} {} \'q\' {}', States.ArrayLength($.x), $.n)",
            json!({"x": [1, 2], "n": "z"}),
        )
        .unwrap();
        assert_eq!(v, json!("a {} 2 'q' z"));
        assert!(Call::parse("States.Nope()").is_err());
        assert!(Call::parse("States.ArrayLength()").is_err());
        assert!(Call::parse("States.Array(1,").is_err());
    }

    #[test]
    fn hashes_are_hex() {
        assert_eq!(
            run("States.Hash('input data', 'SHA-1')", Value::Null).unwrap(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            run("States.Hash('', 'MD5')", Value::Null).unwrap(),
            json!("d41d8cd98f00b204e9800998ecf8427e")
        );
    }
}
