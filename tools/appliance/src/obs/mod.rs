//! Latency observability on the hot path: TSC clock, per-stage histograms, interval logs, stats block, metrics.
//!
//! The pipeline core only ever touches two things here: its [`tsc::Clock`] (a raw `rdtsc` per stage) and its
//! [`stages::StageRecorder`] (six saturating histogram records per input and one relaxed flag load per burst),
//! plus the traffic counters of the [`statsblock::StatsWriter`] (a load and a store each). Everything that
//! formats, compresses, writes files or talks to sockets — [`hlog`], [`metrics`] — runs on the aux core or in the
//! operator tools (`bourse hist`, `bourse stats`; the plots and reports live with those programs, in `bourse`).
//!
//! ```text
//!  pipeline core                         aux core                                  operator
//!  ─────────────                         ────────                                  ────────
//!  Clock::now() at each Stage
//!  StageRecorder::record(stamps) ──swap──▶ StageExporter::try_collect()
//!  StageRecorder::poll_swap()              ├─ HlogWriter::write_set()  ──▶ .hlog ──▶ bourse hist
//!                                          └─ StatsWriter::set_stages_from()
//!  StatsWriter::add_rx/add_tx/…  ──────────▶ /dev/shm/bourse-stats-<name> ──────▶ bourse stats
//!                                          MetricsServer::poll(block)  ──▶ GET /metrics ──▶ Prometheus
//! ```
//!
//! Unsafe code lives only in `sys` (the TSC instructions, `clock_gettime`, `mmap`).
#![deny(unsafe_code)]

pub mod hlog;
pub mod metrics;
pub mod stages;
pub mod statsblock;
#[allow(unsafe_code)]
mod sys;
pub mod tsc;
