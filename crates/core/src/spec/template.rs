//! Key templates: how a DynamoDB key attribute is built from a row, e.g.
//! `RATE#{rate_plan_id}#DATE#{stay_date}`. `{column}` is replaced by the column's value;
//! `{{` and `}}` stand for literal braces, as in Rust's `format!`.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Stored as the template text, so a spec snapshot reads like the spec file.
#[serde(try_from = "String", into = "String")]
pub struct KeyTemplate {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Column(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is empty")]
    Empty,
    #[error("unclosed \"{{\" at character {at}; write \"{{{{\" for a literal brace")]
    Unclosed { at: usize },
    #[error("unmatched \"}}\" at character {at}; write \"}}}}\" for a literal brace")]
    Unmatched { at: usize },
    #[error("empty placeholder \"{{}}\" at character {at}")]
    EmptyPlaceholder { at: usize },
    #[error("template has no \"{{column}}\" placeholder")]
    NoPlaceholder,
}

/// A row had no value (NULL) for a column that a key is built from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column \"{column}\" has no value, but a key template needs it")]
pub struct MissingValue {
    pub column: String,
}

impl KeyTemplate {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        // Positions are 1-based characters, as an editor shows them.
        let mut chars = text.chars().zip(1..).peekable();
        while let Some((c, at)) = chars.next() {
            match c {
                '{' if chars.next_if(|&(next, _)| next == '{').is_some() => literal.push('{'),
                '}' if chars.next_if(|&(next, _)| next == '}').is_some() => literal.push('}'),
                '}' => return Err(TemplateError::Unmatched { at }),
                '{' => {
                    let mut column = String::new();
                    loop {
                        match chars.next() {
                            Some(('}', _)) => break,
                            Some(('{', _)) | None => return Err(TemplateError::Unclosed { at }),
                            Some((c, _)) => column.push(c),
                        }
                    }
                    if column.is_empty() {
                        return Err(TemplateError::EmptyPlaceholder { at });
                    }
                    if !literal.is_empty() {
                        parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(TemplatePart::Column(column));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        let template = KeyTemplate { parts };
        if template.columns().next().is_none() {
            return Err(TemplateError::NoPlaceholder);
        }
        Ok(template)
    }

    /// The columns the template reads, in order (a column used twice appears twice).
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            TemplatePart::Column(column) => Some(column.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// The column when the template is exactly one placeholder, e.g. `{hotel_id}`: only such a
    /// template can produce a number key.
    pub fn single_column(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [TemplatePart::Column(column)] => Some(column),
            _ => None,
        }
    }

    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, MissingValue> {
        let mut key = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => key.push_str(text),
                TemplatePart::Column(column) => {
                    let value = lookup(column).ok_or_else(|| MissingValue {
                        column: column.clone(),
                    })?;
                    key.push_str(&value);
                }
            }
        }
        Ok(key)
    }
}

/// The template text: parsing it gives the same template back.
impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => {
                    f.write_str(&text.replace('{', "{{").replace('}', "}}"))?
                }
                TemplatePart::Column(column) => write!(f, "{{{column}}}")?,
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for KeyTemplate {
    type Error = TemplateError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        KeyTemplate::parse(&text)
    }
}

impl From<KeyTemplate> for String {
    fn from(template: KeyTemplate) -> String {
        template.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str) -> TemplatePart {
        TemplatePart::Column(name.to_owned())
    }

    fn literal(text: &str) -> TemplatePart {
        TemplatePart::Literal(text.to_owned())
    }

    #[test]
    fn parses_literals_and_placeholders() {
        let template = KeyTemplate::parse("RATE#{rate_plan_id}#DATE#{stay_date}").unwrap();
        assert_eq!(
            template.parts,
            [
                literal("RATE#"),
                column("rate_plan_id"),
                literal("#DATE#"),
                column("stay_date")
            ]
        );
        assert_eq!(
            template.columns().collect::<Vec<_>>(),
            ["rate_plan_id", "stay_date"]
        );
        assert_eq!(template.single_column(), None);
        assert_eq!(
            KeyTemplate::parse("{hotel_id}").unwrap().single_column(),
            Some("hotel_id")
        );
    }

    #[test]
    fn doubled_braces_are_literal_braces() {
        let template = KeyTemplate::parse("{{{id}}}-{{x}}").unwrap();
        assert_eq!(
            template.parts,
            [literal("{"), column("id"), literal("}-{x}")]
        );
        assert_eq!(template.to_string(), "{{{id}}}-{{x}}");
    }

    #[test]
    fn rejects_malformed_templates() {
        let cases = [
            ("", TemplateError::Empty),
            ("A#{id", TemplateError::Unclosed { at: 3 }),
            ("A#{id{x}}", TemplateError::Unclosed { at: 3 }),
            ("A#id}", TemplateError::Unmatched { at: 5 }),
            ("A#{}", TemplateError::EmptyPlaceholder { at: 3 }),
            ("HOTEL", TemplateError::NoPlaceholder),
            ("{{id}}", TemplateError::NoPlaceholder),
        ];
        for (text, expected) in cases {
            assert_eq!(KeyTemplate::parse(text), Err(expected), "template {text:?}");
        }
        assert_eq!(
            TemplateError::Unclosed { at: 3 }.to_string(),
            "unclosed \"{\" at character 3; write \"{{\" for a literal brace"
        );
    }

    #[test]
    fn renders_values_and_reports_missing_ones() {
        let template = KeyTemplate::parse("HOTEL#{hotel_id}#{{{day}}}").unwrap();
        let lookup = |column: &str| (column == "hotel_id").then(|| "42".to_owned());
        assert_eq!(
            template.render(|c| lookup(c).or_else(|| Some("mon".to_owned()))),
            Ok("HOTEL#42#{mon}".to_owned())
        );
        assert_eq!(
            template.render(lookup),
            Err(MissingValue {
                column: "day".to_owned()
            })
        );
    }

    #[test]
    fn serializes_as_its_text() {
        let template = KeyTemplate::parse("A{{#{id}").unwrap();
        let json = serde_json::to_string(&template).unwrap();
        assert_eq!(json, r#""A{{#{id}""#);
        assert_eq!(
            serde_json::from_str::<KeyTemplate>(&json).unwrap(),
            template
        );
        assert!(serde_json::from_str::<KeyTemplate>(r#""A#{""#).is_err());
    }
}
