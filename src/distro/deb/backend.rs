//! The Debian and Ubuntu back end of the build pipeline
//! (`crate::distro::backend`): InRelease and Packages from the mirror, a
//! debootstrap-style plan, and dpkg's two stages in the sandbox.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use super::apt_state::AptRequest;
use super::bootstrap::{self, BootstrapError, DebSource, InstallOptions, LoadedIndex};
use super::packages::BinaryPackage;
use super::release_memory::ReleaseMemory;
use super::resolve::{Plan, Universe, Variant as DebVariant};
use crate::distro::backend::{
    choose_mirror, lock_path, target_arch, Backend, BackendError, BaseImage, Context,
    InstallSettings, Locked, PlanReport, PlannedPackage, SourceOptions,
};
use crate::distro::mirror;
use crate::distro::platform;
use crate::fetch::FetchItem;
use crate::lock::{self, Layout, LockSource, LockedFile, LockedPackage, Lockfile};
use crate::recipe::{Recipe, Variant};
use crate::verify::keys;
use crate::verify::{Keyring, Sha256Digest};

/// A Debian or Ubuntu recipe's source, keys and settings.
pub struct DebBackend {
    distro: &'static str,
    src: DebSource,
    keyring: Keyring,
    slim: bool,
    accept_release_change: bool,
}

/// The plan's packages, owned: the index's universe (the whole Packages
/// text, ~60 MB) is freed as soon as the plan is made.
pub struct DebPlan<'i> {
    index: &'i LoadedIndex,
    packages: Vec<BinaryPackage>,
    why: BTreeMap<String, String>,
}

impl DebPlan<'_> {
    fn as_plan(&self) -> Plan<'_> {
        Plan {
            packages: self.packages.iter().collect(),
            why: self.why.clone(),
        }
    }
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

/// The plan's packages as lock entries.
fn lock_entries(plan: &DebPlan<'_>) -> Result<Vec<LockedPackage>, BackendError> {
    plan.packages
        .iter()
        .map(|p| {
            Ok(LockedPackage {
                name: p.name.clone(),
                version: p.version.to_string(),
                arch: p.arch.clone(),
                path: lock_path(&p.name, &p.filename)?,
                size: p.size,
                sha256: Sha256Digest(p.sha256),
                checksum: None,
            })
        })
        .collect()
}

impl DebBackend {
    fn load(&self, ctx: &Context, plan_cache: bool) -> Result<LoadedIndex, BackendError> {
        Ok(bootstrap::load_index(
            &ctx.fetcher,
            &self.keyring,
            &self.src,
            SystemTime::now(),
            ctx.reporter.as_ref(),
            plan_cache.then_some(ctx.cache_dir.as_path()),
            Some(&ReleaseMemory::new(
                &ctx.cache_dir,
                self.accept_release_change,
            )),
        )?)
    }

    /// The source the image's apt sources name: the lock's mirror when a
    /// locked build has one.
    fn image_source(&self, locked: Option<Locked<'_>>) -> DebSource {
        DebSource {
            mirror: lock::image_mirror(locked.map(|l| l.lock), &self.src.mirror),
            ..self.src.clone()
        }
    }
}

impl Backend for DebBackend {
    type Index = LoadedIndex;
    type Plan<'i> = DebPlan<'i>;
    type Fetched = Vec<FetchItem>;

    fn prepare(
        recipe: &Recipe,
        opts: &SourceOptions,
        slim: bool,
        ctx: &Context,
    ) -> Result<Self, BackendError> {
        let suite = recipe.release_name().to_owned();
        let snapshot = recipe.source.snapshot.clone();
        let mirror = choose_mirror(recipe, opts, &suite, true, ctx, |query| match &snapshot {
            Some(timestamp) => mirror::choose_snapshot(query, timestamp),
            None => {
                let host_sources = mirror::host_apt_sources(Path::new("/etc/apt"));
                let probe = |uri: &str| {
                    // The InRelease is small; it is fetched again, and
                    // verified, when the index loads. Offline, the copy
                    // kept from the last online run answers.
                    ctx.fetcher
                        .fetch_index(&format!("{uri}/dists/{suite}/InRelease"), 16 << 20)
                        .is_ok()
                };
                mirror::choose(query, &host_sources, &probe)
            }
        })?;

        let key_files = match &opts.keys_dir {
            // `--keys DIR`: every file in DIR replaces the recipe's keys.
            Some(dir) => keys::load_keys(dir, &recipe.path, &[".".to_owned()])?,
            None => keys::load_keys(recipe.dir(), &recipe.path, &recipe.source.keys)?,
        };
        let key_bytes: Vec<u8> = key_files.iter().flat_map(|k| k.bytes.clone()).collect();
        let keyring = Keyring::from_bytes(&key_bytes).map_err(|source| BackendError::Keyring {
            recipe: recipe.path.clone(),
            source,
        })?;

        let src = DebSource {
            mirror,
            suite,
            components: recipe.source.components.clone(),
            arch: target_arch(recipe, opts, platform::DEBIAN)?,
            variant: deb_variant(recipe.source.variant),
            include: recipe
                .package_requests()
                .into_iter()
                .map(|r| (r.name, r.version))
                .collect(),
            snapshot,
        };
        Ok(DebBackend {
            distro: recipe.source.distro.name(),
            src,
            keyring,
            slim,
            accept_release_change: opts.accept_release_change,
        })
    }

    fn lock_source(&self) -> LockSource {
        LockSource {
            distro: self.distro.into(),
            suite: self.src.suite.clone(),
            components: self.src.components.clone(),
            arch: self.src.arch.clone(),
            variant: self.src.variant.to_string(),
            layout: Layout::Debian,
            mirror: lock::recordable_mirror(&self.src.mirror),
            slim: self.slim,
        }
    }

    fn load_index(&self, ctx: &Context, _for_lock: bool) -> Result<LoadedIndex, BackendError> {
        ctx.reporter.stage("fetch and verify the index");
        self.load(ctx, true)
    }

    fn plan<'i>(
        &'i self,
        index: &'i mut LoadedIndex,
        locked: Option<Locked<'_>>,
        ctx: &Context,
    ) -> Result<DebPlan<'i>, BackendError> {
        let plan = match locked {
            Some(Locked { file, lock }) => {
                ctx.reporter.stage("check the lock against the index");
                // The plan cache holds only a resolved sub-universe: when
                // it lacks a locked package, look in the whole index.
                if bootstrap::plan_from_lock(index, &lock.packages).is_err() {
                    *index = self.load(ctx, false)?;
                }
                let plan =
                    bootstrap::plan_from_lock(index, &lock.packages).map_err(|e| match e {
                        BootstrapError::Locked { problems } => BackendError::LockMismatch {
                            file: file.to_owned(),
                            problems,
                        },
                        other => other.into(),
                    })?;
                (
                    plan.packages.iter().map(|p| (*p).clone()).collect(),
                    plan.why,
                )
            }
            None => {
                ctx.reporter.stage("resolve");
                let plan = bootstrap::plan(index, &self.src)?;
                (
                    plan.packages.iter().map(|p| (*p).clone()).collect(),
                    plan.why,
                )
            }
        };
        // The plan's few packages are all the build needs from here on:
        // the universe is freed on a thread of its own (~25 ms of small
        // frees).
        let universe = std::mem::replace(
            &mut index.universe,
            Universe::new(Vec::new(), &self.src.arch),
        );
        std::thread::spawn(move || drop(universe));
        Ok(DebPlan {
            index,
            packages: plan.0,
            why: plan.1,
        })
    }

    fn report(&self, plan: &DebPlan<'_>) -> PlanReport {
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
            distro: self.distro.into(),
            suite: self.src.suite.clone(),
            arch: self.src.arch.clone(),
            variant: self.src.variant.to_string(),
            mirror: self.src.mirror.clone(),
            download_bytes: packages.iter().map(|p| p.size).sum(),
            installed_kib: packages.iter().filter_map(|p| p.installed_size_kib).sum(),
            packages,
        }
    }

    fn index_date(&self, plan: &DebPlan<'_>) -> Option<i64> {
        plan.index.release.date
    }

    /// InRelease and the Packages file of each component, relative to the
    /// mirror.
    fn lock_index_files(&self, plan: &DebPlan<'_>) -> Result<Vec<LockedFile>, BackendError> {
        let dists = format!("dists/{}", self.src.suite);
        let index = plan.index;
        let mut files = vec![LockedFile {
            path: lock_path("InRelease", &format!("{dists}/InRelease"))?,
            sha256: index.inrelease.0,
            size: index.inrelease.1,
        }];
        for used in &index.index_files {
            files.push(LockedFile {
                path: lock_path(&used.path, &format!("{dists}/{}", used.path))?,
                size: used.size,
                sha256: used.sha256,
            });
        }
        Ok(files)
    }

    fn locked_packages(
        &self,
        plan: &DebPlan<'_>,
        _ctx: &Context,
    ) -> Result<Vec<LockedPackage>, BackendError> {
        lock_entries(plan)
    }

    /// The signed index has every package's SHA-256: the entries are the
    /// lock's own.
    fn drift_entries(
        &self,
        plan: &DebPlan<'_>,
        _lock: &Lockfile,
    ) -> Result<Vec<LockedPackage>, BackendError> {
        lock_entries(plan)
    }

    /// Nothing is downloaded yet: `install` fetches while it unpacks.
    fn fetch(
        &self,
        plan: &DebPlan<'_>,
        locked: Option<Locked<'_>>,
        _verify_now: bool,
        _ctx: &Context,
    ) -> Result<Vec<FetchItem>, BackendError> {
        Ok(match locked {
            Some(l) => lock::fetch_items(&self.src.mirror, &l.lock.packages),
            None => bootstrap::fetch_items(&self.src.mirror, &plan.as_plan())?,
        })
    }

    fn keep_in_cache(
        &self,
        _plan: &DebPlan<'_>,
        items: &Vec<FetchItem>,
        ctx: &Context,
    ) -> Result<(), BackendError> {
        ctx.reporter.stage("fetch and verify packages");
        ctx.fetcher.fetch_all(items)?;
        Ok(())
    }

    fn platform(&self) -> (String, Option<String>) {
        platform::oci_platform(platform::DEBIAN, &self.src.arch)
    }

    fn base_image(
        &self,
        plan: &DebPlan<'_>,
        _items: &Vec<FetchItem>,
        locked: Option<Locked<'_>>,
        run_scripts: bool,
    ) -> BaseImage {
        let src = &self.src;
        let apt_source = apt_source_line(&self.image_source(locked));
        let mut layer_key = vec![
            self.distro.to_owned(),
            src.suite.clone(),
            src.arch.clone(),
            src.variant.to_string(),
            apt_source.unwrap_or_default(),
            // Which packages count as asked for (extended_states).
            format!(
                "apt request v1: {:?}",
                src.include.iter().map(|(name, _)| name).collect::<Vec<_>>()
            ),
        ];
        layer_key.extend(
            plan.packages
                .iter()
                .map(|p| format!("{} {} {}", p.name, p.arch, hex::encode(p.sha256))),
        );
        if self.slim {
            layer_key.push("slim".to_owned());
        }
        BaseImage {
            labels: Vec::new(),
            created_by: format!(
                "rootstrap {}: {} {} {} {} ({} packages{})",
                env!("CARGO_PKG_VERSION"),
                self.distro,
                src.suite,
                src.arch,
                src.variant,
                plan.packages.len(),
                if run_scripts { "" } else { ", scripts not run" }
            ),
            layer_key,
            // /run is emptied but for lock in the tree (bootstrap::normalise).
            layer_excludes: &["proc", "sys", "dev", "tmp"],
            planned_bytes: crate::distro::backend::planned_bytes(plan.packages.iter().map(|p| {
                // Debian's Installed-Size is in KiB.
                (p.installed_size.map(|kib| kib.saturating_mul(1024)), p.size)
            })),
        }
    }

    fn install(
        &self,
        root: &Path,
        plan: &DebPlan<'_>,
        items: &Vec<FetchItem>,
        settings: &InstallSettings<'_>,
        ctx: &Context,
    ) -> Result<(), BackendError> {
        let src = &self.src;
        bootstrap::install(
            root,
            &plan.as_plan(),
            &ctx.fetcher,
            items,
            &InstallOptions {
                run_scripts: settings.run_scripts,
                sandbox: settings.sandbox,
                epoch: settings.epoch,
                apt_source: apt_source_line(&self.image_source(settings.locked)),
                apt_request: AptRequest {
                    variant: src.variant,
                    include: src.include.iter().map(|(name, _)| name.clone()).collect(),
                },
                slim: self.slim,
            },
            ctx.reporter.as_ref(),
        )?;
        Ok(())
    }

    fn package_checksums(&self, plan: &DebPlan<'_>) -> BTreeMap<String, [u8; 32]> {
        plan.packages
            .iter()
            .map(|p| (format!("{}:{}", p.name, p.arch), p.sha256))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
