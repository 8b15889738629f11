//! Step Functions paths (JSONPath dialect).
//!
//! A path starts at the state input (`$`), the context object (`$$`) or a
//! variable (`$name`). Reference paths (ResultPath, ItemsPath, OutputPath,
//! Choice `Variable`, `*Path` fields) may only use fields and array indexes and
//! identify one node. Other places (InputPath, `.$` values) accept the wider
//! JSONPath syntax: `*`, `..`, unions, slices and `?()` filters; a path that
//! can select several nodes yields a JSON array of them.

use serde_json::{Map, Value};
use std::fmt;

/// What a path starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    Input,
    Context,
    Variable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Field(String),
    Index(i64),
    Wildcard,
    Descendant(Box<Segment>),
    Union(Vec<Segment>),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Exists(Vec<Segment>),
    Compare(Operand, CmpOp, Operand),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Current(Vec<Segment>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub root: Root,
    pub segments: Vec<Segment>,
    text: String,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// Parses any Step Functions path.
    pub fn parse(text: &str) -> Result<Path, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let (root, segments) = p.path()?;
        if p.i != p.s.len() {
            return Err(format!("unexpected character at offset {}", p.i));
        }
        Ok(Path {
            root,
            segments,
            text: text.to_string(),
        })
    }

    /// Parses a reference path: fields and indexes only.
    pub fn parse_reference(text: &str) -> Result<Path, String> {
        let path = Path::parse(text)?;
        if !path.is_reference() {
            return Err("a reference path may only use fields and array indexes".into());
        }
        Ok(path)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The path in bracket notation, as Jayway (and so AWS) prints it in errors:
    /// `$.a.b[0]` is `$['a']['b'][0]`.
    pub fn bracket_notation(&self) -> String {
        let mut out = match &self.root {
            Root::Input => "$".to_string(),
            Root::Context => "$$".to_string(),
            Root::Variable(v) => format!("${v}"),
        };
        for seg in &self.segments {
            match seg {
                Segment::Field(f) => out.push_str(&format!("['{f}']")),
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                Segment::Wildcard => out.push_str("[*]"),
                _ => return self.text.clone(),
            }
        }
        out
    }

    /// True if the path uses only fields and indexes (it names at most one node).
    pub fn is_reference(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
    }

    /// Evaluates the path against `root`. A reference path yields the node or
    /// `None`; any other path yields an array of every node it selects.
    pub fn select(&self, root: &Value) -> Option<Value> {
        if self.is_reference() {
            return select_definite(root, &self.segments).cloned();
        }
        let mut out = Vec::new();
        collect(root, &self.segments, &mut out);
        Some(Value::Array(out.into_iter().cloned().collect()))
    }

    /// Writes `value` at this reference path inside `target`, creating objects
    /// on the way. Fails if an existing node on the way is not an object; a failure
    /// leaves `target` untouched (the whole path is checked before anything is written).
    pub fn set(&self, target: &mut Value, value: Value) -> Result<(), String> {
        if self.segments.is_empty() {
            *target = value;
            return Ok(());
        }
        self.check_settable(target)?;
        let mut cur = target;
        let last = self.segments.len() - 1;
        for (n, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Field(name) => {
                    let Value::Object(map) = cur else {
                        return Err(format!(
                            "cannot set field {name:?}: the node is not an object"
                        ));
                    };
                    if n == last {
                        map.insert(name.clone(), value);
                        return Ok(());
                    }
                    cur = map
                        .entry(name.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                }
                Segment::Index(i) => {
                    let Value::Array(items) = cur else {
                        return Err(format!("cannot set index [{i}]: the node is not an array"));
                    };
                    let len = items.len() as i64;
                    let idx = if *i < 0 { len + i } else { *i };
                    if idx < 0 || idx >= len {
                        return Err(format!("index [{i}] is out of bounds"));
                    }
                    let slot = &mut items[idx as usize];
                    if n == last {
                        *slot = value;
                        return Ok(());
                    }
                    cur = slot;
                }
                _ => return Err("not a reference path".into()),
            }
        }
        Ok(())
    }
}

impl Path {
    /// Whether [`Path::set`] can write at this path in `target`, with the error it would give.
    fn check_settable(&self, target: &Value) -> Result<(), String> {
        // `None`: below a node `set` would create (an empty object).
        let mut cur = Some(target);
        for seg in &self.segments {
            cur = match (seg, cur) {
                (Segment::Field(_), None) => None,
                (Segment::Field(name), Some(Value::Object(map))) => map.get(name),
                (Segment::Field(name), Some(_)) => {
                    return Err(format!(
                        "cannot set field {name:?}: the node is not an object"
                    ))
                }
                (Segment::Index(i), Some(Value::Array(items))) => {
                    let len = items.len() as i64;
                    let idx = if *i < 0 { len + i } else { *i };
                    if idx < 0 || idx >= len {
                        return Err(format!("index [{i}] is out of bounds"));
                    }
                    items.get(idx as usize)
                }
                (Segment::Index(i), _) => {
                    return Err(format!("cannot set index [{i}]: the node is not an array"))
                }
                _ => return Err("not a reference path".into()),
            };
        }
        Ok(())
    }
}

fn select_definite<'a>(root: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    let mut cur = root;
    for seg in segments {
        cur = match (seg, cur) {
            (Segment::Field(name), Value::Object(m)) => m.get(name)?,
            (Segment::Index(i), Value::Array(a)) => {
                let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                if idx < 0 {
                    return None;
                }
                a.get(idx as usize)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn children(v: &Value) -> Vec<&Value> {
    match v {
        Value::Object(m) => m.values().collect(),
        Value::Array(a) => a.iter().collect(),
        _ => Vec::new(),
    }
}

fn apply_segment<'a>(v: &'a Value, seg: &Segment, out: &mut Vec<&'a Value>) {
    match seg {
        Segment::Field(name) => {
            if let Value::Object(m) = v {
                if let Some(x) = m.get(name) {
                    out.push(x);
                }
            }
        }
        Segment::Index(i) => {
            if let Value::Array(a) = v {
                let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                if idx >= 0 {
                    if let Some(x) = a.get(idx as usize) {
                        out.push(x);
                    }
                }
            }
        }
        Segment::Wildcard => out.extend(children(v)),
        Segment::Descendant(inner) => {
            let mut stack = vec![v];
            while let Some(node) = stack.pop() {
                apply_segment(node, inner, out);
                let mut kids = children(node);
                kids.reverse();
                stack.extend(kids);
            }
        }
        Segment::Union(items) => {
            for s in items {
                apply_segment(v, s, out);
            }
        }
        Segment::Slice(start, end, step) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let step = step.unwrap_or(1);
                if step <= 0 {
                    return;
                }
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = start.map(norm).unwrap_or(0);
                let e = end.map(norm).unwrap_or(len);
                let mut k = s;
                while k < e {
                    out.push(&a[k as usize]);
                    k += step;
                }
            }
        }
        Segment::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(m) => m.values().collect(),
                _ => Vec::new(),
            };
            for item in items {
                if eval_filter(f, item) {
                    out.push(item);
                }
            }
        }
    }
}

fn collect<'a>(root: &'a Value, segments: &[Segment], out: &mut Vec<&'a Value>) {
    let mut current = vec![root];
    for seg in segments {
        let mut next = Vec::new();
        for v in current {
            apply_segment(v, seg, &mut next);
        }
        current = next;
    }
    out.extend(current);
}

fn operand_value<'a>(op: &'a Operand, item: &'a Value) -> Option<&'a Value> {
    match op {
        Operand::Literal(v) => Some(v),
        Operand::Current(segs) => select_definite(item, segs),
    }
}

fn eval_filter(f: &Filter, item: &Value) -> bool {
    match f {
        Filter::Exists(segs) => select_definite(item, segs).is_some(),
        Filter::And(a, b) => eval_filter(a, item) && eval_filter(b, item),
        Filter::Or(a, b) => eval_filter(a, item) || eval_filter(b, item),
        Filter::Not(a) => !eval_filter(a, item),
        Filter::Compare(l, op, r) => {
            let (Some(l), Some(r)) = (operand_value(l, item), operand_value(r, item)) else {
                return false;
            };
            let ord = match (l, r) {
                (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => {
                    return match op {
                        CmpOp::Eq => l == r,
                        CmpOp::Ne => l != r,
                        _ => false,
                    }
                }
            };
            let Some(ord) = ord else { return false };
            use std::cmp::Ordering::*;
            match op {
                CmpOp::Eq => ord == Equal,
                CmpOp::Ne => ord != Equal,
                CmpOp::Lt => ord == Less,
                CmpOp::Le => ord != Greater,
                CmpOp::Gt => ord == Greater,
                CmpOp::Ge => ord != Less,
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_name_byte(b: u8) -> bool {
    !matches!(
        b,
        b'.' | b'[' | b']' | b' ' | b'(' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b','
    )
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
    fn err<T>(&self, msg: &str) -> Result<T, String> {
        Err(format!("{msg} at offset {}", self.i))
    }

    fn path(&mut self) -> Result<(Root, Vec<Segment>), String> {
        if !self.eat(b'$') {
            return self.err("a path must start with '$'");
        }
        let root = if self.eat(b'$') {
            Root::Context
        } else if self
            .peek()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        {
            let start = self.i;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                self.i += 1;
            }
            Root::Variable(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
        } else {
            Root::Input
        };
        let segments = self.segments(false)?;
        Ok((root, segments))
    }

    /// Segments after a root; in a filter, stops at operators.
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, String> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.i += 1;
                    if self.eat(b'.') {
                        let inner = if self.eat(b'*') {
                            Segment::Wildcard
                        } else if self.peek() == Some(b'[') {
                            self.bracket()?
                        } else {
                            Segment::Field(self.name()?)
                        };
                        segs.push(Segment::Descendant(Box::new(inner)));
                    } else if self.eat(b'*') {
                        segs.push(Segment::Wildcard);
                    } else {
                        segs.push(Segment::Field(self.name()?));
                    }
                }
                Some(b'[') => segs.push(self.bracket()?),
                Some(b' ') | Some(b')') | Some(b'=') | Some(b'!') | Some(b'<') | Some(b'>')
                | Some(b'&') | Some(b'|')
                    if in_filter =>
                {
                    break
                }
                None => break,
                Some(_) => return self.err("unexpected character"),
            }
        }
        Ok(segs)
    }

    /// A dot-notation name; a backslash makes the next character literal (`$.a\.b`).
    fn name(&mut self) -> Result<String, String> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'\\' {
                match self.s.get(self.i + 1) {
                    Some(&n) => out.push(n),
                    None => return self.err("unterminated escape"),
                }
                self.i += 2;
            } else if is_name_byte(b) {
                out.push(b);
                self.i += 1;
            } else {
                break;
            }
        }
        if out.is_empty() {
            return self.err("expected a field name");
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = self.peek().unwrap_or(b'\'');
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated quoted name"),
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) => out.push(c),
                        None => return self.err("unterminated escape"),
                    }
                    self.i += 1;
                }
                Some(c) if c == quote => {
                    self.i += 1;
                    break;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn int(&mut self) -> Option<i64> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if text.is_empty() || text == "-" {
            self.i = start;
            return None;
        }
        text.parse().ok()
    }

    fn bracket(&mut self) -> Result<Segment, String> {
        self.i += 1; // '['
        self.skip_ws();
        let seg = if self.eat(b'*') {
            Segment::Wildcard
        } else if self.eat(b'?') {
            self.skip_ws();
            if !self.eat(b'(') {
                return self.err("expected '(' after '?'");
            }
            let f = self.filter_or()?;
            self.skip_ws();
            if !self.eat(b')') {
                return self.err("expected ')' closing the filter");
            }
            Segment::Filter(f)
        } else {
            let mut items = Vec::new();
            loop {
                self.skip_ws();
                let item = match self.peek() {
                    Some(b'\'') | Some(b'"') => Segment::Field(self.quoted()?),
                    _ => {
                        let start = self.int();
                        if self.eat(b':') {
                            let end = self.int();
                            let step = if self.eat(b':') { self.int() } else { None };
                            Segment::Slice(start, end, step)
                        } else {
                            match start {
                                Some(n) => Segment::Index(n),
                                None => return self.err("expected an index, a name or '*'"),
                            }
                        }
                    }
                };
                items.push(item);
                self.skip_ws();
                if !self.eat(b',') {
                    break;
                }
            }
            if items.len() == 1 {
                items.pop().unwrap_or(Segment::Wildcard)
            } else {
                Segment::Union(items)
            }
        };
        self.skip_ws();
        if !self.eat(b']') {
            return self.err("expected ']'");
        }
        Ok(seg)
    }

    fn filter_or(&mut self) -> Result<Filter, String> {
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(b"||") {
                self.i += 2;
                let right = self.filter_and()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_and(&mut self) -> Result<Filter, String> {
        let mut left = self.filter_atom()?;
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(b"&&") {
                self.i += 2;
                let right = self.filter_atom()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_atom(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        if self.eat(b'!') {
            return Ok(Filter::Not(Box::new(self.filter_atom()?)));
        }
        if self.eat(b'(') {
            let f = self.filter_or()?;
            self.skip_ws();
            if !self.eat(b')') {
                return self.err("expected ')'");
            }
            return Ok(f);
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = if self.s[self.i..].starts_with(b"==") {
            Some(CmpOp::Eq)
        } else if self.s[self.i..].starts_with(b"!=") {
            Some(CmpOp::Ne)
        } else if self.s[self.i..].starts_with(b"<=") {
            Some(CmpOp::Le)
        } else if self.s[self.i..].starts_with(b">=") {
            Some(CmpOp::Ge)
        } else if self.peek() == Some(b'<') {
            Some(CmpOp::Lt)
        } else if self.peek() == Some(b'>') {
            Some(CmpOp::Gt)
        } else {
            None
        };
        let Some(op) = op else {
            return match left {
                Operand::Current(segs) => Ok(Filter::Exists(segs)),
                Operand::Literal(_) => self.err("expected a comparison"),
            };
        };
        self.i += if matches!(op, CmpOp::Lt | CmpOp::Gt) {
            1
        } else {
            2
        };
        let right = self.operand()?;
        Ok(Filter::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') => {
                self.i += 1;
                Ok(Operand::Current(self.segments(true)?))
            }
            Some(b'\'') | Some(b'"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            _ => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                match serde_json::from_str::<Value>(text) {
                    Ok(v) if !text.is_empty() => Ok(Operand::Literal(v)),
                    _ => self.err("expected a literal or '@'"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(p: &str, v: &Value) -> Option<Value> {
        Path::parse(p).unwrap().select(v)
    }

    #[test]
    fn reference_paths() {
        let v = json!({"a": {"b": [1, 2, {"c": "x"}]}, "d e": 1});
        assert_eq!(sel("$", &v), Some(v.clone()));
        assert_eq!(sel("$.a.b[2].c", &v), Some(json!("x")));
        assert_eq!(sel("$['a']['b'][0]", &v), Some(json!(1)));
        assert_eq!(sel("$['d e']", &v), Some(json!(1)));
        assert_eq!(sel(r"$.x\.y", &json!({"x.y": 2})), Some(json!(2)));
        assert_eq!(sel(r"$.a\[b", &json!({"a[b": 3})), Some(json!(3)));
        assert_eq!(sel("$.a.missing", &v), None);
        assert!(Path::parse_reference("$.a[*]").is_err());
        assert!(Path::parse("a.b").is_err());
        assert_eq!(Path::parse("$$.Execution.Id").unwrap().root, Root::Context);
        assert_eq!(
            Path::parse("$myVar.x").unwrap().root,
            Root::Variable("myVar".into())
        );
    }

    #[test]
    fn wide_paths() {
        let v = json!({"items": [{"p": 5, "n": "a"}, {"p": 15, "n": "b"}, {"n": "c"}]});
        assert_eq!(sel("$.items[*].n", &v), Some(json!(["a", "b", "c"])));
        assert_eq!(sel("$..p", &v), Some(json!([5, 15])));
        assert_eq!(sel("$.items[?(@.p > 10)].n", &v), Some(json!(["b"])));
        assert_eq!(sel("$.items[?(@.p)].n", &v), Some(json!(["a", "b"])));
        assert_eq!(sel("$.items[?(@.n == 'c')].n", &v), Some(json!(["c"])));
        assert_eq!(sel("$.items[0,2].n", &v), Some(json!(["a", "c"])));
        assert_eq!(sel("$.items[1:].n", &v), Some(json!(["b", "c"])));
        assert_eq!(sel("$.items[-1:].n", &v), Some(json!(["c"])));
    }

    #[test]
    fn set_creates_objects() {
        let mut v = json!({"a": 1});
        Path::parse("$.b.c.d")
            .unwrap()
            .set(&mut v, json!(2))
            .unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": {"d": 2}}}));
        assert!(Path::parse("$.a.x").unwrap().set(&mut v, json!(3)).is_err());
    }

    #[test]
    fn a_failed_set_leaves_the_target_untouched() {
        let before = json!({"a": {"list": [1, 2]}, "s": "x"});
        for (path, error) in [
            // Objects would be created on the way to an index: no array there.
            (
                "$.a.new.deeper[0]",
                "cannot set index [0]: the node is not an array",
            ),
            ("$.a.list[2]", "index [2] is out of bounds"),
            (
                "$.a.list[0].x",
                "cannot set field \"x\": the node is not an object",
            ),
            ("$.s.x", "cannot set field \"x\": the node is not an object"),
        ] {
            let mut v = before.clone();
            let got = Path::parse(path).unwrap().set(&mut v, json!(0));
            assert_eq!(got, Err(error.to_string()), "{path}");
            assert_eq!(v, before, "{path}");
        }
        let mut v = before.clone();
        Path::parse("$.a.list[-1]")
            .unwrap()
            .set(&mut v, json!(9))
            .unwrap();
        assert_eq!(v["a"]["list"], json!([1, 9]));
    }
}
