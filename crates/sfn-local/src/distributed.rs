//! The data side of a Distributed Map: items out of an S3 object or listing (ItemReader),
//! batches (ItemBatcher), and the files a ResultWriter leaves in S3. The engine does the
//! S3 calls through its dispatcher (`aws-sdk:s3:getObject` / `listObjectsV2` / `putObject`);
//! everything here is pure, so it is unit-tested without S3.

use crate::definition::ItemInput;
use serde_json::{json, Map, Value};

/// Items in an object's text, as `ReaderConfig.InputType` says.
pub fn parse_items(
    body: &str,
    input: ItemInput,
    csv_headers: Option<&[String]>,
) -> Result<Vec<Value>, String> {
    match input {
        ItemInput::Json => match serde_json::from_str::<Value>(body) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(_) => Err("the JSON object is not a JSON array".into()),
            Err(e) => Err(format!("the object is not valid JSON: {e}")),
        },
        ItemInput::Jsonl => body
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| format!("line {} is not valid JSON: {e}", i + 1))
            })
            .collect(),
        ItemInput::Csv => {
            let mut rows = parse_csv(body)?.into_iter();
            let headers: Vec<String> = match csv_headers {
                Some(h) => h.to_vec(),
                None => rows.next().ok_or("the CSV object has no header row")?,
            };
            rows.enumerate()
                .map(|(i, row)| {
                    if row.len() > headers.len() {
                        return Err(format!(
                            "CSV row {} has {} fields, more than the {} headers",
                            i + 1,
                            row.len(),
                            headers.len()
                        ));
                    }
                    // Every value is a string; missing trailing fields are empty.
                    let mut m = Map::new();
                    for (j, h) in headers.iter().enumerate() {
                        m.insert(
                            h.clone(),
                            Value::String(row.get(j).cloned().unwrap_or_default()),
                        );
                    }
                    Ok(Value::Object(m))
                })
                .collect()
        }
        ItemInput::Listing => Err("an S3 listing is not read from an object".into()),
    }
}

/// RFC 4180 rows: `,` separated, `"` quoted with `""` for a quote, CRLF or LF line ends;
/// empty lines are skipped.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut field_started = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !field_started => {
                quoted = true;
                field_started = true;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                field_started = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if !row.is_empty() || !field.is_empty() || field_started {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                field_started = false;
                line += 1;
            }
            _ => {
                field.push(c);
                field_started = true;
            }
        }
    }
    if quoted {
        return Err(format!("CSV: a quoted field is not closed (line {line})"));
    }
    if !row.is_empty() || !field.is_empty() || field_started {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// An item of an S3 listing, shaped as a Distributed Map hands it to an iteration.
pub fn listing_item(object: &Value) -> Value {
    let last_modified = object
        .get("LastModified")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| json!(d.timestamp()))
        .unwrap_or(Value::Null);
    json!({
        "Etag": object.get("ETag").cloned().unwrap_or(Value::Null),
        "Key": object.get("Key").cloned().unwrap_or(Value::Null),
        "LastModified": last_modified,
        "Size": object.get("Size").cloned().unwrap_or(Value::Null),
        "StorageClass": object.get("StorageClass").cloned().unwrap_or(json!("STANDARD")),
    })
}

/// Groups items into batch inputs `{"BatchInput"?: ..., "Items": [...]}`: a batch closes
/// when it holds `max_items`, or when one more item would take its JSON past `max_bytes`
/// (an item too big on its own still gets a batch of its own).
pub fn batches(
    items: Vec<Value>,
    max_items: Option<usize>,
    max_bytes: Option<usize>,
    batch_input: Option<&Value>,
) -> Vec<Value> {
    let wrap = |items: Vec<Value>| {
        let mut m = Map::new();
        if let Some(b) = batch_input {
            m.insert("BatchInput".into(), b.clone());
        }
        m.insert("Items".into(), Value::Array(items));
        Value::Object(m)
    };
    // Bytes of the batch without items: `{"BatchInput":...,"Items":[]}`.
    let overhead = wrap(Vec::new()).to_string().len();
    let mut out = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut bytes = overhead;
    for item in items {
        let size = item.to_string().len() + usize::from(!current.is_empty());
        let full_count = max_items.is_some_and(|m| current.len() >= m);
        let full_bytes = max_bytes.is_some_and(|m| bytes + size > m);
        if !current.is_empty() && (full_count || full_bytes) {
            out.push(wrap(std::mem::take(&mut current)));
            bytes = overhead;
        }
        bytes += item.to_string().len() + usize::from(!current.is_empty());
        current.push(item);
    }
    if !current.is_empty() {
        out.push(wrap(current));
    }
    out
}

/// One child execution of a Map Run, as a ResultWriter records it.
#[derive(Debug, Clone)]
pub struct ChildRecord {
    pub execution_arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub input: Value,
    pub outcome: Result<Value, crate::error::Failure>,
    pub start: String,
    pub stop: String,
}

impl ChildRecord {
    /// The entry in `SUCCEEDED_n.json` / `FAILED_n.json`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ExecutionArn".into(), json!(self.execution_arn));
        m.insert("Input".into(), json!(self.input.to_string()));
        m.insert("InputDetails".into(), json!({"Included": true}));
        m.insert("Name".into(), json!(self.name));
        match &self.outcome {
            Ok(out) => {
                m.insert("Output".into(), json!(out.to_string()));
                m.insert("OutputDetails".into(), json!({"Included": true}));
                m.insert("RedriveCount".into(), json!(0));
                m.insert("RedriveStatus".into(), json!("NOT_REDRIVABLE"));
                m.insert(
                    "RedriveStatusReason".into(),
                    json!("Execution is SUCCEEDED and cannot be redriven"),
                );
            }
            Err(f) => {
                m.insert("Error".into(), json!(f.error));
                m.insert("Cause".into(), json!(f.cause));
                m.insert("RedriveCount".into(), json!(0));
                m.insert("RedriveStatus".into(), json!("REDRIVABLE_BY_MAP_RUN"));
            }
        }
        m.insert("StartDate".into(), json!(self.start));
        m.insert("StateMachineArn".into(), json!(self.state_machine_arn));
        m.insert(
            "Status".into(),
            json!(if self.outcome.is_ok() {
                "SUCCEEDED"
            } else {
                "FAILED"
            }),
        );
        m.insert("StopDate".into(), json!(self.stop));
        Value::Object(m)
    }
}

/// The objects a ResultWriter writes under `<Prefix>/<map run id>/`: `(key, body)` pairs,
/// result files first, `manifest.json` last, and the state's output
/// (`{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}`).
pub fn result_files(
    bucket: &str,
    prefix: &str,
    map_run_arn: &str,
    map_run_id: &str,
    records: &[ChildRecord],
) -> (Vec<(String, String)>, Value) {
    let dir = match prefix.trim_end_matches('/') {
        "" => map_run_id.to_string(),
        p => format!("{p}/{map_run_id}"),
    };
    let mut files = Vec::new();
    let mut listed = Map::new();
    for (status, ok) in [("FAILED", false), ("PENDING", false), ("SUCCEEDED", true)] {
        let entries: Vec<Value> = if status == "PENDING" {
            Vec::new()
        } else {
            records
                .iter()
                .filter(|r| r.outcome.is_ok() == ok)
                .map(ChildRecord::to_json)
                .collect()
        };
        let mut refs = Vec::new();
        if !entries.is_empty() {
            let key = format!("{dir}/{status}_0.json");
            let body = Value::Array(entries).to_string();
            refs.push(json!({"Key": key, "Size": body.len()}));
            files.push((key, body));
        }
        listed.insert(status.to_string(), Value::Array(refs));
    }
    let manifest_key = format!("{dir}/manifest.json");
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": map_run_arn,
        "ResultFiles": listed,
    });
    files.push((manifest_key.clone(), manifest.to_string()));
    let output = json!({
        "MapRunArn": map_run_arn,
        "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key},
    });
    (files, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv() {
        let rows = parse_csv("a,b,c\r\n1,\"x, \"\"y\"\"\",\n\n2,\"multi\nline\",z").expect("csv");
        assert_eq!(
            rows,
            vec![
                vec!["a", "b", "c"],
                vec!["1", "x, \"y\"", ""],
                vec!["2", "multi\nline", "z"]
            ]
        );
        assert!(parse_csv("a,\"open").is_err());
        let items = parse_items("id,name\n1,Ann\n2\n", ItemInput::Csv, None).expect("items");
        assert_eq!(
            items,
            vec![
                json!({"id": "1", "name": "Ann"}),
                json!({"id": "2", "name": ""})
            ]
        );
        let given = ["x".to_string(), "y".to_string()];
        let items = parse_items("1,2\n", ItemInput::Csv, Some(&given)).expect("items");
        assert_eq!(items, vec![json!({"x": "1", "y": "2"})]);
        assert!(parse_items("a\n1,2\n", ItemInput::Csv, None).is_err());
    }

    #[test]
    fn json_and_jsonl() {
        assert_eq!(
            parse_items("[1,{\"a\":2}]", ItemInput::Json, None),
            Ok(vec![json!(1), json!({"a": 2})])
        );
        assert!(parse_items("{}", ItemInput::Json, None).is_err());
        assert_eq!(
            parse_items("{\"a\":1}\n\n[2]\n", ItemInput::Jsonl, None),
            Ok(vec![json!({"a": 1}), json!([2])])
        );
        assert!(parse_items("{\"a\":1}\nnope", ItemInput::Jsonl, None)
            .unwrap_err()
            .contains("line 2"));
    }

    #[test]
    fn batching() {
        let items: Vec<Value> = (1..=5).map(Value::from).collect();
        let b = batches(items.clone(), Some(2), None, Some(&json!({"k": 1})));
        assert_eq!(
            b,
            vec![
                json!({"BatchInput": {"k": 1}, "Items": [1, 2]}),
                json!({"BatchInput": {"k": 1}, "Items": [3, 4]}),
                json!({"BatchInput": {"k": 1}, "Items": [5]}),
            ]
        );
        // {"Items":[]} is 12 bytes; "1" adds 1, each further item 2 (comma): 12+1+2 = 15.
        let b = batches(items, None, Some(15), None);
        assert_eq!(
            b,
            vec![
                json!({"Items": [1, 2]}),
                json!({"Items": [3, 4]}),
                json!({"Items": [5]})
            ]
        );
        for batch in &b {
            assert!(batch.to_string().len() <= 15);
        }
        let big = batches(vec![json!("a long string")], None, Some(5), None);
        assert_eq!(big.len(), 1);
    }

    #[test]
    fn result_writer_layout() {
        let rec = |ok: bool| ChildRecord {
            execution_arn: "arn:e".into(),
            name: "n".into(),
            state_machine_arn: "arn:sm".into(),
            input: json!({"i": 1}),
            outcome: if ok {
                Ok(json!({"o": 1}))
            } else {
                Err(crate::error::Failure::new("E", "C"))
            },
            start: "t0".into(),
            stop: "t1".into(),
        };
        let (files, out) = result_files("b", "out/", "arn:run", "id", &[rec(true), rec(false)]);
        let keys: Vec<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "out/id/FAILED_0.json",
                "out/id/SUCCEEDED_0.json",
                "out/id/manifest.json"
            ]
        );
        assert_eq!(
            out,
            json!({"MapRunArn": "arn:run", "ResultWriterDetails": {"Bucket": "b", "Key": "out/id/manifest.json"}})
        );
        let manifest: Value = serde_json::from_str(&files[2].1).expect("json");
        assert_eq!(manifest["ResultFiles"]["PENDING"], json!([]));
        assert_eq!(
            manifest["ResultFiles"]["SUCCEEDED"][0]["Size"],
            json!(files[1].1.len())
        );
        let succeeded: Value = serde_json::from_str(&files[1].1).expect("json");
        assert_eq!(succeeded[0]["Output"], json!("{\"o\":1}"));
        assert_eq!(succeeded[0]["Status"], json!("SUCCEEDED"));
        let failed: Value = serde_json::from_str(&files[0].1).expect("json");
        assert_eq!(failed[0]["Error"], json!("E"));
        assert!(failed[0].get("Output").is_none());
    }
}
