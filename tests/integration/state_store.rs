//! The DynamoDB state store against the emulator, over HTTP.

use std::sync::Arc;

use ferry_core::state::{
    CloneLease, DynamoDbStateStore, NewRun, RunError, RunMetrics, RunOutcome, StateStore,
};
use ferry_core::{ErrorCode, RunId, RunStatus, Spec};

async fn store() -> DynamoDbStateStore {
    let config = ferry_tests::aws_config().await;
    let store = DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        ferry_tests::unique_name("state"),
    );
    assert!(store.create_table_if_missing().await.unwrap());
    assert!(
        !store.create_table_if_missing().await.unwrap(),
        "a second init finds the table"
    );
    store
}

fn spec() -> Spec {
    Spec::from_path(&ferry_tests::repo_root().join("examples/rates-availability.toml"))
        .expect("the example spec validates")
}

fn new_run(spec: &Spec) -> NewRun {
    NewRun {
        run_id: RunId::new(),
        spec: spec.clone(),
        domain: Some("rates".to_string()),
        dry_run: false,
        parallelism: 4,
    }
}

fn failure() -> RunError {
    RunError {
        state: "Bootstrap".to_string(),
        error: "Ferry.SourceUnavailable".to_string(),
        cause: "connection refused".to_string(),
    }
}

#[tokio::test]
async fn a_run_goes_from_start_to_finish_and_the_next_may_start() {
    let store = store().await;
    let spec = spec();
    assert!(store.migration(&spec.name).await.unwrap().is_none());

    let first = store.begin_run(new_run(&spec)).await.unwrap();
    assert_eq!(first.status, RunStatus::Processing);
    assert_eq!(first.spec, spec, "the spec snapshot round-trips");
    let state = store.migration(&spec.name).await.unwrap().unwrap();
    assert_eq!(state.status, RunStatus::Processing);
    assert_eq!(state.current_run, Some(first.run_id));
    assert_eq!(state.group, spec.group);

    let arn = "arn:aws:states:us-east-1:123456789012:execution:migration:x";
    store
        .record_execution(&spec.name, first.run_id, arn, Some("https://logs"))
        .await
        .unwrap();
    store
        .record_execution(&spec.name, first.run_id, arn, Some("https://logs"))
        .await
        .expect("recording the same execution again is a no-op");
    let other = store
        .record_execution(&spec.name, first.run_id, "arn:other", None)
        .await
        .unwrap_err();
    assert_eq!(other.code(), ErrorCode::InvalidTransition);

    let metrics = RunMetrics {
        rows: 10,
        items: 10,
        bytes: 1234,
        chunks_done: 1,
        chunks_total: 2,
    };
    store
        .update_metrics(&spec.name, first.run_id, &metrics)
        .await
        .unwrap();
    let active = store.active_runs().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].run_id, first.run_id);

    let done = store
        .finish_run(
            &spec.name,
            first.run_id,
            RunOutcome::succeeded(metrics.clone()),
        )
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.execution_arn.as_deref(), Some(arn));
    assert_eq!(done.metrics, metrics);
    assert!(done.ended_at.is_some());
    assert!(
        store.active_runs().await.unwrap().is_empty(),
        "ACTIVE is sparse"
    );
    let state = store.migration(&spec.name).await.unwrap().unwrap();
    assert_eq!(state.status, RunStatus::Succeeded);

    let second = store.begin_run(new_run(&spec)).await.unwrap();
    let failed = store
        .finish_run(
            &spec.name,
            second.run_id,
            RunOutcome::failed(failure(), RunMetrics::default()),
        )
        .await
        .unwrap();
    assert_eq!(failed.error, Some(failure()));
    let state = store.migration(&spec.name).await.unwrap().unwrap();
    assert_eq!(state.status, RunStatus::Failed);
    assert_eq!(state.current_run, Some(second.run_id));

    let page = store.runs(&spec.name, 1, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].run_id, second.run_id, "newest first");
    let rest = store.runs(&spec.name, 10, page.next).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].run_id, first.run_id);
}

#[tokio::test]
async fn illegal_changes_are_refused_and_retries_are_no_ops() {
    let store = store().await;
    let spec = spec();
    let start = new_run(&spec);
    let run = store.begin_run(start.clone()).await.unwrap();
    let again = store
        .begin_run(start)
        .await
        .expect("a retried start with the same run id answers with the run");
    assert_eq!(again.run_id, run.run_id);
    assert_eq!(
        store.runs(&spec.name, 10, None).await.unwrap().items.len(),
        1
    );

    let deleting = store.delete_run(&spec.name, run.run_id).await.unwrap_err();
    assert_eq!(deleting.code(), ErrorCode::RunStillProcessing);

    store
        .finish_run(
            &spec.name,
            run.run_id,
            RunOutcome::succeeded(RunMetrics::default()),
        )
        .await
        .unwrap();
    store
        .finish_run(
            &spec.name,
            run.run_id,
            RunOutcome::succeeded(RunMetrics::default()),
        )
        .await
        .expect("finishing again with the same status is a no-op");
    let refused = store
        .finish_run(
            &spec.name,
            run.run_id,
            RunOutcome::failed(failure(), RunMetrics::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidTransition);
    assert!(
        refused.message().contains("SUCCEEDED"),
        "{}",
        refused.message()
    );
    let stored = store.run(&spec.name, run.run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Succeeded, "not overwritten");
    assert_eq!(stored.error, None);

    let late = store
        .update_metrics(&spec.name, run.run_id, &RunMetrics::default())
        .await
        .unwrap_err();
    assert_eq!(late.code(), ErrorCode::InvalidTransition);

    let unknown = store
        .finish_run(
            &spec.name,
            RunId::new(),
            RunOutcome::succeeded(RunMetrics::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::NotFound);

    store.delete_run(&spec.name, run.run_id).await.unwrap();
    assert!(store.run(&spec.name, run.run_id).await.unwrap().is_none());
    let gone = store.delete_run(&spec.name, run.run_id).await.unwrap_err();
    assert_eq!(gone.code(), ErrorCode::NotFound);

    let mut bad = new_run(&spec);
    bad.domain = Some("nope".to_string());
    let err = store.begin_run(bad).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.message().starts_with("domain:"));
}

#[tokio::test]
async fn of_concurrent_starts_exactly_one_wins() {
    let store = Arc::new(store().await);
    let spec = spec();
    let attempts = 8;
    let handles: Vec<_> = (0..attempts)
        .map(|_| {
            let store = Arc::clone(&store);
            let run = new_run(&spec);
            tokio::spawn(async move { store.begin_run(run).await })
        })
        .collect();
    let mut winners = Vec::new();
    for handle in handles {
        match handle.await.unwrap() {
            Ok(run) => winners.push(run.run_id),
            Err(err) => assert_eq!(err.code(), ErrorCode::MigrationAlreadyRunning, "{err}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one start wins");
    let state = store.migration(&spec.name).await.unwrap().unwrap();
    assert_eq!(state.current_run, Some(winners[0]));
    let runs = store.runs(&spec.name, 100, None).await.unwrap();
    assert_eq!(runs.items.len(), 1, "no record of a refused start");
    assert_eq!(store.active_runs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn clone_leases_outlive_all_but_the_last_release() {
    let store = Arc::new(store().await);
    let run = RunId::new();
    let lease = |domain: &str| CloneLease {
        cluster: "lips-aurora".to_string(),
        run_id: run,
        domain: domain.to_string(),
        acquired_at: chrono::Utc::now(),
    };
    for domain in ["rates", "availability"] {
        store.acquire_clone_lease(&lease(domain)).await.unwrap();
    }
    store
        .acquire_clone_lease(&lease("rates"))
        .await
        .expect("taking the same lease again is a no-op");
    assert_eq!(store.clone_leases("lips-aurora").await.unwrap().len(), 2);

    let remaining = store
        .release_clone_lease("lips-aurora", run, "rates")
        .await
        .unwrap();
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].domain, "availability");
    assert_eq!(remaining[0].run_id, run);

    // Two domains finishing at the same moment: at least one of them sees no lease left.
    store.acquire_clone_lease(&lease("rates")).await.unwrap();
    let (a, b) = tokio::join!(
        store.release_clone_lease("lips-aurora", run, "rates"),
        store.release_clone_lease("lips-aurora", run, "availability"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_empty() || b.is_empty(), "{a:?} / {b:?}");
    assert!(store.clone_leases("lips-aurora").await.unwrap().is_empty());
}
