//! The pipeline's clock: the CPU time-stamp counter, calibrated against CLOCK_MONOTONIC at start-up.
//!
//! A stage stamp must cost a few nanoseconds, so the pipeline reads raw ticks ([`Clock::now`]) and converts only
//! differences, on the recording side, with one 64×64→128-bit multiply and a shift ([`Clock::delta_ns`]). The
//! conversion factor is fixed-point: `ns = ticks * mult >> SHIFT`, with `mult = 10^9 << SHIFT / tsc_hz` measured
//! once by [`Clock::calibrate`].
//!
//! The TSC is only a clock when it ticks at a constant rate whatever the core's frequency (`constant_tsc`) and keeps
//! ticking in deep idle states (`nonstop_tsc`). When `/proc/cpuinfo` lacks either flag, or the CPU is not x86_64,
//! the clock falls back to CLOCK_MONOTONIC in nanoseconds (about twice the cost per read here, see `PLATFORM.md`)
//! and says so once on stderr.

use std::time::Duration;

use super::sys;

/// The raw counter reads, for `bourse bench clock`; the pipeline uses [`Clock::now`].
#[cfg(target_arch = "x86_64")]
pub use super::sys::{has_rdtscp, lfence_rdtsc, rdtsc, rdtscp};

/// Fixed-point shift of the ticks-to-nanoseconds multiplier. 32 bits keep the relative rounding error of `mult`
/// below 10^-9 for any TSC slower than 4 GHz·2^32, and the 128-bit product cannot overflow.
const SHIFT: u32 = 32;

/// Which hardware the clock reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockSource {
    /// The time-stamp counter (`rdtsc`); readings are ticks.
    Tsc,
    /// CLOCK_MONOTONIC via `clock_gettime`; readings are nanoseconds.
    Monotonic,
}

impl ClockSource {
    pub fn name(self) -> &'static str {
        match self {
            ClockSource::Tsc => "tsc",
            ClockSource::Monotonic => "monotonic",
        }
    }
}

/// A calibrated clock; `Copy`, so each pipeline core keeps its own.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    source: ClockSource,
    /// Nanoseconds per tick, fixed-point with [`SHIFT`] fractional bits.
    mult: u64,
    /// The measured TSC frequency; 1 GHz for the monotonic fallback, whose "ticks" are nanoseconds.
    hz: u64,
    /// One simultaneous reading of both clocks, to map ticks to CLOCK_MONOTONIC time.
    base_ticks: u64,
    base_mono_ns: u64,
}

/// Whether `/proc/cpuinfo` text says the TSC is usable as a clock (both `constant_tsc` and `nonstop_tsc`).
pub fn tsc_flags_ok(cpuinfo: &str) -> bool {
    let Some(flags) = cpuinfo.lines().find(|l| l.starts_with("flags")) else {
        return false;
    };
    let mut constant = false;
    let mut nonstop = false;
    for flag in flags.split_whitespace() {
        constant |= flag == "constant_tsc";
        nonstop |= flag == "nonstop_tsc";
    }
    constant && nonstop
}

/// CLOCK_MONOTONIC now, in nanoseconds.
#[inline]
pub fn monotonic_ns() -> u64 {
    sys::clock_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_MONOTONIC_COARSE now, in nanoseconds (one scheduler tick of resolution, a fraction of the cost).
#[inline]
pub fn monotonic_coarse_ns() -> u64 {
    sys::clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

impl Clock {
    /// The CLOCK_MONOTONIC clock, without any calibration.
    pub fn monotonic() -> Clock {
        let now = monotonic_ns();
        Clock {
            source: ClockSource::Monotonic,
            mult: 1 << SHIFT,
            hz: 1_000_000_000,
            base_ticks: now,
            base_mono_ns: now,
        }
    }

    /// Checks the CPU flags and, when the TSC is usable, measures its frequency against CLOCK_MONOTONIC over
    /// `window` (50–200 ms is plenty: the error is the ~100 ns uncertainty of one paired reading over the window).
    /// Falls back to [`Clock::monotonic`] with a warning on stderr otherwise.
    pub fn calibrate(window: Duration) -> Clock {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        if !cfg!(target_arch = "x86_64") {
            eprintln!(
                "bourse: warning: no TSC on this architecture; timestamps use CLOCK_MONOTONIC"
            );
            return Clock::monotonic();
        }
        if !tsc_flags_ok(&cpuinfo) {
            eprintln!(
                "bourse: warning: /proc/cpuinfo lacks constant_tsc/nonstop_tsc; timestamps use CLOCK_MONOTONIC"
            );
            return Clock::monotonic();
        }
        Clock::calibrate_tsc(window)
    }

    #[cfg(target_arch = "x86_64")]
    fn calibrate_tsc(window: Duration) -> Clock {
        let (t0, m0) = paired_reading();
        std::thread::sleep(window);
        let (t1, m1) = paired_reading();
        let ticks = t1.wrapping_sub(t0);
        let ns = m1.saturating_sub(m0).max(1);
        let hz = (ticks as u128 * 1_000_000_000 / ns as u128) as u64;
        if hz == 0 {
            eprintln!("bourse: warning: the TSC did not advance during calibration; using CLOCK_MONOTONIC");
            return Clock::monotonic();
        }
        let mult = ((1_000_000_000u128 << SHIFT) / hz as u128) as u64;
        Clock {
            source: ClockSource::Tsc,
            mult,
            hz,
            base_ticks: t1,
            base_mono_ns: m1,
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn calibrate_tsc(_window: Duration) -> Clock {
        Clock::monotonic()
    }

    pub fn source(&self) -> ClockSource {
        self.source
    }

    /// Ticks per second: the TSC frequency, or 10^9 for the monotonic fallback.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// A raw reading (ticks, or ns for the fallback). Unordered: use it between whole pieces of work.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        match self.source {
            #[cfg(target_arch = "x86_64")]
            ClockSource::Tsc => sys::rdtsc(),
            _ => monotonic_ns(),
        }
    }

    /// A raw reading taken only after all earlier instructions completed (`lfence; rdtsc`).
    #[inline(always)]
    pub fn now_ordered(&self) -> u64 {
        match self.source {
            #[cfg(target_arch = "x86_64")]
            ClockSource::Tsc => sys::lfence_rdtsc(),
            _ => monotonic_ns(),
        }
    }

    /// Nanoseconds between two raw readings; zero if `end` precedes `start` (readings from two cores whose TSCs
    /// disagree by a few ticks must not turn into an enormous unsigned latency).
    #[inline(always)]
    pub fn delta_ns(&self, start: u64, end: u64) -> u64 {
        self.ticks_to_ns(end.saturating_sub(start))
    }

    /// Converts a tick count to nanoseconds: one multiply and one shift.
    #[inline(always)]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ((ticks as u128 * self.mult as u128) >> SHIFT) as u64
    }

    /// Maps a raw reading to CLOCK_MONOTONIC nanoseconds (for log timestamps, not for the hot path).
    pub fn to_monotonic_ns(&self, reading: u64) -> u64 {
        if reading >= self.base_ticks {
            self.base_mono_ns + self.ticks_to_ns(reading - self.base_ticks)
        } else {
            self.base_mono_ns
                .saturating_sub(self.ticks_to_ns(self.base_ticks - reading))
        }
    }
}

/// One TSC reading and one CLOCK_MONOTONIC reading taken as close together as this machine allows: of a few tries,
/// the one whose two bracketing TSC reads are nearest, with the TSC value taken at the bracket's middle.
#[cfg(target_arch = "x86_64")]
fn paired_reading() -> (u64, u64) {
    const TRIES: usize = 16;
    let mut best = (u64::MAX, 0u64, 0u64);
    for _ in 0..TRIES {
        let a = sys::lfence_rdtsc();
        let mono = monotonic_ns();
        let b = sys::lfence_rdtsc();
        let width = b.wrapping_sub(a);
        if width < best.0 {
            best = (width, a + width / 2, mono);
        }
    }
    (best.1, best.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_need_both_constant_and_nonstop() {
        assert!(tsc_flags_ok(
            "processor: 0\nflags\t\t: fpu tsc constant_tsc rep_good nonstop_tsc cpuid\n"
        ));
        assert!(!tsc_flags_ok("flags\t\t: fpu tsc constant_tsc rep_good\n"));
        assert!(!tsc_flags_ok(
            "flags\t\t: fpu tsc nonstop_tsc_x constant_tsc\n"
        ));
        assert!(!tsc_flags_ok(""));
    }

    #[test]
    fn fixed_point_conversion_is_exact_for_the_monotonic_fallback() {
        let c = Clock::monotonic();
        assert_eq!(c.ticks_to_ns(123_456_789), 123_456_789);
        assert_eq!(c.delta_ns(10, 5), 0);
        assert_eq!(c.delta_ns(5, 10), 5);
    }
}
