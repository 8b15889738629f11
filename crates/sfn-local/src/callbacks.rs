//! Task tokens for the `.waitForTaskToken` pattern: whoever holds the token
//! reports success, failure or a heartbeat (SendTaskSuccess / SendTaskFailure /
//! SendTaskHeartbeat).

use crate::error::Error;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub enum TaskCallback {
    Success(Value),
    Failure { error: String, cause: String },
    Heartbeat,
}

/// The tokens of the tasks now waiting for a callback. Cheap to clone.
#[derive(Clone, Default)]
pub struct TaskCallbacks {
    waiting: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<TaskCallback>>>>,
}

impl std::fmt::Debug for TaskCallbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskCallbacks").finish_non_exhaustive()
    }
}

impl TaskCallbacks {
    pub fn send_success(&self, token: &str, output: Value) -> Result<(), Error> {
        self.send(token, TaskCallback::Success(output), true)
    }

    pub fn send_failure(&self, token: &str, error: &str, cause: &str) -> Result<(), Error> {
        self.send(
            token,
            TaskCallback::Failure {
                error: error.to_string(),
                cause: cause.to_string(),
            },
            true,
        )
    }

    pub fn send_heartbeat(&self, token: &str) -> Result<(), Error> {
        self.send(token, TaskCallback::Heartbeat, false)
    }

    fn send(&self, token: &str, cb: TaskCallback, last: bool) -> Result<(), Error> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let sent = match waiting.get(token) {
            Some(tx) => tx.send(cb).is_ok(),
            None => false,
        };
        if !sent || last {
            waiting.remove(token);
        }
        if sent {
            Ok(())
        } else {
            Err(Error::TaskDoesNotExist(token.to_string()))
        }
    }

    pub(crate) fn register(&self, token: &str) -> Waiting {
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_string(), tx);
        Waiting {
            callbacks: self.clone(),
            token: token.to_string(),
            rx,
        }
    }
}

/// A registered token; forgets the token when dropped.
pub(crate) struct Waiting {
    callbacks: TaskCallbacks,
    token: String,
    pub(crate) rx: mpsc::UnboundedReceiver<TaskCallback>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.callbacks
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
    }
}
