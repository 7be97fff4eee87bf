//! The metrics endpoint: the stats block rendered in the Prometheus text exposition format (version 0.0.4) and
//! served by a tiny non-blocking HTTP/1.1 responder that the aux core polls between its other duties.
//!
//! Nothing here runs on the pipeline core. The aux loop calls [`MetricsServer::poll`]; it accepts what is waiting,
//! reads requests without blocking, and answers `GET /metrics` with a body rendered into a buffer allocated at
//! bind time (reused for every response), anything else with 404. Each response closes its connection, which is
//! what Prometheus scrapers expect of a simple exporter and keeps the state per connection tiny.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};

use super::stages::Span;
use super::statsblock::{name_str, StatsBlock, COUNTERS, STAGE_BUCKETS_LE_NS, STAGE_QUANTILES, WAL_MODE_NAMES};
use super::tsc::monotonic_ns;

/// Connections served at once; more wait in the kernel's accept queue.
pub const CONNECTIONS_MAX: usize = 8;
/// Longest request head we read; longer ones are answered 431 and closed.
pub const REQUEST_BYTES_MAX: usize = 4096;
/// Initial capacity of the body and response buffers (the block renders to about 9 KiB).
pub const BODY_BYTES_INITIAL: usize = 16 * 1024;
/// A connection that has not sent a whole request head within this time is closed.
pub const REQUEST_TIMEOUT_NS: u64 = 2_000_000_000;

/// Renders the block into `out` (cleared first), then the build and `process_*` metrics of this process (read
/// from /proc, which allocates a little: this runs on the aux core, never on the pipeline's).
pub fn render(block: &StatsBlock, out: &mut String) {
    out.clear();
    // Writing into a String cannot fail; the results are ignored for that reason.
    let text = block.text_fields();
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        );
    };
    counter(
        out,
        "bourse_rx_total",
        "Datagrams received.",
        block.rx_total(),
    );
    counter(out, "bourse_tx_total", "Datagrams sent.", block.tx_total());
    for &(c, name, help) in COUNTERS.iter() {
        let _ = write!(
            out,
            "# HELP bourse_{name}_total {help}\n# TYPE bourse_{name}_total counter\nbourse_{name}_total {}\n",
            block.counter(c)
        );
    }

    let _ = write!(out, "# HELP bourse_drops_total Datagrams dropped, by reason.\n# TYPE bourse_drops_total counter\n");
    for (i, name) in text.drop_names.iter().enumerate() {
        let n = block.drops(i);
        let name = name_str(name);
        if !name.is_empty() || n != 0 {
            write_reason(out, "bourse_drops_total", name, i, n);
        }
    }
    let _ = write!(out, "# HELP bourse_rejects_total Order Rejected and Cancel Reject messages sent to firms, by reason.\n# TYPE bourse_rejects_total counter\n");
    for (i, name) in text.reject_names.iter().enumerate() {
        let n = block.rejects(i);
        let name = name_str(name);
        if !name.is_empty() || n != 0 {
            write_reason(out, "bourse_rejects_total", name, i, n);
        }
    }

    let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    };
    gauge(
        out,
        "bourse_orders_resting",
        "Orders resting in the books.",
        block.orders_resting() as f64,
    );
    gauge(
        out,
        "bourse_commit_seq",
        "Highest committed input sequence number.",
        block.commit_seq() as f64,
    );
    gauge(
        out,
        "bourse_commit_backlog_inputs",
        "Inputs sequenced past the commit seq: journaled, not yet committed (not acknowledged).",
        block.commit_backlog() as f64,
    );
    let age_ns = monotonic_ns().saturating_sub(block.heartbeat_ns());
    gauge(
        out,
        "bourse_heartbeat_age_seconds",
        "Time since the appliance last updated this block.",
        age_ns as f64 / 1e9,
    );
    let _ = write!(
        out,
        "# HELP bourse_info Static facts about the running appliance.\n# TYPE bourse_info gauge\n\
         bourse_info{{backend=\"",
    );
    escape_label(out, name_str(&text.backend_name));
    let wal_mode = WAL_MODE_NAMES
        .get(block.wal_mode_code() as usize)
        .copied()
        .unwrap_or("unknown");
    let _ = writeln!(out, "\",wal_mode=\"{wal_mode}\"}} 1");

    let _ = write!(
        out,
        "# HELP bourse_stage_latency_seconds Latency between pipeline stages of inputs received from the wire, \
         since the appliance started (idle ticks and admin inputs are not measured).\n\
         # TYPE bourse_stage_latency_seconds histogram\n"
    );
    for span in Span::ALL {
        let tag = span.tag();
        let (count, sum_ns) = block.stage_count_sum(span);
        for (le_ns, n) in STAGE_BUCKETS_LE_NS.iter().zip(block.stage_buckets(span)) {
            let le = *le_ns as f64 / 1e9;
            let _ = writeln!(out, "bourse_stage_latency_seconds_bucket{{stage=\"{tag}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "bourse_stage_latency_seconds_bucket{{stage=\"{tag}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "bourse_stage_latency_seconds_sum{{stage=\"{tag}\"}} {}", sum_ns as f64 / 1e9);
        let _ = writeln!(out, "bourse_stage_latency_seconds_count{{stage=\"{tag}\"}} {count}");
    }
    // The last interval's quantiles, as gauges: a view of "now" that needs no rate() over buckets. Labelled
    // `percentile`, since a `quantile` label is reserved for summaries, whose _count and _sum would be the
    // interval's and so go down.
    let _ = write!(
        out,
        "# HELP bourse_stage_latency_interval_seconds Percentiles of the stage latency over the last exported \
         interval (NaN when it had no samples).\n\
         # TYPE bourse_stage_latency_interval_seconds gauge\n"
    );
    for span in Span::ALL {
        let empty = block.stage_interval_count(span) == 0;
        for ((_, label), v) in STAGE_QUANTILES.iter().zip(block.stage_quantiles_ns(span)) {
            let v = if empty { f64::NAN } else { v as f64 / 1e9 };
            let _ = writeln!(
                out,
                "bourse_stage_latency_interval_seconds{{stage=\"{}\",percentile=\"{label}\"}} {}",
                span.tag(),
                PromFloat(v)
            );
        }
    }
    let _ = write!(
        out,
        "# HELP bourse_stage_latency_interval_samples Wire inputs measured in the last exported interval.\n\
         # TYPE bourse_stage_latency_interval_samples gauge\n"
    );
    for span in Span::ALL {
        let _ = writeln!(
            out,
            "bourse_stage_latency_interval_samples{{stage=\"{}\"}} {}",
            span.tag(),
            block.stage_interval_count(span)
        );
    }
    render_build_info(out);
    render_process(out);
}

/// A sample value as the exposition format spells it (`NaN`, `+Inf`, `-Inf`, or the number).
struct PromFloat(f64);

impl std::fmt::Display for PromFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            write!(f, "{v}")
        }
    }
}

/// `bourse_build_info`, the conventional constant-1 gauge whose labels say what is running.
fn render_build_info(out: &mut String) {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let features = if cfg!(feature = "dpdk") { "dpdk" } else { "" };
    let _ = write!(
        out,
        "# HELP bourse_build_info The running build: version, profile and optional features.\n\
         # TYPE bourse_build_info gauge\n\
         bourse_build_info{{version=\"{}\",profile=\"{profile}\",features=\"{features}\",target_arch=\"{}\",\
         target_os=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
    );
}

/// The standard `process_*` metrics of Prometheus client libraries, from /proc/self (Linux). A figure that
/// cannot be read is left out rather than reported as zero.
fn render_process(out: &mut String) {
    let p = ProcessFacts::read();
    let mut metric = |name: &str, kind: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n", PromFloat(v));
        }
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        p.cpu_seconds,
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        p.resident_bytes,
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        p.virtual_bytes,
    );
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        p.start_time_seconds,
    );
    metric("process_open_fds", "gauge", "Number of open file descriptors.", p.open_fds);
    metric("process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds);
    metric("process_threads", "gauge", "Number of OS threads in the process.", p.threads);
}

/// What /proc says about this process.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessFacts {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub threads: Option<f64>,
}

/// Clock ticks per second of /proc/<pid>/stat's times: USER_HZ, which Linux fixes at 100 on every architecture
/// (the kernel scales to it for user space whatever its internal HZ).
const USER_HZ: f64 = 100.0;

impl ProcessFacts {
    pub fn read() -> ProcessFacts {
        let mut p = ProcessFacts::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            p.parse_stat(&stat, boot_time_seconds());
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            p.parse_status(&status);
        }
        p.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
        p.max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| parse_max_open_files(&l));
        p
    }

    /// Fields of `/proc/<pid>/stat` (proc(5)): after the parenthesised command name, field 14 utime, 15 stime
    /// and 22 starttime (ticks after boot).
    fn parse_stat(&mut self, stat: &str, boot_time: Option<f64>) {
        // The command name may hold spaces and parentheses; the fields start after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return };
        // `rest` starts at field 3 (state).
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(u), Some(s)) = (field(14), field(15)) {
            self.cpu_seconds = Some((u + s) / USER_HZ);
        }
        if let (Some(start), Some(boot)) = (field(22), boot_time) {
            self.start_time_seconds = Some(boot + start / USER_HZ);
        }
    }

    /// `VmRSS`, `VmSize` (kB, whatever the page size) and `Threads` of `/proc/<pid>/status`.
    fn parse_status(&mut self, status: &str) {
        let value = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        self.resident_bytes = value("VmRSS:").map(|kb| kb * 1024.0);
        self.virtual_bytes = value("VmSize:").map(|kb| kb * 1024.0);
        self.threads = value("Threads:");
    }
}

fn boot_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft limit of "Max open files" in /proc/<pid>/limits.
fn parse_max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

fn write_reason(out: &mut String, metric: &str, name: &str, index: usize, n: u64) {
    let _ = write!(out, "{metric}{{reason=\"");
    if name.is_empty() {
        let _ = write!(out, "reason_{index}");
    } else {
        escape_label(out, name);
    }
    let _ = writeln!(out, "\"}} {n}");
}

/// Label values escape backslash, double quote and newline (exposition format 0.0.4).
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

struct Connection {
    stream: TcpStream,
    request: Box<[u8; REQUEST_BYTES_MAX]>,
    request_len: usize,
    /// Bytes of the response in `MetricsServer::response` sent so far, once a response is being written.
    sent: Option<usize>,
    response: Vec<u8>,
    accepted_ns: u64,
}

/// The HTTP/1.1 responder for `GET /metrics`.
pub struct MetricsServer {
    listener: TcpListener,
    connections: Vec<Connection>,
    body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics endpoint: binding {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("metrics endpoint: accepting: {0}")]
    Accept(io::Error),
}

enum Progress {
    Open,
    Closed,
}

impl MetricsServer {
    /// Binds the management address (`127.0.0.1:0` picks a free port; see [`MetricsServer::local_addr`]).
    pub fn bind(addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<MetricsServer, MetricsError> {
        let shown = format!("{addr:?}");
        let bind_err = |source| MetricsError::Bind {
            addr: shown.clone(),
            source,
        };
        let listener = TcpListener::bind(&addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        Ok(MetricsServer {
            listener,
            connections: Vec::with_capacity(CONNECTIONS_MAX),
            body: String::with_capacity(BODY_BYTES_INITIAL),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Does whatever work is ready without blocking: accepts, reads requests, writes responses. Returns the number
    /// of responses completed. Errors on single connections close them; only a failing listener is an error.
    pub fn poll(&mut self, block: &StatsBlock) -> Result<usize, MetricsError> {
        while self.connections.len() < CONNECTIONS_MAX {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.connections.push(Connection {
                        stream,
                        request: Box::new([0; REQUEST_BYTES_MAX]),
                        request_len: 0,
                        sent: None,
                        response: Vec::new(),
                        accepted_ns: monotonic_ns(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A peer that reset before we accepted it is its problem, not the listener's.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(MetricsError::Accept(e)),
            }
        }
        let mut served = 0;
        let mut i = 0;
        while i < self.connections.len() {
            let (progress, done) = self.step(i, block);
            served += done as usize;
            match progress {
                Progress::Open => i += 1,
                Progress::Closed => {
                    self.connections.swap_remove(i);
                }
            }
        }
        Ok(served)
    }

    /// Advances one connection; returns whether it stays open and whether a response was completed.
    fn step(&mut self, index: usize, block: &StatsBlock) -> (Progress, bool) {
        let conn = &mut self.connections[index];
        if conn.sent.is_none() {
            loop {
                if conn.request_len == REQUEST_BYTES_MAX {
                    conn.response = response_bytes(
                        "431 Request Header Fields Too Large",
                        "text/plain",
                        "too large\n",
                    );
                    conn.sent = Some(0);
                    break;
                }
                match conn.stream.read(&mut conn.request[conn.request_len..]) {
                    Ok(0) => return (Progress::Closed, false),
                    Ok(n) => conn.request_len += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return (Progress::Closed, false),
                }
            }
            if conn.sent.is_none() {
                let head = &conn.request[..conn.request_len];
                if !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let waited_ns = monotonic_ns().saturating_sub(conn.accepted_ns);
                    let progress = if waited_ns > REQUEST_TIMEOUT_NS {
                        Progress::Closed
                    } else {
                        Progress::Open
                    };
                    return (progress, false);
                }
                let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
                let mut parts = head[..line_end].split(|&b| b == b' ');
                let method = parts.next().unwrap_or_default();
                let target = parts.next().unwrap_or_default();
                conn.response = match (method, target) {
                    (b"GET", b"/metrics") => {
                        render(block, &mut self.body);
                        response_bytes(
                            "200 OK",
                            "text/plain; version=0.0.4; charset=utf-8",
                            &self.body,
                        )
                    }
                    (b"GET", _) => {
                        response_bytes("404 Not Found", "text/plain", "not found; try /metrics\n")
                    }
                    _ => response_bytes("405 Method Not Allowed", "text/plain", "only GET\n"),
                };
                conn.sent = Some(0);
            }
        }
        let Some(mut sent) = conn.sent else {
            return (Progress::Open, false);
        };
        while sent < conn.response.len() {
            match conn.stream.write(&conn.response[sent..]) {
                Ok(0) => return (Progress::Closed, false),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.sent = Some(sent);
                    return (Progress::Open, false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return (Progress::Closed, false),
            }
        }
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        (Progress::Closed, true)
    }
}

fn response_bytes(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    let mut r = Vec::with_capacity(body.len() + 128);
    let _ = write!(
        r,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    r.extend_from_slice(body.as_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obs::statsblock::StatsWriter;

    #[test]
    fn a_second_endpoint_on_a_bound_address_is_refused() {
        // std's TcpListener sets SO_REUSEADDR, which on Linux only allows binding over TIME_WAIT connections:
        // a second listener on the same address is still refused.
        let first = MetricsServer::bind("127.0.0.1:0").unwrap();
        let addr = first.local_addr().unwrap();
        match MetricsServer::bind(addr) {
            Err(MetricsError::Bind { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}"),
            Err(e) => panic!("expected a bind error, got {e}"),
            Ok(_) => panic!("two metrics endpoints bound {addr}"),
        }
    }

    #[test]
    fn render_has_help_type_and_values() {
        let w = StatsWriter::in_memory();
        w.add_rx(7);
        w.set_names("socket", &["bad_checksum"], &[]);
        w.add_drop(0, 2);
        let mut out = String::new();
        render(w.block(), &mut out);
        assert!(
            out.contains("# TYPE bourse_rx_total counter\nbourse_rx_total 7\n"),
            "{out}"
        );
        assert!(
            out.contains("bourse_drops_total{reason=\"bad_checksum\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("bourse_info{backend=\"socket\",wal_mode=\"unknown\"} 1\n"),
            "{out}"
        );
    }

    #[test]
    fn every_counter_is_rendered_with_help() {
        use crate::obs::statsblock::Counter;
        let w = StatsWriter::in_memory();
        w.set_counter(Counter::KernelDrops, 11);
        let mut out = String::new();
        render(w.block(), &mut out);
        for (_, name, help) in COUNTERS {
            let metric = format!("bourse_{name}_total");
            assert!(out.contains(&format!("# HELP {metric} {help}\n# TYPE {metric} counter\n")), "{out}");
        }
        assert!(out.contains("\nbourse_kernel_drops_total 11\n"), "{out}");
    }

    #[test]
    fn labels_are_escaped() {
        let mut out = String::new();
        escape_label(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }
}
