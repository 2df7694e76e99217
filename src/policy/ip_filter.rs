//! IP filtering (CIDR allow and deny lists, IPv4 and IPv6) and the client address it filters on.
//!
//! The client address is the socket peer, unless that peer is a configured trusted proxy: then
//! it is taken from `X-Forwarded-For` (the right-most address that is not itself a trusted proxy)
//! or from another configured header.

use crate::config::Problem;
use crate::error::GatewayError;
use ipnet::IpNet;
use pingora::http::RequestHeader;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Where the client address comes from (service-wide).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientAddressConfig {
    /// Peers (CIDRs) whose forwarding header is believed, e.g. your load balancers.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header naming the client when the peer is trusted (default `X-Forwarded-For`; a
    /// single-address header such as `X-Real-IP` works too).
    #[serde(default)]
    pub header: Option<String>,
}

/// IP allow and deny lists of an endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpFilterConfig {
    /// When not empty, only these CIDRs (or single addresses) may connect.
    #[serde(default)]
    pub allow: Vec<String>,
    /// These CIDRs are refused, even when also allowed.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The compiled client-address rule.
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    trusted: Vec<IpNet>,
    header: Option<http::HeaderName>,
}

/// The compiled filter.
#[derive(Debug, Clone)]
pub struct IpFilter {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

fn parse_nets(list: &[String], at: &str, problems: &mut Vec<Problem>) -> Vec<IpNet> {
    list.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let parsed = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from));
            match parsed {
                Ok(n) => Some(canonical_net(n.trunc())),
                Err(_) => {
                    problems.push(Problem::new(
                        format!("{at}[{i}]"),
                        format!("{s:?} is not an IP address or CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
                    ));
                    None
                }
            }
        })
        .collect()
}

impl ClientAddress {
    /// Compiles the service-wide setting at `at`.
    pub fn compile(cfg: &ClientAddressConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let trusted = parse_nets(
            &cfg.trusted_proxies,
            &format!("{at}.trusted_proxies"),
            &mut problems,
        );
        let header = match &cfg.header {
            Some(h) => match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(Problem::new(
                        format!("{at}.header"),
                        format!("{h:?} is not a header name"),
                    ));
                    None
                }
            },
            None => None,
        };
        if problems.is_empty() {
            Ok(ClientAddress { trusted, header })
        } else {
            Err(problems)
        }
    }

    fn is_trusted(&self, ip: &IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request from socket peer `peer`.
    pub fn resolve(&self, peer: Option<IpAddr>, req: &RequestHeader) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.is_trusted(&peer) {
            return Some(peer);
        }
        let name = self
            .header
            .clone()
            .unwrap_or(http::HeaderName::from_static("x-forwarded-for"));
        // Every value, in order; the right-most untrusted address is the client.
        let hops: Vec<IpAddr> = req
            .headers
            .get_all(&name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| parse_hop(s.trim()).map(canonical))
            .collect();
        Some(
            hops.iter()
                .rev()
                .find(|ip| !self.is_trusted(ip))
                .or(hops.first())
                .copied()
                .unwrap_or(peer),
        )
    }
}

/// An address as forwarding headers write it (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`).
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

impl IpFilter {
    /// Compiles the endpoint's lists at `at`.
    pub fn compile(cfg: &IpFilterConfig, at: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let allow = parse_nets(&cfg.allow, &format!("{at}.allow"), &mut problems);
        let deny = parse_nets(&cfg.deny, &format!("{at}.deny"), &mut problems);
        if problems.is_empty() {
            Ok(IpFilter { allow, deny })
        } else {
            Err(problems)
        }
    }

    /// Refuses a client outside the lists (403). An unknown client address is refused when a
    /// list is configured.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), GatewayError> {
        if self.allow.is_empty() && self.deny.is_empty() {
            return Ok(());
        }
        let Some(ip) = client.map(canonical) else {
            return Err(GatewayError::Forbidden("ip_not_allowed"));
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Err(GatewayError::Forbidden("ip_denied"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&ip)) {
            return Err(GatewayError::Forbidden("ip_not_allowed"));
        }
        Ok(())
    }
}

/// An IPv4-mapped IPv6 network written in the config (`::ffff:10.0.0.0/104`) as the IPv4
/// network it covers, since addresses are matched as IPv4 (see [`canonical`]).
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|a| ipnet::Ipv4Net::new(a, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        other => other,
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) are matched as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn allow_and_deny() {
        let f = IpFilter::compile(
            &IpFilterConfig {
                allow: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
                deny: vec!["10.6.6.6".into()],
            },
            "p",
        )
        .unwrap();
        assert!(f.check(ip("10.1.2.3")).is_ok());
        assert!(f.check(ip("2001:db8::1")).is_ok());
        assert_eq!(
            f.check(ip("10.6.6.6")),
            Err(GatewayError::Forbidden("ip_denied"))
        );
        assert_eq!(
            f.check(ip("192.168.1.1")),
            Err(GatewayError::Forbidden("ip_not_allowed"))
        );
        assert!(
            f.check(ip("::ffff:10.0.0.1")).is_ok(),
            "IPv4-mapped addresses match IPv4 lists"
        );
        assert!(f.check(None).is_err());
        let open = IpFilter::compile(&IpFilterConfig::default(), "p").unwrap();
        assert!(open.check(None).is_ok());
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let ca = ClientAddress::compile(
            &ClientAddressConfig {
                trusted_proxies: vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()],
                header: None,
            },
            "client_address",
        )
        .unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
            .unwrap();
        req.append_header("x-forwarded-for", "10.1.1.1").unwrap();
        // Trusted peer: the right-most untrusted hop.
        assert_eq!(ca.resolve(ip("127.0.0.1"), &req), ip("203.0.113.9"));
        // Untrusted peer: its own address, whatever the header says.
        assert_eq!(ca.resolve(ip("198.51.100.7"), &req), ip("198.51.100.7"));
        // A dual-stack listener sees an IPv4 proxy as ::ffff:10.0.0.1: still trusted, and the
        // client comes out as IPv4.
        assert_eq!(ca.resolve(ip("::ffff:10.0.0.1"), &req), ip("203.0.113.9"));
        assert_eq!(
            ca.resolve(ip("::ffff:198.51.100.7"), &req),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn mapped_networks_in_the_config_match_ipv4_clients() {
        let f = IpFilter::compile(
            &IpFilterConfig {
                allow: vec![],
                deny: vec!["::ffff:203.0.113.0/120".into()],
            },
            "p",
        )
        .unwrap();
        assert_eq!(
            f.check(ip("203.0.113.5")),
            Err(GatewayError::Forbidden("ip_denied"))
        );
        assert_eq!(
            f.check(ip("::ffff:203.0.113.5")),
            Err(GatewayError::Forbidden("ip_denied"))
        );
        assert!(f.check(ip("203.0.114.5")).is_ok());
    }

    #[test]
    fn bad_cidrs_are_listed_with_paths() {
        let problems = IpFilter::compile(
            &IpFilterConfig {
                allow: vec!["10.0.0.0/33".into()],
                deny: vec!["nope".into(), "::1".into()],
            },
            "endpoints[0].policies.ip_filter",
        )
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "endpoints[0].policies.ip_filter.allow[0]",
                "endpoints[0].policies.ip_filter.deny[0]"
            ]
        );
    }
}
