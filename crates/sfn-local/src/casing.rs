//! Member-name casing. Step Functions' AWS SDK integrations take and give member names in
//! PascalCase ("Parameters in Step Functions are expressed in PascalCase, even if the native
//! service API is in camelCase", developer guide, AWS SDK service integrations). Services whose
//! wire protocol uses camelCase members (Step Functions' own API, EMR Serverless) need the names
//! converted both ways; user data (map-typed members such as tags, string payloads) is not
//! touched.

use serde_json::Value;

/// `putItem` → `PutItem`.
pub fn pascal_case(s: &str) -> String {
    with_first(s, |c| c.to_ascii_uppercase())
}

/// `PutItem` → `putItem`.
pub fn camel_case(s: &str) -> String {
    with_first(s, |c| c.to_ascii_lowercase())
}

fn with_first(s: &str, f: impl Fn(char) -> char) -> String {
    let mut c = s.chars();
    c.next()
        .map(|first| f(first).to_string() + c.as_str())
        .unwrap_or_default()
}

/// Renames every member key with `rename`, recursively. The values of the members named in
/// `map_members` (their wire names, which `wire` gives for a key) are maps: their keys are
/// user data and stay as written, their values are renamed.
fn rename_keys(
    v: &Value,
    map_members: &[&str],
    rename: &dyn Fn(&str) -> String,
    wire: &dyn Fn(&str) -> String,
) -> Value {
    let again = |v: &Value| rename_keys(v, map_members, rename, wire);
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::Object(entries) if map_members.contains(&wire(k).as_str()) => {
                            Value::Object(
                                entries
                                    .iter()
                                    .map(|(ek, ev)| (ek.clone(), again(ev)))
                                    .collect(),
                            )
                        }
                        _ if map_members.contains(&wire(k).as_str()) => v.clone(),
                        _ => again(v),
                    };
                    (rename(k), value)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(again).collect()),
        other => other.clone(),
    }
}

/// Step Functions' PascalCase parameters as a camelCase service's members.
pub fn to_camel_wire(v: &Value, map_members: &[&str]) -> Value {
    rename_keys(v, map_members, &camel_case, &camel_case)
}

/// A camelCase service's answer as Step Functions shows it (PascalCase).
pub fn from_camel_wire(v: &Value, map_members: &[&str]) -> Value {
    rename_keys(v, map_members, &pascal_case, &|k: &str| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_change_case_but_map_keys_and_values_do_not() {
        let maps = ["tags", "variableReferences"];
        let params = json!({
            "StateMachineArn": "arn:x",
            "Input": "{\"Keep\":\"as is\"}",
            "Tags": {"Team": "data"},
            "Items": [{"Key": "K", "Value": "V"}],
            "Empty": ""
        });
        let wire = to_camel_wire(&params, &maps);
        assert_eq!(
            wire,
            json!({
                "stateMachineArn": "arn:x",
                "input": "{\"Keep\":\"as is\"}",
                "tags": {"Team": "data"},
                "items": [{"key": "K", "value": "V"}],
                "empty": ""
            })
        );
        let answer =
            json!({"variableReferences": {"stateA": ["x"]}, "executions": [{"name": "n"}]});
        assert_eq!(
            from_camel_wire(&answer, &maps),
            json!({"VariableReferences": {"stateA": ["x"]}, "Executions": [{"Name": "n"}]})
        );
        assert_eq!(pascal_case("putItem"), "PutItem");
        assert_eq!(camel_case("PutItem"), "putItem");
        assert_eq!(camel_case(""), "");
    }
}
