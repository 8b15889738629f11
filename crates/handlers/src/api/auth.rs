//! Who is calling: the groups in the JWT authorizer's claims. A caller sees and changes only
//! its groups' objects; the admin group sees all. No claims at all is 401.

use std::collections::HashMap;

use ferry_core::{Error, ErrorCode, Result};
use serde_json::Value;

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
        let claims = claims.filter(|c| !c.is_empty()).ok_or_else(|| {
            Error::new(ErrorCode::Unauthorized, "a valid bearer token is required")
        })?;
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
}
