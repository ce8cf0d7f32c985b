//! Parsers for what users type: ports, ranges, addresses and `HOST:PORT`.
//!
//! Pure functions, no I/O. Every failure names the bad value and the form
//! that is allowed, so the CLI can print it as one `error:` line.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// A rejected value and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl ParseError {
    fn new(kind: &'static str, value: &str, expected: &'static str) -> Self {
        ParseError {
            kind,
            value: value.to_string(),
            expected,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} '{}': {}",
            self.kind, self.value, self.expected
        )
    }
}

impl std::error::Error for ParseError {}

pub const PORT_FORM: &str = "a port is a whole number from 0 to 65535";
pub const RANGE_FORM: &str =
    "a port is a whole number from 0 to 65535, a range is LOW-HIGH with LOW <= HIGH";
const ADDR_FORM: &str = "expected an IP address such as 127.0.0.1 or ::1";
const TARGET_FORM: &str =
    "expected HOST:PORT, such as 127.0.0.1:8080, localhost:8080 or [::1]:8080";

/// An inclusive range of ports; a single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        PortRange {
            low: port,
            high: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.low..=self.high
    }

    pub fn port_count(&self) -> usize {
        usize::from(self.high - self.low) + 1
    }

    pub fn is_single(&self) -> bool {
        self.low == self.high
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// A port: decimal digits only, 0–65535. No sign, no spaces, no exponent.
pub fn parse_port(text: &str) -> Result<u16, ParseError> {
    let err = || ParseError::new("port", text, PORT_FORM);
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    text.parse::<u16>().map_err(|_| err())
}

/// A port or a `LOW-HIGH` range of ports.
pub fn parse_range(text: &str) -> Result<PortRange, ParseError> {
    let err = || ParseError::new("port or range", text, RANGE_FORM);
    match text.split_once('-') {
        None => parse_port(text).map(PortRange::single).map_err(|_| err()),
        Some((low, high)) => {
            let low = parse_port(low).map_err(|_| err())?;
            let high = parse_port(high).map_err(|_| err())?;
            if low > high {
                return Err(err());
            }
            Ok(PortRange { low, high })
        }
    }
}

/// An IP address, IPv6 with or without brackets.
pub fn parse_ip(text: &str) -> Result<IpAddr, ParseError> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .map_err(|_| ParseError::new("address", text, ADDR_FORM))
}

/// Where to connect: an IP address or a name still to be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// `HOST:PORT` (one port) — `127.0.0.1:80`, `localhost:80`, `[::1]:80`.
pub fn parse_host_port(text: &str) -> Result<(Host, u16), ParseError> {
    let (host, port) = split_host(text, TARGET_FORM)?;
    let port = parse_port(port).map_err(|_| ParseError::new("address", text, TARGET_FORM))?;
    Ok((host, port))
}

/// `HOST:PORT` or `HOST:LOW-HIGH`.
pub fn parse_host_range(text: &str) -> Result<(Host, PortRange), ParseError> {
    const FORM: &str =
        "expected HOST:PORT or HOST:LOW-HIGH, such as 127.0.0.1:8080 or [::1]:8000-8100";
    let (host, ports) = split_host(text, FORM)?;
    let ports = parse_range(ports).map_err(|_| ParseError::new("address", text, FORM))?;
    Ok((host, ports))
}

/// Splits `HOST:REST`, validating HOST; IPv6 must be bracketed so its
/// colons cannot be mistaken for the port separator.
fn split_host<'a>(text: &'a str, form: &'static str) -> Result<(Host, &'a str), ParseError> {
    let err = || ParseError::new("address", text, form);
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(err)?;
        let port = after.strip_prefix(':').ok_or_else(err)?;
        let ip = ip.parse::<std::net::Ipv6Addr>().map_err(|_| err())?;
        return Ok((Host::Ip(IpAddr::V6(ip)), port));
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(err)?;
    if host.contains(':') {
        // An unbracketed IPv6 address: say how to write it.
        return Err(ParseError::new(
            "address",
            text,
            "an IPv6 address needs brackets, such as [::1]:8080",
        ));
    }
    Ok((parse_host(host).map_err(|_| err())?, port))
}

/// An IPv4 address or a DNS name. Text shaped like an IPv4 address that is
/// not one (`999.1.1.1`) is rejected rather than sent to the resolver.
pub fn parse_host(text: &str) -> Result<Host, ParseError> {
    let err = || ParseError::new("host", text, "expected an IP address or a host name");
    if text.is_empty() || text.len() > 253 {
        return Err(err());
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return text
            .parse::<Ipv4Addr>()
            .map(|ip| Host::Ip(IpAddr::V4(ip)))
            .map_err(|_| err());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if text.trim_end_matches('.').split('.').all(label_ok) {
        Ok(Host::Name(text.to_string()))
    } else {
        Err(err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port("0"), Ok(0));
        assert_eq!(parse_port("443"), Ok(443));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert_eq!(parse_port("00080"), Ok(80));
        for bad in [
            "",
            "-1",
            "65536",
            "abc",
            "1e3",
            "+80",
            " 80",
            "80 ",
            "0x50",
            "99999999999",
        ] {
            let e = parse_port(bad).unwrap_err();
            assert_eq!(e.value, bad);
            assert!(e.to_string().contains("0 to 65535"), "{e}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("80"), Ok(PortRange::single(80)));
        assert_eq!(
            parse_range("6000-6063"),
            Ok(PortRange {
                low: 6000,
                high: 6063
            })
        );
        assert_eq!(parse_range("5-5").unwrap().port_count(), 1);
        assert_eq!(parse_range("0-65535").unwrap().port_count(), 65536);
        for bad in ["80-", "-80", "9000-8000", "1-2-3", "", "a-b", "1 - 2", "-"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ips() {
        assert_eq!(parse_ip("127.0.0.1").unwrap().to_string(), "127.0.0.1");
        assert_eq!(parse_ip("::1").unwrap().to_string(), "::1");
        assert_eq!(parse_ip("[::1]").unwrap().to_string(), "::1");
        for bad in ["", "localhost", "999.1.1.1", "[::1", "1.2.3"] {
            assert!(parse_ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_ports() {
        let ok = |t: &str| parse_host_port(t).unwrap();
        assert_eq!(
            ok("127.0.0.1:9999"),
            (Host::Ip("127.0.0.1".parse().unwrap()), 9999)
        );
        assert_eq!(ok("[::1]:80"), (Host::Ip("::1".parse().unwrap()), 80));
        assert_eq!(ok("localhost:80"), (Host::Name("localhost".into()), 80));
        assert_eq!(
            ok("db-1.example.:5432").0,
            Host::Name("db-1.example.".into())
        );
        for bad in [
            "",
            ":80",
            "localhost",
            "localhost:",
            "localhost:70000",
            "::1:80",
            "[::1]80",
            "[::1]:",
            "999.1.1.1:80",
            "1.2.3:80",
            "bad host:80",
            "-x:80",
            "[1.2.3.4]:80",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
        assert!(parse_host_port("::1:80")
            .unwrap_err()
            .expected
            .contains("brackets"));
    }

    #[test]
    fn host_ranges() {
        let (host, range) = parse_host_range("[::1]:8000-8100").unwrap();
        assert_eq!(host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(
            range,
            PortRange {
                low: 8000,
                high: 8100
            }
        );
        assert!(parse_host_range("localhost:9-1").is_err());
    }

    #[test]
    fn host_display_brackets_ipv6() {
        assert_eq!(Host::Ip("::1".parse().unwrap()).to_string(), "[::1]");
        assert_eq!(Host::Name("a".into()).to_string(), "a");
    }

    proptest! {
        #[test]
        fn no_string_panics(text in "\\PC*") {
            let _ = parse_port(&text);
            let _ = parse_range(&text);
            let _ = parse_ip(&text);
            let _ = parse_host(&text);
            let _ = parse_host_port(&text);
            let _ = parse_host_range(&text);
        }

        #[test]
        fn no_address_shaped_string_panics(text in "[\\[\\]:0-9a-f.\\-]{0,40}") {
            let _ = parse_host_port(&text);
            let _ = parse_host_range(&text);
        }

        #[test]
        fn every_port_round_trips(port in any::<u16>()) {
            prop_assert_eq!(parse_port(&port.to_string()), Ok(port));
        }

        #[test]
        fn ranges_round_trip(a in any::<u16>(), b in any::<u16>()) {
            let (low, high) = (a.min(b), a.max(b));
            let range = parse_range(&format!("{low}-{high}")).unwrap();
            prop_assert_eq!(range, PortRange { low, high });
            let reversed = parse_range(&format!("{high}-{low}")).is_ok();
            prop_assert_eq!(reversed, low == high);
        }
    }
}
