//! Map PostgreSQL rows to DynamoDB items, driven by a table's spec: key templates (table and
//! GSI keys), include/exclude/rename, TTL, NULL handling, and the type mapping documented in
//! `docs/type-mapping.md`.
//!
//! Rows arrive as PostgreSQL's text output (what `COPY ... TO STDOUT` writes, read with
//! `DateStyle = ISO`, `TimeZone = UTC`, `bytea_output = hex`, see [`crate::extract`]), one
//! `Option<&str>` per selected column, `None` for NULL.

use chrono::NaiveDateTime;
use ferry_core::spec::{KeyAttribute, KeyType, NullAs, TableSpec, TemplatePart};

use crate::value::{check_dynamodb_number, AttributeValue, Item, NumberError};

mod row_encoder;
pub use row_encoder::{RowEncoder, RowError};

/// How a column's text becomes an attribute value (`docs/type-mapping.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// smallint, integer, bigint (and oid): N.
    Integer,
    /// numeric: N with its exact digits, at most 38 significant.
    Numeric,
    /// real, double precision: N; NaN and Infinity are rejected.
    Float,
    Bool,
    /// text, varchar, char, uuid, name, citext, enums: S.
    Text,
    /// date: S `YYYY-MM-DD`.
    Date,
    /// timestamp (taken as UTC) and timestamptz: S ISO-8601 in UTC.
    Timestamp,
    /// json, jsonb: M/L/S/N/BOOL/NULL recursively.
    Json,
    /// Any array: read as `to_jsonb(column)`, mapped to L.
    Array,
    Bytea,
    /// Anything else: S holding PostgreSQL's text form.
    Other,
}

impl ColumnKind {
    /// From `pg_type`: the type name, `typtype` (`e` for enums) and `typcategory` (`A` arrays).
    pub fn from_pg_type(type_name: &str, typtype: i8, typcategory: i8) -> ColumnKind {
        if typcategory as u8 == b'A' {
            return ColumnKind::Array;
        }
        if typtype as u8 == b'e' {
            return ColumnKind::Text;
        }
        match type_name {
            "int2" | "int4" | "int8" | "oid" => ColumnKind::Integer,
            "numeric" => ColumnKind::Numeric,
            "float4" | "float8" => ColumnKind::Float,
            "bool" => ColumnKind::Bool,
            "text" | "varchar" | "bpchar" | "char" | "name" | "uuid" | "citext" => ColumnKind::Text,
            "date" => ColumnKind::Date,
            "timestamp" | "timestamptz" => ColumnKind::Timestamp,
            "json" | "jsonb" => ColumnKind::Json,
            "bytea" => ColumnKind::Bytea,
            _ => ColumnKind::Other,
        }
    }
}

/// A column of the source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub name: String,
    /// PostgreSQL's type name (`pg_type.typname`), for messages.
    pub type_name: String,
    pub kind: ColumnKind,
}

/// A row that cannot become an item, or a spec that does not fit the table. Every message names
/// the table, the column and (for row errors) the item's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("table \"{table}\": {used_by} names column \"{column}\", which the source table does not have (columns: {available})")]
    UnknownColumn {
        table: String,
        column: String,
        used_by: String,
        available: String,
    },
    #[error("table \"{table}\", column \"{column}\": {message}")]
    Column {
        table: String,
        column: String,
        message: String,
    },
    #[error("table \"{table}\", column \"{column}\", key {key}: {message}")]
    Value {
        table: String,
        column: String,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone)]
struct KeyPlan {
    attribute: String,
    spec: KeyAttribute,
    /// The template with its columns resolved to selected-column indexes.
    parts: Vec<KeyPart>,
    /// For number and binary keys: the one column the template is.
    single: Option<usize>,
}

#[derive(Debug, Clone)]
enum KeyPart {
    Literal(String),
    Column(usize),
}

/// Maps rows of one source table to items of one DynamoDB table.
#[derive(Debug, Clone)]
pub struct ItemMapper {
    table: String,
    /// The columns to select, in order.
    columns: Vec<SourceColumn>,
    /// Attribute name of each selected column, `None` when it is selected only for a key or TTL.
    attributes: Vec<Option<String>>,
    /// Primary key (partition, sort), then the GSI keys.
    keys: Vec<KeyPlan>,
    /// Per selected column: the key whose attribute has the column's attribute name.
    shadowed_by: Vec<Option<usize>>,
    primary_keys: usize,
    ttl: Option<(String, usize)>,
    null_as: NullAs,
    /// Per selected column: a numeric value DynamoDB cannot hold becomes S (spec
    /// `wide_numbers_as_string`).
    wide_as_string: Vec<bool>,
}

impl ItemMapper {
    /// Checks every column the spec names against the table's columns and plans the mapping.
    pub fn new(spec: &TableSpec, table_columns: &[SourceColumn]) -> Result<Self, MapError> {
        let table = spec.name.clone();
        let available = || {
            table_columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let find = |column: &str, used_by: &str| {
            table_columns
                .iter()
                .position(|c| c.name == column)
                .ok_or_else(|| MapError::UnknownColumn {
                    table: table.clone(),
                    column: column.to_owned(),
                    used_by: used_by.to_owned(),
                    available: available(),
                })
        };

        fn push_schema<'a>(
            key_specs: &mut Vec<(String, &'a KeyAttribute)>,
            label: &str,
            schema: &'a ferry_core::spec::KeySchema,
        ) {
            key_specs.push((format!("{label} partition key"), &schema.partition));
            if let Some(sort) = &schema.sort {
                key_specs.push((format!("{label} sort key"), sort));
            }
        }
        let mut key_specs: Vec<(String, &KeyAttribute)> = Vec::new();
        push_schema(&mut key_specs, "the", &spec.key);
        let primary_keys = key_specs.len();
        for gsi in &spec.dynamodb.gsis {
            push_schema(&mut key_specs, &format!("index \"{}\"", gsi.name), &gsi.key);
        }

        // Which table columns are needed: attributes, key columns, the TTL column.
        let mut needed = vec![false; table_columns.len()];
        let mut attribute_of: Vec<Option<String>> = vec![None; table_columns.len()];
        for listed in match &spec.attributes.selection {
            ferry_core::spec::ColumnSelection::All => &[][..],
            ferry_core::spec::ColumnSelection::Include(c)
            | ferry_core::spec::ColumnSelection::Exclude(c) => c.as_slice(),
        } {
            find(listed, "attributes.include/exclude")?;
        }
        for column in spec.attributes.rename.keys() {
            find(column, "attributes.rename")?;
        }
        for (index, column) in table_columns.iter().enumerate() {
            if spec.attributes.selection.includes(&column.name) {
                needed[index] = true;
                let name = spec
                    .attributes
                    .rename
                    .get(&column.name)
                    .cloned()
                    .unwrap_or_else(|| column.name.clone());
                attribute_of[index] = Some(name);
            }
        }
        let mut key_columns: Vec<(String, Option<usize>, &KeyAttribute)> = Vec::new();
        for (label, key) in &key_specs {
            let used_by = format!("{label} \"{}\"", key.attribute);
            for column in key.template.columns() {
                needed[find(column, &used_by)?] = true;
            }
            let single = key
                .template
                .single_column()
                .map(|c| find(c, &used_by))
                .transpose()?;
            if key.key_type == KeyType::Number && single.is_none() {
                return Err(MapError::Column {
                    table: table.clone(),
                    column: key.template.to_string(),
                    message: format!("{used_by} has type N, so its template must be one column"),
                });
            }
            key_columns.push((key.attribute.clone(), single, key));
        }
        if key_columns.len() > 128 {
            return Err(MapError::Column {
                table: table.clone(),
                column: String::new(),
                message: "more than 128 key attributes (table and index keys)".to_owned(),
            });
        }
        let ttl_column = match &spec.ttl {
            Some(ttl) => {
                let index = find(&ttl.column, "ttl.column")?;
                let column = &table_columns[index];
                if !matches!(
                    column.kind,
                    ColumnKind::Date | ColumnKind::Timestamp | ColumnKind::Integer
                ) {
                    return Err(MapError::Column {
                        table: table.clone(),
                        column: column.name.clone(),
                        message: format!(
                            "a TTL column must be a date, a timestamp or an integer of epoch seconds, not {}",
                            column.type_name
                        ),
                    });
                }
                needed[index] = true;
                Some((ttl.attribute.clone(), index))
            }
            None => None,
        };

        let mut wide_as_string = vec![false; table_columns.len()];
        for column in &spec.wide_numbers_as_string {
            let index = find(column, "wide_numbers_as_string")?;
            let found = &table_columns[index];
            if found.kind != ColumnKind::Numeric {
                return Err(MapError::Column {
                    table: table.clone(),
                    column: found.name.clone(),
                    message: format!(
                        "wide_numbers_as_string lists only numeric columns, not {}",
                        found.type_name
                    ),
                });
            }
            wide_as_string[index] = true;
        }

        // Renumber from table columns to selected columns.
        let mut selected_index = vec![usize::MAX; table_columns.len()];
        let mut columns = Vec::new();
        let mut attributes = Vec::new();
        for (index, column) in table_columns.iter().enumerate() {
            if needed[index] {
                selected_index[index] = columns.len();
                columns.push(column.clone());
                attributes.push(attribute_of[index].take());
            }
        }
        let keys = key_columns
            .into_iter()
            .map(|(attribute, single, spec)| KeyPlan {
                attribute,
                parts: spec
                    .template
                    .parts
                    .iter()
                    .map(|part| match part {
                        TemplatePart::Literal(text) => KeyPart::Literal(text.clone()),
                        TemplatePart::Column(column) => {
                            let index = table_columns
                                .iter()
                                .position(|c| c.name == *column)
                                .expect("checked above");
                            KeyPart::Column(selected_index[index])
                        }
                    })
                    .collect(),
                spec: spec.clone(),
                single: single.map(|i| selected_index[i]),
            })
            .collect::<Vec<KeyPlan>>();
        // A column attribute named like a key attribute yields to the key.
        let shadowed_by = attributes
            .iter()
            .map(|attribute| {
                attribute
                    .as_ref()
                    .and_then(|a| keys.iter().position(|k: &KeyPlan| k.attribute == *a))
            })
            .collect();
        Ok(ItemMapper {
            table,
            columns,
            attributes,
            keys,
            shadowed_by,
            primary_keys,
            ttl: ttl_column.map(|(attribute, i)| (attribute, selected_index[i])),
            null_as: spec.null_as,
            wide_as_string: (0..table_columns.len())
                .filter(|&i| needed[i])
                .map(|i| wide_as_string[i])
                .collect(),
        })
    }

    /// The columns a row must hold, in this order.
    pub fn columns(&self) -> &[SourceColumn] {
        &self.columns
    }

    /// The primary key attribute names: partition, then sort.
    pub fn primary_key_attributes(&self) -> Vec<String> {
        self.keys[..self.primary_keys]
            .iter()
            .map(|k| k.attribute.clone())
            .collect()
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Maps one row; `fields` follow [`Self::columns`].
    pub fn map_row(&self, fields: &[Option<&str>]) -> Result<Item, MapError> {
        debug_assert_eq!(fields.len(), self.columns.len());
        let mut item = Item {
            attributes: Vec::with_capacity(self.columns.len() + self.keys.len() + 1),
        };
        // Bit n: key n was written (a sparse GSI key may not be). The key description for error
        // messages is only built when there is an error.
        let mut emitted: u128 = 0;
        for (n, key) in self.keys.iter().enumerate() {
            let is_primary = n < self.primary_keys;
            let has_null = key
                .parts
                .iter()
                .any(|p| matches!(p, KeyPart::Column(i) if fields[*i].is_none()));
            if !is_primary && has_null {
                // A secondary index is sparse: an item without the index key is not indexed.
                continue;
            }
            emitted |= 1 << n;
            let value = self.key_value(key, fields, &item)?;
            item.attributes.push((key.attribute.clone(), value));
        }
        for (index, attribute) in self.attributes.iter().enumerate() {
            let Some(attribute) = attribute else { continue };
            if self.shadowed_by[index].is_some_and(|key| emitted & (1 << key) != 0) {
                // The key attribute of the same name wins.
                continue;
            }
            let value = match fields[index] {
                None => match self.null_as {
                    NullAs::Omit => continue,
                    NullAs::Null => AttributeValue::Null,
                },
                Some(text) => self
                    .convert(index, text)
                    .map_err(|message| self.value_error(index, &item, message))?,
            };
            item.attributes.push((attribute.clone(), value));
        }
        if let Some((attribute, index)) = &self.ttl {
            if let Some(text) = fields[*index] {
                match self.epoch_seconds(*index, text) {
                    Ok(Some(seconds)) => item.set(
                        attribute.clone(),
                        AttributeValue::N(itoa::Buffer::new().format(seconds).to_owned()),
                    ),
                    Ok(None) => {}
                    Err(message) => return Err(self.value_error(*index, &item, message)),
                }
            }
        }
        Ok(item)
    }

    /// `pk=HOTEL#1 sk=DATE#…`: the primary key attributes built so far (they come first).
    fn describe_key(&self, item: &Item) -> String {
        let mut out = String::new();
        for (name, value) in item.attributes.iter().take(self.primary_keys) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name);
            out.push('=');
            match value {
                AttributeValue::S(s) | AttributeValue::N(s) => out.push_str(s),
                other => out.push_str(&format!("{other:?}")),
            }
        }
        if out.is_empty() {
            out.push_str("(not built yet)");
        }
        out
    }

    fn value_error(&self, index: usize, item: &Item, message: String) -> MapError {
        MapError::Value {
            table: self.table.clone(),
            column: self.columns[index].name.clone(),
            key: self.describe_key(item),
            message,
        }
    }

    fn key_value(
        &self,
        key: &KeyPlan,
        fields: &[Option<&str>],
        key_so_far: &Item,
    ) -> Result<AttributeValue, MapError> {
        let mut rendered = String::new();
        for part in &key.parts {
            match part {
                KeyPart::Literal(text) => rendered.push_str(text),
                KeyPart::Column(index) => {
                    let Some(text) = fields[*index] else {
                        return Err(self.value_error(
                            *index,
                            key_so_far,
                            format!(
                                "is NULL, but key \"{}\" ({}) is built from it",
                                key.attribute, key.spec.template
                            ),
                        ));
                    };
                    self.push_key_text(*index, text, &mut rendered)
                        .map_err(|message| {
                            self.value_error(
                                *index,
                                key_so_far,
                                format!("cannot build key \"{}\": {message}", key.attribute),
                            )
                        })?;
                }
            }
        }
        match key.spec.key_type {
            KeyType::String => {
                if rendered.is_empty() {
                    let index = key.single.unwrap_or(0);
                    return Err(self.value_error(
                        index,
                        key_so_far,
                        format!("key \"{}\" would be an empty string", key.attribute),
                    ));
                }
                Ok(AttributeValue::S(rendered))
            }
            KeyType::Number => {
                let index = key.single.expect("checked in ItemMapper::new");
                check_dynamodb_number(&rendered).map_err(|e| {
                    self.value_error(
                        index,
                        key_so_far,
                        format!("key \"{}\" has type N: {e}", key.attribute),
                    )
                })?;
                Ok(AttributeValue::N(rendered))
            }
            KeyType::Binary => {
                let bytes = match key.single {
                    Some(index) if self.columns[index].kind == ColumnKind::Bytea => {
                        decode_bytea(fields[index].unwrap_or_default())
                            .map_err(|m| self.value_error(index, key_so_far, m))?
                    }
                    _ => rendered.into_bytes(),
                };
                Ok(AttributeValue::B(bytes))
            }
        }
    }

    /// Appends the text a key template gets for a column's value.
    fn push_key_text(&self, index: usize, text: &str, out: &mut String) -> Result<(), String> {
        match self.columns[index].kind {
            ColumnKind::Bool => out.push_str(match text {
                "t" => "true",
                "f" => "false",
                other => return Err(format!("\"{other}\" is not a boolean")),
            }),
            ColumnKind::Timestamp => push_iso_timestamp(text, out)?,
            _ => out.push_str(text),
        }
        Ok(())
    }

    fn convert(&self, index: usize, text: &str) -> Result<AttributeValue, String> {
        let column = &self.columns[index];
        Ok(match column.kind {
            ColumnKind::Integer => AttributeValue::N(text.to_owned()),
            ColumnKind::Numeric | ColumnKind::Float => match check_dynamodb_number(text) {
                Ok(_) => AttributeValue::N(text.to_owned()),
                Err(NumberError::TooManyDigits { .. } | NumberError::OutOfRange(_))
                    if self.wide_as_string[index] =>
                {
                    AttributeValue::S(text.to_owned())
                }
                Err(err) => return Err(err.to_string()),
            },
            ColumnKind::Bool => match text {
                "t" => AttributeValue::Bool(true),
                "f" => AttributeValue::Bool(false),
                other => return Err(format!("\"{other}\" is not a boolean")),
            },
            ColumnKind::Text | ColumnKind::Date | ColumnKind::Other => {
                AttributeValue::S(text.to_owned())
            }
            ColumnKind::Timestamp => AttributeValue::S(iso_timestamp(text)?),
            ColumnKind::Json | ColumnKind::Array => {
                let json: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| format!("is not valid JSON ({e})"))?;
                json_to_attribute(&json)?
            }
            ColumnKind::Bytea => AttributeValue::B(decode_bytea(text)?),
        })
    }

    /// The TTL value: `None` for `infinity` (the item never expires).
    fn epoch_seconds(&self, index: usize, text: &str) -> Result<Option<i64>, String> {
        if text == "infinity" {
            return Ok(None);
        }
        match self.columns[index].kind {
            ColumnKind::Integer => text
                .parse()
                .map(Some)
                .map_err(|_| format!("\"{text}\" is not epoch seconds")),
            ColumnKind::Date => iso_date_days(text)
                .map(|days| Some(days * 86_400))
                .ok_or_else(|| format!("\"{text}\" is not a date the TTL can use")),
            _ => {
                let plain = text.strip_suffix("+00").unwrap_or(text);
                NaiveDateTime::parse_from_str(plain, "%Y-%m-%d %H:%M:%S%.f")
                    .map(|t| Some(t.and_utc().timestamp()))
                    .map_err(|_| format!("\"{text}\" is not a timestamp the TTL can use"))
            }
        }
    }
}

/// Days since 1970-01-01 of a valid `YYYY-MM-DD`, without a format string to interpret per
/// row (civil-from-days arithmetic, proleptic Gregorian as PostgreSQL's dates).
fn iso_date_days(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) {
        return None;
    }
    // Years from March, so the leap day ends the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// `2026-01-02 03:04:05.123+00` (PostgreSQL, ISO DateStyle, UTC) → `2026-01-02T03:04:05.123Z`.
/// A timestamp without time zone is taken as UTC. `infinity` and `-infinity` stay as they are.
fn iso_timestamp(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 1);
    push_iso_timestamp(text, &mut out)?;
    Ok(out)
}

/// [`iso_timestamp`] appended to `out`.
fn push_iso_timestamp(text: &str, out: &mut String) -> Result<(), String> {
    if text == "infinity" || text == "-infinity" {
        out.push_str(text);
        return Ok(());
    }
    let plain = text.strip_suffix("+00").unwrap_or(text);
    let bytes = plain.as_bytes();
    let well_formed = bytes.len() >= 19
        && bytes[10] == b' '
        && bytes[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && bytes[19..].iter().all(|b| *b == b'.' || b.is_ascii_digit());
    if !well_formed {
        return Err(format!(
            "\"{text}\" is not a UTC timestamp (ferry reads with TimeZone = UTC)"
        ));
    }
    out.push_str(&plain[..10]);
    out.push('T');
    out.push_str(&plain[11..]);
    out.push('Z');
    Ok(())
}

/// `\x0a0b` (bytea_output = hex) → bytes.
pub fn decode_bytea(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    decode_bytea_into(text, &mut out)?;
    Ok(out)
}

/// [`decode_bytea`] appended to `out`.
fn decode_bytea_into(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let hex = text
        .strip_prefix("\\x")
        .ok_or_else(|| "bytea is not in hex output format".to_owned())?;
    if hex.len() % 2 != 0 {
        return Err("bytea hex has an odd number of digits".to_owned());
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err("bytea hex has a non-hex digit".to_owned()),
    };
    out.reserve(hex.len() / 2);
    for pair in hex.as_bytes().chunks_exact(2) {
        out.push(digit(pair[0])? << 4 | digit(pair[1])?);
    }
    Ok(())
}

/// JSON to DynamoDB: object → M, array → L, string → S, number → N, bool → BOOL, null → NULL.
pub fn json_to_attribute(json: &serde_json::Value) -> Result<AttributeValue, String> {
    Ok(match json {
        serde_json::Value::Null => AttributeValue::Null,
        serde_json::Value::Bool(b) => AttributeValue::Bool(*b),
        serde_json::Value::Number(n) => {
            let text = n.to_string();
            check_dynamodb_number(&text).map_err(|e| format!("in JSON: {e}"))?;
            AttributeValue::N(text)
        }
        serde_json::Value::String(s) => AttributeValue::S(s.clone()),
        serde_json::Value::Array(values) => AttributeValue::L(
            values
                .iter()
                .map(json_to_attribute)
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), json_to_attribute(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_days_agree_with_chrono() {
        use chrono::NaiveDate;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        while date <= last {
            let text = date.format("%Y-%m-%d").to_string();
            let expected = date.signed_duration_since(epoch).num_days();
            assert_eq!(iso_date_days(&text), Some(expected), "{text}");
            date = date.succ_opt().unwrap();
        }
        for bad in [
            "2026-02-29",
            "2024-02-30",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "2026-04-31",
            "2026-1-01",
            "2026/01/01",
            "20260101",
            "2026-01-0x",
            "+026-01-01",
            "infinity",
        ] {
            assert_eq!(iso_date_days(bad), None, "{bad}");
        }
        assert!(iso_date_days("2024-02-29").is_some());
        assert!(iso_date_days("2000-02-29").is_some());
        assert_eq!(iso_date_days("1900-02-29"), None);
    }
    use ferry_core::spec::{
        Attributes, ColumnSelection, DynamoDbSettings, Gsi, KeySchema, KeyTemplate, Projection,
        TableSource, Ttl,
    };

    fn key(attribute: &str, template: &str) -> KeyAttribute {
        KeyAttribute {
            attribute: attribute.into(),
            template: KeyTemplate::parse(template).unwrap(),
            key_type: KeyType::String,
        }
    }

    fn spec() -> TableSpec {
        TableSpec {
            name: "BaseRate".into(),
            shards: vec!["p*".into()],
            source: TableSource::Table("public.base_rate".into()),
            columns: None,
            sensitive: vec![],
            null_as: NullAs::Omit,
            wide_numbers_as_string: vec![],
            compression: Default::default(),
            chunk_target_mb: None,
            chunk_key: None,
            key: KeySchema {
                partition: key("pk", "HOTEL#{hotel_id}"),
                sort: Some(key("sk", "DATE#{stay_date}")),
            },
            attributes: Attributes {
                selection: ColumnSelection::Exclude(vec!["secret".into()]),
                rename: [("updated_at".to_string(), "updatedAt".to_string())].into(),
            },
            ttl: Some(Ttl {
                attribute: "expiresAt".into(),
                column: "expiry_date".into(),
            }),
            dynamodb: DynamoDbSettings {
                billing: ferry_core::spec::Billing::PayPerRequest,
                pitr: true,
                streaming: None,
                tags: Default::default(),
                gsis: vec![Gsi {
                    name: "byDate".into(),
                    key: KeySchema {
                        partition: key("gsi1pk", "DATE#{stay_date}"),
                        sort: None,
                    },
                    projection: Projection::KeysOnly,
                }],
            },
        }
    }

    /// A catalogue column of `kind` (the row encoder's tests use it too).
    pub(super) fn col(name: &str, kind: ColumnKind) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            type_name: format!("{kind:?}"),
            kind,
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
            col("updated_at", ColumnKind::Timestamp),
            col("details", ColumnKind::Json),
            col("tags", ColumnKind::Array),
            col("raw", ColumnKind::Bytea),
            col("expiry_date", ColumnKind::Date),
            col("secret", ColumnKind::Text),
        ]
    }

    fn row() -> Vec<Option<&'static str>> {
        vec![
            Some("42"),
            Some("2026-01-01"),
            Some("120.50"),
            Some("0.25"),
            Some("t"),
            Some("Hôtel"),
            Some("2026-01-02 03:04:05.5+00"),
            Some(r#"{"a": [1, "x", null, true, {"b": 1.50}]}"#),
            Some(r#"["a", "b"]"#),
            Some("\\x00ff"),
            Some("2026-04-01"),
        ]
    }

    #[test]
    fn maps_a_row_per_the_documented_mapping() {
        let mapper = ItemMapper::new(&spec(), &columns()).unwrap();
        assert_eq!(mapper.columns().len(), 11, "secret is not selected");
        assert_eq!(mapper.primary_key_attributes(), ["pk", "sk"]);
        let item = mapper.map_row(&row()).unwrap();
        use AttributeValue::*;
        let expected = [
            ("amount", N("120.50".into())),
            (
                "details",
                M(vec![(
                    "a".into(),
                    L(vec![
                        N("1".into()),
                        S("x".into()),
                        Null,
                        Bool(true),
                        M(vec![("b".into(), N("1.5".into()))]),
                    ]),
                )]),
            ),
            ("expiresAt", N("1775001600".into())),
            ("expiry_date", S("2026-04-01".into())),
            ("gsi1pk", S("DATE#2026-01-01".into())),
            ("hotel_id", N("42".into())),
            ("note", S("Hôtel".into())),
            ("open", Bool(true)),
            ("pk", S("HOTEL#42".into())),
            ("ratio", N("0.25".into())),
            ("raw", B(vec![0, 255])),
            ("sk", S("DATE#2026-01-01".into())),
            ("stay_date", S("2026-01-01".into())),
            ("tags", L(vec![S("a".into()), S("b".into())])),
            ("updatedAt", S("2026-01-02T03:04:05.5Z".into())),
        ];
        let got = item.sorted();
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for ((name, value), (ename, evalue)) in got.iter().zip(expected.iter()) {
            assert_eq!(name, ename);
            assert_eq!(*value, evalue, "{name}");
        }
    }

    #[test]
    fn a_null_index_key_leaves_the_item_out_of_the_index() {
        let mut s = spec();
        s.dynamodb.gsis[0].key.partition = key("gsi1pk", "NOTE#{note}");
        let mapper = ItemMapper::new(&s, &columns()).unwrap();
        let mut fields = row();
        assert_eq!(
            mapper.map_row(&fields).unwrap().get("gsi1pk"),
            Some(&AttributeValue::S("NOTE#Hôtel".into()))
        );
        fields[5] = None;
        assert_eq!(mapper.map_row(&fields).unwrap().get("gsi1pk"), None);
    }

    #[test]
    fn nulls_are_omitted_or_null_per_spec() {
        let mut fields = row();
        fields[5] = None;
        let mapper = ItemMapper::new(&spec(), &columns()).unwrap();
        assert!(mapper.map_row(&fields).unwrap().get("note").is_none());
        let mut with_null = spec();
        with_null.null_as = NullAs::Null;
        let mapper = ItemMapper::new(&with_null, &columns()).unwrap();
        assert_eq!(
            mapper.map_row(&fields).unwrap().get("note"),
            Some(&AttributeValue::Null)
        );
    }

    #[test]
    fn errors_name_table_column_and_key() {
        let mapper = ItemMapper::new(&spec(), &columns()).unwrap();
        let cases = [
            (2, "1".repeat(39), "amount", "39 significant digits"),
            (3, "NaN".into(), "ratio", "NaN is not a number"),
            (3, "Infinity".into(), "ratio", "Infinity"),
            (
                3,
                "1e-300".into(),
                "ratio",
                "outside DynamoDB's number range",
            ),
        ];
        for (index, value, column, needle) in cases {
            let mut fields = row();
            fields[index] = Some(Box::leak(value.into_boxed_str()));
            let err = mapper.map_row(&fields).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "table \"BaseRate\", column \"{column}\", key pk=HOTEL#42 sk=DATE#2026-01-01: "
                )),
                "{err}"
            );
            assert!(err.contains(needle), "{err}");
        }
        let mut fields = row();
        fields[0] = None;
        let err = mapper.map_row(&fields).unwrap_err().to_string();
        assert!(
            err.contains("column \"hotel_id\"") && err.contains("key \"pk\""),
            "{err}"
        );

        let mut bad = spec();
        bad.key.sort = Some(key("sk", "DATE#{stay_day}"));
        let err = ItemMapper::new(&bad, &columns()).unwrap_err().to_string();
        assert!(err.starts_with("table \"BaseRate\": the sort key \"sk\" names column \"stay_day\", which the source table does not have (columns: hotel_id, "), "{err}");
    }

    #[test]
    fn wide_numbers_become_strings_only_where_the_spec_says() {
        let wide = "-1234567890123456789012345678901234567.89";
        let mut fields = row();
        fields[2] = Some(wide);
        let err = ItemMapper::new(&spec(), &columns())
            .unwrap()
            .map_row(&fields)
            .unwrap_err();
        assert!(err.to_string().contains("39 significant digits"), "{err}");

        let mut s = spec();
        s.wide_numbers_as_string = vec!["amount".into()];
        let mapper = ItemMapper::new(&s, &columns()).unwrap();
        let item = mapper.map_row(&fields).unwrap();
        assert_eq!(item.get("amount"), Some(&AttributeValue::S(wide.into())));
        fields[2] = Some("1E+200");
        let item = mapper.map_row(&fields).unwrap();
        assert_eq!(
            item.get("amount"),
            Some(&AttributeValue::S("1E+200".into()))
        );
        // Numbers DynamoDB holds stay N; NaN is no wide number and stays an error.
        fields[2] = Some("120.50");
        let item = mapper.map_row(&fields).unwrap();
        assert_eq!(
            item.get("amount"),
            Some(&AttributeValue::N("120.50".into()))
        );
        fields[2] = Some("NaN");
        let err = mapper.map_row(&fields).unwrap_err().to_string();
        assert!(
            err.starts_with("table \"BaseRate\", column \"amount\", key pk=HOTEL#42"),
            "{err}"
        );

        s.wide_numbers_as_string = vec!["ratio".into()];
        let err = ItemMapper::new(&s, &columns()).unwrap_err().to_string();
        assert_eq!(
            err,
            "table \"BaseRate\", column \"ratio\": wide_numbers_as_string lists only numeric columns, not Float"
        );
        s.wide_numbers_as_string = vec!["amnt".into()];
        let err = ItemMapper::new(&s, &columns()).unwrap_err().to_string();
        assert!(
            err.starts_with("table \"BaseRate\": wide_numbers_as_string names column \"amnt\""),
            "{err}"
        );
    }

    #[test]
    fn number_keys_and_include_lists() {
        let mut s = spec();
        s.key.partition = KeyAttribute {
            attribute: "hotel_id".into(),
            template: KeyTemplate::parse("{hotel_id}").unwrap(),
            key_type: KeyType::Number,
        };
        s.attributes.selection = ColumnSelection::Include(vec!["amount".into()]);
        s.dynamodb.gsis.clear();
        s.ttl = None;
        let mapper = ItemMapper::new(&s, &columns()).unwrap();
        assert_eq!(mapper.columns().len(), 3);
        let item = mapper
            .map_row(&[Some("7"), Some("2026-01-01"), Some("1.0")])
            .unwrap();
        assert_eq!(
            item.sorted(),
            [
                ("amount", &AttributeValue::N("1.0".into())),
                ("hotel_id", &AttributeValue::N("7".into())),
                ("sk", &AttributeValue::S("DATE#2026-01-01".into())),
            ]
        );
    }

    #[test]
    fn timestamps_and_bytea() {
        assert_eq!(
            iso_timestamp("2026-01-02 03:04:05+00").unwrap(),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(
            iso_timestamp("2026-01-02 03:04:05.123456").unwrap(),
            "2026-01-02T03:04:05.123456Z"
        );
        assert!(iso_timestamp("2026-01-02 03:04:05+02").is_err());
        assert_eq!(decode_bytea("\\x").unwrap(), Vec::<u8>::new());
        assert!(decode_bytea("\\x0").is_err());
        assert!(decode_bytea("ab").is_err());
    }
}
