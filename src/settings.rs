//! The machine's port settings that decide whether a server may bind a
//! port nobody holds: the unprivileged start, the ephemeral range, the
//! reserved ports, and this process's privilege. Parsed from the sysctl
//! texts the platform reads.

use crate::parse::PortRange;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSettings {
    /// `net.ipv4.ip_unprivileged_port_start`: ports below need privilege.
    pub unprivileged_start: Option<u16>,
    /// `net.ipv4.ip_local_port_range`: where outgoing connections take
    /// their local ports.
    pub ephemeral: Option<PortRange>,
    /// `net.ipv4.ip_local_reserved_ports`: never handed out automatically.
    pub reserved: Vec<PortRange>,
    /// Whether this process may bind below the unprivileged start
    /// (CAP_NET_BIND_SERVICE), where known.
    pub may_bind_privileged: Option<bool>,
}

impl PortSettings {
    pub fn parse(
        unprivileged_start: Option<&str>,
        ephemeral: Option<&str>,
        reserved: Option<&str>,
        may_bind_privileged: Option<bool>,
    ) -> Self {
        PortSettings {
            unprivileged_start: unprivileged_start.and_then(|t| t.trim().parse().ok()),
            ephemeral: ephemeral.and_then(|t| {
                let mut ports = t.split_whitespace().map(|p| p.parse::<u16>());
                match (ports.next(), ports.next()) {
                    (Some(Ok(low)), Some(Ok(high))) if low <= high => Some(PortRange { low, high }),
                    _ => None,
                }
            }),
            reserved: reserved.map(parse_port_list).unwrap_or_default(),
            may_bind_privileged,
        }
    }

    pub fn is_reserved(&self, port: u16) -> bool {
        self.reserved.iter().any(|r| r.contains(port))
    }

    /// Whether binding `port` needs a privilege this process lacks.
    pub fn needs_privilege(&self, port: u16) -> bool {
        self.unprivileged_start.is_some_and(|start| port < start)
            && self.may_bind_privileged == Some(false)
    }
}

/// `8080,9000-9010` (the format of `ip_local_reserved_ports`); bad items
/// are skipped.
fn parse_port_list(text: &str) -> Vec<PortRange> {
    text.trim()
        .split(',')
        .filter_map(|item| crate::parse::parse_range(item.trim()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_texts() {
        let s = PortSettings::parse(
            Some("1024\n"),
            Some("32768\t60999\n"),
            Some("8080,9000-9010\n"),
            Some(false),
        );
        assert_eq!(s.unprivileged_start, Some(1024));
        assert_eq!(
            s.ephemeral,
            Some(PortRange {
                low: 32768,
                high: 60999
            })
        );
        assert!(s.is_reserved(8080) && s.is_reserved(9005) && !s.is_reserved(9011));
        assert!(s.needs_privilege(80) && !s.needs_privilege(1024));
        let empty = PortSettings::parse(Some(""), Some("x"), Some("\n"), None);
        assert_eq!(empty, PortSettings::default());
        assert!(!empty.needs_privilege(80));
    }
}
