//! # bourse (tools)
//!
//! The programs that wire the crates together. `bourse-engine` matches, `bourse-nic` moves and decodes packets,
//! `bourse-persist` journals and mirrors; this crate holds the appliance's pipeline, the load generator, the
//! benchmarks and the operator tools, and the glue between wire protocols and engine commands.

pub mod alloc_count;
pub mod appliance;
pub mod bench;
pub mod config;
pub mod demo;
pub mod hist;
pub mod load;
pub mod netns;
pub mod obs;
pub mod standby;
pub mod stats;
pub mod translate;
pub mod walcmd;
