//! Value formats every config section shares: durations, upstream host URLs, names used twice.

use super::Problem;
use std::time::Duration;

/// A problem at `{at}.name` when `name` was already used by an earlier entry of the same list.
pub fn name_used_before<'a>(
    earlier: impl IntoIterator<Item = &'a str>,
    name: &str,
    at: &str,
) -> Option<Problem> {
    earlier
        .into_iter()
        .any(|n| n == name)
        .then(|| Problem::new(format!("{at}.name"), format!("{name:?} is used twice")))
}

/// Parses `500ms`, `5s`, `2m`, `1h` or a sequence such as `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (use e.g. 500ms, 5s, 2m, 1h)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let d = match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(d);
        rest = &rest[unit..];
    }
    Ok(total)
}

/// An upstream base URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUrl {
    /// `https://`.
    pub tls: bool,
    /// Host name or IP (without brackets).
    pub host: String,
    /// Port (the scheme's default when omitted).
    pub port: u16,
    /// `host[:port]` as it goes into the `Host` header.
    pub authority: String,
}

/// Parses an upstream host URL such as `http://127.0.0.1:3000`.
pub fn parse_host_url(s: &str) -> Result<HostUrl, String> {
    let bad = |why: &str| format!("invalid URL {s:?}: {why}");
    let u = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    let tls = match u.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(bad(&format!("scheme {other:?} is not http or https"))),
    };
    if !s.contains("://") {
        return Err(bad("expected http://host:port"));
    }
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err(bad("no host")),
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; use header modifiers",
        ));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(bad("give the path in backend.path, not in the host URL"));
    }
    let port = u.port_or_known_default().ok_or_else(|| bad("no port"))?;
    let authority = match (u.host(), u.port()) {
        (Some(url::Host::Ipv6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(url::Host::Ipv6(a)), None) => format!("[{a}]"),
        (_, Some(p)) => format!("{host}:{p}"),
        (_, None) => host.clone(),
    };
    Ok(HostUrl {
        tls,
        host,
        port,
        authority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "5", "s", "5x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_urls() {
        let u = parse_host_url("http://127.0.0.1:3000").unwrap();
        assert_eq!(
            (u.tls, u.port, u.authority.as_str()),
            (false, 3000, "127.0.0.1:3000")
        );
        let u = parse_host_url("https://mcp.example.com").unwrap();
        assert_eq!(
            (u.tls, u.port, u.authority.as_str()),
            (true, 443, "mcp.example.com")
        );
        let u = parse_host_url("http://[::1]:9000/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority.as_str()),
            ("::1", "[::1]:9000")
        );
        for bad in [
            "htp:/x",
            "ftp://a",
            "http://a/b",
            "http://u:p@a",
            "127.0.0.1:80",
        ] {
            assert!(parse_host_url(bad).is_err(), "{bad}");
        }
    }
}
