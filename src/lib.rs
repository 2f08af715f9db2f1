//! rootstrap: build container base images straight from distribution package
//! repositories, with no Docker daemon.
//!
//! The module tree follows the pipeline (see README.md):
//! recipe → fetch + verify index → resolve plan → fetch + verify packages →
//! install into a rootfs (sandboxed scripts) → layer → image → output.

pub mod archive;
pub mod build;
pub mod cleanup;
pub mod distro;
pub mod dockerfile;
pub mod fetch;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod lock;
pub mod recipe;
pub mod report;
pub mod rootfs;
pub mod run;
pub mod sbom;
pub mod sign;
pub mod verify;
