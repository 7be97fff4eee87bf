//! # bourse-persist
//!
//! Stores and ships the journal of sequenced inputs: the write-ahead log on a shared file mapping with cache-line
//! flushes, snapshots of the engine, recovery, and the mirror to a hot standby.
//!
//! ```text
//!   pipeline core: Input ──▶ Wal::append ──▶ mapping (64-byte records) ──▶ Engine::apply ──▶ outputs held
//!                                 │                                                          │
//!                                 ▼ dax: clwb+sfence          msync: aux thread msync        ▼
//!                            CommitIndex::publish_local ◀─────────────────────────── released once
//!                            (mirror: publish_mirrored)                               committed() >= seq
//! ```
//!
//! - [`wal`]: records ([`wal::record`]: one per input, whole cache lines, CRC32C, body-first/length-last writes),
//!   preallocated segment files ([`wal::segment`]), the writer and group-commit thread ([`wal::writer`]), and the
//!   reader that finds the end of the log and tells a torn tail from damage ([`wal::scan`]).
//! - [`commit`]: the commit index, the gate for releasing outputs, combining local and mirrored durability.
//! - [`snapshot`]: engine snapshots, written atomically, taken by a replaying reader so the writer never pauses.
//! - [`recovery`]: newest valid snapshot + WAL replay through `Engine::apply`, torn-tail truncation; the replayed
//!   events can be observed to rebuild derived state such as the market-data feed.
//! - [`workload`]: a seeded input generator for crash tests and benchmarks.
//! - `sys`: the only unsafe code — mmap, msync, posix_fallocate, clwb/clflushopt/clflush/sfence.
//!
//! Durability modes and what this host can do are reported, never silently changed ([`wal::WalStatus`]): on a
//! filesystem without DAX (ext4, tmpfs) `MAP_SYNC` is refused, and `dax` mode then runs with its flushes but reports
//! `durable_on_this_host = false`; `msync` is the durable mode there.
#![deny(unsafe_code)]

pub mod commit;
pub mod error;
pub mod recovery;
pub mod snapshot;
pub mod sys;
pub mod wal;
pub mod workload;

pub use commit::{AckPolicy, CommitIndex};
pub use error::WalError;
pub use recovery::{recover, recover_with, Observe, Recovery, RecoveryError, RecoveryOptions};
pub use wal::{DurabilityMode, Wal, WalConfig, WalStatus};

pub mod mirror;
