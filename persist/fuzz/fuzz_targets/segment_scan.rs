//! The recovery scan over arbitrary segment bytes: a valid header (so the scan reaches the records) followed by the
//! fuzzer's bytes, and the raw bytes as a whole segment. Never panics; returns a typed end or fault.
#![no_main]

use bourse_persist::wal::scan::{scan_segment, Visit};
use bourse_persist::wal::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scan_segment(data, None, false, |_, _| Visit::Continue);
    let len = SEGMENT_HEADER_BYTES + data.len();
    let mut image = vec![0u8; len];
    let first_seq = 1 + u64::from(data.first().copied().unwrap_or(0));
    let header = SegmentHeader::new(1, first_seq, len as u64, 0);
    let header = bytemuck_bytes(&header);
    image[..header.len()].copy_from_slice(header);
    image[SEGMENT_HEADER_BYTES..].copy_from_slice(data);
    for live in [false, true] {
        let mut last = None;
        let r = scan_segment(&image, None, live, |_, rec| {
            if let Some(prev) = last {
                assert_eq!(rec.input.seq, prev + 1, "the scan passed a gap");
            }
            last = Some(rec.input.seq);
            Visit::Continue
        });
        let _ = r;
    }
});

fn bytemuck_bytes(h: &SegmentHeader) -> &[u8] {
    bourse_persist::wal::segment::header_bytes(h)
}
