//! Reading settings from the environment with errors that name the setting.

use std::time::Duration;

use crate::duration::parse_duration;
use crate::escape::quoted;

/// A setting is missing or malformed. The message names the setting and what to fix; it never carries a
/// secret (callers pass descriptions, not values, for anything sensitive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// Environment variable, empty counts as unset; non-UTF-8 is a ConfigError naming the variable.
pub fn env_var(name: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|_| ConfigError::new(name, "is not valid UTF-8")),
    }
}

/// [`env_var`] + [`parse_duration`], `default` when unset; the error names the variable.
pub fn env_duration(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    match env_var(name)? {
        None => Ok(default),
        Some(value) => parse_duration(&value).map_err(|problem| ConfigError::new(name, problem)),
    }
}

/// Default of `PORT`.
pub const DEFAULT_APP_PORT: u16 = 3000;

/// `PORT`, the app's API port (the supervisor's default child check talks to it): 1 to 65535,
/// [`DEFAULT_APP_PORT`] when unset.
pub fn app_port() -> Result<u16, ConfigError> {
    match env_var("PORT")? {
        None => Ok(DEFAULT_APP_PORT),
        Some(value) => parse_port(&value).ok_or_else(|| {
            ConfigError::new(
                "PORT",
                format!("{} is not a TCP port (1-65535)", quoted(&value)),
            )
        }),
    }
}

/// Digits only (no sign or spaces, which `u16::from_str` would partly accept), 1 to 65535.
fn parse_port(value: &str) -> Option<u16> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u16>().ok().filter(|&port| port > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    // Each test uses its own variable names: tests run in parallel threads sharing one environment.
    fn set(name: &str, value: impl AsRef<OsStr>) {
        // SAFETY: only this module's tests touch these variables, each under a unique name.
        unsafe { std::env::set_var(name, value) }
    }

    #[test]
    fn ports_are_digits_from_1_to_65535() {
        assert_eq!(parse_port("1"), Some(1));
        assert_eq!(parse_port("3000"), Some(3000));
        assert_eq!(parse_port("65535"), Some(65535));
        for bad in ["", "0", "65536", "+80", "-1", " 80", "80 ", "8o", "0x50"] {
            assert_eq!(parse_port(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unset_and_empty_are_none() {
        assert_eq!(env_var("COMMON_TEST_NEVER_SET"), Ok(None));
        set("COMMON_TEST_EMPTY", "");
        assert_eq!(env_var("COMMON_TEST_EMPTY"), Ok(None));
        set("COMMON_TEST_VALUE", "x y");
        assert_eq!(env_var("COMMON_TEST_VALUE"), Ok(Some("x y".to_owned())));
    }

    #[test]
    fn non_utf8_names_the_variable() {
        set("COMMON_TEST_BYTES", OsStr::from_bytes(b"\xff\xfe"));
        let err = env_var("COMMON_TEST_BYTES").unwrap_err();
        assert_eq!(err.to_string(), "COMMON_TEST_BYTES: is not valid UTF-8");
    }

    #[test]
    fn durations_default_parse_and_fail_clearly() {
        let default = Duration::from_secs(8);
        assert_eq!(env_duration("COMMON_TEST_DUR_UNSET", default), Ok(default));
        set("COMMON_TEST_DUR_EMPTY", "");
        assert_eq!(env_duration("COMMON_TEST_DUR_EMPTY", default), Ok(default));
        set("COMMON_TEST_DUR_OK", "250ms");
        assert_eq!(
            env_duration("COMMON_TEST_DUR_OK", default),
            Ok(Duration::from_millis(250))
        );
        set("COMMON_TEST_DUR_BAD", "8");
        let err = env_duration("COMMON_TEST_DUR_BAD", default).unwrap_err();
        assert_eq!(err.setting, "COMMON_TEST_DUR_BAD");
        assert!(
            err.to_string()
                .starts_with("COMMON_TEST_DUR_BAD: \"8\" is not a duration: expected"),
            "{err}"
        );
    }
}
