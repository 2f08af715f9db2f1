//! The Alpine back end, end to end, as `apk add --initdb` does it: signed
//! APKINDEX per repository → solved world → verified .apk files → files in
//! the rootfs (through the safe rootfs API only) → the apk database that the
//! target's own apk-tools reads → package scripts and triggers in the sandbox.
//!
//! Nothing from a package reaches the rootfs until it has passed
//! `open_package` (signature, `C:` identity, size, datahash) and its
//! per-file checksums. The install takes each package as soon as it and
//! those before it are verified; a package that fails stops it, and the
//! build's tree is temporary, so a tampered package leaves nothing behind.
//!
//! One file per stage, in order: `source` (repositories and world),
//! `indexes` (signed APKINDEX), `plan` (solve), `download` (fetch and
//! verify), `install` (files and scripts), `database` (lib/apk/db and
//! etc/apk); `scripts` runs package scripts for `install`.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::index::{parse_index, ApkPackage, Dependency};
use super::installed::{self, InstalledPackage, ScriptEntry};
use super::package::{open_package, verify_data_entries, VerifiedApk, SCRIPT_NAMES};
use super::sign::{Trust, TrustedKeys};
use super::solver::{solve_with, SolveError, SolveOptions};
use super::tar::{EntryKind, TarEntry};
use super::ApkError;
use crate::fetch::Fetcher;
use crate::report::Reporter;
use crate::rootfs::extract::{extract_tar_with, Claimed, ExtractOptions};
use crate::rootfs::safe::{FileKind, RelPath, Root};
use crate::rootfs::sandbox::{self, Network, RunSpec, Sandbox, Session};
use crate::verify::Sha256Digest;
use plan_cache::PlanCache;

mod database;
mod download;
mod indexes;
mod install;
mod plan;
mod plan_cache;
mod scripts;
mod source;

pub use download::*;
pub use indexes::*;
pub use install::*;
pub use plan::*;
pub use source::*;

use database::write_database;
use install::{rel, trigger_globs};
use scripts::ScriptRunner;

/// Real indexes are 1–3 MB; anything near this is not an APKINDEX.
const INDEX_LIMIT: u64 = 64 << 20;

/// What the official minirootfs installs (`alpine-make-rootfs` default).
pub const DEFAULT_WORLD: &[&str] = &[
    "alpine-baselayout",
    "alpine-keys",
    "apk-tools",
    "busybox",
    "libc-utils",
];

/// Where package scripts are staged inside the rootfs while they run (apk
/// 2.14 uses the same directory), removed afterwards.
const EXEC_DIR: &str = "lib/apk/exec";
/// Prefix of the progress lines the generated script prints.
const STEP_MARKER: &str = "rootstrap-step:";

#[derive(Debug, thiserror::Error)]
pub enum ApkBootstrapError {
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    // Fields are named `error`, not `source`: the message already includes
    // it, and a chained source would print it twice.
    #[error("{url}: {error}")]
    Index { url: String, error: ApkError },
    /// Every ApkError names the package (or file) at fault.
    #[error(transparent)]
    Package(ApkError),
    /// The install was given fewer packages than its plan names.
    #[error("{package}: no verified package was given to install")]
    NotFetched { package: String },
    #[error("{package}: cannot read the downloaded file {path}: {error}")]
    Read {
        package: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid package request {0:?}")]
    Request(String),
    #[error("invalid repository {0:?} (want `main`, `@tag release/repo` or `@tag https://…`)")]
    Repository(String),
    #[error("package request {request:?}: no repository is tagged @{tag}")]
    UnknownTag { request: String, tag: String },
    #[error(transparent)]
    Solve(#[from] SolveError),
    #[error(transparent)]
    Extract(#[from] crate::rootfs::extract::ExtractError),
    #[error("{package}: trying to overwrite /{path}, owned by {owner}")]
    Overwrite {
        package: String,
        path: String,
        owner: String,
    },
    #[error("rootfs {path}: {error}")]
    Rootfs {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("rootfs: {0}")]
    Fs(#[from] crate::rootfs::safe::FsError),
    #[error(transparent)]
    Path(#[from] crate::rootfs::safe::PathError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("package scripts failed at {step} ({status}); last output:\n{tail}")]
    Scripts {
        step: String,
        status: String,
        tail: String,
    },
}

impl From<ApkError> for ApkBootstrapError {
    fn from(e: ApkError) -> Self {
        ApkBootstrapError::Package(e)
    }
}

/// apk's architecture name for this machine (what can run scripts natively).
pub fn host_apk_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "x86",
        "arm" => "armv7",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
