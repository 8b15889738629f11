//! `${Name}` placeholders in definition files, the way Terraform's `templatefile`
//! fills them (`$${` stays a literal `${`). A local run fills the same names.

use crate::error::Error;
use std::collections::{BTreeSet, HashMap};

/// Every placeholder name used in `text`, sorted.
pub fn placeholders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    scan(text, &mut |name| {
        out.insert(name.to_string());
        None
    });
    out
}

/// Replaces every `${Name}` with `values[Name]`; fails listing every missing name.
pub fn substitute(text: &str, values: &HashMap<String, String>) -> Result<String, Error> {
    let mut missing = BTreeSet::new();
    let out = scan(text, &mut |name| match values.get(name) {
        Some(v) => Some(v.clone()),
        None => {
            missing.insert(name.to_string());
            None
        }
    });
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(Error::MissingPlaceholders(missing.into_iter().collect()))
    }
}

/// Walks `text`, calling `f` for each placeholder; its answer replaces the placeholder
/// (`None` keeps it as written).
fn scan(text: &str, f: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            match after.find('}') {
                Some(end) => {
                    let name = after[..end].trim();
                    match f(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&tail[..end + 3]),
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(tail);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_fills_placeholders() {
        let text = r#"{"Resource": "${CheckArn}", "P.$": "$.x", "Lit": "$${NotMe}", "Again": "${ CheckArn }"}"#;
        assert_eq!(
            placeholders(text).into_iter().collect::<Vec<_>>(),
            vec!["CheckArn".to_string()]
        );
        let values = HashMap::from([("CheckArn".to_string(), "arn:x".to_string())]);
        assert_eq!(
            substitute(text, &values).unwrap(),
            r#"{"Resource": "arn:x", "P.$": "$.x", "Lit": "${NotMe}", "Again": "arn:x"}"#
        );
        let err = substitute("${A} ${B} ${A}", &HashMap::new()).unwrap_err();
        assert!(
            matches!(&err, Error::MissingPlaceholders(m) if m == &["A", "B"]),
            "{err}"
        );
    }
}
