//! One row straight to its DynamoDB JSON line and its [`ItemHash`], without building an
//! [`Item`]: the bootstrap's per-row work. The result is byte for byte what
//! [`ItemMapper::map_row`], [`crate::encode::ItemWriter::write_item`] and [`ItemHasher::hash`]
//! give together, which the tests below check on varied rows.
//!
//! What is fixed per mapper is computed once: each attribute's slot, its name as JSON writes it,
//! and the order of the slots by name (the canonical encoding's order). A row then writes its
//! JSON in `map_row`'s attribute order, and each value's canonical encoding into a scratch
//! buffer that the hash assembles in name order.
//!
//! Anything unusual falls back to the owned path: a row that fails to map (so the error is
//! exactly `map_row`'s), or a mapper whose attribute names collide other than by a column
//! yielding to a key of the same name.

use base64::Engine as _;
use ferry_core::spec::{KeyType, NullAs};
use xxhash_rust::xxh3::xxh3_128;

use super::{decode_bytea_into, push_iso_timestamp, ColumnKind, ItemMapper, KeyPart, MapError};
use crate::digest::{
    encode_value, put_bytes, put_len, put_number_parts, DigestError, ItemHash, ItemHasher,
};
use crate::swar::{byte_mask, ONES};
use crate::value::{check_dynamodb_number_into, scan_number, AttributeValue, Item};

/// Why a row gives no item: the same errors as the owned path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error(transparent)]
    Map(#[from] MapError),
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// Per-mapper facts of the fast path.
#[derive(Debug, Clone)]
struct RowPlan {
    /// Per slot: the attribute name.
    names: Vec<String>,
    /// Per slot: `,"name":` as serde_json writes it (the comma skipped for the first).
    json_names: Vec<Vec<u8>>,
    /// Per slot: the name as the canonical encoding writes it (length, bytes).
    canonical_names: Vec<Vec<u8>>,
    /// Slots by attribute name (bytes): the canonical order.
    sorted: Vec<usize>,
    /// Per key of the mapper (primary, then GSI keys): its slot.
    key_slots: Vec<usize>,
    /// Per key: whether its text can never need a JSON escape (literals without one, columns
    /// of kinds whose text has none).
    key_plain: Vec<bool>,
    /// Per selected column: the slot of its attribute, if it has one.
    column_slots: Vec<Option<usize>>,
    ttl_slot: Option<usize>,
}

impl RowPlan {
    /// `None` when attribute names collide in a way the owned path resolves by position.
    fn new(mapper: &ItemMapper) -> Option<RowPlan> {
        let mut names: Vec<String> = Vec::new();
        let mut key_slots = Vec::new();
        for key in &mapper.keys {
            if names.contains(&key.attribute) {
                return None;
            }
            key_slots.push(names.len());
            names.push(key.attribute.clone());
        }
        let mut column_slots = Vec::new();
        let mut column_names: Vec<&str> = Vec::new();
        for (index, attribute) in mapper.attributes.iter().enumerate() {
            let Some(attribute) = attribute else {
                column_slots.push(None);
                continue;
            };
            if column_names.contains(&attribute.as_str()) {
                return None;
            }
            column_names.push(attribute);
            // A column named like a key yields to it: they share the slot, one of them is set.
            let slot = match mapper.shadowed_by[index] {
                Some(key) => key_slots[key],
                None => {
                    if names.contains(attribute) {
                        return None;
                    }
                    names.push(attribute.clone());
                    names.len() - 1
                }
            };
            column_slots.push(Some(slot));
        }
        let ttl_slot = match &mapper.ttl {
            Some((attribute, _)) => {
                if names.contains(attribute) {
                    return None;
                }
                names.push(attribute.clone());
                Some(names.len() - 1)
            }
            None => None,
        };
        let json_names = names
            .iter()
            .map(|name| {
                let mut out = vec![b','];
                serde_json::to_writer(&mut out, name).expect("a string serialises");
                out.push(b':');
                out
            })
            .collect();
        let canonical_names = names
            .iter()
            .map(|name| {
                let mut out = Vec::new();
                put_bytes(&mut out, name.as_bytes());
                out
            })
            .collect();
        let key_plain = mapper
            .keys
            .iter()
            .map(|key| {
                key.parts.iter().all(|part| match part {
                    KeyPart::Literal(text) => !needs_json_escape(text.as_bytes()),
                    KeyPart::Column(index) => plain_text_kind(mapper.columns[*index].kind),
                })
            })
            .collect();
        let mut sorted: Vec<usize> = (0..names.len()).collect();
        sorted.sort_by(|&a, &b| names[a].as_bytes().cmp(names[b].as_bytes()));
        Some(RowPlan {
            names,
            json_names,
            canonical_names,
            sorted,
            key_slots,
            key_plain,
            column_slots,
            ttl_slot,
        })
    }
}

/// Turns rows of one mapper into DynamoDB JSON lines and item hashes, reusing its buffers.
#[derive(Debug, Clone)]
pub struct RowEncoder<'a> {
    mapper: &'a ItemMapper,
    plan: Option<RowPlan>,
    hasher: ItemHasher,
    /// The current row's `{"Item":{...}}\n`.
    line: Vec<u8>,
    /// Canonical value encodings of the current row, and each slot's range in it.
    values: Vec<u8>,
    ranges: Vec<Option<(usize, usize)>>,
    attributes: usize,
    canonical: Vec<u8>,
    digits: Vec<u8>,
    text: String,
    bytes: Vec<u8>,
    base64: String,
    slow_rows: u64,
}

impl ItemMapper {
    /// A [`RowEncoder`] for this mapper's rows.
    pub fn row_encoder(&self) -> RowEncoder<'_> {
        let plan = RowPlan::new(self);
        let slots = plan.as_ref().map_or(0, |p| p.names.len());
        RowEncoder {
            mapper: self,
            plan,
            hasher: ItemHasher::new(self.primary_key_attributes()),
            line: Vec::with_capacity(1024),
            values: Vec::with_capacity(1024),
            ranges: vec![None; slots],
            attributes: 0,
            canonical: Vec::with_capacity(1024),
            digits: Vec::with_capacity(64),
            text: String::with_capacity(256),
            bytes: Vec::new(),
            base64: String::new(),
            slow_rows: 0,
        }
    }
}

impl RowEncoder<'_> {
    /// Encodes one row (`fields` follow [`ItemMapper::columns`]); the line is then [`Self::line`].
    pub fn encode(&mut self, fields: &[Option<&str>]) -> Result<ItemHash, RowError> {
        if self.plan.is_some() {
            if let Some(hash) = self.encode_fast(fields) {
                return Ok(hash);
            }
        }
        self.encode_owned(fields)
    }

    /// The `{"Item":{...}}` line of the last encoded row, newline included.
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    /// Whether rows take the fast path (false when attribute names collide).
    pub fn is_fast(&self) -> bool {
        self.plan.is_some()
    }

    /// Rows that went through the owned path (errors, or every row without a fast path).
    pub fn slow_rows(&self) -> u64 {
        self.slow_rows
    }

    /// The reference path: `map_row`, `ItemHasher::hash`, serde_json.
    fn encode_owned(&mut self, fields: &[Option<&str>]) -> Result<ItemHash, RowError> {
        self.slow_rows += 1;
        let item = self.mapper.map_row(fields)?;
        let hash = self.hasher.hash(&item)?;
        write_owned_line(&mut self.line, &item);
        Ok(hash)
    }

    /// `None`: the row needs the owned path (it fails somewhere, and that path says how).
    fn encode_fast(&mut self, fields: &[Option<&str>]) -> Option<ItemHash> {
        let mapper = self.mapper;
        let plan = self.plan.take()?;
        let result = self.fill(mapper, &plan, fields);
        let hash = result.map(|()| self.hash(mapper, &plan));
        self.plan = Some(plan);
        hash
    }

    fn fill(&mut self, mapper: &ItemMapper, plan: &RowPlan, fields: &[Option<&str>]) -> Option<()> {
        debug_assert_eq!(fields.len(), mapper.columns.len());
        self.line.clear();
        self.line.extend_from_slice(b"{\"Item\":{");
        self.values.clear();
        self.ranges.iter_mut().for_each(|r| *r = None);
        self.attributes = 0;

        let mut emitted: u128 = 0;
        for (n, key) in mapper.keys.iter().enumerate() {
            let has_null = key
                .parts
                .iter()
                .any(|p| matches!(p, KeyPart::Column(i) if fields[*i].is_none()));
            if has_null {
                if n < mapper.primary_keys {
                    return None;
                }
                continue;
            }
            emitted |= 1 << n;
            let mut rendered = std::mem::take(&mut self.text);
            rendered.clear();
            let built = self.key(mapper, plan, n, fields, &mut rendered);
            self.text = rendered;
            built?;
        }
        for (index, slot) in plan.column_slots.iter().enumerate() {
            let Some(slot) = *slot else { continue };
            if mapper.shadowed_by[index].is_some_and(|key| emitted & (1 << key) != 0) {
                continue;
            }
            match fields[index] {
                None => match mapper.null_as {
                    NullAs::Omit => continue,
                    NullAs::Null => {
                        self.start(plan, slot);
                        self.line.extend_from_slice(b"{\"NULL\":true}");
                        self.values.push(b'0');
                        self.end(slot);
                    }
                },
                Some(text) => self.column(mapper, plan, slot, index, text)?,
            }
        }
        if let (Some((_, index)), Some(slot)) = (&mapper.ttl, plan.ttl_slot) {
            if let Some(text) = fields[*index] {
                if let Some(seconds) = mapper.epoch_seconds(*index, text).ok()? {
                    let mut digits = itoa::Buffer::new();
                    self.integer(plan, slot, digits.format(seconds))?;
                }
            }
        }
        self.line.extend_from_slice(b"}}\n");
        Some(())
    }

    fn key(
        &mut self,
        mapper: &ItemMapper,
        plan: &RowPlan,
        n: usize,
        fields: &[Option<&str>],
        rendered: &mut String,
    ) -> Option<()> {
        let key = &mapper.keys[n];
        for part in &key.parts {
            match part {
                KeyPart::Literal(text) => rendered.push_str(text),
                KeyPart::Column(index) => {
                    mapper
                        .push_key_text(*index, fields[*index]?, rendered)
                        .ok()?;
                }
            }
        }
        let slot = plan.key_slots[n];
        match key.spec.key_type {
            KeyType::String => {
                if rendered.is_empty() {
                    return None;
                }
                self.string(plan, slot, rendered, !plan.key_plain[n]);
            }
            KeyType::Number => {
                let (negative, exponent) =
                    check_dynamodb_number_into(rendered, &mut self.digits).ok()?;
                self.scanned_number(plan, slot, rendered, negative, exponent);
            }
            KeyType::Binary => {
                let mut bytes = std::mem::take(&mut self.bytes);
                bytes.clear();
                let decoded = match key.single {
                    Some(index) if mapper.columns[index].kind == ColumnKind::Bytea => {
                        decode_bytea_into(fields[index].unwrap_or_default(), &mut bytes).ok()
                    }
                    _ => {
                        bytes.extend_from_slice(rendered.as_bytes());
                        Some(())
                    }
                };
                if decoded.is_some() {
                    self.binary(plan, slot, &bytes);
                }
                self.bytes = bytes;
                decoded?;
            }
        }
        Some(())
    }

    fn column(
        &mut self,
        mapper: &ItemMapper,
        plan: &RowPlan,
        slot: usize,
        index: usize,
        text: &str,
    ) -> Option<()> {
        match mapper.columns[index].kind {
            // Integers are not checked when mapped; a bad one fails when hashed (owned path).
            ColumnKind::Integer => self.integer(plan, slot, text)?,
            ColumnKind::Numeric | ColumnKind::Float => match PlainDecimal::of(text) {
                Some(decimal) => self.number_attribute(
                    plan,
                    slot,
                    text,
                    (decimal.negative, decimal.exponent as i64),
                    decimal.integer,
                    decimal.fraction,
                ),
                None => {
                    let (negative, exponent) =
                        check_dynamodb_number_into(text, &mut self.digits).ok()?;
                    self.scanned_number(plan, slot, text, negative, exponent);
                }
            },
            ColumnKind::Bool => {
                let value = match text {
                    "t" => true,
                    "f" => false,
                    _ => return None,
                };
                self.start(plan, slot);
                self.line.extend_from_slice(if value {
                    b"{\"BOOL\":true}"
                } else {
                    b"{\"BOOL\":false}"
                });
                self.values.push(if value { b'T' } else { b'F' });
                self.end(slot);
            }
            ColumnKind::Date => self.string(plan, slot, text, false),
            ColumnKind::Text | ColumnKind::Other => self.string(plan, slot, text, true),
            ColumnKind::Timestamp => {
                let mut iso = std::mem::take(&mut self.text);
                iso.clear();
                let converted = push_iso_timestamp(text, &mut iso).ok();
                if converted.is_some() {
                    self.string(plan, slot, &iso, false);
                }
                self.text = iso;
                converted?;
            }
            ColumnKind::Json | ColumnKind::Array => {
                // Rare and nested: through the owned value.
                let value = mapper.convert(index, text).ok()?;
                self.owned_value(plan, slot, &value)?;
            }
            ColumnKind::Bytea => {
                let mut bytes = std::mem::take(&mut self.bytes);
                bytes.clear();
                let decoded = decode_bytea_into(text, &mut bytes).ok();
                if decoded.is_some() {
                    self.binary(plan, slot, &bytes);
                }
                self.bytes = bytes;
                decoded?;
            }
        }
        Some(())
    }

    /// Opens an attribute: separator and name in the line, name in the canonical values.
    fn start(&mut self, plan: &RowPlan, slot: usize) {
        let first = usize::from(self.attributes == 0);
        self.attributes += 1;
        self.line.extend_from_slice(&plan.json_names[slot][first..]);
        let start = self.values.len();
        self.values.extend_from_slice(&plan.canonical_names[slot]);
        self.ranges[slot] = Some((start, self.values.len()));
    }

    fn end(&mut self, slot: usize) {
        if let Some((_, end)) = &mut self.ranges[slot] {
            *end = self.values.len();
        }
    }

    /// An `S`; `escape` false when the text cannot hold a byte JSON escapes.
    fn string(&mut self, plan: &RowPlan, slot: usize, text: &str, escape: bool) {
        self.start(plan, slot);
        self.line.extend_from_slice(b"{\"S\":");
        if escape {
            push_json_string(&mut self.line, text);
        } else {
            push_quoted(&mut self.line, text);
        }
        self.line.push(b'}');
        self.values.push(b'S');
        put_bytes(&mut self.values, text.as_bytes());
        self.end(slot);
    }

    /// An `N` whose text is not checked against DynamoDB's limits (integers, TTL seconds).
    fn number(&mut self, plan: &RowPlan, slot: usize, text: &str) -> Option<()> {
        let (negative, exponent) = scan_number(text, &mut self.digits).ok()?;
        self.scanned_number(plan, slot, text, negative, exponent);
        Some(())
    }

    /// An `N` of an integer's text: a plain one (`-`? digits, no leading zero) is its own
    /// canonical digits, trailing zeros aside, with no scan into a buffer; others go through
    /// [`Self::number`].
    fn integer(&mut self, plan: &RowPlan, slot: usize, text: &str) -> Option<()> {
        let (negative, magnitude) = match text.as_bytes() {
            [b'-', rest @ ..] => (true, rest),
            all => (false, all),
        };
        let plain = match magnitude {
            [] => false,
            [b'0', _, ..] => false,
            digits => digits.iter().all(u8::is_ascii_digit),
        };
        if !plain {
            return self.number(plan, slot, text);
        }
        let significant = magnitude.len()
            - magnitude
                .iter()
                .rev()
                .take_while(|digit| **digit == b'0')
                .count();
        let (negative, exponent, digits) = match significant {
            0 => (false, 0, &[][..]),
            _ => (negative, magnitude.len() as i64, &magnitude[..significant]),
        };
        self.number_attribute(plan, slot, text, (negative, exponent), digits, &[]);
        Some(())
    }

    /// An `N` already scanned into `self.digits`.
    fn scanned_number(
        &mut self,
        plan: &RowPlan,
        slot: usize,
        text: &str,
        negative: bool,
        exponent: i64,
    ) {
        let digits = std::mem::take(&mut self.digits);
        self.number_attribute(plan, slot, text, (negative, exponent), &digits, &[]);
        self.digits = digits;
    }

    /// An `N`: `text` in the line, its canonical form (sign, exponent, significant digits
    /// `head` then `tail`) in the values.
    fn number_attribute(
        &mut self,
        plan: &RowPlan,
        slot: usize,
        text: &str,
        (negative, exponent): (bool, i64),
        head: &[u8],
        tail: &[u8],
    ) {
        self.start(plan, slot);
        self.line.extend_from_slice(b"{\"N\":");
        // A number's text is digits, signs, a point and an exponent: nothing to escape.
        push_quoted(&mut self.line, text);
        self.line.push(b'}');
        self.values.push(b'N');
        put_number_parts(&mut self.values, negative, exponent, head, tail);
        self.end(slot);
    }

    fn binary(&mut self, plan: &RowPlan, slot: usize, bytes: &[u8]) {
        self.start(plan, slot);
        self.line.extend_from_slice(b"{\"B\":\"");
        // Base64 needs no JSON escaping.
        self.base64.clear();
        base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut self.base64);
        self.line.extend_from_slice(self.base64.as_bytes());
        self.line.extend_from_slice(b"\"}");
        self.values.push(b'B');
        put_bytes(&mut self.values, bytes);
        self.end(slot);
    }

    fn owned_value(&mut self, plan: &RowPlan, slot: usize, value: &AttributeValue) -> Option<()> {
        self.start(plan, slot);
        serde_json::to_writer(&mut self.line, value).ok()?;
        encode_value(&mut self.values, value, &mut self.digits).ok()?;
        self.end(slot);
        Some(())
    }

    fn hash(&mut self, mapper: &ItemMapper, plan: &RowPlan) -> ItemHash {
        let out = &mut self.canonical;
        out.clear();
        for &slot in &plan.key_slots[..mapper.primary_keys] {
            let (start, end) = self.ranges[slot].expect("primary keys are always set");
            out.extend_from_slice(&self.values[start..end]);
        }
        let key = xxh3_128(out);
        out.clear();
        put_len(out, self.attributes);
        for &slot in &plan.sorted {
            if let Some((start, end)) = self.ranges[slot] {
                out.extend_from_slice(&self.values[start..end]);
            }
        }
        ItemHash {
            key,
            item: xxh3_128(out),
        }
    }
}

/// A number as PostgreSQL prints most numerics and floats: `-`?, an integer part that does not
/// start with `0`, and maybe `.` and a fraction. Its significant digits are both parts with
/// trailing zeros dropped, its exponent the integer part's length, so the canonical form is
/// written without a scan into a buffer.
#[derive(Debug, PartialEq, Eq)]
struct PlainDecimal<'t> {
    negative: bool,
    exponent: usize,
    integer: &'t [u8],
    fraction: &'t [u8],
}

impl<'t> PlainDecimal<'t> {
    /// `None` for any other shape (zero, `0.5`, exponents, NaN, `+`, junk) and for more than 38
    /// integer or significant digits: [`check_dynamodb_number_into`] judges those.
    fn of(text: &'t str) -> Option<PlainDecimal<'t>> {
        let (negative, magnitude) = match text.as_bytes() {
            [b'-', rest @ ..] => (true, rest),
            all => (false, all),
        };
        let point = magnitude
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(magnitude.len());
        let integer = &magnitude[..point];
        let fraction = match &magnitude[point..] {
            [] => &[][..],
            [b'.', fraction @ ..] if fraction.iter().all(u8::is_ascii_digit) => fraction,
            _ => return None,
        };
        if !matches!(integer.first(), Some(b'1'..=b'9')) {
            return None;
        }
        let trim = |digits: &'t [u8]| {
            let zeros = digits.iter().rev().take_while(|d| **d == b'0').count();
            &digits[..digits.len() - zeros]
        };
        let fraction = trim(fraction);
        let exponent = integer.len();
        let integer = if fraction.is_empty() {
            trim(integer)
        } else {
            integer
        };
        // At most 38 integer digits keeps the exponent within DynamoDB's range.
        (exponent <= 38 && integer.len() + fraction.len() <= 38).then_some(PlainDecimal {
            negative,
            exponent,
            integer,
            fraction,
        })
    }
}

/// `text` as a JSON string, escaped exactly as serde_json escapes it.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    if needs_json_escape(text.as_bytes()) {
        serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
    } else {
        push_quoted(out, text);
    }
}

/// `text` in quotes, for text known to need no JSON escape.
fn push_quoted(out: &mut Vec<u8>, text: &str) {
    debug_assert!(!needs_json_escape(text.as_bytes()), "{text:?}");
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// Whether PostgreSQL's text of a column of this kind (as a key part: booleans become
/// `true`/`false`, timestamps ISO-8601) never holds a byte JSON escapes.
fn plain_text_kind(kind: ColumnKind) -> bool {
    match kind {
        ColumnKind::Integer
        | ColumnKind::Numeric
        | ColumnKind::Float
        | ColumnKind::Bool
        | ColumnKind::Date
        | ColumnKind::Timestamp => true,
        ColumnKind::Text
        | ColumnKind::Other
        | ColumnKind::Json
        | ColumnKind::Array
        | ColumnKind::Bytea => false,
    }
}

/// Whether `bytes` hold a control character, `"` or `\`, eight bytes at a time. (A false
/// positive would only send the string through serde_json, which writes the same bytes.)
fn needs_json_escape(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Nonzero exactly when some byte of `v` is below `n` (n <= 128).
    let has_below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        if has_below(v, 0x20) || byte_mask(v, b'"') | byte_mask(v, b'\\') != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// `{"Item":{...}}\n` of an owned item, as [`crate::encode::ItemWriter::write_item`] writes it.
fn write_owned_line(line: &mut Vec<u8>, item: &Item) {
    line.clear();
    line.extend_from_slice(b"{\"Item\":");
    serde_json::to_writer(&mut *line, item).expect("writing to a Vec cannot fail");
    line.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use ferry_core::spec::{
        Attributes, ColumnSelection, DynamoDbSettings, Gsi, KeyAttribute, KeySchema, KeyTemplate,
        Projection, TableSource, TableSpec, Ttl,
    };

    use super::*;
    use crate::digest::put_scanned_number;
    use crate::item::tests::col;
    use crate::item::SourceColumn;
    use crate::value::ItemLine;

    fn key(attribute: &str, template: &str, key_type: KeyType) -> KeyAttribute {
        KeyAttribute {
            attribute: attribute.into(),
            template: KeyTemplate::parse(template).unwrap(),
            key_type,
        }
    }

    fn spec(null_as: NullAs) -> TableSpec {
        TableSpec {
            name: "AllKinds".into(),
            shards: vec!["p*".into()],
            source: TableSource::Table("public.all_kinds".into()),
            columns: None,
            sensitive: vec![],
            null_as,
            wide_numbers_as_string: vec![],
            compression: Default::default(),
            chunk_target_mb: None,
            chunk_key: None,
            key: KeySchema {
                partition: key("pk", "HOTEL#{hotel_id}", KeyType::String),
                sort: Some(key(
                    "sk",
                    "D#{stay_date}#{open}#{updated_at}",
                    KeyType::String,
                )),
            },
            attributes: Attributes {
                selection: ColumnSelection::Exclude(vec!["secret".into()]),
                // `gsi1pk` is also a column attribute: it yields to the index key when set.
                rename: [
                    ("updated_at".to_string(), "updatedAt".to_string()),
                    ("label".to_string(), "gsi1pk".to_string()),
                    ("note".to_string(), "n\u{e9}te \"q\"\t".to_string()),
                ]
                .into(),
            },
            ttl: Some(Ttl {
                attribute: "expiresAt".into(),
                column: "expiry".into(),
            }),
            dynamodb: DynamoDbSettings {
                billing: ferry_core::spec::Billing::PayPerRequest,
                pitr: true,
                streaming: None,
                tags: Default::default(),
                gsis: vec![
                    Gsi {
                        name: "byLabel".into(),
                        key: KeySchema {
                            partition: key("gsi1pk", "L#{label}", KeyType::String),
                            sort: Some(key("gsi1sk", "{amount}", KeyType::Number)),
                        },
                        projection: Projection::KeysOnly,
                    },
                    Gsi {
                        name: "byRaw".into(),
                        key: KeySchema {
                            partition: key("gsi2pk", "{raw}", KeyType::Binary),
                            sort: Some(key("gsi2sk", "R#{note}", KeyType::Binary)),
                        },
                        projection: Projection::KeysOnly,
                    },
                ],
            },
        }
    }

    fn columns() -> Vec<SourceColumn> {
        vec![
            col("hotel_id", ColumnKind::Integer),
            col("stay_date", ColumnKind::Date),
            col("amount", ColumnKind::Numeric),
            col("ratio", ColumnKind::Float),
            col("open", ColumnKind::Bool),
            col("note", ColumnKind::Text),
            col("label", ColumnKind::Text),
            col("updated_at", ColumnKind::Timestamp),
            col("details", ColumnKind::Json),
            col("tags", ColumnKind::Array),
            col("raw", ColumnKind::Bytea),
            col("other", ColumnKind::Other),
            col("expiry", ColumnKind::Timestamp),
            col("secret", ColumnKind::Text),
        ]
    }

    /// Candidate texts per selected column (`None` is NULL).
    fn candidates() -> Vec<Vec<Option<&'static str>>> {
        vec![
            vec![
                Some("42"),
                Some("-7"),
                Some("0"),
                Some("9007199254740993"),
                Some("100"),
                Some("-1200"),
                Some("007"),
                Some("-0"),
                Some("+5"),
            ],
            vec![Some("2026-01-01"), Some("1999-12-31")],
            vec![
                Some("120.50"),
                Some("-0"),
                Some("0.000"),
                Some("1e5"),
                Some("-12.340E-3"),
                None,
            ],
            vec![Some("0.25"), Some("1e+100"), Some("-3.5"), None],
            vec![Some("t"), Some("f")],
            vec![
                Some("H\u{f4}tel \"quoted\" \\ back\nline\ttab\u{1}ctl"),
                Some("plain"),
                Some("\u{1F600} emoji, \u{7f} del, </script>"),
                Some(""),
                None,
            ],
            vec![Some("gold"), Some("a\"b"), None],
            vec![
                Some("2026-01-02 03:04:05.5+00"),
                Some("2026-01-02 03:04:05"),
                Some("infinity"),
            ],
            vec![
                Some(r#"{"a": [1, "x\"y", null, true, {"b": 1.50, "a": {"z": []}}], "e": {}}"#),
                Some(r#"[1, 2.50, -0, "\u00e9"]"#),
                Some("null"),
                Some(r#""just text""#),
                None,
            ],
            vec![
                Some(r#"["a", "b", "a"]"#),
                Some("[]"),
                Some("[[1, 2], [3]]"),
                None,
            ],
            vec![Some("\\x00ff10"), Some("\\x"), None],
            vec![Some("(1,2)"), Some("back\\slash"), None],
            vec![
                Some("2026-04-01 00:00:00+00"),
                Some("infinity"),
                Some("2030-01-01 12:00:00.25"),
                None,
            ],
        ]
    }

    fn reference(
        mapper: &ItemMapper,
        fields: &[Option<&str>],
    ) -> Result<(ItemHash, Vec<u8>), RowError> {
        let item = mapper.map_row(fields)?;
        let hash = ItemHasher::new(mapper.primary_key_attributes()).hash(&item)?;
        let mut line = serde_json::to_vec(&ItemLine { item }).unwrap();
        line.push(b'\n');
        Ok((hash, line))
    }

    /// Every row of a deterministic walk over the candidates, fast path against owned path.
    fn check_rows(mapper: &ItemMapper, expect_fast: bool) -> usize {
        let candidates = candidates();
        let mut encoder = mapper.row_encoder();
        assert_eq!(encoder.is_fast(), expect_fast);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut ok = 0;
        for row in 0..3000 {
            let fields: Vec<Option<&str>> = candidates
                .iter()
                .enumerate()
                .map(|(column, values)| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    values[(state as usize + row * column) % values.len()]
                })
                .collect();
            let fields = &fields[..mapper.columns().len()];
            let expected = reference(mapper, fields);
            let got = encoder
                .encode(fields)
                .map(|hash| (hash, encoder.line().to_vec()));
            assert_eq!(
                got.as_ref().map(|(h, l)| (h, String::from_utf8_lossy(l))),
                expected
                    .as_ref()
                    .map(|(h, l)| (h, String::from_utf8_lossy(l))),
                "row {fields:?}"
            );
            ok += usize::from(got.is_ok());
        }
        ok
    }

    #[test]
    fn fast_rows_equal_the_owned_path_byte_for_byte() {
        for null_as in [NullAs::Omit, NullAs::Null] {
            let mapper = ItemMapper::new(&spec(null_as), &columns()).unwrap();
            assert_eq!(mapper.columns().len(), 13);
            let ok = check_rows(&mapper, true);
            assert!(ok > 1000, "most rows map ({ok})");
            // Only rows that fail (NULL number key) take the owned path.
            let mut encoder = mapper.row_encoder();
            let fields: Vec<Option<&str>> = candidates().iter().map(|c| c[0]).collect();
            encoder.encode(&fields[..13]).unwrap();
            assert_eq!(encoder.slow_rows(), 0);
        }
    }

    #[test]
    fn plain_decimals_write_what_the_number_scan_writes() {
        let nines = "9".repeat(37);
        let plain = [
            "1".to_owned(),
            "10".to_owned(),
            "100.00".to_owned(),
            "104.98".to_owned(),
            "-41.40".to_owned(),
            "7.0".to_owned(),
            "-3.5".to_owned(),
            "5.".to_owned(),
            "1.000001".to_owned(),
            format!("{nines}9"),
            format!("{nines}.5"),
            format!("1{}", "0".repeat(37)),
            format!("-{}.{}", "12345".repeat(4), "6789".repeat(4)),
        ];
        let other = [
            "0.5".to_owned(),
            "0".to_owned(),
            "-0".to_owned(),
            "0.00".to_owned(),
            "00.5".to_owned(),
            "+5".to_owned(),
            "1e5".to_owned(),
            "1.5E-3".to_owned(),
            "NaN".to_owned(),
            "-Infinity".to_owned(),
            "1.2.3".to_owned(),
            "1-".to_owned(),
            "-".to_owned(),
            String::new(),
            ".5".to_owned(),
            "12a".to_owned(),
            "1.5x".to_owned(),
            format!("{nines}99.5"),
            format!("1{}", "0".repeat(38)),
            format!("1{}", "0".repeat(130)),
        ];
        let mut digits = Vec::new();
        for text in &plain {
            let decimal = PlainDecimal::of(text).unwrap_or_else(|| panic!("{text} is plain"));
            let (negative, exponent) = check_dynamodb_number_into(text, &mut digits).unwrap();
            let mut expected = Vec::new();
            put_scanned_number(&mut expected, negative, exponent, &digits);
            let mut got = Vec::new();
            put_number_parts(
                &mut got,
                decimal.negative,
                decimal.exponent as i64,
                decimal.integer,
                decimal.fraction,
            );
            assert_eq!(got, expected, "{text}");
        }
        for text in &other {
            assert_eq!(PlainDecimal::of(text), None, "{text}");
        }
    }

    #[test]
    fn the_escape_scan_finds_every_byte_json_escapes() {
        for len in 0..20 {
            for at in 0..len {
                for byte in 0u8..=255 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                    assert_eq!(
                        needs_json_escape(&bytes),
                        expected,
                        "{byte} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn number_keys_and_a_ttl_of_epoch_seconds() {
        let mut s = spec(NullAs::Omit);
        s.key.partition = key("hotel", "{hotel_id}", KeyType::Number);
        s.key.sort = Some(key("raw", "{raw}", KeyType::Binary));
        s.ttl = Some(Ttl {
            attribute: "ttl".into(),
            column: "hotel_id".into(),
        });
        let mapper = ItemMapper::new(&s, &columns()).unwrap();
        assert!(check_rows(&mapper, true) > 500);
    }

    #[test]
    fn colliding_names_and_bad_rows_take_the_owned_path() {
        // The TTL attribute replaces a column attribute of the same name in place.
        let mut s = spec(NullAs::Null);
        s.ttl = Some(Ttl {
            attribute: "stay_date".into(),
            column: "expiry".into(),
        });
        let mapper = ItemMapper::new(&s, &columns()).unwrap();
        assert!(check_rows(&mapper, false) > 1000);

        let mapper = ItemMapper::new(&spec(NullAs::Omit), &columns()).unwrap();
        let mut encoder = mapper.row_encoder();
        let good: Vec<Option<&str>> = candidates().iter().map(|c| c[0]).collect();
        for (index, bad) in [
            (2, "1".repeat(39)),
            (3, "NaN".to_owned()),
            (3, "1e-300".to_owned()),
            (0, "x1".to_owned()),
            (4, "maybe".to_owned()),
            (7, "2026-01-02 03:04:05+02".to_owned()),
            (8, "{".to_owned()),
            (10, "\\x0".to_owned()),
            (12, "soon".to_owned()),
        ] {
            let mut fields = good[..13].to_vec();
            fields[index] = Some(bad.as_str());
            let expected = reference(&mapper, &fields);
            assert!(expected.is_err(), "{bad}");
            assert_eq!(encoder.encode(&fields).unwrap_err(), expected.unwrap_err());
        }
        let mut fields = good[..13].to_vec();
        fields[0] = None;
        assert_eq!(
            encoder.encode(&fields).unwrap_err(),
            reference(&mapper, &fields).unwrap_err()
        );
        // After errors, a good row is still right.
        let expected = reference(&mapper, &good[..13]).unwrap();
        assert_eq!(encoder.encode(&good[..13]).unwrap(), expected.0);
        assert_eq!(encoder.line(), expected.1);
    }
}
