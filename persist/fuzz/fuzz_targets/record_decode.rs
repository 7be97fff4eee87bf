//! The record decoder on arbitrary bytes: never panics; anything it accepts re-encodes to the same bytes.
#![no_main]

use bourse_persist::wal::record::{decode, encode, RECORD_BYTES_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = decode(data) {
        let mut buf = [0u8; RECORD_BYTES_MAX];
        let n = encode(&r.input, r.epoch, &mut buf);
        assert_eq!(n, r.length);
        assert_eq!(&buf[..n], &data[..n], "decode accepted bytes that do not re-encode identically");
    }
});
