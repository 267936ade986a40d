//! Command-line arguments and `HEALTH_ADDR` into [`Options`]; every mistake is a usage error (exit 64).

use std::ffi::OsString;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};
use common::health::CheckName;

use crate::target::{Target, UrlTarget, DEFAULT_HEALTH_ADDR};

/// The default total deadline: well inside any sensible Docker HEALTHCHECK timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds that keep deadlines meaningful (and `Instant` arithmetic far from overflow).
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_WATCH_INTERVAL: Duration = Duration::from_secs(24 * 3600);

#[derive(Parser, Debug)]
#[command(
    name = "probe",
    version,
    about = "Checks the health of a time-tracker container (its HEALTHCHECK, and the operator's view).",
    after_help = "By default GETs /health from the supervisor at HEALTH_ADDR (default 0.0.0.0:8081, \
reached on loopback) and prints one line; the time in parentheses is the round trip.\n\n\
Exit status: 0 pass or warn; 1 fail, unreachable, timeout or malformed answer; 64 usage error.",
    group(ArgGroup::new("endpoint").args(["ready", "live"])),
    group(ArgGroup::new("format").args(["json", "verbose", "quiet"])),
)]
struct Args {
    /// Check readiness instead: GET /readyz?verbose
    #[arg(long)]
    ready: bool,
    /// Check liveness instead: GET /livez?verbose
    #[arg(long)]
    live: bool,
    /// Print the health document (or one built from the answer)
    #[arg(long)]
    json: bool,
    /// Print a table of every check, then the summary line
    #[arg(long)]
    verbose: bool,
    /// Print nothing; only the exit status tells
    #[arg(long)]
    quiet: bool,
    /// Probe this http:// URL instead of HEALTH_ADDR (without a path, the path of --ready/--live/default)
    // Validated after parsing: clap would echo the rejected value, and a URL may carry a password.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Leave CHECK (supervisor, app or postgres) out of the verdict; repeatable. Adds exclude=CHECK to the query,
    /// e.g. `--ready --exclude postgres` for a container health check that must not follow the database
    #[arg(long, value_name = "CHECK", value_parser = parse_check)]
    exclude: Vec<String>,
    /// Total deadline for connect, request and answer, e.g. 500ms, 2s
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Keep polling (default every 2s) and print a timestamped line on every change, until SIGINT/SIGTERM
    #[arg(
        long,
        value_name = "INTERVAL",
        num_args = 0..=1,
        default_missing_value = "2s",
        value_parser = parse_interval,
        conflicts_with = "format"
    )]
    watch: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Ready,
    Live,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Health => "/health",
            Endpoint::Ready => "/readyz?verbose",
            Endpoint::Live => "/livez?verbose",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Line,
    Json,
    Verbose,
    Quiet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub target: Target,
    pub format: Format,
    pub timeout: Duration,
    /// `Some(interval)` with `--watch`.
    pub watch: Option<Duration>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Options),
    /// `--help` or `--version`: print `text` to stdout and exit 0.
    Info(String),
    /// A usage error: print `message` to stderr and exit 64.
    Usage(String),
}

/// Parses `args` (program name first) with `health_addr` being the value of `HEALTH_ADDR`, if set.
pub fn parse(args: impl IntoIterator<Item = OsString>, health_addr: Option<OsString>) -> Parsed {
    let mut command = Args::command();
    let matches = match command.try_get_matches_from_mut(args) {
        Ok(matches) => matches,
        Err(e) => return from_clap_error(e),
    };
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => return from_clap_error(e.with_cmd(&command)),
    };
    let endpoint = if args.ready {
        Endpoint::Ready
    } else if args.live {
        Endpoint::Live
    } else {
        Endpoint::Health
    };
    let format = if args.json {
        Format::Json
    } else if args.verbose {
        Format::Verbose
    } else if args.quiet {
        Format::Quiet
    } else {
        Format::Line
    };
    let url = match args.url.as_deref().map(Target::from_url).transpose() {
        Ok(url) => url,
        Err(reason) => {
            let e = command.error(
                ErrorKind::ValueValidation,
                format!("invalid --url: {reason}"),
            );
            return from_clap_error(e);
        }
    };
    let target = match url {
        Some(UrlTarget { has_path: true, .. }) if endpoint != Endpoint::Health => {
            let flag = if endpoint == Endpoint::Ready {
                "--ready"
            } else {
                "--live"
            };
            let e = command.error(
                ErrorKind::ArgumentConflict,
                format!("--url already names a path; {flag} would replace it (drop one of them)"),
            );
            return from_clap_error(e);
        }
        Some(UrlTarget {
            target,
            has_path: true,
        }) => target,
        Some(UrlTarget {
            target,
            has_path: false,
        }) => target.with_path(endpoint.path()),
        None => {
            let addr = match &health_addr {
                None => DEFAULT_HEALTH_ADDR.to_owned(),
                Some(value) => match value.to_str() {
                    Some(value) => value.to_owned(),
                    None => return Parsed::Usage("error: HEALTH_ADDR is not valid UTF-8\n".into()),
                },
            };
            match Target::from_health_addr(&addr, endpoint.path()) {
                Ok(target) => target,
                Err(reason) => return Parsed::Usage(format!("error: {reason}\n")),
            }
        }
    };
    Parsed::Run(Options {
        target: target.excluding(&args.exclude),
        format,
        timeout: args.timeout.unwrap_or(DEFAULT_TIMEOUT),
        watch: args.watch,
    })
}

fn from_clap_error(e: clap::Error) -> Parsed {
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Parsed::Info(text),
        _ => Parsed::Usage(text),
    }
}

/// The supervisor's health listener answers 400 to `?exclude=` with any other name.
fn parse_check(value: &str) -> Result<String, String> {
    CheckName::parse(value)
        .map(|check| check.as_str().to_owned())
        .ok_or_else(|| format!("unknown check; checks are {}", CheckName::LIST))
}

fn parse_bounded(value: &str, max: Duration) -> Result<Duration, String> {
    let duration = common::duration::parse_duration(value)?;
    if duration.is_zero() {
        return Err("must be more than 0".into());
    }
    if duration > max {
        return Err(format!(
            "must be at most {}",
            common::duration::format_duration(max)
        ));
    }
    Ok(duration)
}

fn parse_timeout(value: &str) -> Result<Duration, String> {
    parse_bounded(value, MAX_TIMEOUT)
}

fn parse_interval(value: &str) -> Result<Duration, String> {
    parse_bounded(value, MAX_WATCH_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], health_addr: Option<&str>) -> Parsed {
        let argv = std::iter::once("probe")
            .chain(args.iter().copied())
            .map(OsString::from);
        parse(argv, health_addr.map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        match parse_with(args, None) {
            Parsed::Run(options) => options,
            other => panic!("expected options for {args:?}, got {other:?}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        match parse_with(args, None) {
            Parsed::Usage(message) => message,
            other => panic!("expected a usage error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = options(&[]);
        assert_eq!(o.target.to_string(), "http://127.0.0.1:8081/health");
        assert_eq!(
            (o.format, o.timeout, o.watch),
            (Format::Line, DEFAULT_TIMEOUT, None)
        );
    }

    #[test]
    fn endpoints_formats_and_durations() {
        assert_eq!(options(&["--ready"]).target.path(), "/readyz?verbose");
        assert_eq!(options(&["--live"]).target.path(), "/livez?verbose");
        assert_eq!(options(&["--json"]).format, Format::Json);
        assert_eq!(options(&["--verbose"]).format, Format::Verbose);
        assert_eq!(options(&["--quiet"]).format, Format::Quiet);
        assert_eq!(
            options(&["--timeout", "500ms"]).timeout,
            Duration::from_millis(500)
        );
        assert_eq!(options(&["--timeout=3s"]).timeout, Duration::from_secs(3));
        assert_eq!(options(&["--watch"]).watch, Some(Duration::from_secs(2)));
        assert_eq!(
            options(&["--watch", "5s"]).watch,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            options(&["--watch", "--ready"]).watch,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn url_overrides_address_and_path() {
        let o = options(&["--url", "http://10.0.0.5:9000/custom?x=1"]);
        assert_eq!(o.target.to_string(), "http://10.0.0.5:9000/custom?x=1");
        let o = options(&["--ready", "--url", "http://10.0.0.5:9000"]);
        assert_eq!(o.target.to_string(), "http://10.0.0.5:9000/readyz?verbose");
    }

    #[test]
    fn exclude_adds_to_the_query_of_any_endpoint() {
        assert_eq!(
            options(&["--ready", "--exclude", "postgres"]).target.path(),
            "/readyz?verbose&exclude=postgres"
        );
        assert_eq!(
            options(&[
                "--exclude=postgres",
                "--exclude",
                "app",
                "--exclude",
                "postgres"
            ])
            .target
            .path(),
            "/health?exclude=postgres&exclude=app"
        );
        assert_eq!(
            options(&["--exclude", "postgres", "--url", "http://h:1/readyz"])
                .target
                .to_string(),
            "http://h:1/readyz?exclude=postgres"
        );
        assert_eq!(options(&["--live"]).target.path(), "/livez?verbose");
    }

    #[test]
    fn health_addr_is_read() {
        let Parsed::Run(o) = parse_with(&["--live"], Some("[::]:7000")) else {
            panic!()
        };
        assert_eq!(o.target.to_string(), "http://[::1]:7000/livez?verbose");
        let Parsed::Usage(message) = parse_with(&[], Some("nonsense")) else {
            panic!()
        };
        assert!(message.contains("HEALTH_ADDR=nonsense"), "{message}");
        let Parsed::Usage(message) = parse_with(&[], Some("")) else {
            panic!()
        };
        assert!(message.contains("empty"), "{message}");
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        assert!(usage(&["--bogus"]).contains("--bogus"));
        assert!(usage(&["extra"]).contains("extra"));
        assert!(usage(&["--ready", "--live"]).contains("cannot be used with"));
        assert!(usage(&["--json", "--quiet"]).contains("cannot be used with"));
        assert!(usage(&["--watch", "--json"]).contains("cannot be used with"));
        assert!(usage(&["--timeout", "2"]).contains("--timeout"));
        assert!(usage(&["--timeout", "0s"]).contains("more than 0"));
        assert!(usage(&["--timeout", "5h"]).contains("at most 1h"));
        assert!(usage(&["--timeout"]).contains("--timeout"));
        assert!(usage(&["--watch", "fast"]).contains("--watch"));
        let unknown = usage(&["--exclude", "redis&verbose"]);
        assert!(
            unknown.contains("--exclude")
                && unknown.contains("checks are supervisor, app, postgres"),
            "{unknown}"
        );
        assert!(usage(&["--exclude"]).contains("--exclude"));
        assert!(usage(&["--url", "https://h/"]).contains("https is not supported"));
        let with_password = usage(&["--url", "http://user:hunter2@h/"]);
        assert!(with_password.contains("credentials") && !with_password.contains("hunter2"));
        assert!(
            usage(&["--ready", "--url", "http://h/livez"]).contains("--url already names a path")
        );
    }

    #[test]
    fn help_and_version_are_information() {
        let Parsed::Info(help) = parse_with(&["--help"], None) else {
            panic!()
        };
        assert!(help.contains("--watch") && help.contains("Exit status"));
        let Parsed::Info(version) = parse_with(&["--version"], None) else {
            panic!()
        };
        assert!(version.contains(env!("CARGO_PKG_VERSION")));
    }
}
