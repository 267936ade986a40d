//! `app`: the time-tracker HTTP API.

use std::process::ExitCode;

/// sysexits EX_CONFIG.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    if let Err(err) = common::logging::init() {
        eprintln!("app: configuration error: {err}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let settings = app::AppConfig::from_env().and_then(|config| {
        // `app@HOSTNAME` in pg_stat_activity, unless the URL names itself.
        let db = common::db::DbConfig::from_env()?.identify_as("app");
        Ok((config, db, app::drain::DrainNotice::from_env()?))
    });
    let (config, db, drain_notice) = match settings {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("app: configuration error: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("app: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(config, db, drain_notice)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("app: {err:#}");
            ExitCode::FAILURE
        }
    }
}
