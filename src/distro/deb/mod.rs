//! Debian and Ubuntu (debootstrap-style) back end.

pub mod control;
pub mod packages;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod version;
