//! `bourse bench …`: every speed or memory goal of the project is a benchmark here, never a timing assertion in a
//! test. Each prints a human table, or with `--json` exactly one JSON object on stdout.

pub mod clock;
pub mod codec;
pub mod engine;
pub mod gbm;
pub mod failover;
pub mod ledger_lag;
pub mod mirror;
pub mod naive;
#[cfg(feature = "rdma")]
pub mod mirror_verbs;
pub mod recovery;
pub mod wal;
pub mod wire;
