# The HTTP API (API Gateway v2) in front of the api function: every route requires a JWT from
# one issuer and audience, proxies to the function (payload format 2.0), and is throttled and
# access-logged by the $default stage.

variable "name" {
  description = "API name (also names its access log group)."
  type        = string
}

variable "function_name" {
  description = "Name of the api Lambda function."
  type        = string
}

variable "function_invoke_arn" {
  description = "Invoke ARN of the api Lambda function."
  type        = string
}

variable "routes" {
  description = "Route keys (\"METHOD /path\"), one per operation of docs/openapi.yaml."
  type        = set(string)

  validation {
    condition     = alltrue([for r in var.routes : can(regex("^(GET|POST|PUT|PATCH|DELETE) /[A-Za-z0-9_{}/-]*$", r))])
    error_message = "routes: each entry is \"METHOD /path\" (GET, POST, PUT, PATCH or DELETE)."
  }
}

variable "jwt_issuer" {
  description = "Issuer (iss) of the accepted tokens."
  type        = string
}

variable "jwt_audience" {
  description = "Accepted audiences (aud, or client_id for Cognito access tokens)."
  type        = list(string)
}

variable "throttling_rate_limit" {
  description = "Steady-state requests per second over all routes."
  type        = number
}

variable "throttling_burst_limit" {
  description = "Burst of requests over all routes."
  type        = number
}

variable "log_retention_days" {
  description = "Retention of the access log group, in days."
  type        = number
}

resource "aws_apigatewayv2_api" "http" {
  name          = var.name
  description   = "ferry control plane: migrations, runs, connections, transfers"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  api_id           = aws_apigatewayv2_api.http.id
  name             = "${var.name}-jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = var.jwt_audience
  }
}

resource "aws_apigatewayv2_integration" "api" {
  api_id                 = aws_apigatewayv2_api.http.id
  description            = "The api Lambda function"
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = var.function_invoke_arn
  payload_format_version = "2.0"
  # The most an HTTP API waits; the function's own timeout is the same.
  timeout_milliseconds = 30000
}

resource "aws_apigatewayv2_route" "route" {
  for_each = var.routes

  api_id             = aws_apigatewayv2_api.http.id
  route_key          = each.value
  target             = "integrations/${aws_apigatewayv2_integration.api.id}"
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.jwt.id
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_158:Access log lines hold request metadata and the caller's subject, never a token or a body; the default CloudWatch encryption is kept to avoid a KMS key per environment.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days); access logs of the control plane are not kept for a year by default.
  name              = "/aws/vendedlogs/apigateway/${var.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttling_rate_limit
    throttling_burst_limit = var.throttling_burst_limit
  }

  # One JSON object per request; the Authorization header is never logged.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      ip                 = "$context.identity.sourceIp"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      latencyMs          = "$context.responseLatency"
      subject            = "$context.authorizer.claims.sub"
      authorizerError    = "$context.authorizer.error"
      integrationError   = "$context.integrationErrorMessage"
      integrationLatency = "$context.integrationLatency"
    })
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowHttpApiInvoke"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  principal     = "apigateway.amazonaws.com"
  # Only this API's $default stage, any of its routes.
  source_arn = "${aws_apigatewayv2_stage.default.execution_arn}/*"
}

output "url" {
  description = "Base URL of the API."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "id" {
  description = "API id."
  value       = aws_apigatewayv2_api.http.id
}

output "route_keys" {
  description = "The routes, as \"METHOD /path\"."
  value       = sort([for r in aws_apigatewayv2_route.route : r.route_key])
}
