//! The interpreter: runs a validated [`StateMachine`] with JSONPath data flow,
//! retries, catchers, timeouts, Parallel and inline Map.

use crate::callbacks::{TaskCallback, TaskCallbacks, Waiting};
use crate::choice::parse_timestamp;
use crate::clock::Clock;
use crate::definition::{
    s3_sdk_resource, Catcher, DataPath, Dynamic, ItemInput, ItemReaderSpec, Jitter, MapSpec,
    ResultPath, ResultWriterSpec, Retrier, State, StateKind, StateMachine, TaskSpec, Transition,
    WaitFor,
};
use crate::dispatcher::{TaskDispatcher, TaskRequest};
use crate::distributed::{self, ChildRecord};
use crate::error::{names, Error, Failure};
use crate::path::{Path, Root};
use crate::template::Template;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Step Functions' payload limit for state input, output and results: 256 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 262_144;

const NESTED_PREFIX: &str = "arn:aws:states:::states:startExecution";
const WAIT_FOR_TASK_TOKEN: &str = ".waitForTaskToken";

type Vars = HashMap<String, Value>;
/// How a Map iteration ended, and when it started and stopped.
type IterationOutcome = (Result<Value, Failure>, (DateTime<Utc>, DateTime<Utc>));
/// Receives one readable line per state event.
pub type ProgressFn = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Succeeded,
    Failed,
    TimedOut,
}

/// The result of an execution. Serialises as `{"status":"SUCCEEDED","output":...}`
/// or `{"status":"FAILED","error":...,"cause":...}`.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    pub status: ExecutionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip)]
    pub execution_arn: String,
    #[serde(skip)]
    pub start_date: DateTime<Utc>,
    #[serde(skip)]
    pub stop_date: DateTime<Utc>,
    /// History events, in order, as JSON objects (`id`, `timestamp`, `type`, `details`).
    #[serde(skip)]
    pub history: Vec<Value>,
}

/// Per-execution options.
#[derive(Clone, Default)]
pub struct ExecutionOptions {
    /// Execution name (default: a UUID).
    pub name: Option<String>,
    /// State machine name used in ARNs and `$$.StateMachine` (default: "StateMachine").
    pub state_machine_name: Option<String>,
    /// Called with a readable line for each state entered, exited, retried or failed.
    pub progress: Option<ProgressFn>,
    /// Fail the execution (`States.Runtime`) once its history has this many events, so a
    /// runaway loop on the virtual clock ends. AWS's own quota is 25,000 events; `None`
    /// (the default) means no limit.
    pub max_history_events: Option<usize>,
    /// Do not keep the history (`Execution::history` stays empty): for benchmarks and
    /// large Maps. The progress callback still gets its lines.
    pub skip_history: bool,
}

impl ExecutionOptions {
    /// Prints one readable line per state event on stderr.
    pub fn with_stderr_progress(mut self) -> Self {
        self.progress = Some(Arc::new(|line: &str| eprintln!("{line}")));
        self
    }
}

impl Execution {
    /// The history as JSON lines, one event per line.
    pub fn history_json_lines(&self) -> String {
        let mut out = String::new();
        for e in &self.history {
            out.push_str(&e.to_string());
            out.push('\n');
        }
        out
    }
}

struct Inner {
    dispatcher: Arc<dyn TaskDispatcher>,
    clock: Arc<dyn Clock>,
    machines: RwLock<HashMap<String, Arc<StateMachine>>>,
    callbacks: TaskCallbacks,
    region: String,
    account: String,
}

/// The engine: a dispatcher, a clock and the state machines registered for
/// nested executions. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(dispatcher: Arc<dyn TaskDispatcher>, clock: Arc<dyn Clock>) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                dispatcher,
                clock,
                machines: RwLock::new(HashMap::new()),
                callbacks: TaskCallbacks::default(),
                region: "us-east-1".into(),
                account: "123456789012".into(),
            }),
        }
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// Where `.waitForTaskToken` tasks get their outcome (SendTaskSuccess and friends).
    pub fn callbacks(&self) -> TaskCallbacks {
        self.inner.callbacks.clone()
    }

    /// The ARN a state machine registered under `name` has.
    pub fn state_machine_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{name}",
            self.inner.region, self.inner.account
        )
    }

    /// Whether a Task resource can run: nested executions are the engine's own,
    /// everything else is the dispatcher's call.
    pub fn supports(&self, resource: &str) -> Result<(), String> {
        if let Some(rest) = resource.strip_prefix(NESTED_PREFIX) {
            return match rest {
                "" | ".sync" | ".sync:2" => Ok(()),
                _ => Err(format!(
                    "unsupported integration pattern {rest:?} for states:startExecution"
                )),
            };
        }
        if let Some(base) = resource.strip_suffix(WAIT_FOR_TASK_TOKEN) {
            return self.inner.dispatcher.supports_callback(base);
        }
        self.inner.dispatcher.supports(resource)
    }

    /// Parses and validates a definition, including every Task resource.
    pub fn load(&self, definition: &Value) -> Result<StateMachine, Error> {
        let sm = StateMachine::from_json(definition)?;
        sm.check_resources(&|r| self.supports(r))?;
        Ok(sm)
    }

    /// [`Engine::load`] from JSON text.
    pub fn load_str(&self, definition: &str) -> Result<StateMachine, Error> {
        self.load(&serde_json::from_str(definition)?)
    }

    /// Registers a state machine for nested executions under `name`; returns its ARN.
    /// `StateMachineArn` parameters may use the ARN or the bare name.
    pub fn register(&self, name: &str, definition: &Value) -> Result<String, Error> {
        let sm = Arc::new(self.load(definition)?);
        let arn = self.state_machine_arn(name);
        let mut m = self
            .inner
            .machines
            .write()
            .unwrap_or_else(|e| e.into_inner());
        m.insert(name.to_string(), sm.clone());
        m.insert(arn.clone(), sm);
        Ok(arn)
    }

    fn lookup(&self, name_or_arn: &str) -> Option<Arc<StateMachine>> {
        let m = self
            .inner
            .machines
            .read()
            .unwrap_or_else(|e| e.into_inner());
        m.get(name_or_arn).cloned().or_else(|| {
            // Placeholders resolved to a different account or region still find it by name.
            let name = name_or_arn.rsplit(':').next()?;
            m.get(name).cloned()
        })
    }

    /// Runs an execution to its end.
    pub async fn run(
        &self,
        machine: &StateMachine,
        input: Value,
        options: ExecutionOptions,
    ) -> Execution {
        let sm_name = options
            .state_machine_name
            .clone()
            .unwrap_or_else(|| "StateMachine".into());
        let exec_name = options
            .name
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let clock = self.inner.clock.clone();
        let start = clock.now();
        let run = Run {
            engine: self.clone(),
            execution_arn: format!(
                "arn:aws:states:{}:{}:execution:{sm_name}:{exec_name}",
                self.inner.region, self.inner.account
            ),
            state_machine_arn: self.state_machine_arn(&sm_name),
            state_machine_name: sm_name,
            name: exec_name,
            start_time: timestamp(start),
            start,
            input: input.clone(),
            history: Mutex::new(Vec::new()),
            progress: options.progress.clone(),
            max_history_events: options.max_history_events,
            events: std::sync::atomic::AtomicUsize::new(0),
            record_history: !options.skip_history,
        };
        run.event(
            "ExecutionStarted",
            || json!({"input": input, "stateMachineArn": run.state_machine_arn}),
        );
        let result = match check_size(&input, "execution input") {
            Err(f) => Err(f),
            Ok(()) => {
                let fut = run.run_scope(machine, input, Vars::new());
                match machine.timeout_seconds {
                    Some(t) if !clock.is_virtual() => {
                        match tokio::time::timeout(Duration::from_secs(t), fut).await {
                            Ok(r) => r,
                            Err(_) => Err(execution_timeout()),
                        }
                    }
                    Some(t) => {
                        let r = fut.await;
                        if (clock.now() - start).num_milliseconds() > (t as i64) * 1000 {
                            Err(execution_timeout())
                        } else {
                            r
                        }
                    }
                    None => fut.await,
                }
            }
        };
        let stop = clock.now();
        let (status, output, error, cause) = match result {
            Ok(out) => {
                run.event("ExecutionSucceeded", || json!({"output": out}));
                (ExecutionStatus::Succeeded, Some(out), None, None)
            }
            Err(mut f) => {
                // States.HeartbeatTimeout exists only for Retry and Catch; the execution
                // reports States.Timeout.
                if f.error == names::HEARTBEAT_TIMEOUT {
                    f.error = names::TIMEOUT.to_string();
                }
                let timed_out = f.error == names::TIMEOUT && f.cause == execution_timeout().cause;
                run.event(
                    if timed_out {
                        "ExecutionTimedOut"
                    } else {
                        "ExecutionFailed"
                    },
                    || json!({"error": f.error, "cause": f.cause}),
                );
                (
                    if timed_out {
                        ExecutionStatus::TimedOut
                    } else {
                        ExecutionStatus::Failed
                    },
                    None,
                    Some(f.error),
                    Some(f.cause),
                )
            }
        };
        let history = std::mem::take(&mut *run.history.lock().unwrap_or_else(|e| e.into_inner()));
        Execution {
            status,
            output,
            error,
            cause,
            execution_arn: run.execution_arn,
            start_date: start,
            stop_date: stop,
            history,
        }
    }
}

fn execution_timeout() -> Failure {
    Failure::new(names::TIMEOUT, "The execution exceeded its TimeoutSeconds")
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Counts the bytes written to it: sizes a payload without building its text.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of `v` as compact JSON text, exactly as `serde_json` writes it, computed
/// without formatting anything but non-integer numbers.
fn json_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => number_len(n),
        Value::String(s) => string_len(s),
        Value::Array(a) => 2 + a.len().saturating_sub(1) + a.iter().map(json_len).sum::<usize>(),
        Value::Object(m) => {
            2 + m.len().saturating_sub(1)
                + m.iter()
                    .map(|(k, v)| string_len(k) + 1 + json_len(v))
                    .sum::<usize>()
        }
    }
}

fn number_len(n: &serde_json::Number) -> usize {
    let digits = |u: u64| u.checked_ilog10().map_or(1, |d| d as usize + 1);
    if let Some(u) = n.as_u64() {
        digits(u)
    } else if let Some(i) = n.as_i64() {
        1 + digits(i.unsigned_abs())
    } else {
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, n)
            .map(|_| counter.0)
            .unwrap_or(0)
    }
}

/// A JSON string's length with its quotes and escapes: `serde_json` writes `"`, `\` and
/// the control characters with a short escape (two bytes) or `\u00XX` (six).
fn string_len(s: &str) -> usize {
    2 + s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | 0x08 | b'\t' | b'\n' | 0x0c | b'\r' => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
}

fn check_size(v: &Value, what: &str) -> Result<(), Failure> {
    let n = json_len(v);
    if n > MAX_PAYLOAD_BYTES {
        return Err(Failure::new(
            names::DATA_LIMIT_EXCEEDED,
            format!("The {what} has {n} bytes, more than the limit of {MAX_PAYLOAD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Whether a retrier's or catcher's ErrorEquals covers `error`.
pub fn error_matches(equals: &[String], error: &str) -> bool {
    // States.Runtime always fails the execution: no retrier or catcher sees it.
    if error == names::RUNTIME {
        return false;
    }
    equals.iter().any(|e| {
        e == error
            || (e == names::ALL && error != names::DATA_LIMIT_EXCEEDED)
            || (e == names::TASK_FAILED
                && error != names::TIMEOUT
                && error != names::HEARTBEAT_TIMEOUT
                && error != names::DATA_LIMIT_EXCEEDED)
            || (e == names::TIMEOUT && error == names::HEARTBEAT_TIMEOUT)
    })
}

enum Step<'s> {
    /// The next state's name (borrowed from the definition) and its input.
    Next(&'s str, Value),
    End(Value),
}

/// The next state a transition names, `None` at the end.
fn next_state(t: &Transition) -> Option<&str> {
    match t {
        Transition::Next(n) => Some(n),
        Transition::End | Transition::Own => None,
    }
}

/// Whether a path is `$`, which hands the value on unchanged.
fn is_identity(dp: &DataPath) -> bool {
    matches!(dp, DataPath::Path(p) if p.segments.is_empty() && p.root == Root::Input)
}

/// What `$$` shows inside one state.
struct StateCx<'a> {
    state_name: &'a str,
    /// Formatted only when `$$.State.EnteredTime` is read.
    entered_time: DateTime<Utc>,
    retry_count: u32,
    item: Option<(usize, &'a Value)>,
    task_token: Option<String>,
    /// History id of the state's Entered event, quoted in error causes as AWS does.
    entered_event: usize,
}

impl StateCx<'_> {
    fn at(&self) -> String {
        format!(
            "An error occurred while executing the state '{}' (entered at the event id #{}).",
            self.state_name, self.entered_event
        )
    }
}

struct Run {
    engine: Engine,
    execution_arn: String,
    state_machine_arn: String,
    state_machine_name: String,
    name: String,
    start_time: String,
    start: DateTime<Utc>,
    input: Value,
    history: Mutex<Vec<Value>>,
    progress: Option<ProgressFn>,
    max_history_events: Option<usize>,
    /// Events so far (recorded or not): ids, the history limit, error causes.
    events: std::sync::atomic::AtomicUsize,
    record_history: bool,
}

impl Run {
    fn check_history_limit(&self) -> Result<(), Failure> {
        let Some(max) = self.max_history_events else {
            return Ok(());
        };
        let n = self.events.load(std::sync::atomic::Ordering::SeqCst);
        if n >= max {
            return Err(Failure::runtime(format!(
                "The execution reached the maximum number of history events ({max})"
            )));
        }
        Ok(())
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.engine.inner.clock
    }

    /// Records a history event. `details` is flat (`name`, `input`, `output`, `error`,
    /// `cause`, `resource`, ...); it is reshaped into AWS's `<kind>EventDetails` object.
    fn event(&self, ty: impl std::fmt::Display, details: impl FnOnce() -> Value) {
        let id = self
            .events
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if !self.record_history && self.progress.is_none() {
            return;
        }
        let ty = ty.to_string();
        let details = details();
        let now = self.clock().now();
        if let Some(p) = &self.progress {
            let secs = (now - self.start).num_milliseconds() as f64 / 1000.0;
            let what = details
                .get("name")
                .and_then(Value::as_str)
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            let index = details
                .get("index")
                .map(|i| format!(" #{i}"))
                .unwrap_or_default();
            let err = details
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!(" error={e}"))
                .unwrap_or_default();
            p(&format!("[{secs:>9.3}s] {ty}{what}{index}{err}"));
        }
        if !self.record_history {
            return;
        }
        let shaped = aws_event_details(&ty, details, &self.engine.inner.region);
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let mut event =
            json!({"id": id, "previousEventId": id - 1, "timestamp": timestamp(now), "type": ty});
        if let Some((key, d)) = shaped {
            event[key] = d;
        }
        h.push(event);
    }

    fn context(&self, cx: &StateCx<'_>) -> Value {
        let mut m = Map::new();
        m.insert(
            "Execution".into(),
            json!({
                "Id": self.execution_arn,
                "Input": self.input,
                "Name": self.name,
                "RoleArn": format!("arn:aws:iam::{}:role/StepFunctionsLocal", self.engine.inner.account),
                "StartTime": self.start_time,
                "RedriveCount": 0,
            }),
        );
        m.insert(
            "StateMachine".into(),
            json!({"Id": self.state_machine_arn, "Name": self.state_machine_name}),
        );
        m.insert(
            "State".into(),
            json!({"Name": cx.state_name, "EnteredTime": timestamp(cx.entered_time), "RetryCount": cx.retry_count}),
        );
        if let Some(token) = &cx.task_token {
            m.insert("Task".into(), json!({ "Token": token }));
        }
        if let Some((i, v)) = cx.item {
            m.insert("Map".into(), json!({"Item": {"Index": i, "Value": v}}));
        }
        Value::Object(m)
    }

    fn resolve(&self, p: &Path, data: &Value, vars: &Vars, cx: &StateCx<'_>) -> Option<Value> {
        match &p.root {
            Root::Input => p.select(data),
            Root::Context => p.select(&self.context(cx)),
            Root::Variable(name) => p.select(vars.get(name)?),
        }
    }

    fn eval_template(
        &self,
        t: &Template,
        data: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        t.eval(&|p| self.resolve(p, data, vars, cx)).map_err(|f| {
            if f.error == names::RUNTIME {
                let input = if f.cause.ends_with("in the input") {
                    format!(" '{}'", truncate(data))
                } else {
                    String::new()
                };
                Failure::runtime(format!("{} {}{input}", cx.at(), f.cause))
            } else {
                f
            }
        })
    }

    fn apply_data_path(
        &self,
        dp: &DataPath,
        data: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        match dp {
            DataPath::Null => Ok(json!({})),
            dp if is_identity(dp) => Ok(data.clone()),
            DataPath::Path(p) => self.resolve(p, data, vars, cx).ok_or_else(|| {
                // AWS's wording, e.g. "Invalid path '$.x' : No results for path: $['x']".
                Failure::runtime(format!(
                    "{} Invalid path '{p}' : No results for path: {}",
                    cx.at(),
                    p.bracket_notation()
                ))
            }),
        }
    }

    /// [`Self::apply_data_path`] on a value the caller gives up: `$` returns it without a copy.
    fn apply_output_path(
        &self,
        dp: &DataPath,
        data: Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        match dp {
            dp if is_identity(dp) => Ok(data),
            _ => self.apply_data_path(dp, &data, vars, cx),
        }
    }

    /// Merges `result` into the state's raw input, which the caller gives up.
    fn apply_result_path(
        &self,
        rp: &ResultPath,
        raw_input: Value,
        result: Value,
        cx: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        match rp {
            ResultPath::Discard => Ok(raw_input),
            ResultPath::Path(p) if p.segments.is_empty() => Ok(result),
            ResultPath::Path(p) => {
                let mut out = raw_input;
                // `set` checks the whole path before it writes, so a failure leaves the
                // input as it was for the message.
                p.set(&mut out, result).map_err(|e| {
                    Failure::new(
                        names::RESULT_PATH_MATCH_FAILURE,
                        format!(
                            "{} Unable to apply ResultPath '{p}' to input '{}': {e}",
                            cx.at(),
                            truncate(&out)
                        ),
                    )
                })?;
                Ok(out)
            }
        }
    }

    /// A state's Assign, evaluated against `value` with the variables as they were before
    /// the state.
    fn eval_assign(
        &self,
        assign: Option<&Template>,
        value: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<Option<Value>, Failure> {
        assign
            .map(|t| self.eval_template(t, value, vars, cx))
            .transpose()
    }

    fn run_scope<'a>(
        &'a self,
        sm: &'a StateMachine,
        input: Value,
        vars: Vars,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        async move {
            let mut vars = vars;
            let mut current: &str = &sm.start_at;
            let mut data = input;
            loop {
                self.check_history_limit()?;
                let state = sm
                    .states
                    .get(current)
                    .ok_or_else(|| Failure::runtime(format!("no state named {current}")))?;
                match self.run_state(state, data, &mut vars).await? {
                    Step::Next(next, out) => {
                        current = next;
                        data = out;
                    }
                    Step::End(out) => return Ok(out),
                }
            }
        }
        .boxed()
    }

    async fn run_state<'s>(
        &self,
        state: &'s State,
        raw_input: Value,
        vars: &mut Vars,
    ) -> Result<Step<'s>, Failure> {
        let ty = state.type_name();
        let entered = self.clock().now();
        if !matches!(state.kind, StateKind::Fail { .. }) {
            self.event(
                format_args!("{ty}StateEntered"),
                || json!({"name": state.name, "input": raw_input}),
            );
        }
        let entered_event = {
            let n = self.events.load(std::sync::atomic::Ordering::SeqCst);
            // A Fail state records its Entered event below, as the next one.
            if matches!(state.kind, StateKind::Fail { .. }) {
                n + 1
            } else {
                n
            }
        };
        let cx = StateCx {
            state_name: &state.name,
            entered_time: entered,
            retry_count: 0,
            item: None,
            task_token: None,
            entered_event,
        };
        // An identity InputPath (`$`, the default) reads the raw input in place.
        let effective_owned = match is_identity(&state.input_path) {
            true => None,
            false => Some(self.apply_data_path(&state.input_path, &raw_input, vars, &cx)?),
        };
        let effective: &Value = effective_owned.as_ref().unwrap_or(&raw_input);

        // The result for ResultPath (None: the effective input is the output), the next
        // state, and the variables Assign sets (evaluated with the variables as they were
        // before this state).
        let (result, next, new_vars): (Option<Value>, Option<&'s str>, Option<Value>) = match &state
            .kind
        {
            StateKind::Fail {
                error,
                error_path,
                cause,
                cause_path,
            } => {
                self.event(
                    "FailStateEntered",
                    || json!({"name": state.name, "input": raw_input}),
                );
                return Err(Failure::new(
                    self.fail_field(error, error_path, effective, vars, &cx)?,
                    self.fail_field(cause, cause_path, effective, vars, &cx)?,
                ));
            }
            StateKind::Succeed => {
                let effective = effective_owned.unwrap_or(raw_input);
                let out = self.apply_output_path(&state.output_path, effective, vars, &cx)?;
                check_size(&out, "state output")?;
                self.event(
                    "SucceedStateExited",
                    || json!({"name": state.name, "output": out}),
                );
                return Ok(Step::End(out));
            }
            StateKind::Choice { choices, default } => {
                let mut chosen = None;
                for branch in choices {
                    if branch
                        .rule
                        .eval(&|p| self.resolve(p, effective, vars, &cx))
                        .map_err(|f| Failure::runtime(format!("{} {}", cx.at(), f.cause)))?
                    {
                        chosen = Some((branch.next.as_str(), branch.assign.as_ref()));
                        break;
                    }
                }
                let (target, assign) = match (chosen, default) {
                    (Some(c), _) => c,
                    (None, Some(d)) => (d.as_str(), state.assign.as_ref()),
                    (None, None) => {
                        return Err(Failure::new(
                            names::NO_CHOICE_MATCHED,
                            format!(
                                "{} No Choice Rule matched and no Default is specified",
                                cx.at()
                            ),
                        ))
                    }
                };
                let new_vars = self.eval_assign(assign, effective, vars, &cx)?;
                (None, Some(target), new_vars)
            }
            StateKind::Wait(w) => {
                let until = self.wait_until(w, entered, effective, vars, &cx)?;
                let now = self.clock().now();
                if until > now {
                    let d = (until - now).to_std().unwrap_or_default();
                    self.clock().sleep(d).await;
                }
                let new_vars = self.eval_assign(state.assign.as_ref(), effective, vars, &cx)?;
                (None, next_state(&state.transition), new_vars)
            }
            StateKind::Pass { result: fixed } => {
                let r = match (fixed, &state.parameters) {
                    (Some(v), _) => v.clone(),
                    (None, Some(t)) => self.eval_template(t, effective, vars, &cx)?,
                    (None, None) => effective.clone(),
                };
                let new_vars = self.eval_assign(state.assign.as_ref(), &r, vars, &cx)?;
                (Some(r), next_state(&state.transition), new_vars)
            }
            StateKind::Task(_) | StateKind::Parallel { .. } | StateKind::Map(_) => {
                match self.run_with_retries(state, effective, vars, &cx).await {
                    Ok(r) => {
                        let r = match &state.result_selector {
                            Some(t) => self.eval_template(t, &r, vars, &cx)?,
                            None => r,
                        };
                        let new_vars = self.eval_assign(state.assign.as_ref(), &r, vars, &cx)?;
                        (Some(r), next_state(&state.transition), new_vars)
                    }
                    Err(f) => {
                        let Some(catcher) = state
                            .catch
                            .iter()
                            .find(|c| error_matches(&c.error_equals, &f.error))
                        else {
                            // TaskFailed / ParallelStateFailed / MapStateFailed are recorded already.
                            return Err(f);
                        };
                        return self.catch(state, catcher, f, raw_input, vars, &cx);
                    }
                }
            }
        };

        let combined = match result {
            Some(r) => self.apply_result_path(&state.result_path, raw_input, r, &cx)?,
            None => effective_owned.unwrap_or(raw_input),
        };
        let out = self.apply_output_path(&state.output_path, combined, vars, &cx)?;
        check_size(&out, "state output")?;
        if let Some(Value::Object(m)) = new_vars {
            vars.extend(m);
        }
        self.event(
            format_args!("{ty}StateExited"),
            || json!({"name": state.name, "output": out}),
        );
        Ok(match next {
            Some(n) => Step::Next(n, out),
            None => Step::End(out),
        })
    }

    /// When a Wait state ends.
    fn wait_until(
        &self,
        w: &WaitFor,
        entered: DateTime<Utc>,
        effective: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<DateTime<Utc>, Failure> {
        Ok(match w {
            WaitFor::Seconds(s) => entered + chrono::Duration::seconds(*s as i64),
            WaitFor::Timestamp(t) => parse_timestamp(t)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(entered),
            WaitFor::SecondsPath(p) => {
                let v = self.resolve(p, effective, vars, cx);
                match v.as_ref().and_then(Value::as_i64) {
                    Some(n) if n >= 0 => entered + chrono::Duration::seconds(n),
                    _ => {
                        return Err(Failure::runtime(format!(
                            "{} The SecondsPath parameter does not reference a valid non-negative integer: {}",
                            cx.at(),
                            v.map(|v| v.to_string()).unwrap_or_else(|| "(missing)".into())
                        )))
                    }
                }
            }
            WaitFor::TimestampPath(p) => {
                let v = self.resolve(p, effective, vars, cx);
                match v.as_ref().and_then(Value::as_str).and_then(parse_timestamp) {
                    Some(t) => t.with_timezone(&Utc),
                    None => {
                        return Err(Failure::runtime(format!(
                            "{} The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {}",
                            cx.at(),
                            v.map(|v| v.to_string()).unwrap_or_else(|| "(missing)".into())
                        )))
                    }
                }
            }
        })
    }

    /// A Fail state's Error or Cause: literal, from a path, or from an intrinsic call.
    fn fail_field(
        &self,
        literal: &Option<String>,
        dynamic: &Option<Dynamic>,
        effective: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<String, Failure> {
        if let Some(s) = literal {
            return Ok(s.clone());
        }
        let lookup = |p: &Path| {
            self.resolve(p, effective, vars, cx).ok_or_else(|| {
                let at = cx.at();
                Failure::runtime(format!(
                    "{at} The path '{p}' could not be found in the input"
                ))
            })
        };
        let v = match dynamic {
            None => return Ok(String::new()),
            Some(Dynamic::Path(p)) => lookup(p)?,
            Some(Dynamic::Call(c)) => c.eval(&lookup)?,
        };
        match v {
            Value::String(s) => Ok(s),
            other => {
                let at = cx.at();
                Err(Failure::runtime(format!(
                    "{at} The value at the Fail state's path must be a string, got {other}"
                )))
            }
        }
    }

    fn catch<'s>(
        &self,
        state: &State,
        catcher: &'s Catcher,
        f: Failure,
        raw_input: Value,
        vars: &mut Vars,
        cx: &StateCx<'_>,
    ) -> Result<Step<'s>, Failure> {
        let error_output = f.to_error_output();
        let new_vars = self.eval_assign(catcher.assign.as_ref(), &error_output, vars, cx)?;
        let out = self.apply_result_path(&catcher.result_path, raw_input, error_output, cx)?;
        check_size(&out, "state output")?;
        if let Some(Value::Object(m)) = new_vars {
            vars.extend(m);
        }
        self.event(
            format_args!("{}StateExited", state.type_name()),
            || json!({"name": state.name, "output": out, "caught": {"error": f.error, "cause": f.cause}, "next": catcher.next}),
        );
        Ok(Step::Next(&catcher.next, out))
    }

    async fn run_with_retries(
        &self,
        state: &State,
        effective: &Value,
        vars: &Vars,
        outer: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        let mut counts = vec![0u32; state.retry.len()];
        let mut retry_count = 0u32;
        loop {
            let cx = StateCx {
                state_name: &state.name,
                entered_time: outer.entered_time,
                retry_count,
                item: None,
                task_token: matches!(state.kind, StateKind::Task(_))
                    .then(|| uuid::Uuid::new_v4().to_string()),
                entered_event: outer.entered_event,
            };
            let attempt = self.attempt(state, effective, vars, &cx).await;
            let f = match attempt {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            let Some(idx) = state
                .retry
                .iter()
                .position(|r| error_matches(&r.error_equals, &f.error))
            else {
                return Err(f);
            };
            let r: &Retrier = &state.retry[idx];
            if counts[idx] >= r.max_attempts {
                return Err(f);
            }
            let mut delay = r.interval_seconds * r.backoff_rate.powi(counts[idx] as i32);
            if let Some(max) = r.max_delay_seconds {
                delay = delay.min(max);
            }
            if r.jitter == Jitter::Full {
                use rand::{Rng, SeedableRng};
                let mut rng =
                    rand_chacha::ChaCha8Rng::seed_from_u64(uuid::Uuid::new_v4().as_u128() as u64);
                delay *= rng.random::<f64>();
            }
            counts[idx] += 1;
            retry_count += 1;
            self.event(
                "StateRetryScheduled",
                || json!({"name": state.name, "error": f.error, "cause": f.cause, "attempt": retry_count, "delaySeconds": delay}),
            );
            self.clock()
                .sleep(Duration::from_secs_f64(delay.max(0.0)))
                .await;
        }
    }

    async fn attempt(
        &self,
        state: &State,
        effective: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        // Without Parameters the effective input is read in place (copied only for a Task).
        let params = match &state.parameters {
            Some(t) => Cow::Owned(self.eval_template(t, effective, vars, cx)?),
            None => Cow::Borrowed(effective),
        };
        match &state.kind {
            StateKind::Task(spec) => {
                self.task(state, spec, params.into_owned(), effective, vars, cx)
                    .await
            }
            StateKind::Parallel { branches } => {
                self.event("ParallelStateStarted", || json!({"name": state.name}));
                let futs = branches
                    .iter()
                    .map(|b| self.run_scope(b, params.as_ref().clone(), vars.clone()));
                match futures_util::future::try_join_all(futs).await {
                    Ok(outs) => {
                        self.event("ParallelStateSucceeded", || json!({"name": state.name}));
                        Ok(Value::Array(outs))
                    }
                    Err(f) => {
                        self.event(
                            "ParallelStateFailed",
                            || json!({"name": state.name, "error": f.error, "cause": f.cause}),
                        );
                        Err(f)
                    }
                }
            }
            StateKind::Map(spec) => self.map(state, spec, &params, vars, cx).await,
            _ => Ok(params.into_owned()),
        }
    }

    async fn task(
        &self,
        state: &State,
        spec: &TaskSpec,
        params: Value,
        effective: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        check_size(&params, "task input")?;
        // A *SecondsPath must resolve to a positive integer; otherwise the fixed value applies.
        let seconds = |path: &Option<Path>, field: &str, fixed: Option<u64>| match path {
            Some(p) => match self
                .resolve(p, effective, vars, cx)
                .and_then(|v| v.as_u64())
            {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(Failure::runtime(format!(
                    "{} The {field} '{p}' does not reference a positive integer",
                    cx.at()
                ))),
            },
            None => Ok(fixed),
        };
        let timeout = seconds(
            &spec.timeout_seconds_path,
            "TimeoutSecondsPath",
            spec.timeout_seconds,
        )?;
        let heartbeat = seconds(
            &spec.heartbeat_seconds_path,
            "HeartbeatSecondsPath",
            spec.heartbeat_seconds,
        )?;
        self.event(
            "TaskScheduled",
            || json!({"name": state.name, "resource": spec.resource, "parameters": params, "timeoutInSeconds": timeout}),
        );
        self.event(
            "TaskStarted",
            || json!({"name": state.name, "resource": spec.resource}),
        );
        let started = self.clock().now();
        let fut = self.invoke(state, spec, params, cx, timeout, heartbeat);
        let timed_out = || {
            Failure::new(
                names::TIMEOUT,
                format!(
                    "The task '{}' did not finish within {} seconds",
                    state.name,
                    timeout.unwrap_or(0)
                ),
            )
        };
        let result = match timeout {
            Some(t) if !self.clock().is_virtual() => {
                match tokio::time::timeout(Duration::from_secs(t), fut).await {
                    Ok(r) => r,
                    Err(_) => Err(timed_out()),
                }
            }
            Some(t) => {
                let r = fut.await;
                if (self.clock().now() - started).num_milliseconds() > (t as i64) * 1000 {
                    Err(timed_out())
                } else {
                    r
                }
            }
            None => fut.await,
        };
        let result = result.and_then(|v| check_size(&v, "task result").map(|_| v));
        match &result {
            Ok(v) => self.event(
                "TaskSucceeded",
                || json!({"name": state.name, "resource": spec.resource, "output": v}),
            ),
            Err(f) if f.error == names::TIMEOUT || f.error == names::HEARTBEAT_TIMEOUT => self.event(
                "TaskTimedOut",
                || json!({"name": state.name, "resource": spec.resource, "error": f.error, "cause": f.cause}),
            ),
            Err(f) => self.event(
                "TaskFailed",
                || json!({"name": state.name, "resource": spec.resource, "error": f.error, "cause": f.cause}),
            ),
        }
        result
    }

    async fn invoke(
        &self,
        state: &State,
        spec: &TaskSpec,
        params: Value,
        cx: &StateCx<'_>,
        timeout_seconds: Option<u64>,
        heartbeat_seconds: Option<u64>,
    ) -> Result<Value, Failure> {
        if let Some(pattern) = spec.resource.strip_prefix(NESTED_PREFIX) {
            return self.nested(pattern, params).await;
        }
        let token = cx.task_token.clone().unwrap_or_default();
        let callbacks = self.engine.inner.callbacks.clone();
        // Register before dispatching: a handler may report back before it returns.
        let (resource, waiting) = match spec.resource.strip_suffix(WAIT_FOR_TASK_TOKEN) {
            Some(base) => (base.to_string(), Some(callbacks.register(&token))),
            None => (spec.resource.clone(), None),
        };
        let request = TaskRequest {
            resource,
            input: params,
            state_name: cx.state_name.to_string(),
            execution_arn: self.execution_arn.clone(),
            task_token: token,
            timeout: timeout_seconds.map(Duration::from_secs),
            clock: self.clock().clone(),
            callbacks,
        };
        let started = self.engine.inner.dispatcher.invoke(request).await;
        let Some(mut waiting) = waiting else {
            return started;
        };
        let submitted = started?;
        self.event(
            "TaskSubmitted",
            || json!({"name": state.name, "resource": spec.resource, "output": submitted}),
        );
        self.wait_for_callback(&mut waiting, timeout_seconds, heartbeat_seconds)
            .await
    }

    /// Waits for SendTaskSuccess/Failure, failing on a missed heartbeat or the timeout.
    async fn wait_for_callback(
        &self,
        waiting: &mut Waiting,
        timeout_seconds: Option<u64>,
        heartbeat_seconds: Option<u64>,
    ) -> Result<Value, Failure> {
        let clock = self.clock().clone();
        let deadline = timeout_seconds.map(|t| clock.now() + chrono::Duration::seconds(t as i64));
        loop {
            let until_deadline = deadline.map(|d| (d - clock.now()).to_std().unwrap_or_default());
            let heartbeat = heartbeat_seconds.map(Duration::from_secs);
            let (sleep_for, is_heartbeat) = match (until_deadline, heartbeat) {
                (Some(d), Some(h)) if h < d => (Some(h), true),
                (Some(d), _) => (Some(d), false),
                (None, Some(h)) => (Some(h), true),
                (None, None) => (None, false),
            };
            let timer = async {
                match sleep_for {
                    Some(d) => clock.sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                // A callback that already arrived wins over a timer that fires now.
                biased;
                cb = waiting.rx.recv() => match cb {
                    Some(TaskCallback::Success(v)) => return Ok(v),
                    Some(TaskCallback::Failure { error, cause }) => {
                        return Err(Failure::new(error, cause))
                    }
                    Some(TaskCallback::Heartbeat) => continue,
                    None => return Err(Failure::runtime("the task token was abandoned")),
                },
                _ = timer => {
                    return Err(if is_heartbeat {
                        Failure::new(
                            names::HEARTBEAT_TIMEOUT,
                            format!("No heartbeat for {} seconds", heartbeat_seconds.unwrap_or(0)),
                        )
                    } else {
                        Failure::new(
                            names::TIMEOUT,
                            format!("The task did not finish within {} seconds", timeout_seconds.unwrap_or(0)),
                        )
                    });
                }
            }
        }
    }

    async fn nested(&self, pattern: &str, params: Value) -> Result<Value, Failure> {
        let Some(arn) = params.get("StateMachineArn").and_then(Value::as_str) else {
            return Err(Failure::runtime(
                "The field 'StateMachineArn' is required by states:startExecution",
            ));
        };
        let Some(sm) = self.engine.lookup(arn) else {
            return Err(Failure::new(
                "StepFunctions.StateMachineDoesNotExistException",
                format!("State Machine Does Not Exist: '{arn}'"),
            ));
        };
        let input = match params.get("Input") {
            None => json!({}),
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                Failure::new(
                    "StepFunctions.InvalidExecutionInputException",
                    format!("Invalid State Machine Execution Input: {e}"),
                )
            })?,
            Some(v) => v.clone(),
        };
        let sm_name = arn.rsplit(':').next().unwrap_or(arn).to_string();
        let options = ExecutionOptions {
            name: params
                .get("Name")
                .and_then(Value::as_str)
                .map(str::to_string),
            state_machine_name: Some(sm_name),
            progress: self.progress.clone(),
            max_history_events: self.max_history_events,
            skip_history: !self.record_history,
        };
        let engine = self.engine.clone();
        if pattern.is_empty() {
            let start = self.clock().now();
            let input2 = input.clone();
            let exec_name = options
                .name
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let options = ExecutionOptions {
                name: Some(exec_name.clone()),
                ..options
            };
            let exec_arn = format!(
                "arn:aws:states:{}:{}:execution:{}:{exec_name}",
                engine.inner.region,
                engine.inner.account,
                options.state_machine_name.clone().unwrap_or_default()
            );
            tokio::spawn(async move {
                engine.run(&sm, input2, options).await;
            });
            return Ok(json!({"ExecutionArn": exec_arn, "StartDate": timestamp(start)}));
        }
        let exec = Box::pin(engine.run(&sm, input.clone(), options)).await;
        let as_v2 = pattern == ".sync:2";
        let mut out = json!({
            "ExecutionArn": exec.execution_arn,
            "Input": if as_v2 { input.clone() } else { Value::String(input.to_string()) },
            "InputDetails": {"Included": true},
            "Name": exec.execution_arn.rsplit(':').next().unwrap_or_default(),
            "StartDate": timestamp(exec.start_date),
            "StateMachineArn": arn,
            "Status": exec.status,
            "StopDate": timestamp(exec.stop_date),
        });
        match exec.status {
            ExecutionStatus::Succeeded => {
                let o = exec.output.unwrap_or(Value::Null);
                out["Output"] = if as_v2 {
                    o
                } else {
                    Value::String(o.to_string())
                };
                out["OutputDetails"] = json!({"Included": true});
                Ok(out)
            }
            _ => {
                out["Error"] = json!(exec.error);
                out["Cause"] = json!(exec.cause);
                Err(Failure::new(names::TASK_FAILED, out.to_string()))
            }
        }
    }

    async fn map(
        &self,
        state: &State,
        spec: &MapSpec,
        input: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        let distributed = spec.distributed.as_ref();
        let items = match distributed.and_then(|d| d.item_reader.as_ref()) {
            Some(reader) => self.read_items(reader, input, vars, cx).await?,
            None => match self.resolve(&spec.items_path, input, vars, cx) {
                Some(Value::Array(a)) => a,
                other => {
                    return Err(Failure::runtime(format!(
                        "{} The ItemsPath '{}' must reference a JSON array, got {}",
                        cx.at(),
                        spec.items_path,
                        other
                            .map(|v| truncate(&v))
                            .unwrap_or_else(|| "nothing".into())
                    )))
                }
            },
        };
        let read_num = |p: &Option<Path>, what: &str| -> Result<Option<f64>, Failure> {
            match p {
                None => Ok(None),
                Some(p) => match self.resolve(p, input, vars, cx).and_then(|v| v.as_f64()) {
                    Some(n) if n >= 0.0 => Ok(Some(n)),
                    _ => Err(Failure::runtime(format!(
                        "{} The {what} '{p}' does not reference a non-negative number",
                        cx.at()
                    ))),
                },
            }
        };
        let max_concurrency = read_num(&spec.max_concurrency_path, "MaxConcurrencyPath")?
            .map(|n| n as u64)
            .unwrap_or(spec.max_concurrency);
        let tol_count = read_num(
            &spec.tolerated_failure_count_path,
            "ToleratedFailureCountPath",
        )?
        .map(|n| n as u64)
        .or(spec.tolerated_failure_count);
        let tol_pct = read_num(
            &spec.tolerated_failure_percentage_path,
            "ToleratedFailurePercentagePath",
        )?
        .or(spec.tolerated_failure_percentage);
        // A Distributed Map tolerates no failure unless told otherwise: a failed child
        // execution fails the Map Run with States.ExceedToleratedFailureThreshold.
        let tol_count = match (tol_count, tol_pct, distributed) {
            (None, None, Some(_)) => Some(0),
            _ => tol_count,
        };
        let tolerant = tol_count.is_some() || tol_pct.is_some();

        let mut inputs = match &spec.item_selector {
            None => items,
            Some(t) => {
                let mut inputs = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let icx = StateCx {
                        state_name: cx.state_name,
                        entered_time: cx.entered_time,
                        retry_count: cx.retry_count,
                        item: Some((i, item)),
                        task_token: None,
                        entered_event: cx.entered_event,
                    };
                    inputs.push(self.eval_template(t, input, vars, &icx)?);
                }
                inputs
            }
        };
        if let Some(b) = distributed.and_then(|d| d.item_batcher.as_ref()) {
            let max_items = read_num(&b.max_items_per_batch_path, "MaxItemsPerBatchPath")?
                .map(|n| n as u64)
                .or(b.max_items_per_batch);
            let max_bytes = read_num(
                &b.max_input_bytes_per_batch_path,
                "MaxInputBytesPerBatchPath",
            )?
            .map(|n| n as u64)
            .or(b.max_input_bytes_per_batch);
            let batch_input = match &b.batch_input {
                Some(t) => Some(self.eval_template(t, input, vars, cx)?),
                None => None,
            };
            inputs = distributed::batches(
                inputs,
                max_items.filter(|n| *n > 0).map(|n| n as usize),
                max_bytes.filter(|n| *n > 0).map(|n| n as usize),
                batch_input.as_ref(),
            );
        }
        let total = inputs.len();
        self.event(
            "MapStateStarted",
            || json!({"name": state.name, "length": total}),
        );
        let map_run_id = uuid::Uuid::new_v4().to_string();
        let (arn_head, sm_name) = match self.execution_arn.split_once(":execution:") {
            Some((head, rest)) => (head, rest.split(':').next().unwrap_or_default()),
            None => ("arn:aws:states:us-east-1:123456789012", "StateMachine"),
        };
        let map_run_arn = format!("{arn_head}:mapRun:{sm_name}/{}:{map_run_id}", state.name);
        if distributed.is_some() {
            self.event("MapRunStarted", || json!({"mapRunArn": map_run_arn}));
        }
        let writer = distributed.and_then(|d| d.result_writer.as_ref());
        let kept_inputs = writer.map(|_| inputs.clone());
        let limit = if max_concurrency == 0 {
            total.max(1)
        } else {
            max_concurrency as usize
        };
        let processor = &*spec.processor;
        let mut stream = futures_util::stream::iter(inputs.into_iter().enumerate().map(
            |(i, item_input)| async move {
                self.event(
                    "MapIterationStarted",
                    || json!({"name": state.name, "index": i}),
                );
                let start = self.clock().now();
                let r = self.run_scope(processor, item_input, vars.clone()).await;
                let times = (start, self.clock().now());
                match &r {
                    Ok(_) => self.event(
                        "MapIterationSucceeded",
                        || json!({"name": state.name, "index": i}),
                    ),
                    Err(f) => self.event(
                        "MapIterationFailed",
                        || json!({"name": state.name, "index": i, "error": f.error, "cause": f.cause}),
                    ),
                }
                (i, r, times)
            },
        ))
        // Unordered, so a failing iteration ends the Map at once instead of waiting
        // for the iterations before it; outputs go back into their slots.
        .buffer_unordered(limit);
        let mut outputs: Vec<Value> = vec![Value::Null; total];
        let mut outcomes: Vec<Option<IterationOutcome>> = Vec::new();
        if writer.is_some() {
            outcomes.resize(total, None);
        }
        let mut failed = 0u64;
        while let Some((i, r, times)) = stream.next().await {
            if writer.is_some() {
                outcomes[i] = Some((r.clone(), times));
            }
            match r {
                Ok(v) => outputs[i] = v,
                Err(f) if !tolerant || f.error == names::RUNTIME => {
                    self.event(
                        "MapStateFailed",
                        || json!({"name": state.name, "error": f.error, "cause": f.cause}),
                    );
                    return Err(f);
                }
                Err(f) => {
                    failed += 1;
                    // Either threshold, when exceeded, fails the Map.
                    let over_count = tol_count.is_some_and(|c| failed > c);
                    let over_pct =
                        tol_pct.is_some_and(|p| failed as f64 * 100.0 / total as f64 > p);
                    if over_count || over_pct {
                        let f = Failure::new(
                            names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                            format!(
                                "The specified tolerated failure threshold was exceeded: {failed} of {total} iterations failed"
                            ),
                        );
                        if distributed.is_some() {
                            self.event(
                                "MapRunFailed",
                                || json!({"error": f.error, "cause": f.cause}),
                            );
                        }
                        // AWS still exports the children that finished.
                        if let (Some(w), Some(inputs)) = (writer, kept_inputs.clone()) {
                            let records = self.child_records(
                                state,
                                &map_run_id,
                                inputs,
                                std::mem::take(&mut outcomes),
                            );
                            self.write_results(
                                w,
                                input,
                                vars,
                                cx,
                                &map_run_arn,
                                &map_run_id,
                                &records,
                            )
                            .await?;
                        }
                        self.event(
                            "MapStateFailed",
                            || json!({"name": state.name, "error": f.error, "cause": f.cause}),
                        );
                        return Err(f);
                    }
                    outputs[i] = f.to_error_output();
                }
            }
        }
        drop(stream);
        if distributed.is_some() {
            self.event("MapRunSucceeded", || json!({}));
        }
        let output = match (writer, kept_inputs) {
            (Some(w), Some(inputs)) => {
                let records = self.child_records(state, &map_run_id, inputs, outcomes);
                self.write_results(w, input, vars, cx, &map_run_arn, &map_run_id, &records)
                    .await?
            }
            _ => Value::Array(outputs),
        };
        self.event("MapStateSucceeded", || json!({"name": state.name}));
        Ok(output)
    }

    /// The S3 call an ItemReader or ResultWriter resource stands for, through the dispatcher.
    async fn s3_call(
        &self,
        resource: &str,
        input: Value,
        cx: &StateCx<'_>,
    ) -> Result<Value, Failure> {
        let request = TaskRequest {
            resource: s3_sdk_resource(resource),
            input,
            state_name: cx.state_name.to_string(),
            execution_arn: self.execution_arn.clone(),
            task_token: String::new(),
            timeout: None,
            clock: self.clock().clone(),
            callbacks: self.engine.inner.callbacks.clone(),
        };
        self.engine.inner.dispatcher.invoke(request).await
    }

    async fn read_items(
        &self,
        reader: &ItemReaderSpec,
        input: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
    ) -> Result<Vec<Value>, Failure> {
        let mut params = match &reader.parameters {
            Some(t) => self.eval_template(t, input, vars, cx)?,
            None => json!({}),
        };
        let max = match &reader.max_items_path {
            Some(p) => Some(
                self.resolve(p, input, vars, cx)
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| {
                        Failure::runtime(format!(
                            "{} The MaxItemsPath '{p}' does not reference a non-negative integer",
                            cx.at()
                        ))
                    })?,
            ),
            None => reader.max_items,
        }
        .filter(|m| *m > 0)
        .map(|m| m as usize);
        let failed = |f: Failure| {
            Failure::new(
                names::ITEM_READER_FAILED,
                format!(
                    "The ItemReader could not read the items: {}: {}",
                    f.error, f.cause
                ),
            )
        };
        let mut items = Vec::new();
        if reader.input == ItemInput::Listing {
            loop {
                let page = self
                    .s3_call(&reader.resource, params.clone(), cx)
                    .await
                    .map_err(failed)?;
                items.extend(
                    page["Contents"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(distributed::listing_item),
                );
                let next = page["NextContinuationToken"].as_str();
                match next {
                    Some(t) if max.is_none_or(|m| items.len() < m) => {
                        params["ContinuationToken"] = json!(t);
                    }
                    _ => break,
                }
            }
        } else {
            let object = self
                .s3_call(&reader.resource, params, cx)
                .await
                .map_err(failed)?;
            let body = object["Body"].as_str().unwrap_or_default();
            items = distributed::parse_items(body, reader.input, reader.csv_headers.as_deref())
                .map_err(|e| Failure::new(names::ITEM_READER_FAILED, e))?;
        }
        if let Some(m) = max {
            items.truncate(m);
        }
        Ok(items)
    }

    fn child_records(
        &self,
        state: &State,
        map_run_id: &str,
        inputs: Vec<Value>,
        outcomes: Vec<Option<IterationOutcome>>,
    ) -> Vec<ChildRecord> {
        let (arn_head, sm_name) = match self.execution_arn.split_once(":execution:") {
            Some((head, rest)) => (head, rest.split(':').next().unwrap_or_default()),
            None => ("arn:aws:states:us-east-1:123456789012", "StateMachine"),
        };
        inputs
            .into_iter()
            .zip(outcomes)
            .filter_map(|(input, outcome)| {
                let (outcome, (start, stop)) = outcome?;
                let name = uuid::Uuid::new_v4().to_string();
                Some(ChildRecord {
                    execution_arn: format!("{arn_head}:execution:{sm_name}/{}:{name}", state.name),
                    name,
                    state_machine_arn: format!(
                        "{arn_head}:stateMachine:{sm_name}/{}:{map_run_id}",
                        state.name
                    ),
                    input,
                    outcome,
                    start: timestamp(start),
                    stop: timestamp(stop),
                })
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_results(
        &self,
        writer: &ResultWriterSpec,
        input: &Value,
        vars: &Vars,
        cx: &StateCx<'_>,
        map_run_arn: &str,
        map_run_id: &str,
        records: &[ChildRecord],
    ) -> Result<Value, Failure> {
        let params = match &writer.parameters {
            Some(t) => self.eval_template(t, input, vars, cx)?,
            None => json!({}),
        };
        let Some(bucket) = params["Bucket"].as_str() else {
            return Err(Failure::new(
                names::RESULT_WRITER_FAILED,
                "The ResultWriter's Parameters need a string 'Bucket'",
            ));
        };
        let prefix = params["Prefix"].as_str().unwrap_or_default();
        let (files, output) =
            distributed::result_files(bucket, prefix, map_run_arn, map_run_id, records);
        for (key, body) in files {
            self.s3_call(
                &writer.resource,
                json!({"Bucket": bucket, "Key": key, "Body": body}),
                cx,
            )
            .await
            .map_err(|f| {
                Failure::new(
                    names::RESULT_WRITER_FAILED,
                    format!(
                        "The ResultWriter could not write s3://{bucket}/{key}: {}: {}",
                        f.error, f.cause
                    ),
                )
            })?;
        }
        Ok(output)
    }
}

fn truncate(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 256 {
        let mut end = 256;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// AWS's history event detail object for `ty`, built from our flat details.
fn aws_event_details(ty: &str, d: Value, region: &str) -> Option<(String, Value)> {
    let text = |v: Option<&Value>| Value::String(v.map(Value::to_string).unwrap_or_default());
    let untruncated = json!({"truncated": false});
    let field = |k: &str| d.get(k).cloned().unwrap_or(Value::Null);
    let (service, action) = match d.get("resource").and_then(Value::as_str) {
        Some(r) => match r.strip_prefix("arn:aws:states:::") {
            Some(rest) => {
                // `aws-sdk:dynamodb:putItem` is resourceType `aws-sdk:dynamodb`, resource `putItem`.
                let split = if rest.starts_with("aws-sdk:") {
                    rest.rsplit_once(':')
                } else {
                    rest.split_once(':')
                };
                let (svc, act) = split.unwrap_or((rest, ""));
                (svc.to_string(), act.to_string())
            }
            None => ("lambda".to_string(), r.to_string()),
        },
        None => (String::new(), String::new()),
    };
    let task = |mut extra: Map<String, Value>| {
        extra.insert("resourceType".into(), Value::String(service.clone()));
        extra.insert("resource".into(), Value::String(action.clone()));
        Value::Object(extra)
    };
    let err = || {
        let mut m = Map::new();
        m.insert("error".into(), field("error"));
        m.insert("cause".into(), field("cause"));
        m
    };
    let (key, value) = match ty {
        "ExecutionStarted" => (
            "executionStartedEventDetails",
            json!({"input": text(d.get("input")), "inputDetails": untruncated, "stateMachineArn": field("stateMachineArn")}),
        ),
        "ExecutionSucceeded" => (
            "executionSucceededEventDetails",
            json!({"output": text(d.get("output")), "outputDetails": untruncated}),
        ),
        "ExecutionFailed" => ("executionFailedEventDetails", Value::Object(err())),
        "ExecutionTimedOut" => ("executionTimedOutEventDetails", Value::Object(err())),
        "TaskScheduled" => {
            let mut m = Map::new();
            m.insert("region".into(), Value::String(region.to_string()));
            m.insert("parameters".into(), text(d.get("parameters")));
            if let Some(t) = d.get("timeoutInSeconds").filter(|t| !t.is_null()) {
                m.insert("timeoutInSeconds".into(), t.clone());
            }
            ("taskScheduledEventDetails", task(m))
        }
        "TaskStarted" => ("taskStartedEventDetails", task(Map::new())),
        "TaskSucceeded" => {
            let mut m = Map::new();
            m.insert("output".into(), text(d.get("output")));
            m.insert("outputDetails".into(), untruncated);
            ("taskSucceededEventDetails", task(m))
        }
        "TaskFailed" => ("taskFailedEventDetails", task(err())),
        "TaskTimedOut" => ("taskTimedOutEventDetails", task(err())),
        "MapStateStarted" => (
            "mapStateStartedEventDetails",
            json!({"length": field("length")}),
        ),
        "MapIterationStarted" | "MapIterationSucceeded" | "MapIterationFailed" => {
            let key = match ty {
                "MapIterationStarted" => "mapIterationStartedEventDetails",
                "MapIterationSucceeded" => "mapIterationSucceededEventDetails",
                _ => "mapIterationFailedEventDetails",
            };
            (key, json!({"name": field("name"), "index": field("index")}))
        }
        "StateRetryScheduled" => ("stateRetryScheduledEventDetails", d),
        "MapRunStarted" => ("mapRunStartedEventDetails", d),
        "MapRunFailed" => ("mapRunFailedEventDetails", Value::Object(err())),
        t if t.ends_with("StateEntered") => (
            "stateEnteredEventDetails",
            json!({"name": field("name"), "input": text(d.get("input")), "inputDetails": untruncated}),
        ),
        t if t.ends_with("StateExited") => (
            "stateExitedEventDetails",
            json!({"name": field("name"), "output": text(d.get("output")), "outputDetails": untruncated}),
        ),
        _ => return None,
    };
    Some((key.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_is_the_length_serde_json_writes() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(9),
            json!(10),
            json!(-1),
            json!(-10),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(-0.001),
            json!(1e300),
            json!(""),
            json!("plain"),
            json!("quote \" backslash \\ tab \t nl \n cr \r bs \u{8} ff \u{c} nul \u{0} us \u{1f} del \u{7f}"),
            json!("non-ASCII: é ü 😀"),
            json!([]),
            json!({}),
            json!([1, "a", null, [], {}]),
            json!({"k\"ey": {"nested": [1, 2.25, {"x": false}]}, "": "", "\u{1}": 3}),
        ];
        for v in values {
            assert_eq!(
                json_len(&v),
                serde_json::to_string(&v).unwrap().len(),
                "{v}"
            );
        }
    }
}
