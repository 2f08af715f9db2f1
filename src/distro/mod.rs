//! Distribution back ends: each turns a recipe source into a verified index,
//! a resolved plan, and an installed rootfs.

pub mod apk;
pub mod backend;
pub mod deb;
pub mod mirror;
pub mod platform;
