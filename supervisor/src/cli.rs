//! The command line: `supervisor [-- COMMAND [ARGS...]]` and `supervisor migrate`.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use crate::exit::Exit;

#[derive(Debug, Parser)]
#[command(
    name = "supervisor",
    version,
    about = "Container PID 1 for time-tracker: applies the migrations, runs the API, forwards signals, reaps \
             orphans and answers health checks.",
    after_help = "Configuration comes from the environment (DATABASE_URL, HEALTH_ADDR, STOP_GRACE, DRAIN_DELAY, \
                  RESTART, DB_WAIT, CHILD_CHECK, LOG_FORMAT, RUST_LOG): see the README.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub action: Option<Action>,

    /// The program to supervise and its arguments (default: the `app` binary next to this one).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Action {
    /// Apply the migrations and exit (init containers, CI).
    Migrate,
}

/// What to do, or how the process must end right away (help and version print and exit 0).
#[derive(Debug)]
pub enum Parsed {
    Run(Cli),
    Exit {
        code: i32,
        output: String,
        to_stderr: bool,
    },
}

pub fn parse<I, T>(args: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => Parsed::Run(cli),
        Err(err) => {
            let output = err.render().to_string();
            if err.use_stderr() {
                // clap exits 2 on usage errors; the contract (and sysexits) say 64.
                let usage = Exit::Usage(String::new());
                Parsed::Exit {
                    code: usage.code(),
                    output,
                    to_stderr: true,
                }
            } else {
                Parsed::Exit {
                    code: 0,
                    output,
                    to_stderr: false,
                }
            }
        }
    }
}
