//! `bourse bench clock`: the cost of one timestamp by each way of taking one, so the pipeline's choice (raw
//! `rdtsc` per stage) is a measured one. Each reader runs in a tight loop for a fixed count; the loop's own cost
//! (an add into a black-boxed sum) is included, as it would be in use.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bourse_appliance::obs::stages::{stage_recorder, HistConfig, StageStamps};
use bourse_appliance::obs::tsc::{self, Clock};

#[derive(clap::Args, Debug)]
pub struct ClockArgs {
    #[arg(long)]
    pub json: bool,
    /// Calls per reader.
    #[arg(long, default_value_t = 2_000_000)]
    pub iterations: u64,
    /// TSC calibration window.
    #[arg(long, default_value_t = 100)]
    pub calibrate_ms: u64,
}

/// The measured cost of each reader, in ns per call; `None` where the reader does not exist on this machine.
#[derive(Debug, serde::Serialize)]
pub struct ClockCosts {
    pub rdtsc_ns: Option<f64>,
    pub lfence_rdtsc_ns: Option<f64>,
    pub rdtscp_ns: Option<f64>,
    pub clock_gettime_monotonic_ns: f64,
    pub instant_now_ns: f64,
    pub clock_monotonic_coarse_ns: f64,
    /// One input's six stage spans recorded into the per-stage histograms (`StageRecorder::record`).
    pub stage_record_ns: f64,
    pub tsc_hz: Option<u64>,
    pub clock_source: &'static str,
    pub iterations: u64,
}

fn per_call(iterations: u64, mut read: impl FnMut() -> u64) -> f64 {
    // A short warm-up brings the code and the vDSO page into cache.
    let mut sum = 0u64;
    for _ in 0..iterations.min(10_000) {
        sum = sum.wrapping_add(read());
    }
    let start = Instant::now();
    for _ in 0..iterations {
        sum = sum.wrapping_add(read());
    }
    let elapsed = start.elapsed();
    black_box(sum);
    elapsed.as_nanos() as f64 / iterations.max(1) as f64
}

/// Measures every reader `iterations` times.
pub fn measure(iterations: u64, calibrate: Duration) -> ClockCosts {
    let clock = Clock::calibrate(calibrate);
    #[cfg(target_arch = "x86_64")]
    let (rdtsc_ns, lfence_rdtsc_ns, rdtscp_ns) = (
        Some(per_call(iterations, tsc::rdtsc)),
        Some(per_call(iterations, tsc::lfence_rdtsc)),
        tsc::has_rdtscp().then(|| per_call(iterations, tsc::rdtscp)),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let (rdtsc_ns, lfence_rdtsc_ns, rdtscp_ns) = (None, None, None);
    let base = Instant::now();
    let (mut recorder, _exporter) = stage_recorder(clock, HistConfig::default())
        .expect("the default histogram bounds are valid");
    let mut stamps = StageStamps::default();
    let stage_record_ns = per_call(iterations, || {
        // Spread the stamps so the records touch many buckets, as real latencies do.
        let t0 = clock.now();
        for (k, slot) in stamps.ticks.iter_mut().enumerate() {
            *slot = t0 + ((t0 >> 3) & 0xfff) * k as u64;
        }
        recorder.record(&stamps);
        t0
    });
    ClockCosts {
        stage_record_ns,
        rdtsc_ns,
        lfence_rdtsc_ns,
        rdtscp_ns,
        clock_gettime_monotonic_ns: per_call(iterations, tsc::monotonic_ns),
        instant_now_ns: per_call(iterations, || {
            Instant::now().duration_since(base).as_nanos() as u64
        }),
        clock_monotonic_coarse_ns: per_call(iterations, tsc::monotonic_coarse_ns),
        tsc_hz: (clock.source() == tsc::ClockSource::Tsc).then(|| clock.hz()),
        clock_source: clock.source().name(),
        iterations,
    }
}

pub fn run(args: ClockArgs) -> anyhow::Result<()> {
    let costs = measure(args.iterations, Duration::from_millis(args.calibrate_ms));
    if args.json {
        println!("{}", serde_json::to_string(&costs)?);
        return Ok(());
    }
    let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}"));
    println!("{:<28} {:>10}", "timestamp", "ns/call");
    println!("{:<28} {:>10}", "rdtsc", show(costs.rdtsc_ns));
    println!(
        "{:<28} {:>10}",
        "lfence; rdtsc",
        show(costs.lfence_rdtsc_ns)
    );
    println!("{:<28} {:>10}", "rdtscp", show(costs.rdtscp_ns));
    println!(
        "{:<28} {:>10.2}",
        "clock_gettime(MONOTONIC)", costs.clock_gettime_monotonic_ns
    );
    println!("{:<28} {:>10.2}", "Instant::now()", costs.instant_now_ns);
    println!(
        "{:<28} {:>10.2}",
        "CLOCK_MONOTONIC_COARSE", costs.clock_monotonic_coarse_ns
    );
    println!(
        "{:<28} {:>10.2}",
        "stage record (6 spans)", costs.stage_record_ns
    );
    match costs.tsc_hz {
        Some(hz) => println!("clock source tsc, {:.6} GHz", hz as f64 / 1e9),
        None => println!("clock source {}", costs.clock_source),
    }
    Ok(())
}
