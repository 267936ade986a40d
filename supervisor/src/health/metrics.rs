//! `/metrics`: the supervisor process, the child, check results and latencies, the schema version.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use common::health::CheckName;

use super::checks::{Probe, Snapshot};
use super::exposition::{self, Format};
use crate::state::Phase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    path: &'static str,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    check: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// Paths answered often enough to count without a map lookup.
const HOT_PATHS: [&str; 5] = [
    "/livez",
    "/readyz",
    "/readyz/<check>",
    "/health",
    "/metrics",
];

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// The usual (path, code) pairs resolved once: counting them is one atomic add, no map lookup.
    hot_requests: Vec<(RequestLabels, Counter)>,
    check_runs: Family<RunLabels, Counter>,
    check_seconds: Family<CheckLabels, Histogram>,
    check_up: Family<CheckLabels, Gauge>,
    evictions: Counter,
    phase: Family<PhaseLabels, Gauge>,
    child_up: Gauge,
    child_restarts: Counter,
    child_rss: Gauge,
    migration_version: Gauge,
    process_rss: Gauge,
    process_cpu: FloatCounter,
    process_start: FloatGauge,
    process_open_fds: Gauge,
    /// Process statistics are read on each scrape; the lock also serialises scrapes.
    system: Mutex<System>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "supervisor_health_requests",
            "Requests answered by the health listener",
            requests.clone(),
        );
        let check_runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "supervisor_health_check_runs",
            "Background check runs by result",
            check_runs.clone(),
        );
        let check_seconds =
            Family::<CheckLabels, Histogram>::new_with_constructor(check_seconds_histogram as _);
        registry.register(
            "supervisor_health_check_duration_seconds",
            "Duration of background check runs",
            check_seconds.clone(),
        );
        let check_up = Family::<CheckLabels, Gauge>::default();
        registry.register(
            "supervisor_health_check_up",
            "1 while a readiness check passes (or warns), else 0",
            check_up.clone(),
        );
        let evictions = Counter::default();
        registry.register(
            "supervisor_health_connections_evicted",
            "Connections closed to make room for a new one while every slot was taken",
            evictions.clone(),
        );
        let phase = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "supervisor_phase",
            "1 for the supervisor's current lifecycle phase",
            phase.clone(),
        );
        let child_up = Gauge::default();
        registry.register(
            "supervisor_child_up",
            "1 while the child is alive and its check passes",
            child_up.clone(),
        );
        let child_restarts = Counter::default();
        registry.register(
            "supervisor_child_restarts",
            "Restarts of the child after a failure",
            child_restarts.clone(),
        );
        let child_rss = Gauge::default();
        registry.register(
            "supervisor_child_resident_memory_bytes",
            "Resident memory of the child process",
            child_rss.clone(),
        );
        let migration_version = Gauge::default();
        registry.register(
            "supervisor_migration_version",
            "Schema version after the migrations ran (0 until they have)",
            migration_version.clone(),
        );
        let process_rss = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the supervisor",
            process_rss.clone(),
        );
        let process_cpu = FloatCounter::default();
        registry.register(
            "process_cpu_seconds",
            "CPU time used by the supervisor",
            process_cpu.clone(),
        );
        let process_start = FloatGauge::default();
        registry.register(
            "process_start_time_seconds",
            "Start time of the supervisor since the Unix epoch",
            process_start.clone(),
        );
        let process_open_fds = Gauge::default();
        registry.register(
            "process_open_fds",
            "Open file descriptors of the supervisor",
            process_open_fds.clone(),
        );
        let hot_requests = HOT_PATHS
            .iter()
            .flat_map(|&path| [200, 503].map(|code| RequestLabels { path, code }))
            .map(|labels| {
                let counter = requests.get_or_create(&labels).clone();
                (labels, counter)
            })
            .collect();
        Metrics {
            registry,
            requests,
            hot_requests,
            check_runs,
            check_seconds,
            check_up,
            evictions,
            phase,
            child_up,
            child_restarts,
            child_rss,
            migration_version,
            process_rss,
            process_cpu,
            process_start,
            process_open_fds,
            system: Mutex::new(System::new()),
        }
    }

    /// Counts an answered request; `path` is one of a fixed set, so the label stays small.
    pub fn record_request(&self, path: &'static str, code: u16) {
        if let Some((_, counter)) = self
            .hot_requests
            .iter()
            .find(|(labels, _)| labels.code == code && labels.path == path)
        {
            counter.inc();
            return;
        }
        self.requests
            .get_or_create(&RequestLabels { path, code })
            .inc();
    }

    /// Counts a connection closed to make room for another.
    pub fn record_eviction(&self) {
        self.evictions.inc();
    }

    /// Counts one background run of `check`.
    pub fn record_check(&self, check: CheckName, passed: bool, took: Duration) {
        let check = check.as_str();
        let result = if passed { "pass" } else { "fail" };
        self.check_runs
            .get_or_create(&RunLabels { check, result })
            .inc();
        self.check_seconds
            .get_or_create(&CheckLabels { check })
            .observe(took.as_secs_f64());
    }

    /// The exposition in `format` with everything derived from `snapshot` brought up to date.
    pub fn render(&self, snapshot: &Snapshot, format: Format) -> String {
        let mut system = self.system.lock().unwrap_or_else(PoisonError::into_inner);
        for check in CheckName::ALL {
            let up = snapshot.verdict(check, Probe::Ready).passing();
            self.check_up
                .get_or_create(&CheckLabels {
                    check: check.as_str(),
                })
                .set(i64::from(up));
        }
        for phase in [
            Phase::Starting,
            Phase::Running,
            Phase::Draining,
            Phase::Exited,
        ] {
            let current = phase == snapshot.phase;
            self.phase
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(i64::from(current));
        }
        let child_up =
            snapshot.child.is_some() && snapshot.verdict(CheckName::App, Probe::Live).passing();
        self.child_up.set(i64::from(child_up));
        let restarts = u64::from(snapshot.restarts);
        let counted = self.child_restarts.get();
        if restarts > counted {
            self.child_restarts.inc_by(restarts - counted);
        }
        let child_rss = snapshot
            .current_child_reading()
            .and_then(|r| r.rss_bytes)
            .unwrap_or(0);
        self.child_rss.set(clamp(child_rss));
        self.migration_version
            .set(snapshot.migration_version.unwrap_or(0));
        self.update_process(&mut system);
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        match format {
            Format::OpenMetrics => text,
            Format::Text => exposition::to_text(&text),
        }
    }

    fn update_process(&self, system: &mut System) {
        let pid = Pid::from_u32(std::process::id());
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        if let Some(me) = system.process(pid) {
            self.process_rss.set(clamp(me.memory()));
            self.process_start.set(me.start_time() as f64);
            let cpu = me.accumulated_cpu_time() as f64 / 1e3;
            let counted = self.process_cpu.get();
            if cpu > counted {
                self.process_cpu.inc_by(cpu - counted);
            }
        } else if self.process_start.get() == 0.0 {
            let now = UNIX_EPOCH.elapsed().unwrap_or_default();
            self.process_start.set(now.as_secs_f64());
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.process_open_fds.set(clamp(fds.count() as u64));
        }
    }
}

fn check_seconds_histogram() -> Histogram {
    // 0.25 ms .. about 1 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 13))
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
    }

    #[test]
    fn process_figures_are_real() {
        let metrics = Metrics::new();
        let snapshot = Snapshot {
            now: Instant::now(),
            phase: Phase::Running,
            child: None,
            child_reading: None,
            postgres: None,
            restarts: 2,
            migration_version: Some(7),
            lock_wait: None,
        };
        // Burn CPU until the kernel has accounted 0.2 s to this process (bounded by wall-clock time).
        let ticks = || -> u64 {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
        };
        let began = Instant::now();
        let mut x = 0u64;
        while ticks() < 20 {
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "no CPU time accounted"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let text = metrics.render(&snapshot, Format::OpenMetrics);
        assert!(
            value(&text, "process_resident_memory_bytes") > 1e6,
            "{text}"
        );
        assert!(value(&text, "process_cpu_seconds_total") >= 0.19, "{text}");
        assert!(value(&text, "process_open_fds") >= 3.0, "{text}");
        assert!(value(&text, "process_start_time_seconds") > 1.7e9, "{text}");
        assert_eq!(value(&text, "supervisor_child_restarts_total"), 2.0);
        assert_eq!(value(&text, "supervisor_migration_version"), 7.0);
        assert_eq!(value(&text, "supervisor_child_up"), 0.0);
        // Restarts are a counter: it follows the state, never double counts.
        let text = metrics.render(&snapshot, Format::OpenMetrics);
        assert_eq!(value(&text, "supervisor_child_restarts_total"), 2.0);
        assert!(text.ends_with("# EOF\n"));
        let text = metrics.render(&snapshot, Format::Text);
        assert_eq!(value(&text, "supervisor_child_restarts_total"), 2.0);
        assert!(
            text.contains("# TYPE supervisor_child_restarts_total counter\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }
}
