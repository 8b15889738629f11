//! The `api` Lambda: wiring only; the handler is `ferry_handlers::Function::Api`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_handlers::lambda::serve(ferry_handlers::Function::Api).await
}
