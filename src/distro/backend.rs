//! The seam between the build pipeline and a distribution's back end.
//!
//! `crate::build` runs every build the same way — mirror and keys through
//! the back end, then lock, base-layer cache, a recipe's Dockerfile steps,
//! SBOMs and outputs once — and asks a [`Backend`] only for what differs
//! between distributions: how its signed index is loaded, how a plan is
//! made (or taken from a lock), what the image is called and labelled, how
//! the packages are fetched and installed into the tree.
//!
//! [`with_backend`] is the one place that picks a back end for a recipe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::distro::apk::bootstrap::ApkBootstrapError;
use crate::distro::deb::bootstrap::BootstrapError;
use crate::distro::mirror::{self, MirrorError, MirrorOrigin, MirrorQuery};
use crate::fetch::{CacheLock, Fetcher};
use crate::lock::{LockPath, LockSource, LockedFile, LockedPackage, Lockfile};
use crate::recipe::{Distro, Recipe};
use crate::report::SharedReporter;
use crate::rootfs::sandbox::Sandbox;

/// Where packages come from: options shared by `build`, `resolve` and `lock`.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// `--mirror`.
    pub mirror: Option<String>,
    /// `--cache-dir`; default: the user's cache dir.
    pub cache_dir: Option<PathBuf>,
    /// `--arch`, overriding the recipe.
    pub arch: Option<String>,
    /// `--platform` (one), overriding the recipe: the back end maps it to
    /// its own architecture name.
    pub platform: Option<crate::distro::platform::Platform>,
    /// Only use what is in the cache.
    pub offline: bool,
    /// `--keys DIR`: trust these keys instead of the recipe's.
    pub keys_dir: Option<PathBuf>,
    /// `--allow-untrusted`: accept unsigned or untrusted Alpine indexes and
    /// packages (recorded in the image as `org.rootstrap.untrusted=true`).
    pub allow_untrusted: bool,
    /// `--accept-release-change`: accept, once, a Debian Release older than
    /// the last one accepted from that source, or one whose Origin, Label,
    /// Suite or Codename changed.
    pub accept_release_change: bool,
}

/// One package of a plan, as `rootstrap resolve` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Download size in bytes.
    pub size: u64,
    /// Installed size in KiB, when the index says.
    pub installed_size_kib: Option<u64>,
    /// Why it is in the plan (`minbase → apt → libc6`).
    pub why: String,
}

/// A resolved plan, as `rootstrap resolve` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub distro: String,
    pub suite: String,
    pub arch: String,
    pub variant: String,
    pub mirror: String,
    pub packages: Vec<PlannedPackage>,
    pub download_bytes: u64,
    pub installed_kib: u64,
}

/// What a back end fails with. The pipeline wraps it in its own error.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Mirror(#[from] crate::distro::mirror::MirrorError),
    #[error(transparent)]
    Keys(#[from] crate::verify::keys::KeyError),
    #[error("recipe {recipe}: keys: {source}")]
    Keyring {
        recipe: PathBuf,
        source: crate::verify::KeyringError,
    },
    #[error("trusted keys: {0}")]
    ApkKeys(crate::distro::apk::ApkError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Cache(#[from] crate::fetch::CacheError),
    #[error(transparent)]
    Debian(Box<BootstrapError>),
    #[error(transparent)]
    Alpine(Box<ApkBootstrapError>),
    #[error("--slim: {distro} images have no dpkg to keep excluded paths out; slim is for Debian and Ubuntu")]
    SlimUnsupported { distro: &'static str },
    #[error(transparent)]
    Platform(#[from] crate::distro::platform::PlatformError),
    #[error("--arch {arch} and --platform {platform} both name the architecture: give one")]
    ArchAndPlatform { arch: String, platform: String },
    #[error("{what}: cannot be recorded in a lock: {reason}")]
    LockUnsafePath { what: String, reason: String },
    #[error("lockfile {file} does not match the signed index ({} package(s)):\n  {}", problems.len(), problems.join("\n  "))]
    LockMismatch {
        file: PathBuf,
        problems: Vec<String>,
    },
}

impl From<BootstrapError> for BackendError {
    fn from(e: BootstrapError) -> Self {
        BackendError::Debian(Box::new(e))
    }
}

impl From<ApkBootstrapError> for BackendError {
    fn from(e: ApkBootstrapError) -> Self {
        BackendError::Alpine(Box::new(e))
    }
}

/// A path a lock records, or the error naming what it belongs to.
pub(crate) fn lock_path(what: &str, path: &str) -> Result<LockPath, BackendError> {
    LockPath::parse(path).map_err(|reason| BackendError::LockUnsafePath {
        what: what.to_owned(),
        reason: reason.to_string(),
    })
}

/// The plan's installed size in bytes, from each package's installed size
/// in bytes and its download size. A package whose index gives no installed
/// size counts as four times its download (a typical ratio for xz- and
/// gzip-compressed package payloads), so it is not counted as zero.
pub(crate) fn planned_bytes(packages: impl Iterator<Item = (Option<u64>, u64)>) -> u64 {
    packages
        .map(|(installed, download)| installed.unwrap_or(download.saturating_mul(4)))
        .fold(0u64, u64::saturating_add)
}

/// The open download cache every stage of one build shares.
pub struct Context {
    pub fetcher: Fetcher,
    pub cache_dir: PathBuf,
    pub reporter: SharedReporter,
    /// Held for the whole build, shared with other builds (see
    /// [`crate::fetch::Cache::lock`]).
    pub _cache_lock: std::sync::Arc<CacheLock>,
}

impl Context {
    /// The same cache, fetcher and lock, reporting to `reporter`: for one
    /// platform of a multi-platform build, built beside the others.
    pub fn with_reporter(&self, reporter: SharedReporter) -> Context {
        Context {
            fetcher: self.fetcher.with_reporter(reporter.clone()),
            cache_dir: self.cache_dir.clone(),
            reporter,
            _cache_lock: self._cache_lock.clone(),
        }
    }
}

/// `--lock FILE --locked`: the lock a build installs exactly.
#[derive(Clone, Copy)]
pub struct Locked<'a> {
    pub file: &'a Path,
    pub lock: &'a Lockfile,
}

/// The architecture a build is for, in the distribution's spelling: the
/// command line's `--arch` or `--platform`, else the recipe's.
pub fn target_arch(
    recipe: &Recipe,
    opts: &SourceOptions,
    table: crate::distro::platform::ArchTable,
) -> Result<String, BackendError> {
    match (&opts.arch, &opts.platform) {
        (Some(arch), Some(platform)) => Err(BackendError::ArchAndPlatform {
            arch: arch.clone(),
            platform: platform.to_string(),
        }),
        (Some(arch), None) => Ok(arch.clone()),
        (None, Some(platform)) => Ok(platform
            .distro_arch(table, recipe.source.distro.name())?
            .to_owned()),
        (None, None) => Ok(recipe.source.arch.clone()),
    }
}

/// The mirror a build uses: `choose` picks it from the command line's, the
/// environment's and the recipe's (see `mirror::choose`), and the choice is
/// reported with where it came from.
pub fn choose_mirror(
    recipe: &Recipe,
    opts: &SourceOptions,
    suite: &str,
    use_host_sources: bool,
    ctx: &Context,
    choose: impl FnOnce(&MirrorQuery<'_>) -> Result<(String, MirrorOrigin), MirrorError>,
) -> Result<String, BackendError> {
    let env_mirror = std::env::var(mirror::MIRROR_ENV).ok();
    let query = MirrorQuery {
        cli: opts.mirror.as_deref(),
        env: env_mirror.as_deref(),
        recipe: recipe.source.mirror.as_deref(),
        distro: recipe.source.distro.name(),
        suite,
        use_host_sources,
    };
    let (mirror, origin) = choose(&query)?;
    ctx.reporter
        .info(&format!("mirror {mirror} (from {origin})"));
    Ok(mirror)
}

/// What the image records about the base layer: its labels and history
/// line, and how the layer is made.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// Labels the back end adds (untrusted).
    pub labels: Vec<(String, String)>,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// Everything the base layer is made of beyond the packages' identity
    /// and the pipeline's own settings (epoch, compression): same inputs,
    /// same layer.
    pub layer_key: Vec<String>,
    /// Top-level directories packed empty-less: mount points filled at run
    /// time.
    pub layer_excludes: &'static [&'static str],
    /// The plan's installed size in bytes, and the download size for
    /// packages whose installed size is unknown (where the tree may go).
    pub planned_bytes: u64,
}

/// How `install` runs.
pub struct InstallSettings<'a> {
    pub sandbox: &'a Sandbox,
    pub epoch: i64,
    pub run_scripts: bool,
    pub locked: Option<Locked<'a>>,
}

/// A distribution's half of a build. The pipeline calls, in order:
/// `lock_source`, `load_index`, `plan`, `report`, `fetch`, `base_image`,
/// then `install` (or `keep_in_cache` when the base layer is reused).
pub trait Backend: Sized {
    /// The verified index.
    type Index;
    /// A resolved (or locked) plan over the index.
    type Plan<'i>
    where
        Self: 'i;
    /// The plan's packages, verified (or what fetching them needs).
    type Fetched;

    /// Chooses the mirror and reads the trusted keys.
    fn prepare(
        recipe: &Recipe,
        opts: &SourceOptions,
        slim: bool,
        ctx: &Context,
    ) -> Result<Self, BackendError>;

    /// What a lock records of the source (and must match to be used).
    fn lock_source(&self) -> LockSource;

    /// Fetches and verifies the index; `for_lock` also records the index
    /// files a lock lists.
    fn load_index(&self, ctx: &Context, for_lock: bool) -> Result<Self::Index, BackendError>;

    /// The plan: resolved, or the lock's packages checked against the index.
    fn plan<'i>(
        &'i self,
        index: &'i mut Self::Index,
        locked: Option<Locked<'_>>,
        ctx: &Context,
    ) -> Result<Self::Plan<'i>, BackendError>;

    fn report(&self, plan: &Self::Plan<'_>) -> PlanReport;

    /// The signed index's date: the default reproducible timestamp.
    fn index_date(&self, plan: &Self::Plan<'_>) -> Option<i64>;

    /// The index files a lock records.
    fn lock_index_files(&self, plan: &Self::Plan<'_>) -> Result<Vec<LockedFile>, BackendError>;

    /// The plan as lock entries, with every package's SHA-256 (after
    /// `fetch` where the index has none).
    fn locked_packages(
        &self,
        plan: &Self::Plan<'_>,
        ctx: &Context,
    ) -> Result<Vec<LockedPackage>, BackendError>;

    /// The plan as lock entries without downloading anything, for drift
    /// against `lock`.
    fn drift_entries(
        &self,
        plan: &Self::Plan<'_>,
        lock: &Lockfile,
    ) -> Result<Vec<LockedPackage>, BackendError>;

    /// Fetches and verifies the packages, or prepares to while installing;
    /// `verify_now` (`rootstrap lock`, which records their digests) always
    /// verifies them here.
    fn fetch(
        &self,
        plan: &Self::Plan<'_>,
        locked: Option<Locked<'_>>,
        verify_now: bool,
        ctx: &Context,
    ) -> Result<Self::Fetched, BackendError>;

    /// When the cached base layer is used: every planned package is still
    /// put in the download cache (`--offline` and `rootstrap mirror` rely
    /// on it).
    fn keep_in_cache(
        &self,
        plan: &Self::Plan<'_>,
        fetched: &Self::Fetched,
        ctx: &Context,
    ) -> Result<(), BackendError>;

    /// The OCI architecture and variant of the target (`arm64`, `v8`).
    fn platform(&self) -> (String, Option<String>);

    /// `run_scripts`: whether package scripts run (natively or emulated).
    fn base_image(
        &self,
        plan: &Self::Plan<'_>,
        fetched: &Self::Fetched,
        locked: Option<Locked<'_>>,
        run_scripts: bool,
    ) -> BaseImage;

    /// Installs the plan into the empty tree at `root`.
    fn install(
        &self,
        root: &Path,
        plan: &Self::Plan<'_>,
        fetched: &Self::Fetched,
        settings: &InstallSettings<'_>,
        ctx: &Context,
    ) -> Result<(), BackendError>;

    /// SHA-256 of each package file by `name:arch`, for the SBOMs (empty
    /// where the package database records its own identity).
    fn package_checksums(&self, plan: &Self::Plan<'_>) -> BTreeMap<String, [u8; 32]>;
}

/// What runs with the back end a recipe names.
pub trait WithBackend {
    type Output;
    fn run<B: Backend>(self, backend: B, ctx: &Context) -> Self::Output;
}

/// Prepares the recipe's back end over `ctx` and hands both to `job`.
pub fn with_backend<W: WithBackend>(
    recipe: &Recipe,
    opts: &SourceOptions,
    slim: bool,
    ctx: &Context,
    job: W,
) -> Result<W::Output, BackendError> {
    Ok(match recipe.source.distro {
        Distro::Alpine => {
            let backend =
                crate::distro::apk::backend::ApkBackend::prepare(recipe, opts, slim, ctx)?;
            job.run(backend, ctx)
        }
        Distro::Debian | Distro::Ubuntu => {
            let backend =
                crate::distro::deb::backend::DebBackend::prepare(recipe, opts, slim, ctx)?;
            job.run(backend, ctx)
        }
    })
}
