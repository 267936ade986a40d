//! `DbConfig::parse` never panics, every rejection names DATABASE_URL, and the password never shows in an
//! error, in `Debug` or in `describe()`, whatever follows it in the URL.
#![no_main]

use common::db::DbConfig;
use libfuzzer_sys::fuzz_target;

/// Planted as the password; nothing but the password can contain it (the input is skipped when it does).
const PASSWORD: &str = "Pw0rdPlantedByTheFuzzer";

fn check(url: &str) {
    match DbConfig::parse(url) {
        Ok(config) => {
            for (what, text) in [
                ("Debug", format!("{config:?}")),
                ("describe", config.describe()),
                ("pg_config Debug", format!("{:?}", config.pg_config())),
            ] {
                assert!(!text.contains(PASSWORD), "password in {what} for {url:?}: {text}");
            }
        }
        Err(err) => {
            assert_eq!(err.setting, "DATABASE_URL", "{url:?}: {err}");
            // Errors quote parts of the input, never the whole URL back.
            if url.len() > 60 {
                assert!(!err.to_string().contains(url), "{url:?}: {err}");
            }
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(PASSWORD), "password in the error for {url:?}: {text}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if input.contains(PASSWORD) {
        return;
    }
    // The input as a whole URL (scheme errors, malformed authorities) ...
    check(input);
    // ... and as everything after a known password, in both spellings of the scheme.
    check(&format!("postgres://fuzz:{PASSWORD}@{input}"));
    check(&format!("postgresql://fuzz:{PASSWORD}%2F{input}@localhost/db"));
});
