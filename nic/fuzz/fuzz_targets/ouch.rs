//! OUCH inbound and outbound decoders; a decoded message re-encodes to the same bytes' meaning.
#![no_main]
use bourse_nic::wire::ouch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ouch::Inbound::parse(data) {
        let mut buf = [0u8; 512];
        if let Ok(n) = m.emit(&mut buf) {
            assert_eq!(ouch::Inbound::parse(&buf[..n]).ok(), Some(m));
        }
    }
    let _ = ouch::Outbound::parse(data);
});
