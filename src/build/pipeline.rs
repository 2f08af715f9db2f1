//! The one pipeline every distribution's build runs, over its back end
//! (`crate::distro::backend::Backend`): lock, index, plan, base-layer cache,
//! install, the recipe's Dockerfile steps, SBOMs and outputs.

use std::path::PathBuf;

use super::locked::LockContext;
use super::{
    apply_image_spec, base_layer_compression, epoch_for, layer_compression, tree_dir, work_dir,
    write_outputs, BuildError, BuildOptions, BuildOutput, BuildReport, RootfsUmask,
};
use crate::distro::backend::{
    Backend, BaseImage, Context, InstallSettings, Locked, PlanReport, WithBackend,
};
use crate::image::oci::{self, History, ImageConfig};
use crate::image::{ImageBuilder, ImageReference, LayerCompression, LayerOptions};
use crate::layer_cache::{self, LayerCache, LayerEntry};
use crate::lock::{LockedPackage, Lockfile};
use crate::recipe::Recipe;
use crate::rootfs::sandbox::Sandbox;
use crate::verify::Sha256Digest;

/// `rootstrap resolve [--lock FILE]`: the plan, and with a lock the plan's
/// lock entries (without downloading) to compare with it.
pub(super) struct Resolve<'a> {
    pub lock: Option<&'a Lockfile>,
}

impl WithBackend for Resolve<'_> {
    type Output = Result<(PlanReport, Vec<LockedPackage>), BuildError>;

    fn run<B: Backend>(self, backend: B, ctx: Context) -> Self::Output {
        let mut index = backend.load_index(&ctx, false)?;
        let plan = backend.plan(&mut index, None, &ctx)?;
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

    fn run<B: Backend>(self, backend: B, ctx: Context) -> Self::Output {
        let mut index = backend.load_index(&ctx, true)?;
        let plan = backend.plan(&mut index, None, &ctx)?;
        // Where the index has no SHA-256 (Alpine), it comes from the
        // verified download.
        backend.fetch(&plan, None, &ctx)?;
        lockfile(&backend, &plan, self.recipe_sha256, &ctx)
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

/// `rootstrap build`.
pub(super) struct Build<'a> {
    pub recipe: &'a Recipe,
    pub opts: &'a BuildOptions,
    pub tags: Option<ImageReference>,
    pub lock_ctx: Option<LockContext>,
}

impl WithBackend for Build<'_> {
    type Output = Result<BuildReport, BuildError>;

    fn run<B: Backend>(self, backend: B, ctx: Context) -> Self::Output {
        build(&backend, &ctx, self)
    }
}

fn build<B: Backend>(
    backend: &B,
    ctx: &Context,
    job: Build<'_>,
) -> Result<BuildReport, BuildError> {
    let Build {
        recipe,
        opts,
        tags,
        lock_ctx,
    } = job;
    let reporter = ctx.reporter.as_ref();
    let umask = RootfsUmask::set();
    if let Some(lc) = &lock_ctx {
        lc.check_source(&backend.lock_source(), reporter)?;
    }
    let locked = lock_ctx.as_ref().and_then(|lc| {
        lc.locked().map(|lock| Locked {
            file: &lc.request.file,
            lock,
        })
    });

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
    let fetched = backend.fetch(&plan, locked, ctx)?;
    if let Some(lc) = lock_ctx.as_ref().filter(|lc| lc.existing.is_some()) {
        if locked.is_none() {
            lc.report_drift(&backend.locked_packages(&plan, ctx)?, reporter);
        }
    }

    let base = backend.base_image(&plan, &fetched, locked, epoch);
    let mut config = ImageConfig::new(&base.platform.0, "linux");
    config.variant = base.platform.1.clone();
    config.created = Some(oci::format_timestamp(epoch));
    apply_image_spec(&mut config, recipe);
    config.config.labels.extend(base.labels.iter().cloned());
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
    let dockerfile = recipe.build.as_ref().and_then(|b| b.dockerfile.as_ref());
    // The tree itself is needed for a rootfs output and for Dockerfile steps.
    let wants_tree = dockerfile.is_some()
        || opts
            .outputs
            .iter()
            .any(|o| matches!(o, BuildOutput::RootfsDir(_)));
    let layers = LayerCache::new(&ctx.cache_dir);
    let cache_key = base_layer_key(&base, epoch, compression);
    let rootfs =
        if !wants_tree && reuse_cached_layer(&layers, &cache_key, &mut builder, &history, ctx) {
            backend.keep_in_cache(&fetched, ctx)?;
            None
        } else {
            reporter.stage("install");
            let parent = tree_dir::choose(opts, base.planned_bytes, dockerfile.is_some())?;
            let dir = tree_dir::make_tree(&parent, reporter)?;
            let settings = InstallSettings {
                sandbox: &sandbox,
                epoch,
                run_scripts: base.run_scripts,
                locked,
            };
            backend.install(dir.path(), &plan, &fetched, &settings, ctx)?;

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
    let (outputs, manifest_digest) = write_outputs(
        &builder,
        &opts.outputs,
        tags.as_ref(),
        rootfs,
        &backend.package_checksums(&plan),
        reporter,
    )?;
    if let Some(lc) = &lock_ctx {
        lc.write_if_new(|| lockfile(backend, &plan, lc.recipe_sha256, ctx), reporter)?;
    }
    Ok(BuildReport {
        plan: report,
        outputs,
        diff_id,
        manifest_digest,
    })
}

/// Everything the base layer is made of: same inputs, same layer.
fn base_layer_key(base: &BaseImage, epoch: i64, compression: LayerCompression) -> String {
    let mut parts = vec![
        "base-layer-v2".to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
        epoch.to_string(),
        base.run_scripts.to_string(),
        format!("layer compression {compression:?}"),
        base.created_by.clone(),
    ];
    parts.extend(base.layer_key.iter().cloned());
    layer_cache::key(&parts)
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
