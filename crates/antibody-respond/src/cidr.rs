//! IP addresses and CIDR blocks for allow-lists and `block_ip` targets (IPv4 and IPv6).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A network such as `10.0.0.0/8`; a bare address is a /32 (or /128). Serialised as that
/// text, so policy documents and JSON name networks the way people write them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (ip, prefix) = match text.trim().split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = ip.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

/// The text form: `10.0.0.0/8`, or a bare address.
impl schemars::JsonSchema for Cidr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cidr".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "examples": ["10.0.0.0/8", "192.0.2.7"]})
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Cidr::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not an IP address or CIDR block"))
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    a & mask == b & mask
}

/// The IP address inside a target: `1.2.3.4`, `ip:1.2.3.4` or `[::1]`.
pub fn target_ip(target: &str) -> Option<IpAddr> {
    let t = target.strip_prefix("ip:").unwrap_or(target);
    let t = t.trim_start_matches('[').trim_end_matches(']');
    // Most targets are names (`agent:x`): turned away at their first letter that no address
    // holds, before the two address parsers run (every verdict lookup asks).
    let address = |b: &u8| b.is_ascii_hexdigit() || *b == b'.' || *b == b':';
    if !t.as_bytes().iter().all(address) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_blocks() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.200.1.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.4")));
        assert!(!Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.5")));
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn v6_blocks() {
        let c = Cidr::parse("fd00::/8").unwrap();
        assert!(c.contains(ip("fd12::1")));
        assert!(!c.contains(ip("fe80::1")));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn targets() {
        assert_eq!(target_ip("ip:1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(target_ip("[::1]"), Some(ip("::1")));
        assert_eq!(target_ip("agent:x"), None);
        assert_eq!(target_ip("ip:::ffff:10.0.0.1"), Some(ip("::ffff:10.0.0.1")));
        assert_eq!(target_ip("fe80::1%eth0"), None);
        assert_eq!(target_ip("cafe"), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,48}") {
            let _ = Cidr::parse(&s);
        }

        #[test]
        fn target_ip_reads_what_the_address_parser_reads(s in "(ip:)?\\[?[0-9a-fA-F.:g-]{0,20}\\]?") {
            let t = s.strip_prefix("ip:").unwrap_or(&s);
            let t = t.trim_start_matches('[').trim_end_matches(']');
            prop_assert_eq!(target_ip(&s), t.parse::<IpAddr>().ok());
        }
    }
}
