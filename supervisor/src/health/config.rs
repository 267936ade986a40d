//! HEALTH_ADDR, CHILD_CHECK and HEALTH_DETAILS.

use std::net::SocketAddr;

use common::config::ConfigError;

/// Where the listener binds and what it checks and shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub addr: SocketAddr,
    pub child_check: ChildCheck,
    pub details: Details,
}

/// How the child is actively checked, beyond "its process exists and is not stopped".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildCheck {
    None,
    /// `GET` this URL; any 2xx answer passes.
    Http(hyper::Uri),
    /// A TCP connection to `host:port` is accepted.
    Tcp(String),
}

/// Who sees failure reasons, the version, the child's pid and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Details {
    /// Loopback callers only.
    Auto,
    Always,
    Never,
}

pub const DEFAULT_ADDR: &str = "0.0.0.0:8081";

impl HealthConfig {
    /// HEALTH_ADDR (default 0.0.0.0:8081), CHILD_CHECK (default `http://127.0.0.1:{app_port}/livez` when
    /// `child_is_app`, else `none`), HEALTH_DETAILS (default `auto`). A malformed value is a [`ConfigError`]
    /// naming the variable.
    pub fn from_env(child_is_app: bool, app_port: u16) -> Result<HealthConfig, ConfigError> {
        Self::from_lookup(child_is_app, app_port, common::config::env_var)
    }

    /// [`HealthConfig::from_env`] with the variables read through `var` (unset or empty is `None`).
    pub fn from_lookup(
        child_is_app: bool,
        app_port: u16,
        var: impl Fn(&str) -> Result<Option<String>, ConfigError>,
    ) -> Result<HealthConfig, ConfigError> {
        let addr = match var("HEALTH_ADDR")? {
            None => DEFAULT_ADDR.parse().expect("the default address parses"),
            Some(value) => parse_addr(&value).map_err(|p| ConfigError::new("HEALTH_ADDR", p))?,
        };
        let child_check = match var("CHILD_CHECK")? {
            Some(value) => {
                parse_child_check(&value).map_err(|p| ConfigError::new("CHILD_CHECK", p))?
            }
            None if child_is_app => ChildCheck::Http(
                format!("http://127.0.0.1:{app_port}/livez")
                    .parse()
                    .expect("a loopback URL with a port parses"),
            ),
            None => ChildCheck::None,
        };
        let details = match var("HEALTH_DETAILS")? {
            None => Details::Auto,
            Some(value) => {
                parse_details(&value).map_err(|p| ConfigError::new("HEALTH_DETAILS", p))?
            }
        };
        Ok(HealthConfig {
            addr,
            child_check,
            details,
        })
    }
}

pub fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    value.trim().parse().map_err(|_| {
        format!("{value:?} is not an address: expected IP:PORT, e.g. 0.0.0.0:8081 or [::]:8081")
    })
}

pub fn parse_details(value: &str) -> Result<Details, String> {
    match value.trim() {
        "auto" => Ok(Details::Auto),
        "always" => Ok(Details::Always),
        "never" => Ok(Details::Never),
        _ => Err(format!("{value:?} is not one of auto, always, never")),
    }
}

pub fn parse_child_check(value: &str) -> Result<ChildCheck, String> {
    let value = value.trim();
    if value == "none" {
        return Ok(ChildCheck::None);
    }
    if value.contains('@') {
        // Not echoed: the part before '@' may be a password.
        return Err("must not carry user information (user:password@)".to_owned());
    }
    if let Some(target) = value.strip_prefix("tcp://") {
        return parse_host_port(target)
            .map(|()| ChildCheck::Tcp(target.to_owned()))
            .map_err(|problem| format!("{value:?}: {problem}"));
    }
    if value.starts_with("http://") {
        return parse_http(value)
            .map(ChildCheck::Http)
            .map_err(|problem| format!("{value:?}: {problem}"));
    }
    Err(format!(
        "{value:?} is not a check: expected http://HOST:PORT/PATH, tcp://HOST:PORT or none"
    ))
}

fn parse_http(value: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = value
        .parse()
        .map_err(|e| format!("is not a valid URL ({e})"))?;
    let authority = uri.authority().ok_or_else(|| "has no host".to_owned())?;
    if authority.host().is_empty() {
        return Err("has no host".to_owned());
    }
    if authority.port_u16() == Some(0) {
        return Err("port 0 is not a port to check".to_owned());
    }
    Ok(uri)
}

fn parse_host_port(target: &str) -> Result<(), String> {
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| "expected tcp://HOST:PORT".to_owned())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', '?', '#']) {
        return Err("expected tcp://HOST:PORT with a host name or address".to_owned());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{port:?} is not a port (1-65535)")),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)], child_is_app: bool) -> Result<HealthConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HealthConfig::from_lookup(child_is_app, 3000, |name| {
            Ok(vars.get(name).filter(|v| !v.is_empty()).cloned())
        })
    }

    #[test]
    fn defaults_follow_the_child() {
        let app = config(&[], true).unwrap();
        assert_eq!(app.addr, "0.0.0.0:8081".parse().unwrap());
        assert_eq!(
            app.child_check,
            ChildCheck::Http("http://127.0.0.1:3000/livez".parse().unwrap())
        );
        assert_eq!(app.details, Details::Auto);
        assert_eq!(config(&[], false).unwrap().child_check, ChildCheck::None);
    }

    #[test]
    fn explicit_values_are_taken() {
        let c = config(
            &[
                ("HEALTH_ADDR", "[::1]:9000"),
                ("CHILD_CHECK", "tcp://localhost:5432"),
                ("HEALTH_DETAILS", "never"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(c.addr, "[::1]:9000".parse().unwrap());
        assert_eq!(c.child_check, ChildCheck::Tcp("localhost:5432".into()));
        assert_eq!(c.details, Details::Never);
        let c = config(
            &[("CHILD_CHECK", "none"), ("HEALTH_DETAILS", "always")],
            true,
        )
        .unwrap();
        assert_eq!(c.child_check, ChildCheck::None);
        assert_eq!(c.details, Details::Always);
        let c = config(&[("CHILD_CHECK", "http://app.internal/healthz")], false).unwrap();
        assert_eq!(
            c.child_check,
            ChildCheck::Http("http://app.internal/healthz".parse().unwrap())
        );
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (name, value) in [
            ("HEALTH_ADDR", "8081"),
            ("HEALTH_ADDR", "localhost:8081"),
            ("HEALTH_ADDR", "0.0.0.0:99999"),
            ("CHILD_CHECK", "https://127.0.0.1:3000/livez"),
            ("CHILD_CHECK", "http://"),
            ("CHILD_CHECK", "http://user:pw@127.0.0.1:3000/"),
            ("CHILD_CHECK", "http://127.0.0.1:0/"),
            ("CHILD_CHECK", "tcp://127.0.0.1"),
            ("CHILD_CHECK", "tcp://:3000"),
            ("CHILD_CHECK", "tcp://127.0.0.1:0"),
            ("CHILD_CHECK", "tcp://127.0.0.1:port"),
            ("CHILD_CHECK", "tcp://127.0.0.1:3000/x"),
            ("CHILD_CHECK", "off"),
            ("HEALTH_DETAILS", "yes"),
            ("HEALTH_DETAILS", "Always"),
        ] {
            let err = config(&[(name, value)], true).unwrap_err();
            assert_eq!(err.setting, name, "{value}");
            assert!(!err.problem.is_empty(), "{value}");
        }
    }

    #[test]
    fn the_user_information_is_not_echoed() {
        let err = config(&[("CHILD_CHECK", "http://user:s3cret@h:1/")], true).unwrap_err();
        assert!(err.problem.contains("user information"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
