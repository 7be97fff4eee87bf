//! `bourse wal …`: operator tools for the write-ahead log, plus two hidden subcommands the crash test drives.
//!
//! - `info`: what this host can do (mapping, flush instruction, durability per mode), the segments, the seq range,
//!   a torn tail if any, records per kind, the snapshots.
//! - `dump`: records, human-readable (`--from`, `--count`).
//! - `verify`: exits non-zero naming the file and offset of the first problem (a torn tail included); with
//!   `--repair` it zeroes a torn tail first.
//! - `replay`: recovers with the engine capacities of `--config` (else of the journal's snapshot) and prints the
//!   state hash and counts; with `--repair` it zeroes a torn tail.
//! - `drive` (hidden): seeded inputs appended behind a WAL as fast as group commit allows; prints each seq once
//!   committed. `check` (hidden): recovers and compares with a fresh engine fed the same seeded inputs.
//!
//! Everything is read-only unless `--repair` is given (and `drive`, which writes a log, and `check`, which recovers
//! the crash test's): the tools work beside a running appliance, and say when the log they read is live, that is,
//! when a writer holds the directory's lock ([`DirLock`]) and its last record may still be being written. Only a
//! tool holding that lock changes a file, so it never zeroes a live writer's record in flight: `--repair` beside a
//! running appliance is refused, naming it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bourse_engine::{Capacity, Engine, NullSink};
use bourse_persist::recovery::truncate_torn_tail;
use bourse_persist::snapshot;
use bourse_persist::wal::record::RecordKind;
use bourse_persist::wal::{probe, scan_log, DirLock, LockState, ScanOptions, Visit};
use bourse_persist::workload::Workload;
use bourse_persist::{recover, AckPolicy, CommitIndex, DurabilityMode, RecoveryOptions, Wal, WalConfig};

#[derive(clap::Subcommand, Debug)]
pub enum WalCmd {
    /// Host capabilities, segments, seq range, torn tail, records per kind, snapshots.
    Info(DirArgs),
    /// Print records human-readably.
    Dump(DumpArgs),
    /// Check every segment and snapshot; non-zero exit at the first problem. Read-only unless --repair.
    Verify(VerifyArgs),
    /// Recover: newest valid snapshot + log replay; prints the state hash and counts. Read-only unless --repair.
    Replay(ReplayCmdArgs),
    /// Crash-test driver: append seeded inputs, print each seq once committed.
    #[command(hide = true)]
    Drive(DriveArgs),
    /// Crash-test checker: recover and compare with a fresh engine fed the same seeded inputs.
    #[command(hide = true)]
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
pub struct DirArgs {
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// Take the directory's lock (refused while an appliance holds it) and zero a torn tail before checking.
    #[arg(long)]
    pub repair: bool,
}

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// First seq to print.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Records to print.
    #[arg(long, default_value_t = 100)]
    pub count: u64,
}

#[derive(clap::Args, Debug)]
pub struct ReplayCmdArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// The appliance's configuration file: the engine is built with its capacities. Without it, the capacities of
    /// the journal's newest valid snapshot are used, and a journal without one is refused.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Take the directory's lock (refused while an appliance holds it) and zero a torn tail. Without it the log is
    /// only read and a torn tail is reported and left in place.
    #[arg(long)]
    pub repair: bool,
    /// Ignore snapshots and replay the whole log.
    #[arg(long)]
    pub no_snapshots: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DriveArgs {
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub seed: u64,
    /// dax, msync or none.
    #[arg(long, default_value = "msync")]
    pub mode: String,
    #[arg(long, default_value_t = 1 << 20)]
    pub segment_bytes: u64,
    /// Inputs appended between commit waits.
    #[arg(long, default_value_t = 64)]
    pub batch: u64,
    /// Stop after this many inputs (0 = until killed).
    #[arg(long, default_value_t = 0)]
    pub records: u64,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub seed: u64,
    /// Highest seq the driver saw committed: it must be recovered.
    #[arg(long)]
    pub committed: u64,
}

/// The capacity the crash-test driver and checker build engines with (the driver's workload fits it).
pub const CAPACITY: Capacity = Capacity::SMALL;

pub fn run(cmd: WalCmd) -> anyhow::Result<()> {
    match cmd {
        WalCmd::Info(a) => info(&a.dir),
        WalCmd::Dump(a) => dump(&a),
        WalCmd::Verify(a) => verify(&a),
        WalCmd::Replay(a) => replay(&a),
        WalCmd::Drive(a) => drive(&a),
        WalCmd::Check(a) => check(&a),
    }
}

fn info(dir: &Path) -> anyhow::Result<()> {
    println!("directory: {}", dir.display());
    println!("writer: {}", live_note(dir)?.as_deref().unwrap_or("none (no process holds the directory's lock)"));
    for mode in [DurabilityMode::Dax, DurabilityMode::Msync] {
        let s = probe(dir, mode).with_context(|| format!("probing mode {}", mode.name()))?;
        println!(
            "mode {:5}: mapping {}, flush {}, durable_on_this_host = {}{}",
            mode.name(),
            s.map_name(),
            s.flush.name(),
            s.durable_on_this_host,
            s.map_sync_refusal.map(|r| format!(" (MAP_SYNC refused: {r}; use msync here)")).unwrap_or_default()
        );
    }
    let summary = scan_log(dir, ScanOptions::default(), |_, _, _| Visit::Continue)?;
    println!("segments: {}", summary.segments.len());
    for s in &summary.segments {
        println!(
            "  {}  first_seq {}  last_seq {}  records {}  epoch {}  {} bytes, records end at offset {}",
            s.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            s.first_seq,
            s.last_seq.map_or("-".into(), |v| v.to_string()),
            s.records,
            s.epoch,
            s.size_bytes,
            s.end_offset
        );
    }
    match (summary.first_seq, summary.last_seq) {
        (Some(f), Some(l)) => println!("seq range: {f}..={l} ({} records)", summary.records),
        _ => println!("seq range: empty"),
    }
    match &summary.torn {
        Some(t) => println!(
            "torn tail: {} offset {} (seq {}): {}",
            t.path.display(),
            t.offset,
            t.seq,
            t.reason
        ),
        None => println!("torn tail: none"),
    }
    println!("records per kind:");
    for kind in RecordKind::ALL {
        let n = summary.per_kind[kind.index()];
        if n > 0 {
            println!("  {:20} {n}", kind.name());
        }
    }
    let snaps = snapshot::list_snapshots(dir)?;
    println!("snapshots: {}", snaps.len());
    for (seq, path) in snaps {
        let state = match snapshot::read_snapshot(&path) {
            Ok((_, payload)) => format!("ok, {} bytes", payload.len()),
            Err(e) => format!("BAD: {e}"),
        };
        println!("  seq {seq}: {} ({state})", path.display());
    }
    Ok(())
}

fn dump(a: &DumpArgs) -> anyhow::Result<()> {
    if let Some(note) = live_note(&a.dir)? {
        eprintln!("note: {note}");
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut printed = 0u64;
    let mut write_err = None;
    let opts = ScanOptions { from_seq: a.from, live: false };
    let summary = scan_log(&a.dir, opts, |path, offset, r| {
        if printed >= a.count {
            return Visit::Stop;
        }
        printed += 1;
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let line = writeln!(
            out,
            "seq {} ts {} epoch {} {:18} {}@{} {:?}",
            r.input.seq,
            r.input.timestamp,
            r.epoch,
            r.kind.name(),
            file,
            offset,
            r.input.command
        );
        if let Err(e) = line {
            write_err = Some(e);
            return Visit::Stop;
        }
        Visit::Continue
    })?;
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
        return Ok(());
    }
    if let Some(t) = summary.torn {
        writeln!(out, "torn tail: {} offset {} (seq {}): {}", t.path.display(), t.offset, t.seq, t.reason)?;
    }
    Ok(())
}

/// Whether a writer holds `dir`, as a sentence for the output: `Some` when the log may be live.
fn live_note(dir: &Path) -> anyhow::Result<Option<String>> {
    Ok(match DirLock::probe(dir)? {
        LockState::Free => None,
        LockState::Held { pid } => Some(format!(
            "the log may be live: {} holds {} (its last record may still be being written)",
            pid.map_or("another process".into(), |p| format!("process {p}")),
            dir.display()
        )),
    })
}

/// The directory's lock for `--repair`: refused, naming the holder, while an appliance holds it.
fn repair_lock(dir: &Path) -> anyhow::Result<DirLock> {
    DirLock::acquire(dir).context("--repair changes the log, so it needs the directory to itself")
}

fn verify(a: &VerifyArgs) -> anyhow::Result<()> {
    let dir = a.dir.as_path();
    let _lock = if a.repair { Some(repair_lock(dir)?) } else { None };
    let live = if a.repair { None } else { live_note(dir)? };
    if let Some(note) = &live {
        println!("note: {note}");
    }
    let mut summary = scan_log(dir, ScanOptions::default(), |_, _, _| Visit::Continue)?;
    if let Some(t) = summary.torn.clone() {
        if a.repair {
            truncate_torn_tail(&t)?;
            println!("torn tail: {} offset {} (seq {}): {} — zeroed", t.path.display(), t.offset, t.seq, t.reason);
            summary = scan_log(dir, ScanOptions::default(), |_, _, _| Visit::Continue)?;
            if let Some(t) = &summary.torn {
                bail!("{} offset {}: still torn after repair (seq {}): {}", t.path.display(), t.offset, t.seq, t.reason);
            }
        } else if live.is_some() {
            println!(
                "tail: {} offset {} (seq {}) is incomplete ({}); not judged, the log is live",
                t.path.display(),
                t.offset,
                t.seq,
                t.reason
            );
        } else {
            bail!(
                "{} offset {}: torn record (seq {}): {} — left in place; `bourse wal verify --repair` zeroes it",
                t.path.display(),
                t.offset,
                t.seq,
                t.reason
            );
        }
    }
    for (_, path) in snapshot::list_snapshots(dir)? {
        snapshot::read_snapshot(&path)?;
    }
    println!(
        "ok: {} segments, {} records, seq {}..={}",
        summary.segments.len(),
        summary.records,
        summary.first_seq.unwrap_or(0),
        summary.last_seq.unwrap_or(0)
    );
    Ok(())
}

/// The engine capacities for `replay`: the configuration's, else the newest valid snapshot's.
fn replay_capacity(a: &ReplayCmdArgs) -> anyhow::Result<Capacity> {
    if let Some(path) = &a.config {
        return Ok(bourse_appliance::config::Config::load(path)?.engine_capacity());
    }
    if !a.no_snapshots {
        for (_, path) in snapshot::list_snapshots(&a.dir)? {
            if let Ok(engine) = snapshot::load(&path) {
                return Ok(engine.capacity());
            }
        }
    }
    bail!(
        "{}: no --config given, and no valid snapshot{} to take the engine capacities from: pass --config with the \
         appliance's configuration file",
        a.dir.display(),
        if a.no_snapshots { " (--no-snapshots)" } else { "" }
    )
}

fn replay(a: &ReplayCmdArgs) -> anyhow::Result<()> {
    let capacity = replay_capacity(a)?;
    let _lock = if a.repair { Some(repair_lock(&a.dir)?) } else { None };
    let live = if a.repair { None } else { live_note(&a.dir)? };
    let mut opts = RecoveryOptions::new(&a.dir, capacity);
    opts.truncate = a.repair;
    // A live log ends where the writer is: read up to the first incomplete slot without calling it torn.
    opts.live = live.is_some();
    opts.use_snapshots = !a.no_snapshots;
    let start = std::time::Instant::now();
    let r = recover(&opts)?;
    let elapsed = start.elapsed();
    for s in &r.skipped_snapshots {
        eprintln!("skipped snapshot: {}", s.error);
    }
    if a.config.is_some() && r.state.capacity() != capacity {
        eprintln!(
            "warning: the journal's engine capacity {:?} differs from --config's {capacity:?}: the appliance would \
             refuse to start on it with this configuration",
            r.state.capacity()
        );
    }
    let hash = r.state.state_hash();
    if a.json {
        let torn = r.torn.as_ref().map(|t| {
            serde_json::json!({"path": t.path, "offset": t.offset, "seq": t.seq, "reason": t.reason.to_string()})
        });
        let v = serde_json::json!({
            "last_seq": r.last_seq(),
            "state_hash": format!("{hash:016x}"),
            "replayed": r.replayed,
            "snapshot_seq": r.snapshot.as_ref().map(|s| s.1),
            "skipped_snapshots": r.skipped_snapshots.len(),
            "torn": torn,
            "truncated": r.truncated,
            "live": live,
            "elapsed_ms": elapsed.as_secs_f64() * 1e3,
        });
        println!("{v}");
        return Ok(());
    }
    if let Some(note) = &live {
        println!("note: {note}");
    }
    if let Some((path, seq)) = &r.snapshot {
        println!("snapshot: {} (seq {seq})", path.display());
    }
    println!("replayed: {} records in {:.1} ms", r.replayed, elapsed.as_secs_f64() * 1e3);
    for kind in RecordKind::ALL {
        let n = r.replayed_per_kind[kind.index()];
        if n > 0 {
            println!("  {:20} {n}", kind.name());
        }
    }
    match &r.torn {
        Some(t) => println!(
            "torn tail: {} offset {} (seq {}): {} — {}",
            t.path.display(),
            t.offset,
            t.seq,
            t.reason,
            if r.truncated { "truncated" } else { "left in place (--repair zeroes it)" }
        ),
        None if live.is_some() => println!("torn tail: not judged, the log is live"),
        None => println!("torn tail: none"),
    }
    println!("last_seq: {}", r.last_seq());
    println!("state_hash: {hash:016x}");
    Ok(())
}

fn drive(a: &DriveArgs) -> anyhow::Result<()> {
    let mode = DurabilityMode::parse(&a.mode).with_context(|| format!("unknown mode {}", a.mode))?;
    let mut cfg = WalConfig::new(&a.dir);
    cfg.mode = mode;
    cfg.segment_bytes = a.segment_bytes;
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(cfg, 1, Arc::clone(&commit))?;
    let mut workload = Workload::new(a.seed);
    let mut engine = Engine::new(CAPACITY);
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut printed = 0u64;
    let mut seq = 1u64;
    loop {
        for _ in 0..a.batch.max(1) {
            let input = workload.next(seq);
            wal.append_unfenced(&input)?;
            engine.apply(&input, &mut NullSink);
            seq += 1;
        }
        wal.fence();
        let last = seq - 1;
        if !commit.wait_for(last, Duration::from_secs(30)) {
            bail!("commit index stuck at {} while waiting for {last}", commit.committed());
        }
        // Only what the index covers is printed: these are the "acknowledged" inputs.
        let committed = commit.committed();
        while printed < committed {
            printed += 1;
            writeln!(out, "{printed}")?;
        }
        out.flush()?;
        if a.records > 0 && last >= a.records {
            break;
        }
    }
    wal.close()?;
    eprintln!("drive: {} inputs, state_hash {:016x}", seq - 1, engine.state_hash());
    Ok(())
}

fn check(a: &CheckArgs) -> anyhow::Result<()> {
    // Recovery zeroes the torn tail the killed driver left: only under the directory's lock. A segment the
    // killed writer had started under its private name is part of the log: put it in place before looking.
    let _lock = DirLock::acquire(&a.dir)?;
    bourse_persist::wal::prepare::adopt_prepared(&a.dir)?;
    // Content check: every record in the log must be exactly the input the seeded generator makes for its seq.
    let mut regen = Workload::new(a.seed);
    let mut mismatch = None;
    let mut next = 1u64;
    let summary = scan_log(&a.dir, ScanOptions::default(), |path, offset, r| {
        let want = regen.next(next);
        next += 1;
        if r.input != want {
            mismatch = Some(format!("{}@{offset}: seq {} differs from the generated input", path.display(), r.input.seq));
            return Visit::Stop;
        }
        Visit::Continue
    })?;
    if let Some(m) = mismatch {
        bail!("{m}");
    }
    let r = recover(&RecoveryOptions::new(&a.dir, CAPACITY))?;
    let last = r.last_seq();
    if last < a.committed {
        bail!("lost committed inputs: recovered up to seq {last}, but seq {} was committed", a.committed);
    }
    if summary.last_seq.unwrap_or(0) != last {
        bail!("scan saw last seq {:?}, recovery {last}", summary.last_seq);
    }
    let mut fresh = Engine::new(CAPACITY);
    let mut w = Workload::new(a.seed);
    for seq in 1..=last {
        fresh.apply(&w.next(seq), &mut NullSink);
    }
    if fresh.state_hash() != r.state.state_hash() {
        bail!("state hash {:016x} differs from a fresh engine's {:016x}", r.state.state_hash(), fresh.state_hash());
    }
    // After truncation the log must verify clean: nothing after the torn tail survives.
    let again = scan_log(&a.dir, ScanOptions::default(), |_, _, _| Visit::Continue)?;
    if again.torn.is_some() || again.last_seq.unwrap_or(0) != last {
        bail!("log not clean after recovery: {:?}", again.torn);
    }
    println!(
        "ok: committed {} recovered {last} (+{} uncommitted) torn {} hash {:016x}",
        a.committed,
        last - a.committed,
        r.torn.map(|t| format!("seq {} at {}@{}", t.seq, t.path.display(), t.offset)).unwrap_or("none".into()),
        fresh.state_hash()
    );
    Ok(())
}
