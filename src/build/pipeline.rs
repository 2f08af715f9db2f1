//! The one pipeline every distribution's build runs, over its back end
//! (`crate::distro::backend::Backend`): lock, index, plan, base-layer cache,
//! install, the recipe's Dockerfile steps, SBOMs and outputs.

use std::path::PathBuf;

use super::locked::LockContext;
use super::{
    apply_image_spec, base_layer_compression, epoch_for, layer_compression, tree_dir, work_dir,
    BuildError, BuildOptions, BuildOutput, RootfsUmask,
};
use crate::distro::backend::{
    Backend, BaseImage, Context, InstallSettings, Locked, PlanReport, WithBackend,
};
use crate::image::layer_cache::{self, LayerCache, LayerEntry};
use crate::image::oci::{self, History, ImageConfig};
use crate::image::{ImageBuilder, LayerCompression, LayerOptions};
use crate::lock::{LockedPackage, Lockfile};
use crate::recipe::Recipe;
use crate::rootfs::emulation::{self, Emulation};
use crate::rootfs::sandbox::Sandbox;
use crate::verify::Sha256Digest;

/// `rootstrap resolve [--lock FILE]`: the plan, and with a lock the plan's
/// lock entries (without downloading) to compare with it.
pub(super) struct Resolve<'a> {
    pub lock: Option<&'a Lockfile>,
}

impl WithBackend for Resolve<'_> {
    type Output = Result<(PlanReport, Vec<LockedPackage>), BuildError>;

    fn run<B: Backend>(self, backend: B, ctx: &Context) -> Self::Output {
        let mut index = backend.load_index(ctx, false)?;
        let plan = backend.plan(&mut index, None, ctx)?;
        let entries = match self.lock {
            Some(lock) => backend.drift_entries(&plan, lock)?,
            None => Vec::new(),
        };
        Ok((backend.report(&plan), entries))
    }
}

/// `rootstrap lock`: the resolved plan as a lockfile.
pub(super) struct Lock {
    pub recipe_sha256: Sha256Digest,
}

impl WithBackend for Lock {
    type Output = Result<Lockfile, BuildError>;

    fn run<B: Backend>(self, backend: B, ctx: &Context) -> Self::Output {
        let mut index = backend.load_index(ctx, true)?;
        let plan = backend.plan(&mut index, None, ctx)?;
        // Where the index has no SHA-256 (Alpine), it comes from the
        // verified download.
        backend.fetch(&plan, None, true, ctx)?;
        lockfile(&backend, &plan, self.recipe_sha256, ctx)
    }
}

fn lockfile<B: Backend>(
    backend: &B,
    plan: &B::Plan<'_>,
    recipe_sha256: Sha256Digest,
    ctx: &Context,
) -> Result<Lockfile, BuildError> {
    Ok(Lockfile {
        recipe_sha256,
        source_date_epoch: backend.index_date(plan).unwrap_or(0).max(0),
        source: backend.lock_source(),
        index: backend.lock_index_files(plan)?,
        packages: backend.locked_packages(plan, ctx)?,
    })
}

/// `rootstrap build` of one platform: the image, not yet written.
pub(super) struct Build<'a> {
    pub recipe: &'a Recipe,
    pub opts: &'a BuildOptions,
    pub lock_ctx: Option<&'a LockContext>,
    /// The platform asked for (`linux/arm64`), which names its package set
    /// in a multi-platform lock; none when the recipe's `arch` decides.
    pub platform: Option<String>,
}

/// One platform's image, built: what the outputs are written from.
pub(super) struct Built {
    pub builder: ImageBuilder,
    /// The finished tree, when the build made one (not for a reused layer).
    pub rootfs: Option<crate::cleanup::TempPath>,
    /// SHA-256 of each package file, for the SBOMs.
    pub checksums: std::collections::BTreeMap<String, [u8; 32]>,
    pub report: PlanReport,
    pub diff_id: String,
    /// `--lock FILE` naming no file yet: the lock to write after the outputs.
    pub new_lock: Option<Lockfile>,
}

impl WithBackend for Build<'_> {
    type Output = Result<Built, BuildError>;

    fn run<B: Backend>(self, backend: B, ctx: &Context) -> Self::Output {
        build(&backend, ctx, self)
    }
}

fn build<B: Backend>(backend: &B, ctx: &Context, job: Build<'_>) -> Result<Built, BuildError> {
    let Build {
        recipe,
        opts,
        lock_ctx,
        platform,
    } = job;
    let platform = platform.as_deref();
    let reporter = ctx.reporter.as_ref();
    let umask = RootfsUmask::set();
    let mut locked = None;
    if let Some(lc) = lock_ctx {
        lc.check_source(platform, &backend.lock_source(), reporter)?;
        locked = lc.locked(platform)?.map(|lock| Locked {
            file: &lc.request.file,
            lock,
        });
    }

    // Before anything is downloaded: can this platform's scripts run here?
    let (arch, variant) = backend.platform();
    let run_scripts = scripts_run_here(&arch, opts.skip_foreign_scripts, reporter)?;

    let mut index = backend.load_index(ctx, lock_ctx.is_some())?;
    let plan = backend.plan(&mut index, locked, ctx)?;
    let report = backend.report(&plan);
    reporter.info(&format!(
        "{} packages, {:.1} MB to download, {:.1} MB installed",
        report.packages.len(),
        report.download_bytes as f64 / 1e6,
        report.installed_kib as f64 * 1024.0 / 1e6
    ));
    let epoch = epoch_for(match locked {
        Some(l) => Some(l.lock.source_date_epoch),
        None => backend.index_date(&plan),
    })?;
    let fetched = backend.fetch(&plan, locked, false, ctx)?;
    if let Some(lc) = lock_ctx.filter(|lc| lc.existing_for(platform).is_some()) {
        if locked.is_none() {
            lc.report_drift(platform, &backend.locked_packages(&plan, ctx)?, reporter);
        }
    }

    let base = backend.base_image(&plan, &fetched, locked, run_scripts);
    let mut config = ImageConfig::new(&arch, "linux");
    config.variant = variant;
    config.created = Some(oci::format_timestamp(epoch));
    apply_image_spec(&mut config, recipe);
    config.config.labels.extend(base.labels.iter().cloned());
    if !run_scripts {
        config
            .config
            .labels
            .insert(SCRIPTS_LABEL.to_owned(), "not-run".to_owned());
    }
    let work = work_dir(opts)?;
    let compression = base_layer_compression(&opts.outputs, layer_compression(recipe, opts));
    let mut builder = ImageBuilder::new_in(&work, config, compression)?;
    let history = History {
        created: Some(oci::format_timestamp(epoch)),
        created_by: Some(base.created_by.clone()),
        ..History::default()
    };

    let sandbox = match &opts.sandbox_helper {
        Some(p) => Sandbox::with_helper(p),
        None => Sandbox::new(),
    };
    // A foreign tree's programs: the emulated CPU that runs them fastest.
    let emulated_cpu = run_scripts
        .then(|| emulation::qemu_cpu::setting(&arch))
        .flatten();
    if let Some((k, v)) = &emulated_cpu {
        reporter.info(&format!("emulated programs run with {k}={v}"));
    }
    let sandbox = sandbox.with_default_env(emulated_cpu);
    let dockerfile = recipe.build.as_ref().and_then(|b| b.dockerfile.as_ref());
    // The tree itself is needed for a rootfs output and for Dockerfile steps.
    let wants_tree = dockerfile.is_some()
        || opts
            .outputs
            .iter()
            .any(|o| matches!(o, BuildOutput::RootfsDir(_)));
    let layers = LayerCache::new(&ctx.cache_dir);
    let cache_key = base_layer_key(&base, epoch, run_scripts, compression);
    let rootfs =
        if !wants_tree && reuse_cached_layer(&layers, &cache_key, &mut builder, &history, ctx) {
            backend.keep_in_cache(&plan, &fetched, ctx)?;
            None
        } else {
            reporter.stage("install");
            let parent = tree_dir::choose(opts, base.planned_bytes, dockerfile.is_some())?;
            let dir = tree_dir::make_tree(&parent, reporter)?;
            let settings = InstallSettings {
                sandbox: &sandbox,
                epoch,
                run_scripts,
                locked,
            };
            backend
                .install(dir.path(), &plan, &fetched, &settings, ctx)
                .map_err(|e| install_error(e, &parent.path))?;

            reporter.stage("pack the layer");
            let layer_opts = LayerOptions {
                source_date_epoch: Some(epoch),
                exclude: base.layer_excludes.iter().map(PathBuf::from).collect(),
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
            Some(dir)
        };
    let diff_id = builder.layers()[0].diff_id.to_hex();
    if let Some(dockerfile) = dockerfile {
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
                .then(|| crate::dockerfile::builder::StepCache::new(&ctx.cache_dir)),
            reporter,
        )?;
    }

    drop(umask);
    // The lock a resolving build writes once its outputs are written.
    let new_lock = match lock_ctx {
        Some(lc) if lc.writes_new() => Some(lockfile(backend, &plan, lc.recipe_sha256, ctx)?),
        _ => None,
    };
    Ok(Built {
        builder,
        rootfs,
        checksums: backend.package_checksums(&plan),
        report,
        diff_id,
        new_lock,
    })
}

/// A full disk under the tree named by the directory the tree is in: the
/// error from inside the tree names only a path in the rootfs.
fn install_error(e: crate::distro::backend::BackendError, dir: &std::path::Path) -> BuildError {
    let disk_full = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|io| matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)));
    if disk_full {
        BuildError::NoRoomForTree {
            dir: dir.to_owned(),
            source: e,
        }
    } else {
        e.into()
    }
}

/// Everything the base layer is made of: same inputs, same layer.
fn base_layer_key(
    base: &BaseImage,
    epoch: i64,
    run_scripts: bool,
    compression: LayerCompression,
) -> String {
    let mut parts = vec![
        "base-layer-v2".to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
        epoch.to_string(),
        run_scripts.to_string(),
        format!("layer compression {compression:?}"),
        base.created_by.clone(),
    ];
    parts.extend(base.layer_key.iter().cloned());
    layer_cache::key(&parts)
}

/// Label set when package scripts did not run (`--skip-foreign-scripts`).
pub const SCRIPTS_LABEL: &str = "org.rootstrap.scripts";

/// Whether package scripts of `arch` run: natively, or through a
/// binfmt_misc interpreter. A foreign architecture's are not run with
/// `skip` (`--skip-foreign-scripts`); without it, a missing interpreter
/// stops the build saying what to install.
fn scripts_run_here(
    arch: &str,
    skip: bool,
    reporter: &dyn crate::report::Reporter,
) -> Result<bool, BuildError> {
    match emulation::check(arch) {
        Ok(Emulation::Native) => Ok(true),
        Ok(Emulation::Interpreter { .. }) | Err(_) if skip => {
            reporter.warn(&format!(
                "--skip-foreign-scripts: {arch} package scripts are not run (the image is labelled {SCRIPTS_LABEL}=not-run)"
            ));
            Ok(false)
        }
        Ok(Emulation::Interpreter { entry, path }) => {
            reporter.info(&format!(
                "{arch} programs run through binfmt_misc entry {entry} ({})",
                path.display()
            ));
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// Adds the cached base layer to the image when there is a usable one
/// (re-hashed as it is used); an unusable one is evicted.
fn reuse_cached_layer(
    layers: &LayerCache,
    cache_key: &str,
    builder: &mut ImageBuilder,
    history: &History,
    ctx: &Context,
) -> bool {
    let Some((blob, entry)) = layers.get(cache_key) else {
        return false;
    };
    let parsed = (
        crate::image::Sha256Digest::parse(&entry.digest),
        crate::image::Sha256Digest::parse(&entry.diff_id),
    );
    let (Ok(digest), Ok(diff_id)) = parsed else {
        layers.evict(cache_key);
        return false;
    };
    match builder.add_cached_layer(
        &blob,
        digest,
        diff_id,
        entry.uncompressed_size,
        history.clone(),
    ) {
        Ok(_) => {
            ctx.reporter
                .stage("reuse the cached base layer (same packages and settings)");
            true
        }
        Err(e) => {
            ctx.reporter
                .warn(&format!("cached layer unusable ({e}); rebuilding it"));
            layers.evict(cache_key);
            false
        }
    }
}
