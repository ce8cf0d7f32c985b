//! What is true on this machine, as data: the socket table and its
//! owners, who holds a port and why it is or is not bindable, processes,
//! units and containers, the registry, and the bytes of the protocols
//! portctl speaks. Facts know nothing of clap or of how they are shown.

pub(crate) mod bind;
pub(crate) mod cgroup;
pub(crate) mod connections;
pub(crate) mod containers;
pub(crate) mod hello_protocol;
pub(crate) mod http;
pub(crate) mod port_holders;
pub(crate) mod port_story;
pub(crate) mod process;
pub(crate) mod registry;
pub(crate) mod resolve;
pub(crate) mod scrape;
pub(crate) mod socket_handover;
pub(crate) mod socket_record;
pub(crate) mod sockets;
pub(crate) mod stop;
pub(crate) mod why_busy;
