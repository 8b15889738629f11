//! Static checks of `statemachines/*.asl.json`: the npm `asl-validator` and sfn-local's own
//! validation accept every definition; every `${Placeholder}` is one a local run fills; every
//! error name a Retry, Catch or Fail uses is raised by a function or defined by AWS; every
//! Lambda a definition calls is a crate under `functions/`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use ferry_cli::local_run::{placeholder_values, DEFINITIONS};
use ferry_core::ErrorCode;
use ferry_handlers::Function;
use serde_json::Value;
use sfn_local::{AwsDispatcher, DispatcherChain, Engine, InProcessDispatcher, VirtualClock};

fn definition_files() -> Vec<PathBuf> {
    let dir = ferry_tests::repo_root().join("statemachines");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_definition_file_is_compiled_into_the_local_runner() {
    let on_disk: BTreeSet<String> = definition_files()
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches(".asl.json")
                .to_string()
        })
        .collect();
    let compiled: BTreeSet<String> = DEFINITIONS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, compiled);
    for (name, text) in DEFINITIONS {
        let file = ferry_tests::repo_root().join(format!("statemachines/{name}.asl.json"));
        assert_eq!(&std::fs::read_to_string(file).unwrap(), text);
    }
}

/// `node_modules/.bin/asl-validator`, installed by `npm ci` when it is not there yet.
fn asl_validator() -> PathBuf {
    let dir = ferry_tests::repo_root().join("scripts/node");
    let bin = dir.join("node_modules/.bin/asl-validator");
    if !bin.exists() {
        let status = Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .expect("npm (Node.js) is needed for asl-validator: scripts/test.sh installs it");
        assert!(status.success(), "npm ci in scripts/node failed");
    }
    bin
}

fn validate(bin: &PathBuf, file: &PathBuf) -> (bool, String) {
    let out = Command::new(bin)
        .arg("--json-path")
        .arg(file)
        .output()
        .expect("run asl-validator");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_definition_passes_asl_validator() {
    let bin = asl_validator();
    for file in definition_files() {
        let (ok, said) = validate(&bin, &file);
        assert!(ok, "{}: {said}", file.display());
    }
    // The check can fail: a dangling Next is caught.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.asl.json");
    let text =
        std::fs::read_to_string(ferry_tests::repo_root().join("statemachines/clone.asl.json"))
            .unwrap()
            .replace("\"Next\": \"EnsureClone\"", "\"Next\": \"NoSuchState\"");
    std::fs::write(&broken, text).unwrap();
    assert!(
        !validate(&bin, &broken).0,
        "asl-validator accepted a dangling Next"
    );
}

fn engine() -> Engine {
    let mut lambdas = InProcessDispatcher::new();
    for f in Function::STEPS {
        lambdas.register(f.name(), |v, _| async move { Ok(v) });
    }
    let chain = DispatcherChain::new()
        .with(Arc::new(lambdas))
        .with(Arc::new(AwsDispatcher::from_env()));
    Engine::new(Arc::new(chain), Arc::new(VirtualClock::default()))
}

#[test]
fn every_placeholder_is_filled_by_a_local_run_and_every_definition_loads() {
    let engine = engine();
    let values = placeholder_values(&engine);
    let mut used = BTreeSet::new();
    for (name, text) in DEFINITIONS {
        let found = sfn_local::placeholders::placeholders(text);
        for p in &found {
            assert!(
                values.contains_key(p),
                "{name}: ${{{p}}} is filled by nobody"
            );
        }
        used.extend(found);
        let filled = sfn_local::placeholders::substitute(text, &values).unwrap();
        engine
            .load_str(&filled)
            .unwrap_or_else(|err| panic!("{name}: sfn-local rejects it: {err}"));
    }
    // Nothing is provided that no definition uses (a renamed placeholder would hide here).
    let provided: BTreeSet<String> = values.keys().cloned().collect();
    let unused: Vec<_> = provided
        .difference(&used)
        .filter(|p| *p != "MigrationStateMachineArn")
        .collect();
    assert!(unused.is_empty(), "provided but never used: {unused:?}");
}

/// Every name in `ErrorEquals` and every Fail state's `Error`, with where it is.
fn error_names(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("ErrorEquals", Value::Array(names)) => {
                        for n in names {
                            out.push((n.as_str().unwrap().to_string(), at.to_string()));
                        }
                    }
                    ("Error", Value::String(n))
                        if map.get("Type") == Some(&Value::from("Fail")) =>
                    {
                        out.push((n.clone(), at.to_string()))
                    }
                    _ => error_names(v, &format!("{at}.{k}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                error_names(v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Names AWS defines that the definitions may use: the States.* names, Lambda invocation
/// errors, and the SDK integrations' `<Service>.<Exception>` names of the calls they make.
const AWS_ERRORS: &[&str] = &[
    "States.ALL",
    "States.TaskFailed",
    "States.Timeout",
    "States.HeartbeatTimeout",
    "States.Permissions",
    "States.ResultPathMatchFailure",
    "States.ParameterPathFailure",
    "States.BranchFailed",
    "States.NoChoiceMatched",
    "States.IntrinsicFailure",
    "States.ExceedToleratedFailureThreshold",
    "States.ItemReaderFailed",
    "States.ResultWriterFailed",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "DynamoDb.LimitExceededException",
    "DynamoDb.ThrottlingException",
    "DynamoDb.ProvisionedThroughputExceededException",
    "DynamoDb.RequestLimitExceededException",
    "DynamoDb.InternalServerErrorException",
    "Kinesis.LimitExceededException",
    "EmrServerless.ThrottlingException",
    "EmrServerless.InternalServerException",
    "EMRServerless.ThrottlingException",
    "EMRServerless.InternalServerException",
    "StepFunctions.ExecutionLimitExceededException",
    "StepFunctions.SdkClientException",
];

#[test]
fn every_error_name_is_raised_by_a_function_or_defined_by_aws() {
    let ferry: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.error_type()).collect();
    for (name, text) in DEFINITIONS {
        let mut names = Vec::new();
        error_names(&serde_json::from_str(text).unwrap(), name, &mut names);
        assert!(!names.is_empty(), "{name} handles no error at all");
        for (error, at) in names {
            assert!(
                ferry.contains(error.as_str()) || AWS_ERRORS.contains(&error.as_str()),
                "{at}: {error} is neither in the error catalogue nor an AWS error name"
            );
        }
    }
}

#[test]
fn every_lambda_a_definition_calls_is_a_function_crate() {
    let root = ferry_tests::repo_root();
    let mut called = BTreeSet::new();
    for (_, text) in DEFINITIONS {
        for p in sfn_local::placeholders::placeholders(text) {
            if let Some(stem) = p.strip_suffix("FunctionArn") {
                let f = Function::ALL
                    .iter()
                    .find(|f| f.placeholder() == p)
                    .unwrap_or_else(|| panic!("${{{p}}}: no function {stem}"));
                called.insert(f.name());
            }
        }
    }
    for name in &called {
        let main = root.join(format!("functions/{name}/src/main.rs"));
        let text = std::fs::read_to_string(&main)
            .unwrap_or_else(|_| panic!("{} does not exist", main.display()));
        let f = Function::from_name(name).unwrap();
        assert!(
            text.contains(&format!("{f:?}")),
            "{} does not serve {f:?}",
            main.display()
        );
    }
    let crates: BTreeSet<String> = std::fs::read_dir(root.join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let steps: BTreeSet<&str> = Function::STEPS.iter().map(|f| f.name()).collect();
    assert_eq!(
        called, steps,
        "the definitions call exactly the step functions"
    );
    let all: BTreeSet<String> = Function::ALL.iter().map(|f| f.name().to_string()).collect();
    assert_eq!(
        crates, all,
        "functions/ holds exactly one crate per function"
    );
}
