//! Conformance data beside the checkout (`../shared/conformance`, and the
//! official Alpine minirootfs tarballs in `../shared/alpine-minirootfs`):
//! read in place, never copied into the project. Absent on a user's
//! machine, so a test that needs it is skipped ([`super::skip`]).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::skip::skip;

/// The directory holding `conformance/` and `alpine-minirootfs/`.
fn shared_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// `../shared/conformance/<rel>` (a file or a directory), or `None` after
/// a skip naming it.
pub fn path(rel: &str) -> Option<PathBuf> {
    existing(shared_root().join("conformance").join(rel))
}

/// `../shared/alpine-minirootfs/<name>` (an official minirootfs tarball),
/// or `None` after a skip naming it.
pub fn minirootfs_tarball(name: &str) -> Option<PathBuf> {
    existing(shared_root().join("alpine-minirootfs").join(name))
}

fn existing(path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        Some(path)
    } else {
        skip(format!("{} not found", path.display()));
        None
    }
}
