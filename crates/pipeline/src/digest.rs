//! Canonical item encoding and order-independent bucket digests (DESIGN.md section 6).
//!
//! [`ItemHasher::hash`] is the one function both sides of verification use: the bootstrap hashes
//! the items it maps from rows, the compare step hashes the items it parses from DynamoDB export
//! files, and equal items give equal hashes whatever the attribute order, the number spelling
//! (`1.50` = `1.5`, `-0` = `0`, `15E-1` = `1.5`) or the order of a set's members.
//!
//! Two fast paths give the same hashes without building an [`Item`]: [`ItemHasher::hash_line`]
//! reads a DynamoDB JSON line (verification), and [`crate::item::RowEncoder`] encodes a mapped
//! row (bootstrap). Their tests check them against [`ItemHasher::hash`] on varied items.
//!
//! Canonical encoding (hashed with xxh3-128):
//! - item: attributes sorted by name (bytes); each is `u32 LE length, name, value`;
//! - value: one tag byte then the payload: `S`/`B` length-prefixed bytes; `N` the length-prefixed
//!   normalised number text ([`crate::value::NormalizedNumber`]); `T`/`F` for booleans; `0` for
//!   NULL; `L` a count then the values in order; `M` a count then the sorted entries as above;
//!   `s`/`n`/`b` (string, number, binary sets) a count then the members' encodings, sorted.
//!
//! Bucket of an item = the top `bits` bits of the xxh3-128 of the canonical encoding of its key
//! attributes alone (partition, then sort), so one key always falls in one bucket on both sides.
//! A bucket keeps the count of its items and the wrapping sum of their hashes: merging is
//! addition, so chunks and files can be digested in any order and in parallel.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::value::{normalize_number, scan_number, AttributeValue, Item, NumberError};

mod line;

/// Default number of bucket bits: 1,024 buckets.
pub const DEFAULT_BUCKET_BITS: u8 = 10;
/// At most 2^16 buckets, so a digest stays small enough for a chunk manifest.
pub const MAX_BUCKET_BITS: u8 = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("attribute \"{attribute}\": {source}")]
    Number {
        attribute: String,
        source: NumberError,
    },
    #[error("the item has no key attribute \"{0}\"")]
    MissingKey(String),
    #[error("bucket bits must be 1 to {MAX_BUCKET_BITS}, not {0}")]
    BucketBits(u8),
    #[error("cannot merge digests of {0} and {1} bucket bits")]
    BitsMismatch(u8, u8),
}

/// The two hashes of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemHash {
    pub key: u128,
    pub item: u128,
}

/// Hashes items canonically; holds the key attribute names and a reusable buffer.
#[derive(Debug, Clone)]
pub struct ItemHasher {
    key_attributes: Vec<String>,
    buffer: Vec<u8>,
    order: Vec<usize>,
    digits: Vec<u8>,
    line: line::LineScratch,
}

impl ItemHasher {
    /// `key_attributes`: the partition key attribute, then the sort key attribute if any.
    pub fn new(key_attributes: Vec<String>) -> Self {
        ItemHasher {
            key_attributes,
            buffer: Vec::with_capacity(1024),
            order: Vec::new(),
            digits: Vec::new(),
            line: line::LineScratch::default(),
        }
    }

    pub fn key_attributes(&self) -> &[String] {
        &self.key_attributes
    }

    /// The key hash and the whole-item hash.
    pub fn hash(&mut self, item: &Item) -> Result<ItemHash, DigestError> {
        self.buffer.clear();
        for name in &self.key_attributes {
            let value = item
                .get(name)
                .ok_or_else(|| DigestError::MissingKey(name.clone()))?;
            encode_attribute(&mut self.buffer, name, value, &mut self.digits)?;
        }
        let key = xxh3_128(&self.buffer);
        self.buffer.clear();
        encode_attributes(
            &mut self.buffer,
            &item.attributes,
            &mut self.order,
            &mut self.digits,
        )?;
        Ok(ItemHash {
            key,
            item: xxh3_128(&self.buffer),
        })
    }

    /// The canonical encoding of `item` (what [`Self::hash`] hashes), for tests and diagnosis.
    pub fn canonical_bytes(item: &Item) -> Result<Vec<u8>, DigestError> {
        let mut out = Vec::new();
        encode_attributes(&mut out, &item.attributes, &mut Vec::new(), &mut Vec::new())?;
        Ok(out)
    }
}

pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn encode_attribute(
    out: &mut Vec<u8>,
    name: &str,
    value: &AttributeValue,
    digits: &mut Vec<u8>,
) -> Result<(), DigestError> {
    put_bytes(out, name.as_bytes());
    encode_value(out, value, digits).map_err(|source| DigestError::Number {
        attribute: name.to_owned(),
        source,
    })
}

fn encode_attributes(
    out: &mut Vec<u8>,
    attributes: &[(String, AttributeValue)],
    order: &mut Vec<usize>,
    digits: &mut Vec<u8>,
) -> Result<(), DigestError> {
    put_len(out, attributes.len());
    order.clear();
    order.extend(0..attributes.len());
    order.sort_unstable_by(|&a, &b| attributes[a].0.as_bytes().cmp(attributes[b].0.as_bytes()));
    for &index in order.iter() {
        let (name, value) = &attributes[index];
        encode_attribute(out, name, value, digits)?;
    }
    Ok(())
}

/// The length-prefixed text of [`crate::value::NormalizedNumber`]'s `Display`, written in place.
pub(crate) fn encode_number(
    out: &mut Vec<u8>,
    text: &str,
    digits: &mut Vec<u8>,
) -> Result<(), NumberError> {
    let (negative, exponent) = scan_number(text, digits)?;
    put_scanned_number(out, negative, exponent, digits);
    Ok(())
}

/// [`encode_number`] of a number already scanned by [`scan_number`].
pub(crate) fn put_scanned_number(out: &mut Vec<u8>, negative: bool, exponent: i64, digits: &[u8]) {
    put_number_parts(out, negative, exponent, digits, &[]);
}

/// [`put_scanned_number`] of significant digits given in two pieces, `head` then `tail` (a
/// plain decimal's integer and fraction digits; both empty for zero).
pub(crate) fn put_number_parts(
    out: &mut Vec<u8>,
    negative: bool,
    exponent: i64,
    head: &[u8],
    tail: &[u8],
) {
    let length_at = out.len();
    put_len(out, 0);
    if head.is_empty() && tail.is_empty() {
        out.push(b'0');
    } else {
        if negative {
            out.push(b'-');
        }
        out.extend_from_slice(b"0.");
        out.extend_from_slice(head);
        out.extend_from_slice(tail);
        out.push(b'E');
        out.extend_from_slice(itoa::Buffer::new().format(exponent).as_bytes());
    }
    let length = (out.len() - length_at - 4) as u32;
    out[length_at..length_at + 4].copy_from_slice(&length.to_le_bytes());
}

pub(crate) fn encode_value(
    out: &mut Vec<u8>,
    value: &AttributeValue,
    digits: &mut Vec<u8>,
) -> Result<(), NumberError> {
    match value {
        AttributeValue::S(s) => {
            out.push(b'S');
            put_bytes(out, s.as_bytes());
        }
        AttributeValue::N(n) => {
            out.push(b'N');
            encode_number(out, n, digits)?;
        }
        AttributeValue::B(b) => {
            out.push(b'B');
            put_bytes(out, b);
        }
        AttributeValue::Bool(true) => out.push(b'T'),
        AttributeValue::Bool(false) => out.push(b'F'),
        AttributeValue::Null => out.push(b'0'),
        AttributeValue::L(values) => {
            out.push(b'L');
            put_len(out, values.len());
            for value in values {
                encode_value(out, value, digits)?;
            }
        }
        AttributeValue::M(attributes) => {
            out.push(b'M');
            put_len(out, attributes.len());
            let mut order: Vec<&(String, AttributeValue)> = attributes.iter().collect();
            order.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (name, value) in order {
                put_bytes(out, name.as_bytes());
                encode_value(out, value, digits)?;
            }
        }
        AttributeValue::Ss(values) => {
            encode_set(out, b's', values.iter().map(|s| Ok(s.as_bytes().to_vec())))?
        }
        AttributeValue::Ns(values) => encode_set(
            out,
            b'n',
            values
                .iter()
                .map(|n| normalize_number(n).map(|n| n.to_string().into_bytes())),
        )?,
        AttributeValue::Bs(values) => encode_set(out, b'b', values.iter().map(|b| Ok(b.clone())))?,
    }
    Ok(())
}

/// Sets have no order: their members are encoded sorted.
fn encode_set(
    out: &mut Vec<u8>,
    tag: u8,
    members: impl Iterator<Item = Result<Vec<u8>, NumberError>>,
) -> Result<(), NumberError> {
    let mut members = members.collect::<Result<Vec<_>, _>>()?;
    members.sort_unstable();
    out.push(tag);
    put_len(out, members.len());
    for member in &members {
        put_bytes(out, member);
    }
    Ok(())
}

/// One bucket: how many items fell in it and the wrapping sum of their item hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub count: u64,
    pub sum: u128,
}

/// Per-bucket counts and hash sums of a set of items. Order independent and mergeable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDigests {
    bits: u8,
    buckets: Vec<Bucket>,
}

impl BucketDigests {
    pub fn new(bits: u8) -> Result<Self, DigestError> {
        if bits == 0 || bits > MAX_BUCKET_BITS {
            return Err(DigestError::BucketBits(bits));
        }
        Ok(BucketDigests {
            bits,
            buckets: vec![Bucket::default(); 1 << bits],
        })
    }

    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The bucket a key hash falls in: its top `bits` bits.
    pub fn bucket_of(&self, key_hash: u128) -> usize {
        (key_hash >> (128 - u32::from(self.bits))) as usize
    }

    pub fn add(&mut self, hash: ItemHash) {
        let index = self.bucket_of(hash.key);
        let bucket = &mut self.buckets[index];
        bucket.count += 1;
        bucket.sum = bucket.sum.wrapping_add(hash.item);
    }

    pub fn merge(&mut self, other: &BucketDigests) -> Result<(), DigestError> {
        if self.bits != other.bits {
            return Err(DigestError::BitsMismatch(self.bits, other.bits));
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.count += theirs.count;
            mine.sum = mine.sum.wrapping_add(theirs.sum);
        }
        Ok(())
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    pub fn total(&self) -> u64 {
        self.buckets.iter().map(|b| b.count).sum()
    }

    /// Indexes of the buckets that differ from `other`'s (same bits assumed).
    pub fn differing_buckets(&self, other: &BucketDigests) -> Vec<usize> {
        (0..self.buckets.len())
            .filter(|&i| other.buckets.get(i) != Some(&self.buckets[i]))
            .collect()
    }
}

/// The JSON form keeps only non-empty buckets, each `[index, count, "<32 hex digits>"]`.
#[derive(Serialize, Deserialize)]
struct BucketDigestsJson {
    bits: u8,
    buckets: Vec<(u32, u64, String)>,
}

impl Serialize for BucketDigests {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        BucketDigestsJson {
            bits: self.bits,
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, b)| b.count > 0)
                .map(|(i, b)| (i as u32, b.count, format!("{:032x}", b.sum)))
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BucketDigests {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let json = BucketDigestsJson::deserialize(deserializer)?;
        let mut digests = BucketDigests::new(json.bits).map_err(D::Error::custom)?;
        for (index, count, sum) in json.buckets {
            let bucket = digests
                .buckets
                .get_mut(index as usize)
                .ok_or_else(|| D::Error::custom(format!("bucket {index} out of range")))?;
            bucket.count = count;
            bucket.sum = u128::from_str_radix(&sum, 16)
                .map_err(|e| D::Error::custom(format!("bucket {index} sum: {e}")))?;
        }
        Ok(digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::parse_item_line;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }
    fn item(attributes: Vec<(&str, AttributeValue)>) -> Item {
        Item {
            attributes: attributes
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }
    fn hasher() -> ItemHasher {
        ItemHasher::new(vec!["pk".into(), "sk".into()])
    }

    #[test]
    fn equal_items_hash_equal_whatever_the_spelling() {
        let a = item(vec![
            ("pk", s("H#1")),
            ("sk", s("D#1")),
            ("amount", n("1.50")),
            ("zero", n("-0")),
            ("big", n("1E+3")),
            ("tags", AttributeValue::Ss(vec!["b".into(), "a".into()])),
            ("nums", AttributeValue::Ns(vec!["2.0".into(), "1".into()])),
            (
                "m",
                AttributeValue::M(vec![("y".into(), n("2")), ("x".into(), n("1.0"))]),
            ),
        ]);
        let b = item(vec![
            (
                "m",
                AttributeValue::M(vec![("x".into(), n("1")), ("y".into(), n("2.00"))]),
            ),
            ("nums", AttributeValue::Ns(vec!["1".into(), "2".into()])),
            ("tags", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("big", n("1000")),
            ("zero", n("0")),
            ("amount", n("1.5")),
            ("sk", s("D#1")),
            ("pk", s("H#1")),
        ]);
        assert_eq!(hasher().hash(&a).unwrap(), hasher().hash(&b).unwrap());
    }

    #[test]
    fn different_items_hash_differently() {
        let base = item(vec![("pk", s("H#1")), ("sk", s("D#1")), ("a", n("1.5"))]);
        let variants = [
            item(vec![("pk", s("H#1")), ("sk", s("D#1")), ("a", s("1.5"))]),
            item(vec![("pk", s("H#1")), ("sk", s("D#1")), ("a", n("1.51"))]),
            item(vec![("pk", s("H#1")), ("sk", s("D#1")), ("b", n("1.5"))]),
            item(vec![("pk", s("H#1")), ("sk", s("D#1"))]),
            item(vec![
                ("pk", s("H#1")),
                ("sk", s("D#1")),
                ("a", n("1.5")),
                ("c", AttributeValue::Null),
            ]),
            item(vec![
                ("pk", s("H#1")),
                ("sk", s("D#1")),
                ("a", AttributeValue::L(vec![n("1.5")])),
            ]),
        ];
        let h = hasher().hash(&base).unwrap();
        for variant in &variants {
            let v = hasher().hash(variant).unwrap();
            assert_eq!(v.key, h.key, "same key");
            assert_ne!(v.item, h.item, "{variant:?}");
        }
        // Adjacent strings cannot run together.
        let x = item(vec![("pk", s("ab")), ("sk", s("c"))]);
        let y = item(vec![("pk", s("a")), ("sk", s("bc"))]);
        assert_ne!(hasher().hash(&x).unwrap(), hasher().hash(&y).unwrap());
    }

    #[test]
    fn parsed_dynamodb_json_hashes_like_the_mapped_item() {
        let mapped = item(vec![
            ("pk", s("HOTEL#1")),
            ("sk", s("DATE#2026-01-01")),
            ("amount", n("120.50")),
            ("raw", AttributeValue::B(vec![1, 2, 3])),
            ("open", AttributeValue::Bool(true)),
        ]);
        // As DynamoDB's export writes it: other order, other number spelling.
        let exported = parse_item_line(
            br#"{"Item":{"open":{"BOOL":true},"raw":{"B":"AQID"},"amount":{"N":"120.5"},"sk":{"S":"DATE#2026-01-01"},"pk":{"S":"HOTEL#1"}}}"#,
        )
        .unwrap();
        assert_eq!(
            hasher().hash(&mapped).unwrap(),
            hasher().hash(&exported).unwrap()
        );
    }

    #[test]
    fn digests_are_order_independent_and_merge() {
        let items: Vec<Item> = (0..1000)
            .map(|i| {
                item(vec![
                    ("pk", s(&format!("H#{}", i % 37))),
                    ("sk", s(&format!("D#{i}"))),
                    ("v", n(&i.to_string())),
                ])
            })
            .collect();
        let mut h = hasher();
        let mut whole = BucketDigests::new(6).unwrap();
        for it in &items {
            whole.add(h.hash(it).unwrap());
        }
        let mut parts = [
            BucketDigests::new(6).unwrap(),
            BucketDigests::new(6).unwrap(),
            BucketDigests::new(6).unwrap(),
        ];
        for (i, it) in items.iter().enumerate().rev() {
            parts[i % 3].add(h.hash(it).unwrap());
        }
        let mut merged = BucketDigests::new(6).unwrap();
        for part in &parts {
            merged.merge(part).unwrap();
        }
        assert_eq!(merged, whole);
        assert_eq!(merged.total(), 1000);
        assert!(merged.differing_buckets(&whole).is_empty());

        let json = serde_json::to_string(&whole).unwrap();
        assert_eq!(serde_json::from_str::<BucketDigests>(&json).unwrap(), whole);

        let mut changed = BucketDigests::new(6).unwrap();
        for (i, it) in items.iter().enumerate() {
            let mut it = it.clone();
            if i == 500 {
                it.set("v", n("-1"));
            }
            changed.add(h.hash(&it).unwrap());
        }
        let differing = changed.differing_buckets(&whole);
        assert_eq!(differing.len(), 1);
        assert_eq!(
            differing[0],
            whole.bucket_of(h.hash(&items[500]).unwrap().key)
        );
        assert!(BucketDigests::new(0).is_err());
        assert!(merged.merge(&BucketDigests::new(7).unwrap()).is_err());
    }

    #[test]
    fn numbers_are_encoded_as_their_normalised_text() {
        for text in ["1.50", "-0", "-12.5E-3", "100"] {
            let mut out = Vec::new();
            encode_number(&mut out, text, &mut Vec::new()).unwrap();
            let canonical = normalize_number(text).unwrap().to_string();
            assert_eq!(&out[4..], canonical.as_bytes());
            assert_eq!(out[..4], (canonical.len() as u32).to_le_bytes());
        }
    }

    #[test]
    fn missing_key_and_bad_numbers_are_errors() {
        assert_eq!(
            hasher().hash(&item(vec![("pk", s("x"))])),
            Err(DigestError::MissingKey("sk".into()))
        );
        let err = hasher()
            .hash(&item(vec![
                ("pk", s("x")),
                ("sk", s("y")),
                ("a", n("1.2.3")),
            ]))
            .unwrap_err();
        assert!(err.to_string().contains("attribute \"a\""), "{err}");
    }
}
