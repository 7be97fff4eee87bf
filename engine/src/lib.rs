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
#![forbid(unsafe_code)]

pub mod capacity;
pub mod command;
pub mod engine;
pub mod event;

pub use capacity::Capacity;
pub use command::*;
pub use engine::*;
pub use event::*;
