use anyhow::Context;
use ferry_core::state::DynamoDbStateStore;

/// Creates the state table in whatever endpoint the AWS environment names (the emulator locally).
pub async fn init(state_table: &str) -> anyhow::Result<()> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = DynamoDbStateStore::new(aws_sdk_dynamodb::Client::new(&config), state_table);
    let created = store
        .create_table_if_missing()
        .await
        .map_err(|err| anyhow::anyhow!(err.detail()))
        .with_context(|| format!("cannot prepare the state table {state_table}"))?;
    let verb = if created { "created" } else { "already there" };
    println!("state table {state_table}: {verb}");
    Ok(())
}
