# The HTTP API in front of the api function (modules/http-api).

locals {
  # One route per operation of docs/openapi.yaml (tests/integration/infra.rs compares the two).
  api_routes = [
    "POST /connections",
    "GET /connections",
    "DELETE /connections/{id}",
    "POST /connections/test",
    "POST /exports",
    "POST /imports",
    "GET /transfers",
    "DELETE /transfers/{id}",
    "POST /migrations",
    "GET /migrations/{name}",
    "POST /migrations/{name}/runs",
    "GET /migrations/{name}/runs",
    "GET /migrations/{name}/runs/{run_id}",
    "DELETE /migrations/{name}/runs/{run_id}",
    "POST /migrations/{name}/runs/{run_id}/cancel",
  ]
}

module "http_api" {
  source = "./modules/http-api"

  name                   = "${local.prefix}-api"
  function_name          = module.function["api"].name
  function_invoke_arn    = module.function["api"].invoke_arn
  routes                 = toset(local.api_routes)
  jwt_issuer             = var.api_jwt_issuer
  jwt_audience           = var.api_jwt_audience
  throttling_rate_limit  = var.api_throttling_rate_limit
  throttling_burst_limit = var.api_throttling_burst_limit
  log_retention_days     = var.log_retention_days
}
