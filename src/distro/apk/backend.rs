//! The Alpine back end of the build pipeline (`crate::distro::backend`):
//! signed APKINDEX files, apk's solver, verified .apk packages installed
//! as apk does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::bootstrap::{self as apk, ApkSource, InstallOptions, KeyFile, LoadedIndexes};
use super::lock as apk_lock;
use super::{ApkPackage, TrustedKeys, VerifiedApk};
use crate::distro::backend::{
    choose_mirror, planned_bytes, target_arch, Backend, BackendError, BaseImage, Context,
    InstallSettings, Locked, PlanReport, PlannedPackage, SourceOptions,
};
use crate::distro::mirror;
use crate::distro::platform;
use crate::lock::{self, LockSource, LockedFile, LockedPackage, Lockfile};
use crate::recipe::Recipe;
use crate::verify::keys::{self, KeyError};

/// Label set when `--allow-untrusted` let an unverified index or package in.
pub const UNTRUSTED_LABEL: &str = "org.rootstrap.untrusted";

/// An Alpine recipe's source and trusted keys.
pub struct ApkBackend {
    src: ApkSource,
    keys: TrustedKeys,
    key_files: Vec<KeyFile>,
}

/// The verified indexes, and the index files a lock records.
pub struct ApkIndexes {
    loaded: LoadedIndexes,
    files: Vec<LockedFile>,
}

/// Everything downloaded and locked — the plan plus the release package
/// (`alpine-release`), whose files are unpacked last, unregistered.
pub struct ApkPlan<'i> {
    index: &'i ApkIndexes,
    all: Vec<&'i ApkPackage>,
    /// `all` without the release package.
    packages: Vec<&'i ApkPackage>,
    release_at: Option<usize>,
}

/// The plan's packages, verified, in plan order, and the release package:
/// fetched at once for an untrusted source or a lock (the image's labels,
/// the lock's digests depend on them). From a signed source they wait for
/// `install`: a reused base layer was made from these very packages (its
/// key holds their identities from the signed index), so a warm build only
/// needs them present in the cache, not verified again.
pub struct ApkFetched {
    verified: Option<Verified>,
}

type Verified = (Vec<VerifiedApk>, Option<VerifiedApk>);

/// `--keys DIR`: every `*.rsa.pub` in DIR, by name.
fn read_key_dir(dir: &Path) -> Result<Vec<KeyFile>, KeyError> {
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

impl ApkBackend {
    /// Whether every package of the plan is in the download cache.
    fn all_cached(&self, plan: &ApkPlan<'_>, ctx: &Context) -> bool {
        let cache = ctx.fetcher.cache();
        plan.all
            .iter()
            .all(|p| cache.get_stamped(&apk::cache_key(p), p.size).is_some())
    }
    /// The source the image's /etc/apk/repositories names: the lock's
    /// mirror when a locked build has one.
    fn image_source(&self, locked: Option<Locked<'_>>) -> ApkSource {
        ApkSource {
            mirror: lock::image_mirror(locked.map(|l| l.lock), &self.src.mirror),
            ..self.src.clone()
        }
    }

    /// The base layer's inputs beyond the pipeline's: the packages by `C:`
    /// identity (the release package included), the world and repositories
    /// written to /etc/apk, the keys, and as whom scripts run.
    fn layer_key(
        &self,
        plan: &ApkPlan<'_>,
        locked: Option<Locked<'_>>,
    ) -> Result<Vec<String>, BackendError> {
        use sha2::Digest as _;
        let src = self.image_source(locked);
        let mut parts = vec![
            "alpine-base-layer-v2".to_owned(),
            src.arch.clone(),
            rustix::process::geteuid().is_root().to_string(),
        ];
        parts.extend(src.world());
        for line in src.repository_lines()? {
            parts.push(format!("repository {line}"));
        }
        for k in &self.key_files {
            parts.push(format!(
                "key {} {}",
                k.name,
                hex::encode(sha2::Sha256::digest(&k.bytes))
            ));
        }
        for p in &plan.all {
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
        Ok(parts)
    }

    /// Downloads (or takes from the cache) and verifies every package of
    /// the plan, as apk does; the release package apart.
    fn verify(
        &self,
        plan: &ApkPlan<'_>,
        locked: Option<Locked<'_>>,
        ctx: &Context,
    ) -> Result<Verified, BackendError> {
        ctx.reporter.stage("fetch and verify packages");
        let mut apks = match locked {
            Some(l) => apk_lock::fetch_locked(
                &ctx.fetcher,
                &self.src.mirror,
                &l.lock.packages,
                &plan.all,
                &self.keys,
                self.src.allow_untrusted,
            )?,
            None => apk::fetch_packages(
                &ctx.fetcher,
                &plan.index.loaded,
                &plan.all,
                &self.keys,
                &self.src,
            )?,
        };
        let release = plan.release_at.map(|i| apks.remove(i));
        Ok((apks, release))
    }
}

impl Backend for ApkBackend {
    type Index = ApkIndexes;
    type Plan<'i> = ApkPlan<'i>;
    type Fetched = ApkFetched;

    fn prepare(
        recipe: &Recipe,
        opts: &SourceOptions,
        slim: bool,
        ctx: &Context,
    ) -> Result<Self, BackendError> {
        if slim {
            return Err(BackendError::SlimUnsupported {
                distro: recipe.source.distro.name(),
            });
        }
        let release = recipe.release_name().to_owned();
        // Host apt sources never serve Alpine.
        let mirror = choose_mirror(recipe, opts, &release, false, ctx, |query| {
            mirror::choose(query, &[], &|_| false)
        })?;

        let key_files: Vec<KeyFile> = match &opts.keys_dir {
            Some(dir) => read_key_dir(dir)?,
            None => keys::load_keys(recipe.dir(), &recipe.path, &recipe.source.keys)?
                .into_iter()
                .map(|k| KeyFile {
                    name: k.file_name,
                    bytes: k.bytes,
                })
                .collect(),
        };
        let key_files: Vec<KeyFile> = key_files
            .into_iter()
            .filter(|k| k.name.ends_with(".rsa.pub"))
            .collect();
        let mut keys = TrustedKeys::new();
        for k in &key_files {
            keys.add_pem(&k.name, &String::from_utf8_lossy(&k.bytes))
                .map_err(BackendError::ApkKeys)?;
        }
        let extra = recipe
            .package_requests()
            .into_iter()
            .map(|r| match r.version {
                Some(v) => format!("{}={v}", r.name),
                None => r.name,
            })
            .collect();
        Ok(ApkBackend {
            src: ApkSource {
                mirror,
                release,
                repositories: recipe.source.repositories.clone(),
                base: recipe.packages.base.clone(),
                arch: target_arch(recipe, opts, platform::ALPINE)?,
                extra,
                allow_untrusted: opts.allow_untrusted,
            },
            keys,
            key_files,
        })
    }

    fn lock_source(&self) -> LockSource {
        apk_lock::lock_source(&self.src)
    }

    fn load_index(&self, ctx: &Context, for_lock: bool) -> Result<ApkIndexes, BackendError> {
        ctx.reporter.stage("fetch and verify the indexes");
        let reporter = ctx.reporter.as_ref();
        Ok(if for_lock {
            let (loaded, files) =
                apk_lock::load_indexes_recorded(&ctx.fetcher, &self.keys, &self.src, reporter)?;
            ApkIndexes { loaded, files }
        } else {
            ApkIndexes {
                loaded: apk::load_indexes(
                    &ctx.fetcher,
                    &self.keys,
                    &self.src,
                    reporter,
                    Some(&ctx.cache_dir),
                )?,
                files: Vec::new(),
            }
        })
    }

    fn plan<'i>(
        &'i self,
        index: &'i mut ApkIndexes,
        locked: Option<Locked<'_>>,
        ctx: &Context,
    ) -> Result<ApkPlan<'i>, BackendError> {
        let index: &'i ApkIndexes = index;
        let all = match locked {
            Some(Locked { file, lock }) => {
                ctx.reporter.stage("check the lock against the indexes");
                apk_lock::plan_from_lock(&index.loaded, &self.src, file, &lock.packages)?
            }
            None => {
                ctx.reporter.stage("resolve");
                apk::plan_with_release(&index.loaded, &self.src)?
            }
        };
        let (packages, release_at) = apk::split_release(&all, &self.src);
        Ok(ApkPlan {
            index,
            all,
            packages,
            release_at,
        })
    }

    fn report(&self, plan: &ApkPlan<'_>) -> PlanReport {
        let src = &self.src;
        let world = src.world();
        let packages: Vec<PlannedPackage> = plan
            .packages
            .iter()
            .map(|p| PlannedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                size: p.size,
                installed_size_kib: Some(p.installed_size / 1024),
                why: if world
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
            distro: "alpine".into(),
            suite: src.release.clone(),
            arch: src.arch.clone(),
            variant: "minirootfs".into(),
            mirror: src.mirror.clone(),
            download_bytes: packages.iter().map(|p| p.size).sum(),
            installed_kib: packages.iter().filter_map(|p| p.installed_size_kib).sum(),
            packages,
        }
    }

    fn index_date(&self, plan: &ApkPlan<'_>) -> Option<i64> {
        LoadedIndexes::newest_build_time(&plan.all)
    }

    fn lock_index_files(&self, plan: &ApkPlan<'_>) -> Result<Vec<LockedFile>, BackendError> {
        Ok(plan.index.files.clone())
    }

    fn locked_packages(
        &self,
        plan: &ApkPlan<'_>,
        ctx: &Context,
    ) -> Result<Vec<LockedPackage>, BackendError> {
        // Their SHA-256 comes from the cached files: fetch (and verify)
        // them first where a warm build has not.
        if !self.all_cached(plan, ctx) {
            self.verify(plan, None, ctx)?;
        }
        apk_lock::locked_packages(&ctx.fetcher, &plan.index.loaded, &self.src, &plan.all)
    }

    /// The index has no SHA-256, so a package with the lock's version and
    /// `C:` identity takes the lock's; any other change shows in the
    /// version or the identity.
    fn drift_entries(
        &self,
        plan: &ApkPlan<'_>,
        lock: &Lockfile,
    ) -> Result<Vec<LockedPackage>, BackendError> {
        apk_lock::identities(&plan.index.loaded, &self.src, &plan.all, &lock.packages)
    }

    fn fetch(
        &self,
        plan: &ApkPlan<'_>,
        locked: Option<Locked<'_>>,
        verify_now: bool,
        ctx: &Context,
    ) -> Result<ApkFetched, BackendError> {
        let verified = if verify_now || self.src.allow_untrusted || locked.is_some() {
            Some(self.verify(plan, locked, ctx)?)
        } else {
            None
        };
        Ok(ApkFetched { verified })
    }

    fn keep_in_cache(
        &self,
        plan: &ApkPlan<'_>,
        fetched: &ApkFetched,
        ctx: &Context,
    ) -> Result<(), BackendError> {
        if fetched.verified.is_none() && !self.all_cached(plan, ctx) {
            self.verify(plan, None, ctx)?;
        }
        Ok(())
    }

    fn platform(&self) -> (String, Option<String>) {
        platform::oci_platform(platform::ALPINE, &self.src.arch)
    }

    fn base_image(
        &self,
        plan: &ApkPlan<'_>,
        fetched: &ApkFetched,
        locked: Option<Locked<'_>>,
        run_scripts: bool,
    ) -> BaseImage {
        // Packages are only unverified with --allow-untrusted, which
        // verifies them here at once.
        let untrusted = plan.index.loaded.untrusted()
            || fetched.verified.as_ref().is_some_and(|(apks, release)| {
                apks.iter()
                    .chain(release)
                    .any(|a| a.trust.signer().is_none())
            });
        let mut labels = Vec::new();
        if untrusted {
            labels.push((UNTRUSTED_LABEL.to_owned(), "true".to_owned()));
        }
        // A repository line that cannot be written fails the install with
        // the same error; the key only needs to differ from a good one.
        let layer_key = self
            .layer_key(plan, locked)
            .unwrap_or_else(|e| vec![format!("unusable: {e}")]);
        BaseImage {
            labels,
            created_by: format!(
                "rootstrap {}: alpine {} {} ({} packages{})",
                env!("CARGO_PKG_VERSION"),
                self.src.release,
                self.src.arch,
                plan.packages.len(),
                if run_scripts { "" } else { ", scripts not run" }
            ),
            layer_key,
            layer_excludes: &["proc", "sys", "dev", "run", "tmp"],
            // APKINDEX's installed size (I:) is in bytes.
            planned_bytes: planned_bytes(
                plan.packages
                    .iter()
                    .map(|p| (Some(p.installed_size), p.size)),
            ),
        }
    }

    fn install(
        &self,
        root: &Path,
        plan: &ApkPlan<'_>,
        fetched: &ApkFetched,
        settings: &InstallSettings<'_>,
        ctx: &Context,
    ) -> Result<(), BackendError> {
        let release = plan.release_at.map(|i| plan.all[i]);
        let src = self.image_source(settings.locked);
        let opts = InstallOptions {
            run_scripts: settings.run_scripts,
            sandbox: settings.sandbox,
            keys: &self.key_files,
            release,
        };
        let reporter = ctx.reporter.as_ref();
        let installed = match &fetched.verified {
            Some((apks, release_apk)) => {
                let packages = apks.iter().chain(release_apk).map(Ok);
                apk::install(root, &plan.packages, packages, &src, &opts, reporter)?
            }
            // Not verified yet (`fetch` verifies locked and untrusted builds
            // at once): each package installs as soon as it and those before
            // it are verified, while the rest still download.
            None => {
                let order: Vec<&ApkPackage> =
                    plan.packages.iter().copied().chain(release).collect();
                apk::with_packages_in_order(
                    &ctx.fetcher,
                    &plan.index.loaded,
                    &order,
                    &self.keys,
                    &self.src,
                    |packages| apk::install(root, &plan.packages, packages, &src, &opts, reporter),
                )?
            }
        };
        if !installed.scripts_not_run.is_empty() {
            ctx.reporter.warn(&format!(
                "scripts not run, marked for `apk fix` (f:s): {}",
                installed.scripts_not_run.join(", ")
            ));
        }
        Ok(())
    }

    /// apk's database records each package's identity itself.
    fn package_checksums(&self, _plan: &ApkPlan<'_>) -> BTreeMap<String, [u8; 32]> {
        BTreeMap::new()
    }
}
