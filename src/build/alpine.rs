//! The build pipeline for Alpine recipes: the same stages as the Debian
//! path in the parent module (index → plan → packages → rootfs → layer →
//! outputs), with the apk back end in `distro::apk::bootstrap`.

use std::path::{Path, PathBuf};

use super::locked;
use super::{
    apply_image_spec, epoch_for, BuildError, BuildOptions, BuildReport, PlanReport, PlannedPackage,
    SourceOptions,
};
use crate::distro::apk::bootstrap::{
    self as apk, ApkBootstrapError, ApkSource, InstallOptions, KeyFile, LoadedIndexes,
};
use crate::distro::apk::{ApkPackage, TrustedKeys};
use crate::fetch::{CacheLock, Fetcher};
use crate::image::oci::{self, History, ImageConfig};
use crate::image::{ImageBuilder, ImageReference, LayerCompression, LayerOptions};
use crate::layer_cache::{LayerCache, LayerEntry};
use crate::mirror::{self, MirrorQuery};
use crate::recipe::Recipe;
use crate::report::SharedReporter;
use crate::rootfs::sandbox::Sandbox;
use crate::verify::keys::{self, KeyError};

/// Label set when `--allow-untrusted` let an unverified index or package in.
pub const UNTRUSTED_LABEL: &str = "org.rootstrap.untrusted";
/// Label set when package scripts could not run (foreign architecture).
pub const SCRIPTS_LABEL: &str = "org.rootstrap.scripts";

impl From<ApkBootstrapError> for BuildError {
    fn from(e: ApkBootstrapError) -> Self {
        BuildError::Alpine(Box::new(e))
    }
}

struct Prepared {
    src: ApkSource,
    keys: TrustedKeys,
    key_files: Vec<KeyFile>,
    fetcher: Fetcher,
    _cache_lock: CacheLock,
    cache_dir: PathBuf,
}

fn prepare(
    recipe: &Recipe,
    opts: &SourceOptions,
    reporter: &SharedReporter,
) -> Result<Prepared, BuildError> {
    let release = recipe.release_name().to_owned();
    let env_mirror = std::env::var(mirror::MIRROR_ENV).ok();
    let query = MirrorQuery {
        cli: opts.mirror.as_deref(),
        env: env_mirror.as_deref(),
        recipe: recipe.source.mirror.as_deref(),
        distro: recipe.source.distro.name(),
        suite: &release,
        // Host apt sources never serve Alpine.
        use_host_sources: false,
    };
    let (mirror, origin) = mirror::choose(&query, &[], &|_| false)?;
    reporter.info(&format!("mirror {mirror} (from {origin})"));

    let key_files = match &opts.keys_dir {
        Some(dir) => read_key_dir(dir)?,
        None => keys::load_keys(recipe.dir(), &recipe.path, &recipe.source.keys)?
            .into_iter()
            .map(|k| KeyFile {
                name: k.file_name,
                bytes: k.bytes,
            })
            .collect(),
    };
    let mut trusted = TrustedKeys::new();
    for k in key_files.iter().filter(|k| k.name.ends_with(".rsa.pub")) {
        trusted
            .add_pem(&k.name, &String::from_utf8_lossy(&k.bytes))
            .map_err(BuildError::ApkKeys)?;
    }

    let (cache_dir, cache_lock, fetcher) = super::open_fetcher(opts, reporter)?;
    let extra = recipe
        .package_requests()
        .into_iter()
        .map(|r| match r.version {
            Some(v) => format!("{}={v}", r.name),
            None => r.name,
        })
        .collect();
    Ok(Prepared {
        src: ApkSource {
            mirror,
            release,
            repositories: recipe.source.repositories.clone(),
            base: recipe.packages.base.clone(),
            arch: opts
                .arch
                .clone()
                .unwrap_or_else(|| recipe.source.arch.clone()),
            extra,
            allow_untrusted: opts.allow_untrusted,
        },
        keys: trusted,
        key_files: key_files
            .into_iter()
            .filter(|k| k.name.ends_with(".rsa.pub"))
            .collect(),
        fetcher,
        _cache_lock: cache_lock,
        cache_dir,
    })
}

/// `--keys DIR`: every `*.rsa.pub` in DIR, by name.
fn read_key_dir(dir: &Path) -> Result<Vec<KeyFile>, BuildError> {
    let err = |path: &Path, source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".rsa.pub") && p.is_file())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let bytes = std::fs::read(&path).map_err(|e| err(&path, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(KeyFile { name, bytes });
    }
    Ok(out)
}

fn plan_report(recipe: &Recipe, src: &ApkSource, plan: &[&ApkPackage]) -> PlanReport {
    let packages: Vec<PlannedPackage> = plan
        .iter()
        .map(|p| PlannedPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            arch: p.arch.clone(),
            size: p.size,
            installed_size_kib: Some(p.installed_size / 1024),
            why: if src
                .world()
                .iter()
                .any(|w| w.split(['@', '<', '>', '=', '~']).next() == Some(p.name.as_str()))
            {
                "world".into()
            } else {
                "dependency".into()
            },
        })
        .collect();
    PlanReport {
        distro: recipe.source.distro.name().into(),
        suite: src.release.clone(),
        arch: src.arch.clone(),
        variant: "minirootfs".into(),
        mirror: src.mirror.clone(),
        download_bytes: packages.iter().map(|p| p.size).sum(),
        installed_kib: packages.iter().filter_map(|p| p.installed_size_kib).sum(),
        packages,
    }
}

/// `rootstrap resolve` for an Alpine recipe.
pub(super) fn resolve(
    recipe: &Recipe,
    opts: &SourceOptions,
    reporter: SharedReporter,
) -> Result<PlanReport, BuildError> {
    let prepared = prepare(recipe, opts, &reporter)?;
    reporter.stage("fetch and verify the indexes");
    let index = apk::load_indexes(
        &prepared.fetcher,
        &prepared.keys,
        &prepared.src,
        reporter.as_ref(),
        Some(&prepared.cache_dir),
    )?;
    reporter.stage("resolve");
    let plan = apk::plan(&index, &prepared.src)?;
    Ok(plan_report(recipe, &prepared.src, &plan))
}

/// `rootstrap resolve --lock` for an Alpine recipe: the plan as lock
/// entries without downloading. The index has no SHA-256, so a package with
/// the lock's version and `C:` identity takes the lock's; any other change
/// shows in the version or the identity.
pub(super) fn resolve_for_drift(
    recipe: &Recipe,
    opts: &SourceOptions,
    lock: &crate::lock::Lockfile,
    reporter: SharedReporter,
) -> Result<(PlanReport, Vec<crate::lock::LockedPackage>), BuildError> {
    let prepared = prepare(recipe, opts, &reporter)?;
    let src = &prepared.src;
    reporter.stage("fetch and verify the indexes");
    let index = apk::load_indexes(
        &prepared.fetcher,
        &prepared.keys,
        src,
        reporter.as_ref(),
        Some(&prepared.cache_dir),
    )?;
    reporter.stage("resolve");
    let all = apk::plan_with_release(&index, src)?;
    let packages = locked::apk_identities(&index, src, &all, &lock.packages)?;
    let (plan, _) = apk::split_release(&all, src);
    Ok((plan_report(recipe, src, &plan), packages))
}

/// The base layer cache key: everything the layer is made of — the
/// packages by `C:` identity (the release package included), the world and
/// repositories written to /etc/apk, the keys, the epoch, whether scripts
/// run and as whom.
fn base_layer_key(
    src: &ApkSource,
    all: &[&ApkPackage],
    keys: &[KeyFile],
    epoch: i64,
    run_scripts: bool,
    compression: LayerCompression,
) -> Result<String, BuildError> {
    use sha2::Digest as _;
    let mut parts = vec![
        "alpine-base-layer-v1".to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
        src.arch.clone(),
        epoch.to_string(),
        run_scripts.to_string(),
        format!("compression {compression:?}"),
        rustix::process::geteuid().is_root().to_string(),
    ];
    parts.extend(src.world());
    for line in src.repository_lines()? {
        parts.push(format!("repository {line}"));
    }
    for k in keys {
        parts.push(format!(
            "key {} {}",
            k.name,
            hex::encode(sha2::Sha256::digest(&k.bytes))
        ));
    }
    for p in all {
        parts.push(format!(
            "package {} {} {} {} {}",
            p.name,
            p.version,
            p.arch,
            p.checksum
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            p.repo_tag.as_deref().unwrap_or("")
        ));
    }
    Ok(crate::layer_cache::key(&parts))
}

/// OCI architecture and variant for an apk architecture name.
fn oci_platform(apk_arch: &str) -> (String, Option<String>) {
    match apk_arch {
        "x86_64" => ("amd64".into(), None),
        "aarch64" => ("arm64".into(), Some("v8".into())),
        "armv7" => ("arm".into(), Some("v7".into())),
        "armhf" => ("arm".into(), Some("v6".into())),
        "x86" => ("386".into(), None),
        "ppc64le" => ("ppc64le".into(), None),
        other => (other.into(), None),
    }
}

/// `rootstrap lock` for an Alpine recipe: resolves, then fetches and
/// verifies every package to record its SHA-256.
pub(super) fn lock(
    recipe: &Recipe,
    opts: &SourceOptions,
    recipe_sha256: crate::verify::Sha256Digest,
    reporter: SharedReporter,
) -> Result<crate::lock::Lockfile, BuildError> {
    let prepared = prepare(recipe, opts, &reporter)?;
    let src = &prepared.src;
    reporter.stage("fetch and verify the indexes");
    let (index, index_files) = locked::apk_load_indexes_recorded(
        &prepared.fetcher,
        &prepared.keys,
        src,
        reporter.as_ref(),
    )?;
    reporter.stage("resolve");
    let all = apk::plan_with_release(&index, src)?;
    reporter.stage("fetch and verify packages");
    apk::fetch_packages(&prepared.fetcher, &index, &all, &prepared.keys, src)?;
    Ok(crate::lock::Lockfile {
        recipe_sha256,
        source_date_epoch: LoadedIndexes::newest_build_time(&all).unwrap_or(0),
        source: locked::apk_lock_source(recipe, src),
        index: index_files,
        packages: locked::apk_locked_packages(&prepared.fetcher, &index, src, &all)?,
    })
}

/// `rootstrap build` for an Alpine recipe.
pub(super) fn build(
    recipe: &Recipe,
    opts: &BuildOptions,
    tags: Option<ImageReference>,
    lock_ctx: Option<locked::LockContext>,
    reporter: SharedReporter,
) -> Result<BuildReport, BuildError> {
    let prepared = prepare(recipe, &opts.source, &reporter)?;
    let src = &prepared.src;
    let umask = super::RootfsUmask::set();

    if let Some(ctx) = &lock_ctx {
        ctx.check_source(&locked::apk_lock_source(recipe, src), reporter.as_ref())?;
    }
    let lock = lock_ctx.as_ref().and_then(|c| c.locked());

    reporter.stage("fetch and verify the indexes");
    let (index, index_files) = match &lock_ctx {
        Some(_) => locked::apk_load_indexes_recorded(
            &prepared.fetcher,
            &prepared.keys,
            src,
            reporter.as_ref(),
        )?,
        None => (
            apk::load_indexes(
                &prepared.fetcher,
                &prepared.keys,
                src,
                reporter.as_ref(),
                Some(&prepared.cache_dir),
            )?,
            Vec::new(),
        ),
    };
    // Everything downloaded and locked: the plan plus the release package.
    let all = match (lock, &lock_ctx) {
        (Some(l), Some(ctx)) => {
            reporter.stage("check the lock against the indexes");
            locked::apk_plan_from_lock(&index, src, &ctx.request.file, &l.packages)?
        }
        _ => {
            reporter.stage("resolve");
            apk::plan_with_release(&index, src)?
        }
    };
    let (plan, release_at) = apk::split_release(&all, src);
    let report = plan_report(recipe, src, &plan);
    reporter.info(&format!(
        "{} packages, {:.1} MB to download",
        report.packages.len(),
        report.download_bytes as f64 / 1e6
    ));
    let epoch = epoch_for(match lock {
        Some(l) => Some(l.source_date_epoch),
        None => LoadedIndexes::newest_build_time(&all),
    })?;

    reporter.stage("fetch and verify packages");
    let mut apks = match lock {
        Some(l) => locked::apk_fetch_locked(
            &prepared.fetcher,
            &src.mirror,
            &l.packages,
            &all,
            &prepared.keys,
            src.allow_untrusted,
        )?,
        None => apk::fetch_packages(&prepared.fetcher, &index, &all, &prepared.keys, src)?,
    };
    let release = release_at.map(|i| (all[i], apks.remove(i)));
    // Without --locked: drift against the lock, and the lock's contents if
    // it is to be written.
    let resolved_lock = match (&lock_ctx, lock) {
        (Some(ctx), None) => {
            let packages = locked::apk_locked_packages(&prepared.fetcher, &index, src, &all)?;
            ctx.report_drift(&packages, reporter.as_ref());
            Some(crate::lock::Lockfile {
                recipe_sha256: ctx.recipe_sha256,
                source_date_epoch: LoadedIndexes::newest_build_time(&all).unwrap_or(0),
                source: locked::apk_lock_source(recipe, src),
                index: index_files,
                packages,
            })
        }
        _ => None,
    };
    // The image names the lock's mirror, not where the files came from.
    let image_src = ApkSource {
        mirror: locked::image_mirror(lock, &src.mirror),
        ..src.clone()
    };
    let untrusted = index.untrusted() || apks.iter().any(|a| a.trust.signer().is_none());

    let run_scripts = src.arch == apk::host_apk_arch();
    let (arch, variant) = oci_platform(&src.arch);
    let mut config = ImageConfig::new(&arch, "linux");
    config.variant = variant;
    config.created = Some(oci::format_timestamp(epoch));
    apply_image_spec(&mut config, recipe);
    let labels = &mut config.config.labels;
    labels
        .entry("org.opencontainers.image.base.name".into())
        .or_insert_with(|| "scratch".into());
    if untrusted {
        labels.insert(UNTRUSTED_LABEL.into(), "true".into());
    }
    if !run_scripts {
        labels.insert(SCRIPTS_LABEL.into(), "not-run".into());
    }
    let work = super::work_dir(opts)?;
    let compression = super::layer_compression(recipe, opts);
    let mut builder = ImageBuilder::new_in(&work, config, compression)?;
    let history = History {
        created: Some(oci::format_timestamp(epoch)),
        created_by: Some(format!(
            "rootstrap {}: alpine {} {} ({} packages{})",
            env!("CARGO_PKG_VERSION"),
            src.release,
            src.arch,
            report.packages.len(),
            if run_scripts { "" } else { ", scripts not run" }
        )),
        ..History::default()
    };

    // The same packages, settings and keys make the same layer: a warm
    // rebuild reuses the compressed one (re-hashed as it is used).
    let layers = LayerCache::new(&prepared.cache_dir);
    let cache_key = base_layer_key(
        &image_src,
        &all,
        &prepared.key_files,
        epoch,
        run_scripts,
        compression,
    )?;
    let wants_tree = opts
        .outputs
        .iter()
        .any(|o| matches!(o, super::BuildOutput::RootfsDir(_)));
    let cached = (!wants_tree)
        .then(|| layers.get(&cache_key))
        .flatten()
        .and_then(|(blob, entry)| {
            let digest = crate::image::Sha256Digest::parse(&entry.digest).ok()?;
            let diff_id = crate::image::Sha256Digest::parse(&entry.diff_id).ok()?;
            match builder.add_cached_layer(
                &blob,
                digest,
                diff_id,
                entry.uncompressed_size,
                history.clone(),
            ) {
                Ok(_) => Some(()),
                Err(e) => {
                    reporter.warn(&format!("cached layer unusable ({e}); rebuilding it"));
                    None
                }
            }
        });
    let rootfs = if cached.is_some() {
        reporter.stage("reuse the cached base layer (same packages, keys and settings)");
        None
    } else {
        layers.evict(&cache_key);
        reporter.stage("install");
        // APKINDEX's installed size (I:) is in bytes.
        let planned =
            super::tree_dir::planned_bytes(plan.iter().map(|p| (Some(p.installed_size), p.size)));
        let parent = super::tree_dir::choose(opts, planned, false)?;
        let rootfs = super::tree_dir::make_tree(&parent, reporter.as_ref())?;
        let sandbox = match &opts.sandbox_helper {
            Some(p) => Sandbox::with_helper(p),
            None => Sandbox::new(),
        };
        let installed = apk::install(
            rootfs.path(),
            &plan,
            &apks,
            &image_src,
            &InstallOptions {
                run_scripts,
                sandbox: &sandbox,
                keys: &prepared.key_files,
                release: release.as_ref().map(|(p, a)| (*p, a)),
            },
            reporter.as_ref(),
        )?;
        if !installed.scripts_not_run.is_empty() {
            reporter.warn(&format!(
                "scripts not run, marked for `apk fix` (f:s): {}",
                installed.scripts_not_run.join(", ")
            ));
        }

        reporter.stage("pack the layer");
        let layer_opts = LayerOptions {
            source_date_epoch: Some(epoch),
            exclude: ["proc", "sys", "dev", "run", "tmp"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        };
        let layer = builder.add_layer_from_dir(rootfs.path(), &layer_opts, history)?;
        let entry = LayerEntry {
            digest: layer.descriptor.digest.clone(),
            diff_id: layer.diff_id.to_string(),
            uncompressed_size: layer.uncompressed_size.unwrap_or(0),
        };
        if let Err(e) = layers.put(&cache_key, layer.path(), &entry) {
            reporter.warn(&format!("could not store the layer in the cache: {e}"));
        }
        Some(rootfs)
    };
    let diff_id = builder.layers()[0].diff_id.to_hex();

    drop(umask);
    let (outputs, manifest_digest) = super::write_outputs(
        &builder,
        &opts.outputs,
        tags.as_ref(),
        rootfs,
        &Default::default(),
        reporter.as_ref(),
    )?;
    if let (Some(ctx), Some(lockfile)) = (&lock_ctx, resolved_lock) {
        ctx.write_if_new(|| Ok(lockfile), reporter.as_ref())?;
    }
    Ok(BuildReport {
        plan: report,
        outputs,
        diff_id,
        manifest_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(oci_platform("x86_64"), ("amd64".into(), None));
        assert_eq!(oci_platform("aarch64"), ("arm64".into(), Some("v8".into())));
    }
}
