//! Trusted proxies (`--trusted-proxy CIDR`): which peers may hand escrowd a forwarded client certificate.
//!
//! Guarantees: [`Cidr`] parses `ADDR/PREFIX` (IPv4 prefix 0-32, IPv6 0-128) or a bare address (a single
//! host), and refuses anything else with a message that says what was expected; [`Cidr::contains`] compares
//! the leading `prefix` bits only, and treats an IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, as a dual-stack
//! listener reports IPv4 clients) as the IPv4 address it is. std only: a prefix match is a few lines.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: the address with its host bits cleared, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p))),
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p))),
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let expected = "expected an IP network such as 10.0.0.0/8, 192.168.1.10 or fd00::/8";
        let value = value.trim();
        let (addr, prefix) = match value.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (value, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{value}' is not an IP address or network: {expected}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{value}': the prefix length must be 0 to {max}"))?,
            Some(_) => {
                return Err(format!(
                    "'{value}': the prefix length must be a number 0 to {max}: {expected}"
                ));
            }
        };
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(mask_v4(u32::from(a), prefix).into()),
            IpAddr::V6(a) => IpAddr::V6(mask_v6(u128::from(a), prefix).into()),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Whether `peer` is inside any of `proxies`.
pub fn is_trusted(proxies: &[Cidr], peer: IpAddr) -> bool {
    proxies.iter().any(|c| c.contains(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_networks_match_their_prefix_only() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.0.1")));
        assert!(net.contains(ip("10.1.255.255")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("11.1.0.1")));
        // Host bits in the written network are cleared.
        let net: Cidr = "192.168.1.77/24".parse().unwrap();
        assert_eq!(net.to_string(), "192.168.1.0/24");
        assert!(net.contains(ip("192.168.1.5")));
        assert!(!net.contains(ip("192.168.2.5")));
        // A bare address is one host.
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
        // /0 is everything of that family, and nothing of the other.
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv6_networks_match_their_prefix_only() {
        let net: Cidr = "2001:db8:abcd::/48".parse().unwrap();
        assert!(net.contains(ip("2001:db8:abcd:1::5")));
        assert!(!net.contains(ip("2001:db8:abce::5")));
        assert!(!net.contains(ip("10.0.0.1")));
        let odd: Cidr = "fd00::/7".parse().unwrap();
        assert!(odd.contains(ip("fc00::1")));
        assert!(odd.contains(ip("fdff::1")));
        assert!(!odd.contains(ip("fe80::1")));
        let host: Cidr = "::1".parse().unwrap();
        assert_eq!(host.prefix(), 128);
        assert!(host.contains(ip("::1")));
        assert!(!host.contains(ip("::2")));
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_its_ipv4_network() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("::ffff:10.9.8.7")));
        assert!(!net.contains(ip("::ffff:11.9.8.7")));
    }

    #[test]
    fn bad_networks_are_refused_with_a_hint() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256/32",
            "::/129",
            "::/1000",
            "fe80::1%eth0/64",
            "example.com/24",
            "10.0.0.0/8 junk",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(
                err.contains("prefix") || err.contains("not an IP"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn is_trusted_checks_every_network() {
        let proxies: Vec<Cidr> = ["10.0.0.0/8", "2001:db8::/32"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(is_trusted(&proxies, ip("10.3.3.3")));
        assert!(is_trusted(&proxies, ip("2001:db8::9")));
        assert!(!is_trusted(&proxies, ip("127.0.0.1")));
        assert!(!is_trusted(&[], ip("10.3.3.3")));
    }
}
