//! Ethernet frame classifier on arbitrary bytes.
#![no_main]
use std::net::Ipv4Addr;

use bourse_nic::wire::ethernet::Address;
use bourse_nic::wire::frame::{classify, Classified, Local};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let local = Local {
        mac: Address([2, 0, 0, 0, 0, 2]),
        ip: Ipv4Addr::new(10, 0, 0, 2),
        port: None,
    };
    if let Classified::Udp { payload, .. } = classify(data, &local) {
        assert!(payload.end <= data.len() && payload.start <= payload.end);
    }
});
