//! # bourse (tools)
//!
//! The programs. The appliance itself (sessions, translation, pipeline, serve loop, standby, configuration and
//! the hot-path observability) is the `bourse-appliance` crate; this crate holds the `bourse` binary's
//! subcommands around it: the load generator ([`load`]), the benchmarks ([`bench`]), `bourse demo` ([`demo`]),
//! the histogram tools and their plots ([`hist`], [`obs`], the only users of `plotters`), the WAL tools
//! ([`walcmd`]), `bourse stats` ([`stats`]), child `bourse` processes ([`node`], the demo's pair and the tests'), and test helpers ([`alloc_count`], [`netns`]).
//!
//! Unsafe code is denied except at five seams: [`alloc_count`] (a `GlobalAlloc`), [`netns`] (`setns`), [`node`]
//! (`pre_exec` hooks and `kill`), `load::client::sys` (`setsockopt`) and `bench::mirror_verbs` (lending a buffer
//! to the RDMA NIC).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod alloc_count;
pub mod bench;
pub mod demo;
pub mod etcd;
pub mod hist;
pub mod load;
#[allow(unsafe_code)]
pub mod netns;
pub mod node;
pub mod obs;
pub mod stats;
pub mod walcmd;
