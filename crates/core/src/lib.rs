//! ferry's domain: the migration spec, the run model, the error catalogue, and the ports
//! (traits) through which handlers reach the outside world, with their AWS adapters.

pub mod error;
pub mod run;
pub mod spec;
pub mod state;

pub use error::{Error, ErrorCode, Result};
pub use run::{RunId, RunStatus};
pub use spec::{FieldError, Spec, SpecErrors};
