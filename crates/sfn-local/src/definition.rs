//! The state machine model, parsed from Amazon States Language JSON and
//! validated the way Step Functions does at create time.

use crate::choice::ChoiceBranch;
use crate::error::{names, Error, ValidationIssue};
use crate::intrinsics::{looks_like_call, Call};
use crate::path::Path;
use crate::template::Template;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// A state list with its start: the whole machine, a Parallel branch or a Map processor.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub start_at: String,
    pub states: HashMap<String, State>,
    /// State names in definition order.
    pub order: Vec<String>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone)]
pub enum Transition {
    Next(String),
    End,
    /// Choice, Succeed and Fail decide themselves.
    Own,
}

/// InputPath / OutputPath: a path, or `null` (an empty object).
#[derive(Debug, Clone)]
pub enum DataPath {
    Path(Path),
    Null,
}

/// ResultPath: where the result goes in the state input, or `null` (discard it).
#[derive(Debug, Clone)]
pub enum ResultPath {
    Path(Path),
    Discard,
}

/// A string taken literally, from a path, or from an intrinsic call (Fail's ErrorPath, CausePath).
#[derive(Debug, Clone)]
pub enum Dynamic {
    Path(Path),
    Call(Call),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    None,
    Full,
}

#[derive(Debug, Clone)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter: Jitter,
}

#[derive(Debug, Clone)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: ResultPath,
    pub assign: Option<Template>,
}

#[derive(Debug, Clone)]
pub enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(String),
    TimestampPath(Path),
}

#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub resource: String,
    pub timeout_seconds: Option<u64>,
    pub timeout_seconds_path: Option<Path>,
    pub heartbeat_seconds: Option<u64>,
    pub heartbeat_seconds_path: Option<Path>,
}

#[derive(Debug, Clone)]
pub struct MapSpec {
    pub items_path: Path,
    pub processor: Box<StateMachine>,
    pub item_selector: Option<Template>,
    pub max_concurrency: u64,
    pub max_concurrency_path: Option<Path>,
    pub tolerated_failure_percentage: Option<f64>,
    pub tolerated_failure_percentage_path: Option<Path>,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_count_path: Option<Path>,
    /// `Some` for `ProcessorConfig.Mode = DISTRIBUTED`.
    pub distributed: Option<DistributedSpec>,
}

/// What only a Distributed Map has.
#[derive(Debug, Clone, Default)]
pub struct DistributedSpec {
    pub item_reader: Option<ItemReaderSpec>,
    pub item_batcher: Option<ItemBatcherSpec>,
    pub result_writer: Option<ResultWriterSpec>,
}

/// `ItemReader.ReaderConfig.InputType` (and an S3 listing, which has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemInput {
    Json,
    Jsonl,
    Csv,
    /// `s3:listObjectsV2`: one item per object.
    Listing,
}

#[derive(Debug, Clone)]
pub struct ItemReaderSpec {
    /// `arn:aws:states:::s3:getObject` or `arn:aws:states:::s3:listObjectsV2`.
    pub resource: String,
    pub parameters: Option<Template>,
    pub input: ItemInput,
    /// `CSVHeaders` when `CSVHeaderLocation` is `GIVEN`; `None` = the first row.
    pub csv_headers: Option<Vec<String>>,
    pub max_items: Option<u64>,
    pub max_items_path: Option<Path>,
}

#[derive(Debug, Clone)]
pub struct ItemBatcherSpec {
    pub max_items_per_batch: Option<u64>,
    pub max_items_per_batch_path: Option<Path>,
    pub max_input_bytes_per_batch: Option<u64>,
    pub max_input_bytes_per_batch_path: Option<Path>,
    pub batch_input: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct ResultWriterSpec {
    /// `arn:aws:states:::s3:putObject`.
    pub resource: String,
    pub parameters: Option<Template>,
}

/// The AWS SDK action that serves an ItemReader / ResultWriter resource
/// (`arn:aws:states:::s3:getObject` -> `arn:aws:states:::aws-sdk:s3:getObject`), so the
/// dispatcher that runs `aws-sdk:s3:*` tasks also reads and writes for Distributed Maps.
pub fn s3_sdk_resource(resource: &str) -> String {
    match resource.strip_prefix("arn:aws:states:::s3:") {
        Some(action) => format!("arn:aws:states:::aws-sdk:s3:{action}"),
        None => resource.to_string(),
    }
}

#[derive(Debug, Clone)]
pub enum StateKind {
    Pass {
        result: Option<Value>,
    },
    Task(TaskSpec),
    Choice {
        choices: Vec<ChoiceBranch>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<String>,
        error_path: Option<Dynamic>,
        cause: Option<String>,
        cause_path: Option<Dynamic>,
    },
    Parallel {
        branches: Vec<StateMachine>,
    },
    Map(Box<MapSpec>),
}

#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub kind: StateKind,
    pub transition: Transition,
    pub input_path: DataPath,
    pub output_path: DataPath,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub assign: Option<Template>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl State {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            StateKind::Pass { .. } => "Pass",
            StateKind::Task(_) => "Task",
            StateKind::Choice { .. } => "Choice",
            StateKind::Wait(_) => "Wait",
            StateKind::Succeed => "Succeed",
            StateKind::Fail { .. } => "Fail",
            StateKind::Parallel { .. } => "Parallel",
            StateKind::Map(_) => "Map",
        }
    }
}

impl StateMachine {
    /// Parses and validates a definition given as JSON text.
    pub fn from_json_str(text: &str) -> Result<StateMachine, Error> {
        let v: Value = serde_json::from_str(text)?;
        StateMachine::from_json(&v)
    }

    /// Parses and validates a definition. Resource support is checked separately
    /// (see [`StateMachine::check_resources`]) because the task dispatcher decides it.
    pub fn from_json(v: &Value) -> Result<StateMachine, Error> {
        let mut cx = Cx::default();
        let sm = cx.machine(v, "", true);
        if cx.issues.is_empty() {
            if let Some(sm) = sm {
                return Ok(sm);
            }
        }
        if cx.issues.is_empty() {
            cx.issue("", "the definition could not be read");
        }
        Err(Error::Invalid(cx.issues))
    }

    /// Asks `supports` about every Task resource; collects every refusal.
    pub fn check_resources(
        &self,
        supports: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<(), Error> {
        let mut issues = Vec::new();
        self.walk_resources("", supports, &mut issues);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(issues))
        }
    }

    fn walk_resources(
        &self,
        prefix: &str,
        supports: &dyn Fn(&str) -> Result<(), String>,
        issues: &mut Vec<ValidationIssue>,
    ) {
        for name in &self.order {
            let state = &self.states[name];
            let loc = format!("{prefix}States.{name}");
            match &state.kind {
                StateKind::Task(t) => {
                    if let Err(e) = supports(&t.resource) {
                        issues.push(ValidationIssue {
                            location: format!("{loc}.Resource"),
                            message: e,
                        });
                    }
                }
                StateKind::Parallel { branches } => {
                    for (i, b) in branches.iter().enumerate() {
                        b.walk_resources(&format!("{loc}.Branches[{i}]."), supports, issues);
                    }
                }
                StateKind::Map(m) => {
                    m.processor
                        .walk_resources(&format!("{loc}.ItemProcessor."), supports, issues);
                    let d = m.distributed.as_ref();
                    let io = [
                        (
                            "ItemReader",
                            d.and_then(|d| d.item_reader.as_ref()).map(|r| &r.resource),
                        ),
                        (
                            "ResultWriter",
                            d.and_then(|d| d.result_writer.as_ref())
                                .map(|w| &w.resource),
                        ),
                    ];
                    for (field, resource) in io {
                        if let Some(Err(e)) = resource.map(|r| supports(&s3_sdk_resource(r))) {
                            issues.push(ValidationIssue {
                                location: format!("{loc}.{field}.Resource"),
                                message: e,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed_fields(ty: &str) -> &'static [&'static str] {
    match ty {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "Result",
            "ResultPath",
            "Assign",
        ],
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Assign",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        ],
        "Choice" => &["InputPath", "OutputPath", "Choices", "Default", "Assign"],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
            "Assign",
        ],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "ErrorPath", "Cause", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Assign",
            "Retry",
            "Catch",
            "Branches",
        ],
        "Map" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ItemSelector",
            "ResultSelector",
            "ResultPath",
            "Assign",
            "Retry",
            "Catch",
            "ItemsPath",
            "ItemProcessor",
            "Iterator",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
        ],
        _ => &[],
    }
}

#[derive(Default)]
struct Cx {
    issues: Vec<ValidationIssue>,
    /// Every state name in the definition, nested scopes included: names must be unique.
    all_names: HashSet<String>,
}

impl Cx {
    fn issue(&mut self, location: &str, message: impl Into<String>) {
        self.issues.push(ValidationIssue {
            location: if location.is_empty() {
                "(root)".into()
            } else {
                location.to_string()
            },
            message: message.into(),
        });
    }

    fn machine(&mut self, v: &Value, prefix: &str, top: bool) -> Option<StateMachine> {
        let here = prefix.trim_end_matches('.');
        let Value::Object(obj) = v else {
            self.issue(here, "must be a JSON object");
            return None;
        };
        let mut allowed = vec!["StartAt", "States", "Comment"];
        if top {
            allowed.extend(["Version", "TimeoutSeconds", "QueryLanguage"]);
        } else if prefix.ends_with(".ItemProcessor.") || prefix.ends_with(".Iterator.") {
            allowed.push("ProcessorConfig");
        }
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                self.issue(&format!("{prefix}{k}"), "field is not supported here");
            }
        }
        self.query_language(obj, &format!("{prefix}QueryLanguage"));
        let timeout_seconds = if top {
            self.opt_uint(obj, "TimeoutSeconds", prefix)
        } else {
            None
        };
        let start_at = match obj.get("StartAt") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.issue(&format!("{prefix}StartAt"), "must be a string");
                None
            }
            None => {
                self.issue(&format!("{prefix}StartAt"), "is required");
                None
            }
        };
        let Some(Value::Object(states_obj)) = obj.get("States") else {
            self.issue(
                &format!("{prefix}States"),
                "is required and must be an object",
            );
            return None;
        };
        if states_obj.is_empty() {
            self.issue(
                &format!("{prefix}States"),
                "must contain at least one state",
            );
        }
        let mut states = HashMap::new();
        let mut order = Vec::new();
        for (name, sv) in states_obj {
            let loc = format!("{prefix}States.{name}");
            if name.is_empty() || name.chars().count() > 80 {
                self.issue(&loc, "a state name must be 1 to 80 characters long");
            }
            if !self.all_names.insert(name.clone()) {
                self.issue(
                    &loc,
                    "duplicate state name: names must be unique in the whole state machine, nested branches included",
                );
            }
            if let Some(s) = self.state(name, sv, &loc) {
                states.insert(name.clone(), s);
                order.push(name.clone());
            }
        }
        let start_at = start_at?;
        if !states_obj.contains_key(&start_at) {
            self.issue(
                &format!("{prefix}StartAt"),
                format!("refers to state {start_at:?}, which does not exist"),
            );
            return None;
        }
        let sm = StateMachine {
            start_at,
            states,
            order,
            timeout_seconds,
        };
        self.check_transitions(&sm, states_obj, prefix);
        Some(sm)
    }

    fn query_language(&mut self, obj: &Map<String, Value>, loc: &str) {
        match obj.get("QueryLanguage") {
            None => {}
            Some(Value::String(s)) if s == "JSONPath" => {}
            Some(Value::String(s)) if s == "JSONata" => self.issue(
                loc,
                "JSONata is not supported by this engine yet; use JSONPath",
            ),
            Some(_) => self.issue(loc, "must be \"JSONPath\" or \"JSONata\""),
        }
    }

    fn check_transitions(&mut self, sm: &StateMachine, raw: &Map<String, Value>, prefix: &str) {
        let exists = |n: &str| raw.contains_key(n);
        let mut targets: Vec<(String, String)> = Vec::new();
        for name in &sm.order {
            let s = &sm.states[name];
            let loc = format!("{prefix}States.{name}");
            if let Transition::Next(n) = &s.transition {
                targets.push((format!("{loc}.Next"), n.clone()));
            }
            if let StateKind::Choice { choices, default } = &s.kind {
                for (i, c) in choices.iter().enumerate() {
                    targets.push((format!("{loc}.Choices[{i}].Next"), c.next.clone()));
                }
                if let Some(d) = default {
                    targets.push((format!("{loc}.Default"), d.clone()));
                }
            }
            for (i, c) in s.catch.iter().enumerate() {
                targets.push((format!("{loc}.Catch[{i}].Next"), c.next.clone()));
            }
        }
        for (loc, target) in &targets {
            if !exists(target) {
                self.issue(
                    loc,
                    format!("refers to state {target:?}, which does not exist in this scope"),
                );
            }
        }
        // Reachability from StartAt.
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack = vec![sm.start_at.as_str()];
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            let Some(s) = sm.states.get(n) else { continue };
            if let Transition::Next(x) = &s.transition {
                stack.push(x);
            }
            if let StateKind::Choice { choices, default } = &s.kind {
                stack.extend(choices.iter().map(|c| c.next.as_str()));
                if let Some(d) = default {
                    stack.push(d);
                }
            }
            stack.extend(s.catch.iter().map(|c| c.next.as_str()));
        }
        for name in raw.keys() {
            if sm.states.contains_key(name) && !seen.contains(name.as_str()) {
                self.issue(
                    &format!("{prefix}States.{name}"),
                    "state is not reachable from StartAt",
                );
            }
        }
    }

    fn opt_uint(&mut self, obj: &Map<String, Value>, field: &str, prefix: &str) -> Option<u64> {
        match obj.get(field) {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.issue(
                        &format!("{prefix}{field}"),
                        "must be a non-negative integer",
                    );
                    None
                }
            },
        }
    }

    fn opt_str<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        field: &str,
        loc: &str,
    ) -> Option<&'v str> {
        match obj.get(field) {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.issue(&format!("{loc}.{field}"), "must be a string");
                None
            }
        }
    }

    fn path_field(
        &mut self,
        obj: &Map<String, Value>,
        field: &str,
        loc: &str,
        reference: bool,
    ) -> Option<Path> {
        let s = self.opt_str(obj, field, loc)?;
        let parsed = if reference {
            Path::parse_reference(s)
        } else {
            Path::parse(s)
        };
        match parsed {
            Ok(p) => Some(p),
            Err(e) => {
                self.issue(
                    &format!("{loc}.{field}"),
                    format!("invalid path {s:?}: {e}"),
                );
                None
            }
        }
    }

    fn data_path(&mut self, obj: &Map<String, Value>, field: &str, loc: &str) -> DataPath {
        match obj.get(field) {
            Some(Value::Null) => DataPath::Null,
            None => DataPath::Path(Path::parse("$").expect("root path")),
            Some(_) => match self.path_field(obj, field, loc, false) {
                Some(p) => DataPath::Path(p),
                None => DataPath::Path(Path::parse("$").expect("root path")),
            },
        }
    }

    fn result_path(&mut self, obj: &Map<String, Value>, field: &str, loc: &str) -> ResultPath {
        match obj.get(field) {
            Some(Value::Null) => ResultPath::Discard,
            None => ResultPath::Path(Path::parse("$").expect("root path")),
            Some(_) => match self.path_field(obj, field, loc, true) {
                Some(p) if matches!(p.root, crate::path::Root::Input) => ResultPath::Path(p),
                Some(_) => {
                    self.issue(
                        &format!("{loc}.{field}"),
                        "must start with '$' followed by fields of the state input",
                    );
                    ResultPath::Discard
                }
                None => ResultPath::Discard,
            },
        }
    }

    fn template(&mut self, obj: &Map<String, Value>, field: &str, loc: &str) -> Option<Template> {
        let v = obj.get(field)?;
        // The spec: "A Payload Template MUST be a JSON object".
        if !v.is_object() {
            self.issue(&format!("{loc}.{field}"), "must be a JSON object");
            return None;
        }
        match Template::compile(v) {
            Ok(t) => Some(t),
            Err((sub, msg)) => {
                self.issue(&format!("{loc}.{field}.{sub}"), msg);
                None
            }
        }
    }

    fn assign(&mut self, obj: &Map<String, Value>, loc: &str) -> Option<Template> {
        let t = self.template(obj, "Assign", loc)?;
        if let Some(Value::Object(m)) = obj.get("Assign") {
            for k in m.keys() {
                let name = k.strip_suffix(".$").unwrap_or(k);
                let ok = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && name.len() <= 80;
                if !ok {
                    self.issue(
                        &format!("{loc}.Assign.{k}"),
                        "a variable name must start with a letter or '_' and use only letters, digits and '_'",
                    );
                }
                if name == "states" {
                    self.issue(
                        &format!("{loc}.Assign.{k}"),
                        "the name 'states' is reserved",
                    );
                }
            }
        }
        Some(t)
    }

    fn error_equals(&mut self, obj: &Map<String, Value>, loc: &str) -> Vec<String> {
        match obj.get("ErrorEquals") {
            Some(Value::Array(a)) if !a.is_empty() => {
                let mut out = Vec::new();
                for (i, e) in a.iter().enumerate() {
                    match e.as_str() {
                        Some(s) => out.push(s.to_string()),
                        None => self.issue(&format!("{loc}.ErrorEquals[{i}]"), "must be a string"),
                    }
                }
                if out.len() > 1 && out.iter().any(|e| e == names::ALL) {
                    self.issue(
                        &format!("{loc}.ErrorEquals"),
                        "States.ALL must appear alone in ErrorEquals",
                    );
                }
                out
            }
            _ => {
                self.issue(
                    &format!("{loc}.ErrorEquals"),
                    "is required and must be a non-empty array of error names",
                );
                Vec::new()
            }
        }
    }

    fn retriers(&mut self, obj: &Map<String, Value>, loc: &str) -> Vec<Retrier> {
        let Some(v) = obj.get("Retry") else {
            return Vec::new();
        };
        let Value::Array(items) = v else {
            self.issue(&format!("{loc}.Retry"), "must be an array");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in items.iter().enumerate() {
            let rloc = format!("{loc}.Retry[{i}]");
            let Value::Object(r) = r else {
                self.issue(&rloc, "must be an object");
                continue;
            };
            for k in r.keys() {
                if ![
                    "ErrorEquals",
                    "IntervalSeconds",
                    "MaxAttempts",
                    "BackoffRate",
                    "MaxDelaySeconds",
                    "JitterStrategy",
                    "Comment",
                ]
                .contains(&k.as_str())
                {
                    self.issue(
                        &format!("{rloc}.{k}"),
                        "field is not supported in a retrier",
                    );
                }
            }
            let error_equals = self.error_equals(r, &rloc);
            if error_equals.iter().any(|e| e == names::ALL) && i + 1 != items.len() {
                self.issue(
                    &format!("{rloc}.ErrorEquals"),
                    "a retrier with States.ALL must be the last retrier",
                );
            }
            let interval_seconds = match r.get("IntervalSeconds") {
                None => 1.0,
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=99_999_999).contains(&n) => n as f64,
                    _ => {
                        self.issue(
                            &format!("{rloc}.IntervalSeconds"),
                            "must be an integer from 1 to 99999999",
                        );
                        1.0
                    }
                },
            };
            let max_attempts = match r.get("MaxAttempts") {
                None => 3,
                Some(v) => match v.as_u64() {
                    Some(n) if n <= 99_999_999 => n as u32,
                    _ => {
                        self.issue(
                            &format!("{rloc}.MaxAttempts"),
                            "must be an integer from 0 to 99999999",
                        );
                        0
                    }
                },
            };
            let backoff_rate = match r.get("BackoffRate") {
                None => 2.0,
                Some(v) => match v.as_f64() {
                    Some(n) if n >= 1.0 => n,
                    _ => {
                        self.issue(
                            &format!("{rloc}.BackoffRate"),
                            "must be a number greater than or equal to 1.0",
                        );
                        2.0
                    }
                },
            };
            let max_delay_seconds = match r.get("MaxDelaySeconds") {
                None => None,
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=31_622_400).contains(&n) => Some(n as f64),
                    _ => {
                        self.issue(
                            &format!("{rloc}.MaxDelaySeconds"),
                            "must be an integer from 1 to 31622400",
                        );
                        None
                    }
                },
            };
            let jitter = match r.get("JitterStrategy") {
                None => Jitter::None,
                Some(Value::String(s)) if s == "NONE" => Jitter::None,
                Some(Value::String(s)) if s == "FULL" => Jitter::Full,
                Some(_) => {
                    self.issue(
                        &format!("{rloc}.JitterStrategy"),
                        "must be \"FULL\" or \"NONE\"",
                    );
                    Jitter::None
                }
            };
            out.push(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                jitter,
            });
        }
        out
    }

    fn catchers(&mut self, obj: &Map<String, Value>, loc: &str) -> Vec<Catcher> {
        let Some(v) = obj.get("Catch") else {
            return Vec::new();
        };
        let Value::Array(items) = v else {
            self.issue(&format!("{loc}.Catch"), "must be an array");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, c) in items.iter().enumerate() {
            let cloc = format!("{loc}.Catch[{i}]");
            let Value::Object(c) = c else {
                self.issue(&cloc, "must be an object");
                continue;
            };
            for k in c.keys() {
                if !["ErrorEquals", "Next", "ResultPath", "Comment", "Assign"].contains(&k.as_str())
                {
                    self.issue(
                        &format!("{cloc}.{k}"),
                        "field is not supported in a catcher",
                    );
                }
            }
            let error_equals = self.error_equals(c, &cloc);
            if error_equals.iter().any(|e| e == names::ALL) && i + 1 != items.len() {
                self.issue(
                    &format!("{cloc}.ErrorEquals"),
                    "a catcher with States.ALL must be the last catcher",
                );
            }
            let next = match c.get("Next") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    self.issue(&format!("{cloc}.Next"), "is required and must be a string");
                    continue;
                }
            };
            let result_path = self.result_path(c, "ResultPath", &cloc);
            let assign = self.assign(c, &cloc);
            out.push(Catcher {
                error_equals,
                next,
                result_path,
                assign,
            });
        }
        out
    }

    fn dynamic(&mut self, obj: &Map<String, Value>, field: &str, loc: &str) -> Option<Dynamic> {
        let s = self.opt_str(obj, field, loc)?;
        if looks_like_call(s) {
            match Call::parse(s) {
                Ok(c) => Some(Dynamic::Call(c)),
                Err(e) => {
                    self.issue(&format!("{loc}.{field}"), e);
                    None
                }
            }
        } else {
            self.path_field(obj, field, loc, true).map(Dynamic::Path)
        }
    }

    fn state(&mut self, name: &str, v: &Value, loc: &str) -> Option<State> {
        let Value::Object(obj) = v else {
            self.issue(loc, "a state must be a JSON object");
            return None;
        };
        let ty = match obj.get("Type") {
            Some(Value::String(t)) => t.as_str(),
            _ => {
                self.issue(&format!("{loc}.Type"), "is required and must be a string");
                return None;
            }
        };
        let allowed = allowed_fields(ty);
        if allowed.is_empty() {
            self.issue(
                &format!("{loc}.Type"),
                format!("unknown state type {ty:?}; expected Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map"),
            );
            return None;
        }
        for k in obj.keys() {
            if !COMMON.contains(&k.as_str()) && !allowed.contains(&k.as_str()) {
                self.issue(
                    &format!("{loc}.{k}"),
                    format!("field is not supported by a {ty} state"),
                );
            }
        }
        self.query_language(obj, &format!("{loc}.QueryLanguage"));
        let has_next_end = allowed.contains(&"Next");
        let transition = if has_next_end {
            let next = obj.get("Next");
            let end = obj.get("End");
            match (next, end) {
                (Some(Value::String(n)), None) => Transition::Next(n.clone()),
                (Some(Value::String(_)), Some(_)) => {
                    self.issue(loc, "a state may not have both Next and End");
                    Transition::End
                }
                (Some(_), _) => {
                    self.issue(&format!("{loc}.Next"), "must be a string");
                    Transition::End
                }
                (None, Some(Value::Bool(true))) => Transition::End,
                (None, Some(_)) => {
                    self.issue(&format!("{loc}.End"), "must be true when present");
                    Transition::End
                }
                (None, None) => {
                    self.issue(loc, "a state must have either Next or \"End\": true");
                    Transition::End
                }
            }
        } else {
            Transition::Own
        };
        let input_path = self.data_path(obj, "InputPath", loc);
        let output_path = self.data_path(obj, "OutputPath", loc);
        let parameters = self.template(obj, "Parameters", loc);
        let result_selector = self.template(obj, "ResultSelector", loc);
        let result_path = self.result_path(obj, "ResultPath", loc);
        let assign = self.assign(obj, loc);
        let retry = self.retriers(obj, loc);
        let catch = self.catchers(obj, loc);

        let kind = match ty {
            "Pass" => StateKind::Pass {
                result: obj.get("Result").cloned(),
            },
            "Succeed" => StateKind::Succeed,
            "Fail" => {
                let error = self.opt_str(obj, "Error", loc).map(str::to_string);
                let cause = self.opt_str(obj, "Cause", loc).map(str::to_string);
                let error_path = self.dynamic(obj, "ErrorPath", loc);
                let cause_path = self.dynamic(obj, "CausePath", loc);
                if obj.contains_key("Error") && obj.contains_key("ErrorPath") {
                    self.issue(loc, "a Fail state may not have both Error and ErrorPath");
                }
                if obj.contains_key("Cause") && obj.contains_key("CausePath") {
                    self.issue(loc, "a Fail state may not have both Cause and CausePath");
                }
                StateKind::Fail {
                    error,
                    error_path,
                    cause,
                    cause_path,
                }
            }
            "Wait" => {
                let fields = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"];
                let present: Vec<&str> = fields
                    .iter()
                    .copied()
                    .filter(|f| obj.contains_key(*f))
                    .collect();
                if present.len() != 1 {
                    self.issue(
                        loc,
                        format!(
                            "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath (found {})",
                            present.len()
                        ),
                    );
                    return None;
                }
                match present[0] {
                    "Seconds" => match obj["Seconds"].as_u64() {
                        Some(n) if n <= 99_999_999 => StateKind::Wait(WaitFor::Seconds(n)),
                        _ => {
                            self.issue(
                                &format!("{loc}.Seconds"),
                                "must be an integer from 0 to 99999999",
                            );
                            return None;
                        }
                    },
                    "Timestamp" => {
                        let s = self.opt_str(obj, "Timestamp", loc)?;
                        if crate::choice::parse_timestamp(s).is_none() {
                            self.issue(
                                &format!("{loc}.Timestamp"),
                                "must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z",
                            );
                            return None;
                        }
                        StateKind::Wait(WaitFor::Timestamp(s.to_string()))
                    }
                    "SecondsPath" => StateKind::Wait(WaitFor::SecondsPath(self.path_field(
                        obj,
                        "SecondsPath",
                        loc,
                        true,
                    )?)),
                    _ => StateKind::Wait(WaitFor::TimestampPath(self.path_field(
                        obj,
                        "TimestampPath",
                        loc,
                        true,
                    )?)),
                }
            }
            "Choice" => {
                let choices = match obj.get("Choices") {
                    Some(Value::Array(a)) if !a.is_empty() => {
                        let mut out = Vec::new();
                        for (i, c) in a.iter().enumerate() {
                            let cloc = format!("{loc}.Choices[{i}]");
                            match crate::choice::parse_branch(c, &cloc) {
                                Ok(mut b) => {
                                    if let Value::Object(m) = c {
                                        b.assign = self.assign(m, &cloc);
                                    }
                                    out.push(b)
                                }
                                Err(issues) => self.issues.extend(issues),
                            }
                        }
                        out
                    }
                    _ => {
                        self.issue(
                            &format!("{loc}.Choices"),
                            "is required and must be a non-empty array",
                        );
                        Vec::new()
                    }
                };
                let default = self.opt_str(obj, "Default", loc).map(str::to_string);
                StateKind::Choice { choices, default }
            }
            "Task" => {
                let resource = match obj.get("Resource") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        self.issue(
                            &format!("{loc}.Resource"),
                            "is required and must be a string",
                        );
                        String::new()
                    }
                };
                self.required_parameters(obj, &resource, loc);
                let timeout_seconds = self.opt_uint(obj, "TimeoutSeconds", &format!("{loc}."));
                let heartbeat_seconds = self.opt_uint(obj, "HeartbeatSeconds", &format!("{loc}."));
                if timeout_seconds == Some(0) {
                    self.issue(
                        &format!("{loc}.TimeoutSeconds"),
                        "must be a positive integer",
                    );
                }
                if heartbeat_seconds == Some(0) {
                    self.issue(
                        &format!("{loc}.HeartbeatSeconds"),
                        "must be a positive integer",
                    );
                }
                if obj.contains_key("TimeoutSeconds") && obj.contains_key("TimeoutSecondsPath") {
                    self.issue(
                        loc,
                        "a Task may not have both TimeoutSeconds and TimeoutSecondsPath",
                    );
                }
                if obj.contains_key("HeartbeatSeconds") && obj.contains_key("HeartbeatSecondsPath")
                {
                    self.issue(
                        loc,
                        "a Task may not have both HeartbeatSeconds and HeartbeatSecondsPath",
                    );
                }
                if let (Some(h), Some(t)) = (heartbeat_seconds, timeout_seconds) {
                    if h >= t {
                        self.issue(
                            &format!("{loc}.HeartbeatSeconds"),
                            "must be smaller than TimeoutSeconds",
                        );
                    }
                }
                StateKind::Task(TaskSpec {
                    resource,
                    timeout_seconds,
                    timeout_seconds_path: self.path_field(obj, "TimeoutSecondsPath", loc, true),
                    heartbeat_seconds,
                    heartbeat_seconds_path: self.path_field(obj, "HeartbeatSecondsPath", loc, true),
                })
            }
            "Parallel" => {
                let branches = match obj.get("Branches") {
                    Some(Value::Array(a)) if !a.is_empty() => a
                        .iter()
                        .enumerate()
                        .filter_map(|(i, b)| {
                            self.machine(b, &format!("{loc}.Branches[{i}]."), false)
                        })
                        .collect(),
                    _ => {
                        self.issue(
                            &format!("{loc}.Branches"),
                            "is required and must be a non-empty array",
                        );
                        Vec::new()
                    }
                };
                StateKind::Parallel { branches }
            }
            "Map" => StateKind::Map(Box::new(self.map(obj, loc)?)),
            _ => unreachable!("checked by allowed_fields"),
        };
        Some(State {
            name: name.to_string(),
            // On a Map, Parameters is the legacy name of ItemSelector (read in map()).
            parameters: if matches!(kind, StateKind::Map(_)) {
                None
            } else {
                parameters
            },
            kind,
            transition,
            input_path,
            output_path,
            result_selector,
            result_path,
            assign,
            retry,
            catch,
        })
    }

    /// Service integrations that need a parameter, checked at create time as AWS does.
    fn required_parameters(&mut self, obj: &Map<String, Value>, resource: &str, loc: &str) {
        let base = resource
            .strip_suffix(".waitForTaskToken")
            .unwrap_or(resource);
        let required = match base {
            "arn:aws:states:::lambda:invoke" => "FunctionName",
            b if b.starts_with("arn:aws:states:::states:startExecution") => "StateMachineArn",
            _ => return,
        };
        let params = obj.get("Parameters").and_then(Value::as_object);
        let present = params
            .is_some_and(|p| p.contains_key(required) || p.contains_key(&format!("{required}.$")));
        if !present {
            self.issue(
                &format!("{loc}.Parameters"),
                format!("the field '{required}' is required by {base}"),
            );
        }
    }

    fn map(&mut self, obj: &Map<String, Value>, loc: &str) -> Option<MapSpec> {
        if obj.contains_key("ItemProcessor") && obj.contains_key("Iterator") {
            self.issue(loc, "a Map may not have both ItemProcessor and Iterator");
        }
        if obj.contains_key("ItemSelector") && obj.contains_key("Parameters") {
            self.issue(loc, "a Map may not have both ItemSelector and Parameters");
        }
        let (field, proc_v) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
            (Some(p), _) => ("ItemProcessor", p),
            (None, Some(i)) => ("Iterator", i),
            (None, None) => {
                self.issue(&format!("{loc}.ItemProcessor"), "is required");
                return None;
            }
        };
        let mut is_distributed = false;
        if let Some(Value::Object(cfg)) = proc_v.get("ProcessorConfig") {
            if let Some(mode) = cfg.get("Mode") {
                match mode.as_str() {
                    Some("INLINE") => {}
                    Some("DISTRIBUTED") => is_distributed = true,
                    _ => self.issue(
                        &format!("{loc}.{field}.ProcessorConfig.Mode"),
                        "must be \"INLINE\" or \"DISTRIBUTED\"",
                    ),
                }
            }
        }
        let distributed = if is_distributed {
            Some(self.distributed(obj, loc))
        } else {
            for f in ["ItemReader", "ItemBatcher", "ResultWriter"] {
                if obj.contains_key(f) {
                    self.issue(
                        &format!("{loc}.{f}"),
                        "is only valid in a Distributed Map (ItemProcessor.ProcessorConfig.Mode = DISTRIBUTED)",
                    );
                }
            }
            None
        };
        let processor = self.machine(proc_v, &format!("{loc}.{field}."), false);
        let items_path = self
            .path_field(obj, "ItemsPath", loc, true)
            .unwrap_or_else(|| Path::parse("$").expect("root path"));
        let item_selector = if obj.contains_key("ItemSelector") {
            self.template(obj, "ItemSelector", loc)
        } else {
            self.template(obj, "Parameters", loc)
        };
        let max_concurrency = self
            .opt_uint(obj, "MaxConcurrency", &format!("{loc}."))
            .unwrap_or(0);
        let tolerated_failure_percentage = match obj.get("ToleratedFailurePercentage") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(p) if (0.0..=100.0).contains(&p) => Some(p),
                _ => {
                    self.issue(
                        &format!("{loc}.ToleratedFailurePercentage"),
                        "must be a number from 0 to 100",
                    );
                    None
                }
            },
        };
        let tolerated_failure_count =
            self.opt_uint(obj, "ToleratedFailureCount", &format!("{loc}."));
        Some(MapSpec {
            items_path,
            processor: Box::new(processor?),
            item_selector,
            max_concurrency,
            max_concurrency_path: self.path_field(obj, "MaxConcurrencyPath", loc, true),
            tolerated_failure_percentage,
            tolerated_failure_percentage_path: self.path_field(
                obj,
                "ToleratedFailurePercentagePath",
                loc,
                true,
            ),
            tolerated_failure_count,
            tolerated_failure_count_path: self.path_field(
                obj,
                "ToleratedFailureCountPath",
                loc,
                true,
            ),
            distributed,
        })
    }

    fn sub_object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        field: &str,
        loc: &str,
    ) -> Option<&'v Map<String, Value>> {
        match obj.get(field)? {
            Value::Object(m) => Some(m),
            _ => {
                self.issue(&format!("{loc}.{field}"), "must be a JSON object");
                None
            }
        }
    }

    fn distributed(&mut self, obj: &Map<String, Value>, loc: &str) -> DistributedSpec {
        let mut spec = DistributedSpec::default();
        if let Some(r) = self.sub_object(obj, "ItemReader", loc) {
            let rloc = format!("{loc}.ItemReader");
            let resource = self.opt_str(r, "Resource", &rloc).unwrap_or_default();
            let listing = match resource {
                "arn:aws:states:::s3:getObject" => false,
                "arn:aws:states:::s3:listObjectsV2" => true,
                _ => {
                    self.issue(
                        &format!("{rloc}.Resource"),
                        "must be arn:aws:states:::s3:getObject or arn:aws:states:::s3:listObjectsV2",
                    );
                    false
                }
            };
            let parameters = self.template(r, "Parameters", &rloc);
            if parameters.is_none() {
                self.issue(
                    &format!("{rloc}.Parameters"),
                    "is required (Bucket, Key or Prefix)",
                );
            }
            let cfg = self
                .sub_object(r, "ReaderConfig", &rloc)
                .cloned()
                .unwrap_or_default();
            let cloc = format!("{rloc}.ReaderConfig");
            let input = match (listing, cfg.get("InputType").and_then(Value::as_str)) {
                (true, None) => ItemInput::Listing,
                (false, Some("JSON")) => ItemInput::Json,
                (false, Some("JSONL")) => ItemInput::Jsonl,
                (false, Some("CSV")) => ItemInput::Csv,
                (false, Some("MANIFEST")) => {
                    self.issue(
                        &format!("{cloc}.InputType"),
                        "MANIFEST (S3 inventory) is not supported by this engine",
                    );
                    ItemInput::Json
                }
                (true, Some(_)) => {
                    self.issue(
                        &format!("{cloc}.InputType"),
                        "is not allowed with s3:listObjectsV2",
                    );
                    ItemInput::Listing
                }
                (false, _) => {
                    self.issue(
                        &format!("{cloc}.InputType"),
                        "must be JSON, JSONL or CSV with s3:getObject",
                    );
                    ItemInput::Json
                }
            };
            let mut csv_headers = None;
            match (input, cfg.get("CSVHeaderLocation").and_then(Value::as_str)) {
                (ItemInput::Csv, Some("FIRST_ROW")) => {}
                (ItemInput::Csv, Some("GIVEN")) => {
                    match cfg.get("CSVHeaders").and_then(Value::as_array) {
                        Some(h) if !h.is_empty() && h.iter().all(Value::is_string) => {
                            csv_headers = Some(
                                h.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect(),
                            );
                        }
                        _ => self.issue(
                            &format!("{cloc}.CSVHeaders"),
                            "must be a non-empty array of strings when CSVHeaderLocation is GIVEN",
                        ),
                    }
                }
                (ItemInput::Csv, _) => self.issue(
                    &format!("{cloc}.CSVHeaderLocation"),
                    "must be FIRST_ROW or GIVEN",
                ),
                (_, Some(_)) => self.issue(
                    &format!("{cloc}.CSVHeaderLocation"),
                    "is only allowed with InputType CSV",
                ),
                _ => {}
            }
            spec.item_reader = Some(ItemReaderSpec {
                resource: resource.to_string(),
                parameters,
                input,
                csv_headers,
                max_items: self.opt_uint(&cfg, "MaxItems", &format!("{cloc}.")),
                max_items_path: self.path_field(&cfg, "MaxItemsPath", &cloc, true),
            });
        }
        if let Some(b) = self.sub_object(obj, "ItemBatcher", loc) {
            let bloc = format!("{loc}.ItemBatcher");
            let pre = format!("{bloc}.");
            let batcher = ItemBatcherSpec {
                max_items_per_batch: self.opt_uint(b, "MaxItemsPerBatch", &pre),
                max_items_per_batch_path: self.path_field(b, "MaxItemsPerBatchPath", &bloc, true),
                max_input_bytes_per_batch: self.opt_uint(b, "MaxInputBytesPerBatch", &pre),
                max_input_bytes_per_batch_path: self.path_field(
                    b,
                    "MaxInputBytesPerBatchPath",
                    &bloc,
                    true,
                ),
                batch_input: self.template(b, "BatchInput", &bloc),
            };
            let any = [
                "MaxItemsPerBatch",
                "MaxItemsPerBatchPath",
                "MaxInputBytesPerBatch",
                "MaxInputBytesPerBatchPath",
            ]
            .iter()
            .any(|f| b.contains_key(*f));
            if !any {
                self.issue(
                    &bloc,
                    "needs MaxItemsPerBatch or MaxInputBytesPerBatch (or their Path forms)",
                );
            }
            if batcher.max_items_per_batch == Some(0) {
                self.issue(&format!("{bloc}.MaxItemsPerBatch"), "must be at least 1");
            }
            if batcher
                .max_input_bytes_per_batch
                .is_some_and(|n| n == 0 || n > 262_144)
            {
                self.issue(
                    &format!("{bloc}.MaxInputBytesPerBatch"),
                    "must be from 1 to 262144 (256 KiB)",
                );
            }
            spec.item_batcher = Some(batcher);
        }
        if let Some(w) = self.sub_object(obj, "ResultWriter", loc) {
            let wloc = format!("{loc}.ResultWriter");
            if w.contains_key("WriterConfig") {
                self.issue(
                    &format!("{wloc}.WriterConfig"),
                    "is not supported by this engine yet",
                );
            }
            let resource = self.opt_str(w, "Resource", &wloc).unwrap_or_default();
            if resource != "arn:aws:states:::s3:putObject" {
                self.issue(
                    &format!("{wloc}.Resource"),
                    "must be arn:aws:states:::s3:putObject",
                );
            }
            let parameters = self.template(w, "Parameters", &wloc);
            if parameters.is_none() {
                self.issue(
                    &format!("{wloc}.Parameters"),
                    "is required (Bucket, Prefix)",
                );
            }
            spec.result_writer = Some(ResultWriterSpec {
                resource: resource.to_string(),
                parameters,
            });
        }
        spec
    }
}
