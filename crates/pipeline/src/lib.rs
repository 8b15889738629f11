//! ferry's data plane (DESIGN.md sections 3, 6 and 8): extract rows from PostgreSQL, map them to
//! DynamoDB items, encode, compress and store them, digest both sides for verification, and make
//! the sample dataset that rehearsals and tests migrate.
//!
//! - [`sample`]: the deterministic rates & availability dataset (`lipsdb` plus N
//!   `dailydatadb-partition-NN` databases), loaded with `COPY ... FROM STDIN`.

pub mod sample;
