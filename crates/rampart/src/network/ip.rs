//! Who is calling, by address, and address lists: the client IP (from the socket, or from
//! `X-Forwarded-For` only when the socket peer is a trusted proxy), and CIDR lists for
//! allowlists and the denylist (IPv4 and IPv6).

use std::net::IpAddr;

use ipnet::IpNet;

/// A list of networks. An empty allowlist allows every address.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IpList(Vec<IpNet>);

/// An entry that is neither an address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR network (like 203.0.113.0/24 or 2001:db8::/32)")]
pub struct BadNetwork(pub String);

impl IpList {
    /// Parses addresses and CIDR networks (`203.0.113.7`, `10.0.0.0/8`, `2001:db8::/32`).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, BadNetwork> {
        let mut nets = Vec::new();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadNetwork(entry.to_owned()))?;
            nets.push(net.trunc());
        }
        nets.sort();
        nets.dedup();
        Ok(Self(nets))
    }

    /// The stored form: networks separated by spaces.
    pub fn from_stored(text: &str) -> Self {
        Self::parse(text.split(' ')).unwrap_or_default()
    }

    pub fn to_stored(&self) -> String {
        self.names().join(" ")
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the networks. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// As an allowlist: an empty list allows everyone.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.is_empty() || self.contains(ip)
    }

    /// Whether every address `other` allows is allowed here too (a narrower or equal list).
    pub fn covers(&self, other: &IpList) -> bool {
        if self.is_empty() {
            return true;
        }
        !other.is_empty()
            && other
                .0
                .iter()
                .all(|inner| self.0.iter().any(|outer| outer.contains(inner)))
    }
}

impl std::fmt::Debug for IpList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The unit one client holds: an IPv4 address, or the /64 network of an IPv6 address (one
/// host has a whole /64 to rotate through). Connection caps and bans count by it.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries left of
/// it can be forged by the client).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &IpList) -> IpAddr {
    let peer = canonical(peer);
    if trusted_proxies.is_empty() || !trusted_proxies.contains(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut last = peer;
    for entry in header.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            // Garbage in the chain: trust nothing further left.
            return last;
        };
        let ip = canonical(ip);
        if !trusted_proxies.contains(ip) {
            return ip;
        }
        last = ip;
    }
    last
}

/// The two lists an account's requests must pass: the operator's, and the account's own,
/// set by its admins within the operator's (empty lists allow any address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountNetworks {
    pub operator: IpList,
    pub account: IpList,
}

impl AccountNetworks {
    pub fn from_stored(operator: &str, account: &str) -> Self {
        Self {
            operator: IpList::from_stored(operator),
            account: IpList::from_stored(account),
        }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.operator.allows(ip) && self.account.allows(ip)
    }

    /// The narrower list, which a key made in the account inherits: the account's own when it
    /// has one, else the operator's.
    pub fn narrowest(&self) -> &IpList {
        if self.account.is_empty() {
            &self.operator
        } else {
            &self.account
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_parse_addresses_and_networks_and_refuse_junk() {
        let list = IpList::parse(["10.0.0.0/8", "203.0.113.7", "2001:db8::/32"]).unwrap();
        assert!(list.contains(ip("10.1.2.3")));
        assert!(list.contains(ip("203.0.113.7")));
        assert!(!list.contains(ip("203.0.113.8")));
        assert!(list.contains(ip("2001:db8::1")));
        assert!(
            list.contains(ip("::ffff:10.9.9.9")),
            "IPv4-mapped IPv6 counts as IPv4"
        );
        assert_eq!(
            IpList::parse(["10.0.0.1/33"]),
            Err(BadNetwork("10.0.0.1/33".into()))
        );
        assert!(IpList::parse(["example.com"]).is_err());
        assert_eq!(IpList::from_stored(&list.to_stored()), list);
    }

    #[test]
    fn an_empty_allowlist_allows_everyone_and_covers_everything() {
        let empty = IpList::default();
        assert!(empty.allows(ip("198.51.100.1")));
        let narrow = IpList::parse(["10.1.0.0/16"]).unwrap();
        let wide = IpList::parse(["10.0.0.0/8"]).unwrap();
        assert!(empty.covers(&wide));
        assert!(wide.covers(&narrow));
        assert!(!narrow.covers(&wide));
        assert!(
            !wide.covers(&empty),
            "an unrestricted list is wider than any restriction"
        );
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxies = IpList::parse(["10.0.0.0/8"]).unwrap();
        let header = Some("198.51.100.9, 203.0.113.5, 10.0.0.2");
        // From the proxy: the right-most entry that is not a proxy.
        assert_eq!(
            client_ip(ip("10.0.0.1"), header, &proxies),
            ip("203.0.113.5")
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            client_ip(ip("192.0.2.1"), header, &proxies),
            ip("192.0.2.1")
        );
        // No proxies configured: never read.
        assert_eq!(
            client_ip(ip("10.0.0.1"), header, &IpList::default()),
            ip("10.0.0.1")
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("junk, 10.0.0.3"), &proxies),
            ip("10.0.0.3")
        );
    }
}
