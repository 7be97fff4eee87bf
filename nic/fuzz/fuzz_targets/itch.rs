//! ITCH decoder; a decoded message re-encodes to bytes that decode to the same message (reserved bytes are
//! normalised on emit, so byte equality is not expected).
#![no_main]
use bourse_nic::wire::itch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = itch::Message::parse(data) {
        let mut buf = [0u8; 64];
        let n = m.emit(&mut buf).expect("a parsed message fits 64 bytes");
        assert_eq!(n, data.len());
        assert_eq!(itch::Message::parse(&buf[..n]).ok(), Some(m));
    }
});
