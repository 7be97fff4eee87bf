//! Helpers shared by the mirror integration tests (`mirror_wal.rs` on the simulated network, `mirror_verbs.rs`
//! on a real RDMA device). Use with `mod support;` (the folder form keeps cargo from treating it as a test).
#![allow(dead_code)]

use bourse_engine::Input;
use bourse_persist::mirror::{Position, StandbyHost, Validated};
use bourse_persist::wal::decode;

/// A standby host that decodes every validated record and keeps its input: what the tests compare with what the
/// primary's WAL holds. It checks that batches are contiguous and never repeated, and calls applied durable.
pub struct Host {
    pub applied: Position,
    pub inputs: Vec<Input>,
}

impl StandbyHost for Host {
    fn on_validated(&mut self, batch: Validated<'_>) {
        assert_eq!(batch.from, self.applied, "batches are contiguous and never repeated");
        let mut at = 0;
        while at < batch.bytes.len() {
            let r = decode(&batch.bytes[at..]).expect("validated bytes decode");
            self.inputs.push(r.input);
            at += r.length;
        }
        assert_eq!(batch.from.offset + at as u64, batch.to.offset);
        self.applied = batch.to;
    }
    fn durable(&mut self) -> Position {
        self.applied
    }
}
