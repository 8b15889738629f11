use std::path::Path;

use super::*;

const SOURCE: &str = r#"
name = "demo"

[source]
kind = "postgres"
clone = "none"
"#;

const SHARDS: &str = r#"
[[source.shards]]
name = "main"
connection = { env = "FERRY_DATABASE_URL" }

[[source.shards]]
name = "part-01"
connection = { env = "FERRY_DATABASE_URL" }
"#;

const TARGET: &str = r#"
[target]
table_prefix = "t-"
"#;

const TABLE: &str = r#"
[[tables]]
name = "Rate"
shards = ["part-*"]
source = { table = "public.rate" }
columns = ["hotel_id", "stay_date", "amount", "expiry_date"]

[tables.key]
partition = { attribute = "pk", template = "HOTEL#{hotel_id}" }
sort = { attribute = "sk", template = "DATE#{stay_date}" }

[tables.attributes]
rename = { amount = "price" }

[tables.ttl]
attribute = "expiresAt"
column = "expiry_date"

[tables.dynamodb]
tags = { team = "rates" }

[[tables.dynamodb.gsis]]
name = "byDate"
partition = { attribute = "gsi1pk", template = "DATE#{stay_date}" }
"#;

const DOMAINS: &str = r#"
[domains.rates]
tables = ["Rate"]
"#;

const PARTS: [&str; 5] = [SOURCE, SHARDS, TARGET, TABLE, DOMAINS];

fn base() -> String {
    PARTS.concat()
}

/// The base spec without one of its parts.
fn without(left_out: &str) -> String {
    PARTS.into_iter().filter(|part| *part != left_out).collect()
}

/// The base spec with each `(from, to)` replacement applied once.
fn edited(edits: &[(&str, &str)]) -> String {
    edits.iter().fold(base(), |text, (from, to)| {
        assert!(text.contains(from), "the base spec has no {from:?}");
        text.replacen(from, to, 1)
    })
}

fn parsed(text: &str) -> Spec {
    Spec::from_toml_str(text).unwrap_or_else(|errors| panic!("spec rejected:\n{errors}"))
}

fn example() -> Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rates-availability.toml");
    Spec::from_path(&path).unwrap_or_else(|errors| panic!("example rejected:\n{errors}"))
}

/// Asserts exactly these errors, in this order: each path equal and each message containing
/// the fragment.
fn assert_errors(text: &str, expected: &[(&str, &str)]) {
    let errors = Spec::from_toml_str(text)
        .expect_err("spec should be rejected")
        .0;
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    let matches = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|((path, message), (want_path, fragment))| {
                path == want_path && message.contains(fragment)
            });
    assert!(matches, "expected {expected:#?}\ngot {got:#?}");
}

/// One test per check: the spec it reads and the errors it must give.
macro_rules! rejects {
    ($($name:ident: $text:expr => [$(($path:expr, $fragment:expr)),+ $(,)?];)*) => {$(
        #[test]
        fn $name() {
            assert_errors(&$text, &[$(($path, $fragment)),+]);
        }
    )*};
}

// Structural mistakes, reported by serde with their path.
rejects! {
    unknown_field_names_its_path: edited(&[("columns =", "colums =")])
        => [("tables[0].colums", "unknown field `colums`")];
    wrong_type_names_its_path: edited(&[("[tables.key]", "chunk_target_mb = \"big\"\n[tables.key]")])
        => [("tables[0].chunk_target_mb", "invalid type: string \"big\"")];
    unknown_enum_value_names_its_path: edited(&[("clone = \"none\"", "clone = \"rds\"")])
        => [("source.clone", "unknown variant `rds`, expected one of `aurora`, `postgres-template`, `none`")];
    unknown_key_type: edited(&[("template = \"HOTEL#{hotel_id}\"", "template = \"HOTEL#{hotel_id}\", type = \"X\"")])
        => [("tables[0].key.partition.type", "unknown variant `X`")];
    missing_top_level_field_has_empty_path: edited(&[("name = \"demo\"", "")])
        => [("", "missing field `name`")];
    connection_takes_exactly_one_form: edited(&[("{ env = \"FERRY_DATABASE_URL\" }", "{ env = \"A\", secret_arn = \"B\" }")])
        => [("source.shards[0].connection", "expected exactly one of `env` or `secret_arn`")];
    table_source_takes_exactly_one_form: edited(&[("{ table = \"public.rate\" }", "{}")])
        => [("tables[0].source", "expected exactly one of `table` or `query`")];
}

// Names and the source.
rejects! {
    invalid_migration_name: edited(&[("name = \"demo\"", "name = \"de mo\"")])
        => [("name", "\"de mo\" does not match [A-Za-z0-9_-]{1,64}")];
    invalid_group: edited(&[("name = \"demo\"", "name = \"demo\"\ngroup = \"a/b\"")])
        => [("group", "does not match [A-Za-z0-9_-]+")];
    no_shards: without(SHARDS)
        => [("source.shards", "at least one shard is required"), ("tables[0].shards[0]", "no shard matches \"part-*\" (shards: none)")];
    invalid_shard_name: edited(&[("name = \"main\"", "name = \"main db\"")])
        => [("source.shards[0].name", "does not match")];
    duplicate_shard_name: edited(&[("name = \"main\"", "name = \"part-01\"")])
        => [("source.shards[1].name", "duplicate \"part-01\" (first at source.shards[0].name)")];
    empty_database_name: edited(&[("name = \"main\"", "name = \"main\"\ndatabase = \"\"")])
        => [("source.shards[0].database", "must not be empty")];
    invalid_env_variable: edited(&[("env = \"FERRY_DATABASE_URL\"", "env = \"1URL\"")])
        => [("source.shards[0].connection.env", "not an environment variable name")];
    invalid_secret_arn: edited(&[("{ env = \"FERRY_DATABASE_URL\" }", "{ secret_arn = \"arn:aws:s3:::bucket\" }")])
        => [("source.shards[0].connection.secret_arn", "is not an ARN like arn:aws:secretsmanager:<region>:<account>:secret:<name>")];
    aurora_needs_a_cluster: edited(&[("clone = \"none\"", "clone = \"aurora\""), ("name = \"main\"", "name = \"main\"\ncluster = \"lips\"")])
        => [("source.shards[1].cluster", "required when source.clone = \"aurora\"")];
    invalid_table_prefix: edited(&[("table_prefix = \"t-\"", "table_prefix = \"t/\"")])
        => [("target.table_prefix", "\"t/\" does not match")];
}

// Tables, their shards and source.
rejects! {
    no_tables: without(TABLE)
        => [("tables", "at least one table is required"), ("domains.rates.tables[0]", "no table named \"Rate\" (tables: none)")];
    duplicate_table_name: edited(&[("[domains.rates]", format!("{TABLE}[domains.rates]").as_str())])
        => [("tables[1].name", "duplicate \"Rate\" (first at tables[0].name)")];
    dynamodb_table_name_rules_include_the_prefix: edited(&[("name = \"Rate\"", "name = \"R\""), ("tables = [\"Rate\"]", "tables = [\"R\"]"), ("table_prefix = \"t-\"", "table_prefix = \"\"")])
        => [("tables[0].name", "\"R\" does not match [A-Za-z0-9_.-]{3,255}")];
    table_needs_a_shard: edited(&[("shards = [\"part-*\"]", "shards = []")])
        => [("tables[0].shards", "at least one shard is required")];
    shard_pattern_must_match: edited(&[("shards = [\"part-*\"]", "shards = [\"part-*\", \"other\"]")])
        => [("tables[0].shards[1]", "no shard matches \"other\" (shards: main, part-01)")];
    only_a_trailing_star: edited(&[("shards = [\"part-*\"]", "shards = [\"pa*rt\"]")])
        => [("tables[0].shards[0]", "only a single trailing \"*\"")];
    query_must_select: edited(&[("{ table = \"public.rate\" }", "{ query = \"DELETE FROM rate\" }")])
        => [("tables[0].source.query", "must start with SELECT or WITH")];
    query_is_one_statement: edited(&[("{ table = \"public.rate\" }", "{ query = \"SELECT * FROM rate; DROP TABLE rate\" }")])
        => [("tables[0].source.query", "single statement")];
    duplicate_column: edited(&[("\"amount\", \"expiry_date\"]", "\"amount\", \"amount\", \"expiry_date\"]")])
        => [("tables[0].columns[3]", "duplicate \"amount\" (first at tables[0].columns[2])")];
    unknown_sensitive_column: edited(&[("[tables.key]", "sensitive = [\"amount\", \"price\"]\n[tables.key]")])
        => [("tables[0].sensitive[1]", "unknown column \"price\"")];
    unknown_wide_number_column: edited(&[("[tables.key]", "wide_numbers_as_string = [\"amount\", \"balance\"]\n[tables.key]")])
        => [("tables[0].wide_numbers_as_string[1]", "unknown column \"balance\"")];
    chunk_target_must_be_positive: edited(&[("[tables.key]", "chunk_target_mb = 0\n[tables.key]")])
        => [("tables[0].chunk_target_mb", "must be at least 1, got 0")];
    unknown_chunk_key: edited(&[("[tables.key]", "chunk_key = \"rate_id\"\n[tables.key]")])
        => [("tables[0].chunk_key", "unknown column \"rate_id\"")];
    query_sources_are_not_cut_by_key: edited(&[("{ table = \"public.rate\" }", "{ query = \"SELECT * FROM rate\" }"), ("[tables.key]", "chunk_key = \"amount\"\n[tables.key]")])
        => [("tables[0].chunk_key", "only table sources are cut by key")];
}

// Keys, attributes and TTL.
rejects! {
    unknown_template_column: edited(&[("HOTEL#{hotel_id}", "HOTEL#{hotelid}")])
        => [("tables[0].key.partition.template", "unknown column \"hotelid\" (columns: hotel_id, stay_date, amount, expiry_date)")];
    malformed_template: edited(&[("DATE#{stay_date}\" }", "DATE#{stay_date\" }")])
        => [("tables[0].key.sort.template", "unclosed \"{\" at character 6")];
    number_key_is_one_placeholder: edited(&[("template = \"HOTEL#{hotel_id}\"", "template = \"HOTEL#{hotel_id}\", type = \"N\"")])
        => [("tables[0].key.partition.type", "exactly one placeholder")];
    key_attributes_are_distinct: edited(&[("attribute = \"sk\"", "attribute = \"pk\"")])
        => [("tables[0].key.sort.attribute", "duplicate \"pk\" (first at tables[0].key.partition.attribute)")];
    gsi_key_attribute_is_not_a_table_key_attribute: edited(&[("attribute = \"gsi1pk\"", "attribute = \"sk\"")])
        => [("tables[0].dynamodb.gsis[0].partition.attribute", "duplicate \"sk\" (first at tables[0].key.sort.attribute)")];
    rename_onto_key_attribute: edited(&[("amount = \"price\"", "amount = \"pk\"")])
        => [("tables[0].attributes.rename.amount", "\"pk\" is already a key attribute (tables[0].key.partition.attribute)")];
    rename_onto_gsi_key_attribute: edited(&[("amount = \"price\"", "amount = \"gsi1pk\"")])
        => [("tables[0].attributes.rename.amount", "(tables[0].dynamodb.gsis[0].partition.attribute)")];
    rename_onto_another_column: edited(&[("amount = \"price\"", "amount = \"stay_date\"")])
        => [("tables[0].attributes.rename.amount", "\"stay_date\" is already the attribute of column \"stay_date\"")];
    rename_targets_are_distinct: edited(&[("amount = \"price\"", "amount = \"price\", expiry_date = \"price\"")])
        => [("tables[0].attributes.rename.expiry_date", "duplicate \"price\" (first at tables[0].attributes.rename.amount)")];
    rename_of_unknown_column: edited(&[("amount = \"price\"", "amout = \"price\"")])
        => [("tables[0].attributes.rename.amout", "unknown column \"amout\"")];
    include_and_exclude_together: edited(&[("rename =", "include = [\"amount\"]\nexclude = [\"stay_date\"]\nrename =")])
        => [("tables[0].attributes", "include or exclude, not both")];
    include_of_unknown_column: edited(&[("rename =", "include = [\"hotel_id\", \"ammount\"]\nrename =")])
        => [("tables[0].attributes.include[1]", "unknown column \"ammount\"")];
    exclude_of_unknown_column: edited(&[("rename =", "exclude = [\"updated\"]\nrename =")])
        => [("tables[0].attributes.exclude[0]", "unknown column \"updated\"")];
    ttl_attribute_is_not_a_key_attribute: edited(&[("attribute = \"expiresAt\"", "attribute = \"sk\"")])
        => [("tables[0].ttl.attribute", "\"sk\" is already a key attribute (tables[0].key.sort.attribute)")];
    ttl_of_unknown_column: edited(&[("column = \"expiry_date\"", "column = \"expires\"")])
        => [("tables[0].ttl.column", "unknown column \"expires\"")];
}

// DynamoDB settings.
rejects! {
    provisioned_needs_capacities: edited(&[("tags =", "billing_mode = \"PROVISIONED\"\nread_capacity = 5\ntags =")])
        => [("tables[0].dynamodb.write_capacity", "required when billing_mode = \"PROVISIONED\"")];
    capacities_need_provisioned: edited(&[("tags =", "read_capacity = 5\ntags =")])
        => [("tables[0].dynamodb.read_capacity", "only allowed when billing_mode = \"PROVISIONED\"")];
    capacity_is_positive: edited(&[("tags =", "billing_mode = \"PROVISIONED\"\nread_capacity = 0\nwrite_capacity = 1\ntags =")])
        => [("tables[0].dynamodb.read_capacity", "must be at least 1, got 0")];
    tag_rules: edited(&[("team = \"rates\"", format!("\"aws:owner\" = \"x\", team = \"{}\"", "x".repeat(257)).as_str())])
        => [("tables[0].dynamodb.tags.aws:owner", "must not start with \"aws:\""), ("tables[0].dynamodb.tags.team", "at most 256 characters")];
    invalid_stream_arn: edited(&[("tags =", "streaming = { kinesis_stream_arn = \"arn:aws:kinesis:us-east-1:123:stream/x\" }\ntags =")])
        => [("tables[0].dynamodb.streaming.kinesis_stream_arn", "arn:aws:kinesis:<region>:<account>:stream/<name>")];
    invalid_gsi_name: edited(&[("name = \"byDate\"", "name = \"by\"")])
        => [("tables[0].dynamodb.gsis[0].name", "\"by\" does not match [A-Za-z0-9_.-]{3,255}")];
    duplicate_gsi_name: edited(&[("[domains.rates]", "[[tables.dynamodb.gsis]]\nname = \"byDate\"\npartition = { attribute = \"gsi2pk\", template = \"{amount}\" }\n[domains.rates]")])
        => [("tables[0].dynamodb.gsis[1].name", "duplicate \"byDate\" (first at tables[0].dynamodb.gsis[0].name)")];
    gsi_template_column: edited(&[("DATE#{stay_date}\" }\n\n[domains", "DATE#{day}\" }\n\n[domains")])
        => [("tables[0].dynamodb.gsis[0].partition.template", "unknown column \"day\"")];
    gsi_projection_includes_something: edited(&[("[domains.rates]", "projection = { include = [] }\n[domains.rates]")])
        => [("tables[0].dynamodb.gsis[0].projection.include", "must name at least one attribute")];
}

// Domains and the optional sections.
rejects! {
    no_domains: without(DOMAINS)
        => [("domains", "at least one domain is required")];
    domain_names_known_tables: edited(&[("tables = [\"Rate\"]", "tables = [\"Rat\"]")])
        => [("domains.rates.tables[0]", "no table named \"Rat\" (tables: Rate)")];
    domain_needs_a_table: edited(&[("tables = [\"Rate\"]", "tables = []")])
        => [("domains.rates.tables", "must name at least one table")];
    domain_lists_a_table_once: edited(&[("tables = [\"Rate\"]", "tables = [\"Rate\", \"Rate\"]")])
        => [("domains.rates.tables[1]", "duplicate \"Rate\"")];
    negative_tolerance: base() + "[verification]\ntolerance = -1\n"
        => [("verification.tolerance", "must be at least 0, got -1")];
    sample_size_range: base() + "[verification]\nsample_size = 0\n"
        => [("verification.sample_size", "must be between 1 and 10000, got 0")];
    emr_serverless_needs_its_section: base() + "[bootstrap]\nengine = \"emr-serverless\"\n"
        => [("bootstrap.emr_serverless", "required when engine = \"emr-serverless\"")];
    emr_serverless_section_needs_its_engine: base() + "[bootstrap.emr_serverless]\napplication_name = \"a\"\njar_prefix = \"s3://b/\"\nentry_point_class = \"C\"\n"
        => [("bootstrap.emr_serverless", "only allowed when engine = \"emr-serverless\"")];
    emr_serverless_settings: base() + "[bootstrap]\nengine = \"emr-serverless\"\n[bootstrap.emr_serverless]\napplication_name = \"a\"\njar_prefix = \"bucket/jars\"\nentry_point_class = \"C\"\nexecution_role_arn = \"role/x\"\n"
        => [("bootstrap.emr_serverless.jar_prefix", "not an s3:// URL"), ("bootstrap.emr_serverless.execution_role_arn", "arn:aws:iam::<account>:role/<name>")];
    poll_range: base() + "[poll]\nimport_seconds = 0\nexport_seconds = 3601\n"
        => [("poll.import_seconds", "between 1 and 3600, got 0"), ("poll.export_seconds", "got 3601")];
}

#[test]
fn the_example_parses_and_validates() {
    let spec = example();
    assert_eq!(spec.name, "rates-availability");
    assert_eq!(spec.source.clone, CloneProvider::PostgresTemplate);
    let base_rate = spec.table("BaseRate").expect("BaseRate");
    let shards: Vec<&str> = spec
        .shards_of(base_rate)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        shards,
        ["dailydatadb-partition-01", "dailydatadb-partition-02"]
    );
    assert_eq!(spec.dynamodb_table_name(base_rate), "ferry-demo-BaseRate");
    let sort = base_rate.key.sort.as_ref().expect("sort key");
    assert_eq!(
        sort.template.columns().collect::<Vec<_>>(),
        ["rate_plan_id", "room_type_id", "stay_date"]
    );
    assert_eq!(base_rate.dynamodb.gsis[0].name, "byStayDate");
    let names = |domain| {
        spec.domain_tables(domain)
            .map(|tables| tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>())
    };
    assert_eq!(
        names("rates"),
        Some(vec![
            "BaseRate".to_owned(),
            "BaseRateAssociation".to_owned()
        ])
    );
    assert_eq!(
        names("availability"),
        Some(vec!["Inventory".to_owned(), "Restriction".to_owned()])
    );
    assert_eq!(names("payments"), None);
    assert!(spec.table("Hotel").is_none());
}

#[test]
fn several_mistakes_give_one_error_each_in_file_order() {
    let text = edited(&[
        ("name = \"demo\"", "name = \"\""),
        ("HOTEL#{hotel_id}", "HOTEL#{hotelid}"),
        ("tables = [\"Rate\"]", "tables = [\"BaseRat\"]"),
    ]);
    assert_errors(
        &text,
        &[
            ("name", "does not match"),
            (
                "tables[0].key.partition.template",
                "unknown column \"hotelid\"",
            ),
            ("domains.rates.tables[0]", "no table named \"BaseRat\""),
        ],
    );
    let shown = Spec::from_toml_str(&text).unwrap_err().to_string();
    assert_eq!(shown.lines().count(), 3);
    assert!(shown.starts_with("name: \"\" does not match"), "{shown}");
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let spec = parsed(&base());
    assert_eq!(spec.group, "default");
    assert_eq!(spec.source.shards[0].database, "main");
    let table = &spec.tables[0];
    assert_eq!(
        (table.null_as, table.compression),
        (NullAs::Omit, Compression::Gzip)
    );
    assert_eq!(table.key.partition.key_type, KeyType::String);
    assert_eq!(table.attributes.selection, ColumnSelection::All);
    assert_eq!(
        (table.dynamodb.billing, table.dynamodb.pitr),
        (Billing::PayPerRequest, true)
    );
    assert_eq!(table.dynamodb.gsis[0].projection, Projection::All);
    assert_eq!(
        spec.verification,
        Verification {
            tolerance: 0,
            sample_size: 100
        }
    );
    assert_eq!(spec.bootstrap, Bootstrap::Lambda);
    assert_eq!(
        spec.poll,
        PollIntervals {
            clone_seconds: 60,
            import_seconds: 60,
            export_seconds: 60
        }
    );
}

#[test]
fn a_key_column_may_be_excluded() {
    parsed(&edited(&[(
        "rename =",
        "exclude = [\"hotel_id\"]\nrename =",
    )]));
}

#[test]
fn a_single_placeholder_makes_a_number_key() {
    let spec = parsed(&edited(&[(
        "template = \"HOTEL#{hotel_id}\"",
        "template = \"{hotel_id}\", type = \"N\"",
    )]));
    assert_eq!(spec.tables[0].key.partition.key_type, KeyType::Number);
}

#[test]
fn without_columns_a_query_is_not_checked_offline() {
    let spec = parsed(&edited(&[
        (
            "source = { table = \"public.rate\" }",
            "source = { query = \"with r as (select * from rate) select * from r\" }",
        ),
        (
            "columns = [\"hotel_id\", \"stay_date\", \"amount\", \"expiry_date\"]",
            "",
        ),
        ("HOTEL#{hotel_id}", "HOTEL#{anything}"),
    ]));
    assert_eq!(spec.tables[0].columns, None);
}

#[test]
fn a_syntax_error_has_an_empty_path_and_a_line() {
    let text = base() + "oops\n";
    let line = text.lines().count();
    assert_errors(&text, &[("", format!("(line {line}, column 5)").as_str())]);
}

#[test]
fn an_unreadable_file_is_one_error_with_an_empty_path() {
    let errors = Spec::from_path(Path::new("/nonexistent/spec.toml"))
        .unwrap_err()
        .0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "");
    assert!(
        errors[0]
            .message
            .starts_with("cannot read /nonexistent/spec.toml"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_spec_round_trips_through_json() {
    // Every enum in its less common form, so each serde shape is exercised.
    let rich = parsed(&(edited(&[
        ("clone = \"none\"", "clone = \"aurora\""),
        ("name = \"main\"", "name = \"main\"\ncluster = \"lips\""),
        ("name = \"part-01\"", "name = \"part-01\"\ncluster = \"daily\""),
        ("{ env = \"FERRY_DATABASE_URL\" }", "{ secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:x\" }"),
        ("{ table = \"public.rate\" }", "{ query = \"SELECT * FROM rate\" }"),
        ("template = \"HOTEL#{hotel_id}\"", "template = \"{{{hotel_id}}}\", type = \"B\""),
        ("[tables.key]", "null_as = \"null\"\ncompression = \"zstd\"\n[tables.key]"),
        ("rename =", "include = [\"amount\"]\nrename ="),
        ("tags =", "billing_mode = \"PROVISIONED\"\nread_capacity = 5\nwrite_capacity = 10\npitr = false\nstreaming = { kinesis_stream_name = \"rates\" }\ntags ="),
        ("[domains.rates]", "projection = { include = [\"price\"] }\n[domains.rates]"),
    ]) + "[bootstrap]\nengine = \"emr-serverless\"\n[bootstrap.emr_serverless]\napplication_name = \"a\"\njar_prefix = \"s3://b/jars/\"\nentry_point_class = \"C\"\nexecution_role_arn = \"arn:aws:iam::123456789012:role/x\"\n"));
    for spec in [example(), rich] {
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), spec, "{json}");
    }
}
