//! Who is calling: the groups in the JWT authorizer's claims. A caller sees and changes only
//! its groups' objects; the admin group sees all. No claims at all is 401.
//!
//! Served locally (`cargo lambda watch`) there is no authorizer. Only when
//! `FERRY_API_LOCAL_JWT_SECRET` is set does the function verify an HS256 bearer token itself
//! ([`LocalTokens`]) and take its claims; the authorizer's claims always come first.

use std::collections::HashMap;

use ferry_core::{Error, ErrorCode, Result};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

fn unauthorized() -> Error {
    Error::new(ErrorCode::Unauthorized, "a valid bearer token is required")
}

/// Verifies the HS256 tokens of local serving: signature, `exp` (required) and `nbf`.
#[derive(Clone)]
pub struct LocalTokens {
    key: DecodingKey,
    validation: Validation,
}

impl LocalTokens {
    pub fn new(secret: &str) -> LocalTokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        LocalTokens {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The claims of `authorization` (`Bearer <jwt>`); a missing, malformed, forged or
    /// expired token is 401 (the reason goes to the log, not to the caller).
    pub fn claims(&self, authorization: Option<&str>) -> Result<HashMap<String, Value>> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(unauthorized)?;
        jsonwebtoken::decode::<HashMap<String, Value>>(token.trim(), &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| {
                tracing::info!(reason = %err, "local bearer token refused");
                unauthorized()
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The claim holding the caller's groups (`cognito:groups` with Cognito).
    pub groups_claim: String,
    /// Members of this group see every migration.
    pub admin_group: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: Option<String>,
    pub groups: Vec<String>,
    pub admin: bool,
}

impl Caller {
    pub fn may_see(&self, group: &str) -> bool {
        self.admin || self.groups.iter().any(|g| g == group)
    }
}

impl AuthSettings {
    pub fn caller(&self, claims: Option<&HashMap<String, Value>>) -> Result<Caller> {
        let claims = claims.filter(|c| !c.is_empty()).ok_or_else(unauthorized)?;
        let groups = match claims.get(&self.groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            // API Gateway flattens a list claim to text: "[a b c]".
            Some(Value::String(text)) => text
                .trim_matches(|c| c == '[' || c == ']')
                .split([' ', ','])
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let admin = groups.contains(&self.admin_group);
        Ok(Caller {
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            groups,
            admin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> AuthSettings {
        AuthSettings {
            groups_claim: "cognito:groups".into(),
            admin_group: "admins".into(),
        }
    }

    #[test]
    fn groups_come_from_a_list_or_from_api_gateways_flattened_text() {
        let claims: HashMap<String, Value> =
            [("cognito:groups".to_string(), json!("[hotels admins]"))].into();
        let caller = settings().caller(Some(&claims)).unwrap();
        assert_eq!(caller.groups, ["hotels", "admins"]);
        assert!(caller.admin && caller.may_see("anything"));
        let claims: HashMap<String, Value> =
            [("cognito:groups".to_string(), json!(["hotels"]))].into();
        let caller = settings().caller(Some(&claims)).unwrap();
        assert!(caller.may_see("hotels") && !caller.may_see("flights"));
        let err = settings().caller(None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthorized);
    }

    #[test]
    fn local_tokens_must_be_signed_with_the_secret_and_unexpired() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let secret = "a-local-secret-of-at-least-32-chars!";
        let exp = chrono::Utc::now().timestamp() + 600;
        let sign = |secret: &str, exp: i64| {
            let token = encode(
                &Header::new(Algorithm::HS256),
                &json!({"sub": "dev", "cognito:groups": ["hotels"], "exp": exp}),
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            format!("Bearer {token}")
        };
        let tokens = LocalTokens::new(secret);
        let claims = tokens.claims(Some(&sign(secret, exp))).unwrap();
        assert!(settings().caller(Some(&claims)).unwrap().may_see("hotels"));
        for refused in [
            Some(sign("another-secret-of-at-least-32-chars!!", exp)),
            Some(sign(secret, exp - 3600)),
            Some("Bearer not.a.token".to_string()),
            Some("Basic abc".to_string()),
            None,
        ] {
            let err = tokens.claims(refused.as_deref()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Unauthorized, "{refused:?}");
        }
    }
}
