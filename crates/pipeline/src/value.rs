//! DynamoDB items as ferry holds them: one representation for an item mapped from a PostgreSQL row
//! and for an item read from a DynamoDB JSON file (an import file ferry wrote, or an export file
//! DynamoDB wrote), so [`crate::digest`] hashes both with one function.
//!
//! Numbers keep their decimal text (`N("1.50")`): exact, and normalised only where they are
//! compared ([`normalize_number`]). Binary values hold the raw bytes; DynamoDB JSON carries them
//! as base64.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// DynamoDB's largest number of significant digits.
pub const MAX_NUMBER_DIGITS: usize = 38;

/// One DynamoDB attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    S(String),
    /// Decimal text, as written (`1.50`, `-0`, `1E+3` are all accepted).
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<AttributeValue>),
    M(Vec<(String, AttributeValue)>),
    Ss(Vec<String>),
    Ns(Vec<String>),
    Bs(Vec<Vec<u8>>),
}

/// An item: attribute name and value pairs, in no particular order (names are unique).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Item {
    pub attributes: Vec<(String, AttributeValue)>,
}

impl Item {
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Sets `name`, replacing any previous value of it.
    pub fn set(&mut self, name: impl Into<String>, value: AttributeValue) {
        let name = name.into();
        match self.attributes.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => *old = value,
            None => self.attributes.push((name, value)),
        }
    }

    /// The attributes sorted by name: a stable order for comparing items in tests and reports.
    pub fn sorted(&self) -> Vec<(&str, &AttributeValue)> {
        let mut out: Vec<_> = self
            .attributes
            .iter()
            .map(|(n, v)| (n.as_str(), v))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// A number in DynamoDB's canonical form: sign, significant digits with no leading or trailing
/// zero, and a decimal exponent, so `1.50`, `1.5`, `15E-1` and `0.15e1` all give the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedNumber {
    pub negative: bool,
    /// Significant digits (ASCII), empty for zero.
    pub digits: Vec<u8>,
    /// The value is `0.<digits> × 10^exponent`; 0 for zero.
    pub exponent: i64,
}

impl NormalizedNumber {
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }
}

impl fmt::Display for NormalizedNumber {
    /// `0`, or `[-]0.<digits>E<exponent>`: the text the canonical encoding hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str("0.")?;
        f.write_str(std::str::from_utf8(&self.digits).map_err(|_| fmt::Error)?)?;
        write!(f, "E{}", self.exponent)
    }
}

/// Why a text is not a DynamoDB number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("\"{0}\" is not a decimal number")]
    Malformed(String),
    #[error("{0} is not a number DynamoDB can store")]
    NotFinite(String),
    #[error("{text} has {digits} significant digits; DynamoDB numbers hold at most 38")]
    TooManyDigits { text: String, digits: usize },
    #[error("{0} is outside DynamoDB's number range (1E-130 to 9.99...E+125 in magnitude)")]
    OutOfRange(String),
}

/// Parses decimal text (`-12.340`, `1e+100`, `.5`, `-0`) into its canonical form. It never does
/// arithmetic, so it is exact for any number of digits.
pub fn normalize_number(text: &str) -> Result<NormalizedNumber, NumberError> {
    let mut digits = Vec::new();
    let (negative, exponent) = scan_number(text, &mut digits)?;
    Ok(NormalizedNumber {
        negative,
        digits,
        exponent,
    })
}

/// [`normalize_number`] into a caller's buffer: the significant digits go to `digits` (cleared
/// first, left empty for zero); returns the sign and the exponent (`false, 0` for zero).
pub(crate) fn scan_number(text: &str, digits: &mut Vec<u8>) -> Result<(bool, i64), NumberError> {
    let malformed = || NumberError::Malformed(text.to_owned());
    digits.clear();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if let Some(&sign) = bytes.first() {
        if sign == b'-' || sign == b'+' {
            negative = sign == b'-';
            i = 1;
        }
    }
    if !matches!(bytes.get(i), Some(b'0'..=b'9' | b'.')) {
        let rest = &text[i..];
        if ["nan", "infinity", "inf"]
            .iter()
            .any(|word| rest.eq_ignore_ascii_case(word))
        {
            return Err(NumberError::NotFinite(text.to_owned()));
        }
    }
    let run = |from: usize| {
        from + bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let integer_end = run(i);
    let integer = &bytes[i..integer_end];
    let mut fraction: &[u8] = &[];
    i = integer_end;
    if bytes.get(i) == Some(&b'.') {
        let fraction_end = run(i + 1);
        fraction = &bytes[i + 1..fraction_end];
        i = fraction_end;
    }
    if integer.is_empty() && fraction.is_empty() {
        return Err(malformed());
    }
    if i < bytes.len() && !matches!(bytes[i], b'e' | b'E') {
        return Err(malformed());
    }
    // Zeros before the first significant digit, over both parts.
    let integer_zeros = integer.iter().take_while(|b| **b == b'0').count();
    let leading = if integer_zeros < integer.len() {
        digits.extend_from_slice(&integer[integer_zeros..]);
        digits.extend_from_slice(fraction);
        integer_zeros
    } else {
        let fraction_zeros = fraction.iter().take_while(|b| **b == b'0').count();
        digits.extend_from_slice(&fraction[fraction_zeros..]);
        integer.len() + fraction_zeros
    } as i64;
    let integer_digits = integer.len() as i64;
    let mut exponent: i64 = 0;
    if i < bytes.len() {
        let exp_text = &text[i + 1..];
        let exp_digits = exp_text.strip_prefix(['+', '-']).unwrap_or(exp_text);
        if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        exponent = exp_text.parse().map_err(|_| malformed())?;
    }
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        return Ok((false, 0));
    }
    Ok((negative, exponent + integer_digits - leading))
}

/// Checks that `text` is a number DynamoDB accepts: finite, at most 38 significant digits, and
/// a magnitude between 1E-130 and 9.99...E+125 (or zero).
pub fn check_dynamodb_number(text: &str) -> Result<NormalizedNumber, NumberError> {
    let mut digits = Vec::new();
    let (negative, exponent) = check_dynamodb_number_into(text, &mut digits)?;
    Ok(NormalizedNumber {
        negative,
        digits,
        exponent,
    })
}

/// [`check_dynamodb_number`] into a caller's buffer, as [`scan_number`] returns it.
pub(crate) fn check_dynamodb_number_into(
    text: &str,
    digits: &mut Vec<u8>,
) -> Result<(bool, i64), NumberError> {
    let (negative, exponent) = scan_number(text, digits)?;
    if digits.len() > MAX_NUMBER_DIGITS {
        return Err(NumberError::TooManyDigits {
            text: text.to_owned(),
            digits: digits.len(),
        });
    }
    // 0.d × 10^e: the largest is 0.999.. × 10^126, the smallest 0.1 × 10^-129 = 1E-130.
    if !digits.is_empty() && !(-129..=126).contains(&exponent) {
        return Err(NumberError::OutOfRange(text.to_owned()));
    }
    Ok((negative, exponent))
}

// ---- DynamoDB JSON -------------------------------------------------------------------------

fn base64_engine() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64_engine().encode(self.0))
    }
}

struct Attributes<'a>(&'a [(String, AttributeValue)]);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// DynamoDB JSON: `{"S":"x"}`, `{"N":"1.5"}`, `{"B":"<base64>"}`, `{"BOOL":true}`,
/// `{"NULL":true}`, `{"L":[...]}`, `{"M":{...}}`, `{"SS":[...]}`, `{"NS":[...]}`, `{"BS":[...]}`.
impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            AttributeValue::S(s) => map.serialize_entry("S", s)?,
            AttributeValue::N(n) => map.serialize_entry("N", n)?,
            AttributeValue::B(b) => map.serialize_entry("B", &Base64(b))?,
            AttributeValue::Bool(b) => map.serialize_entry("BOOL", b)?,
            AttributeValue::Null => map.serialize_entry("NULL", &true)?,
            AttributeValue::L(values) => map.serialize_entry("L", values)?,
            AttributeValue::M(attributes) => map.serialize_entry("M", &Attributes(attributes))?,
            AttributeValue::Ss(values) => map.serialize_entry("SS", values)?,
            AttributeValue::Ns(values) => map.serialize_entry("NS", values)?,
            AttributeValue::Bs(values) => map.serialize_entry("BS", &BinarySet(values))?,
        }
        map.end()
    }
}

struct BinarySet<'a>(&'a [Vec<u8>]);

impl Serialize for BinarySet<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for value in self.0 {
            seq.serialize_element(&Base64(value))?;
        }
        seq.end()
    }
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Attributes(&self.attributes).serialize(serializer)
    }
}

struct Base64Value(Vec<u8>);

impl<'de> Deserialize<'de> for Base64Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        base64_engine()
            .decode(text.as_bytes())
            .map(Base64Value)
            .map_err(|e| de::Error::custom(format!("invalid base64 in a B value: {e}")))
    }
}

struct AttributeMap(Vec<(String, AttributeValue)>);

impl<'de> Deserialize<'de> for AttributeMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = AttributeMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of attribute names to DynamoDB JSON values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeMap, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((name, value)) = map.next_entry::<String, AttributeValue>()? {
                    out.push((name, value));
                }
                Ok(AttributeMap(out))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = AttributeValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a DynamoDB JSON value such as {\"S\": \"text\"}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeValue, A::Error> {
                let tag: std::borrow::Cow<'de, str> = map
                    .next_key()?
                    .ok_or_else(|| de::Error::custom("empty DynamoDB JSON value"))?;
                let value = match tag.as_ref() {
                    "S" => AttributeValue::S(map.next_value()?),
                    "N" => AttributeValue::N(map.next_value()?),
                    "B" => AttributeValue::B(map.next_value::<Base64Value>()?.0),
                    "BOOL" => AttributeValue::Bool(map.next_value()?),
                    "NULL" => {
                        map.next_value::<bool>()?;
                        AttributeValue::Null
                    }
                    "L" => AttributeValue::L(map.next_value()?),
                    "M" => AttributeValue::M(map.next_value::<AttributeMap>()?.0),
                    "SS" => AttributeValue::Ss(map.next_value()?),
                    "NS" => AttributeValue::Ns(map.next_value()?),
                    "BS" => AttributeValue::Bs(
                        map.next_value::<Vec<Base64Value>>()?
                            .into_iter()
                            .map(|b| b.0)
                            .collect(),
                    ),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown DynamoDB JSON type \"{other}\""
                        )))
                    }
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(
                        "a DynamoDB JSON value has exactly one type key",
                    ));
                }
                Ok(value)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<AttributeValue, A::Error> {
                Err(de::Error::custom(
                    "expected a DynamoDB JSON value, found a list",
                ))
            }
        }
        deserializer.deserialize_map(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Item {
            attributes: AttributeMap::deserialize(deserializer)?.0,
        })
    }
}

/// One line of an import or export file: `{"Item":{...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ItemLine {
    #[serde(rename = "Item")]
    pub item: Item,
}

/// Reads one DynamoDB JSON line (`{"Item":{...}}`).
pub fn parse_item_line(line: &[u8]) -> Result<Item, serde_json::Error> {
    serde_json::from_slice::<ItemLine>(line).map(|line| line.item)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time scanner the run-copying one replaced: the reference.
    fn scan_number_bytewise(text: &str, digits: &mut Vec<u8>) -> Result<(bool, i64), NumberError> {
        let malformed = || NumberError::Malformed(text.to_owned());
        digits.clear();
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&sign) = bytes.first() {
            if sign == b'-' || sign == b'+' {
                negative = sign == b'-';
                i = 1;
            }
        }
        let rest = &text[i..];
        if ["nan", "infinity", "inf"]
            .iter()
            .any(|word| rest.eq_ignore_ascii_case(word))
        {
            return Err(NumberError::NotFinite(text.to_owned()));
        }
        // Digits before the decimal point, and zeros before the first significant digit.
        let mut integer_digits: i64 = 0;
        let mut leading: i64 = 0;
        let mut seen_digit = false;
        let mut seen_point = false;
        while i < bytes.len() {
            match bytes[i] {
                b'0'..=b'9' => {
                    seen_digit = true;
                    if !seen_point {
                        integer_digits += 1;
                    }
                    if digits.is_empty() && bytes[i] == b'0' {
                        leading += 1;
                    } else {
                        digits.push(bytes[i]);
                    }
                }
                b'.' if !seen_point => seen_point = true,
                b'e' | b'E' => break,
                _ => return Err(malformed()),
            }
            i += 1;
        }
        if !seen_digit {
            return Err(malformed());
        }
        let mut exponent: i64 = 0;
        if i < bytes.len() {
            let exp_text = &text[i + 1..];
            let exp_digits = exp_text.strip_prefix(['+', '-']).unwrap_or(exp_text);
            if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            exponent = exp_text.parse().map_err(|_| malformed())?;
        }
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok((false, 0));
        }
        Ok((negative, exponent + integer_digits - leading))
    }

    #[test]
    fn run_copying_scan_equals_the_bytewise_one() {
        let alphabet = [
            "0", "00", "1", "9", "05", ".", "-", "+", "e", "E", "e-", "E+3", "x", "inf",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for _ in 0..50_000 {
            let mut text = String::new();
            for _ in 0..(state % 7) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            state = state.wrapping_add(0x2545_f491_4f6c_dd1d);
            let got = scan_number(&text, &mut fast).map(|r| (r, fast.clone()));
            let expected = scan_number_bytewise(&text, &mut slow).map(|r| (r, slow.clone()));
            assert_eq!(got, expected, "{text:?}");
        }
    }

    fn canonical(text: &str) -> String {
        normalize_number(text).unwrap().to_string()
    }

    #[test]
    fn numbers_normalise_exactly() {
        for same in [
            &["1.5", "1.50", "01.5", "15E-1", "0.15e1", "+1.5", "150e-2"][..],
            &["0", "-0", "0.000", "0e10", ".0", "-0.0E-5"],
            &["-12", "-12.0", "-1.2E1", "-120e-1"],
            &["100", "1E2", "1e+2", "100.00"],
            &["0.001", "1E-3", ".001"],
        ] {
            let expected = canonical(same[0]);
            for text in same {
                assert_eq!(canonical(text), expected, "{text} vs {}", same[0]);
            }
        }
        assert_eq!(canonical("1.5"), "0.15E1");
        assert_eq!(canonical("-0.001"), "-0.1E-2");
        assert_ne!(canonical("1.5"), canonical("-1.5"));
        assert_ne!(canonical("1.5"), canonical("15"));
        let big = "12345678901234567890123456789012345678901234567890";
        assert_eq!(
            normalize_number(big).unwrap().digits.len(),
            49,
            "the last 0 is not significant"
        );
    }

    #[test]
    fn rejects_what_dynamodb_rejects() {
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "1e+", "1x", "1 "] {
            assert!(
                matches!(normalize_number(bad), Err(NumberError::Malformed(_))),
                "{bad:?}"
            );
        }
        for bad in ["NaN", "Infinity", "-Infinity", "inf"] {
            assert!(matches!(
                check_dynamodb_number(bad),
                Err(NumberError::NotFinite(_))
            ));
        }
        let digits39 = "1".repeat(39);
        assert!(matches!(
            check_dynamodb_number(&digits39),
            Err(NumberError::TooManyDigits { digits: 39, .. })
        ));
        // Trailing zeros are not significant.
        assert!(check_dynamodb_number(&format!("{}000", "1".repeat(38))).is_ok());
        assert!(check_dynamodb_number("9.9999999999999999999999999999999999999E+125").is_ok());
        assert!(check_dynamodb_number("1E+126").is_err());
        assert!(check_dynamodb_number("1E-130").is_ok());
        assert!(check_dynamodb_number("1E-131").is_err());
        assert!(check_dynamodb_number("0E-500").is_ok());
    }

    #[test]
    fn dynamodb_json_round_trips() {
        let item = Item {
            attributes: vec![
                ("pk".into(), AttributeValue::S("HOTEL#1 \"é\"\n".into())),
                ("n".into(), AttributeValue::N("1.50".into())),
                ("b".into(), AttributeValue::B(vec![0, 1, 255])),
                ("t".into(), AttributeValue::Bool(true)),
                ("z".into(), AttributeValue::Null),
                (
                    "l".into(),
                    AttributeValue::L(vec![
                        AttributeValue::N("1".into()),
                        AttributeValue::M(vec![("x".into(), AttributeValue::S(String::new()))]),
                    ]),
                ),
                (
                    "ss".into(),
                    AttributeValue::Ss(vec!["a".into(), "b".into()]),
                ),
                ("ns".into(), AttributeValue::Ns(vec!["1".into()])),
                ("bs".into(), AttributeValue::Bs(vec![vec![1], vec![2]])),
            ],
        };
        let line = serde_json::to_string(&ItemLine { item: item.clone() }).unwrap();
        assert!(line.starts_with(
            r#"{"Item":{"pk":{"S":"HOTEL#1 \"é\"\n"},"n":{"N":"1.50"},"b":{"B":"AAH/"}"#
        ));
        assert_eq!(parse_item_line(line.as_bytes()).unwrap(), item);
        for bad in [
            r#"{"Item":{"a":{"X":"1"}}}"#,
            r#"{"Item":{"a":{}}}"#,
            r#"{"Item":{"a":{"S":"1","N":"1"}}}"#,
            r#"{"Item":{"a":{"B":"***"}}}"#,
        ] {
            assert!(parse_item_line(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
