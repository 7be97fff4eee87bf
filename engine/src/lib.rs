//! # bourse-engine
//!
//! The deterministic core of the appliance: an order book per symbol with price-time priority, pre-trade risk
//! with fund and share locking, stop orders and circuit breakers. It is a pure state machine:
//!
//! ```text
//!   Input { seq, timestamp, command } ──▶ Engine::apply ──▶ EventSink::event(&Event) × n
//! ```
//!
//! Nothing in here reads a clock, spawns a thread, touches a file or a socket. Time arrives with each input, so the
//! same inputs produce the same events bit for bit, which is what lets the write-ahead log replay a crash and a hot
//! standby follow its primary.
//!
//! ## Layout
//!
//! Everything is allocated in [`Engine::new`] from a [`Capacity`]; `apply` never allocates.
//!
//! - `slab`: every order in one `Vec<Order>`, `u32` handles, a free stack; `OrderRef = generation << 32 | handle`.
//! - `ladder`: per symbol and side a direct-indexed array of price levels (intrusive FIFO + aggregate quantity)
//!   with a two-level 64-ary occupancy bitmap for best / next-best in a couple of bit scans. Stop books reuse it,
//!   indexed by stop price.
//! - `refs`: (session, UserRefNum) → handle, open addressing with backward-shift deletion.
//! - `risk`: cash and share locks per account; `breaker`: price bands and the market-wide index.
//! - `book`: entry checks, matching, stops, halt queues, cancel and replace (its module notes list the rules).
//! - `controls`: a firm's mass cancel and order-entry switch over its own session.
//! - `snapshot`, `invariants`: state encoding with a validating decoder, and the full invariant check.
#![forbid(unsafe_code)]
#![deny(clippy::disallowed_methods, clippy::disallowed_types, clippy::disallowed_macros)]

mod book;
mod breaker;
pub mod capacity;
pub mod command;
mod controls;
pub mod engine;
pub mod event;
mod invariants;
mod ladder;
mod refs;
mod risk;
mod slab;
mod snapshot;

pub use capacity::Capacity;
pub use command::*;
pub use engine::*;
pub use event::*;
