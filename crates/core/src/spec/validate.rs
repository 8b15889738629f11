//! Checks the meaning of a raw spec and builds the typed [`Spec`], reporting every mistake.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;

use super::model::{
    Attributes, Billing, Bootstrap, CloneProvider, ColumnSelection, Connection, Domain,
    DynamoDbSettings, Gsi, KeyAttribute, KeySchema, KeyType, PollIntervals, Projection, Shard,
    Source, Spec, Streaming, TableSource, TableSpec, Verification,
};
use super::raw::{
    BillingMode, BootstrapEngine, RawAttributes, RawBootstrap, RawDynamoDb, RawGsi,
    RawKeyAttribute, RawPoll, RawSource, RawSpec, RawTable, RawVerification,
};
use super::template::KeyTemplate;
use super::{shard_matches, FieldError, SpecErrors};

pub(super) fn validate(raw: &RawSpec) -> Result<Spec, SpecErrors> {
    let mut validator = Validator::default();
    let spec = validator.spec(raw);
    if validator.errors.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors(validator.errors))
    }
}

/// Walks the raw spec in file order. A failed check records its error and the walk goes on
/// with a stand-in value, so one pass finds every mistake; the stand-ins never escape because
/// the spec is only returned when no error was recorded.
#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

/// Names already taken in one namespace, each with the path that took it first.
type Taken = HashMap<String, String>;

/// The declared columns of a table, when given; column references are only checked then.
type Columns<'a> = Option<&'a [String]>;

struct NamePattern {
    extra: &'static str,
    min: usize,
    max: usize,
    shown: &'static str,
}

impl NamePattern {
    /// ASCII letters, digits and the `extra` characters, `min..=max` of them.
    const fn new(extra: &'static str, min: usize, max: usize, shown: &'static str) -> Self {
        NamePattern {
            extra,
            min,
            max,
            shown,
        }
    }

    fn matches(&self, value: &str) -> bool {
        (self.min..=self.max).contains(&value.chars().count())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || self.extra.contains(c))
    }
}

const MIGRATION_NAME: NamePattern = NamePattern::new("_-", 1, 64, "[A-Za-z0-9_-]{1,64}");
const IDENTIFIER: NamePattern = NamePattern::new("_-", 1, usize::MAX, "[A-Za-z0-9_-]+");
const TABLE_PREFIX: NamePattern = NamePattern::new("_.-", 0, 255, "[A-Za-z0-9_.-]*");
const DYNAMODB_NAME: NamePattern = NamePattern::new("_.-", 3, 255, "[A-Za-z0-9_.-]{3,255}");
const KINESIS_STREAM_NAME: NamePattern = NamePattern::new("_.-", 1, 128, "[A-Za-z0-9_.-]{1,128}");

impl Validator {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn pattern(&mut self, path: &str, value: &str, pattern: &NamePattern) {
        if !pattern.matches(value) {
            self.error(path, format!("{value:?} does not match {}", pattern.shown));
        }
    }

    fn non_empty(&mut self, path: &str, value: &str) {
        if value.is_empty() {
            self.error(path, "must not be empty");
        }
    }

    /// `value` converted to the model's type, after checking it lies in `range`.
    fn bounded<T: TryFrom<i64> + Default>(
        &mut self,
        path: &str,
        value: i64,
        range: RangeInclusive<i64>,
    ) -> T {
        if !range.contains(&value) {
            let allowed = if *range.end() == i64::MAX {
                format!("at least {}", range.start())
            } else {
                format!("between {} and {}", range.start(), range.end())
            };
            self.error(path, format!("must be {allowed}, got {value}"));
        }
        T::try_from(value).unwrap_or_default()
    }

    fn claim(&mut self, taken: &mut Taken, path: &str, name: &str) {
        match taken.get(name) {
            Some(first) => {
                let message = format!("duplicate {name:?} (first at {first})");
                self.error(path, message);
            }
            None => {
                taken.insert(name.to_owned(), path.to_owned());
            }
        }
    }

    /// Checks the shape `arn:<partition>:<service>:<region>:<account>:<resource_prefix><name>`.
    fn arn(&mut self, path: &str, value: &str, service: &str, resource_prefix: &str) {
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let valid = matches!(
            parts.as_slice(),
            ["arn", partition, arn_service, _, account, resource]
                if partition.starts_with("aws")
                    && arn_service == &service
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && resource.len() > resource_prefix.len()
                    && resource.starts_with(resource_prefix)
        );
        if !valid {
            // IAM is global: its ARNs have no region.
            let region = if service == "iam" { "" } else { "<region>" };
            self.error(
                path,
                format!(
                    "{value:?} is not an ARN like arn:aws:{service}:{region}:<account>:{resource_prefix}<name>"
                ),
            );
        }
    }

    fn column(&mut self, path: &str, column: &str, columns: Columns) {
        if let Some(columns) = columns {
            if !columns.iter().any(|c| c == column) {
                let known = listing(columns.iter().map(String::as_str));
                self.error(
                    path,
                    format!("unknown column {column:?} (columns: {known})"),
                );
            }
        }
    }

    fn column_list(&mut self, path: &str, list: &[String], columns: Columns) {
        for (i, column) in list.iter().enumerate() {
            self.column(&format!("{path}[{i}]"), column, columns);
        }
    }

    fn spec(&mut self, raw: &RawSpec) -> Spec {
        self.pattern("name", &raw.name, &MIGRATION_NAME);
        let group = raw.group.clone().unwrap_or_else(|| "default".to_owned());
        self.pattern("group", &group, &IDENTIFIER);
        let source = self.source(&raw.source);

        let mut prefix = raw.target.table_prefix.as_str();
        self.pattern("target.table_prefix", prefix, &TABLE_PREFIX);
        if !TABLE_PREFIX.matches(prefix) {
            // Reported once above; table names are then checked on their own.
            prefix = "";
        }

        if raw.tables.is_empty() {
            self.error("tables", "at least one table is required");
        }
        let mut table_names = Taken::new();
        let tables: Vec<TableSpec> = raw
            .tables
            .iter()
            .enumerate()
            .map(|(i, table)| {
                let path = format!("tables[{i}]");
                self.table(&path, table, &source.shards, prefix, &mut table_names)
            })
            .collect();

        Spec {
            name: raw.name.clone(),
            group,
            source,
            target: raw.target.clone(),
            domains: self.domains(&raw.domains, &tables),
            tables,
            verification: self.verification(&raw.verification),
            bootstrap: self.bootstrap(&raw.bootstrap),
            poll: self.poll(&raw.poll),
        }
    }

    fn source(&mut self, raw: &RawSource) -> Source {
        if raw.shards.is_empty() {
            self.error("source.shards", "at least one shard is required");
        }
        let mut names = Taken::new();
        let shards = raw
            .shards
            .iter()
            .enumerate()
            .map(|(i, shard)| {
                let path = format!("source.shards[{i}]");
                let name_path = format!("{path}.name");
                self.pattern(&name_path, &shard.name, &IDENTIFIER);
                self.claim(&mut names, &name_path, &shard.name);
                let database = shard.database.as_ref().unwrap_or(&shard.name);
                self.non_empty(&format!("{path}.database"), database);
                match &shard.connection {
                    Connection::Env(variable) => {
                        let mut chars = variable.chars();
                        let is_variable = chars
                            .next()
                            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if !is_variable {
                            self.error(
                                format!("{path}.connection.env"),
                                format!("{variable:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
                            );
                        }
                    }
                    Connection::SecretArn(arn) => self.arn(
                        &format!("{path}.connection.secret_arn"),
                        arn,
                        "secretsmanager",
                        "secret:",
                    ),
                }
                if raw.clone == CloneProvider::Aurora && shard.cluster.is_none() {
                    self.error(
                        format!("{path}.cluster"),
                        "required when source.clone = \"aurora\"",
                    );
                }
                Shard {
                    name: shard.name.clone(),
                    database: database.clone(),
                    connection: shard.connection.clone(),
                    cluster: shard.cluster.clone(),
                }
            })
            .collect();
        Source {
            kind: raw.kind,
            clone: raw.clone,
            shards,
        }
    }

    fn table(
        &mut self,
        path: &str,
        raw: &RawTable,
        shards: &[Shard],
        prefix: &str,
        table_names: &mut Taken,
    ) -> TableSpec {
        let name_path = format!("{path}.name");
        // The limits apply to the DynamoDB table name, which includes the prefix.
        self.pattern(&name_path, &format!("{prefix}{}", raw.name), &DYNAMODB_NAME);
        self.claim(table_names, &name_path, &raw.name);
        self.shard_patterns(&format!("{path}.shards"), &raw.shards, shards);
        self.table_source(&format!("{path}.source"), &raw.source);

        let columns = raw.columns.as_deref();
        if let Some(declared) = columns {
            if declared.is_empty() {
                self.error(
                    format!("{path}.columns"),
                    "must name at least one column, or be left out",
                );
            }
            let mut seen = Taken::new();
            for (i, column) in declared.iter().enumerate() {
                self.claim(&mut seen, &format!("{path}.columns[{i}]"), column);
            }
        }
        self.column_list(&format!("{path}.sensitive"), &raw.sensitive, columns);
        self.column_list(
            &format!("{path}.wide_numbers_as_string"),
            &raw.wide_numbers_as_string,
            columns,
        );
        if let Some(key) = &raw.chunk_key {
            self.column(&format!("{path}.chunk_key"), key, columns);
            if matches!(raw.source, TableSource::Query(_)) {
                self.error(
                    format!("{path}.chunk_key"),
                    "only table sources are cut by key; a query is extracted whole",
                );
            }
        }
        let chunk_target_mb = raw
            .chunk_target_mb
            .map(|mb| self.bounded(&format!("{path}.chunk_target_mb"), mb, 1..=i64::MAX));

        let mut key_attributes = Taken::new();
        let key = self.key_schema(
            &format!("{path}.key"),
            &raw.key.partition,
            raw.key.sort.as_ref(),
            columns,
            &mut key_attributes,
        );
        let attributes = self.attributes(&format!("{path}.attributes"), &raw.attributes, columns);
        if let Some(ttl) = &raw.ttl {
            self.non_empty(&format!("{path}.ttl.attribute"), &ttl.attribute);
            self.column(&format!("{path}.ttl.column"), &ttl.column, columns);
        }
        let dynamodb = self.dynamodb(
            &format!("{path}.dynamodb"),
            &raw.dynamodb,
            columns,
            &mut key_attributes,
        );

        // Checked once every key attribute, GSI ones included, is known.
        let renames =
            raw.attributes.rename.iter().map(|(column, attribute)| {
                (format!("{path}.attributes.rename.{column}"), attribute)
            });
        let ttl = raw
            .ttl
            .iter()
            .map(|ttl| (format!("{path}.ttl.attribute"), &ttl.attribute));
        for (attribute_path, attribute) in renames.chain(ttl) {
            if let Some(key_path) = key_attributes.get(attribute) {
                let message = format!("{attribute:?} is already a key attribute ({key_path})");
                self.error(attribute_path, message);
            }
        }

        TableSpec {
            name: raw.name.clone(),
            shards: raw.shards.clone(),
            source: raw.source.clone(),
            columns: raw.columns.clone(),
            sensitive: raw.sensitive.clone(),
            null_as: raw.null_as,
            wide_numbers_as_string: raw.wide_numbers_as_string.clone(),
            compression: raw.compression,
            chunk_target_mb,
            chunk_key: raw.chunk_key.clone(),
            key,
            attributes,
            ttl: raw.ttl.clone(),
            dynamodb,
        }
    }

    fn shard_patterns(&mut self, path: &str, patterns: &[String], shards: &[Shard]) {
        if patterns.is_empty() {
            self.error(path, "at least one shard is required");
        }
        for (i, pattern) in patterns.iter().enumerate() {
            let pattern_path = format!("{path}[{i}]");
            if pattern.trim_end_matches('*').contains('*') || pattern.ends_with("**") {
                self.error(
                    pattern_path,
                    format!("{pattern:?}: only a single trailing \"*\" is allowed"),
                );
            } else if !shards
                .iter()
                .any(|shard| shard_matches(pattern, &shard.name))
            {
                let known = listing(shards.iter().map(|shard| shard.name.as_str()));
                let message = format!("no shard matches {pattern:?} (shards: {known})");
                self.error(pattern_path, message);
            }
        }
    }

    fn table_source(&mut self, path: &str, source: &TableSource) {
        match source {
            TableSource::Table(table) => self.non_empty(&format!("{path}.table"), table),
            TableSource::Query(query) => {
                let path = format!("{path}.query");
                let first_word = query.split_whitespace().next().unwrap_or_default();
                let is_select = ["SELECT", "WITH"]
                    .iter()
                    .any(|keyword| first_word.eq_ignore_ascii_case(keyword));
                if !is_select {
                    self.error(&path, "must start with SELECT or WITH");
                }
                if query.contains(';') {
                    self.error(&path, "must be a single statement, without \";\"");
                }
            }
        }
    }

    fn key_schema(
        &mut self,
        path: &str,
        partition: &RawKeyAttribute,
        sort: Option<&RawKeyAttribute>,
        columns: Columns,
        key_attributes: &mut Taken,
    ) -> KeySchema {
        KeySchema {
            partition: self.key_attribute(
                &format!("{path}.partition"),
                partition,
                columns,
                key_attributes,
            ),
            sort: sort.map(|sort| {
                self.key_attribute(&format!("{path}.sort"), sort, columns, key_attributes)
            }),
        }
    }

    fn key_attribute(
        &mut self,
        path: &str,
        raw: &RawKeyAttribute,
        columns: Columns,
        key_attributes: &mut Taken,
    ) -> KeyAttribute {
        let attribute_path = format!("{path}.attribute");
        self.non_empty(&attribute_path, &raw.attribute);
        self.claim(key_attributes, &attribute_path, &raw.attribute);
        let template_path = format!("{path}.template");
        let template = match KeyTemplate::parse(&raw.template) {
            Ok(template) => {
                for column in template.columns() {
                    self.column(&template_path, column, columns);
                }
                if raw.key_type == KeyType::Number && template.single_column().is_none() {
                    self.error(
                        format!("{path}.type"),
                        "type \"N\" needs a template that is exactly one placeholder, like \"{id}\"",
                    );
                }
                template
            }
            Err(err) => {
                self.error(template_path, err.to_string());
                KeyTemplate { parts: Vec::new() }
            }
        };
        KeyAttribute {
            attribute: raw.attribute.clone(),
            template,
            key_type: raw.key_type,
        }
    }

    fn attributes(&mut self, path: &str, raw: &RawAttributes, columns: Columns) -> Attributes {
        let selection = match (&raw.include, &raw.exclude) {
            (Some(_), Some(_)) => {
                self.error(path, "give include or exclude, not both");
                ColumnSelection::All
            }
            (Some(include), None) => {
                self.column_list(&format!("{path}.include"), include, columns);
                ColumnSelection::Include(include.clone())
            }
            (None, Some(exclude)) => {
                self.column_list(&format!("{path}.exclude"), exclude, columns);
                ColumnSelection::Exclude(exclude.clone())
            }
            (None, None) => ColumnSelection::All,
        };
        let mut targets = Taken::new();
        for (column, attribute) in &raw.rename {
            let rename_path = format!("{path}.rename.{column}");
            self.column(&rename_path, column, columns);
            self.non_empty(&rename_path, attribute);
            self.claim(&mut targets, &rename_path, attribute);
            let keeps_own_name = |other: &String| {
                other == attribute && !raw.rename.contains_key(other) && selection.includes(other)
            };
            if columns.is_some_and(|columns| columns.iter().any(keeps_own_name)) {
                let message =
                    format!("{attribute:?} is already the attribute of column {attribute:?}");
                self.error(rename_path, message);
            }
        }
        Attributes {
            selection,
            rename: raw.rename.clone(),
        }
    }

    fn dynamodb(
        &mut self,
        path: &str,
        raw: &RawDynamoDb,
        columns: Columns,
        key_attributes: &mut Taken,
    ) -> DynamoDbSettings {
        let billing = self.billing(path, raw);
        match &raw.streaming {
            Some(Streaming::KinesisStreamArn(arn)) => self.arn(
                &format!("{path}.streaming.kinesis_stream_arn"),
                arn,
                "kinesis",
                "stream/",
            ),
            Some(Streaming::KinesisStreamName(name)) => self.pattern(
                &format!("{path}.streaming.kinesis_stream_name"),
                name,
                &KINESIS_STREAM_NAME,
            ),
            None => {}
        }
        for (key, value) in &raw.tags {
            let tag_path = format!("{path}.tags.{key}");
            if !(1..=128).contains(&key.chars().count()) {
                self.error(&tag_path, "tag keys are 1 to 128 characters");
            } else if key.to_ascii_lowercase().starts_with("aws:") {
                self.error(&tag_path, "tag keys must not start with \"aws:\"");
            }
            if value.chars().count() > 256 {
                self.error(&tag_path, "tag values are at most 256 characters");
            }
        }
        let mut gsi_names = Taken::new();
        let gsis = raw
            .gsis
            .iter()
            .enumerate()
            .map(|(i, gsi)| {
                let gsi_path = format!("{path}.gsis[{i}]");
                self.gsi(&gsi_path, gsi, columns, key_attributes, &mut gsi_names)
            })
            .collect();
        DynamoDbSettings {
            billing,
            pitr: raw.pitr.unwrap_or(true),
            streaming: raw.streaming.clone(),
            tags: raw.tags.clone(),
            gsis,
        }
    }

    fn billing(&mut self, path: &str, raw: &RawDynamoDb) -> Billing {
        let capacities = [
            ("read_capacity", raw.read_capacity),
            ("write_capacity", raw.write_capacity),
        ];
        match raw.billing_mode {
            BillingMode::Provisioned => {
                let [read_capacity, write_capacity] = capacities.map(|(field, value)| {
                    let field_path = format!("{path}.{field}");
                    match value {
                        Some(units) => self.bounded(&field_path, units, 1..=i64::MAX),
                        None => {
                            self.error(field_path, "required when billing_mode = \"PROVISIONED\"");
                            0
                        }
                    }
                });
                Billing::Provisioned {
                    read_capacity,
                    write_capacity,
                }
            }
            BillingMode::PayPerRequest => {
                for (field, value) in capacities {
                    if value.is_some() {
                        self.error(
                            format!("{path}.{field}"),
                            "only allowed when billing_mode = \"PROVISIONED\"",
                        );
                    }
                }
                Billing::PayPerRequest
            }
        }
    }

    fn gsi(
        &mut self,
        path: &str,
        raw: &RawGsi,
        columns: Columns,
        key_attributes: &mut Taken,
        gsi_names: &mut Taken,
    ) -> Gsi {
        let name_path = format!("{path}.name");
        self.pattern(&name_path, &raw.name, &DYNAMODB_NAME);
        self.claim(gsi_names, &name_path, &raw.name);
        let key = self.key_schema(
            path,
            &raw.partition,
            raw.sort.as_ref(),
            columns,
            key_attributes,
        );
        if matches!(&raw.projection, Projection::Include(attributes) if attributes.is_empty()) {
            self.error(
                format!("{path}.projection.include"),
                "must name at least one attribute",
            );
        }
        Gsi {
            name: raw.name.clone(),
            key,
            projection: raw.projection.clone(),
        }
    }

    fn domains(
        &mut self,
        raw: &BTreeMap<String, Domain>,
        tables: &[TableSpec],
    ) -> BTreeMap<String, Domain> {
        if raw.is_empty() {
            self.error("domains", "at least one domain is required");
        }
        for (name, domain) in raw {
            let path = format!("domains.{name}");
            self.pattern(&path, name, &IDENTIFIER);
            if domain.tables.is_empty() {
                self.error(format!("{path}.tables"), "must name at least one table");
            }
            let mut listed = Taken::new();
            for (i, table) in domain.tables.iter().enumerate() {
                let table_path = format!("{path}.tables[{i}]");
                if !tables.iter().any(|t| t.name == *table) {
                    let known = listing(tables.iter().map(|t| t.name.as_str()));
                    self.error(
                        &table_path,
                        format!("no table named {table:?} (tables: {known})"),
                    );
                }
                self.claim(&mut listed, &table_path, table);
            }
        }
        raw.clone()
    }

    fn verification(&mut self, raw: &RawVerification) -> Verification {
        Verification {
            tolerance: raw.tolerance.map_or(0, |tolerance| {
                self.bounded("verification.tolerance", tolerance, 0..=i64::MAX)
            }),
            sample_size: raw.sample_size.map_or(100, |size| {
                self.bounded("verification.sample_size", size, 1..=10_000)
            }),
        }
    }

    fn bootstrap(&mut self, raw: &RawBootstrap) -> Bootstrap {
        let path = "bootstrap.emr_serverless";
        match (raw.engine, &raw.emr_serverless) {
            (BootstrapEngine::Lambda, None) => Bootstrap::Lambda,
            (BootstrapEngine::Lambda, Some(_)) => {
                self.error(path, "only allowed when engine = \"emr-serverless\"");
                Bootstrap::Lambda
            }
            (BootstrapEngine::EmrServerless, None) => {
                self.error(path, "required when engine = \"emr-serverless\"");
                Bootstrap::Lambda
            }
            (BootstrapEngine::EmrServerless, Some(emr)) => {
                self.non_empty(&format!("{path}.application_name"), &emr.application_name);
                let bucket = emr.jar_prefix.strip_prefix("s3://").unwrap_or_default();
                if bucket.split('/').next().unwrap_or_default().is_empty() {
                    self.error(
                        format!("{path}.jar_prefix"),
                        format!(
                            "{:?} is not an s3:// URL like \"s3://bucket/jars/\"",
                            emr.jar_prefix
                        ),
                    );
                }
                self.non_empty(&format!("{path}.entry_point_class"), &emr.entry_point_class);
                if let Some(role) = &emr.execution_role_arn {
                    self.arn(&format!("{path}.execution_role_arn"), role, "iam", "role/");
                }
                Bootstrap::EmrServerless(emr.clone())
            }
        }
    }

    fn poll(&mut self, raw: &RawPoll) -> PollIntervals {
        let mut seconds = |field: &str, value: Option<i64>| {
            value.map_or(60, |value| {
                self.bounded(&format!("poll.{field}"), value, 1..=3600)
            })
        };
        PollIntervals {
            clone_seconds: seconds("clone_seconds", raw.clone_seconds),
            import_seconds: seconds("import_seconds", raw.import_seconds),
            export_seconds: seconds("export_seconds", raw.export_seconds),
        }
    }
}

/// Names for an error message, e.g. `a, b, c`.
fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let listed = names.collect::<Vec<_>>().join(", ");
    if listed.is_empty() {
        "none".to_owned()
    } else {
        listed
    }
}
