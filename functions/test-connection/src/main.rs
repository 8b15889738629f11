//! The `test-connection` Lambda: wiring only; the handler is `ferry_handlers::Function::TestConnection`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_handlers::lambda::serve(ferry_handlers::Function::TestConnection).await
}
