//! The integration tests, one module per area, in one test binary: each
//! binary links the whole crate, so one binary instead of 28 is most of
//! what a fresh `cargo test` would otherwise spend linking. The sandbox
//! tests are their own binary (`tests/sandbox.rs`, `harness = false`): that
//! binary is also the sandbox helper it re-executes.
//!
//! Run one area with `cargo test --test integration AREA::`, e.g.
//! `cargo test --test integration hostile_extract::`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../support_images/mod.rs"]
mod support_images;

mod apk_build;
mod apk_conformance;
mod apk_minirootfs;
mod apk_real;
mod build_debian;
mod build_tar_output;
mod deb_version_conformance;
mod debian_fidelity;
mod dockerfile_build;
mod dockerfile_conformance;
mod enospc;
mod fetch;
mod fixture_debs;
mod fuzz_replay;
mod hostile_extract;
mod hostile_registry;
mod image;
mod image_diff;
mod inrelease;
mod interop;
mod isolation;
mod lock;
mod offline;
mod planted_binaries;
mod registry;
mod release_freeze;
mod reproducible;
mod save;
mod sbom;
mod shared_cache;
mod signals;
mod signing;
mod slim;
mod store;
