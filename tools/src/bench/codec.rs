//! `bourse bench wire-codec [--json]`: nanoseconds per decode and encode of each wire message, the minimum of
//! several timed runs (the minimum is the least noisy figure on a shared VM). Inputs go through `black_box`
//! so the compiler cannot fold the work away. Target: ≤ 10 ns for each.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use bourse_nic::wire::alpha::{ClOrdId, SessionName, Symbol};
use bourse_nic::wire::{itch, moldudp64, ouch, soup};

#[derive(clap::Args, Debug)]
pub struct CodecArgs {
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Iterations per timed run.
    #[arg(long, default_value_t = 200_000)]
    pub iterations: u64,
    /// Timed runs per message; the minimum is reported.
    #[arg(long, default_value_t = 7)]
    pub runs: u32,
}

fn time(iterations: u64, runs: u32, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..iterations {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / iterations as f64);
    }
    best
}

fn enter_bytes() -> Vec<u8> {
    let m = ouch::Inbound::EnterOrder(ouch::EnterOrder {
        user_ref: 1,
        side: ouch::Side::Buy,
        quantity: 100,
        symbol: Symbol::new("AAPL").unwrap_or_default(),
        price: 1_800_300,
        time_in_force: ouch::tif::DAY,
        display: b'Y',
        capacity: b'A',
        intermarket_sweep: b'N',
        cross_type: b'N',
        cl_ord_id: ClOrdId::new("CL1").unwrap_or_default(),
        options: ouch::Options::default(),
    });
    let mut b = vec![0; m.buffer_len()];
    let _ = m.emit(&mut b);
    b
}

/// Measures every codec; returns (decode, encode) maps in ns per message.
pub fn measure(
    iterations: u64,
    runs: u32,
) -> (BTreeMap<&'static str, f64>, BTreeMap<&'static str, f64>) {
    let mut decode = BTreeMap::new();
    let mut encode = BTreeMap::new();
    let enter = enter_bytes();
    decode.insert(
        "ouch_enter_order",
        time(iterations, runs, || {
            let _ = black_box(ouch::Inbound::parse(black_box(&enter)));
        }),
    );
    let mut soup_pkt = vec![0u8, enter.len() as u8 + 1, b'U'];
    soup_pkt.extend_from_slice(&enter);
    decode.insert(
        "soup_unsequenced_ouch_enter",
        time(iterations, runs, || {
            for p in soup::Packets::new(black_box(&soup_pkt)) {
                if let Ok(soup::Repr::UnsequencedData(d)) = p {
                    let _ = black_box(ouch::Inbound::parse(d));
                }
            }
        }),
    );
    let header = itch::Header {
        locate: 1,
        tracking: 0,
        timestamp: 34_200_000_000_000,
    };
    let add = itch::Message::AddOrder(itch::AddOrder {
        header,
        order_ref: 12345,
        side: itch::Side::Buy,
        shares: 100,
        stock: Symbol::new("AAPL").unwrap_or_default(),
        price: 1_800_300,
        attribution: None,
    });
    let exec = itch::Message::OrderExecuted(itch::OrderExecuted {
        header,
        order_ref: 12345,
        shares: 100,
        match_number: 9,
        with_price: None,
    });
    let del = itch::Message::OrderDelete(itch::OrderDelete {
        header,
        order_ref: 12345,
    });
    let mut buf = [0u8; 1500];
    for (name, m) in [
        ("itch_add_order", add),
        ("itch_order_executed", exec),
        ("itch_order_delete", del),
    ] {
        encode.insert(
            name,
            time(iterations, runs, || {
                let _ = black_box(black_box(&m).emit(&mut buf));
            }),
        );
    }
    let mut add_bytes = [0u8; 36];
    let _ = add.emit(&mut add_bytes);
    decode.insert(
        "itch_add_order",
        time(iterations, runs, || {
            let _ = black_box(itch::Message::parse(black_box(&add_bytes)));
        }),
    );
    let acc = ouch::Outbound::OrderAccepted(ouch::OrderAccepted {
        timestamp: 1,
        user_ref: 1,
        side: ouch::Side::Buy,
        quantity: 100,
        symbol: Symbol::new("AAPL").unwrap_or_default(),
        price: 1_800_300,
        time_in_force: b'0',
        display: b'Y',
        order_ref: 7,
        capacity: b'A',
        intermarket_sweep: b'N',
        cross_type: b'N',
        order_state: b'L',
        cl_ord_id: ClOrdId::new("CL1").unwrap_or_default(),
        options: ouch::Options::default(),
    });
    let ex = ouch::Outbound::OrderExecuted {
        timestamp: 1,
        user_ref: 1,
        quantity: 100,
        price: 1,
        liquidity: b'A',
        match_number: 3,
    };
    for (name, m) in [("ouch_order_accepted", acc), ("ouch_order_executed", ex)] {
        encode.insert(
            name,
            time(iterations, runs, || {
                let _ = black_box(black_box(&m).emit(&mut buf));
            }),
        );
    }
    let session = SessionName::new("BOURSE01").unwrap_or_default();
    let mut mbuf = [0u8; 1500];
    encode.insert(
        "moldudp64_pack_add_order",
        time(iterations, runs, || {
            if let Ok(mut pk) = moldudp64::Packer::new(&mut mbuf, session, 1472) {
                pk.begin(black_box(1));
                let _ = pk.push_with(36, |b| {
                    let _ = add.emit(b);
                });
                let _ = black_box(pk.finish().len());
            }
        }),
    );
    (decode, encode)
}

pub fn run(args: CodecArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.iterations > 0 && args.runs > 0,
        "iterations and runs must be positive"
    );
    let (decode, encode) = measure(args.iterations, args.runs);
    if args.json {
        let v = serde_json::json!({
            "ouch_enter_order_decode_ns": decode.get("ouch_enter_order"),
            "itch_add_order_encode_ns": encode.get("itch_add_order"),
            "decode_ns": decode,
            "encode_ns": encode,
            "iterations": args.iterations,
            "runs": args.runs,
        });
        println!("{v}");
    } else {
        println!("{:<34} {:>10}", "message", "ns (min)");
        for (k, v) in &decode {
            println!("{:<34} {:>10.2}", format!("decode {k}"), v);
        }
        for (k, v) in &encode {
            println!("{:<34} {:>10.2}", format!("encode {k}"), v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Small run so the benchmark cannot rot; no timing is asserted.
    #[test]
    fn small_run_measures_every_codec() {
        let (d, e) = super::measure(100, 1);
        assert!(d.contains_key("ouch_enter_order") && e.contains_key("itch_add_order"));
        assert!(e.contains_key("moldudp64_pack_add_order"));
        assert!(d
            .values()
            .chain(e.values())
            .all(|v| v.is_finite() && *v >= 0.0));
    }
}
