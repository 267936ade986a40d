//! Splitting a libpq-style connection URL into its parts.
//!
//! Written for this format rather than using a general URL parser: libpq accepts things WHATWG URLs do not
//! (an empty host before `?host=/socket/dir`, `%2F` socket paths in the host), and errors here must never quote
//! the input, which may hold a password.

use std::net::Ipv6Addr;

use percent_encoding::percent_decode_str;

/// The parts of `postgres://USER:PASSWORD@HOST:PORT/DBNAME?NAME=VALUE&...`, percent-decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct UrlParts {
    pub(crate) user: String,
    pub(crate) password: Option<Vec<u8>>,
    /// Empty when the URL has no host (a unix socket given with `?host=`).
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) dbname: String,
    pub(crate) params: Vec<(String, String)>,
}

/// Splits the URL; the error is a problem description that never quotes the URL's user info.
pub(crate) fn split(url: &str) -> Result<UrlParts, String> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| match url.split_once("://") {
            Some((scheme, _)) if is_scheme(scheme) => {
                format!("expected a postgres:// or postgresql:// URL, got {scheme}://")
            }
            _ => "expected a postgres:// or postgresql:// URL".to_owned(),
        })?;
    // An '@' after the '?' means the password holds an unencoded '?': the split below would leak the rest of
    // the password into an "unsupported parameter" error.
    if rest
        .split_once('?')
        .is_some_and(|(_, query)| query.contains('@'))
    {
        return Err(
            "cannot tell where the user info ends: percent-encode '@', '/', '?' and '#' in the password \
             (%40, %2F, %3F, %23) and in parameter values"
                .to_owned(),
        );
    }
    if rest.contains('#') {
        return Err("unexpected '#' (percent-encode '#' in the password as %23)".to_owned());
    }
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The user info may hold an unencoded '/' or '@' in the password: the host starts after the last '@'.
    let (userinfo, host_and_path) = match before_query.rsplit_once('@') {
        Some((userinfo, after)) => (Some(userinfo), after),
        None => (None, before_query),
    };
    let (hostport, path) = match host_and_path.split_once('/') {
        Some((hostport, path)) => (hostport, Some(path)),
        None => (host_and_path, None),
    };

    let mut parts = UrlParts::default();
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        parts.user = decode_utf8("user name", user)?;
        parts.password = password.map(|p| percent_decode_str(p).collect());
    }
    let (host, port) = split_host_port(hostport)?;
    parts.host = host;
    parts.port = port;
    if let Some(path) = path {
        parts.dbname = decode_utf8("database name", path)?;
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode_utf8("parameter name", name)?;
            let value = decode_utf8(
                &format!(
                    "value of parameter '{}'",
                    crate::escape::bounded_escaped(&name)
                ),
                value,
            )?;
            parts.params.push((name, value));
        }
    }
    Ok(parts)
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (literal, after) = bracketed
            .split_once(']')
            .ok_or("unterminated '[' in the host (write IPv6 addresses as [::1])")?;
        let ip: Ipv6Addr = literal
            .parse()
            .map_err(|_| "invalid IPv6 address in the host")?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("unexpected text after the IPv6 address")?,
            ),
        };
        (ip.to_string(), port)
    } else {
        if hostport.contains(',') {
            return Err("several hosts are not supported; give one host".to_owned());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        };
        let host = decode_utf8("host", host)?;
        if !host.starts_with('/')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            return Err("the host is not a valid host name or address".to_owned());
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(port) => Some(parse_port(port)?),
    };
    Ok((host, port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a number from 1 to 65535".to_owned());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("the port must be a number from 1 to 65535".to_owned()),
        Ok(port) => Ok(port),
    }
}

fn is_scheme(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

fn decode_utf8(part: &str, encoded: &str) -> Result<String, String> {
    percent_decode_str(encoded)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| format!("the {part} is not valid UTF-8 once percent-decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_part() {
        let parts =
            split("postgres://u%20s:p@ss/w:rd@host-1.example:6543/d%2Fb?a=1&b=x%26y&&c").unwrap();
        assert_eq!(
            parts,
            UrlParts {
                user: "u s".into(),
                password: Some(b"p@ss/w:rd".to_vec()),
                host: "host-1.example".into(),
                port: Some(6543),
                dbname: "d/b".into(),
                params: vec![
                    ("a".into(), "1".into()),
                    ("b".into(), "x&y".into()),
                    ("c".into(), "".into())
                ],
            }
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(split("postgres://[::1]:1/d").unwrap().host, "::1");
        assert_eq!(split("postgres://[0:0::1]/d").unwrap().host, "::1");
        assert_eq!(split("postgres://u@/d").unwrap().host, "");
        assert_eq!(
            split("postgres://%2Fsock%2Fdir/d").unwrap().host,
            "/sock/dir"
        );
        assert_eq!(split("postgres://h").unwrap().dbname, "");
        for bad in [
            "postgres://[::1/d",
            "postgres://[nope]/d",
            "postgres://[::1]x/d",
            "postgres://h,i/d",
            "postgres://h i/d",
            "postgres://h:/d",
            "postgres://h:0/d",
            "postgres://h:65536/d",
            "postgres://h:+1/d",
        ] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schemes() {
        assert_eq!(
            split("mysql://x").unwrap_err(),
            "expected a postgres:// or postgresql:// URL, got mysql://"
        );
        assert_eq!(
            split("host:5432").unwrap_err(),
            "expected a postgres:// or postgresql:// URL"
        );
        assert_eq!(
            split("a b://x").unwrap_err(),
            "expected a postgres:// or postgresql:// URL"
        );
        assert!(split("POSTGRES://h/d").is_err());
    }
}
