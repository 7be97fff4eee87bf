//! `bourse`: one binary, one subcommand per program (see `bourse --help`).
#![deny(unsafe_code)]

use clap::{Parser, Subcommand};

use bourse::{bench, demo, hist, load, stats, walcmd};
use bourse_appliance::{appliance, standby};

#[global_allocator]
static ALLOC: bourse::alloc_count::CountingAlloc = bourse::alloc_count::CountingAlloc;

#[derive(Parser)]
#[command(name = "bourse", version, about = "bourse: a low-latency exchange matching appliance")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the appliance (order entry, matching, journal, market data).
    Run(appliance::RunArgs),
    /// Hot standby: follow a primary's WAL over the mirror, promote and serve when it falls silent.
    Standby(standby::StandbyArgs),
    /// Benchmarks: each prints a table, or exactly one JSON object with --json.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
    /// Operator tools for the write-ahead log.
    Wal {
        #[command(subcommand)]
        cmd: walcmd::WalCmd,
    },
    /// Read HdrHistogram interval logs (.hlog): percentiles, comparisons, plots.
    Hist(hist::HistArgs),
    /// One self-contained HTML page from a run's interval logs: plots, stage table, configuration, host.
    Report(bourse::obs::page::ReportArgs),
    /// Live counters and per-stage latency of a running appliance.
    Stats(stats::StatsArgs),
    /// Firm-side load generator: exchange-core's order mix over OUCH/UDP, latency per offered rate.
    Load(load::LoadArgs),
    /// The main job: start the appliance in-process, load it at a few rates, print the latency table.
    Demo(demo::DemoArgs),
    /// Clearing and settlement: the books of record in SQLite or PostgreSQL, from the committed journal.
    Ledger {
        #[command(subcommand)]
        cmd: bourse_ledger::cli::LedgerCmd,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Parse and check a configuration (ports free, cores present, WAL directory writable, the market valid)
    /// without touching its journal; every problem is reported with its key.
    Check(bourse_appliance::appliance::preflight::CheckArgs),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Matching engine on exchange-core's command mix.
    Engine(bench::engine::EngineArgs),
    /// Kill -9 the primary, time until the hot standby serves (child processes on loopback).
    Failover(bench::failover::FailoverArgs),
    /// Mirror commit latency and throughput, primary and hot standby in-process over TCP.
    Mirror(bench::mirror::MirrorArgs),
    /// Wire codecs: decode and encode ns per message.
    WireCodec(bench::codec::CodecArgs),
    /// WAL append + flush per record, against the host's bare flush floor.
    Wal(bench::wal::WalArgs),
    /// Recovery replay throughput.
    Replay(bench::wal::ReplayArgs),
    /// Exchange-state recovery from a long log, with and without a snapshot, and the disk kept.
    Recovery(bench::recovery::RecoveryArgs),
    /// Cost of a timestamp (rdtsc, rdtscp, clock_gettime).
    Clock(bench::clock::ClockArgs),
    /// Wire-to-ack round trip through the appliance over a veth pair, against each backend's bare echo.
    Wire(bench::wire::WireArgs),
    /// Trades booked per second by `bourse ledger ingest` into SQLite and into PostgreSQL; with --lag, how far the
    /// following ledger trails the appliance's commit under the demo's load.
    Ledger(bench::ledger_lag::LedgerArgs),
    /// The echo floor's server (run by `bench wire` inside a namespace).
    #[command(hide = true)]
    WireEcho(bench::wire::WireEchoArgs),
    /// The echo floor's client (run by `bench wire` inside a namespace).
    #[command(hide = true)]
    WireClient(bench::wire::WireClientArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Bench { which } => match which {
            BenchCmd::Engine(a) => bench::engine::run(a),
            BenchCmd::WireCodec(a) => bench::codec::run(a),
            BenchCmd::Mirror(a) => bench::mirror::run(a),
            BenchCmd::Failover(a) => bench::failover::run(a),
            BenchCmd::Wal(a) => bench::wal::run(a),
            BenchCmd::Replay(a) => bench::wal::run_replay(a),
            BenchCmd::Recovery(a) => bench::recovery::run(a),
            BenchCmd::Clock(a) => bench::clock::run(a),
            BenchCmd::Wire(a) => bench::wire::run(a),
            BenchCmd::Ledger(a) => bench::ledger_lag::run(a),
            BenchCmd::WireEcho(a) => bench::wire::run_echo(a),
            BenchCmd::WireClient(a) => bench::wire::run_client(a),
        },
        Cmd::Run(a) => appliance::run(a),
        Cmd::Standby(a) => standby::run(a),
        Cmd::Wal { cmd } => walcmd::run(cmd),
        Cmd::Ledger { cmd } => bourse_ledger::cli::run(cmd),
        Cmd::Hist(a) => hist::run(a),
        Cmd::Report(a) => bourse::obs::page::run(a),
        Cmd::Stats(a) => stats::run(a),
        Cmd::Load(a) => load::run(a),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Config { cmd: ConfigCmd::Check(a) } => bourse_appliance::appliance::preflight::run_check(a),
    };
    if let Err(e) = result {
        // A reader that went away (`bourse stats --once | head`) is not an error of ours: stop quietly, as the
        // default SIGPIPE action would, but with the status `head` users expect.
        let broken_pipe = e
            .chain()
            .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe));
        if broken_pipe {
            std::process::exit(0);
        }
        eprintln!("bourse: error: {e:#}");
        std::process::exit(1);
    }
}
