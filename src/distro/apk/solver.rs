//! Dependency resolution with apk-tools semantics: versioned dependencies,
//! `!name` conflicts, provides (versioned provides own a name exclusively,
//! unversioned ones are only auto-selected with a provider_priority),
//! install_if, repository tags (`name@tag`) and "keep what is installed unless
//! upgrading". The search is a depth-first backtracking search over candidates
//! in apk's preference order, so the first solution found is apk's choice.

use super::index::{ApkPackage, Checksum, Dependency};
use super::version;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Bound on search steps so a hostile index cannot make resolution exponential.
const MAX_STEPS: usize = 200_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SolveError {
    #[error(
        "unable to select packages: {dependency} (required by {required_by}): no such package"
    )]
    NoSuchPackage {
        dependency: String,
        required_by: String,
    },
    #[error("unable to select packages: {dependency} (required by {required_by}) is a virtual package provided by {providers:?}; select one of them explicitly")]
    AmbiguousVirtual {
        dependency: String,
        required_by: String,
        providers: Vec<String>,
    },
    #[error("unable to select packages: {dependency} (required by {required_by}): {reason}")]
    Unsatisfiable {
        dependency: String,
        required_by: String,
        reason: String,
    },
    #[error("unable to select packages: {world_conflict} conflicts with {package}")]
    Conflict {
        world_conflict: String,
        package: String,
    },
    #[error("dependency resolution gave up after {0} steps")]
    TooComplex(usize),
}

#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// Target architecture; packages of other arches (except `noarch`) are ignored.
    pub arch: Option<String>,
    /// Prefer the newest versions even for installed packages (`apk upgrade`).
    pub upgrade: bool,
    /// Prefer repository copies over installed ones of the same version
    /// (`apk upgrade --available`), so changed packages get replaced.
    pub available: bool,
    /// Always take the newest version of a name, failing rather than falling
    /// back to an older one (`apk upgrade --latest`).
    pub latest: bool,
    /// Names being deleted (`apk del`): their providers lose the
    /// "keep what is installed" preference.
    pub removing: Vec<String>,
    /// Names to upgrade while everything else stays (`apk upgrade NAME…`,
    /// apk 3's pre-upgrade set). Unlike apk, their dependencies do not
    /// inherit the upgrade.
    pub upgrade_names: Vec<String>,
}

/// The package set to have installed, in apk's install order (dependencies first).
#[derive(Debug, Clone)]
pub struct Solution<'a> {
    pub install: Vec<&'a ApkPackage>,
    /// Per `install` entry, the repository tag it is installed under (apk's
    /// `s:`): its own request's or the one it inherited; `None` when an
    /// untagged repository carries it.
    pub pinned: Vec<Option<String>>,
}

/// What must change to get from the installed set to a solution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    Install(&'a ApkPackage),
    Upgrade(&'a ApkPackage, &'a ApkPackage),
    Downgrade(&'a ApkPackage, &'a ApkPackage),
    /// Same version, different package identity (rebuilt upstream).
    Replace(&'a ApkPackage, &'a ApkPackage),
    /// The same package, now installed under another repository tag.
    Repin(&'a ApkPackage, Option<String>),
    Remove(&'a ApkPackage),
}

/// `solve_with` with default options (any arch, keep installed versions).
pub fn solve<'a>(
    repo: &'a [ApkPackage],
    installed: &'a [ApkPackage],
    world: &[Dependency],
) -> Result<Solution<'a>, SolveError> {
    solve_with(repo, installed, world, &SolveOptions::default())
}

struct Candidate<'a> {
    pkg: &'a ApkPackage,
    installed: bool,
    /// Repository tags this package is available under (None: an untagged
    /// repository, or installed with no `s:` tag), like apk's `pkg->repos`.
    tags: BTreeSet<Option<&'a str>>,
    /// Some repository carries it (not only the installed database).
    in_repo: bool,
    /// Names this package occupies exclusively: its own and versioned provides.
    owned: Vec<&'a str>,
}

struct Solver<'a> {
    cands: Vec<Candidate<'a>>,
    by_name: BTreeMap<&'a str, Vec<usize>>,
    install_if: Vec<usize>,
    opts: SolveOptions,
    /// The world plus, after it, install_if packages forced in by a retry.
    world: Vec<Dependency>,
    /// How many entries of `world` are the caller's (the install-order roots).
    world_len: usize,
    selected: Vec<usize>,
    /// (dependency, index into `cands` of the requirer or None for world)
    /// Pending dependencies: (dependency, requirer, repository tags allowed
    /// for it — its own `@tag` plus those inherited from the requirer).
    queue: Vec<(Dependency, Option<usize>, Vec<String>)>,
    /// Tags each selected package was allowed (inherited by its dependencies).
    selected_tags: Vec<Vec<String>>,
    /// Queue positions that are re-queued copies of a deferred virtual name.
    deferred: BTreeSet<usize>,
    steps: usize,
    first_failure: Option<SolveError>,
}

/// Records another copy of an already known package (same identity, or the
/// installed one and its repository copy). The untagged repository's copy
/// is the one kept, so downloads and the installed record use it.
fn merge_copy<'a>(c: &mut Candidate<'a>, copy: &'a ApkPackage, copy_installed: bool) {
    let tag = copy.repo_tag.as_deref();
    if !c.installed && !copy_installed && tag.is_none() && c.pkg.repo_tag.is_some() {
        c.pkg = copy;
    }
    c.tags.insert(tag);
    c.in_repo |= !copy_installed;
}

fn provided_version(p: &Dependency) -> Option<&str> {
    p.version.as_deref()
}

impl<'a> Solver<'a> {
    fn new(
        repo: &'a [ApkPackage],
        installed: &'a [ApkPackage],
        world: &[Dependency],
        opts: &SolveOptions,
    ) -> Self {
        let mut cands: Vec<Candidate<'a>> = Vec::new();
        let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let mut seen_ids: BTreeMap<&Checksum, usize> = BTreeMap::new();
        let arch_ok = |p: &ApkPackage| match &opts.arch {
            Some(a) => p.arch.is_empty() || p.arch == "noarch" || p.arch == *a,
            None => true,
        };
        let installed_copies = installed.iter().map(|p| (p, true));
        let repo_copies = repo.iter().map(|p| (p, false));
        // The first copy of a name-version wins: the installed one normally,
        // the repository one with `available` (so rebuilt packages get replaced).
        let all: Vec<(&ApkPackage, bool)> = if opts.available {
            repo_copies.chain(installed_copies).collect()
        } else {
            installed_copies.chain(repo_copies).collect()
        };
        for (pkg, is_installed) in all {
            if !is_installed && !arch_ok(pkg) {
                continue;
            }
            // A package in an untagged repository is available unpinned,
            // whatever tagged repository also carries it.
            let tag = pkg.repo_tag.as_deref();
            // apk identifies packages by checksum: a second stanza with an
            // identity already seen is the same package, now known in one
            // more repository.
            if let Some(id) = &pkg.checksum {
                if let Some(&i) = seen_ids.get(id) {
                    merge_copy(&mut cands[i], pkg, is_installed);
                    continue;
                }
                seen_ids.insert(id, cands.len());
            }
            let key = (pkg.name.as_str(), pkg.version.as_str());
            if let Some(&i) = seen.get(&key) {
                // A different build of the same version in a repository of
                // another tag is a package of its own (`name@tag` picks it).
                let other_repo_build = !is_installed
                    && !cands[i].installed
                    && !cands[i].tags.contains(&tag)
                    && pkg.checksum.is_some();
                if !other_repo_build {
                    merge_copy(&mut cands[i], pkg, is_installed);
                    continue;
                }
            } else {
                seen.insert(key, cands.len());
            }
            let mut owned = vec![pkg.name.as_str()];
            owned.extend(
                pkg.provides
                    .iter()
                    .filter(|p| p.version.is_some())
                    .map(|p| p.name.as_str()),
            );
            cands.push(Candidate {
                pkg,
                installed: is_installed,
                tags: BTreeSet::from([tag]),
                in_repo: !is_installed,
                owned,
            });
        }
        // `apk upgrade --available`: an installed package no repository
        // carries any more gives way to one that is available (a downgrade
        // if need be).
        if opts.available {
            let available: BTreeSet<&str> = cands
                .iter()
                .filter(|c| c.in_repo)
                .map(|c| c.pkg.name.as_str())
                .collect();
            cands.retain(|c| c.in_repo || !available.contains(c.pkg.name.as_str()));
        }
        let mut by_name: BTreeMap<&'a str, Vec<usize>> = BTreeMap::new();
        let mut install_if = Vec::new();
        for (i, c) in cands.iter().enumerate() {
            by_name.entry(c.pkg.name.as_str()).or_default().push(i);
            for p in &c.pkg.provides {
                if p.name != c.pkg.name {
                    by_name.entry(p.name.as_str()).or_default().push(i);
                }
            }
            if !c.pkg.install_if.is_empty() {
                install_if.push(i);
            }
        }
        for list in by_name.values_mut() {
            list.dedup();
        }
        // World entries naming real packages are settled before virtual names,
        // so an explicitly requested provider also satisfies the virtual one.
        let mut queue: Vec<(Dependency, Option<usize>, Vec<String>)> = world
            .iter()
            .map(|d| (d.clone(), None, d.tag.iter().cloned().collect()))
            .collect();
        queue.sort_by_key(|(d, _, _)| {
            let real = by_name
                .get(d.name.as_str())
                .is_some_and(|l| l.iter().any(|&c| cands[c].pkg.name == d.name));
            (!real, d.conflict)
        });
        Solver {
            cands,
            by_name,
            install_if,
            opts: opts.clone(),
            world: world.to_vec(),
            world_len: world.len(),
            selected: Vec::new(),
            queue,
            selected_tags: Vec::new(),
            deferred: BTreeSet::new(),
            steps: 0,
            first_failure: None,
        }
    }

    fn who(&self, requirer: Option<usize>) -> String {
        requirer.map_or_else(|| "world".to_string(), |i| self.cands[i].pkg.id())
    }

    /// Does candidate `c` satisfy positive dependency `d` (ignoring tags)?
    fn provides_dep(&self, c: usize, d: &Dependency) -> bool {
        let pkg = self.cands[c].pkg;
        if pkg.name == d.name && d.version_matches(Some(&pkg.version)) {
            return true;
        }
        pkg.provides
            .iter()
            .any(|p| p.name == d.name && d.version_matches(provided_version(p)))
    }

    /// Packages from a tagged repository are only allowed when pinned
    /// (`name@tag`), directly or inherited from the package that needs them.
    fn tag_allows(&self, c: usize, tags: &[String]) -> bool {
        self.cands[c]
            .tags
            .iter()
            .any(|t| t.is_none_or(|t| tags.iter().any(|a| a == t)))
    }

    fn satisfied(&self, d: &Dependency) -> bool {
        self.selected.iter().any(|&s| self.provides_dep(s, d))
    }

    /// A conflict `!name…` from `owner` hits candidate `c`?
    fn conflict_hits(&self, conflict: &Dependency, owner: Option<usize>, c: usize) -> bool {
        owner != Some(c) && self.provides_dep(c, conflict)
    }

    fn all_deps(&self) -> impl Iterator<Item = (&Dependency, Option<usize>)> {
        self.world.iter().map(|d| (d, None)).chain(
            self.selected
                .iter()
                .flat_map(|&s| self.cands[s].pkg.depends.iter().map(move |d| (d, Some(s)))),
        )
    }

    fn self_consistent(&self, c: usize) -> bool {
        let pkg = self.cands[c].pkg;
        let owned = &self.cands[c].owned;
        let unique: BTreeSet<&str> = owned.iter().copied().collect();
        let provides_own_name_unversioned = pkg
            .provides
            .iter()
            .any(|p| p.name == pkg.name && p.version.is_none());
        unique.len() == owned.len() && !provides_own_name_unversioned
    }

    /// Can `c` join the current selection without breaking anything known?
    fn compatible(&self, c: usize) -> bool {
        self.incompatibility(c).is_none()
    }

    /// Why `c` cannot join the current selection (the first broken rule).
    fn incompatibility(&self, c: usize) -> Option<String> {
        if !self.self_consistent(c) {
            return Some("it conflicts with itself (provides a name twice)".to_string());
        }
        let owned = &self.cands[c].owned;
        for &s in &self.selected {
            if let Some(n) = self.cands[s].owned.iter().find(|n| owned.contains(n)) {
                return Some(format!("{} already provides {n}", self.cands[s].pkg.id()));
            }
        }
        for (d, owner) in self.all_deps() {
            let broken = if d.conflict {
                self.conflict_hits(d, owner, c)
            } else {
                owned.contains(&d.name.as_str()) && !self.provides_dep(c, d)
            };
            if broken {
                return Some(format!("breaks {}[{d}]", self.who(owner)));
            }
        }
        for d in self.cands[c].pkg.depends.iter().filter(|d| d.conflict) {
            if let Some(&s) = self
                .selected
                .iter()
                .find(|&&s| self.conflict_hits(d, Some(c), s))
            {
                return Some(format!(
                    "its [{d}] conflicts with {}",
                    self.cands[s].pkg.id()
                ));
            }
        }
        None
    }

    /// Candidates for `d` in apk's preference order.
    fn candidates(&self, d: &Dependency, tags: &[String]) -> Vec<usize> {
        let Some(list) = self.by_name.get(d.name.as_str()) else {
            return Vec::new();
        };
        // With --latest apk picks the newest provider before looking at
        // the version constraint, and fails if that one does not fit.
        let latest = self.opts.latest && d.tag.is_none() && tags.is_empty();
        let mut out: Vec<usize> = list
            .iter()
            .copied()
            .filter(|&c| (latest || self.provides_dep(c, d)) && self.tag_allows(c, tags))
            .filter(|&c| {
                // A virtual name (unversioned provide) is only auto-selected when
                // the provider declares a priority.
                let pkg = self.cands[c].pkg;
                pkg.name == d.name
                    || pkg.provider_priority.is_some()
                    || pkg
                        .provides
                        .iter()
                        .any(|p| p.name == d.name && p.version.is_some())
            })
            .collect();
        out.sort_by(|&a, &b| self.prefer(a, b, d));
        if latest {
            if let Some(&best) = out.first() {
                out.retain(|&c| self.rank(c, best, d) == Ordering::Equal);
                // Among equals apk prefers one without errors.
                out.sort_by_key(|&c| !self.provides_dep(c, d));
            }
        }
        out
    }

    /// The version under which candidate `c` provides `name` (None: unversioned).
    fn provided_as<'b>(&'b self, c: usize, name: &str) -> Option<&'b str> {
        let pkg = self.cands[c].pkg;
        if pkg.name == name {
            return Some(&pkg.version);
        }
        pkg.provides
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.version.as_deref())
    }

    /// Is `c` a provider of a name being deleted (apk's `APK_SOLVERF_REMOVE`)?
    fn removing(&self, c: usize) -> bool {
        let pkg = self.cands[c].pkg;
        self.opts
            .removing
            .iter()
            .any(|n| *n == pkg.name || pkg.provides.iter().any(|p| p.name == *n))
    }

    /// apk's `compare_providers` order: preferred pinning, keep installed
    /// (unless upgrading or removing, and for unversioned virtual names only
    /// within one package name), newest version of the requested name, newest
    /// version of the package itself, provider_priority, installed.
    fn rank(&self, a: usize, b: usize, d: &Dependency) -> Ordering {
        let (ca, cb) = (&self.cands[a], &self.cands[b]);
        let removing = self.removing(a) || self.removing(b);
        let (va, vb) = (self.provided_as(a, &d.name), self.provided_as(b, &d.name));
        // apk's pinning_preferred: a `name@tag` request prefers that tag's
        // repository; anything else (including dependencies that inherit a
        // pin, which only *allows* the tagged repository) prefers untagged.
        let preferred = |c: &Candidate| c.tags.contains(&d.tag.as_deref());
        let upgrading = |c: &Candidate| self.opts.upgrade_names.contains(&c.pkg.name);
        let keep_installed = !self.opts.upgrade
            && !self.opts.latest
            && !upgrading(ca)
            && !upgrading(cb)
            && !removing
            && (ca.pkg.name == cb.pkg.name || va.is_some() || vb.is_some());
        let by_installed = |keep: bool| {
            if keep {
                cb.installed.cmp(&ca.installed)
            } else {
                Ordering::Equal
            }
        };
        preferred(cb)
            .cmp(&preferred(ca))
            .then_with(|| by_installed(keep_installed))
            .then_with(|| match (vb, va) {
                (Some(vb), Some(va)) => version::compare(vb, va),
                _ => Ordering::Equal,
            })
            .then_with(|| {
                if ca.pkg.name == cb.pkg.name {
                    version::compare(&cb.pkg.version, &ca.pkg.version)
                } else {
                    Ordering::Equal
                }
            })
            .then_with(|| {
                cb.pkg
                    .provider_priority
                    .unwrap_or(0)
                    .cmp(&ca.pkg.provider_priority.unwrap_or(0))
            })
            .then_with(|| by_installed(!removing))
    }

    /// `rank` with a total tie-break (apk's is repository order).
    fn prefer(&self, a: usize, b: usize, d: &Dependency) -> Ordering {
        self.rank(a, b, d)
            .then_with(|| self.cands[a].pkg.name.cmp(&self.cands[b].pkg.name))
    }

    fn record_failure(&mut self, d: &Dependency, requirer: Option<usize>, tags: &[String]) {
        if self.first_failure.is_some() {
            return;
        }
        let dependency = d.to_string();
        let required_by = self.who(requirer);
        if let Some(&newest) = self.candidates(d, tags).first() {
            if self.opts.latest && !self.provides_dep(newest, d) {
                let why = self
                    .incompatibility(newest)
                    .unwrap_or_else(|| format!("it does not satisfy {d}"));
                self.first_failure = Some(SolveError::Unsatisfiable {
                    dependency,
                    required_by,
                    reason: format!(
                        "{} (the newest, as --latest asks): {why}",
                        self.cands[newest].pkg.id()
                    ),
                });
                return;
            }
        }
        let all: Vec<usize> = self
            .by_name
            .get(d.name.as_str())
            .map(|l| {
                l.iter()
                    .copied()
                    .filter(|&c| self.provides_dep(c, d))
                    .collect()
            })
            .unwrap_or_default();
        let err = if all.is_empty() {
            SolveError::NoSuchPackage {
                dependency,
                required_by,
            }
        } else if self
            .candidates(d, &d.tag.iter().cloned().collect::<Vec<_>>())
            .is_empty()
            && all.iter().all(|&c| self.cands[c].pkg.name != d.name)
        {
            SolveError::AmbiguousVirtual {
                dependency,
                required_by,
                providers: all
                    .iter()
                    .map(|&c| self.cands[c].pkg.name.clone())
                    .collect(),
            }
        } else {
            let tried: Vec<String> = all
                .iter()
                .map(|&c| {
                    let why = self
                        .incompatibility(c)
                        .unwrap_or_else(|| "its own dependencies cannot be met".to_string());
                    format!("{}: {why}", self.cands[c].pkg.id())
                })
                .collect();
            SolveError::Unsatisfiable {
                dependency,
                required_by,
                reason: tried.join("; "),
            }
        };
        self.first_failure = Some(err);
    }

    fn select(&mut self, c: usize, tags: Vec<String>) -> usize {
        self.selected.push(c);
        let qlen = self.queue.len();
        for d in &self.cands[c].pkg.depends {
            let mut dep_tags = tags.clone();
            dep_tags.extend(d.tag.iter().cloned());
            self.queue.push((d.clone(), Some(c), dep_tags));
        }
        self.selected_tags.push(tags);
        qlen
    }

    fn unselect(&mut self, qlen: usize) {
        self.deferred.split_off(&qlen);
        self.selected.pop();
        self.selected_tags.pop();
        self.queue.truncate(qlen);
    }

    fn search(&mut self, mut pos: usize) -> Result<bool, SolveError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(SolveError::TooComplex(MAX_STEPS));
        }
        while pos < self.queue.len() {
            let (d, requirer, tags) = self.queue[pos].clone();
            if d.conflict {
                let hit = self
                    .selected
                    .iter()
                    .copied()
                    .find(|&s| self.conflict_hits(&d, requirer, s));
                if let Some(s) = hit {
                    if self.first_failure.is_none() {
                        self.first_failure = Some(SolveError::Unsatisfiable {
                            dependency: d.to_string(),
                            required_by: self.who(requirer),
                            reason: format!("conflicts with {}", self.cands[s].pkg.id()),
                        });
                    }
                    return Ok(false);
                }
                pos += 1;
                continue;
            }
            if self.satisfied(&d) {
                pos += 1;
                continue;
            }
            let candidates = self.candidates(&d, &tags);
            // A virtual name nothing auto-selects may still be satisfied by a
            // provider that a later dependency pulls in: look at it again last.
            if candidates.is_empty() && pos + 1 < self.queue.len() && !self.deferred.contains(&pos)
            {
                let entry = self.queue[pos].clone();
                self.queue.push(entry);
                self.deferred.insert(self.queue.len() - 1);
                pos += 1;
                continue;
            }
            for c in candidates {
                if !self.provides_dep(c, &d) || !self.compatible(c) {
                    continue;
                }
                let qlen = self.select(c, tags.clone());
                if self.search(pos + 1)? {
                    return Ok(true);
                }
                self.unselect(qlen);
            }
            self.record_failure(&d, requirer, &tags);
            return Ok(false);
        }
        self.try_install_if(pos)
    }

    /// Tags an install_if package inherits from the packages that trigger it.
    fn install_if_tags(&self, c: usize) -> Vec<String> {
        let mut tags = Vec::new();
        for d in self.cands[c].pkg.install_if.iter().filter(|d| !d.conflict) {
            for (i, &s) in self.selected.iter().enumerate() {
                if self.provides_dep(s, d) {
                    tags.extend(self.selected_tags[i].iter().cloned());
                }
            }
        }
        tags
    }

    fn install_if_triggered(&self, c: usize) -> bool {
        let pkg = self.cands[c].pkg;
        !self.selected.contains(&c)
            && self.tag_allows(c, &self.install_if_tags(c))
            && !self
                .selected
                .iter()
                .any(|&s| self.cands[s].pkg.name == pkg.name)
            && pkg.install_if.iter().all(|d| {
                if d.conflict {
                    !self.satisfied(&Dependency {
                        conflict: false,
                        ..d.clone()
                    })
                } else {
                    self.satisfied(d)
                }
            })
    }

    /// With all dependencies met, add packages whose install_if now holds.
    fn try_install_if(&mut self, pos: usize) -> Result<bool, SolveError> {
        let mut triggered: Vec<usize> = self
            .install_if
            .iter()
            .copied()
            .filter(|&c| self.install_if_triggered(c))
            .collect();
        triggered.sort_by(|&a, &b| {
            let d = Dependency::any(&self.cands[a].pkg.name);
            self.cands[a]
                .pkg
                .name
                .cmp(&self.cands[b].pkg.name)
                .then_with(|| self.prefer(a, b, &d))
        });
        for c in triggered {
            if !self.compatible(c) {
                continue;
            }
            let saved_failure = self.first_failure.take();
            let qlen = self.select(c, self.install_if_tags(c));
            if self.search(pos)? {
                return Ok(true);
            }
            self.unselect(qlen);
            self.first_failure = saved_failure;
        }
        Ok(true)
    }

    /// Dependencies first (depth-first post-order from the sorted world), then
    /// whatever was pulled in by install_if, in selection order.
    /// The tag selected candidate `c` is installed under: none when an
    /// untagged repository carries it, else the first tag its selection
    /// allowed that carries it.
    fn pinned_tag(&self, c: usize) -> Option<String> {
        let cand = &self.cands[c];
        if cand.tags.contains(&None) {
            return None;
        }
        let pos = self.selected.iter().position(|&s| s == c)?;
        self.selected_tags[pos]
            .iter()
            .find(|t| cand.tags.contains(&Some(t.as_str())))
            .cloned()
            .or_else(|| cand.pkg.repo_tag.clone())
    }

    fn install_order(&self) -> Vec<usize> {
        let mut done = BTreeSet::new();
        let mut order = Vec::new();
        let mut roots: Vec<&Dependency> = self.world[..self.world_len]
            .iter()
            .filter(|d| !d.conflict)
            .collect();
        roots.sort_by(|a, b| a.name.cmp(&b.name));
        for d in roots {
            if let Some(s) = self.provider_in_selection(d) {
                self.visit(s, &mut done, &mut order);
            }
        }
        for &s in &self.selected {
            self.visit(s, &mut done, &mut order);
        }
        order
    }

    /// Selected install_if packages whose triggers are all already in `order`.
    fn ready_install_if(&self, done: &BTreeSet<usize>, order: &[usize]) -> Vec<usize> {
        self.selected
            .iter()
            .copied()
            .filter(|s| !done.contains(s) && !self.cands[*s].pkg.install_if.is_empty())
            .filter(|&s| {
                self.cands[s]
                    .pkg
                    .install_if
                    .iter()
                    .filter(|d| !d.conflict)
                    .all(|d| {
                        self.provider_in_selection(d)
                            .is_some_and(|p| order.contains(&p))
                    })
            })
            .collect()
    }

    fn provider_in_selection(&self, d: &Dependency) -> Option<usize> {
        self.selected
            .iter()
            .copied()
            .find(|&s| self.provides_dep(s, d))
    }

    fn visit(&self, s: usize, done: &mut BTreeSet<usize>, order: &mut Vec<usize>) {
        if !done.insert(s) {
            return;
        }
        for d in &self.cands[s].pkg.depends {
            // A conflict orders the other package of that name first, as apk does.
            let target = if d.conflict {
                self.provider_in_selection(&Dependency::any(&d.name))
            } else {
                self.provider_in_selection(d)
            };
            if let Some(dep) = target {
                self.visit(dep, done, order);
            }
        }
        order.push(s);
        // apk installs an install_if package as soon as its triggers are in.
        for iif in self.ready_install_if(done, order) {
            self.visit(iif, done, order);
        }
    }
}

/// Resolves `world` against the repository packages plus the installed ones.
pub fn solve_with<'a>(
    repo: &'a [ApkPackage],
    installed: &'a [ApkPackage],
    world: &[Dependency],
    opts: &SolveOptions,
) -> Result<Solution<'a>, SolveError> {
    let mut solver = Solver::new(repo, installed, world, opts);
    if solver.search(0)? {
        let solver = prefer_install_if(solver, repo, installed, world, opts)?;
        let order = solver.install_order();
        let pinned = order.iter().map(|&i| solver.pinned_tag(i)).collect();
        let install = order.into_iter().map(|i| solver.cands[i].pkg).collect();
        return Ok(Solution { install, pinned });
    }
    Err(solver.first_failure.take().unwrap_or_else(|| {
        let conflict = world
            .iter()
            .find(|d| d.conflict)
            .map(|d| d.to_string())
            .unwrap_or_default();
        SolveError::Conflict {
            world_conflict: conflict,
            package: "the selected packages".to_string(),
        }
    }))
}

/// apk prefers solutions that include triggered install_if packages even if
/// that means another provider for some dependency: retry with each missed
/// one required, and keep the retry if it still triggers.
fn prefer_install_if<'a>(
    mut best: Solver<'a>,
    repo: &'a [ApkPackage],
    installed: &'a [ApkPackage],
    world: &[Dependency],
    opts: &SolveOptions,
) -> Result<Solver<'a>, SolveError> {
    let mut forced: Vec<Dependency> = Vec::new();
    let mut rejected: BTreeSet<String> = BTreeSet::new();
    loop {
        let missed = best
            .install_if
            .iter()
            .copied()
            .filter(|&c| best.install_if_triggered(c))
            .map(|c| best.cands[c].pkg.name.clone())
            .find(|n| !rejected.contains(n));
        let Some(name) = missed else {
            return Ok(best);
        };
        rejected.insert(name.clone());
        let mut extended = world.to_vec();
        extended.extend(forced.iter().cloned());
        extended.push(Dependency::any(&name));
        let mut retry = Solver::new(repo, installed, &extended, opts);
        retry.world_len = world.len();
        if retry.search(0)? {
            let still_triggered = retry.selected.iter().any(|&s| {
                let pkg = retry.cands[s].pkg;
                pkg.name == name
                    && pkg.install_if.iter().filter(|d| !d.conflict).all(|d| {
                        retry
                            .selected
                            .iter()
                            .any(|&o| o != s && retry.provides_dep(o, d))
                    })
            });
            if still_triggered {
                forced.push(Dependency::any(&name));
                best = retry;
            }
        }
    }
}

impl<'a> Solution<'a> {
    /// Changes relative to `installed`: removals first, then installs/upgrades
    /// in install order (as `apk` prints them).
    pub fn changes(&self, installed: &'a [ApkPackage]) -> Vec<Change<'a>> {
        let kept = |p: &ApkPackage| self.install.iter().any(|n| n.name == p.name);
        let mut out: Vec<Change<'a>> = removal_order(installed, &kept)
            .into_iter()
            .map(Change::Remove)
            .collect();
        for (i, &new) in self.install.iter().enumerate() {
            let pin = self.pinned.get(i).cloned().flatten();
            match installed.iter().find(|o| o.name == new.name) {
                None => out.push(Change::Install(new)),
                Some(old) => match version::compare(&new.version, &old.version) {
                    Ordering::Greater => out.push(Change::Upgrade(old, new)),
                    Ordering::Less => out.push(Change::Downgrade(old, new)),
                    Ordering::Equal if new.checksum.is_some() && new.checksum != old.checksum => {
                        out.push(Change::Replace(old, new))
                    }
                    Ordering::Equal if pin != old.repo_tag => out.push(Change::Repin(new, pin)),
                    Ordering::Equal => {}
                },
            }
        }
        out
    }
}

/// Index of the installed package that satisfies `d`, if any.
fn installed_provider(pkgs: &[ApkPackage], d: &Dependency) -> Option<usize> {
    pkgs.iter().position(|p| {
        (p.name == d.name && d.version_matches(Some(&p.version)))
            || p.provides
                .iter()
                .any(|q| q.name == d.name && d.version_matches(q.version.as_deref()))
    })
}

/// The order apk removes packages in: starting from installed packages nobody
/// requires (walking the database from its end), each removal is preceded by
/// its installed dependents and followed by dependencies left without requirers.
fn removal_order<'a>(
    installed: &'a [ApkPackage],
    kept: &dyn Fn(&ApkPackage) -> bool,
) -> Vec<&'a ApkPackage> {
    let deps_of = |i: usize| -> Vec<usize> {
        installed[i]
            .depends
            .iter()
            .filter(|d| !d.conflict)
            .filter_map(|d| installed_provider(installed, d))
            .filter(|&j| j != i)
            .collect()
    };
    let mut requirers = vec![0usize; installed.len()];
    for i in 0..installed.len() {
        for j in deps_of(i) {
            requirers[j] += 1;
        }
    }
    struct Walk<'w, 'a> {
        installed: &'a [ApkPackage],
        kept: &'w dyn Fn(&ApkPackage) -> bool,
        requirers: Vec<usize>,
        done: Vec<bool>,
        out: Vec<&'a ApkPackage>,
        deps: Vec<Vec<usize>>,
    }
    fn remove(w: &mut Walk, i: usize) {
        if w.done[i] || (w.kept)(&w.installed[i]) {
            return;
        }
        w.done[i] = true;
        let dependents: Vec<usize> = (0..w.installed.len())
            .filter(|&k| w.deps[k].contains(&i))
            .collect();
        for k in dependents {
            remove(w, k);
        }
        w.out.push(&w.installed[i]);
        for j in w.deps[i].clone() {
            w.requirers[j] = w.requirers[j].saturating_sub(1);
            if w.requirers[j] == 0 {
                remove(w, j);
            }
        }
    }
    let mut w = Walk {
        installed,
        kept,
        deps: (0..installed.len()).map(deps_of).collect(),
        requirers,
        done: vec![false; installed.len()],
        out: Vec::new(),
    };
    for i in (0..installed.len()).rev() {
        if w.requirers[i] == 0 {
            remove(&mut w, i);
        }
    }
    // Anything still unvisited (dependency cycles) goes last, in database order.
    for i in 0..installed.len() {
        remove(&mut w, i);
    }
    w.out
}

/// `pkgs` ordered dependencies first (depth-first post-order, input order as tie-break).
pub fn dependency_order(pkgs: &[ApkPackage]) -> Vec<&ApkPackage> {
    fn visit<'a>(
        i: usize,
        pkgs: &'a [ApkPackage],
        done: &mut Vec<bool>,
        out: &mut Vec<&'a ApkPackage>,
    ) {
        if done[i] {
            return;
        }
        done[i] = true;
        for d in pkgs[i].depends.iter().filter(|d| !d.conflict) {
            let provider = pkgs.iter().position(|p| {
                (p.name == d.name && d.version_matches(Some(&p.version)))
                    || p.provides
                        .iter()
                        .any(|q| q.name == d.name && d.version_matches(q.version.as_deref()))
            });
            if let Some(j) = provider {
                visit(j, pkgs, done, out);
            }
        }
        out.push(&pkgs[i]);
    }
    let mut done = vec![false; pkgs.len()];
    let mut out = Vec::with_capacity(pkgs.len());
    for i in 0..pkgs.len() {
        visit(i, pkgs, &mut done, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::apk::index::parse_index_text;

    fn names(s: &Solution) -> Vec<String> {
        s.install.iter().map(|p| p.id()).collect()
    }

    #[test]
    fn backtracks_over_version_constraints() {
        let repo = parse_index_text(
            "t",
            "P:a\nV:2\nD:b c\n\nP:a\nV:3\nD:b c d>1.5\n\nP:b\nV:1\nD:c d<2.0\n\nP:c\nV:1\nD:d>1.0\n\nP:d\nV:1.0\n\nP:d\nV:1.5\n\nP:d\nV:2.0\n",
        )
        .unwrap();
        let s = solve(&repo, &[], &[Dependency::any("a")]).unwrap();
        assert_eq!(names(&s), ["d-1.5", "c-1", "b-1", "a-2"]);
        let err = solve(&repo, &[], &[Dependency::parse("a>2").unwrap()]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("d>1.5 (required by a-3)"), "{msg}");
        assert!(msg.contains("d-2.0: breaks b-1[d<2.0]"), "{msg}");
    }

    #[test]
    fn world_conflict_is_named() {
        let repo = parse_index_text("t", "P:a\nV:1\nD:b\n\nP:b\nV:1\n").unwrap();
        let world = [Dependency::any("a"), Dependency::parse("!b").unwrap()];
        let err = solve(&repo, &[], &world).unwrap_err().to_string();
        assert!(err.contains("!b") && err.contains("b-1"), "{err}");
    }

    #[test]
    fn upgrade_prefers_provider_priority_over_installed() {
        let repo = parse_index_text(
            "t",
            "P:busybox-binsh\nV:1\np:/bin/sh\nk:100\n\nP:dash-binsh\nV:1\np:/bin/sh\nk:60\n",
        )
        .unwrap();
        let installed = vec![repo[1].clone()];
        let world = [Dependency::any("/bin/sh")];
        let keep = solve(&repo, &installed, &world).unwrap();
        assert_eq!(
            names(&keep),
            ["busybox-binsh-1"],
            "unversioned virtual: priority wins"
        );
        let opts = SolveOptions {
            upgrade: true,
            ..Default::default()
        };
        let up = solve_with(&repo, &installed, &world, &opts).unwrap();
        assert_eq!(names(&up), ["busybox-binsh-1"]);
    }

    #[test]
    fn deleting_a_provider_drops_the_installed_preference() {
        let repo =
            parse_index_text("t", "P:wine\nV:2\n\nP:wine-staging\nV:10\np:wine=1\n").unwrap();
        let installed = vec![repo[1].clone()];
        let world = [Dependency::any("wine")];
        let kept = solve(&repo, &installed, &world).unwrap();
        assert_eq!(names(&kept), ["wine-staging-10"]);
        let opts = SolveOptions {
            removing: vec!["wine-staging".into()],
            ..Default::default()
        };
        let s = solve_with(&repo, &installed, &world, &opts).unwrap();
        assert_eq!(names(&s), ["wine-2"]);
    }

    #[test]
    fn latest_fails_instead_of_falling_back() {
        let repo = parse_index_text("t", "P:a\nV:1\n\nP:a\nV:2\n").unwrap();
        let world = [Dependency::parse("a<2").unwrap()];
        assert_eq!(names(&solve(&repo, &[], &world).unwrap()), ["a-1"]);
        let opts = SolveOptions {
            latest: true,
            ..Default::default()
        };
        let err = solve_with(&repo, &[], &world, &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a-2") && err.contains("a<2"), "{err}");
    }

    #[test]
    fn missing_package_is_named() {
        let err = solve(&[], &[], &[Dependency::any("nope")]).unwrap_err();
        assert_eq!(
            err,
            SolveError::NoSuchPackage {
                dependency: "nope".into(),
                required_by: "world".into()
            }
        );
    }
}
