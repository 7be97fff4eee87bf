//! SoupBinTCP framing of a datagram, and OUCH inside its data packets.
#![no_main]
use bourse_nic::wire::{ouch, soup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for p in soup::Packets::new(data).take(1024) {
        if let Ok(soup::Repr::UnsequencedData(d) | soup::Repr::SequencedData(d)) = p {
            let _ = ouch::Inbound::parse(d);
        }
    }
});
