//! The build pipeline: recipe → verified index → plan → packages → rootfs →
//! layer → image → outputs. The stages a distribution owns are behind
//! `crate::distro::backend`; `pipeline` runs them, and this module holds
//! what every build shares (options, outputs, the cache, the umask, the
//! reproducible timestamp) and keeps temporary state tied to cleanup.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod at_once;
pub mod from_dockerfile;
mod locked;
mod pipeline;
mod provisional;
mod tree_dir;

pub use crate::distro::apk::backend::UNTRUSTED_LABEL;
pub use crate::distro::backend::{PlanReport, PlannedPackage, SourceOptions};
pub use crate::distro::deb::backend::host_deb_arch;
pub use locked::{read_lock, write_mirror, LockReport, LockRequest, MirrorReport};
pub use pipeline::SCRIPTS_LABEL;

use crate::cleanup::TempPath;
use crate::distro::backend::{self, BackendError, Context};
use crate::distro::platform::Platform;
use crate::fetch::{Cache, ClientConfig, Fetcher};
use crate::image::oci::{Empty, ImageConfig};
use crate::image::{ImageBuilder, ImageError, ImageReference, LayerCompression, Output};
use crate::lock::LockSet;
use crate::recipe::Recipe;
use crate::report::SharedReporter;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid output {0:?}: expected oci:DIR, docker-archive:FILE, tar:FILE or rootfs:DIR")]
    OutputSpec(String),
    #[error("output {spec}: {} is not an existing directory (rootstrap does not create it)", dir.display())]
    OutputDir { spec: String, dir: PathBuf },
    #[error("lockfile {}: {} is not an existing directory (rootstrap does not create it)", file.display(), dir.display())]
    LockDir { file: PathBuf, dir: PathBuf },
    #[error("output {0} is given twice")]
    DuplicateOutput(PathBuf),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Emulation(#[from] crate::rootfs::emulation::EmulationError),
    #[error("{what} works on one platform at a time; this build is for {platforms}: pass --platform with one of them")]
    OnePlatform {
        what: &'static str,
        platforms: String,
    },
    #[error("output {output} holds one platform's image; this build is for {platforms}: write them to an oci:DIR output (an image index), or build one platform per output with --platform")]
    OnePlatformOutput { output: PathBuf, platforms: String },
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Cache(#[from] crate::fetch::CacheError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("writing {path}")]
    WriteOutput {
        path: PathBuf,
        #[source]
        source: ImageError,
    },
    /// Errors from inside the tree name rootfs paths; this names the disk.
    #[error("no room left for the rootfs in {dir}")]
    NoRoomForTree {
        dir: PathBuf,
        #[source]
        source: BackendError,
    },
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
    #[error("--locked: the lockfile {file} has no package set for {platform} (it has: {platforms}); write it with `rootstrap lock`")]
    LockNoPlatform {
        file: PathBuf,
        platform: String,
        platforms: String,
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
    #[error("cannot write the mirror {path}: {source}")]
    MirrorOutput {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not in the cache and no mirror to fetch from (pass --mirror): {}", missing.join(", "))]
    MirrorMissing { file: PathBuf, missing: Vec<String> },
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
    /// `--platform A,B`: the platforms to build into one image index
    /// (overrides the recipe's `platforms` and `arch`).
    pub platforms: Vec<Platform>,
    /// `--skip-foreign-scripts`: a foreign architecture's package scripts
    /// are not run (the image is labelled); otherwise they run through
    /// binfmt_misc, and a missing interpreter stops the build.
    pub skip_foreign_scripts: bool,
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
    if let Some(dir) = missing_dir_of(&path) {
        return Err(BuildError::OutputDir {
            spec: spec.into(),
            dir,
        });
    }
    Ok(match kind {
        "oci" => BuildOutput::Image(Output::OciDir(path)),
        "oci-archive" => BuildOutput::Image(Output::OciArchive(path)),
        "docker-archive" => BuildOutput::Image(Output::DockerArchive(path)),
        "tar" => BuildOutput::Image(Output::RootfsTar(path)),
        "rootfs" => BuildOutput::RootfsDir(path),
        _ => return Err(BuildError::OutputSpec(spec.into())),
    })
}

/// The directory a file is to be written in, when it is not an existing
/// directory. Outputs and lockfiles are checked before a build, not when
/// they are written after it; rootstrap does not create the directory, so
/// a typo does not scatter new ones.
pub(crate) fn missing_dir_of(path: &Path) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    (!dir.is_dir()).then(|| dir.to_owned())
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub plan: PlanReport,
    pub outputs: Vec<(BuildOutput, Option<String>)>,
    pub diff_id: String,
    pub manifest_digest: Option<String>,
}

pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("rootstrap-cache"))
        .join("rootstrap")
}

/// Opens (and locks, for the whole build) the download cache and the
/// fetcher on it.
fn open_context(opts: &SourceOptions, reporter: &SharedReporter) -> Result<Context, BuildError> {
    let (cache_dir, cache_lock, fetcher) = open_fetcher(opts, reporter)?;
    Ok(Context {
        fetcher,
        cache_dir,
        reporter: reporter.clone(),
        _cache_lock: std::sync::Arc::new(cache_lock),
    })
}

/// Opens (and locks) the download cache and the fetcher on it.
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

/// `rootstrap resolve`: the plan, without installing anything.
pub fn resolve(
    recipe: &Recipe,
    opts: &SourceOptions,
    reporter: SharedReporter,
) -> Result<PlanReport, BuildError> {
    let ctx = open_context(opts, &reporter)?;
    let opts = &single_platform_source(recipe, opts)?;
    backend::with_backend(recipe, opts, false, &ctx, pipeline::Resolve { lock: None })?
        .map(|(report, _)| report)
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
    let ctx = open_context(opts, &reporter)?;
    let opts = &single_platform_source(recipe, opts)?;
    let set = locked::read_lock_set(lock_file)?;
    let platform = opts.platform.as_ref().map(Platform::to_string);
    let lock = set
        .for_platform(platform.as_deref())
        .cloned()
        .ok_or_else(|| crate::lock::LockError::SeveralPlatforms {
            file: lock_file.to_owned(),
            platforms: set.platform_names().join(", "),
        })?;
    let job = pipeline::Resolve { lock: Some(&lock) };
    let (report, resolved) = backend::with_backend(recipe, opts, false, &ctx, job)??;
    Ok((report, crate::lock::drift(&lock.packages, &resolved)))
}

/// `rootstrap lock`: resolves the recipe and writes its lockfile to `out`
/// (atomically). Alpine packages are downloaded and verified to learn their
/// SHA-256; Debian ones are not (the signed index has it).
///
/// `platforms` (`--platform A,B`), or a recipe listing several, lock each
/// platform's package set into one (version 2) lockfile.
pub fn lock(
    recipe: &Recipe,
    opts: &SourceOptions,
    platforms: &[Platform],
    out: &Path,
    reporter: SharedReporter,
) -> Result<LockReport, BuildError> {
    if let Some(dir) = missing_dir_of(out) {
        return Err(BuildError::LockDir {
            file: out.to_owned(),
            dir,
        });
    }
    let recipe_sha256 = locked::recipe_digest(recipe)?;
    let ctx = open_context(opts, &reporter)?;
    let several = if !platforms.is_empty() {
        platforms.to_vec()
    } else if opts.arch.is_none() && opts.platform.is_none() && recipe.source.platforms.len() > 1 {
        recipe_platforms(recipe)?
    } else {
        Vec::new()
    };
    let lock = if several.len() > 1 {
        let results =
            at_once::for_platforms(at_once::Work::Lock, &several, &reporter, |p, reporter| {
                let mut source = opts.clone();
                source.platform = Some(p.clone());
                let job = pipeline::Lock { recipe_sha256 };
                let ctx = ctx.with_reporter(reporter);
                backend::with_backend(recipe, &source, recipe.source.slim, &ctx, job)?
            });
        let mut all = Vec::new();
        for (p, one) in several.iter().zip(results) {
            all.push((p.to_string(), one?));
        }
        LockSet::Platforms(all)
    } else {
        let opts = &single_platform_source(recipe, opts)?;
        let job = pipeline::Lock { recipe_sha256 };
        LockSet::One(Box::new(backend::with_backend(
            recipe,
            opts,
            recipe.source.slim,
            &ctx,
            job,
        )??))
    };
    locked::write_lock(out, &lock)?;
    Ok(LockReport {
        file: out.to_owned(),
        lock,
    })
}

/// `resolve` and `lock` work on one platform: a recipe listing several
/// needs `--platform` or `--arch` to say which.
fn single_platform_source(
    recipe: &Recipe,
    opts: &SourceOptions,
) -> Result<SourceOptions, BuildError> {
    let mut opts = opts.clone();
    if opts.arch.is_none() && opts.platform.is_none() {
        match recipe.source.platforms.as_slice() {
            [] => {}
            [one] => opts.platform = Some(Platform::parse(one).map_err(BackendError::from)?),
            many => {
                return Err(BuildError::OnePlatform {
                    what: "resolving and locking",
                    platforms: many.join(","),
                })
            }
        }
    }
    Ok(opts)
}

/// The platforms a build makes: `--platform`, else the recipe's
/// `platforms`, else its `arch` (one image, no index).
fn build_platforms(
    recipe: &Recipe,
    opts: &BuildOptions,
) -> Result<Vec<Option<Platform>>, BuildError> {
    if !opts.platforms.is_empty() {
        return Ok(opts.platforms.iter().cloned().map(Some).collect());
    }
    if opts.source.arch.is_some() || opts.source.platform.is_some() {
        return Ok(vec![opts.source.platform.clone()]);
    }
    if recipe.source.platforms.is_empty() {
        return Ok(vec![None]);
    }
    Ok(recipe_platforms(recipe)?.into_iter().map(Some).collect())
}

/// The recipe's `platforms`, parsed (the recipe was validated).
fn recipe_platforms(recipe: &Recipe) -> Result<Vec<Platform>, BuildError> {
    let platforms = recipe
        .source
        .platforms
        .iter()
        .map(|p| Platform::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(BackendError::from)?;
    Ok(platforms)
}

/// `rootstrap build`: one image, or with several platforms one image
/// index over one image per platform.
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
    let platforms = build_platforms(recipe, opts)?;
    let listed = platforms
        .iter()
        .flatten()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if platforms.len() > 1 {
        // Checked before anything is built.
        if let Some(out) = opts
            .outputs
            .iter()
            .find(|o| !matches!(o, BuildOutput::Image(Output::OciDir(_))))
        {
            return Err(BuildError::OnePlatformOutput {
                output: out.path().to_owned(),
                platforms: listed,
            });
        }
    }
    let tags = reference_for(recipe, opts)?;
    let lock_ctx = locked::LockContext::open(opts.lock.as_ref(), recipe)?;
    let slim = recipe.source.slim || opts.slim;
    let mut ctx = open_context(&opts.source, &reporter)?;
    if platforms.len() > 1 {
        // One signed Release for every platform, fetched once.
        ctx.fetcher.pin_indexes();
    }
    let build_one = |platform: &Option<Platform>, ctx: &Context| {
        let mut source = opts.source.clone();
        source.platform = platform.clone().or(source.platform);
        let job = pipeline::Build {
            recipe,
            opts,
            lock_ctx: lock_ctx.as_ref(),
            platform: platform.as_ref().map(Platform::to_string),
        };
        backend::with_backend(recipe, &source, slim, ctx, job)?
    };
    let mut built = Vec::new();
    let mut inventories = Vec::new();
    if let [one] = &platforms[..] {
        built.push(build_one(one, &ctx)?);
    } else {
        // Each tree is kept only for its SBOM's inventory. The umask is set
        // here for all of them (each build's own setting restores this one).
        let _umask = RootfsUmask::set();
        let named: Vec<Platform> = platforms.iter().flatten().cloned().collect();
        let results = at_once::for_platforms(
            at_once::Work::Build,
            &named,
            &reporter,
            |platform, reporter| {
                let mut one = build_one(&Some(platform.clone()), &ctx.with_reporter(reporter))?;
                let tree = one.rootfs.take();
                let inventory = tree
                    .as_ref()
                    .map(|t| crate::image::packages::collect_inventory_from_tree(t.path()))
                    .transpose()?;
                drop(tree);
                Ok::<_, BuildError>((one, inventory))
            },
        );
        for result in results {
            let (one, inventory) = result?;
            built.push(one);
            inventories.push(inventory);
        }
    }
    // A lock written by this build: every platform's package set.
    let new_lock = match built.as_slice() {
        [one] => one.new_lock.clone().map(|l| LockSet::One(Box::new(l))),
        all => all
            .iter()
            .zip(&platforms)
            .map(|(b, p)| Some((p.as_ref()?.to_string(), b.new_lock.clone()?)))
            .collect::<Option<Vec<_>>>()
            .map(LockSet::Platforms),
    };
    if built.len() > 1 {
        let report = write_index_outputs(
            built,
            &inventories,
            &opts.outputs,
            tags.as_ref(),
            reporter.as_ref(),
        )?;
        if let (Some(lc), Some(set)) = (&lock_ctx, new_lock) {
            lc.write_if_new(set, reporter.as_ref())?;
        }
        return Ok(report);
    }
    let one = built.pop().expect("one platform at least");
    let (outputs, manifest_digest) = write_outputs(
        &one.builder,
        &opts.outputs,
        tags.as_ref(),
        one.rootfs,
        &one.checksums,
        reporter.as_ref(),
    )?;
    if let (Some(lc), Some(set)) = (&lock_ctx, new_lock) {
        lc.write_if_new(set, reporter.as_ref())?;
    }
    Ok(BuildReport {
        plan: one.report,
        outputs,
        diff_id: one.diff_id,
        manifest_digest,
    })
}

/// A multi-platform build's outputs: OCI layouts holding the image index,
/// each platform's SBOMs attached to its manifest. `inventories`: each
/// platform's package inventory, read from its tree when it had one.
fn write_index_outputs(
    built: Vec<pipeline::Built>,
    inventories: &[Option<crate::image::packages::PackageInventory>],
    outputs: &[BuildOutput],
    reference: Option<&ImageReference>,
    reporter: &dyn crate::report::Reporter,
) -> Result<BuildReport, BuildError> {
    reporter.stage("write outputs");
    let mut builders = Vec::new();
    let mut facts = Vec::new();
    let mut first = None;
    for (i, b) in built.into_iter().enumerate() {
        drop(b.rootfs);
        first.get_or_insert((b.report, b.diff_id));
        builders.push(b.builder);
        facts.push(crate::sbom::PlatformFacts {
            deb_sha256: b.checksums,
            inventory: inventories.get(i).and_then(Option::as_ref),
        });
    }
    let images: Vec<&ImageBuilder> = builders.iter().collect();
    let name = reference.map(ImageReference::familiar);
    let mut written = Vec::new();
    let mut digest = None;
    // All or nothing at the output paths (see `provisional`).
    let mut provisional = provisional::Provisional::default();
    for out in outputs {
        let BuildOutput::Image(Output::OciDir(dir)) = out else {
            unreachable!("checked before building");
        };
        let w =
            crate::image::multi::write_index_layout(&images, dir, reference).map_err(|source| {
                BuildError::WriteOutput {
                    path: dir.clone(),
                    source,
                }
            })?;
        provisional.add(dir.clone());
        crate::sbom::write_index_sboms(&images, &w, name.as_deref(), &facts)?;
        let d = w.index_digest.to_string();
        digest.get_or_insert(d.clone());
        reporter.info(&format!(
            "wrote {} (image index of {} platforms)",
            dir.display(),
            w.manifests.len()
        ));
        written.push((out.clone(), Some(d)));
    }
    provisional.keep();
    let (plan, diff_id) = first.expect("one platform at least");
    Ok(BuildReport {
        plan,
        outputs: written,
        diff_id,
        manifest_digest: digest,
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
    // All or nothing at the output paths (see `provisional`).
    let mut provisional = provisional::Provisional::default();
    for out in outputs {
        let result = match out {
            BuildOutput::RootfsDir(dir) => {
                let tree = tree.expect("a rootfs output keeps the tree");
                copy_rootfs(tree, dir)?;
                None
            }
            BuildOutput::Image(image_out) => {
                let w = builder.write(image_out, reference).map_err(|source| {
                    BuildError::WriteOutput {
                        path: out.path().to_owned(),
                        source,
                    }
                })?;
                let digest = format!("sha256:{}", w.manifest_digest.to_hex());
                manifest_digest.get_or_insert(digest.clone());
                Some(digest)
            }
        };
        match out {
            BuildOutput::Image(image_out) => provisional.add_image(image_out),
            BuildOutput::RootfsDir(dir) => provisional.add(dir.clone()),
        }
        reporter.info(&format!("wrote {}", out.path().display()));
        written.push((out.clone(), result));
    }
    // SBOMs next to / inside each image output, with the checksums of the
    // .deb files the plan verified (apk's identity comes from its own db).
    let name = reference.map(ImageReference::familiar);
    crate::sbom::write_build_sboms(builder, &written, name.as_deref(), deb_sha256, inventory)?;
    provisional.keep();
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
    // Every base build starts from nothing.
    c.labels
        .entry("org.opencontainers.image.base.name".into())
        .or_insert_with(|| "scratch".into());
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
    crate::cleanup::creating(|| std::fs::rename(tmp.path(), to)).map_err(err)?;
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
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        for (spec, missing) in [
            (
                format!("oci:{}/no/such", dir.path().display()),
                dir.path().join("no"),
            ),
            (
                format!("docker-archive:{}/x.tar", file.display()),
                file.clone(),
            ),
        ] {
            let err = parse_output(&spec).unwrap_err().to_string();
            assert!(
                err.contains(&spec)
                    && err.contains(&format!(
                        "{} is not an existing directory",
                        missing.display()
                    )),
                "{err}"
            );
        }
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
}
