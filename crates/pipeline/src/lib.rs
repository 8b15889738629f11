//! ferry's data plane (DESIGN.md sections 3, 6 and 8): extract rows from PostgreSQL, map them to
//! DynamoDB items, encode, compress and store them, digest both sides for verification, and make
//! the sample dataset that rehearsals and tests migrate.
//!
//! - [`value`]: the item model shared by both sides (rows mapped to items, DynamoDB JSON parsed).
//! - [`item`]: rows to items per the spec and `docs/type-mapping.md`.
//! - [`digest`]: canonical encoding, item hashes and bucket digests, for verification.
//! - [`encode`]: DynamoDB JSON lines through GZIP or ZSTD.
//! - [`source`]: source connection settings (URL, `sslmode`, CA bundle) and the one `connect`.
//! - [`sink`]: the `ObjectSink` port, with local-directory and S3 adapters.
//! - [`plan`]: chunks of ctid block ranges, the chunk list.
//! - [`extract`]: one chunk from PostgreSQL COPY to an object and its manifest.
//! - [`bench`]: `ferry bench extract`, baseline `psql \copy | gzip -1` against ferry.
//! - [`verify`]: export and source digests, the diff, the verification report.
//! - [`sample`]: the deterministic rates & availability dataset (`lipsdb` plus N
//!   `dailydatadb-partition-NN` databases), loaded with `COPY ... FROM STDIN`.

pub mod bench;
pub mod digest;
pub mod encode;
pub mod extract;
pub mod item;
pub mod plan;
pub mod sample;
pub mod sink;
pub mod source;
mod swar;
pub mod value;
pub mod verify;
