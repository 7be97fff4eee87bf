//! Primary and standby threads mirroring 100k records over TCP on loopback; prints commit latency (append to
//! standby-durable ack seen by the primary). No timing assertions: these VMs are shared and noisy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bourse_persist::mirror::tcp::TcpTransport;
use bourse_persist::mirror::{Crc32cRecords, MirrorConfig, Position, Primary, RecordFormat, Standby, StandbyHost, Validated};

const RECORDS: u64 = 100_000;
const RECORD_BYTES: usize = 64;
const REGION_BYTES: usize = RECORDS as usize * RECORD_BYTES + 4096;
/// Records appended but not yet acknowledged, at most: a steady offered load rather than an unbounded burst.
const OUTSTANDING_MAX: u64 = 16;

struct Host {
    applied: Position,
    applied_count: u64,
}

impl StandbyHost for Host {
    fn on_validated(&mut self, batch: Validated<'_>) {
        assert_eq!(batch.from, self.applied);
        for (i, rec) in batch.bytes.chunks_exact(RECORD_BYTES).enumerate() {
            assert_eq!(Crc32cRecords.check(rec).unwrap().seq, batch.from.seq + 1 + i as u64);
        }
        self.applied_count += batch.to.seq - batch.from.seq;
        self.applied = batch.to;
    }
    // `none`-mode durability: applied is durable, so latency measures the mirror itself.
    fn durable(&mut self) -> Position {
        self.applied
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[test]
fn tcp_loopback_mirrors_100k_records() {
    let mut config = MirrorConfig::new(REGION_BYTES as u64);
    // Two spinning threads share two vCPUs with everything else on the machine: a scheduler time slice (4 ms at
    // HZ=250) can silence a side for longer than the 5 ms default. Failover is tested in simulation instead.
    config.promote_after_silence_ns = 10_000_000_000;
    let mut p_transport = TcpTransport::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = p_transport.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    let standby_stop = stop.clone();
    let standby = std::thread::spawn(move || {
        let mut transport = TcpTransport::connect(addr);
        let mut region = vec![0u8; REGION_BYTES];
        let mut standby = Standby::new(config, Crc32cRecords, 1, Position::default());
        let mut host = Host { applied: Position::default(), applied_count: 0 };
        let start = Instant::now();
        while !standby_stop.load(Ordering::Acquire) {
            let now = start.elapsed().as_nanos() as u64;
            let before = host.applied;
            let ev = standby.tick(now, &mut region, &mut transport, &mut host).unwrap();
            assert!(ev.is_none(), "no failover expected: {ev:?}");
            if host.applied == before {
                // Idle: let the primary's thread have the core if they share one.
                std::thread::yield_now();
            }
        }
        (region, host.applied_count, standby.stats())
    });

    let mut region = vec![0u8; REGION_BYTES];
    let mut primary = Primary::new(config, Crc32cRecords, 1, Position::default());
    let gate = primary.gate();
    let start = Instant::now();
    let mut appended_ns = vec![0u64; RECORDS as usize + 1];
    let mut latencies_ns = Vec::with_capacity(RECORDS as usize);
    let mut tail = Position::default();
    let mut committed = 0u64;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while committed < RECORDS {
        assert!(Instant::now() < deadline, "mirror stalled at {committed}: {:?}", primary.stats());
        assert!(!standby.is_finished(), "standby thread ended early");
        let now = start.elapsed().as_nanos() as u64;
        if tail.seq < RECORDS && tail.seq - committed < OUTSTANDING_MAX {
            let seq = tail.seq + 1;
            let off = tail.offset as usize;
            let n = Crc32cRecords::encode(&mut region[off..], 1, 1, seq, now, &seq.to_le_bytes());
            tail = Position { seq, offset: (off + n) as u64 };
            appended_ns[seq as usize] = now;
            primary.on_append(tail);
        }
        let work = primary.tick(now, &mut region, &mut p_transport).unwrap();
        if work == 0 {
            std::thread::yield_now();
        }
        let acked = gate.mirrored_seq();
        if acked > committed {
            let seen = start.elapsed().as_nanos() as u64;
            for seq in committed + 1..=acked {
                latencies_ns.push(seen - appended_ns[seq as usize]);
            }
            committed = acked;
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Release);
    let (s_region, applied, s_stats) = standby.join().unwrap();
    assert_eq!(applied, RECORDS, "every record applied exactly once on the standby");
    let n = tail.offset as usize;
    assert!(region[..n] == s_region[..n], "standby region must equal the primary's up to the acked offset");
    assert_eq!(latencies_ns.len(), RECORDS as usize);
    latencies_ns.sort_unstable();
    eprintln!(
        "mirror tcp loopback: {RECORDS} records in {:.3} s ({:.0} records/s, {OUTSTANDING_MAX} outstanding max); \
         commit latency p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us; primary {:?}; \
         standby {:?}",
        elapsed.as_secs_f64(),
        RECORDS as f64 / elapsed.as_secs_f64(),
        pct(&latencies_ns, 0.50) as f64 / 1e3,
        pct(&latencies_ns, 0.90) as f64 / 1e3,
        pct(&latencies_ns, 0.99) as f64 / 1e3,
        pct(&latencies_ns, 0.999) as f64 / 1e3,
        *latencies_ns.last().unwrap() as f64 / 1e3,
        primary.stats(),
        s_stats,
    );
}
