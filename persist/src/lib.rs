//! # bourse-persist
//!
//! Stores and ships the journal of sequenced inputs: the write-ahead log on a shared file mapping with cache-line
//! flushes, snapshots of the engine, recovery, and the mirror to a hot standby.
#![deny(unsafe_code)]
