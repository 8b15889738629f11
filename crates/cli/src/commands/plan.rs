use std::fmt::Write;
use std::path::Path;

use anyhow::bail;
use ferry_core::spec::{Bootstrap, KeySchema, Streaming, TableSource, TableSpec};
use ferry_core::Spec;

/// Prints what a run of each domain would do, step by step, from the spec alone.
pub fn run(path: &Path, domain: Option<&str>) -> anyhow::Result<()> {
    let spec = match Spec::from_path(path) {
        Ok(spec) => spec,
        Err(errors) => bail!("{} is not valid:\n{errors}", path.display()),
    };
    let domains: Vec<&String> = match domain {
        Some(name) => match spec.domains.get_key_value(name) {
            Some((name, _)) => vec![name],
            None => bail!(
                "domain: the spec has no domain {name:?} (domains: {})",
                spec.domains.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        },
        None => spec.domains.keys().collect(),
    };
    for name in domains {
        print!("{}", describe_domain(&spec, name));
    }
    Ok(())
}

fn describe_domain(spec: &Spec, domain: &str) -> String {
    let tables = spec.domain_tables(domain).unwrap_or_default();
    let mut shards: Vec<&str> = Vec::new();
    for table in &tables {
        for shard in spec.shards_of(table) {
            if !shards.contains(&shard.name.as_str()) {
                shards.push(&shard.name);
            }
        }
    }
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "migration {} (group {}), domain {domain}",
        spec.name, spec.group
    );
    let _ = writeln!(
        w,
        "  1. prepare    record the run as PROCESSING (refused while another run is), take a clone lease"
    );
    let clone = serde_json::to_value(spec.source.clone).unwrap_or_default();
    let _ = writeln!(
        w,
        "  2. clone      {} of {}",
        clone.as_str().unwrap_or("?"),
        shards.join(", ")
    );
    let engine = match &spec.bootstrap {
        Bootstrap::Lambda => "bootstrap Lambda per chunk".to_string(),
        Bootstrap::EmrServerless(emr) => format!(
            "EMR Serverless application {} (newest JAR under {})",
            emr.application_name, emr.jar_prefix
        ),
    };
    let _ = writeln!(w, "  3. bootstrap  {engine}:");
    for table in &tables {
        let from = match &table.source {
            TableSource::Table(name) => name.clone(),
            TableSource::Query(_) => "a query".to_string(),
        };
        let _ = writeln!(
            w,
            "                 {} <- {from} on {} shard(s), {} compressed",
            table.name,
            spec.shards_of(table).len(),
            format!("{:?}", table.compression).to_lowercase()
        );
    }
    let _ = writeln!(w, "  4. import     ImportTable into new tables:");
    for table in &tables {
        let _ = writeln!(w, "{}", describe_target(spec, table));
    }
    let _ = writeln!(
        w,
        "  5. export     ExportTableToPointInTime of each table (polled every {} s)",
        spec.poll.export_seconds
    );
    let _ = writeln!(
        w,
        "  6. verify     digest source and export, diff; fail above {} differing item(s)",
        spec.verification.tolerance
    );
    let _ = writeln!(
        w,
        "  7. cleanup    release the lease; drop the clones when no other domain holds one"
    );
    let _ = writeln!(w, "  8. finish     mark the run SUCCEEDED or FAILED");
    out
}

fn describe_key(key: &KeySchema) -> String {
    let mut text = format!("{} = {}", key.partition.attribute, key.partition.template);
    if let Some(sort) = &key.sort {
        let _ = write!(text, ", {} = {}", sort.attribute, sort.template);
    }
    text
}

fn describe_target(spec: &Spec, table: &TableSpec) -> String {
    let settings = &table.dynamodb;
    let mut lines = vec![format!(
        "                 {}: {}",
        spec.dynamodb_table_name(table),
        describe_key(&table.key)
    )];
    let mut extras = Vec::new();
    if let Some(ttl) = &table.ttl {
        extras.push(format!("TTL {} <- {}", ttl.attribute, ttl.column));
    }
    extras.push(format!("PITR {}", if settings.pitr { "on" } else { "off" }));
    if !settings.tags.is_empty() {
        extras.push(format!("{} tag(s)", settings.tags.len()));
    }
    extras.push(match &settings.streaming {
        None => "no streaming".to_string(),
        Some(Streaming::KinesisStreamArn(stream) | Streaming::KinesisStreamName(stream)) => {
            format!("Kinesis streaming to {stream} (not in a dry run)")
        }
    });
    lines.push(format!("                   {}", extras.join(", ")));
    for gsi in &settings.gsis {
        lines.push(format!(
            "                   index {}: {}",
            gsi.name,
            describe_key(&gsi.key)
        ));
    }
    lines.join("\n")
}
