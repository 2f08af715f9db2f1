//! Stage 5: the verified packages' files in the rootfs, through
//! rootfs::extract, with apk's ownership rule; scripts run between them.

use super::*;

/// A trust anchor to copy into /etc/apk/keys.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// How [`install`] finishes the rootfs.
pub struct InstallOptions<'a> {
    /// Run package scripts and triggers (false for a foreign architecture).
    pub run_scripts: bool,
    pub sandbox: &'a Sandbox,
    /// Keys written to /etc/apk/keys.
    pub keys: &'a [KeyFile],
    /// [`release_package`], whose verified package follows the plan's in
    /// `install`'s packages: its files are unpacked at the end, not
    /// registered in the database.
    pub release: Option<&'a ApkPackage>,
}

/// What [`install`] did, for the image's labels and history.
#[derive(Debug, Clone, Default)]
pub struct InstallReport {
    pub scripts_run: usize,
    pub triggers_run: usize,
    /// Scripts run disabled (foreign architecture).
    pub scripts_skipped: bool,
    /// Packages whose scripts did not run (their records carry `f:s`).
    pub scripts_not_run: Vec<String>,
}

/// Installs the verified packages into `root_dir` as apk does: per package
/// `.pre-install`, then its files, then `.post-install`; triggers once
/// everything is in; the database and configuration last.
///
/// `packages` gives `plan`'s verified packages in plan order, then the
/// release package's when `opts.release` names one; it may still be
/// fetching them ([`with_packages_in_order`]), so each is taken only when
/// its turn comes, and the first error stops the install.
pub fn install<A: Borrow<VerifiedApk>>(
    root_dir: &Path,
    plan: &[&ApkPackage],
    packages: impl IntoIterator<Item = Result<A, ApkBootstrapError>>,
    src: &ApkSource,
    opts: &InstallOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<InstallReport, ApkBootstrapError> {
    let mut packages = packages.into_iter();
    let root = Root::open(root_dir).map_err(|error| ApkBootstrapError::Rootfs {
        path: root_dir.to_owned(),
        error,
    })?;
    let mut unclaimed = create_skeleton(&root)?;
    if opts.run_scripts {
        reporter.info("package scripts run in the sandbox, in apk's order");
    } else {
        reporter.warn(&format!(
            "foreign architecture {}: package scripts were not run (nor triggers); the \
             packages that have scripts are marked in lib/apk/db/installed (f:s), so that \
             `apk fix` on a {} machine runs them",
            src.arch, src.arch
        ));
    }
    let mut scripts = ScriptRunner::new(&root, root_dir, opts.sandbox, reporter, opts.run_scripts);
    let (mut records, installed) =
        extract_all(&root, plan, &mut packages, &mut scripts, &mut unclaimed)?;
    let apks: Vec<&VerifiedApk> = installed.iter().map(Borrow::borrow).collect();
    scripts.queue_triggers(plan, &apks, &records);
    scripts.flush()?;
    scripts.close()?;
    for &i in &scripts.broken {
        if let Some(r) = records.get_mut(i) {
            r.broken.script = true;
        }
    }
    match opts.release {
        Some(pkg) => {
            let apk = next_package(&mut packages, pkg)?;
            unpack_unregistered(&root, pkg, apk.borrow())?
        }
        None if !plan.iter().any(|p| p.name == RELEASE_PACKAGE) => reporter.warn(&format!(
            "no {RELEASE_PACKAGE} package (not in the repositories, or not in the lock): \
             /etc/os-release and /etc/alpine-release are not written"
        )),
        None => {}
    }
    lock_root_password(&root)?;
    write_database(&root, &records, plan, &apks, src, opts.keys)?;
    Ok(scripts.report)
}

/// The next verified package, which must be `pkg`'s.
fn next_package<A: Borrow<VerifiedApk>>(
    packages: &mut impl Iterator<Item = Result<A, ApkBootstrapError>>,
    pkg: &ApkPackage,
) -> Result<A, ApkBootstrapError> {
    packages
        .next()
        .unwrap_or_else(|| Err(ApkBootstrapError::NotFetched { package: pkg.id() }))
}

/// alpine-baselayout-data ships `/etc/shadow` with root's password empty
/// (`root::`); the official minirootfs build locks it (`root:*:`) after
/// installing, since images that shipped it empty let anyone become root
/// (CVE-2019-5021). rootstrap does the same; mode and owner stay.
fn lock_root_password(root: &Root) -> Result<(), ApkBootstrapError> {
    let shadow = rel("etc/shadow")?;
    let Some(meta) = root.lstat(&shadow)? else {
        return Ok(());
    };
    if meta.kind != FileKind::File {
        return Ok(());
    }
    let text = root.read_file(&shadow)?;
    let Some(rest) = text.strip_prefix(b"root::") else {
        return Ok(());
    };
    let mut locked = b"root:*:".to_vec();
    locked.extend_from_slice(rest);
    root.write_file(&shadow, &locked, meta.mode)?;
    if is_root_user() {
        root.set_owner(&shadow, meta.uid, meta.gid)?;
    }
    root.set_mode(&shadow, meta.mode)?;
    Ok(())
}

/// Unpacks a package's files without registering it, as `tar -x` of the
/// package would (the official minirootfs build does this with
/// `alpine-release`), except that it never replaces what an installed
/// package put there: existing directories keep their mode, existing paths
/// stay.
fn unpack_unregistered(
    root: &Root,
    pkg: &ApkPackage,
    apk: &VerifiedApk,
) -> Result<(), ApkBootstrapError> {
    // Names and checksums are verified before anything is written.
    apk.data_entries()?;
    let claim = |rel: &RelPath, _: EntryKind| match root.lstat(rel) {
        Ok(Some(_)) => Ok(Claimed::Skip),
        Ok(None) => Ok(Claimed::Write),
        Err(e) => Err(e.to_string()),
    };
    write_package_files(root, &pkg.id(), apk.data_tar(), &claim)
}

/// One package's data tar (`what` names it in errors), checked by apk's
/// rules and written as the installer writes it, every path claimed: the
/// apk path the hostile-archive tests run against.
pub fn unpack_package_data(
    root: &Root,
    what: &str,
    data_tar: &[u8],
) -> Result<(), ApkBootstrapError> {
    verify_data_entries(what, data_tar)?;
    write_package_files(root, what, data_tar, &|_, _| Ok(Claimed::Write))
}

/// Writes a package's data tar through rootfs::extract as apk does: owners
/// only as root, no xattrs, and symlinks and device nodes keep the time
/// they were made. `claim` decides who may write each path; the caller
/// has verified names and checksums first.
fn write_package_files(
    root: &Root,
    package: &str,
    data_tar: &[u8],
    claim: &dyn Fn(&RelPath, EntryKind) -> Result<Claimed, String>,
) -> Result<(), ApkBootstrapError> {
    let opts = ExtractOptions {
        xattrs: false,
        link_and_node_mtimes: false,
        ..ExtractOptions::new(package)
    };
    extract_tar_with(root, data_tar, &opts, claim)?;
    Ok(())
}

/// The directories apk's `--initdb` creates before installing anything
/// (`proc` 0555 is where apk mounts /proc for scripts; `lib/apk/exec` is
/// where it stages them). Returns them: apk leaves a directory that existed
/// before any package claimed it with its mode when the package's differs.
fn create_skeleton(root: &Root) -> Result<HashSet<RelPath>, ApkBootstrapError> {
    let mut made = HashSet::new();
    for (dir, mode) in [
        ("proc", 0o555),
        ("tmp", 0o1777),
        ("dev", 0o755),
        ("etc", 0o755),
        ("etc/apk", 0o755),
        ("lib", 0o755),
        ("lib/apk", 0o755),
        ("lib/apk/db", 0o755),
        ("var", 0o755),
        ("var/cache", 0o755),
        ("var/cache/apk", 0o755),
        ("var/cache/misc", 0o755),
        ("lib/apk/exec", 0o755),
    ] {
        let p = RelPath::from_archive(dir.as_bytes())?;
        if root.mkdir(&p, mode)? {
            root.set_mode(&p, mode)?;
        }
        made.insert(p);
    }
    Ok(made)
}

fn is_root_user() -> bool {
    rustix::process::geteuid().is_root()
}

/// Extracts all packages in order. Non-directory paths belong to one
/// package; when a later package ships the same path, apk's rule decides
/// (see [`overwrite_decision`]) and the loser's record no longer lists it.
/// Returns the records and the packages, in plan order.
fn extract_all<A: Borrow<VerifiedApk>>(
    root: &Root,
    plan: &[&ApkPackage],
    packages: &mut impl Iterator<Item = Result<A, ApkBootstrapError>>,
    scripts: &mut ScriptRunner<'_>,
    unclaimed: &mut HashSet<RelPath>,
) -> Result<(Vec<InstalledPackage>, Vec<A>), ApkBootstrapError> {
    let mut owners: HashMap<RelPath, usize> = HashMap::new();
    let mut records = Vec::with_capacity(plan.len());
    let mut installed = Vec::with_capacity(plan.len());
    for (i, pkg) in plan.iter().enumerate() {
        let held = next_package(packages, pkg)?;
        let apk: &VerifiedApk = held.borrow();
        scripts.before_files(i, pkg, apk)?;
        // Names and checksums are verified before anything is written.
        let entries = apk.data_entries()?;
        let mut dirs: HashMap<RelPath, &TarEntry> = HashMap::new();
        for e in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
            dirs.insert(rel(&e.path)?, e);
        }
        let claims = RefCell::new(PackageClaims {
            index: i,
            plan,
            owners: &mut owners,
            unclaimed: &mut *unclaimed,
            dirs,
            taken: Vec::new(),
            kept: Vec::new(),
            conflict: None,
        });
        let claim = |rel: &RelPath, kind: EntryKind| claims.borrow_mut().claim(root, rel, kind);
        let extracted = write_package_files(root, &pkg.id(), apk.data_tar(), &claim);
        let claims = claims.into_inner();
        if let Some(conflict) = claims.conflict {
            return Err(conflict);
        }
        extracted?;
        for (other, rel) in claims.taken {
            drop_file(&mut records, other, &rel);
        }
        // The record keeps the package's repository tag: apk writes it as `s:`.
        records.push(InstalledPackage {
            pkg: (*pkg).clone(),
            dirs: installed::dirs_from_entries(&entries),
            ..InstalledPackage::default()
        });
        for rel in claims.kept {
            drop_file(&mut records, i, &rel);
        }
        scripts.after_files(i, pkg, apk);
        installed.push(held);
    }
    Ok((records, installed))
}

/// Who may write each path of one package, decided entry by entry while
/// it is extracted.
struct PackageClaims<'a> {
    /// The package's place in the plan.
    index: usize,
    plan: &'a [&'a ApkPackage],
    /// Owner (plan index) of every non-directory path written so far.
    owners: &'a mut HashMap<RelPath, usize>,
    /// Skeleton directories no package has claimed yet.
    unclaimed: &'a mut HashSet<RelPath>,
    /// The package's directory entries, for their mode and owner.
    dirs: HashMap<RelPath, &'a TarEntry>,
    /// Paths taken over from an earlier package (its plan index).
    taken: Vec<(usize, RelPath)>,
    /// Paths whose owner keeps its copy.
    kept: Vec<RelPath>,
    /// A refused overwrite, reported as such rather than as an entry error.
    conflict: Option<ApkBootstrapError>,
}

impl PackageClaims<'_> {
    fn claim(&mut self, root: &Root, rel: &RelPath, kind: EntryKind) -> Result<Claimed, String> {
        let pkg = self.plan[self.index];
        if kind == EntryKind::Dir {
            if !self.unclaimed.remove(rel) {
                return Ok(Claimed::Write);
            }
            // apk leaves a directory that existed before any package
            // claimed it alone when the package's mode or owner differ.
            let Some(e) = self.dirs.get(rel) else {
                return Ok(Claimed::Write);
            };
            let differs = root
                .lstat(rel)
                .map_err(|e| e.to_string())?
                .is_some_and(|m| {
                    m.kind == FileKind::Dir
                        && (m.mode != e.mode & 0o7777 || m.uid != e.uid || m.gid != e.gid)
                });
            return Ok(if differs {
                Claimed::Skip
            } else {
                Claimed::Write
            });
        }
        if let Some(&other) = self.owners.get(rel).filter(|&&o| o != self.index) {
            match overwrite_decision(pkg, self.plan[other]) {
                Overwrite::Yes => self.taken.push((other, rel.clone())),
                Overwrite::KeepOriginal => {
                    self.kept.push(rel.clone());
                    return Ok(Claimed::Skip);
                }
                Overwrite::Conflict => {
                    let err = ApkBootstrapError::Overwrite {
                        package: pkg.id(),
                        path: String::from_utf8_lossy(rel.as_bytes()).into_owned(),
                        owner: self.plan[other].id(),
                    };
                    let reason = err.to_string();
                    self.conflict = Some(err);
                    return Err(reason);
                }
            }
        }
        self.owners.insert(rel.clone(), self.index);
        Ok(Claimed::Write)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Overwrite {
    Yes,
    /// The owner replaces the new package with a higher priority: the
    /// owner's copy stays and the new package does not own the path.
    KeepOriginal,
    Conflict,
}

/// apk-tools' rule for a path already owned by another package: same
/// origin overwrites; otherwise `replaces` on either side, weighed by
/// `replaces_priority`; otherwise "trying to overwrite" (HOSTILE 16).
fn overwrite_decision(new: &ApkPackage, owner: &ApkPackage) -> Overwrite {
    if !new.origin.is_empty() && new.origin == owner.origin {
        return Overwrite::Yes;
    }
    let prio = |by: &ApkPackage, of: &ApkPackage| -> i64 {
        if by.replaces.iter().any(|r| !r.conflict && r.name == of.name) {
            i64::from(by.replaces_priority.unwrap_or(0))
        } else {
            -1
        }
    };
    let (owner_prio, new_prio) = (prio(owner, new), prio(new, owner));
    if owner_prio > new_prio {
        Overwrite::KeepOriginal
    } else if new_prio >= 0 {
        Overwrite::Yes
    } else {
        Overwrite::Conflict
    }
}

/// Removes a taken-over file from an earlier package's record.
fn drop_file(records: &mut [InstalledPackage], owner: usize, rel: &RelPath) {
    let Some(rec) = records.get_mut(owner) else {
        return;
    };
    let path = String::from_utf8_lossy(rel.as_bytes());
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
    for d in rec.dirs.iter_mut().filter(|d| d.path == parent) {
        d.files.retain(|f| f.name != name);
    }
}

pub(super) fn rel(path: &str) -> Result<RelPath, ApkBootstrapError> {
    Ok(RelPath::from_archive(path.as_bytes())?)
}

/// `triggers = /bin /usr/bin …` from a package's .PKGINFO.
pub(super) fn trigger_globs(apk: &VerifiedApk) -> Vec<String> {
    apk.pkginfo
        .get_all("triggers")
        .flat_map(|v| v.split_whitespace())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_rule_follows_apk() {
        let pkg = |name: &str, origin: &str| ApkPackage {
            name: name.into(),
            origin: origin.into(),
            ..Default::default()
        };
        let (mut a, mut b) = (pkg("a", "a"), pkg("b", "b"));
        assert_eq!(overwrite_decision(&a, &b), Overwrite::Conflict);
        assert_eq!(overwrite_decision(&pkg("c", "b"), &b), Overwrite::Yes);
        a.replaces.push(Dependency::any("b"));
        assert_eq!(overwrite_decision(&a, &b), Overwrite::Yes);
        // Both replace each other: the higher replaces_priority keeps its copy.
        b.replaces.push(Dependency::any("a"));
        b.replaces_priority = Some(10);
        assert_eq!(overwrite_decision(&a, &b), Overwrite::KeepOriginal);
        a.replaces_priority = Some(10);
        assert_eq!(overwrite_decision(&a, &b), Overwrite::Yes);
    }
}
