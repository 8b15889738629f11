//! ferry's integration tests: one binary, real PostgreSQL and the local AWS emulator, found or
//! started by the harness (`ferry_tests`). Each test works in its own database or table.

mod api;
mod api_records;
mod api_served;
mod bootstrap;
mod cli;
mod definitions;
mod infra;
mod migration;
mod sample_data;
mod sfn_cli;
mod source_tls;
mod state_store;
mod verify;
mod workflow;
