//! Offline latency presentation for the operator tools: percentile plots ([`plot`], the only user of `plotters`)
//! and the tables and units they share ([`report`]). The hot-path half of the observability (TSC clock, stage
//! histograms, `.hlog` files, the stats block, the metrics endpoint) lives in `bourse_appliance::obs`.

pub mod page;
pub mod plot;
pub mod report;
