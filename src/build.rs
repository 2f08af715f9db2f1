//! The build pipeline: recipe → verified index → plan → packages → rootfs →
//! layer → image → outputs. Each stage is a call into its own module; this
//! one only sequences them, names the stage in progress and keeps the
//! temporary state (rootfs, blobs) tied to cleanup.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

mod alpine;
pub mod from_dockerfile;
mod locked;
mod tree_dir;

pub use locked::{read_lock, write_mirror, LockReport, LockRequest, MirrorReport};

use crate::cleanup::TempPath;
use crate::distro::deb::apt_state::AptRequest;
use crate::distro::deb::bootstrap::{self, BootstrapError, DebSource, InstallOptions};
use crate::distro::deb::packages::BinaryPackage;
use crate::distro::deb::release_memory::ReleaseMemory;
use crate::distro::deb::resolve::{Plan, Universe, Variant as DebVariant};
use crate::fetch::{Cache, ClientConfig, Fetcher};
use crate::image::oci::{self, Empty, History, ImageConfig};
use crate::image::{
    ImageBuilder, ImageError, ImageReference, LayerCompression, LayerOptions, Output,
};
use crate::layer_cache::{self, LayerCache, LayerEntry};
use crate::mirror::{self, MirrorError, MirrorQuery};
use crate::recipe::{Distro, Recipe, Variant};
use crate::report::SharedReporter;
use crate::rootfs::sandbox::Sandbox;
use crate::verify::keys::{self, KeyError};
use crate::verify::{Keyring, KeyringError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid output {0:?}: expected oci:DIR, docker-archive:FILE, tar:FILE or rootfs:DIR")]
    OutputSpec(String),
    #[error("output {0} is given twice")]
    DuplicateOutput(PathBuf),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("recipe {recipe}: keys: {source}")]
    Keyring {
        recipe: PathBuf,
        source: KeyringError,
    },
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Cache(#[from] crate::fetch::CacheError),
    #[error(transparent)]
    Bootstrap(Box<BootstrapError>),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Alpine(Box<crate::distro::apk::bootstrap::ApkBootstrapError>),
    #[error("trusted keys: {0}")]
    ApkKeys(crate::distro::apk::ApkError),
    #[error("--slim: {distro} images have no dpkg to keep excluded paths out; slim is for Debian and Ubuntu")]
    SlimUnsupported { distro: &'static str },
    #[error("{distro} recipes are not supported by this version of rootstrap yet")]
    Unsupported { distro: &'static str },
    #[error("cannot use cache directory {path}: {source}")]
    CacheDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create a temporary rootfs in {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write rootfs output {path}: {source}")]
    RootfsOutput {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid SOURCE_DATE_EPOCH {0:?}: expected a non-negative integer")]
    Epoch(String),
    #[error(transparent)]
    Dockerfile(#[from] crate::dockerfile::builder::DockerfileError),
    #[error(transparent)]
    Sbom(#[from] crate::sbom::SbomError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("lockfile {path}: {source}")]
    LockIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--locked: the lockfile {0} does not exist (write it with `rootstrap lock`)")]
    LockMissing(PathBuf),
    #[error("lockfile {file} was made for {field} {lock:?}, this build is for {build:?}")]
    LockSource {
        file: PathBuf,
        field: &'static str,
        lock: String,
        build: String,
    },
    #[error("{what}: cannot be recorded in a lock: {reason}")]
    LockUnsafePath { what: String, reason: String },
    #[error("lockfile {file} does not match the signed index ({} package(s)):\n  {}", problems.len(), problems.join("\n  "))]
    LockMismatch {
        file: PathBuf,
        problems: Vec<String>,
    },
    #[error("cannot write the mirror {path}: {source}")]
    MirrorOutput {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not in the cache and no mirror to fetch from (pass --mirror): {}", missing.join(", "))]
    MirrorMissing { file: PathBuf, missing: Vec<String> },
}

impl From<BootstrapError> for BuildError {
    fn from(e: BootstrapError) -> Self {
        BuildError::Bootstrap(Box::new(e))
    }
}

/// Options shared by `build` and `resolve`.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// `--mirror`.
    pub mirror: Option<String>,
    /// `--cache-dir`; default: the user's cache dir.
    pub cache_dir: Option<PathBuf>,
    /// `--arch`, overriding the recipe.
    pub arch: Option<String>,
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

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub source: SourceOptions,
    pub outputs: Vec<BuildOutput>,
    /// `-t`; default: the recipe's image.name.
    pub tags: Vec<String>,
    /// `--work-dir`: where temporary trees and blobs live (default: $TMPDIR).
    /// Given, it also holds a recipe build's rootfs, which otherwise may be
    /// made in memory (`tree_dir`).
    pub work_dir: Option<PathBuf>,
    /// The sandbox helper executable (default: this executable).
    pub sandbox_helper: Option<PathBuf>,
    /// `--lock FILE [--locked]`.
    pub lock: Option<LockRequest>,
    /// `--no-cache`: run every `[build] dockerfile` step instead of reusing
    /// the step cache in the cache dir.
    pub no_step_cache: bool,
    /// `--compression`, overriding the recipe's `[image] compression`.
    pub compression: Option<LayerCompression>,
    /// `--slim`: as `slim = true` in the recipe's `[source]`.
    pub slim: bool,
}

/// The layer compression a build uses: `--compression`, else the recipe's,
/// else gzip.
pub fn layer_compression(recipe: &Recipe, opts: &BuildOptions) -> LayerCompression {
    opts.compression
        .or(recipe.image.compression)
        .unwrap_or_default()
}

pub use crate::image::output::BuildOutput;

/// Parses `oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`, `tar:FILE`, `rootfs:DIR`.
pub fn parse_output(spec: &str) -> Result<BuildOutput, BuildError> {
    let (kind, path) = spec
        .split_once(':')
        .ok_or_else(|| BuildError::OutputSpec(spec.into()))?;
    if path.is_empty() {
        return Err(BuildError::OutputSpec(spec.into()));
    }
    let path = PathBuf::from(path);
    Ok(match kind {
        "oci" => BuildOutput::Image(Output::OciDir(path)),
        "oci-archive" => BuildOutput::Image(Output::OciArchive(path)),
        "docker-archive" => BuildOutput::Image(Output::DockerArchive(path)),
        "tar" => BuildOutput::Image(Output::RootfsTar(path)),
        "rootfs" => BuildOutput::RootfsDir(path),
        _ => return Err(BuildError::OutputSpec(spec.into())),
    })
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

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub plan: PlanReport,
    pub outputs: Vec<(BuildOutput, Option<String>)>,
    pub diff_id: String,
    pub manifest_digest: Option<String>,
}

/// Everything resolved from the recipe + command line before any network I/O.
struct Prepared {
    src: DebSource,
    cache_dir: PathBuf,
    keyring: Keyring,
    fetcher: Fetcher,
    _cache_lock: crate::fetch::CacheLock,
}

fn deb_variant(v: Variant) -> DebVariant {
    match v {
        Variant::Essential => DebVariant::Essential,
        Variant::Minbase => DebVariant::Minbase,
        Variant::Buildd => DebVariant::Buildd,
        Variant::Important => DebVariant::Important,
    }
}

/// The Debian architecture of this machine (what can run scripts natively).
pub fn host_deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// OCI architecture and variant for a Debian architecture name.
fn oci_platform(deb_arch: &str) -> (String, Option<String>) {
    match deb_arch {
        "amd64" => ("amd64".into(), None),
        "arm64" => ("arm64".into(), Some("v8".into())),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v5".into())),
        "i386" => ("386".into(), None),
        "ppc64el" => ("ppc64le".into(), None),
        other => (other.into(), None),
    }
}

pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("rootstrap-cache"))
        .join("rootstrap")
}

fn prepare(
    recipe: &Recipe,
    opts: &SourceOptions,
    reporter: &SharedReporter,
) -> Result<Prepared, BuildError> {
    if !recipe.source.distro.is_deb() {
        return Err(BuildError::Unsupported {
            distro: recipe.source.distro.name(),
        });
    }
    let suite = recipe.release_name().to_owned();
    let env_mirror = std::env::var(mirror::MIRROR_ENV).ok();
    let query = MirrorQuery {
        cli: opts.mirror.as_deref(),
        env: env_mirror.as_deref(),
        recipe: recipe.source.mirror.as_deref(),
        distro: recipe.source.distro.name(),
        suite: &suite,
        use_host_sources: true,
    };

    let (cache_dir, cache_lock, fetcher) = open_fetcher(opts, reporter)?;

    let snapshot = recipe.source.snapshot.clone();
    let (mirror, origin) = match &snapshot {
        Some(timestamp) => mirror::choose_snapshot(&query, timestamp)?,
        None => {
            let host_sources = mirror::host_apt_sources(Path::new("/etc/apt"));
            let probe = |uri: &str| {
                // The InRelease is small; it is fetched again, and verified,
                // below. Offline, the copy kept from the last online run
                // answers.
                fetcher
                    .fetch_index(&format!("{uri}/dists/{suite}/InRelease"), 16 << 20)
                    .is_ok()
            };
            mirror::choose(&query, &host_sources, &probe)?
        }
    };
    reporter.info(&format!("mirror {mirror} (from {origin})"));

    let key_files = match &opts.keys_dir {
        // `--keys DIR`: every file in DIR replaces the recipe's keys.
        Some(dir) => keys::load_keys(dir, &recipe.path, &[".".to_owned()])?,
        None => keys::load_keys(recipe.dir(), &recipe.path, &recipe.source.keys)?,
    };
    let mut key_bytes = Vec::new();
    for k in &key_files {
        key_bytes.extend_from_slice(&k.bytes);
    }
    let keyring = Keyring::from_bytes(&key_bytes).map_err(|source| BuildError::Keyring {
        recipe: recipe.path.clone(),
        source,
    })?;

    let src = DebSource {
        mirror,
        suite,
        components: recipe.source.components.clone(),
        arch: opts
            .arch
            .clone()
            .unwrap_or_else(|| recipe.source.arch.clone()),
        variant: deb_variant(recipe.source.variant),
        include: recipe
            .package_requests()
            .into_iter()
            .map(|r| (r.name, r.version))
            .collect(),
        snapshot,
    };
    Ok(Prepared {
        src,
        cache_dir,
        keyring,
        fetcher,
        _cache_lock: cache_lock,
    })
}

fn plan_report(
    recipe: &Recipe,
    src: &DebSource,
    plan: &crate::distro::deb::resolve::Plan<'_>,
) -> PlanReport {
    let packages: Vec<PlannedPackage> = plan
        .packages
        .iter()
        .map(|p| PlannedPackage {
            name: p.name.clone(),
            version: p.version.to_string(),
            arch: p.arch.clone(),
            size: p.size,
            installed_size_kib: p.installed_size,
            why: plan.why.get(&p.name).cloned().unwrap_or_default(),
        })
        .collect();
    PlanReport {
        distro: recipe.source.distro.name().into(),
        suite: src.suite.clone(),
        arch: src.arch.clone(),
        variant: src.variant.to_string(),
        mirror: src.mirror.clone(),
        download_bytes: packages.iter().map(|p| p.size).sum(),
        installed_kib: packages.iter().filter_map(|p| p.installed_size_kib).sum(),
        packages,
    }
}

/// `rootstrap resolve`: the plan, without installing anything.
pub fn resolve(
    recipe: &Recipe,
    opts: &SourceOptions,
    reporter: SharedReporter,
) -> Result<PlanReport, BuildError> {
    if recipe.source.distro == Distro::Alpine {
        return alpine::resolve(recipe, opts, reporter);
    }
    with_deb_plan(recipe, opts, &reporter, |src, _, plan| {
        Ok(plan_report(recipe, src, plan))
    })
}

/// Fetches and verifies the Debian index the recipe names, resolves its
/// plan, and hands both to `then` (the plan borrows the index).
fn with_deb_plan<T>(
    recipe: &Recipe,
    opts: &SourceOptions,
    reporter: &SharedReporter,
    then: impl FnOnce(
        &DebSource,
        &bootstrap::LoadedIndex,
        &crate::distro::deb::resolve::Plan<'_>,
    ) -> Result<T, BuildError>,
) -> Result<T, BuildError> {
    let prepared = prepare(recipe, opts, reporter)?;
    reporter.stage("fetch and verify the index");
    let index = bootstrap::load_index(
        &prepared.fetcher,
        &prepared.keyring,
        &prepared.src,
        SystemTime::now(),
        reporter.as_ref(),
        Some(&prepared.cache_dir),
        Some(&ReleaseMemory::new(
            &prepared.cache_dir,
            opts.accept_release_change,
        )),
    )?;
    reporter.stage("resolve");
    let plan = bootstrap::plan(&index, &prepared.src)?;
    then(&prepared.src, &index, &plan)
}

/// `rootstrap resolve --lock FILE`: the plan, and how it drifted from the
/// lock. Nothing is downloaded, so only what the signed index says is
/// compared: name, version, architecture, size, and the SHA-256 (Debian) or
/// the `C:` identity (Alpine).
pub fn resolve_with_lock(
    recipe: &Recipe,
    opts: &SourceOptions,
    lock_file: &Path,
    reporter: SharedReporter,
) -> Result<(PlanReport, Vec<crate::lock::Drift>), BuildError> {
    let lock = read_lock(lock_file)?;
    let (report, resolved) = if recipe.source.distro == Distro::Alpine {
        alpine::resolve_for_drift(recipe, opts, &lock, reporter)?
    } else {
        with_deb_plan(recipe, opts, &reporter, |src, _, plan| {
            Ok((
                plan_report(recipe, src, plan),
                locked::deb_locked_packages(plan)?,
            ))
        })?
    };
    Ok((report, crate::lock::drift(&lock.packages, &resolved)))
}

/// `rootstrap lock`: resolves the recipe and writes its lockfile to `out`
/// (atomically). Alpine packages are downloaded and verified to learn their
/// SHA-256; Debian ones are not (the signed index has it).
pub fn lock(
    recipe: &Recipe,
    opts: &SourceOptions,
    out: &Path,
    reporter: SharedReporter,
) -> Result<LockReport, BuildError> {
    let recipe_sha256 = locked::recipe_digest(recipe)?;
    let lock = if recipe.source.distro == Distro::Alpine {
        alpine::lock(recipe, opts, recipe_sha256, reporter)?
    } else {
        with_deb_plan(recipe, opts, &reporter, |src, index, plan| {
            locked::deb_lockfile(recipe, recipe_sha256, src, index, plan, recipe.source.slim)
        })?
    };
    locked::write_lock(out, &lock)?;
    Ok(LockReport {
        file: out.to_owned(),
        lock,
    })
}

/// Opens (and locks, for the whole build) the download cache and the
/// fetcher on it.
pub(crate) fn open_fetcher(
    opts: &SourceOptions,
    reporter: &SharedReporter,
) -> Result<(PathBuf, crate::fetch::CacheLock, Fetcher), BuildError> {
    let cache_dir = opts.cache_dir.clone().unwrap_or_else(default_cache_dir);
    std::fs::create_dir_all(&cache_dir).map_err(|source| BuildError::CacheDir {
        path: cache_dir.clone(),
        source,
    })?;
    let cache = Cache::open(&cache_dir)?;
    let cache_lock = cache.lock(reporter.as_ref())?;
    // A file:// mirror is no network: `--offline --mirror file://DIR` (a
    // `rootstrap mirror` copy) reads it rather than refusing every file.
    let local_mirror = opts
        .mirror
        .as_deref()
        .is_some_and(|m| m.starts_with("file://"));
    let fetcher = Fetcher::new(
        ClientConfig::default().with_env_proxies(),
        cache,
        reporter.clone(),
        opts.offline && !local_mirror,
    )?;
    Ok((cache_dir, cache_lock, fetcher))
}

/// `--work-dir` (default $TMPDIR), made absolute: the sandbox needs an
/// absolute root, and a relative one would also depend on the caller's cwd.
pub(crate) fn work_dir(opts: &BuildOptions) -> Result<PathBuf, BuildError> {
    let dir = opts.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::path::absolute(&dir).map_err(|source| BuildError::WorkDir { path: dir, source })
}

/// Sets the umask to 022 while the rootfs and its layer are made, and puts
/// the user's back when dropped (before the outputs are written, so those
/// get the user's permissions). Files created in the rootfs — by rootstrap
/// itself and by package scripts in the sandbox, which inherit it — must not
/// depend on the caller's umask; 022 is what debootstrap and mmdebstrap use.
pub(crate) struct RootfsUmask {
    previous: rustix::fs::Mode,
}

impl RootfsUmask {
    pub(crate) fn set() -> RootfsUmask {
        RootfsUmask {
            previous: rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022)),
        }
    }
}

impl Drop for RootfsUmask {
    fn drop(&mut self) {
        rustix::process::umask(self.previous);
    }
}

/// The reproducible timestamp: SOURCE_DATE_EPOCH when set, else the signed
/// Release's Date — never the wall clock.
fn epoch_for(release_date: Option<i64>) -> Result<i64, BuildError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|e| *e >= 0)
            .ok_or(BuildError::Epoch(v)),
        Err(_) => Ok(release_date.unwrap_or(0)),
    }
}

/// The `deb` line written to the image's /etc/apt/sources.list, or none
/// for a `file://` mirror (that directory does not exist in the image). A
/// snapshot's Release has long expired, so apt in the image is told not to
/// check Valid-Until for it — as this build did not.
fn apt_source_line(src: &DebSource) -> Option<String> {
    let remote = src.mirror.starts_with("http://") || src.mirror.starts_with("https://");
    let options = if src.snapshot.is_some() {
        "[check-valid-until=no] "
    } else {
        ""
    };
    remote.then(|| {
        format!(
            "deb {options}{} {} {}",
            src.mirror,
            src.suite,
            src.components.join(" ")
        )
    })
}

/// `rootstrap build`.
pub fn build(
    recipe: &Recipe,
    opts: &BuildOptions,
    reporter: SharedReporter,
) -> Result<BuildReport, BuildError> {
    for (i, out) in opts.outputs.iter().enumerate() {
        if opts.outputs[..i].iter().any(|o| o.path() == out.path()) {
            return Err(BuildError::DuplicateOutput(out.path().to_owned()));
        }
    }
    if layer_compression(recipe, opts) == LayerCompression::Zstd
        && opts
            .outputs
            .iter()
            .any(|o| matches!(o, BuildOutput::Image(Output::DockerArchive(_))))
    {
        reporter.warn(crate::image::archive::ZSTD_DOCKER_NOTE);
    }
    if opts.slim && !recipe.source.distro.is_deb() {
        return Err(BuildError::SlimUnsupported {
            distro: recipe.source.distro.name(),
        });
    }
    let tags = reference_for(recipe, opts)?;
    let lock_ctx = locked::LockContext::open(opts.lock.as_ref(), recipe)?;
    if recipe.source.distro == Distro::Alpine {
        return alpine::build(recipe, opts, tags, lock_ctx, reporter);
    }
    let prepared = prepare(recipe, &opts.source, &reporter)?;
    let src = &prepared.src;
    let umask = RootfsUmask::set();
    let slim = recipe.source.slim || opts.slim;
    if let Some(ctx) = &lock_ctx {
        ctx.check_source(
            &locked::deb_lock_source(recipe, src, slim),
            reporter.as_ref(),
        )?;
    }
    let lock = lock_ctx.as_ref().and_then(|c| c.locked());

    reporter.stage("fetch and verify the index");
    let memory = ReleaseMemory::new(&prepared.cache_dir, opts.source.accept_release_change);
    let load = |plan_cache| {
        bootstrap::load_index(
            &prepared.fetcher,
            &prepared.keyring,
            src,
            SystemTime::now(),
            reporter.as_ref(),
            plan_cache,
            Some(&memory),
        )
    };
    let mut index = load(Some(&prepared.cache_dir))?;
    let plan = match lock {
        Some(lock) => {
            reporter.stage("check the lock against the index");
            // The plan cache holds only a resolved sub-universe: when it
            // lacks a locked package, look in the whole index.
            if bootstrap::plan_from_lock(&index, &lock.packages).is_err() {
                index = load(None)?;
            }
            bootstrap::plan_from_lock(&index, &lock.packages).map_err(|e| match e {
                BootstrapError::Locked { problems } => BuildError::LockMismatch {
                    file: opts
                        .lock
                        .as_ref()
                        .map(|l| l.file.clone())
                        .unwrap_or_default(),
                    problems,
                },
                other => other.into(),
            })?
        }
        None => {
            reporter.stage("resolve");
            bootstrap::plan(&index, src)?
        }
    };
    if let (Some(ctx), None) = (&lock_ctx, lock) {
        ctx.report_drift(&locked::deb_locked_packages(&plan)?, reporter.as_ref());
    }
    // The plan's few packages are all the build needs from here on: the
    // universe (the whole index text, ~60 MB) is freed before unpacking,
    // on a thread of its own (~25 ms of small frees).
    let planned: Vec<BinaryPackage> = plan.packages.iter().map(|p| (*p).clone()).collect();
    let why = plan.why;
    let universe = std::mem::replace(&mut index.universe, Universe::new(Vec::new(), &src.arch));
    std::thread::spawn(move || drop(universe));
    let plan = Plan {
        packages: planned.iter().collect(),
        why,
    };
    let report = plan_report(recipe, src, &plan);
    reporter.info(&format!(
        "{} packages, {:.1} MB to download, {:.1} MB installed",
        report.packages.len(),
        report.download_bytes as f64 / 1e6,
        report.installed_kib as f64 * 1024.0 / 1e6
    ));
    let epoch = epoch_for(match lock {
        Some(l) => Some(l.source_date_epoch),
        None => index.release.date,
    })?;

    let fetch_items = match lock {
        Some(l) => bootstrap::locked_fetch_items(&src.mirror, &l.packages),
        None => bootstrap::fetch_items(&src.mirror, &plan)?,
    };

    let run_scripts = src.arch == host_deb_arch();
    let mut image_src = src.clone();
    image_src.mirror = locked::image_mirror(lock, &src.mirror).to_string();
    let apt_source = apt_source_line(&image_src);
    let history = History {
        created: Some(oci::format_timestamp(epoch)),
        created_by: Some(format!(
            "rootstrap {}: {} {} {} {} ({} packages)",
            env!("CARGO_PKG_VERSION"),
            report.distro,
            report.suite,
            report.arch,
            report.variant,
            report.packages.len()
        )),
        ..History::default()
    };
    let (arch, variant) = oci_platform(&src.arch);
    let mut config = ImageConfig::new(&arch, "linux");
    config.variant = variant;
    config.created = Some(oci::format_timestamp(epoch));
    apply_image_spec(&mut config, recipe);
    let work = work_dir(opts)?;
    let compression = base_layer_compression(&opts.outputs, layer_compression(recipe, opts));
    let mut builder = ImageBuilder::new_in(&work, config, compression)?;

    // Everything the base layer is made of: same inputs, same layer.
    let mut key_parts = vec![
        env!("CARGO_PKG_VERSION").to_owned(),
        format!("{:?}", recipe.source.distro),
        src.suite.clone(),
        src.arch.clone(),
        src.variant.to_string(),
        epoch.to_string(),
        run_scripts.to_string(),
        apt_source.clone().unwrap_or_default(),
        // Which packages count as asked for (extended_states).
        format!(
            "apt request v1: {:?}",
            src.include.iter().map(|(name, _)| name).collect::<Vec<_>>()
        ),
    ];
    key_parts.extend(
        plan.packages
            .iter()
            .map(|p| format!("{} {} {}", p.name, p.arch, hex::encode(p.sha256))),
    );
    if compression != LayerCompression::Gzip {
        key_parts.push(format!("layer compression {compression:?}"));
    }
    if slim {
        key_parts.push("slim".to_owned());
    }
    let cache_key = layer_cache::key(&key_parts);
    let layers = LayerCache::new(&prepared.cache_dir);
    // The tree itself is needed for a rootfs output and for Dockerfile steps.
    let recipe_has_dockerfile = recipe
        .build
        .as_ref()
        .is_some_and(|b| b.dockerfile.is_some());
    let wants_tree = opts
        .outputs
        .iter()
        .any(|o| matches!(o, BuildOutput::RootfsDir(_)))
        || recipe_has_dockerfile;
    let mut rootfs = None;
    let sandbox = match &opts.sandbox_helper {
        Some(p) => Sandbox::with_helper(p),
        None => Sandbox::new(),
    };
    let cached = if wants_tree {
        None
    } else {
        layers.get(&cache_key)
    };
    let reused = match cached {
        Some((blob, entry)) => {
            let parsed = (
                crate::image::Sha256Digest::parse(&entry.digest),
                crate::image::Sha256Digest::parse(&entry.diff_id),
            );
            match parsed {
                (Ok(digest), Ok(diff_id)) => {
                    match builder.add_cached_layer(
                        &blob,
                        digest,
                        diff_id,
                        entry.uncompressed_size,
                        history.clone(),
                    ) {
                        Ok(_) => {
                            reporter
                                .stage("reuse the cached base layer (same packages and settings)");
                            true
                        }
                        Err(e) => {
                            reporter.warn(&format!("cached layer unusable ({e}); rebuilding it"));
                            layers.evict(&cache_key);
                            false
                        }
                    }
                }
                _ => {
                    layers.evict(&cache_key);
                    false
                }
            }
        }
        None => false,
    };
    if reused {
        // The layer does not need them, but the build promises every
        // planned package is in the cache (for --offline and `mirror`).
        reporter.stage("fetch and verify packages");
        prepared.fetcher.fetch_all(&fetch_items)?;
    } else {
        reporter.stage("fetch, verify and unpack packages");
        let planned = tree_dir::planned_bytes(plan.packages.iter().map(|p| {
            // Debian's Installed-Size is in KiB.
            (p.installed_size.map(|kib| kib.saturating_mul(1024)), p.size)
        }));
        let parent = tree_dir::choose(opts, planned, recipe_has_dockerfile)?;
        let dir = tree_dir::make_tree(&parent, reporter.as_ref())?;
        bootstrap::install(
            dir.path(),
            &plan,
            &prepared.fetcher,
            &fetch_items,
            &InstallOptions {
                run_scripts,
                sandbox: &sandbox,
                epoch,
                apt_source,
                apt_request: AptRequest {
                    variant: src.variant,
                    include: src.include.iter().map(|(name, _)| name.clone()).collect(),
                },
                slim,
            },
            reporter.as_ref(),
        )?;

        reporter.stage("pack the layer");
        let layer_opts = LayerOptions {
            source_date_epoch: Some(epoch),
            // /run is emptied but for lock in the tree (bootstrap::normalise).
            exclude: ["proc", "sys", "dev", "tmp"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        };
        let layer = builder.add_layer_from_dir(dir.path(), &layer_opts, history)?;
        let entry = LayerEntry {
            digest: layer.descriptor.digest.clone(),
            diff_id: layer.diff_id.to_string(),
            uncompressed_size: layer.uncompressed_size.unwrap_or(0),
        };
        if let Err(e) = layers.put(&cache_key, layer.path(), &entry) {
            reporter.warn(&format!("could not store the layer in the cache: {e}"));
        }
        rootfs = Some(dir);
    }
    let diff_id = builder.layers()[0].diff_id.to_hex();
    if let Some(dockerfile) = recipe.build.as_ref().and_then(|b| b.dockerfile.as_ref()) {
        reporter.stage("dockerfile steps");
        let tree = rootfs
            .as_ref()
            .expect("a recipe Dockerfile disables layer reuse");
        crate::dockerfile::builder::apply_recipe_dockerfile(
            &mut builder,
            tree.path(),
            recipe,
            dockerfile,
            &work,
            epoch,
            &sandbox,
            (!opts.no_step_cache)
                .then(|| crate::dockerfile::builder::StepCache::new(&prepared.cache_dir)),
            reporter.as_ref(),
        )?;
    }

    drop(umask);
    let deb_sha256 = plan
        .packages
        .iter()
        .map(|p| (format!("{}:{}", p.name, p.arch), p.sha256))
        .collect();
    let (outputs, manifest_digest) = write_outputs(
        &builder,
        &opts.outputs,
        tags.as_ref(),
        rootfs,
        &deb_sha256,
        reporter.as_ref(),
    )?;
    if let Some(ctx) = &lock_ctx {
        ctx.write_if_new(
            || locked::deb_lockfile(recipe, ctx.recipe_sha256, src, &index, &plan, slim),
            reporter.as_ref(),
        )?;
    }
    Ok(BuildReport {
        plan: report,
        outputs,
        diff_id,
        manifest_digest,
    })
}

/// The base layer's compression: none when no output needs a compressed
/// layer (only plain `tar:` and `rootfs:` outputs), so a `tar:` output is a
/// copy of the layer blob; `chosen` otherwise. Compressing the layer only
/// to decode it again cost ~2 s of a 7 s trixie minbase build.
fn base_layer_compression(outputs: &[BuildOutput], chosen: LayerCompression) -> LayerCompression {
    let needs_compressed = outputs.iter().any(|o| match o {
        BuildOutput::Image(Output::RootfsTar(path)) => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            LayerCompression::from_file_name(&name) != LayerCompression::None
        }
        BuildOutput::Image(_) => true,
        BuildOutput::RootfsDir(_) => false,
    });
    if needs_compressed {
        chosen
    } else {
        LayerCompression::None
    }
}

type WrittenOutputs = (Vec<(BuildOutput, Option<String>)>, Option<String>);

/// Writes every requested output; returns each with its manifest digest
/// (none for `rootfs:`), and the first digest. `rootfs` is the finished
/// tree when the build made one: `rootfs:` outputs copy it (which is why
/// they disable layer reuse) and the SBOMs take its package inventory.
/// Without a `rootfs:` output the tree is removed on another thread while
/// the outputs are written.
fn write_outputs(
    builder: &ImageBuilder,
    outputs: &[BuildOutput],
    reference: Option<&ImageReference>,
    rootfs: Option<TempPath>,
    deb_sha256: &std::collections::BTreeMap<String, [u8; 32]>,
    reporter: &dyn crate::report::Reporter,
) -> Result<WrittenOutputs, BuildError> {
    // Only image outputs get SBOMs.
    let has_image = outputs.iter().any(|o| matches!(o, BuildOutput::Image(_)));
    let inventory = match &rootfs {
        Some(tree) if has_image => Some(crate::image::packages::collect_inventory_from_tree(
            tree.path(),
        )?),
        _ => None,
    };
    let copies_tree = outputs
        .iter()
        .any(|o| matches!(o, BuildOutput::RootfsDir(_)));
    let (tree, removal) = match rootfs {
        Some(tree) if !copies_tree => (None, Some(std::thread::spawn(move || drop(tree)))),
        kept => (kept, None),
    };
    let written = write_outputs_from(
        builder,
        outputs,
        reference,
        tree.as_ref().map(TempPath::path),
        inventory.as_ref(),
        deb_sha256,
        reporter,
    );
    drop(tree);
    if let Some(removal) = removal {
        // Removal cannot fail in a way worth reporting (TempPath ignores
        // errors); joining only keeps the process alive until it is done.
        let _ = removal.join();
    }
    written
}

fn write_outputs_from(
    builder: &ImageBuilder,
    outputs: &[BuildOutput],
    reference: Option<&ImageReference>,
    tree: Option<&Path>,
    inventory: Option<&crate::image::packages::PackageInventory>,
    deb_sha256: &std::collections::BTreeMap<String, [u8; 32]>,
    reporter: &dyn crate::report::Reporter,
) -> Result<WrittenOutputs, BuildError> {
    reporter.stage("write outputs");
    let mut written = Vec::new();
    let mut manifest_digest = None;
    for out in outputs {
        let result = match out {
            BuildOutput::RootfsDir(dir) => {
                let tree = tree.expect("a rootfs output keeps the tree");
                copy_rootfs(tree, dir)?;
                None
            }
            BuildOutput::Image(image_out) => {
                let w = builder.write(image_out, reference)?;
                let digest = format!("sha256:{}", w.manifest_digest.to_hex());
                manifest_digest.get_or_insert(digest.clone());
                Some(digest)
            }
        };
        reporter.info(&format!("wrote {}", out.path().display()));
        written.push((out.clone(), result));
    }
    // SBOMs next to / inside each image output, with the checksums of the
    // .deb files the plan verified (apk's identity comes from its own db).
    let name = reference.map(ImageReference::familiar);
    crate::sbom::write_build_sboms(builder, &written, name.as_deref(), deb_sha256, inventory)?;
    Ok((written, manifest_digest))
}

fn reference_for(
    recipe: &Recipe,
    opts: &BuildOptions,
) -> Result<Option<ImageReference>, BuildError> {
    let name = opts
        .tags
        .first()
        .cloned()
        .or_else(|| recipe.image.name.clone());
    Ok(match name {
        Some(n) => Some(ImageReference::parse(&n)?),
        None => None,
    })
}

fn apply_image_spec(config: &mut ImageConfig, recipe: &Recipe) {
    let spec = &recipe.image;
    let c = &mut config.config;
    c.env = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    c.cmd = spec.cmd.clone();
    c.entrypoint = spec.entrypoint.clone();
    c.working_dir = spec.workdir.clone();
    c.user = spec.user.clone();
    c.labels = spec.labels.clone();
    c.stop_signal = spec.stop_signal.clone();
    for p in &spec.exposed_ports {
        let key = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        c.exposed_ports.insert(key, Empty {});
    }
    for v in &spec.volumes {
        c.volumes.insert(v.clone(), Empty {});
    }
    if recipe.source.distro == Distro::Debian || recipe.source.distro == Distro::Ubuntu {
        c.labels
            .entry("org.opencontainers.image.base.name".into())
            .or_insert_with(|| "scratch".into());
    }
}

fn unique_dir(parent: &Path, prefix: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    parent.join(format!(".{prefix}-{}-{nanos:08x}", std::process::id()))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// `rootfs:DIR`: a copy of the finished tree, made beside the target and
/// renamed into place so a failure leaves nothing at DIR.
fn copy_rootfs(from: &Path, to: &Path) -> Result<(), BuildError> {
    let err = |source| BuildError::RootfsOutput {
        path: to.to_owned(),
        source,
    };
    if to.exists() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "refusing to replace an existing directory",
        )));
    }
    let parent = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = TempPath::new(unique_dir(parent, "rootstrap-out"));
    // cp -a keeps hard links, devices, xattrs and ownership, and never
    // follows symlinks inside the tree; it is the host's own tool, not
    // something from the rootfs.
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(from)
        .arg(tmp.path())
        .status()
        .map_err(err)?;
    if !status.success() {
        return Err(err(std::io::Error::other(format!(
            "cp -a failed: {status}"
        ))));
    }
    std::fs::rename(tmp.path(), to).map_err(err)?;
    tmp.persist();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs() {
        let image = |o| BuildOutput::Image(o);
        assert_eq!(
            parse_output("oci:out").unwrap(),
            image(Output::OciDir("out".into()))
        );
        assert_eq!(
            parse_output("docker-archive:/tmp/x.tar").unwrap(),
            image(Output::DockerArchive("/tmp/x.tar".into()))
        );
        assert_eq!(
            parse_output("tar:r.tar.gz").unwrap(),
            image(Output::RootfsTar("r.tar.gz".into()))
        );
        assert_eq!(
            parse_output("rootfs:dir").unwrap(),
            BuildOutput::RootfsDir("dir".into())
        );
        for bad in ["oci", "oci:", "zip:x", ":x"] {
            assert!(parse_output(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn apt_source_names_only_reachable_mirrors() {
        let mut src = DebSource {
            mirror: "http://m.example/debian".into(),
            suite: "trixie".into(),
            components: vec!["main".into(), "contrib".into()],
            arch: "amd64".into(),
            variant: DebVariant::Minbase,
            include: Vec::new(),
            snapshot: None,
        };
        assert_eq!(
            apt_source_line(&src).as_deref(),
            Some("deb http://m.example/debian trixie main contrib")
        );
        src.snapshot = Some("20250101T000000Z".into());
        src.mirror = "http://s.example/archive/debian/20250101T000000Z".into();
        assert_eq!(
            apt_source_line(&src).as_deref(),
            Some("deb [check-valid-until=no] http://s.example/archive/debian/20250101T000000Z trixie main contrib")
        );
        src.mirror = "file:///srv/mirror".into();
        assert_eq!(apt_source_line(&src), None);
    }

    #[test]
    fn plain_tar_outputs_skip_layer_compression() {
        let outs = |specs: &[&str]| -> Vec<BuildOutput> {
            specs.iter().map(|s| parse_output(s).unwrap()).collect()
        };
        assert_eq!(
            base_layer_compression(&outs(&["tar:a.tar", "rootfs:dir"]), LayerCompression::Zstd),
            LayerCompression::None
        );
        for mixed in [
            &["tar:a.tar", "oci:dir"][..],
            &["docker-archive:a.tar"],
            &["tar:a.tar.gz"],
            &["tar:a.tar", "tar:b.tar.zst"],
        ] {
            for chosen in [LayerCompression::Gzip, LayerCompression::Zstd] {
                assert_eq!(
                    base_layer_compression(&outs(mixed), chosen),
                    chosen,
                    "{mixed:?}"
                );
            }
        }
    }

    #[test]
    fn platforms() {
        assert_eq!(oci_platform("amd64"), ("amd64".into(), None));
        assert_eq!(oci_platform("armhf"), ("arm".into(), Some("v7".into())));
    }
}
