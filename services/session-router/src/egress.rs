//! Where a shop may make Kefu send HTTP requests (webhooks): only to public addresses, unless
//! the operator allows a network (`KEFU_WEBHOOK_ALLOW_NETWORKS`). Without this a shop could
//! point a webhook at the cluster's own services, the node, or the cloud metadata endpoint
//! (server-side request forgery).
//!
//! The check runs where the address is decided: when a URL is registered (every address its
//! host resolves to), and again on every delivery, by the client's resolver (a name may
//! resolve elsewhere later) and for IP-literal hosts. Redirects are never followed.
use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, LazyLock},
    time::Duration,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Networks never reached unless allowed: this host, private and shared address space,
/// link-local (cloud metadata: 169.254.169.254, fd00:ec2::254 is in fc00::/7; Alibaba Cloud's
/// 100.100.100.200 is in 100.64.0.0/10), multicast, reserved, documentation, and IPv6 forms
/// that embed IPv4 addresses.
static BLOCKED: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/32",
        "2001:db8::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ]
    .iter()
    .map(|n| n.parse().expect("valid network"))
    .collect()
});

/// Which addresses webhooks may reach.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    allowed: Vec<IpNet>,
}

impl EgressPolicy {
    /// `list`: comma-separated networks (`10.1.0.0/16`) or addresses the operator allows
    /// beside the public internet; empty for none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{item}' is not a network (10.0.0.0/8) or an address"))?;
            allowed.push(net);
        }
        Ok(Self { allowed })
    }

    /// Whether a request may go to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|n| n.contains(&ip)) || !BLOCKED.iter().any(|n| n.contains(&ip))
    }

    fn refusal(ip: IpAddr) -> String {
        format!(
            "{ip} is a private, loopback, link-local or reserved address; an operator can allow \
             its network with KEFU_WEBHOOK_ALLOW_NETWORKS"
        )
    }

    /// Checks a URL a shop wants requests sent to: http(s), no credentials in it, and every
    /// address its host resolves to permitted.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let u = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err("must be an http:// or https:// URL".into());
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("must not carry credentials (user:password@)".into());
        }
        let host = u.host_str().ok_or("must name a host")?;
        let port = u.port_or_known_default().unwrap_or(443);
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host((host, port)),
            )
            .await
            .map_err(|_| format!("looking up {host} timed out"))?
            .map_err(|e| format!("{host} does not resolve: {e}"))?
            .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{host} does not resolve"));
        }
        match addrs.iter().find(|a| !self.permits(a.ip())) {
            Some(a) => Err(Self::refusal(a.ip())),
            None => Ok(()),
        }
    }

    /// Refuses a URL whose host is an address that is not permitted (names are checked by the
    /// client's resolver at connect time).
    pub fn check_literal(&self, url: &str) -> Result<(), String> {
        let u = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        match u.host() {
            Some(url::Host::Ipv4(ip)) if !self.permits(ip.into()) => Err(Self::refusal(ip.into())),
            Some(url::Host::Ipv6(ip)) if !self.permits(ip.into()) => Err(Self::refusal(ip.into())),
            _ => Ok(()),
        }
    }

    /// An HTTP client that connects only to permitted addresses and never follows redirects.
    pub fn client(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver(self.clone())))
            .build()
    }
}

/// The system resolver, minus the addresses the policy refuses.
struct GuardedResolver(EgressPolicy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let why = all
                    .first()
                    .map(|a| EgressPolicy::refusal(a.ip()))
                    .unwrap_or_else(|| "no address".into());
                return Err(format!("{host}: {why}").into());
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_unless_allowed() {
        let p = EgressPolicy::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!p.permits(bad.parse().unwrap()), "{bad} must be refused");
        }
        for good in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(p.permits(good.parse().unwrap()), "{good} is public");
        }
        let allowed = EgressPolicy::parse("127.0.0.1, 10.1.0.0/16").unwrap();
        assert!(allowed.permits("127.0.0.1".parse().unwrap()));
        assert!(allowed.permits("10.1.9.9".parse().unwrap()));
        assert!(!allowed.permits("10.2.0.1".parse().unwrap()));
        assert!(!allowed.permits("169.254.169.254".parse().unwrap()));
        assert!(EgressPolicy::parse("not-a-net").is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_by_every_address_they_name() {
        let p = EgressPolicy::default();
        for bad in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:9181/metrics",
            "http://user:pw@example.com/",
            "ftp://example.com/",
            "http://0x7f000001/",
            "http://2130706433/",
        ] {
            assert!(p.check_url(bad).await.is_err(), "{bad} must be refused");
        }
        assert!(p.check_literal("http://127.0.0.1/").is_err());
        assert!(p.check_literal("http://[::ffff:a9fe:a9fe]/").is_err());
        assert!(p.check_literal("https://example.com/").is_ok());
        let local = EgressPolicy::parse("127.0.0.0/8,::1").unwrap();
        assert!(local.check_url("http://127.0.0.1:8080/hook").await.is_ok());
        assert!(local.check_url("http://localhost:8080/hook").await.is_ok());
    }
}
