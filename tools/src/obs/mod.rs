//! Latency observability: TSC clock, per-stage histograms, interval logs, stats block, metrics.
