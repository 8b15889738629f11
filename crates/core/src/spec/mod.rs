//! The migration spec: the TOML file (`examples/*.toml`) that describes one migration: source
//! shards, target tables with their key templates, and the domains that group tables.
//!
//! Reading takes two steps. Serde reads the file's shape and stops at the first structural
//! mistake (unknown field, wrong type, unknown enum value), naming its path. Validation then
//! checks the meaning and reports every mistake it finds, each naming the field at fault, e.g.
//! `tables[2].key.partition.template: unknown column "hotelid" (columns: hotel_id, ...)`.

mod model;
mod raw;
mod template;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::path::Path;

use serde::Serialize;

pub use model::{
    Attributes, Billing, Bootstrap, CloneProvider, ColumnSelection, Compression, Connection,
    Domain, DynamoDbSettings, EmrServerless, Gsi, KeyAttribute, KeySchema, KeyType, NullAs,
    PollIntervals, Projection, Shard, Source, SourceKind, Spec, Streaming, TableSource, TableSpec,
    Target, Ttl, Verification,
};
pub use template::{KeyTemplate, MissingValue, TemplateError, TemplatePart};

/// One mistake in a spec. `path` names the field, e.g. `domains.rates.tables[0]`; it is empty
/// when the mistake is not in one field (the file is unreadable, or is not TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every mistake found in a spec, in file order where practical; never empty.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct SpecErrors(pub Vec<FieldError>);

fn one_per_line(errors: &[FieldError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl SpecErrors {
    fn whole_file(message: String) -> Self {
        SpecErrors(vec![FieldError {
            path: String::new(),
            message,
        }])
    }
}

impl Spec {
    pub fn from_toml_str(text: &str) -> Result<Spec, SpecErrors> {
        let document = toml::Deserializer::parse(text).map_err(|err| {
            let location = err.span().map_or_else(String::new, |span| {
                format!(" ({})", line_and_column(text, span.start))
            });
            SpecErrors::whole_file(format!("{}{location}", err.message()))
        })?;
        let raw: raw::RawSpec = serde_path_to_error::deserialize(document).map_err(|err| {
            let path = err.path().to_string();
            SpecErrors(vec![FieldError {
                // serde_path_to_error shows the document root as ".".
                path: if path == "." { String::new() } else { path },
                message: err.inner().message().to_owned(),
            }])
        })?;
        validate::validate(&raw)
    }

    pub fn from_path(path: &Path) -> Result<Spec, SpecErrors> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            SpecErrors::whole_file(format!("cannot read {}: {err}", path.display()))
        })?;
        Spec::from_toml_str(&text)
    }

    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|table| table.name == name)
    }

    /// The domain's tables, in the order the domain lists them; `None` for an unknown domain.
    pub fn domain_tables(&self, domain: &str) -> Option<Vec<&TableSpec>> {
        let domain = self.domains.get(domain)?;
        Some(
            domain
                .tables
                .iter()
                .filter_map(|name| self.table(name))
                .collect(),
        )
    }

    /// The shards the table reads from, in `source.shards` order, each once.
    pub fn shards_of(&self, table: &TableSpec) -> Vec<&Shard> {
        self.source
            .shards
            .iter()
            .filter(|shard| table.shards.iter().any(|p| shard_matches(p, &shard.name)))
            .collect()
    }

    pub fn dynamodb_table_name(&self, table: &TableSpec) -> String {
        format!("{}{}", self.target.table_prefix, table.name)
    }
}

/// A shard pattern is a shard name, or a prefix followed by `*`.
fn shard_matches(pattern: &str, shard: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => shard.starts_with(prefix),
        None => shard == pattern,
    }
}

fn line_and_column(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    format!("line {line}, column {column}")
}
