//! The commands: each a leaf that reads its arguments, asks the facts and
//! hands what they found to `output`. No command imports another.

pub(crate) mod check;
pub(crate) mod docs;
pub(crate) mod free;
pub(crate) mod kill;
pub(crate) mod list;
pub(crate) mod metrics;
pub(crate) mod probe;
pub(crate) mod serve;
pub(crate) mod talk;
pub(crate) mod top;
pub(crate) mod trace;
pub(crate) mod wait;
pub(crate) mod whatis;
pub(crate) mod who;
