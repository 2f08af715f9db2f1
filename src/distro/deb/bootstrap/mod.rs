//! The Debian/Ubuntu back end, end to end: signed index → package set →
//! verified .debs → unpacked rootfs → stage 2 in the sandbox → normalised.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::apt_state::{self, AptRequest};
use super::dpkgdb::{self, UnpackOptions, UnpackedPackage};
use super::essential_first;
use super::index_choice;
use super::packages::{
    parse_packages, piece_error_in, summarize_detached, BinaryPackage, MultiArch, PackagesError,
    StanzaSummary,
};
use super::release::{IndexCompression, IndexFile, Release, ReleaseError, ReleasePolicy};
use super::release_memory::ReleaseMemory;
use super::resolve::{self, Plan, Request, Universe, Variant};
use super::slim;
use super::stage2::{self, Stage2Package};
use super::version::Version;
use crate::archive::decompress;
use crate::archive::tar::EntryKind;
use crate::cleanup::TempPath;
use crate::fetch::{FetchItem, Fetcher};
use crate::report::Reporter;
use crate::rootfs::extract::Claimed;
use crate::rootfs::merge::{self, MergeError};
use crate::rootfs::safe::{FileKind, RelPath, Root};
use crate::rootfs::sandbox::{self, Network, RunSpec, Sandbox};
use crate::verify::{verify_inrelease, Keyring, Sha256Digest};

/// Decompressed Packages indexes larger than this are refused (trixie's main
/// amd64 index is ~60 MB).
const PACKAGES_LIMIT: u64 = 1 << 30;
/// InRelease files are ~150 KB; anything near this is not an InRelease.
const INRELEASE_LIMIT: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error("{url}: {source}")]
    Signature {
        url: String,
        source: crate::verify::VerifyError,
    },
    #[error("{url}: {source}")]
    Release {
        url: String,
        source: super::release::ReleaseError,
    },
    #[error("{url}: {source}")]
    Packages {
        url: String,
        source: super::packages::PackagesError,
    },
    #[error("{url}: cannot decompress: {source}")]
    Decompress { url: String, source: std::io::Error },
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error("invalid version pin {pin:?} for {package}: {message}")]
    Pin {
        package: String,
        pin: String,
        message: String,
    },
    #[error("the lock does not match the signed index ({} package(s)):\n  {}", problems.len(), problems.join("\n  "))]
    Locked { problems: Vec<String> },
    #[error(transparent)]
    Unpack(#[from] dpkgdb::UnpackError),
    #[error(transparent)]
    Database(#[from] dpkgdb::DpkgDbError),
    #[error("rootfs {path}: {source}")]
    Rootfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rootfs: {0}")]
    Fs(#[from] crate::rootfs::safe::FsError),
    #[error(transparent)]
    Path(#[from] crate::rootfs::safe::PathError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("moving the packages unpacked on the side into the rootfs: {0}")]
    Merge(#[from] MergeError),
    #[error(transparent)]
    AptState(#[from] apt_state::AptStateError),
    #[error("maintainer scripts failed at {step} ({status}); last output:\n{tail}")]
    Stage2 {
        step: String,
        status: String,
        tail: String,
    },
}

/// Where and what to bootstrap.
#[derive(Debug, Clone)]
pub struct DebSource {
    pub mirror: String,
    pub suite: String,
    pub components: Vec<String>,
    pub arch: String,
    pub variant: Variant,
    /// `[packages] install`, with optional version pins.
    pub include: Vec<(String, Option<String>)>,
    /// The snapshot timestamp when `mirror` is a Debian snapshot: its
    /// Release's Valid-Until is then not checked.
    pub snapshot: Option<String>,
}

mod index;
mod install;
mod normalise;
mod plan;
mod unpack;

pub use index::{load_index, LoadedIndex, UsedIndex};
pub use install::{install, InstallOptions};
pub use normalise::normalise;
pub use plan::{fetch_items, plan, plan_from_lock};

use plan::plan_in;
use unpack::{Unpacker, Workers};
