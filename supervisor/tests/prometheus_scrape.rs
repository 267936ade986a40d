//! `/metrics` says which format it speaks: OpenMetrics 1.0 for clients that ask for it (Prometheus does),
//! 0.0.4 text for the rest, each under its own `Content-Type`; and a real Prometheus server scraping the
//! listener in either format keeps every metric's type and help.

mod health_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use health_support::prometheus::{self, AcceptProxy, Prometheus};
use health_support::{config, ChildProcess, Harness};
use supervisor::health::{ChildCheck, Details};
use supervisor::state::Phase;
use testkit::{PgCluster, Response};

/// What Prometheus 2.x sends.
const PROMETHEUS_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
    version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const TEXT_ACCEPT: &str = "text/plain;version=0.0.4";
const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Families every exposition has (each kind of metric the listener registers).
const SOME_FAMILIES: [&str; 5] = [
    "supervisor_phase",
    "supervisor_health_check_duration_seconds",
    "process_open_fds",
    "process_start_time_seconds",
    "supervisor_child_up",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// The suffixes a family's samples carry, by the family's type (as the format names it).
    fn suffixes(self, kind: &str) -> &'static [&'static str] {
        match (self, kind) {
            (Format::OpenMetrics, "counter") => &["_total", "_created"],
            (Format::OpenMetrics, "histogram") => &["_bucket", "_sum", "_count", "_created"],
            (Format::OpenMetrics, "summary") => &["", "_sum", "_count", "_created"],
            (Format::OpenMetrics, "info") => &["_info"],
            (Format::OpenMetrics, "gaugehistogram") => &["_bucket", "_gcount", "_gsum"],
            (Format::Text, "histogram") => &["_bucket", "_sum", "_count"],
            (Format::Text, "summary") => &["", "_sum", "_count"],
            _ => &[""],
        }
    }

    /// The family a sample name belongs to among `families` (name to type), if any.
    fn family_of<'a>(
        self,
        sample: &str,
        families: &'a BTreeMap<String, String>,
    ) -> Option<&'a str> {
        families
            .iter()
            .find(|(name, kind)| {
                sample
                    .strip_prefix(name.as_str())
                    .is_some_and(|suffix| self.suffixes(kind).contains(&suffix))
            })
            .map(|(name, _)| name.as_str())
    }
}

/// One exposition, read: each family's type and help, and every sample's metric name.
#[derive(Debug)]
struct Exposition {
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
    samples: BTreeSet<String>,
}

impl Exposition {
    fn parse(body: &str) -> Exposition {
        let mut types = BTreeMap::new();
        let mut helps = BTreeMap::new();
        let mut samples = BTreeSet::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("a type");
                types.insert(name.to_owned(), kind.to_owned());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("a help text");
                helps.insert(name.to_owned(), help.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).expect("a value");
                samples.insert(line[..end].to_owned());
            }
        }
        Exposition {
            types,
            helps,
            samples,
        }
    }

    /// Every family has a type and a help text, and every sample belongs to a family of this format.
    fn assert_consistent(&self, format: Format, body: &str) {
        assert_eq!(
            self.types.keys().collect::<Vec<_>>(),
            self.helps.keys().collect::<Vec<_>>(),
            "{format:?}: families with a type and with a help differ:\n{body}"
        );
        for help in self.helps.values() {
            assert!(!help.is_empty(), "{format:?}: an empty help text:\n{body}");
        }
        for sample in &self.samples {
            assert!(
                format.family_of(sample, &self.types).is_some(),
                "{format:?}: {sample} belongs to no declared family:\n{body}"
            );
        }
        for family in SOME_FAMILIES {
            assert!(self.types.contains_key(family), "{family} missing:\n{body}");
        }
    }
}

/// Prometheus's name for a type in its metadata API.
fn stored_type(kind: &str) -> &str {
    if kind == "untyped" {
        "unknown"
    } else {
        kind
    }
}

fn running_listener(pg: &PgCluster) -> (Harness, ChildProcess) {
    let db = pg.create_database();
    let health = Harness::start(config(ChildCheck::None, Details::Auto), &pg.url(&db));
    let child = ChildProcess::sleep();
    health.state.set_child(Some(child.info()));
    health.state.set_migration_version(1);
    health.state.set_phase(Phase::Running);
    // Every family has samples once the first database check ran.
    health.wait_for("/readyz", Duration::from_secs(10), |r| r.status == 200);
    (health, child)
}

fn metrics(health: &Harness, accept: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    health.endpoint().get("/metrics", &headers)
}

#[test]
fn the_content_type_names_the_format_of_the_body() {
    let pg = PgCluster::start();
    let (health, _child) = running_listener(&pg);
    for (accept, format, content_type) in [
        (None, Format::Text, TEXT_TYPE),
        (Some(TEXT_ACCEPT), Format::Text, TEXT_TYPE),
        (Some("*/*"), Format::Text, TEXT_TYPE),
        (
            Some(PROMETHEUS_ACCEPT),
            Format::OpenMetrics,
            OPENMETRICS_TYPE,
        ),
        (
            Some("application/openmetrics-text"),
            Format::OpenMetrics,
            OPENMETRICS_TYPE,
        ),
    ] {
        let reply = metrics(&health, accept);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some(content_type),
            "Accept: {accept:?}"
        );
        assert_eq!(reply.header("vary"), Some("accept"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let exposition = Exposition::parse(&reply.text());
        exposition.assert_consistent(format, &reply.text());
        match format {
            Format::OpenMetrics => {
                assert!(reply.text().ends_with("# EOF\n"), "{}", reply.text());
                assert_eq!(
                    exposition.types["supervisor_health_requests"],
                    "counter",
                    "{}",
                    reply.text()
                );
            }
            Format::Text => {
                assert!(!reply.text().contains("# EOF"), "{}", reply.text());
                assert_eq!(
                    exposition.types["supervisor_health_requests_total"],
                    "counter",
                    "{}",
                    reply.text()
                );
            }
        }
    }

    // promtool (Prometheus 2.42) lints 0.0.4 text only: it reads an OpenMetrics counter's `_total` samples as
    // a family without help, so the OpenMetrics body is left to the Prometheus server test below.
    let Some(promtool) = prometheus::promtool() else {
        eprintln!("skipped `promtool check metrics`: promtool is not installed (apt-get install prometheus)");
        return;
    };
    let body = metrics(&health, Some(TEXT_ACCEPT)).text();
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}\non:\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_prometheus_server_keeps_every_metrics_type_and_help() {
    let Some(binary) = prometheus::binary() else {
        eprintln!("skipped: the prometheus binary is not installed (apt-get install prometheus)");
        return;
    };
    let pg = PgCluster::start();
    let (health, _child) = running_listener(&pg);
    // Prometheus asks for OpenMetrics first; through the proxy it can only ask for 0.0.4 text.
    let text_proxy = AcceptProxy::start(health.addr, TEXT_ACCEPT);
    let jobs = [
        ("openmetrics", Format::OpenMetrics, PROMETHEUS_ACCEPT),
        ("text", Format::Text, TEXT_ACCEPT),
    ];
    let server = Prometheus::start(
        &binary,
        &[("openmetrics", health.addr), ("text", text_proxy.addr())],
    );
    // Both targets scraped successfully.
    server.wait_api("/api/v1/targets", Duration::from_secs(30), |data| {
        let targets = data["activeTargets"].as_array()?;
        (targets.len() == 2 && targets.iter().all(|t| t["health"] == "up")).then_some(())
    });

    let everything = server.wait_api("/api/v1/metadata", Duration::from_secs(30), |data| {
        let stored = data.as_object()?;
        let complete = jobs.iter().all(|(_, _, accept)| {
            let exposition = Exposition::parse(&metrics(&health, Some(accept)).text());
            exposition
                .types
                .keys()
                .all(|name| stored.contains_key(name))
        });
        complete.then(|| data.clone())
    });

    for (job, format, accept) in jobs {
        let reply = metrics(&health, Some(accept));
        let exposition = Exposition::parse(&reply.text());
        let selector = format!("%7Bjob%3D%22{job}%22%7D");
        // What Prometheus keeps for this target: metric name to (type, help).
        let kept: BTreeMap<String, (String, String)> = server.wait_api(
            &format!("/api/v1/targets/metadata?match_target={selector}"),
            Duration::from_secs(30),
            |data| {
                let kept: BTreeMap<String, (String, String)> = data
                    .as_array()?
                    .iter()
                    .map(|m| {
                        (
                            m["metric"].as_str().unwrap_or_default().to_owned(),
                            (
                                m["type"].as_str().unwrap_or_default().to_owned(),
                                m["help"].as_str().unwrap_or_default().to_owned(),
                            ),
                        )
                    })
                    .collect();
                exposition
                    .types
                    .keys()
                    .all(|name| kept.contains_key(name))
                    .then_some(kept)
            },
        );
        for (name, kind) in &exposition.types {
            let help = &exposition.helps[name];
            assert_eq!(
                kept[name],
                (stored_type(kind).to_owned(), help.clone()),
                "{job}: {name}"
            );
            let global = &everything[name];
            assert!(
                global.as_array().is_some_and(|entries| entries
                    .iter()
                    .any(|e| { e["type"] == stored_type(kind) && e["help"] == help.as_str() })),
                "{job}: /api/v1/metadata has {name} as {global}"
            );
        }
        // Every series Prometheus stored from this target maps to a family it knows the type and help of.
        let types: BTreeMap<String, String> = kept
            .iter()
            .map(|(name, (kind, _))| (name.clone(), kind.clone()))
            .collect();
        let stored: BTreeSet<String> = server.wait_api(
            &format!("/api/v1/label/__name__/values?match%5B%5D={selector}"),
            Duration::from_secs(30),
            |data| {
                let names: BTreeSet<String> = data
                    .as_array()?
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect();
                exposition.samples.is_subset(&names).then_some(names)
            },
        );
        for series in stored
            .iter()
            .filter(|n| *n != "up" && !n.starts_with("scrape_"))
        {
            let family = format
                .family_of(series, &types)
                .unwrap_or_else(|| panic!("{job}: Prometheus stored {series} without its type"));
            let (kind, help) = &kept[family];
            assert!(
                kind != "unknown" && !help.is_empty(),
                "{job}: {series} stored as {kind} with help {help:?}"
            );
        }
        eprintln!(
            "{job}: Prometheus keeps {} families and {} series names with their type and help",
            exposition.types.len(),
            stored.len()
        );
    }
}
