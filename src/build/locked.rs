//! Lockfiles in the pipeline: `rootstrap lock` (plan → lockfile),
//! `build --lock FILE [--locked]` (lockfile → plan, or drift against it) and
//! `rootstrap mirror` (lockfile + cache → a partial mirror on disk).
//!
//! The lock format itself is `crate::lock`; this module only connects it to
//! a build and to the download cache; what a lock records of each
//! distribution is the back ends' (`crate::distro::*::backend`).

use std::path::{Path, PathBuf};

use super::{BuildError, SourceOptions};
use crate::cleanup::TempPath;
use crate::fetch::FetchItem;
use crate::lock::{self, Drift, LockPath, LockSet, LockSource, LockedPackage, Lockfile};
use crate::recipe::Recipe;
use crate::report::{Reporter, SharedReporter};
use crate::verify::Sha256Digest;

/// `build --lock FILE [--locked]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub file: PathBuf,
    /// Install exactly the lock (no resolution); without it the build
    /// resolves and reports drift against the lock, or writes the lock when
    /// the file does not exist yet.
    pub locked: bool,
}

/// What `rootstrap lock` wrote.
#[derive(Debug, Clone)]
pub struct LockReport {
    pub file: PathBuf,
    pub lock: LockSet,
}

/// What `rootstrap mirror` wrote.
#[derive(Debug, Clone)]
pub struct MirrorReport {
    pub dir: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// Files taken from the cache (the rest were downloaded).
    pub from_cache: usize,
}

/// A build's view of its `--lock`: the lock when the file exists.
pub(super) struct LockContext {
    pub request: LockRequest,
    pub existing: Option<LockSet>,
    pub recipe_sha256: Sha256Digest,
}

impl LockContext {
    pub fn open(
        request: Option<&LockRequest>,
        recipe: &Recipe,
    ) -> Result<Option<Self>, BuildError> {
        let Some(request) = request else {
            return Ok(None);
        };
        let existing = if request.file.exists() {
            Some(read_lock_set(&request.file)?)
        } else if request.locked {
            return Err(BuildError::LockMissing(request.file.clone()));
        } else if let Some(dir) = super::missing_dir_of(&request.file) {
            // Written after the build: found out now, not then.
            return Err(BuildError::LockDir {
                file: request.file.clone(),
                dir,
            });
        } else {
            None
        };
        Ok(Some(LockContext {
            request: request.clone(),
            existing,
            recipe_sha256: recipe_digest(recipe)?,
        }))
    }

    /// The existing lock's package set for `platform` (`linux/arm64`; none
    /// for a build that names no platform).
    pub fn existing_for(&self, platform: Option<&str>) -> Option<&Lockfile> {
        self.existing.as_ref()?.for_platform(platform)
    }

    /// The lock to install as-is (`--locked`); an existing lock without
    /// this platform's package set is an error then.
    pub fn locked(&self, platform: Option<&str>) -> Result<Option<&Lockfile>, BuildError> {
        if !self.request.locked {
            return Ok(None);
        }
        match (self.existing_for(platform), &self.existing) {
            (Some(lock), _) => Ok(Some(lock)),
            (None, Some(set)) => Err(BuildError::LockNoPlatform {
                file: self.request.file.clone(),
                platform: platform.unwrap_or("the recipe's").to_owned(),
                platforms: set.platform_names().join(", "),
            }),
            (None, None) => Err(BuildError::LockMissing(self.request.file.clone())),
        }
    }

    /// Refuses a lock made for another source; warns when the recipe changed.
    pub fn check_source(
        &self,
        platform: Option<&str>,
        build: &LockSource,
        reporter: &dyn Reporter,
    ) -> Result<(), BuildError> {
        let Some(lock) = self.existing_for(platform) else {
            return Ok(());
        };
        check_source(lock, &self.request.file, build)?;
        if lock.recipe_sha256 != self.recipe_sha256 {
            reporter.warn(&format!(
                "{}: the recipe changed since this lock was written{}",
                self.request.file.display(),
                if self.request.locked {
                    " (the lock still decides the package set)"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }

    /// After a resolving build: the drift against an existing lock, as
    /// warnings (one line per package); returns it.
    pub fn report_drift(
        &self,
        platform: Option<&str>,
        resolved: &[LockedPackage],
        reporter: &dyn Reporter,
    ) -> Vec<Drift> {
        let Some(lock) = self.existing_for(platform) else {
            return Vec::new();
        };
        let changes = lock::drift(&lock.packages, resolved);
        if changes.is_empty() {
            reporter.info(&format!(
                "{}: the resolved packages match the lock",
                self.request.file.display()
            ));
        } else {
            reporter.warn(&format!(
                "{}: {} package(s) drifted from the lock (run `rootstrap lock` to update it, or build with --locked):",
                self.request.file.display(),
                changes.len()
            ));
            for c in &changes {
                reporter.warn(&format!("  {c}"));
            }
        }
        changes
    }

    /// Whether a resolving build writes the lock (there was none).
    pub fn writes_new(&self) -> bool {
        self.existing.is_none() && !self.request.locked
    }

    /// After a successful resolving build: writes the lock if there was none.
    pub fn write_if_new(&self, set: LockSet, reporter: &dyn Reporter) -> Result<(), BuildError> {
        if !self.writes_new() {
            return Ok(());
        }
        write_lock(&self.request.file, &set)?;
        reporter.info(&format!("wrote the lock {}", self.request.file.display()));
        Ok(())
    }
}

/// A lockfile of one package set (`resolve --lock`, which works on one
/// platform, picks from a multi-platform one with [`read_lock_set`]).
pub fn read_lock(path: &Path) -> Result<Lockfile, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::LockIo {
        path: path.to_owned(),
        source,
    })?;
    Ok(lock::parse(&text, path)?)
}

/// A lockfile of either version.
pub fn read_lock_set(path: &Path) -> Result<LockSet, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::LockIo {
        path: path.to_owned(),
        source,
    })?;
    Ok(lock::parse_set(&text, path)?)
}

/// Writes next to `path` and renames into place, so a reader never sees a
/// half-written lock and a failure leaves the old one.
pub(super) fn write_lock(path: &Path, lock: &LockSet) -> Result<(), BuildError> {
    let text = lock::set_to_toml(lock)?;
    let err = |source| BuildError::LockIo {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".rootstrap-lock-")
        .tempfile_in(dir)
        .map_err(err)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// SHA-256 of the recipe's bytes (a shipped recipe: its embedded text).
pub(super) fn recipe_digest(recipe: &Recipe) -> Result<Sha256Digest, BuildError> {
    match std::fs::read(&recipe.path) {
        Ok(bytes) => Ok(Sha256Digest::of(&bytes)),
        Err(source) => {
            let stem = recipe.path.file_stem().and_then(|s| s.to_str());
            crate::recipe::SHIPPED
                .iter()
                .find(|(name, _)| Some(*name) == stem)
                .map(|(_, text)| Sha256Digest::of(text.as_bytes()))
                .ok_or(BuildError::LockIo {
                    path: recipe.path.clone(),
                    source,
                })
        }
    }
}

fn check_source(lock: &Lockfile, file: &Path, build: &LockSource) -> Result<(), BuildError> {
    let l = &lock.source;
    let fields: [(&str, String, String); 7] = [
        ("distro", l.distro.clone(), build.distro.clone()),
        ("layout", l.layout.name().into(), build.layout.name().into()),
        ("suite", l.suite.clone(), build.suite.clone()),
        (
            "components",
            l.components.join(","),
            build.components.join(","),
        ),
        ("arch", l.arch.clone(), build.arch.clone()),
        ("variant", l.variant.clone(), build.variant.clone()),
        ("slim", l.slim.to_string(), build.slim.to_string()),
    ];
    for (field, in_lock, in_build) in fields {
        if in_lock != in_build {
            return Err(BuildError::LockSource {
                file: file.to_owned(),
                field,
                lock: in_lock,
                build: in_build,
            });
        }
    }
    Ok(())
}

// ---- rootstrap mirror ----

/// `rootstrap mirror LOCK -o DIR`: the lock's index files and packages at
/// their paths under DIR, taken from the cache or downloaded from the
/// mirror (`--mirror`, `$ROOTSTRAP_MIRROR`, else the lock's), each checked
/// against its locked size and SHA-256. Written beside DIR and renamed into
/// place, so a failure leaves nothing.
pub fn write_mirror(
    lock_file: &Path,
    out: &Path,
    opts: &SourceOptions,
    reporter: SharedReporter,
) -> Result<MirrorReport, BuildError> {
    // Every platform's files of a multi-platform lock, each path once.
    let set = read_lock_set(lock_file)?;
    let locks = set.all();
    if out.exists() && std::fs::read_dir(out).map_or(true, |mut d| d.next().is_some()) {
        return Err(BuildError::MirrorOutput {
            path: out.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "refusing to write into an existing non-empty directory",
            ),
        });
    }
    let (_cache_dir, _cache_lock, fetcher) = super::open_fetcher(opts, &reporter)?;
    let env_mirror = std::env::var(crate::distro::mirror::MIRROR_ENV).ok();
    let mirror = opts
        .mirror
        .clone()
        .or(env_mirror)
        .or_else(|| locks.first().and_then(|(_, l)| l.source.mirror.clone()))
        .map(|m| m.trim_end_matches('/').to_owned());

    let mut seen = std::collections::HashSet::new();
    let wanted: Vec<(&LockPath, u64, Sha256Digest, &str)> = locks
        .iter()
        .flat_map(|(_, lock)| {
            lock.index
                .iter()
                .map(|f| (&f.path, f.size, f.sha256, f.path.as_str()))
                .chain(
                    lock.packages
                        .iter()
                        .map(|p| (&p.path, p.size, p.sha256, p.name.as_str())),
                )
        })
        .filter(|(path, ..)| seen.insert(*path))
        .collect();
    let from_cache = wanted
        .iter()
        .filter(|(_, size, sha, _)| fetcher.cache().get_sized(sha, *size).is_some())
        .count();
    let sources = match &mirror {
        Some(m) => {
            reporter.stage("fetch what the cache lacks");
            let items: Vec<FetchItem> = wanted
                .iter()
                .map(|(path, size, sha, name)| FetchItem {
                    url: path.url(m),
                    size: *size,
                    sha256: *sha,
                    name: (*name).to_owned(),
                })
                .collect();
            fetcher.fetch_all(&items)?
        }
        None => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for (path, size, sha, _) in &wanted {
                match fetcher.cache().get_sized(sha, *size) {
                    Some(p) => found.push(p),
                    None => missing.push(path.to_string()),
                }
            }
            if !missing.is_empty() {
                return Err(BuildError::MirrorMissing {
                    file: lock_file.to_owned(),
                    missing,
                });
            }
            found
        }
    };

    reporter.stage("write the mirror");
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = TempPath::new(super::unique_dir(parent, "rootstrap-mirror"));
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::MirrorOutput { path, source }
    };
    let mut bytes = 0;
    for ((path, size, _, _), from) in wanted.iter().zip(&sources) {
        let dest = path.under(tmp.path());
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // A copy, not a hard link: linking would change the cache blob's
        // ctime (forcing a re-hash) and tie the two files together.
        std::fs::copy(from, &dest).map_err(io_err(&dest))?;
        bytes += size;
    }
    super::set_mode(tmp.path(), 0o755);
    if out.exists() {
        std::fs::remove_dir(out).map_err(io_err(out))?;
    }
    std::fs::rename(tmp.path(), out).map_err(io_err(out))?;
    tmp.persist();
    Ok(MirrorReport {
        dir: out.to_owned(),
        files: wanted.len(),
        bytes,
        from_cache,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lock::{image_mirror, recordable_mirror, Layout};

    #[test]
    fn only_plain_http_mirrors_are_recorded() {
        assert_eq!(
            recordable_mirror("http://deb.example/debian/").as_deref(),
            Some("http://deb.example/debian")
        );
        assert!(recordable_mirror("https://u:p@deb.example/debian").is_none());
        assert!(recordable_mirror("file:///srv/mirror").is_none());
        assert_eq!(
            recordable_mirror("https://deb.example/a@b").as_deref(),
            Some("https://deb.example/a@b")
        );
    }

    #[test]
    fn image_mirror_prefers_the_lock() {
        let mut lock = Lockfile {
            recipe_sha256: Sha256Digest([0; 32]),
            source_date_epoch: 0,
            source: LockSource {
                distro: "debian".into(),
                suite: "s".into(),
                components: vec!["main".into()],
                arch: "amd64".into(),
                variant: "minbase".into(),
                layout: Layout::Debian,
                mirror: Some("http://m/debian".into()),
                slim: false,
            },
            index: vec![],
            packages: vec![],
        };
        assert_eq!(image_mirror(Some(&lock), "file:///x"), "http://m/debian");
        assert_eq!(image_mirror(None, "file:///x"), "file:///x");
        lock.source.mirror = None;
        assert_eq!(image_mirror(Some(&lock), "file:///x"), "file:///x");
    }

    #[test]
    fn a_lock_for_another_source_is_refused_naming_the_field() {
        let lock_source = LockSource {
            distro: "debian".into(),
            suite: "trixie".into(),
            components: vec!["main".into()],
            arch: "amd64".into(),
            variant: "minbase".into(),
            layout: Layout::Debian,
            mirror: None,
            slim: false,
        };
        let lock = Lockfile {
            recipe_sha256: Sha256Digest([0; 32]),
            source_date_epoch: 0,
            source: lock_source.clone(),
            index: vec![],
            packages: vec![],
        };
        let mut other = lock_source.clone();
        other.arch = "arm64".into();
        let err = check_source(&lock, Path::new("x.lock"), &other).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("x.lock") && msg.contains("arch") && msg.contains("arm64"),
            "{msg}"
        );
        let mut mirror_only = lock_source;
        mirror_only.mirror = Some("http://elsewhere".into());
        assert!(check_source(&lock, Path::new("x.lock"), &mirror_only).is_ok());
    }
}
