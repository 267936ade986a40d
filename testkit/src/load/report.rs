//! The record of a run: every request's outcome and latency, summarised overall, per phase and per second.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{ConnectionCounts, LoadConfig, Outcome, WorkerLog};

/// Why the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Duration,
    /// The request budget was spent.
    Requests,
    StopFile,
    /// The caller's stop future completed (SIGINT or SIGTERM for the binary).
    Signal,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Requests => "requests",
            StopReason::StopFile => "stop_file",
            StopReason::Signal => "signal",
        }
    }
}

/// One request, in 12 bytes so that millions fit: when it started (ms into the run), how long it took until its
/// outcome was known (µs, connecting included), the outcome and the phase it started in.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    start_ms: u32,
    latency_us: u32,
    outcome: Outcome,
    phase: u16,
}

impl Record {
    pub(crate) fn new(start: Duration, latency: Duration, outcome: Outcome, phase: u16) -> Record {
        Record {
            start_ms: u32::try_from(start.as_millis()).unwrap_or(u32::MAX),
            latency_us: u32::try_from(latency.as_micros()).unwrap_or(u32::MAX),
            outcome,
            phase,
        }
    }

    pub fn start(&self) -> Duration {
        Duration::from_millis(self.start_ms.into())
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.into())
    }

    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
}

/// Latency percentiles (nearest rank) over a set of requests, whatever their outcome: a failure's latency is how
/// long the client waited to learn it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latencies {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Counts by outcome and latencies over a set of requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub total: u64,
    counts: [u64; Outcome::ALL.len()],
    /// `None` for no requests.
    pub latency: Option<Latencies>,
}

impl Stats {
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Stats {
        let mut counts = [0; Outcome::ALL.len()];
        let mut latencies = Vec::new();
        for record in records {
            counts[record.outcome.index()] += 1;
            latencies.push(record.latency_us);
        }
        latencies.sort_unstable();
        let rank = |q: f64| {
            let index =
                ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
            Duration::from_micros(latencies[index].into())
        };
        Stats {
            total: latencies.len() as u64,
            counts,
            latency: (!latencies.is_empty()).then(|| Latencies {
                p50: rank(0.50),
                p99: rank(0.99),
                max: rank(1.0),
            }),
        }
    }

    pub fn count(&self, outcome: Outcome) -> u64 {
        self.counts[outcome.index()]
    }

    pub fn ok(&self) -> u64 {
        self.count(Outcome::Ok)
    }

    pub fn failed(&self) -> u64 {
        self.total - self.ok()
    }

    /// The failure kinds that occurred, with their counts.
    pub fn failures(&self) -> Vec<(Outcome, u64)> {
        Outcome::ALL
            .iter()
            .filter(|outcome| **outcome != Outcome::Ok)
            .map(|outcome| (*outcome, self.count(*outcome)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// `total`, `ok`, `failed`, `failures` (every kind when `all_kinds`, else only those that occurred) and
    /// `latency_ms`.
    fn to_json(&self, all_kinds: bool) -> Map<String, Value> {
        let failures: Map<String, Value> = Outcome::ALL
            .iter()
            .filter(|outcome| **outcome != Outcome::Ok)
            .map(|outcome| (*outcome, self.count(*outcome)))
            .filter(|(_, count)| all_kinds || *count > 0)
            .map(|(outcome, count)| (outcome.name().to_owned(), count.into()))
            .collect();
        let latency = self.latency.map_or(
            Value::Null,
            |l| json!({"p50": millis(l.p50), "p99": millis(l.p99), "max": millis(l.max)}),
        );
        let mut map = Map::new();
        map.insert("total".into(), self.total.into());
        map.insert("ok".into(), self.ok().into());
        map.insert("failed".into(), self.failed().into());
        map.insert("failures".into(), failures.into());
        map.insert("latency_ms".into(), latency);
        map
    }

    fn describe(&self) -> String {
        let mut line = format!(
            "{} total, {} ok, {} failed",
            self.total,
            self.ok(),
            self.failed()
        );
        for (outcome, count) in self.failures() {
            let _ = write!(line, ", {} {count}", outcome.name());
        }
        if let Some(l) = self.latency {
            let _ = write!(
                line,
                "; latency p50 {} p99 {} max {}",
                human(l.p50),
                human(l.p99),
                human(l.max)
            );
        }
        line
    }
}

/// The requests that started while one phase was named.
#[derive(Clone, Debug)]
pub struct Phase {
    pub name: String,
    /// When its first and its last request started, since the run began.
    pub first_start: Duration,
    pub last_start: Duration,
    pub stats: Stats,
}

/// The requests that started in one second of the run.
#[derive(Clone, Debug)]
pub struct Second {
    /// Seconds since the run began.
    pub second: u64,
    pub stats: Stats,
}

/// Everything a run recorded.
#[derive(Clone, Debug)]
pub struct Report {
    pub url: String,
    pub method: String,
    pub connections: usize,
    pub rate: Option<f64>,
    pub timeout: Duration,
    /// Wall-clock start, in ms since the Unix epoch: lines the timeline up with other logs.
    pub started_unix_ms: u64,
    pub elapsed: Duration,
    pub stopped_by: StopReason,
    pub connection_counts: ConnectionCounts,
    phase_names: Vec<String>,
    /// In start order.
    records: Vec<Record>,
}

impl Report {
    pub(crate) fn new(
        config: &LoadConfig,
        started_unix_ms: u64,
        elapsed: Duration,
        stopped_by: StopReason,
        phase_names: Vec<String>,
        logs: Vec<WorkerLog>,
    ) -> Report {
        let mut connection_counts = ConnectionCounts::default();
        let mut records = Vec::with_capacity(logs.iter().map(|log| log.records.len()).sum());
        for log in logs {
            connection_counts.add(log.connections);
            records.extend(log.records);
        }
        records.sort_by_key(|record| record.start_ms);
        Report {
            url: config.target.url().to_owned(),
            method: config.method.to_string(),
            connections: config.connections,
            rate: config.rate,
            timeout: config.timeout,
            started_unix_ms,
            elapsed,
            stopped_by,
            connection_counts,
            phase_names,
            records,
        }
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Over every request of the run.
    pub fn stats(&self) -> Stats {
        Stats::from_records(&self.records)
    }

    /// The phases that have requests, in the order they were first named.
    pub fn phases(&self) -> Vec<Phase> {
        self.phase_names
            .iter()
            .enumerate()
            .filter_map(|(index, name)| {
                let records: Vec<&Record> = self
                    .records
                    .iter()
                    .filter(|record| usize::from(record.phase) == index)
                    .collect();
                Some(Phase {
                    name: name.clone(),
                    first_start: records.first()?.start(),
                    last_start: records.last()?.start(),
                    stats: Stats::from_records(records),
                })
            })
            .collect()
    }

    pub fn phase(&self, name: &str) -> Option<Phase> {
        self.phases().into_iter().find(|phase| phase.name == name)
    }

    /// One entry per second of the run, empty seconds included (an outage where nothing could start shows).
    pub fn timeline(&self) -> Vec<Second> {
        let last_second = self
            .records
            .last()
            .map_or(0, |record| u64::from(record.start_ms / 1000));
        let seconds = last_second.max(self.elapsed.as_secs().saturating_sub(1)) + 1;
        let mut rest = self.records.as_slice();
        (0..seconds)
            .map(|second| {
                let end =
                    rest.partition_point(|record| u64::from(record.start_ms / 1000) <= second);
                let (these, later) = rest.split_at(end);
                rest = later;
                Second {
                    second,
                    stats: Stats::from_records(these),
                }
            })
            .collect()
    }

    /// The JSON document `loadgen --json` writes.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("url".into(), self.url.clone().into());
        doc.insert("method".into(), self.method.clone().into());
        doc.insert("connections".into(), self.connections.into());
        doc.insert("rate".into(), self.rate.map_or(Value::Null, Value::from));
        doc.insert("timeout_ms".into(), millis(self.timeout));
        doc.insert("started_unix_ms".into(), self.started_unix_ms.into());
        doc.insert("elapsed_s".into(), seconds(self.elapsed));
        doc.insert("stopped_by".into(), self.stopped_by.name().into());
        doc.extend(self.stats().to_json(true));
        let counts = self.connection_counts;
        doc.insert(
            "connection_events".into(),
            json!({
                "opened": counts.opened,
                "closed_idle_by_server": counts.closed_idle,
                "closed_on_connection_close": counts.told_to_close,
            }),
        );
        let phases: Vec<Value> = self
            .phases()
            .into_iter()
            .map(|phase| {
                let mut map = Map::new();
                map.insert("name".into(), phase.name.into());
                map.insert("first_start_s".into(), seconds(phase.first_start));
                map.insert("last_start_s".into(), seconds(phase.last_start));
                map.extend(phase.stats.to_json(true));
                Value::Object(map)
            })
            .collect();
        doc.insert("phases".into(), phases.into());
        let timeline: Vec<Value> = self
            .timeline()
            .into_iter()
            .map(|second| {
                let mut map = Map::new();
                map.insert("second".into(), second.second.into());
                map.extend(second.stats.to_json(false));
                Value::Object(map)
            })
            .collect();
        doc.insert("timeline".into(), timeline.into());
        Value::Object(doc)
    }

    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let stats = self.stats();
        let mut text = format!(
            "{} {}: {} connections{}, {:.1} s (ended by {})\n",
            self.method,
            self.url,
            self.connections,
            self.rate
                .map_or(String::new(), |rate| format!(" at up to {rate} req/s")),
            self.elapsed.as_secs_f64(),
            self.stopped_by.name()
        );
        let _ = writeln!(text, "  requests    {}", stats.describe());
        let rate = stats.total as f64 / self.elapsed.as_secs_f64().max(1e-3);
        let _ = writeln!(text, "  throughput  {rate:.0} req/s");
        let counts = self.connection_counts;
        let _ = writeln!(
            text,
            "  connections {} opened: {} after the server closed an idle one, {} after Connection: close",
            counts.opened, counts.closed_idle, counts.told_to_close
        );
        let phases = self.phases();
        if phases.len() > 1
            || phases
                .first()
                .is_some_and(|phase| phase.name != super::DEFAULT_PHASE)
        {
            for phase in phases {
                let _ = writeln!(
                    text,
                    "  phase {:<14} {}",
                    phase.name,
                    phase.stats.describe()
                );
            }
        }
        text
    }
}

/// Milliseconds with microsecond precision, as JSON.
fn millis(d: Duration) -> Value {
    json!(d.as_micros() as f64 / 1000.0)
}

fn seconds(d: Duration) -> Value {
    json!(d.as_millis() as f64 / 1000.0)
}

fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}
