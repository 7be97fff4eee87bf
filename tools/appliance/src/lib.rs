//! # bourse-appliance
//!
//! The product: everything the exchange appliance runs, and nothing the operator tools only draw with.
//! `bourse-engine` matches, `bourse-nic` moves and decodes packets, `bourse-persist` journals and mirrors; this
//! crate joins them into a matching appliance. The `bourse` crate (tools/) holds the programs that start it
//! (`bourse run`, `bourse standby`, `bourse demo`) and the load generator, benchmarks and operator tools around it.
//!
//! ```text
//!  backend ─▶ session ─▶ translate ─▶ engine ─▶ journal (appliance::store) ─▶ replies (appliance::outq)
//!   (nic)    (SoupBinTCP  (OUCH ⇄       │                                    └▶ ITCH (appliance::mdfeed)
//!             logins,     commands)     └─ mirror to the standby (appliance::mirror ⇄ standby)
//!             sequencing)
//! ```
//!
//! * [`appliance`] — the pipeline and its serve loop: [`appliance::serve`] (run a [`config::Config`] until a stop
//!   flag), [`appliance::run`] (`bourse run`), [`appliance::setup::build_pipeline`], preflight checks
//!   ([`appliance::preflight`], `bourse config check`), the retransmission server and snapshots.
//! * [`session`] — the order-entry session layer over SoupBinTCP: logins, sequence numbers, heartbeats, limits.
//! * [`translate`] — OUCH messages to engine commands and engine events back to OUCH replies.
//! * [`standby`] — the hot standby: follows a primary's mirror stream and takes over (`bourse standby`).
//! * [`config`] — the TOML configuration (`bourse.toml`), parsed and validated.
//! * [`obs`] — hot-path observability: TSC clock, stage histograms, `.hlog` writer, stats block, `/metrics`.
//! * [`demo`] — the embedded demo configuration and [`demo::InProcess`], the appliance on a thread.
//! * [`progress`] — progress bars on stderr for long work, drawn only on a terminal.
//!
//! This crate does not depend on `plotters`; plots and reports are in `bourse`.
//!
//! Unsafe code is denied except at two seams: `obs::sys` (the TSC instructions, `clock_gettime`, `mmap`) and
//! `appliance::preflight::is_root` (`geteuid`).
#![deny(unsafe_code)]

pub mod appliance;
pub mod config;
pub mod demo;
pub mod obs;
pub mod order_refs;
pub mod progress;
pub mod session;
pub mod standby;
pub mod translate;
pub mod witness;
