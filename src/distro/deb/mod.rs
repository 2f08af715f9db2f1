//! Debian and Ubuntu (debootstrap-style) back end.

pub mod control;
pub mod debfile;
pub mod dpkgdb;
