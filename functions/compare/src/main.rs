//! The `compare` Lambda: wiring only; the handler is `ferry_handlers::Function::Compare`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_handlers::lambda::serve(ferry_handlers::Function::Compare).await
}
