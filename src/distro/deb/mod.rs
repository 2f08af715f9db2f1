//! Debian and Ubuntu (debootstrap-style) back end.

pub mod apt_state;
pub mod backend;
pub mod bootstrap;
pub mod control;
pub mod debfile;
pub mod dpkgdb;
pub mod essential_first;
pub mod index_choice;
pub mod packages;
pub mod relation;
pub mod release;
pub mod release_memory;
pub mod resolve;
pub mod slim;
pub mod stage2;
pub mod version;
