//! `bourse bench wal` and `bourse bench replay`.
//!
//! `wal` measures append + flush per record against the same run's floor: a bare loop of a 64-byte copy, the
//! flush instruction in force and `sfence`, into the same mapping (the unused slots the appends will then fill —
//! it copies zero lines into zero slots, so the log is unchanged). In `msync` mode it also paces appends at
//! `--rate` and measures commit latency (append → commit index covers it) with a watcher thread.
//!
//! `replay` writes a log of `--records` seeded inputs, then times a decode-only scan (decode + CRC) and a full
//! recovery (decode + CRC + `Engine::apply`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_engine::Input;
use bourse_persist::sys::page_bytes;
use bourse_persist::wal::segment::SEGMENT_HEADER_BYTES;
use bourse_persist::wal::{parse_flush, scan_log, ScanOptions, Visit};
use bourse_persist::workload::Workload;
use bourse_persist::{recover, AckPolicy, CommitIndex, DurabilityMode, RecoveryOptions, Wal, WalConfig};
use hdrhistogram::Histogram;

#[derive(clap::Args, Debug)]
pub struct WalArgs {
    /// dax, msync or none.
    #[arg(long, default_value = "dax")]
    pub mode: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Records per sfence (the burst's last record is the durability point).
    #[arg(long, default_value_t = 1)]
    pub burst: u32,
    /// msync mode: offered append rate in records/s (0 = as fast as possible).
    #[arg(long, default_value_t = 2_000_000)]
    pub rate: u64,
    /// Force a flush instruction (clwb, clflushopt, clflush).
    #[arg(long)]
    pub flush: Option<String>,
    /// Directory for the scratch log (a fresh subdirectory is created and removed).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    #[arg(long)]
    pub json: bool,
}

fn scratch(dir: &Option<std::path::PathBuf>, name: &str) -> std::path::PathBuf {
    let base = dir.clone().unwrap_or_else(std::env::temp_dir);
    base.join(format!("bourse-bench-{name}-{}", std::process::id()))
}

fn inputs(n: u64) -> Vec<Input> {
    let mut w = Workload::new(42);
    (1..=n).map(|s| w.next(s)).collect()
}

/// Segment big enough for `records` two-line records plus the header, so the run never rotates.
fn segment_bytes_for(records: u64) -> u64 {
    let page = page_bytes() as u64;
    let want = SEGMENT_HEADER_BYTES as u64 + records * 128;
    want.div_ceil(page) * page
}

pub fn run(args: WalArgs) -> anyhow::Result<()> {
    let mode = DurabilityMode::parse(&args.mode).with_context(|| format!("unknown mode {}", args.mode))?;
    let dir = scratch(&args.dir, "wal");
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = WalConfig::new(&dir);
    cfg.mode = mode;
    cfg.segment_bytes = segment_bytes_for(args.records);
    if let Some(f) = &args.flush {
        cfg.flush = Some(parse_flush(f).with_context(|| format!("unknown flush instruction {f}"))?);
    }
    let batch = inputs(args.records);
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(cfg, 1, Arc::clone(&commit))?;
    let status = wal.status().clone();
    let burst = args.burst.max(1) as usize;

    let (floor_ns, ns_per_record, records_per_s, hist, allocations) = if mode == DurabilityMode::Msync {
        let (per_s, hist, allocs) = run_msync(&mut wal, &commit, &batch, burst, args.rate)?;
        (f64::NAN, 1e9 / per_s, per_s, hist, allocs)
    } else {
        let (floor, floor_lines) = wal.flush_floor(args.records, args.burst);
        let floor_ns = floor.as_nanos() as f64 / floor_lines.max(1) as f64;
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let allocs_before = crate::alloc_count::allocations();
        let start = Instant::now();
        for chunk in batch.chunks(burst) {
            let t0 = Instant::now();
            for input in chunk {
                wal.append_unfenced(input)?;
            }
            wal.fence();
            // Commit latency in dax mode: from the burst's first append to its fence.
            let _ = hist.record((t0.elapsed().as_nanos() as u64).max(1));
        }
        let elapsed = start.elapsed();
        let allocs = crate::alloc_count::allocations() - allocs_before;
        let ns = elapsed.as_nanos() as f64 / batch.len() as f64;
        (floor_ns, ns, 1e9 / ns, hist, allocs)
    };
    wal.close()?;
    let _ = std::fs::remove_dir_all(&dir);

    let p50 = hist.value_at_quantile(0.50) as f64 / 1e3;
    let p99 = hist.value_at_quantile(0.99) as f64 / 1e3;
    let v = serde_json::json!({
        "mode": mode.name(),
        "durable_on_this_host": status.durable_on_this_host,
        "mapping": status.map_name(),
        "flush": status.flush.name(),
        "records": args.records,
        "burst": burst,
        "ns_per_record": round2(ns_per_record),
        "floor_ns": if floor_ns.is_nan() { serde_json::Value::Null } else { round2(floor_ns).into() },
        "ratio_to_floor": if floor_ns.is_nan() { serde_json::Value::Null } else { round2(ns_per_record / floor_ns).into() },
        "records_per_s": records_per_s.round(),
        "commit_p50_us": round2(p50),
        "commit_p99_us": round2(p99),
        "commit_max_us": round2(hist.max() as f64 / 1e3),
        "allocations_in_loop": allocations,
    });
    if args.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Paced appends with a watcher thread measuring append → committed latency. Returns durable records/s.
fn run_msync(
    wal: &mut Wal,
    commit: &Arc<CommitIndex>,
    batch: &[Input],
    burst: usize,
    rate: u64,
) -> anyhow::Result<(f64, Histogram<u64>, u64)> {
    let n = batch.len();
    let appended_at: Arc<Vec<AtomicU64>> = Arc::new((0..=n).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let origin = Instant::now();
    let watcher = {
        let appended_at = Arc::clone(&appended_at);
        let commit = Arc::clone(commit);
        let done = Arc::clone(&done);
        std::thread::spawn(move || -> anyhow::Result<(Histogram<u64>, Instant)> {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            let mut seen = 0u64;
            let mut last_at = Instant::now();
            while seen < n as u64 {
                let c = commit.committed();
                if c > seen {
                    let now = origin.elapsed().as_nanos() as u64;
                    for seq in seen + 1..=c {
                        let t = appended_at[seq as usize].load(Ordering::Acquire);
                        let _ = hist.record(now.saturating_sub(t).max(1));
                    }
                    seen = c;
                    last_at = Instant::now();
                } else if done.load(Ordering::Acquire) && origin.elapsed() > Duration::from_secs(600) {
                    anyhow::bail!("commit index stuck at {c}");
                } else {
                    std::thread::yield_now();
                }
            }
            Ok((hist, last_at))
        })
    };
    let interval_ns = if rate == 0 { 0.0 } else { 1e9 / rate as f64 * burst as f64 };
    let allocs_before = crate::alloc_count::allocations();
    let start = Instant::now();
    for (k, chunk) in batch.chunks(burst).enumerate() {
        if interval_ns > 0.0 {
            let due = Duration::from_nanos((k as f64 * interval_ns) as u64);
            while start.elapsed() < due {
                std::hint::spin_loop();
            }
        }
        let now = origin.elapsed().as_nanos() as u64;
        for input in chunk {
            appended_at[input.seq as usize].store(now, Ordering::Release);
            wal.append_unfenced(input)?;
        }
        wal.fence();
    }
    let allocs = crate::alloc_count::allocations() - allocs_before;
    done.store(true, Ordering::Release);
    let (hist, last_commit) = watcher.join().map_err(|_| anyhow::anyhow!("watcher panicked"))??;
    let durable_s = last_commit.duration_since(start).as_secs_f64();
    Ok((n as f64 / durable_s, hist, allocs))
}

pub fn run_replay(args: ReplayArgs) -> anyhow::Result<()> {
    let dir = scratch(&args.dir, "replay");
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = WalConfig::new(&dir);
    cfg.mode = DurabilityMode::None;
    cfg.segment_bytes = 64 << 20;
    let batch = inputs(args.records);
    {
        let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
        let mut wal = Wal::create(cfg, 1, commit)?;
        let bar = bourse_appliance::progress::bar(batch.len() as u64, "bench replay: writing the log", "records");
        for (i, input) in batch.iter().enumerate() {
            wal.append_unfenced(input)?;
            if i % 4096 == 0 {
                bar.set_position(i as u64);
            }
        }
        bar.finish_and_clear();
        wal.close()?;
    }
    drop(batch);
    // Decode only: CRC + field validation of every record, no engine. The spinner redraws from its own thread, so
    // the measured loops stay as they are.
    let spinner = bourse_appliance::progress::spinner("bench replay: decoding, then replaying through the engine");
    let start = Instant::now();
    let mut decoded = 0u64;
    let mut fold = 0u64;
    scan_log(&dir, ScanOptions::default(), |_, _, r| {
        decoded += 1;
        fold = fold.wrapping_add(r.input.timestamp);
        Visit::Continue
    })?;
    let decode_s = start.elapsed().as_secs_f64();
    // Full recovery through Engine::apply.
    let start = Instant::now();
    let mut opts = RecoveryOptions::new(&dir, crate::walcmd::CAPACITY);
    opts.truncate = false;
    let r = recover(&opts)?;
    let replay_s = start.elapsed().as_secs_f64();
    spinner.finish_and_clear();
    let _ = std::fs::remove_dir_all(&dir);
    let v = serde_json::json!({
        "records": r.replayed,
        "records_per_s": (r.replayed as f64 / replay_s).round(),
        "decode_records_per_s": (decoded as f64 / decode_s).round(),
        "replay_ms": round2(replay_s * 1e3),
        "decode_ms": round2(decode_s * 1e3),
        "state_hash": format!("{:016x}", r.state.state_hash()),
        "decode_fold": fold,
    });
    if args.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
