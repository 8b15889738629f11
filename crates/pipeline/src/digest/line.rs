//! [`ItemHasher::hash_line`]: a DynamoDB JSON line (`{"Item":{...}}`) hashed straight from its
//! bytes, attribute names and strings borrowed from the line, without building an [`Item`].
//! The verification digest's per-line work; it gives exactly [`ItemHasher::hash`] of
//! [`crate::value::parse_item_line`], which the tests below check on varied lines.
//!
//! It reads only lines it is sure of: anything else (bad JSON, an unknown type, a bad number,
//! a missing key, a name twice in one map, fields besides `Item`) gives `None`, and the caller
//! takes the owned path, which says what is wrong.
//!
//! [`Item`]: crate::value::Item

use base64::Engine as _;
use xxhash_rust::xxh3::xxh3_128;

use super::{put_bytes, put_len, put_scanned_number, ItemHash, ItemHasher};
use crate::value::scan_number;

/// serde_json's own nesting limit is 128; deeper lines go the owned way.
const MAX_DEPTH: usize = 100;

/// Reusable buffers of [`ItemHasher::hash_line`].
#[derive(Debug, Clone, Default)]
pub(super) struct LineScratch {
    /// Per map/list/set nesting depth: the values' encodings and where each lies.
    levels: Vec<Level>,
    /// Strings that had escapes, unescaped.
    arena: Vec<u8>,
    decoded: Vec<u8>,
    digits: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct Level {
    values: Vec<u8>,
    entries: Vec<Entry>,
}

/// A map entry (name and value range in its level's `values`) or a set member (value only).
#[derive(Debug, Clone, Copy)]
struct Entry {
    name: Text,
    start: usize,
    end: usize,
}

/// A string of the line: borrowed from it, or unescaped into the arena.
#[derive(Debug, Clone, Copy)]
enum Text {
    Line(usize, usize),
    Arena(usize, usize),
}

impl Text {
    fn bytes<'a>(self, line: &'a [u8], arena: &'a [u8]) -> &'a [u8] {
        match self {
            Text::Line(start, end) => &line[start..end],
            Text::Arena(start, end) => &arena[start..end],
        }
    }
}

impl ItemHasher {
    /// The [`ItemHash`] of one DynamoDB JSON line, or `None` when the line needs the owned
    /// path ([`crate::value::parse_item_line`] then [`Self::hash`]), which also explains errors.
    pub fn hash_line(&mut self, line: &[u8]) -> Option<ItemHash> {
        // Valid UTF-8 as a whole, so every string cut at a quote is too.
        std::str::from_utf8(line).ok()?;
        let mut scratch = std::mem::take(&mut self.line);
        scratch.arena.clear();
        let mut parser = Parser { line, at: 0 };
        let hashed = self.hash_parsed(&mut parser, &mut scratch);
        self.line = scratch;
        hashed
    }

    fn hash_parsed(&mut self, p: &mut Parser<'_>, scratch: &mut LineScratch) -> Option<ItemHash> {
        p.expect(b'{')?;
        let field = p.string(&mut scratch.arena)?;
        if field.bytes(p.line, &scratch.arena) != b"Item" {
            return None;
        }
        p.expect(b':')?;
        let mut level = scratch.take_level(0);
        let parsed = scratch.entries(p, &mut level, 1);
        let hash = parsed.and_then(|()| {
            p.expect(b'}')?;
            p.skip_whitespace();
            if p.at != p.line.len() {
                return None;
            }
            let arena = &scratch.arena;
            let out = &mut self.buffer;
            out.clear();
            for name in &self.key_attributes {
                let entry = level
                    .entries
                    .iter()
                    .find(|e| e.name.bytes(p.line, arena) == name.as_bytes())?;
                put_bytes(out, name.as_bytes());
                out.extend_from_slice(&level.values[entry.start..entry.end]);
            }
            let key = xxh3_128(out);
            out.clear();
            put_sorted_entries(out, &level, p.line, arena);
            Some(ItemHash {
                key,
                item: xxh3_128(out),
            })
        });
        scratch.levels[0] = level;
        hash
    }
}

impl ItemHasher {
    /// The key hash of a DynamoDB JSON line whose key attributes are all strings (`S`), read
    /// without decoding the other attributes: what [`Self::hash_line`] gives as `key`, for a
    /// re-read that only needs to know which bucket a line falls in. `None` when unsure (a key
    /// that is not `S`, absent or given twice, a line not shaped `{"Item":{...}}`): take
    /// [`Self::hash_line`] then. Values of other attributes are skipped, not checked: use it
    /// on lines a full digest has read before (an export's) or ferry wrote (bootstrap files).
    pub fn key_hash_line(&mut self, line: &[u8]) -> Option<u128> {
        std::str::from_utf8(line).ok()?;
        let mut scratch = std::mem::take(&mut self.line);
        scratch.arena.clear();
        let mut p = Parser { line, at: 0 };
        let key = self.key_parsed(&mut p, &mut scratch.arena);
        self.line = scratch;
        key
    }

    fn key_parsed(&mut self, p: &mut Parser<'_>, arena: &mut Vec<u8>) -> Option<u128> {
        let mut values: [Option<Text>; 2] = [None, None];
        if self.key_attributes.len() > values.len() {
            return None;
        }
        p.expect(b'{')?;
        if p.string(arena)?.bytes(p.line, arena) != b"Item" {
            return None;
        }
        p.expect(b':')?;
        p.expect(b'{')?;
        if !p.next_is(b'}') {
            loop {
                let name = p.string(arena)?;
                p.expect(b':')?;
                let name = name.bytes(p.line, arena);
                match self
                    .key_attributes
                    .iter()
                    .position(|k| k.as_bytes() == name)
                {
                    Some(index) => {
                        if values[index].is_some() {
                            return None;
                        }
                        p.expect(b'{')?;
                        if p.string(arena)?.bytes(p.line, arena) != b"S" {
                            return None;
                        }
                        p.expect(b':')?;
                        values[index] = Some(p.string(arena)?);
                        p.expect(b'}')?;
                    }
                    None => p.skip_value()?,
                }
                if !p.next_is(b',') {
                    p.expect(b'}')?;
                    break;
                }
            }
        }
        p.expect(b'}')?;
        p.skip_whitespace();
        if p.at != p.line.len() {
            return None;
        }
        let out = &mut self.buffer;
        out.clear();
        for (name, value) in self.key_attributes.iter().zip(values) {
            put_bytes(out, name.as_bytes());
            out.push(b'S');
            put_bytes(out, value?.bytes(p.line, arena));
        }
        Some(xxh3_128(out))
    }
}

/// `count`, then the entries sorted by name, each `name, value` (the item and `M` encoding).
/// The entries are sorted already and hold no name twice.
fn put_sorted_entries(out: &mut Vec<u8>, level: &Level, line: &[u8], arena: &[u8]) {
    put_len(out, level.entries.len());
    for entry in &level.entries {
        put_bytes(out, entry.name.bytes(line, arena));
        out.extend_from_slice(&level.values[entry.start..entry.end]);
    }
}

impl LineScratch {
    fn take_level(&mut self, depth: usize) -> Level {
        if self.levels.len() <= depth {
            self.levels.resize_with(depth + 1, Level::default);
        }
        let mut level = std::mem::take(&mut self.levels[depth]);
        level.values.clear();
        level.entries.clear();
        level
    }

    /// A JSON object of attributes into `level`, sorted by name; `None` on a repeated name.
    fn entries(&mut self, p: &mut Parser<'_>, level: &mut Level, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        p.expect(b'{')?;
        if !p.next_is(b'}') {
            loop {
                let name = p.string(&mut self.arena)?;
                p.expect(b':')?;
                let start = level.values.len();
                self.value(p, &mut level.values, depth)?;
                level.entries.push(Entry {
                    name,
                    start,
                    end: level.values.len(),
                });
                if !p.next_is(b',') {
                    p.expect(b'}')?;
                    break;
                }
            }
        }
        let (line, arena) = (p.line, &self.arena);
        level
            .entries
            .sort_unstable_by(|a, b| a.name.bytes(line, arena).cmp(b.name.bytes(line, arena)));
        let repeated = level
            .entries
            .windows(2)
            .any(|w| w[0].name.bytes(line, arena) == w[1].name.bytes(line, arena));
        (!repeated).then_some(())
    }

    /// One DynamoDB JSON value (`{"S":"x"}`, ...), its canonical encoding appended to `out`.
    fn value(&mut self, p: &mut Parser<'_>, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        p.expect(b'{')?;
        let tag = p.string(&mut self.arena)?;
        p.expect(b':')?;
        let tag = match tag {
            Text::Line(start, end) => &p.line[start..end],
            Text::Arena(..) => return None,
        };
        match tag {
            b"S" => {
                let text = p.string(&mut self.arena)?;
                out.push(b'S');
                put_bytes(out, text.bytes(p.line, &self.arena));
            }
            b"N" => {
                let text = p.string(&mut self.arena)?;
                out.push(b'N');
                self.number(out, text, p.line)?;
            }
            b"B" => {
                let text = p.string(&mut self.arena)?;
                self.base64(text, p.line)?;
                out.push(b'B');
                put_bytes(out, &self.decoded);
            }
            b"BOOL" => out.push(if p.boolean()? { b'T' } else { b'F' }),
            b"NULL" => {
                p.boolean()?;
                out.push(b'0');
            }
            b"L" => {
                out.push(b'L');
                let count_at = out.len();
                put_len(out, 0);
                let mut count = 0usize;
                p.expect(b'[')?;
                if !p.next_is(b']') {
                    loop {
                        self.value(p, out, depth + 1)?;
                        count += 1;
                        if !p.next_is(b',') {
                            p.expect(b']')?;
                            break;
                        }
                    }
                }
                out[count_at..count_at + 4].copy_from_slice(&(count as u32).to_le_bytes());
            }
            b"M" => {
                let mut level = self.take_level(depth);
                let parsed = self.entries(p, &mut level, depth + 1);
                if parsed.is_some() {
                    out.push(b'M');
                    put_sorted_entries(out, &level, p.line, &self.arena);
                }
                self.levels[depth] = level;
                parsed?;
            }
            b"SS" | b"NS" | b"BS" => {
                let mut level = self.take_level(depth);
                let parsed = self.set(p, tag[0], &mut level);
                if parsed.is_some() {
                    let values = &level.values;
                    level.entries.sort_unstable_by(|a, b| {
                        values[a.start..a.end].cmp(&values[b.start..b.end])
                    });
                    out.push(tag[0].to_ascii_lowercase());
                    put_len(out, level.entries.len());
                    for member in &level.entries {
                        put_bytes(out, &values[member.start..member.end]);
                    }
                }
                self.levels[depth] = level;
                parsed?;
            }
            _ => return None,
        }
        p.expect(b'}')
    }

    /// A set's members (their bytes: text, normalised number text, decoded binary) into `level`.
    fn set(&mut self, p: &mut Parser<'_>, kind: u8, level: &mut Level) -> Option<()> {
        p.expect(b'[')?;
        if p.next_is(b']') {
            return Some(());
        }
        loop {
            let text = p.string(&mut self.arena)?;
            let start = level.values.len();
            match kind {
                b'S' => level
                    .values
                    .extend_from_slice(text.bytes(p.line, &self.arena)),
                b'N' => {
                    self.number(&mut level.values, text, p.line)?;
                    // The member is the text, without the length `number` puts first.
                    level.values.drain(start..start + 4);
                }
                _ => {
                    self.base64(text, p.line)?;
                    level.values.extend_from_slice(&self.decoded);
                }
            }
            level.entries.push(Entry {
                name: Text::Line(0, 0),
                start,
                end: level.values.len(),
            });
            if !p.next_is(b',') {
                return p.expect(b']');
            }
        }
    }

    /// The length-prefixed normalised text of a number.
    fn number(&mut self, out: &mut Vec<u8>, text: Text, line: &[u8]) -> Option<()> {
        let text = std::str::from_utf8(text.bytes(line, &self.arena)).ok()?;
        let (negative, exponent) = scan_number(text, &mut self.digits).ok()?;
        put_scanned_number(out, negative, exponent, &self.digits);
        Some(())
    }

    fn base64(&mut self, text: Text, line: &[u8]) -> Option<()> {
        self.decoded.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(text.bytes(line, &self.arena), &mut self.decoded)
            .ok()
    }
}

struct Parser<'a> {
    line: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.line.get(self.at) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.line.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// Consumes `byte` if it comes next.
    fn next_is(&mut self, byte: u8) -> bool {
        self.expect(byte).is_some()
    }

    fn boolean(&mut self) -> Option<bool> {
        self.skip_whitespace();
        let rest = &self.line[self.at..];
        if rest.starts_with(b"true") {
            self.at += 4;
            Some(true)
        } else if rest.starts_with(b"false") {
            self.at += 5;
            Some(false)
        } else {
            None
        }
    }

    /// A JSON string: borrowed when it has no escape, else unescaped by serde_json into `arena`.
    /// Past one JSON value (object, array, string or scalar), without checking it.
    fn skip_value(&mut self) -> Option<()> {
        self.skip_whitespace();
        let mut depth = 0usize;
        loop {
            match *self.line.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    loop {
                        match *self.line.get(self.at)? {
                            b'"' => break,
                            b'\\' => self.at += 2,
                            _ => self.at += 1,
                        }
                    }
                    self.at += 1;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.at += 1;
                }
                b'}' | b']' | b',' if depth == 0 => return Some(()),
                _ => self.at += 1,
            }
            if depth == 0 && matches!(self.line.get(self.at), Some(b',' | b'}' | b']')) {
                return Some(());
            }
        }
    }

    fn string(&mut self, arena: &mut Vec<u8>) -> Option<Text> {
        self.expect(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            match *self.line.get(self.at)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                byte if byte < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        let end = self.at;
        self.at += 1;
        if !escaped {
            return Some(Text::Line(start, end));
        }
        let text: String = serde_json::from_slice(&self.line[start - 1..end + 1]).ok()?;
        let from = arena.len();
        arena.extend_from_slice(text.as_bytes());
        Some(Text::Arena(from, arena.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{parse_item_line, AttributeValue, Item, ItemLine};

    fn owned(hasher: &mut ItemHasher, line: &[u8]) -> Option<ItemHash> {
        hasher.hash(&parse_item_line(line).ok()?).ok()
    }

    fn check(line: &str) -> Option<ItemHash> {
        let mut hasher = ItemHasher::new(vec!["pk".into(), "sk".into()]);
        let fast = hasher.hash_line(line.as_bytes());
        let expected = owned(&mut hasher, line.as_bytes());
        if fast.is_some() {
            assert_eq!(fast, expected, "{line}");
        }
        fast
    }

    fn varied_items() -> Vec<Item> {
        use AttributeValue::*;
        let s = |v: &str| S(v.into());
        let n = |v: &str| N(v.into());
        let mut items = Vec::new();
        for i in 0..40u32 {
            let text = [
                "plain",
                "H\u{f4}tel \"q\" \\ \n\t\u{1}\u{7f} \u{1F600} </x>",
                "",
                "\u{2028}\u{e9}",
            ][i as usize % 4];
            let number = ["1.50", "-0", "1E+3", "0.000", "-12.340e-3", "7"][i as usize % 6];
            let mut attributes = vec![
                ("pk".to_owned(), s(&format!("HOTEL#{i} {text}"))),
                ("sk".to_owned(), n(number)),
                ("a\"b".to_owned(), s(text)),
                ("n\u{e9}".to_owned(), n(number)),
                ("bin".to_owned(), B((0..i as u8).collect())),
                ("t".to_owned(), Bool(i % 2 == 0)),
                ("z".to_owned(), Null),
                (
                    "list".to_owned(),
                    L(vec![
                        n(number),
                        s(text),
                        L(vec![]),
                        M(vec![("y".into(), Null), ("x".into(), Bool(false))]),
                    ]),
                ),
                (
                    "map".to_owned(),
                    M(vec![
                        ("b".into(), n("2.0")),
                        ("a".into(), M(vec![("\n".into(), s(text))])),
                        ("".into(), Ss(vec!["b".into(), "a".into(), text.into()])),
                    ]),
                ),
                (
                    "ss".to_owned(),
                    Ss(vec!["z".into(), text.into(), "a".into()]),
                ),
                (
                    "ns".to_owned(),
                    Ns(vec!["10".into(), "9.0".into(), number.into()]),
                ),
                ("bs".to_owned(), Bs(vec![vec![2, 1], vec![], vec![2]])),
                ("empty".to_owned(), M(vec![])),
            ];
            attributes.rotate_left(i as usize % 13);
            items.push(Item { attributes });
        }
        items
    }

    #[test]
    fn lines_hash_like_their_parsed_items() {
        let mut hasher = ItemHasher::new(vec!["pk".into(), "sk".into()]);
        for item in varied_items() {
            let line = serde_json::to_vec(&ItemLine { item: item.clone() }).unwrap();
            let expected = hasher.hash(&item).unwrap();
            assert_eq!(hasher.hash_line(&line), Some(expected), "{item:?}");
            // Spaced out, as another writer may format it.
            let pretty = serde_json::to_vec_pretty(&ItemLine { item }).unwrap();
            assert_eq!(hasher.hash_line(&pretty), Some(expected));
        }
        // Escapes another writer may use, and unicode escapes with surrogate pairs.
        let a = check(r#"{"Item":{"pk":{"S":"\u0048\u00e9\ud83d\ude00\/"},"sk":{"N":"1"}}}"#);
        let b = check("{\"Item\":{\"pk\":{\"S\":\"H\u{e9}\u{1F600}/\"},\"sk\":{\"N\":\"1.0\"}}}");
        assert!(a.is_some() && a == b);
        assert!(check(
            r#" { "Item" : { "p\u006b" : { "S" : "x" } , "sk" : { "NULL" : false } } } "#
        )
        .is_some());
    }

    #[test]
    fn string_keys_hash_like_the_whole_line_and_other_keys_are_left_alone() {
        for keys in [vec!["pk"], vec!["pk", "a\"b"]] {
            let mut hasher = ItemHasher::new(keys.iter().map(|k| k.to_string()).collect());
            for item in varied_items() {
                let line = ItemLine { item };
                for text in [
                    serde_json::to_vec(&line).unwrap(),
                    serde_json::to_vec_pretty(&line).unwrap(),
                ] {
                    let whole = hasher.hash_line(&text).unwrap().key;
                    assert_eq!(
                        hasher.key_hash_line(&text),
                        Some(whole),
                        "{keys:?} {line:?}"
                    );
                }
            }
        }
        let mut hasher = ItemHasher::new(vec!["pk".into(), "sk".into()]);
        for line in [
            r#"{"Item":{"pk":{"S":"x"},"sk":{"N":"1"}}}"#,
            r#"{"Item":{"pk":{"S":"x"}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"},"pk":{"S":"z"}}}"#,
            r#"{"Other":{"pk":{"S":"x"},"sk":{"S":"y"}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"}}} x"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"}"#,
        ] {
            assert_eq!(hasher.key_hash_line(line.as_bytes()), None, "{line}");
        }
    }

    #[test]
    fn doubtful_lines_go_the_owned_way() {
        for line in [
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"},"pk":{"S":"z"}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"}},"Other":1}"#,
            r#"{"Item":{"pk":{"S":"x"}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"N":"1.2.3"}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"N":1}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"X":"1"}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{}}}"#,
            r#"{"Item":{"pk":{"S":"x","N":"1"},"sk":{"S":"y"}}}"#,
            r#"{"Item":{"pk":{"B":"***"},"sk":{"S":"y"}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"}}} x"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"},}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"\ud800"}}}"#,
            "{\"Item\":{\"pk\":{\"S\":\"a\tb\"},\"sk\":{\"S\":\"y\"}}}",
            r#"{"Item":{"pk":{"S":"x"},"sk":{"M":{"a":{"S":"1"},"a":{"S":"2"}}}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"BOOL":tru}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"L":[{"S":"1"},]}}}"#,
            r#"{"Item":{"pk":{"S":"x"},"sk":{"S":"y"}}"#,
            "{\"Item\":{\"pk\":{\"S\":\"\\\"}}}",
        ] {
            assert_eq!(check(line), None, "{line}");
        }
        let mut hasher = ItemHasher::new(vec!["pk".into()]);
        assert_eq!(
            hasher.hash_line(b"{\"Item\":{\"pk\":{\"S\":\"\xff\"}}}"),
            None
        );
    }
}
