//! The registry's types and how the generated table packs an entry, in
//! one place: `build.rs` writes with these, `registry` reads with them.
//! No CSV here: parsing the registry happens at build time (`load.rs`).

/// A transport as the registry knows it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
    Sctp,
    Dccp,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::Tcp,
        Transport::Udp,
        Transport::Sctp,
        Transport::Dccp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Sctp => "sctp",
            Transport::Dccp => "dccp",
        }
    }

    /// Parses the registry's spelling, in any case.
    #[allow(dead_code)] // the writing half: build.rs and load.rs
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

/// Bit 0: the entry has a port.
pub const HAS_PORT: u8 = 1;
/// Bits 1-3: the transport, 0 when blank, else 1 + its place in
/// `Transport::ALL`.
const TRANSPORT_SHIFT: u8 = 1;
/// Bits 4-5: the standing (0 current, 1 alias, 2 renamed).
const STANDING_SHIFT: u8 = 4;
pub const ALIAS: u8 = 1;
pub const RENAMED: u8 = 2;
/// Bit 6: registered or renamed after the bundled CSV.
pub const UPDATED: u8 = 1 << 6;
/// Bit 7: from the project's table of common uses.
pub const COMMON: u8 = 1 << 7;

#[allow(dead_code)] // the writing half: build.rs and load.rs
pub fn pack_transport(transport: Option<Transport>) -> u8 {
    let code = transport.map_or(0, |t| {
        Transport::ALL.iter().position(|&x| x == t).unwrap_or(0) as u8 + 1
    });
    code << TRANSPORT_SHIFT
}

pub fn transport(flags: u8) -> Option<Transport> {
    let code = (flags >> TRANSPORT_SHIFT) & 0b111;
    Transport::ALL
        .get(usize::from(code).checked_sub(1)?)
        .copied()
}

#[allow(dead_code)] // the writing half: build.rs and load.rs
pub fn pack_standing(standing: u8) -> u8 {
    standing << STANDING_SHIFT
}

pub fn standing(flags: u8) -> u8 {
    (flags >> STANDING_SHIFT) & 0b11
}

/// A name's place in the string table, as the name index keeps it:
/// offset << 8 | length (names are under 256 bytes).
#[allow(dead_code)] // the writing half: build.rs and load.rs
pub fn pack_name(at: usize, len: usize) -> Option<u32> {
    (len < 256 && at < 1 << 24).then_some((at as u32) << 8 | len as u32)
}

pub fn name_span(packed: u32) -> (usize, usize) {
    ((packed >> 8) as usize, (packed & 0xff) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        for t in [None, Some(Transport::Tcp), Some(Transport::Dccp)] {
            let flags = HAS_PORT | pack_transport(t) | pack_standing(RENAMED) | COMMON;
            assert_eq!(transport(flags), t);
            assert_eq!(standing(flags), RENAMED);
        }
        assert_eq!(name_span(pack_name(70_000, 12).unwrap()), (70_000, 12));
        assert_eq!(pack_name(0, 256), None);
    }
}
