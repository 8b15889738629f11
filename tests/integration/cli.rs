//! The `ferry` binary as a user runs it.

use std::process::Output;

use ferry_tests::{ferry, repo_root};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn validate_accepts_the_example() {
    let example = repo_root().join("examples/rates-availability.toml");
    let output = ferry().arg("validate").arg(&example).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("ok (3 shards, 4 tables, 2 domains)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn validate_reports_every_mistake_with_its_field_path() {
    let spec = repo_root().join("tests/fixtures/specs/three-mistakes.toml");
    let output = ferry().arg("validate").arg(&spec).output().unwrap();
    assert!(!output.status.success());
    let text = stderr(&output);
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(&spec.display().to_string()))
        .collect();
    assert_eq!(errors.len(), 3, "{text}");
    for expected in [
        "tables[0].key.partition.template: unknown column \"hotelid\"",
        "tables[0].ttl.column: unknown column \"expires_on\"",
        "domains.rates.tables[0]: no table named \"BaseRat\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains("3 error(s)"), "{text}");
}

#[test]
fn plan_describes_each_step_of_a_domain() {
    let example = repo_root().join("examples/rates-availability.toml");
    let output = ferry()
        .args(["plan", "--domain", "availability"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "domain availability",
        "ferry-demo-Inventory: pk = HOTEL#{hotel_id}",
        "Restriction <- public.restriction on 2 shard(s)",
        "TTL expiresAt <- expiry_date",
        "8. finish",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("BaseRate"), "only the asked domain:\n{text}");

    let output = ferry()
        .args(["plan", "--domain", "nope"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("domain: the spec has no domain \"nope\""));
}

#[test]
fn local_init_creates_the_state_table_once() {
    let table = ferry_tests::unique_name("cli-state");
    let init = || {
        ferry()
            .args(["local", "init", "--state-table", &table])
            .output()
            .unwrap()
    };
    let first = init();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("created"), "{}", stdout(&first));
    let second = init();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("already there"),
        "{}",
        stdout(&second)
    );
}
