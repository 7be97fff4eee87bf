//! `bourse standby --config F`: the hot standby.
//!
//! The standby listens for its primary's mirror connection (`mirror.listen`), lands the primary's WAL bytes in a
//! ring indexed by stream offset, and hands every record the mirror validated to [`Follower`]: it is appended
//! byte for byte through the standby's own [`Wal`] (the configured durability mode) and applied to the standby's own [`Engine`], so the standby's book is always current. The
//! durable position it acknowledges comes from its own commit index: a seq is acknowledged only after its record is
//! durable here, which is what lets the primary release replies under `ack = "mirrored"`.
//!
//! When the primary has been silent for `mirror.promote_after_ms` (and the standby had caught up with it at least
//! once), the mirror promotes the standby to the next epoch. The standby then closes its WAL (everything is made
//! durable), and serves as a full appliance from the same journal directory through [`appliance::serve`]:
//! recovery replays what it has, new records carry the new epoch, and firms log in again at this node's address.
//!
//! A standby that starts behind (or empty) is caught up from the primary's older segments before its acks count. A
//! former primary rejoining as standby is told by the new primary's `Fence` where the new epoch began; if its log
//! runs past that point it cuts it back (the cut records are kept under `<wal dir>/diverged-…`), rebuilds its engine
//! from what remains and follows in the new epoch. Records are journaled byte for byte as the primary holds them,
//! epochs included, and a restarted standby follows in the newest epoch its log holds.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bourse_engine::Engine;
use bourse_persist::mirror::tcp::TcpTransport;
use bourse_persist::mirror::{Position, Standby, StandbyEvent, StandbyHost, Validated, WalRecords};
use bourse_persist::wal::truncate::discard_after;
use bourse_persist::recovery::Replicated;
use bourse_persist::wal::DirLock;

use crate::appliance::setup::Journal;
use crate::appliance::mirror::{mirror_config, IdleBackoff};
use crate::appliance::{self, setup};
use crate::config::{Config, MirrorAck, MirrorRole, MirrorSection};
use crate::obs::tsc::Clock;
use crate::witness::pair::{self, Promotion};
use crate::witness::Witness;

#[derive(clap::Args, Debug)]
pub struct StandbyArgs {
    /// The configuration file: the appliance's, with `[mirror] role = "standby"` and `listen`.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Stop after this many seconds (default: until SIGINT or SIGTERM), whether following or serving.
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// On promotion, exit instead of serving (for tests of the follower alone).
    #[arg(long)]
    pub no_serve: bool,
}

pub fn run(args: StandbyArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let stop = crate::appliance::stop_flag(args.duration_s)?;
    // Calibrated now, while following, so that promotion does not wait for it.
    let clock = Clock::calibrate(Duration::from_millis(50));
    let outcome = follow(&config, &stop)?;
    let (epoch, at, silent_at, fence, journal) = match outcome {
        Outcome::Stopped { validated } => {
            eprintln!("bourse standby: stopped while following, validated through seq {}", validated.seq);
            return Ok(());
        }
        Outcome::Promoted { epoch, at, silent_at, fence, journal } => (epoch, at, silent_at, fence, journal),
    };
    eprintln!("bourse standby: PROMOTED to epoch {epoch} at seq {} (offset {})", at.seq, at.offset);
    if args.no_serve {
        return Ok(());
    }
    let promoted = promoted_config(&config, epoch)?;
    let fencing = fence.spawn(Arc::clone(&stop));
    let ready = Arc::new(AtomicBool::new(false));
    {
        // Announce when the promoted node takes input, with the time since the primary was last heard.
        let (ready, stop) = (Arc::clone(&ready), Arc::clone(&stop));
        let bind = promoted.backend.bind;
        std::thread::spawn(move || {
            while !ready.load(Ordering::Acquire) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(200));
            }
            if ready.load(Ordering::Acquire) {
                eprintln!(
                    "bourse standby: SERVING on {bind} in epoch {epoch}, {:.1} ms after the primary fell silent",
                    silent_at.elapsed().as_secs_f64() * 1e3
                );
            }
        });
    }
    let summary = appliance::serve_with_clock(&promoted, clock, Arc::clone(&stop), Some(ready), Some(*journal));
    stop.store(true, Ordering::Relaxed);
    let _ = fencing.join();
    eprintln!("bourse: stopped: {}", summary?);
    Ok(())
}

/// How following ended.
#[derive(Debug)]
pub enum Outcome {
    /// `stop` was set.
    Stopped { validated: Position },
    /// The primary fell silent: serve in `epoch`; everything through `at` is durable in the standby's WAL.
    /// `silent_at` is when the primary was last heard (approximately: the promotion time minus the timeout).
    /// `fence` keeps the mirror endpoint answering.
    /// `journal` is the follower's engine, WAL and market-data state, current through `at`.
    Promoted { epoch: u32, at: Position, silent_at: Instant, fence: Box<FenceResponder>, journal: Box<Journal> },
}

/// The promoted node's mirror endpoint, kept open: a former primary that comes back (or was only cut off) dials
/// it in its old epoch and is answered with `Fence` (the new epoch and where it began), so it stops acknowledging,
/// and learns where to truncate if it rejoins as a standby.
pub struct FenceResponder {
    standby: Standby<WalRecords>,
    transport: TcpTransport,
    region: Box<[u8]>,
    at: Position,
}

impl std::fmt::Debug for FenceResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FenceResponder {{ epoch: {}, at: {:?} }}", self.standby.epoch(), self.at)
    }
}

/// The promoted node's host: nothing is followed any more.
struct Promoted(Position);

impl StandbyHost for Promoted {
    fn on_validated(&mut self, _batch: Validated<'_>) {}
    fn durable(&mut self) -> Position {
        self.0
    }
}

impl FenceResponder {
    /// Answers stale-epoch peers until `stop`, on its own thread (it sleeps between polls: fencing is not urgent
    /// to the microsecond, the serving cores are).
    pub fn spawn(mut self: Box<Self>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let clock = Instant::now();
            let mut fenced = 0;
            while !stop.load(Ordering::Relaxed) {
                let now_ns = clock.elapsed().as_nanos() as u64;
                let mut host = Promoted(self.at);
                if let Err(e) = self.standby.tick(now_ns, &mut self.region, &mut self.transport, &mut host) {
                    eprintln!("bourse standby: fence responder stopped: {e:#}");
                    return;
                }
                let stale = self.standby.stats().frames_stale_epoch;
                if stale > fenced {
                    if fenced == 0 {
                        eprintln!(
                            "bourse standby: a peer in an older epoch is talking to the mirror port: answered with \
                             Fence (epoch {}, began after seq {})",
                            self.standby.epoch(),
                            self.at.seq
                        );
                    }
                    fenced = stale;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    }
}

/// The configuration the promoted standby serves with: a primary in `epoch`, mirroring to `standby_addr` if the
/// standby's configuration names one (the former primary, restarted as a standby), with local acks.
pub fn promoted_config(config: &Config, epoch: u32) -> anyhow::Result<Config> {
    let section = config.mirror.as_ref().context("no [mirror] section")?;
    let mut promoted = config.clone();
    promoted.mirror = Some(MirrorSection {
        role: MirrorRole::Primary,
        standby_addr: section.standby_addr,
        listen: None,
        ack: MirrorAck::Local,
        epoch,
        ..section.clone()
    });
    Ok(promoted)
}

/// How long a standby keeps asking a witness that does not answer before it gives the promotion up and follows
/// again: several etcd election timeouts (1 s by default), so losing the etcd leader delays a promotion only.
const PROMOTE_RETRY_WINDOW: Duration = Duration::from_secs(5);

/// Batches remembered for mapping the local durable seq back to a mirror position. When full, the oldest is
/// forgotten, which only makes the reported durable position lag (never run ahead).
const BATCHES_MAX: usize = 1 << 14;

/// The appliance side of the standby: its journal — engine, WAL, and the market-data feed rebuilt from the same
/// events — kept current record by record, so that promotion hands it over instead of recovering again.
pub struct Follower {
    journal: Journal,
    batches: VecDeque<Position>,
    durable: Position,
    error: Option<anyhow::Error>,
    pub applied: u64,
}

impl Follower {
    pub fn new(journal: Journal, durable: Position) -> Follower {
        Follower { journal, batches: VecDeque::with_capacity(BATCHES_MAX), durable, error: None, applied: 0 }
    }

    pub fn engine(&self) -> &Engine {
        self.journal.exchange.engine()
    }

    /// The first failure to journal or decode a validated record: the standby must stop, it can no longer ack.
    pub fn take_error(&mut self) -> Option<anyhow::Error> {
        self.error.take()
    }

    /// Makes everything appended durable and closes the WAL.
    pub fn close(self) -> anyhow::Result<appliance::exchange::Exchange> {
        self.journal.wal.close().context("closing the standby's WAL")?;
        Ok(self.journal.exchange)
    }

    /// The journal for the promoted appliance, continuing the log after `at` in `epoch`. Nothing is waited for:
    /// the appliance releases output only as the WAL's commit index allows.
    pub fn into_journal(self, epoch: u32, at: Position) -> Journal {
        let mut journal = self.journal;
        journal.wal.fence();
        journal.wal.set_epoch(epoch);
        let started = &mut journal.started;
        started.recovered_seq = at.seq;
        started.recovered_offset = at.offset;
        started.torn_tail = None;
        started.genesis_inputs = 0;
        started.startup_ms = [0.0; 2];
        journal
    }

    fn apply_batch(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let Journal { exchange, wal, .. } = &mut self.journal;
        let mut at = 0;
        while at < bytes.len() {
            // Byte for byte, epoch included: the standby's log is the primary's. The writer decodes it once.
            let record = wal
                .append_record_unfenced(&bytes[at..])
                .with_context(|| format!("decoding and journaling the validated record at +{at}"))?;
            // The same apply as the primary's pipeline and as recovery: the replies and market data it produces
            // are kept in the state (a promoted node answers re-requests and logins from them); sending them is
            // the primary's job.
            exchange.apply_record(&record).with_context(|| format!("applying the record at +{at}"))?;
            self.applied += 1;
            at += record.length;
        }
        wal.fence();
        Ok(())
    }
}

impl StandbyHost for Follower {
    fn on_validated(&mut self, batch: Validated<'_>) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.apply_batch(batch.bytes) {
            self.error = Some(e);
            return;
        }
        if self.batches.len() == BATCHES_MAX {
            self.batches.pop_front();
        }
        self.batches.push_back(batch.to);
    }

    fn durable(&mut self) -> Position {
        let local = self.journal.wal.commit_index().local();
        while let Some(front) = self.batches.front().copied() {
            if front.seq > local {
                break;
            }
            self.durable = front;
            self.batches.pop_front();
        }
        self.durable
    }
}

/// Follows the primary until promotion or `stop`. When a newer primary says this node's log runs past the start
/// of its epoch (this node was a primary that kept writing after it was replaced), the log is cut back to that
/// point — the cut records kept under `<wal dir>/diverged-…` — the engine rebuilt from what remains, and following
/// resumes in the new epoch on the same connection.
pub fn follow(config: &Config, stop: &AtomicBool) -> anyhow::Result<Outcome> {
    let section = config.mirror.as_ref().context("the standby needs a [mirror] section")?;
    if section.role != MirrorRole::Standby {
        bail!("mirror.role is {:?}; `bourse standby` needs role = \"standby\"", section.role);
    }
    let listen = section.listen.context("mirror.listen is not set")?;
    let dir = setup::wal_dir(config)?;
    let mirror = mirror_config(section);
    let mut region = vec![0u8; mirror.region_size_bytes as usize].into_boxed_slice();
    let mut transport = TcpTransport::listen(listen)
        .with_context(|| format!("listening for the primary on {listen}"))
        .map_err(|e| appliance::bind_error("mirror.listen", listen, e))?;
    let mut resync: Option<(u64, Position)> = None;
    // With a witness, promotion is a compare-and-swap there, and the epoch followed is at least the record's.
    let mut witness = match &config.witness {
        Some(w) => Some((crate::witness::from_config(w)?, w.node.as_str())),
        None => None,
    };
    loop {
        let journal = setup::recover_journal(config)?;
        let started_seq = journal.started.recovered_seq;
        // The log's end as the mirror names it: records are identical on both nodes, so stream offsets agree.
        let durable = Position { seq: started_seq, offset: journal.started.recovered_offset };
        // A log that already holds a newer epoch's records (it followed a newer primary before) follows in it.
        let epoch = match resync {
            Some((epoch, truncate_to)) => {
                if durable != truncate_to {
                    bail!("after cutting the log back to {truncate_to:?} it recovers to {durable:?}");
                }
                epoch
            }
            None => u64::from(section.epoch).max(setup::last_record_epoch(&dir, started_seq)),
        };
        let epoch = match witness.as_mut().map(|(w, _)| w.read()) {
            Some(Ok(Some(record))) => {
                eprintln!(
                    "bourse standby: witness: epoch {}, primary {}, members {:?}",
                    record.value.epoch, record.value.primary, record.value.members
                );
                epoch.max(u64::from(record.value.epoch))
            }
            Some(Ok(None)) => epoch,
            Some(Err(e)) => {
                eprintln!("bourse standby: witness: {e}; following in epoch {epoch} (promotion needs the witness)");
                epoch
            }
            None => epoch,
        };
        let follower = Follower::new(journal, durable);
        let standby = Standby::new(mirror, WalRecords, epoch, durable);
        eprintln!(
            "bourse standby: epoch {epoch}, WAL {} recovered through seq {}, listening for the primary on {} \
             (promote after {} ms of silence)",
            dir.display(),
            started_seq,
            transport.local_addr().map(|a| a.to_string()).unwrap_or_else(|| listen.to_string()),
            section.promote_after_ms
        );
        let run = Following { section, started_seq, follower, standby, witness: witness.as_mut() };
        match run.until_event(stop, &mut region, transport)? {
            Step::Done(outcome) => return Ok(outcome),
            Step::Refused { transport: kept } => {
                transport = kept;
                resync = None;
            }
            Step::Resync { epoch: newer, truncate_to, transport: kept } => {
                transport = kept;
                let aside = dir.join(format!("diverged-epoch{epoch}-after-seq{}", truncate_to.seq));
                // The follower's writer is closed and its lock with it: cut only under the lock, taken again.
                let lock = DirLock::acquire(&dir)?;
                let cut = discard_after(&dir, truncate_to.seq, &aside)
                    .with_context(|| format!("cutting {} back to seq {}", dir.display(), truncate_to.seq))?;
                drop(lock);
                eprintln!(
                    "bourse standby: a newer primary (epoch {newer}) began after seq {}; this log ran to seq {}: cut \
                     {} records, kept under {}; re-following in epoch {newer}",
                    truncate_to.seq,
                    cut.last_seq_before,
                    cut.records,
                    aside.display()
                );
                resync = Some((newer, truncate_to));
            }
        }
    }
}

/// How one stretch of following ended.
enum Step {
    Done(Outcome),
    Resync { epoch: u64, truncate_to: Position, transport: TcpTransport },
    /// The witness did not let this node promote: it follows again, from its own journal.
    Refused { transport: TcpTransport },
}

/// One stretch of following: from a recovered journal to promotion, a resync, or `stop`.
struct Following<'a, 'w> {
    section: &'a MirrorSection,
    started_seq: u64,
    follower: Follower,
    standby: Standby<WalRecords>,
    witness: Option<&'w mut (Box<dyn Witness>, &'a str)>,
}

impl Following<'_, '_> {
    fn until_event(self, stop: &AtomicBool, region: &mut Box<[u8]>, mut transport: TcpTransport) -> anyhow::Result<Step> {
        let Following { section, started_seq, mut follower, mut standby, witness } = self;
        let clock = Instant::now();
        let mut backoff = IdleBackoff::default();
        let mut reported_sync = false;
        let mut next_report = Instant::now() + Duration::from_secs(1);
        while !stop.load(Ordering::Relaxed) {
            let now_ns = clock.elapsed().as_nanos() as u64;
            let before = standby.stats().frames_received;
            let event = standby.tick(now_ns, region, &mut transport, &mut follower).context("standby mirror")?;
            if let Some(e) = follower.take_error() {
                return Err(e.context("the standby cannot journal what the primary sent"));
            }
            if !reported_sync && standby.synced_once() {
                reported_sync = true;
                eprintln!("bourse standby: caught up with the primary at seq {}", standby.validated().seq);
            }
            if Instant::now() >= next_report {
                // A progress line per second for operators: how far validation and durability have come.
                next_report += Duration::from_secs(1);
                let st = standby.stats();
                eprintln!(
                    "bourse standby: validated seq {}, durable seq {}, frames {} received / {} sent, {} duplicate \
                     writes, {} gaps, {} invalid records",
                    standby.validated().seq,
                    standby.durable().seq,
                    st.frames_received,
                    st.frames_sent,
                    st.writes_duplicate,
                    st.writes_gap,
                    st.records_invalid
                );
            }
            match event {
                Some(StandbyEvent::Promoted { epoch, at }) => {
                    let silent_at = Instant::now() - Duration::from_millis(section.promote_after_ms);
                    let epoch = u32::try_from(epoch).context("epoch beyond u32")?;
                    if let Some((w, node)) = witness {
                        let asked = Instant::now();
                        let mut answer = pair::promote(w.as_mut(), node, epoch - 1);
                        // No answer is not a refusal: etcd may be electing a leader. Asking again is safe, since
                        // a primary that is still alive removes this silent standby first and the swap is refused.
                        while answer.is_err() && asked.elapsed() < PROMOTE_RETRY_WINDOW && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(20));
                            answer = pair::promote(w.as_mut(), node, epoch - 1);
                        }
                        let cas_ms = asked.elapsed().as_secs_f64() * 1e3;
                        match answer {
                            Ok(Promotion::Won { epoch: won }) if won == epoch => {
                                eprintln!("bourse standby: witness: won the promotion to epoch {won} (CAS {cas_ms:.1} ms)");
                            }
                            other => {
                                let why = match other {
                                    Ok(Promotion::Refused(why)) => why,
                                    Ok(Promotion::Won { epoch: won }) => {
                                        format!("won epoch {won}, but the mirror promoted to {epoch}")
                                    }
                                    Err(e) => e.to_string(),
                                };
                                eprintln!(
                                    "bourse standby: witness: NOT promoting ({why}; asked in {cas_ms:.1} ms); this node \
                                     does not serve and follows again"
                                );
                                follower.close()?;
                                return Ok(Step::Refused { transport });
                            }
                        }
                    }
                    eprintln!(
                        "bourse standby: primary silent for {} ms; {} records applied, {} orders open; handing the \
                         journal over",
                        section.promote_after_ms,
                        at.seq - started_seq,
                        follower.engine().orders_open()
                    );
                    let journal = Box::new(follower.into_journal(epoch, at));
                    let region = std::mem::take(region);
                    let fence = Box::new(FenceResponder { standby, transport, region, at });
                    return Ok(Step::Done(Outcome::Promoted { epoch, at, silent_at, fence, journal }));
                }
                Some(StandbyEvent::MustResync { epoch, truncate_to }) => {
                    follower.close()?;
                    return Ok(Step::Resync { epoch, truncate_to, transport });
                }
                None => {}
            }
            backoff.after(standby.stats().frames_received != before);
        }
        let validated = standby.validated();
        follower.close()?;
        Ok(Step::Done(Outcome::Stopped { validated }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_engine::{AddAccount, Command, Deposit, Input};
    use bourse_persist::wal::segment::SEGMENT_HEADER_BYTES;
    use bourse_persist::wal::{encode, RECORD_BYTES_MAX};
    use bourse_persist::AckPolicy;

    fn follower(dir: &std::path::Path) -> Follower {
        // No durability wait (`none`): the commit index follows each fence, so `durable` is deterministic here.
        let config = crate::demo::demo_config(dir, "none", None).unwrap();
        let start = Position { seq: 0, offset: SEGMENT_HEADER_BYTES as u64 };
        Follower::new(setup::recover_journal(&config).unwrap(), start)
    }

    fn records(first_seq: u64, n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; RECORD_BYTES_MAX];
        for seq in first_seq..first_seq + n {
            let command = if seq == 1 {
                Command::AddAccount(AddAccount {
                    account: 0,
                    firm: 0,
                    self_trade: bourse_engine::SelfTrade::default(),
                    short_limit: 0,
                    max_order_qty: 100,
                    max_order_notional: 1_000_000,
                })
            } else {
                Command::Deposit(Deposit { account: 0, amount: 10 })
            };
            let len = encode(&Input { seq, timestamp: seq * 10, command }, 1, &mut buf);
            out.extend_from_slice(&buf[..len]);
        }
        out
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bourse-follower-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn validated_batches_are_journaled_applied_and_reported_durable_in_order() {
        let dir = temp_dir("ok");
        let mut f = follower(&dir);
        let start = Position { seq: 0, offset: SEGMENT_HEADER_BYTES as u64 };
        let a = records(1, 3);
        let a_end = Position { seq: 3, offset: start.offset + a.len() as u64 };
        f.on_validated(Validated { bytes: &a, from: start, to: a_end });
        assert!(f.take_error().is_none());
        assert_eq!(f.durable(), a_end);
        let b = records(4, 2);
        let b_end = Position { seq: 5, offset: a_end.offset + b.len() as u64 };
        f.on_validated(Validated { bytes: &b, from: a_end, to: b_end });
        assert_eq!(f.durable(), b_end);
        assert_eq!(f.applied, 5);
        f.close().unwrap();
        // The standby's own journal now holds exactly those records, at the same offsets as the primary's.
        let seg = dir.join(bourse_persist::wal::segment::segment_file_name(1));
        let bytes = std::fs::read(&seg).unwrap();
        let off = SEGMENT_HEADER_BYTES;
        assert_eq!(&bytes[off..off + a.len()], &a[..]);
        assert_eq!(&bytes[off + a.len()..off + a.len() + b.len()], &b[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_that_does_not_decode_stops_the_follower_without_acknowledging_it() {
        let dir = temp_dir("bad");
        let mut f = follower(&dir);
        let start = Position { seq: 0, offset: SEGMENT_HEADER_BYTES as u64 };
        let mut a = records(1, 2);
        a[64 + 40] ^= 0xff; // the second record's body: its CRC no longer holds
        let end = Position { seq: 2, offset: start.offset + a.len() as u64 };
        f.on_validated(Validated { bytes: &a, from: start, to: end });
        let err = format!("{:#}", f.take_error().expect("a decode error"));
        assert!(err.contains("decoding"), "{err}");
        assert_eq!(f.durable(), start, "nothing of a failed batch is acknowledged");
        drop(f);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_promoted_configuration_serves_alone_in_the_new_epoch() {
        let text = concat!(
            crate::config::minimal_toml!(),
            "\n[mirror]\nrole = \"standby\"\nlisten = \"127.0.0.1:1\"\npromote_after_ms = 50\n"
        );
        let config = Config::parse(text).unwrap();
        let promoted = promoted_config(&config, 2).unwrap();
        let m = promoted.mirror.as_ref().unwrap();
        assert_eq!((m.role, m.standby_addr, m.ack, m.epoch), (MirrorRole::Primary, None, MirrorAck::Local, 2));
        assert_eq!(setup::ack_policy(&promoted), AckPolicy::Local);
        assert_eq!(MirrorSection::wal_epoch(&promoted), 2);
    }
}
