//! The health-probe agent: one bounded GET against the supervisor's health listener, turned into a one-line
//! verdict (or a table, or the JSON document) and an exit status Docker's HEALTHCHECK understands.

pub mod answer;
pub mod cli;
pub mod http;
pub mod render;
pub mod sanitize;
pub mod target;
pub mod watch;

use std::ffi::OsString;
use std::io::Write;

use answer::{EXIT_HEALTHY, EXIT_USAGE};
use cli::{Format, Parsed};

/// Runs the probe as the command line asks and returns the process exit status.
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    health_addr: Option<OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let options = match cli::parse(args, health_addr) {
        Parsed::Run(options) => options,
        Parsed::Info(text) => {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            return EXIT_HEALTHY;
        }
        Parsed::Usage(message) => {
            let _ = err.write_all(message.as_bytes());
            let _ = err.flush();
            return EXIT_USAGE;
        }
    };
    if let Some(interval) = options.watch {
        return watch::watch(&options, interval, out, err);
    }
    let outcome = answer::probe(&options.target, options.timeout);
    let text = match options.format {
        Format::Line => render::summary_line(&outcome, true) + "\n",
        Format::Json => render::json(&outcome),
        Format::Verbose => render::table(&outcome, &options.target),
        Format::Quiet => String::new(),
    };
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    answer::exit_code(&outcome)
}
