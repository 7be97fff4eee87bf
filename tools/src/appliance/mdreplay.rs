//! Rebuilding the market-data feed from the journal at start-up.
//!
//! Every ITCH message the appliance publishes comes from one engine event of one journaled input, through
//! [`Translator::on_event`], stamped with that input's journaled timestamp; nothing else is published (no System
//! Event or Stock Directory at start-up). The MoldUDP64 numbering is therefore a function of the journal, and
//! replaying the recovered inputs' events through the same translation gives every message the number and the
//! bytes the node that journaled it gave it. A restarted node, or a promoted standby whose WAL holds the old
//! primary's records, continues the sequence where the old node's committed messages ended, and its
//! retransmission ring answers for messages published before the switch.
//!
//! ```text
//!   recover_with ─▶ (input, event) ─▶ Translator::on_event ─┬─▶ OUCH: discarded (sessions start afresh)
//!                                                           └─▶ ITCH: MdFeed::push_recovered (numbered and
//!                                                                     stored, never queued for transmission)
//! ```
//!
//! Two things outside the journal shape the bytes: the configured symbol names (ITCH carries the stock name, the
//! journal only its locate code), so both nodes of a pair and a restarted node must list `[[symbols]]` alike; and
//! `[market_data] session`, which both nodes must share. A snapshot cuts the rebuild short: the events of inputs
//! folded into it are gone, so the numbering cannot be rebuilt and [`snapshot_warning`] says so.

use bourse_engine::{Event, Input};

use super::mdfeed::MdFeed;
use crate::translate::Translator;

/// Replays one recovered input's event into the feed, exactly as the live pipeline's sink would have, minus
/// transmission.
pub fn replay_event(translator: &mut Translator, md: &mut MdFeed, input: &Input, event: &Event) {
    translator.on_event(event, input.timestamp, &mut |_, _, _| {}, &mut |msg| md.push_recovered(msg));
}

/// The start-up warning when recovery began at a snapshot (`snapshot_seq`): the feed restarted its numbering.
pub fn snapshot_warning(md: &MdFeed, snapshot_seq: u64) -> String {
    format!(
        "bourse: WARNING: recovery started from the snapshot at seq {snapshot_seq}, so the market data published \
         for inputs 1..={snapshot_seq} cannot be rebuilt: MoldUDP64 session {} restarts its numbering (next message \
         {}), receivers see the sequence go backwards, and nothing published before the restart can be \
         retransmitted. Recover without the snapshot (remove it; the log is kept) to continue the numbering.",
        md.session().as_str(),
        md.next_sequence()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bourse_engine::{Command, NewOrder, OrderKind, Side, TimeInForce};

    use crate::appliance::setup::build_pipeline;
    use crate::demo::{demo_config, TempDir};
    use crate::obs::tsc::Clock;

    /// Resting bids, crossing IOC sells, cancels and a tick: adds, executions, deletes, cancels.
    fn orders(n: u32) -> Vec<Command> {
        let mut out = Vec::new();
        for i in 0..n {
            let (session, account, symbol) = ((i % 2) as u16, i % 2, ((i / 2) % 2) as u16);
            let side = if i % 3 == 2 { Side::Sell } else { Side::Buy };
            // AAPL at 150.00 and MSFT at 400.00 (ticks of 0.01 are 100): sells cross the bids below them.
            let reference = if symbol == 0 { 1_500_000 } else { 4_000_000 };
            let price = if side == Side::Sell { reference - 200 } else { reference - (i % 5) * 100 };
            out.push(Command::NewOrder(NewOrder {
                session,
                user_ref: i + 1,
                account,
                symbol,
                side,
                kind: OrderKind::Limit,
                tif: if side == Side::Sell { TimeInForce::Ioc } else { TimeInForce::Day },
                post_only: false,
                qty: 10 + i % 7,
                price,
                stop_price: 0,
            }));
        }
        out.push(Command::Tick);
        out
    }

    fn stored(md: &super::MdFeed) -> Vec<Vec<u8>> {
        (1..md.next_sequence()).map(|s| md.stored(s).expect("retained").to_vec()).collect()
    }

    #[test]
    fn replaying_the_journal_rebuilds_the_live_feed() {
        let wal = TempDir::new("bourse-mdreplay").unwrap();
        let config = demo_config(wal.path(), "msync", None).unwrap();
        let clock = Clock::calibrate(Duration::from_millis(5));
        let (live_next, live) = {
            let (mut p, _exporter, started) = build_pipeline(&config, clock).unwrap();
            assert!(started.genesis_inputs > 0);
            for command in orders(300) {
                p.submit(command).unwrap();
            }
            assert!(p.engine.orders_open() > 0, "some bids rest");
            assert!(p.commit.wait_for(p.last_seq(), Duration::from_secs(10)));
            p.wal.close().unwrap();
            (p.md.next_sequence(), stored(&p.md))
        };
        for kind in [b'A', b'E'] {
            assert!(live.iter().any(|m| m[0] == kind), "ITCH {:?} was published", kind as char);
        }

        let (p, _exporter, started) = build_pipeline(&config, clock).unwrap();
        assert_eq!((started.genesis_inputs, started.snapshot_seq), (0, None));
        assert_eq!(p.md.next_sequence(), live_next);
        assert_eq!(stored(&p.md), live);
        // Everything rebuilt is committed: the retransmission server may answer for all of it, and none is resent.
        assert_eq!(p.md.released_through(), live_next - 1);
        assert_eq!(p.waiting(), (0, 0));
        let last_seq = p.last_seq();
        p.wal.close().unwrap();

        // From a snapshot the events before it are gone: the start-up says the numbering restarts.
        bourse_persist::snapshot::take_from_log(wal.path(), config.engine_capacity(), None, 1).unwrap().unwrap();
        let (p, _exporter, started) = build_pipeline(&config, clock).unwrap();
        assert_eq!(started.snapshot_seq, Some(last_seq));
        assert_eq!(p.md.next_sequence(), 1);
        let warning = super::snapshot_warning(&p.md, last_seq);
        assert!(warning.contains("WARNING") && warning.contains("restarts its numbering"), "{warning}");
    }
}
