//! The library half of the `ferry` command: what integration tests drive in-process.

pub mod local_run;
