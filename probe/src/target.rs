//! Where to send the request: from `HEALTH_ADDR` (the supervisor's listen address) or from `--url`.
//!
//! Only plain `http://` is spoken: the health listener has no TLS, and a tiny static binary should not carry a
//! TLS stack. URLs are parsed by hand because the grammar needed is small and the `url` crate's IDNA tables
//! would dominate the binary.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The listen address the supervisor uses when `HEALTH_ADDR` is unset.
pub const DEFAULT_HEALTH_ADDR: &str = "0.0.0.0:8081";

/// One HTTP endpoint: a host (name or address), a port and a request target (path and query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: Host,
    port: u16,
    path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// A URL given with `--url`: the endpoint, and whether it named a path of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTarget {
    pub target: Target,
    pub has_path: bool,
}

impl Target {
    /// The endpoint of a supervisor listening on `addr` (`HEALTH_ADDR` syntax: `host:port`). A wildcard
    /// address means "every interface", which from inside the container is reached on loopback.
    pub fn from_health_addr(addr: &str, path: &str) -> Result<Target, String> {
        if addr.is_empty() {
            return Err(
                "HEALTH_ADDR is set but empty (expected host:port, e.g. 0.0.0.0:8081)".into(),
            );
        }
        // Never echo something that looks like it carries credentials.
        let shown = if addr.contains('@') {
            "(value withheld)".to_owned()
        } else {
            crate::sanitize::clean(addr, 80)
        };
        let (host, port) =
            parse_authority(addr).map_err(|e| format!("HEALTH_ADDR={shown}: {e}"))?;
        let port = port.ok_or_else(|| {
            format!("HEALTH_ADDR={shown}: missing port (expected host:port, e.g. 0.0.0.0:8081)")
        })?;
        Ok(Target {
            host,
            port,
            path: path.to_owned(),
        })
    }

    /// Parses an `http://host[:port][/path][?query]` URL.
    pub fn from_url(url: &str) -> Result<UrlTarget, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("expected an http:// URL, e.g. http://127.0.0.1:8081/health".into());
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err("https is not supported: the health listener speaks plain HTTP".into());
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "unsupported scheme {:?}: only http:// URLs are supported",
                crate::sanitize::clean(scheme, 20)
            ));
        }
        let rest = rest
            .split_once('#')
            .map_or(rest, |(before, _fragment)| before);
        let split_at = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split_at);
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        if authority.is_empty() {
            return Err("the URL has no host".into());
        }
        let (host, port) = parse_authority(authority)?;
        if let Some(bad) = path.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "the URL path contains {bad:?}: percent-encode spaces and non-ASCII characters"
            ));
        }
        let has_path = !(path.is_empty() || path == "/");
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(UrlTarget {
            target: Target {
                host,
                port: port.unwrap_or(80),
                path,
            },
            has_path,
        })
    }

    pub fn with_path(mut self, path: &str) -> Target {
        self.path = path.to_owned();
        self
    }

    /// Adds `exclude=CHECK` to the query for each check not already there (check names need no escaping).
    pub fn excluding(mut self, checks: &[String]) -> Target {
        for check in checks {
            let param = format!("exclude={check}");
            let query = self.path.split_once('?').map_or("", |(_, query)| query);
            if query.split('&').any(|p| p == param) {
                continue;
            }
            let separator = if self.path.contains('?') { '&' } else { '?' };
            self.path = format!("{}{separator}{param}", self.path);
        }
        self
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target sent on the request line.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `host:port`, as shown in messages and sent in the `Host` header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The socket address when the host is an IP address (no name resolution needed).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// Parses `host[:port]` where host is an IPv4 address, a bracketed IPv6 address or a DNS name.
fn parse_authority(authority: &str) -> Result<(Host, Option<u16>), String> {
    let (host, port) = if let Some(after_bracket) = authority.strip_prefix('[') {
        let (inside, after) = after_bracket
            .split_once(']')
            .ok_or("unclosed '[' in the IPv6 address")?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| {
            format!(
                "{:?} is not an IPv6 address",
                crate::sanitize::clean(inside, 60)
            )
        })?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("unexpected text after the IPv6 address")?,
            ),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.contains(':') {
            return Err("IPv6 addresses must be written in brackets, e.g. [::1]:8081".into());
        }
        (parse_host(host)?, port)
    };
    let port = port.map(parse_port).transpose()?;
    Ok((unwildcard(host), port))
}

fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("missing host".into());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let valid_name = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid_name {
        return Err(format!(
            "{:?} is not a valid host name or IP address",
            crate::sanitize::clean(host, 60)
        ));
    }
    Ok(Host::Name(host.to_ascii_lowercase()))
}

fn parse_port(port: &str) -> Result<u16, String> {
    let shown = crate::sanitize::clean(port, 20);
    if port.is_empty() {
        return Err("missing port after ':'".into());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {shown:?} is not a number"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 cannot be connected to".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("port {shown} is out of range (1-65535)")),
    }
}

/// The supervisor binds wildcard addresses; a client reaches them on the loopback of the same family.
fn unwildcard(host: Host) -> Host {
    match host {
        Host::Ip(IpAddr::V4(ip)) if ip.is_unspecified() => {
            Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        Host::Ip(IpAddr::V6(ip)) if ip.is_unspecified() => {
            Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Result<String, String> {
        Target::from_health_addr(s, "/health").map(|t| t.to_string())
    }

    fn url(s: &str) -> Result<(String, bool), String> {
        Target::from_url(s).map(|u| (u.target.to_string(), u.has_path))
    }

    #[test]
    fn health_addr_wildcards_mean_loopback() {
        assert_eq!(
            addr("0.0.0.0:8081").unwrap(),
            "http://127.0.0.1:8081/health"
        );
        assert_eq!(addr("[::]:9000").unwrap(), "http://[::1]:9000/health");
        assert_eq!(addr("10.1.2.3:80").unwrap(), "http://10.1.2.3:80/health");
        assert_eq!(
            addr("LocalHost:8081").unwrap(),
            "http://localhost:8081/health"
        );
    }

    #[test]
    fn bad_health_addrs_are_rejected_with_the_reason() {
        assert!(addr("").unwrap_err().contains("empty"));
        assert!(addr("0.0.0.0").unwrap_err().contains("missing port"));
        assert!(addr("0.0.0.0:http").unwrap_err().contains("not a number"));
        assert!(addr("0.0.0.0:70000").unwrap_err().contains("out of range"));
        assert!(addr("0.0.0.0:0").unwrap_err().contains("port 0"));
        assert!(addr(":8081").unwrap_err().contains("missing host"));
        assert!(addr("::1:8081").unwrap_err().contains("brackets"));
        assert!(addr("[::1:8081").unwrap_err().contains("unclosed"));
        assert!(addr("bad_host:1").unwrap_err().contains("not a valid host"));
        let secret = addr("user:hunter2@h:1").unwrap_err();
        assert!(
            secret.contains("withheld") && !secret.contains("hunter2"),
            "{secret}"
        );
    }

    #[test]
    fn urls_give_host_port_and_path() {
        assert_eq!(
            url("http://127.0.0.1:8081/readyz?verbose").unwrap(),
            ("http://127.0.0.1:8081/readyz?verbose".into(), true)
        );
        assert_eq!(
            url("HTTP://example.com").unwrap(),
            ("http://example.com:80".into(), false)
        );
        assert_eq!(
            url("http://[::1]:81/").unwrap(),
            ("http://[::1]:81/".into(), false)
        );
        assert_eq!(
            url("http://h:1?verbose").unwrap(),
            ("http://h:1/?verbose".into(), true)
        );
        assert_eq!(
            url("http://h:1/livez#top").unwrap(),
            ("http://h:1/livez".into(), true)
        );
        assert_eq!(
            url("http://0.0.0.0:8081/health").unwrap().0,
            "http://127.0.0.1:8081/health"
        );
    }

    #[test]
    fn bad_urls_are_rejected_with_the_reason() {
        assert!(url("127.0.0.1:8081").unwrap_err().contains("http://"));
        assert!(url("https://h/health")
            .unwrap_err()
            .contains("https is not supported"));
        assert!(url("ftp://h/").unwrap_err().contains("unsupported scheme"));
        assert!(url("http://user:pw@h/")
            .unwrap_err()
            .contains("credentials"));
        assert!(url("http:///health").unwrap_err().contains("no host"));
        assert!(url("http://h:99999/").unwrap_err().contains("out of range"));
        assert!(url("http://h/a b").unwrap_err().contains("percent-encode"));
        assert!(url("http://h/\r\nX: y")
            .unwrap_err()
            .contains("percent-encode"));
        assert!(url("http://[zz]/").unwrap_err().contains("not an IPv6"));
    }
}
