//! MoldUDP64 downstream packets (with ITCH inside) and request packets.
#![no_main]
use bourse_nic::wire::{itch, moldudp64};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = moldudp64::Packet::new_checked(data) {
        for m in p.messages() {
            let _ = itch::Message::parse(m);
        }
    }
    let _ = moldudp64::Request::parse(data);
});
