//! Package selection the way debootstrap/mmdebstrap + apt do it: a variant
//! picks the root set, then Depends and Pre-Depends (never Recommends) are
//! closed over, choosing alternatives and virtual-package providers
//! deterministically, and the result is put in an install order.
//!
//! Variants (mmdebstrap's definitions, from its manual):
//! - `essential`: every `Essential: yes` package, plus dependencies;
//! - `minbase` (mmdebstrap's `required`): essential + every
//!   `Priority: required` package + `apt`;
//! - `buildd`: minbase + `build-essential`;
//! - `important`: minbase + every `Priority: important` package.
//!
//! One version per package name is considered (apt's "candidate"): the
//! highest, or the one pinned with `name=version`. A dependency whose
//! candidate is too old is not satisfied by an older version, exactly as in
//! apt. Conflicts and Breaks between selected packages are an error (this
//! solver does not backtrack to another alternative to avoid them).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use super::packages::{parse_stanza_at, BinaryPackage, MultiArch, Priority, StanzaSummary};
use super::relation::{Atom, Dependency};
use super::version::{Op, Version};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("the package universe is for architecture {universe}, but {requested} was requested")]
    ArchMismatch { universe: String, requested: String },
    #[error("no package named {name} is available (required by: {chain})")]
    NoSuchPackage { name: String, chain: String },
    #[error("version {version} of {name} is not available (available: {available})")]
    PinMissing {
        name: String,
        version: String,
        available: String,
    },
    #[error("{package} {field} {dependency} but {reason} (required by: {chain})")]
    Unsatisfiable {
        package: String,
        field: &'static str,
        dependency: String,
        reason: String,
        chain: String,
    },
    #[error("{package} {kind} {relation}, which {other} satisfies; both are selected ({chains})")]
    Conflict {
        package: String,
        kind: &'static str,
        relation: String,
        other: String,
        /// Why each of the two is selected.
        chains: String,
    },
}

/// Which base set to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Essential,
    Minbase,
    Buildd,
    Important,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Essential => "essential",
            Variant::Minbase => "minbase",
            Variant::Buildd => "buildd",
            Variant::Important => "important",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variant {0:?} (expected essential, minbase, buildd or important)")]
pub struct VariantError(pub String);

impl std::str::FromStr for Variant {
    type Err = VariantError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "essential" => Ok(Variant::Essential),
            "minbase" => Ok(Variant::Minbase),
            "buildd" => Ok(Variant::Buildd),
            "important" => Ok(Variant::Important),
            other => Err(VariantError(other.to_string())),
        }
    }
}

/// What to install: a variant plus extra packages, optionally pinned
/// (`name=version`).
#[derive(Debug, Clone)]
pub struct Request {
    pub variant: Variant,
    pub include: Vec<(String, Option<Version>)>,
    pub arch: String,
}

/// Maps keyed by package name. foldhash rather than the default SipHash:
/// building a universe hashes ~90k names, which SipHash made a sizeable
/// part of the 80 ms it took; the keys come from a signed index, so
/// flooding resistance buys nothing here.
type NameMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// All package versions installable on one native architecture (plus
/// `all`), indexed by name and by provided name.
///
/// A universe built from index text ([`Universe::from_indexes`]) keeps the
/// text and parses a stanza fully only when it is first looked at: a
/// minbase resolution touches a few hundred of trixie's 69k stanzas, so the
/// whole parsed index (~145 MB) never exists.
#[derive(Debug, Clone)]
pub struct Universe {
    arch: String,
    /// Index texts the lazily parsed slots point into.
    texts: Vec<String>,
    slots: Vec<Slot>,
    /// Versions of each name, highest first.
    by_name: NameMap<Vec<usize>>,
    /// Package versions providing each virtual name.
    providers: NameMap<Vec<usize>>,
}

/// One package version: what variant selection needs, and the full
/// package once parsed.
#[derive(Debug, Clone)]
struct Slot {
    essential: bool,
    priority: Priority,
    /// (text, byte range) of the stanza; unused when built parsed.
    stanza: Option<(usize, Range<usize>)>,
    parsed: OnceLock<Box<BinaryPackage>>,
}

impl Universe {
    /// Keeps the packages for `arch` and `all`; a version listed twice
    /// (e.g. an `all` package in two Packages files) is kept once.
    pub fn new(packages: Vec<BinaryPackage>, arch: &str) -> Universe {
        let mut u = Universe::empty(arch, Vec::new());
        for p in packages {
            if p.arch != arch && p.arch != "all" {
                continue;
            }
            let i = u.slots.len();
            u.index(i, &p.name, p.provides.iter().map(|a| a.name.as_str()));
            u.slots.push(Slot {
                essential: p.essential,
                priority: p.priority,
                stanza: None,
                parsed: OnceLock::from(Box::new(p)),
            });
        }
        u.order_versions();
        u
    }

    /// Builds a universe over Packages index texts, each with the stanza
    /// summaries [`summarize_packages`](super::packages::summarize_packages)
    /// made of it (which checked every stanza). Same selection and
    /// de-duplication as [`Universe::new`].
    pub fn from_indexes(indexes: Vec<(String, Vec<StanzaSummary>)>, arch: &str) -> Universe {
        let mut texts = Vec::with_capacity(indexes.len());
        let mut summaries = Vec::with_capacity(indexes.len());
        for (text, s) in indexes {
            texts.push(text);
            summaries.push(s);
        }
        let mut u = Universe::empty(arch, texts);
        // Sized once: growing by doubling would briefly hold both copies.
        let total = summaries.iter().map(Vec::len).sum();
        u.slots.reserve_exact(total);
        u.by_name.reserve(total);
        let texts = std::mem::take(&mut u.texts);
        for (t, stanzas) in summaries.into_iter().enumerate() {
            for s in stanzas {
                let text = &texts[t];
                if s.arch(text) != arch && s.arch(text) != "all" {
                    continue;
                }
                let i = u.slots.len();
                u.index(i, s.name(text), s.provides.iter().map(String::as_str));
                u.slots.push(Slot {
                    essential: s.essential,
                    priority: s.priority,
                    stanza: Some((t, s.range)),
                    parsed: OnceLock::new(),
                });
            }
        }
        u.texts = texts;
        u.order_versions();
        u
    }

    fn empty(arch: &str, texts: Vec<String>) -> Universe {
        Universe {
            arch: arch.to_string(),
            texts,
            slots: Vec::new(),
            by_name: NameMap::default(),
            providers: NameMap::default(),
        }
    }

    fn index<'n>(&mut self, i: usize, name: &str, provides: impl Iterator<Item = &'n str>) {
        match self.by_name.get_mut(name) {
            Some(versions) => versions.push(i),
            None => {
                self.by_name.insert(name.to_owned(), vec![i]);
            }
        }
        for provided in provides {
            match self.providers.get_mut(provided) {
                Some(list) => list.push(i),
                None => {
                    self.providers.insert(provided.to_owned(), vec![i]);
                }
            }
        }
    }

    /// Sorts each name's versions highest first (ties by architecture) and
    /// drops repeated (version, architecture) pairs, keeping the first.
    /// Parses only names listed more than once.
    fn order_versions(&mut self) {
        let mut dropped = HashSet::new();
        let mut by_name = std::mem::take(&mut self.by_name);
        for versions in by_name.values_mut().filter(|v| v.len() > 1) {
            versions.sort_by(|&a, &b| {
                let (pa, pb) = (self.get(a), self.get(b));
                pb.version.cmp(&pa.version).then(pa.arch.cmp(&pb.arch))
            });
            let mut kept: Vec<usize> = Vec::with_capacity(versions.len());
            for &i in versions.iter() {
                let p = self.get(i);
                let same =
                    |&k: &usize| self.get(k).version == p.version && self.get(k).arch == p.arch;
                if kept.iter().any(same) {
                    dropped.insert(i);
                } else {
                    kept.push(i);
                }
            }
            *versions = kept;
        }
        self.by_name = by_name;
        if !dropped.is_empty() {
            for list in self.providers.values_mut() {
                list.retain(|i| !dropped.contains(i));
            }
        }
    }

    /// The package in slot `i`, parsed on first use.
    fn get(&self, i: usize) -> &BinaryPackage {
        let slot = &self.slots[i];
        slot.parsed.get_or_init(|| {
            let (t, range) = slot
                .stanza
                .clone()
                .expect("a slot without a stanza is built parsed");
            // summarize_packages accepted this very stanza, and parsing is
            // deterministic, so this cannot fail.
            Box::new(
                parse_stanza_at(&self.texts[t], range)
                    .expect("stanza was checked when the universe was built"),
            )
        })
    }

    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// How many package versions (after de-duplication).
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every version of `name`, highest first.
    pub fn versions(&self, name: &str) -> impl Iterator<Item = &BinaryPackage> + '_ {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| self.get(i))
    }

    /// Every package version that lists `name` in its Provides.
    pub fn providers(&self, name: &str) -> impl Iterator<Item = &BinaryPackage> + '_ {
        self.providers
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| self.get(i))
    }

    /// The highest version of `name`.
    pub fn candidate(&self, name: &str) -> Option<&BinaryPackage> {
        self.versions(name).next()
    }
}

/// The resolved package set in install order.
#[derive(Debug, Clone)]
pub struct Plan<'u> {
    /// Dependencies (Pre-Depends and Depends) before their dependents, as
    /// far as cycles allow; ties sorted by name.
    pub packages: Vec<&'u BinaryPackage>,
    /// For each package name, why it is in the plan
    /// (e.g. `minbase → apt → libc6`).
    pub why: BTreeMap<String, String>,
}

/// Who pulled a package in.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Variant,
    Include,
    Dependency(usize),
}

struct Resolver<'u> {
    u: &'u Universe,
    arch: &'u str,
    variant: Variant,
    /// Name → pinned package index.
    pins: HashMap<String, usize>,
    selected: HashMap<&'u str, usize>,
    selected_providers: HashMap<&'u str, Vec<usize>>,
    origin: HashMap<usize, Origin>,
    queue: VecDeque<usize>,
}

/// Resolves `req` against `universe`.
pub fn resolve<'u>(universe: &'u Universe, req: &Request) -> Result<Plan<'u>, ResolveError> {
    if req.arch != universe.arch {
        return Err(ResolveError::ArchMismatch {
            universe: universe.arch.clone(),
            requested: req.arch.clone(),
        });
    }
    let mut r = Resolver {
        u: universe,
        arch: &universe.arch,
        variant: req.variant,
        pins: HashMap::new(),
        selected: HashMap::new(),
        selected_providers: HashMap::new(),
        origin: HashMap::new(),
        queue: VecDeque::new(),
    };
    r.apply_pins(&req.include)?;
    for root in r.variant_roots()? {
        r.select(root, Origin::Variant);
    }
    r.add_includes(&req.include)?;
    r.close()?;
    r.check_conflicts()?;
    Ok(r.plan())
}

impl<'u> Resolver<'u> {
    fn pkg(&self, i: usize) -> &'u BinaryPackage {
        self.u.get(i)
    }

    fn apply_pins(&mut self, include: &[(String, Option<Version>)]) -> Result<(), ResolveError> {
        for (name, version) in include {
            let Some(version) = version else { continue };
            let versions = self.u.by_name.get(name.as_str());
            let found = versions
                .into_iter()
                .flatten()
                .copied()
                .find(|&i| self.u.get(i).version == *version);
            match found {
                Some(i) => {
                    self.pins.insert(name.clone(), i);
                }
                None => {
                    let available: Vec<String> = self
                        .u
                        .versions(name)
                        .map(|p| p.version.to_string())
                        .collect();
                    return Err(ResolveError::PinMissing {
                        name: name.clone(),
                        version: version.to_string(),
                        available: if available.is_empty() {
                            "none".into()
                        } else {
                            available.join(", ")
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// apt's candidate: the pinned version, else the highest.
    fn candidate(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.pins.get(name) {
            return Some(i);
        }
        self.u.by_name.get(name).and_then(|v| v.first().copied())
    }

    /// Candidates of every name whose (Essential, Priority) match `keep`,
    /// in any order. Reads only the slots' summaries, so the index is not
    /// parsed for it.
    fn candidates_where(&self, keep: impl Fn(bool, Priority) -> bool) -> Vec<usize> {
        self.u
            .by_name
            .keys()
            .filter_map(|n| self.candidate(n))
            .filter(|&i| keep(self.u.slots[i].essential, self.u.slots[i].priority))
            .collect()
    }

    /// The variant's root set, sorted by name so selection is deterministic.
    fn variant_roots(&self) -> Result<Vec<usize>, ResolveError> {
        let mut roots = self.candidates_where(|essential, priority| match self.variant {
            Variant::Essential => essential,
            Variant::Minbase | Variant::Buildd => essential || priority == Priority::Required,
            Variant::Important => {
                essential || matches!(priority, Priority::Required | Priority::Important)
            }
        });
        if self.variant != Variant::Essential {
            roots.push(self.named_root("apt")?);
        }
        if self.variant == Variant::Buildd {
            roots.push(self.named_root("build-essential")?);
        }
        roots.sort_by(|&a, &b| self.pkg(a).name.cmp(&self.pkg(b).name));
        roots.dedup();
        Ok(roots)
    }

    fn named_root(&self, name: &str) -> Result<usize, ResolveError> {
        self.candidate(name)
            .ok_or_else(|| ResolveError::NoSuchPackage {
                name: name.to_string(),
                chain: self.variant.name().to_string(),
            })
    }

    /// Each `--include` is treated as a dependency of the request, so a
    /// virtual name picks a provider the same way a Depends would.
    fn add_includes(&mut self, include: &[(String, Option<Version>)]) -> Result<(), ResolveError> {
        for (name, version) in include {
            let mut atom = Atom::named(name);
            atom.constraint = version.clone().map(|v| (Op::Eq, v));
            if self.find_selected(&atom, None).is_some() {
                continue;
            }
            match self.choose(&atom, None) {
                Ok(i) => self.select(i, Origin::Include),
                Err(reason) => {
                    if self.u.by_name.contains_key(name.as_str())
                        || self.u.providers.contains_key(name.as_str())
                    {
                        return Err(ResolveError::Unsatisfiable {
                            package: "the request".into(),
                            field: "includes",
                            dependency: atom.to_string(),
                            reason,
                            chain: "include".into(),
                        });
                    }
                    return Err(ResolveError::NoSuchPackage {
                        name: name.clone(),
                        chain: "include".into(),
                    });
                }
            }
        }
        Ok(())
    }

    fn select(&mut self, i: usize, origin: Origin) {
        let p = self.pkg(i);
        if self.selected.contains_key(p.name.as_str()) {
            return;
        }
        self.selected.insert(&p.name, i);
        for provided in &p.provides {
            self.selected_providers
                .entry(&provided.name)
                .or_default()
                .push(i);
        }
        self.origin.insert(i, origin);
        self.queue.push_back(i);
    }

    /// Breadth-first closure over Pre-Depends then Depends.
    fn close(&mut self) -> Result<(), ResolveError> {
        while let Some(i) = self.queue.pop_front() {
            let p = self.pkg(i);
            for (field, deps) in [
                ("pre-depends on", &p.pre_depends),
                ("depends on", &p.depends),
            ] {
                for dep in deps {
                    self.satisfy(i, field, dep)?;
                }
            }
        }
        Ok(())
    }

    fn applicable<'d>(&self, dep: &'d Dependency) -> Vec<&'d Atom> {
        dep.alternatives
            .iter()
            .filter(|a| a.applies(self.arch))
            .collect()
    }

    fn satisfy(
        &mut self,
        from: usize,
        field: &'static str,
        dep: &Dependency,
    ) -> Result<(), ResolveError> {
        let alternatives = self.applicable(dep);
        if alternatives.is_empty() {
            return Ok(());
        }
        if alternatives
            .iter()
            .any(|a| self.find_selected(a, Some(from)).is_some())
        {
            return Ok(());
        }
        let mut reasons = Vec::new();
        for atom in &alternatives {
            match self.choose(atom, Some(from)) {
                Ok(chosen) => {
                    self.select(chosen, Origin::Dependency(from));
                    return Ok(());
                }
                Err(reason) => reasons.push(reason),
            }
        }
        Err(ResolveError::Unsatisfiable {
            package: self.pkg(from).name.clone(),
            field,
            dependency: dep.to_string(),
            reason: reasons.join("; "),
            chain: self.chain(from),
        })
    }

    /// A selected package satisfying `atom`, if any.
    fn find_selected(&self, atom: &Atom, from: Option<usize>) -> Option<usize> {
        if let Some(&i) = self.selected.get(atom.name.as_str()) {
            if self.real_satisfies(i, atom, from).is_ok() {
                return Some(i);
            }
        }
        self.selected_providers
            .get(atom.name.as_str())
            .into_iter()
            .flatten()
            .copied()
            .find(|&i| self.provides_satisfies(i, atom, from))
    }

    /// The package to install for one alternative: the real package's
    /// candidate, else the best provider; the error is a reason phrase.
    fn choose(&self, atom: &Atom, from: Option<usize>) -> Result<usize, String> {
        let real = self.candidate(&atom.name);
        let real_problem = match real {
            Some(i) => match self
                .real_satisfies(i, atom, from)
                .and_then(|()| self.clash(i).map_or(Ok(()), Err))
            {
                Ok(()) => return Ok(i),
                Err(problem) => Some(problem),
            },
            None => None,
        };
        let mut providers: Vec<usize> = self
            .u
            .providers
            .get(atom.name.as_str())
            .into_iter()
            .flatten()
            .copied()
            // Only a provider that is its own name's candidate can be
            // installed.
            .filter(|&i| self.candidate(&self.pkg(i).name) == Some(i))
            .filter(|&i| self.provides_satisfies(i, atom, from))
            .filter(|&i| self.clash(i).is_none())
            .collect();
        providers.sort_by(|&a, &b| {
            let (pa, pb) = (self.pkg(a), self.pkg(b));
            pa.priority
                .cmp(&pb.priority)
                .then_with(|| pa.name.cmp(&pb.name))
        });
        if let Some(&best) = providers.first() {
            return Ok(best);
        }
        Err(real_problem
            .unwrap_or_else(|| format!("no package or provider of {} is available", atom.name)))
    }

    /// Whether package `i` (named like the atom) meets its version and
    /// architecture requirements; the error is a reason phrase.
    fn real_satisfies(&self, i: usize, atom: &Atom, from: Option<usize>) -> Result<(), String> {
        let p = self.pkg(i);
        if !self.arch_satisfies(p, atom, from) {
            return Err(format!(
                "{} {} (Multi-Arch: {:?}) cannot satisfy {}",
                p.name, p.arch, p.multi_arch, atom
            ));
        }
        if !atom.version_matches(&p.version) {
            let pinned = if self.pins.get(p.name.as_str()) == Some(&i) {
                " (pinned)"
            } else {
                ""
            };
            return Err(format!("only {}{pinned} is available", p.version));
        }
        Ok(())
    }

    /// Whether package `i` provides `atom`. A versioned dependency is only
    /// met by a versioned Provides.
    fn provides_satisfies(&self, i: usize, atom: &Atom, from: Option<usize>) -> bool {
        let p = self.pkg(i);
        let arch_ok = match atom.arch_qual.as_deref() {
            None => true,
            Some("any") => {
                matches!(p.multi_arch, MultiArch::Allowed | MultiArch::Foreign)
                    || self.depender_is_multiarch(from)
            }
            Some(q) => self.arch_named(q, p),
        };
        arch_ok
            && p.provides.iter().any(|provided| {
                provided.name == atom.name
                    && match (&atom.constraint, &provided.constraint) {
                        (None, _) => true,
                        (Some((op, wanted)), Some((_, version))) => version.satisfies(*op, wanted),
                        (Some(_), None) => false,
                    }
            })
    }

    /// dpkg's `archsatisfied` with a universe of native + `all` packages.
    fn arch_satisfies(&self, p: &BinaryPackage, atom: &Atom, from: Option<usize>) -> bool {
        match atom.arch_qual.as_deref() {
            None => true,
            Some("any") => p.multi_arch == MultiArch::Allowed || self.depender_is_multiarch(from),
            Some(q) => self.arch_named(q, p),
        }
    }

    fn depender_is_multiarch(&self, from: Option<usize>) -> bool {
        from.is_some_and(|f| {
            matches!(
                self.pkg(f).multi_arch,
                MultiArch::Allowed | MultiArch::Foreign
            )
        })
    }

    /// `:native` or `:ARCH`; `all` packages count as native.
    fn arch_named(&self, qual: &str, p: &BinaryPackage) -> bool {
        let wanted = if qual == "native" { self.arch } else { qual };
        let actual = if p.arch == "all" {
            self.arch
        } else {
            p.arch.as_str()
        };
        wanted == actual
    }

    /// `minbase → apt → libc6` for package `i`.
    fn chain(&self, i: usize) -> String {
        let mut names = vec![self.pkg(i).name.as_str()];
        let mut at = i;
        let mut seen = HashSet::new();
        let root = loop {
            if !seen.insert(at) {
                break "?";
            }
            match self.origin.get(&at) {
                Some(Origin::Dependency(parent)) => {
                    names.push(&self.pkg(*parent).name);
                    at = *parent;
                }
                Some(Origin::Include) => break "include",
                Some(Origin::Variant) | None => break self.variant.name(),
            }
        };
        names.push(root);
        names.reverse();
        names.join(" → ")
    }

    fn check_conflicts(&self) -> Result<(), ResolveError> {
        let mut selected: Vec<usize> = self.selected.values().copied().collect();
        selected.sort_by(|&a, &b| self.pkg(a).name.cmp(&self.pkg(b).name));
        for &i in &selected {
            let p = self.pkg(i);
            for (kind, atom) in self.negative_atoms(p) {
                if let Some(other) = self.conflicting(i, atom) {
                    return Err(ResolveError::Conflict {
                        package: p.id(),
                        kind,
                        relation: atom.to_string(),
                        other: self.pkg(other).id(),
                        chains: format!(
                            "{} required by: {}; {} required by: {}",
                            p.name,
                            self.chain(i),
                            self.pkg(other).name,
                            self.chain(other)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Why candidate `c` cannot join the selection: it conflicts with (or
    /// breaks) a selected package, or a selected package conflicts with
    /// (or breaks) it. Lets an alternative be skipped the way apt does.
    fn clash(&self, c: usize) -> Option<String> {
        let cand = self.pkg(c);
        for (kind, atom) in self.negative_atoms(cand) {
            if let Some(other) = self.conflicting(c, atom) {
                return Some(format!(
                    "{} {kind} {atom}, which the selected {} satisfies",
                    cand.id(),
                    self.pkg(other).id()
                ));
            }
        }
        let mut selected: Vec<usize> = self
            .selected
            .values()
            .copied()
            .filter(|&s| s != c)
            .collect();
        selected.sort_by(|&a, &b| self.pkg(a).name.cmp(&self.pkg(b).name));
        for s in selected {
            let sel = self.pkg(s);
            for (kind, atom) in self.negative_atoms(sel) {
                let hits_real = atom.name == cand.name && atom.version_matches(&cand.version);
                if hits_real || self.provides_satisfies(c, atom, None) {
                    return Some(format!(
                        "the selected {} {kind} {atom}, which {} satisfies",
                        sel.id(),
                        cand.id()
                    ));
                }
            }
        }
        None
    }

    /// Applicable Conflicts and Breaks atoms of `p`.
    fn negative_atoms<'p>(
        &self,
        p: &'p BinaryPackage,
    ) -> impl Iterator<Item = (&'static str, &'p Atom)> + 'p
    where
        'u: 'p,
    {
        let arch: &'u str = self.arch;
        let conflicts = p
            .conflicts
            .iter()
            .flat_map(|d| &d.alternatives)
            .map(|a| ("conflicts with", a));
        let breaks = p
            .breaks
            .iter()
            .flat_map(|d| &d.alternatives)
            .map(|a| ("breaks", a));
        conflicts
            .chain(breaks)
            .filter(move |(_, a)| a.applies(arch))
    }

    /// A selected package other than `i` matched by `atom`. A package may
    /// conflict with a virtual name it provides itself.
    fn conflicting(&self, i: usize, atom: &Atom) -> Option<usize> {
        if let Some(&j) = self.selected.get(atom.name.as_str()) {
            if j != i && atom.version_matches(&self.pkg(j).version) {
                return Some(j);
            }
        }
        self.selected_providers
            .get(atom.name.as_str())
            .into_iter()
            .flatten()
            .copied()
            .find(|&j| j != i && self.provides_satisfies(j, atom, None))
    }

    /// The first selected package satisfying each applicable dependency of
    /// `i`: the edges of the install order.
    fn prerequisites(&self, i: usize) -> (Vec<usize>, Vec<usize>) {
        let p = self.pkg(i);
        let edges = |deps: &[Dependency]| -> Vec<usize> {
            deps.iter()
                .filter_map(|d| {
                    self.applicable(d)
                        .into_iter()
                        .find_map(|a| self.find_selected(a, Some(i)))
                })
                .filter(|&j| j != i)
                .collect()
        };
        (edges(&p.pre_depends), edges(&p.depends))
    }

    fn plan(&self) -> Plan<'u> {
        let order = install_order(
            self.selected.values().copied().collect(),
            |i| self.prerequisites(i),
            |i| self.pkg(i).name.as_str(),
        );
        let why = order
            .iter()
            .map(|&i| (self.pkg(i).name.clone(), self.chain(i)))
            .collect();
        Plan {
            packages: order.into_iter().map(|i| self.pkg(i)).collect(),
            why,
        }
    }
}

/// Orders nodes so prerequisites come first. Strongly connected groups
/// (dependency cycles) are placed as units, level by level: every group
/// whose prerequisites are placed goes next, groups sorted by their
/// smallest name. Inside a cycle see `order_cycle`.
fn install_order<'n>(
    nodes: Vec<usize>,
    prerequisites: impl Fn(usize) -> (Vec<usize>, Vec<usize>),
    name: impl Fn(usize) -> &'n str,
) -> Vec<usize> {
    let mut nodes = nodes;
    nodes.sort_by(|&a, &b| name(a).cmp(name(b)));
    let local: HashMap<usize, usize> = nodes.iter().enumerate().map(|(l, &n)| (n, l)).collect();
    let to_local = |list: Vec<usize>| -> Vec<usize> {
        list.iter().filter_map(|n| local.get(n).copied()).collect()
    };
    let (pre, dep): (Vec<Vec<usize>>, Vec<Vec<usize>>) = nodes
        .iter()
        .map(|&n| {
            let (p, d) = prerequisites(n);
            (to_local(p), to_local(d))
        })
        .unzip();
    let needs: Vec<Vec<usize>> = pre
        .iter()
        .zip(&dep)
        .map(|(p, d)| p.iter().chain(d).copied().collect())
        .collect();
    let comp = strongly_connected(&needs);
    let ncomp = comp.iter().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
    // Local indices are in name order, so members stay sorted by name.
    for (v, &c) in comp.iter().enumerate() {
        members[c].push(v);
    }
    let comp_needs: Vec<HashSet<usize>> = members
        .iter()
        .enumerate()
        .map(|(c, vs)| {
            vs.iter()
                .flat_map(|&v| needs[v].iter().map(|&w| comp[w]))
                .filter(|&w| w != c)
                .collect()
        })
        .collect();
    let mut placed_comp = vec![false; ncomp];
    let mut order = Vec::with_capacity(nodes.len());
    loop {
        let mut ready: Vec<usize> = (0..ncomp)
            .filter(|&c| !placed_comp[c] && comp_needs[c].iter().all(|&w| placed_comp[w]))
            .collect();
        if ready.is_empty() {
            break;
        }
        ready.sort_by_key(|&c| members[c][0]);
        for c in ready {
            placed_comp[c] = true;
            order.extend(order_cycle(&members[c], &pre, &dep));
        }
    }
    order.into_iter().map(|l| nodes[l]).collect()
}

/// Orders the members of one dependency cycle (sorted by name): members
/// whose in-cycle prerequisites are placed go first; when none is free,
/// the one with the fewest unmet Pre-Depends, then the fewest unmet
/// Depends, then the smallest name breaks the cycle.
fn order_cycle(members: &[usize], pre: &[Vec<usize>], dep: &[Vec<usize>]) -> Vec<usize> {
    let in_cycle: HashSet<usize> = members.iter().copied().collect();
    let mut placed: HashSet<usize> = HashSet::new();
    let unmet = |list: &[usize], placed: &HashSet<usize>| {
        list.iter()
            .filter(|w| in_cycle.contains(w) && !placed.contains(w))
            .count()
    };
    let mut remaining: Vec<usize> = members.to_vec();
    let mut order = Vec::with_capacity(members.len());
    while !remaining.is_empty() {
        let mut level: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&v| unmet(&pre[v], &placed) == 0 && unmet(&dep[v], &placed) == 0)
            .collect();
        if level.is_empty() {
            level.extend(
                remaining
                    .iter()
                    .copied()
                    .min_by_key(|&v| (unmet(&pre[v], &placed), unmet(&dep[v], &placed), v)),
            );
        }
        placed.extend(level.iter().copied());
        remaining.retain(|v| !placed.contains(v));
        order.extend(level);
    }
    order
}

/// Tarjan's algorithm without recursion; returns each node's component
/// number.
fn strongly_connected(succ: &[Vec<usize>]) -> Vec<usize> {
    let n = succ.len();
    let mut index: Vec<Option<usize>> = vec![None; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comp = vec![usize::MAX; n];
    let mut next_index = 0;
    let mut next_comp = 0;
    for root in 0..n {
        if index[root].is_some() {
            continue;
        }
        let mut calls: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = Some(next_index);
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, edge)) = calls.last() {
            if let Some(&w) = succ[v].get(edge) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                match index[w] {
                    None => {
                        index[w] = Some(next_index);
                        low[w] = next_index;
                        next_index += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        calls.push((w, 0));
                    }
                    Some(iw) if on_stack[w] => low[v] = low[v].min(iw),
                    Some(_) => {}
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if Some(low[v]) == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = next_comp;
                    if w == v {
                        break;
                    }
                }
                next_comp += 1;
            }
        }
    }
    comp
}

#[cfg(test)]
mod tests {
    use super::super::packages::{parse_packages, summarize_packages};
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Builds a lazily parsed universe (the production path) from
    /// `name version [arch] | extra fields` lines.
    fn universe(specs: &[(&str, &str, &str)]) -> Universe {
        let text = index_text(specs);
        let stanzas = summarize_packages(&text).unwrap();
        Universe::from_indexes(vec![(text, stanzas)], "amd64")
    }

    /// The same universe built from fully parsed packages.
    fn eager_universe(specs: &[(&str, &str, &str)]) -> Universe {
        Universe::new(parse_packages(&index_text(specs)).unwrap(), "amd64")
    }

    fn index_text(specs: &[(&str, &str, &str)]) -> String {
        let mut text = String::new();
        for (name, version, extra) in specs {
            let arch = if extra.contains("Architecture:") {
                ""
            } else {
                "Architecture: amd64\n"
            };
            text.push_str(&format!(
                "Package: {name}\nVersion: {version}\n{arch}{extra}Filename: pool/{name}_{version}.deb\nSize: 1\nSHA256: {SHA}\n\n"
            ));
        }
        text
    }

    #[test]
    fn lazy_and_parsed_universes_resolve_alike() {
        let specs: &[(&str, &str, &str)] = &[
            ("a", "1", "Essential: yes\nDepends: b | c, v\n"),
            ("b", "2", "Priority: required\nPre-Depends: d (>= 1)\n"),
            ("b", "1", ""),
            ("b", "2", ""),
            ("d", "1", "Architecture: all\n"),
            ("d", "0.5", "Architecture: arm64\n"),
            ("e", "1", "Provides: v (= 1)\nPriority: important\n"),
            ("apt", "3", "Depends: e\n"),
        ];
        let (lazy, eager) = (universe(specs), eager_universe(specs));
        assert_eq!(lazy.len(), 6);
        assert_eq!(eager.len(), lazy.len());
        for variant in [Variant::Essential, Variant::Minbase, Variant::Important] {
            let req = request(variant, &[]);
            let (l, e) = (
                resolve(&lazy, &req).unwrap(),
                resolve(&eager, &req).unwrap(),
            );
            assert_eq!(l.packages, e.packages, "{variant}");
            assert_eq!(l.why, e.why, "{variant}");
        }
        let versions = |u: &Universe| -> Vec<String> {
            u.versions("b").map(|p| p.version.to_string()).collect()
        };
        assert_eq!(versions(&lazy), ["2", "1"]);
        assert_eq!(versions(&eager), versions(&lazy));
        assert_eq!(lazy.providers("v").count(), 1);
    }

    #[test]
    fn lazy_universe_parses_only_what_resolution_touches() {
        let u = universe(&[
            ("a", "1", "Essential: yes\nDepends: b\n"),
            ("b", "1", ""),
            ("unrelated", "1", "Depends: x\n"),
        ]);
        resolve(&u, &request(Variant::Essential, &[])).unwrap();
        let parsed: Vec<usize> = (0..u.slots.len())
            .filter(|&i| u.slots[i].parsed.get().is_some())
            .collect();
        assert_eq!(parsed, [0, 1]);
    }

    fn request(variant: Variant, include: &[(&str, Option<&str>)]) -> Request {
        Request {
            variant,
            include: include
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(|v| Version::parse(v).unwrap())))
                .collect(),
            arch: "amd64".into(),
        }
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.packages.iter().map(|p| p.name.clone()).collect()
    }

    fn sorted(plan: &Plan) -> Vec<String> {
        let mut n = names(plan);
        n.sort();
        n
    }

    fn base() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![
            ("libc6", "2.41-12", "Priority: optional\n"),
            (
                "bash",
                "5.2-1",
                "Essential: yes\nPriority: required\nPre-Depends: libc6\n",
            ),
            (
                "dpkg",
                "1.22",
                "Essential: yes\nPriority: required\nDepends: tar\n",
            ),
            (
                "tar",
                "1.35",
                "Essential: yes\nPriority: required\nPre-Depends: libc6 (>= 2.34)\n",
            ),
            ("mawk", "1.3", "Priority: required\nProvides: awk\n"),
            (
                "apt",
                "3.0",
                "Priority: important\nDepends: libc6 (>= 2.38), gpgv | gpgv2\n",
            ),
            ("gpgv", "2.4", "Priority: important\nDepends: libc6\n"),
            ("gpgv2", "2.4", "Priority: optional\n"),
            ("less", "600", "Priority: important\n"),
            (
                "build-essential",
                "12",
                "Priority: optional\nDepends: make\n",
            ),
            ("make", "4.4", "Priority: optional\nRecommends: less\n"),
        ]
    }

    #[test]
    fn essential_variant_is_essential_packages_and_their_dependencies() {
        let u = universe(&base());
        let req = request(Variant::Essential, &[]);
        let plan = resolve(&u, &req).unwrap();
        assert_eq!(sorted(&plan), ["bash", "dpkg", "libc6", "tar"]);
        assert_eq!(plan.why["libc6"], "essential → bash → libc6");
    }

    #[test]
    fn minbase_adds_required_and_apt() {
        let u = universe(&base());
        let req = request(Variant::Minbase, &[]);
        let plan = resolve(&u, &req).unwrap();
        assert_eq!(
            sorted(&plan),
            ["apt", "bash", "dpkg", "gpgv", "libc6", "mawk", "tar"]
        );
    }

    #[test]
    fn buildd_adds_build_essential_but_not_recommends() {
        let u = universe(&base());
        let req = request(Variant::Buildd, &[]);
        let plan = resolve(&u, &req).unwrap();
        let n = sorted(&plan);
        assert!(n.contains(&"build-essential".to_string()) && n.contains(&"make".to_string()));
        assert!(
            !n.contains(&"less".to_string()),
            "Recommends must not be followed"
        );
    }

    #[test]
    fn important_adds_priority_important() {
        let u = universe(&base());
        let req = request(Variant::Important, &[]);
        let plan = resolve(&u, &req).unwrap();
        assert!(sorted(&plan).contains(&"less".to_string()));
    }

    #[test]
    fn alternatives_prefer_selected_then_first_installable() {
        let mut specs = base();
        specs.push(("x", "1", "Depends: nosuch | gpgv2\n"));
        let u = universe(&specs);
        let req = request(Variant::Minbase, &[("gpgv2", None)]);
        let plan = resolve(&u, &req).unwrap();
        let n = sorted(&plan);
        // Includes are selected before the closure runs, so apt's
        // `gpgv | gpgv2` is already met by gpgv2 and gpgv stays out.
        assert!(
            n.contains(&"gpgv2".to_string()) && !n.contains(&"gpgv".to_string()),
            "{n:?}"
        );
        let req = request(Variant::Essential, &[("x", None)]);
        let plan = resolve(&u, &req).unwrap();
        // `nosuch` does not exist, so the next alternative is taken.
        assert!(sorted(&plan).contains(&"gpgv2".to_string()));
    }

    #[test]
    fn virtual_packages_pick_a_provider_by_priority_then_name() {
        let u = universe(&[
            ("a", "1", "Depends: awk\n"),
            ("original-awk", "1", "Priority: optional\nProvides: awk\n"),
            ("gawk", "1", "Priority: optional\nProvides: awk\n"),
            ("mawk", "1", "Priority: required\nProvides: awk\n"),
        ]);
        let req = request(Variant::Essential, &[("a", None)]);
        assert_eq!(sorted(&resolve(&u, &req).unwrap()), ["a", "mawk"]);
        let u = universe(&[
            ("a", "1", "Depends: awk\n"),
            ("original-awk", "1", "Priority: optional\nProvides: awk\n"),
            ("gawk", "1", "Priority: optional\nProvides: awk\n"),
        ]);
        assert_eq!(sorted(&resolve(&u, &req).unwrap()), ["a", "gawk"]);
    }

    #[test]
    fn versioned_constraints_and_versioned_provides() {
        let u = universe(&[
            ("a", "1", "Depends: libfoo (>= 2)\n"),
            ("libfoo", "1", ""),
            ("libfoo-ng", "3", "Provides: libfoo (= 2.5)\n"),
            ("b", "1", "Depends: virt (>= 1)\n"),
            ("unversioned", "1", "Provides: virt\n"),
        ]);
        let req = request(Variant::Essential, &[("a", None)]);
        assert_eq!(sorted(&resolve(&u, &req).unwrap()), ["a", "libfoo-ng"]);
        let req = request(Variant::Essential, &[("b", None)]);
        let err = resolve(&u, &req).unwrap_err().to_string();
        assert!(err.contains("b depends on virt (>= 1)"), "{err}");
    }

    #[test]
    fn unsatisfiable_error_names_constraint_available_version_and_chain() {
        let mut specs = base();
        specs.retain(|s| s.0 != "apt");
        specs.push(("apt", "3.0", "Depends: libc6 (>= 9.0)\n"));
        let u = universe(&specs);
        let err = resolve(&u, &request(Variant::Minbase, &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "apt depends on libc6 (>= 9.0) but only 2.41-12 is available (required by: minbase → apt)"
        );
    }

    #[test]
    fn missing_dependency_and_missing_include_are_named() {
        let u = universe(&[("a", "1", "Depends: ghost\n")]);
        let err = resolve(&u, &request(Variant::Essential, &[("a", None)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a depends on ghost") && err.contains("include → a"),
            "{err}"
        );
        let err = resolve(&u, &request(Variant::Essential, &[("nothere", None)])).unwrap_err();
        assert!(matches!(err, ResolveError::NoSuchPackage { ref name, .. } if name == "nothere"));
        let err = resolve(&u, &request(Variant::Minbase, &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no package named apt is available (required by: minbase)"
        );
    }

    #[test]
    fn highest_version_wins_unless_pinned() {
        let u = universe(&[
            ("a", "1.0", ""),
            ("a", "2.0", ""),
            ("a", "1.5", ""),
            ("b", "1", "Depends: a (<< 2)\n"),
        ]);
        let plan = resolve(&u, &request(Variant::Essential, &[("a", None)])).unwrap();
        assert_eq!(plan.packages[0].version.to_string(), "2.0");
        let plan = resolve(
            &u,
            &request(Variant::Essential, &[("a", Some("1.5")), ("b", None)]),
        )
        .unwrap();
        assert_eq!(plan.packages[0].version.to_string(), "1.5");
        // Without the pin, b's constraint is not met by the candidate.
        let err = resolve(&u, &request(Variant::Essential, &[("b", None)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only 2.0 is available"), "{err}");
        let err = resolve(&u, &request(Variant::Essential, &[("a", Some("3.0"))])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "version 3.0 of a is not available (available: 2.0, 1.5, 1.0)"
        );
    }

    #[test]
    fn multi_arch_any_needs_allowed() {
        let u = universe(&[
            ("a", "1", "Depends: perl:any\n"),
            ("perl", "5", "Multi-Arch: allowed\n"),
            ("b", "1", "Depends: python3:any\n"),
            ("python3", "3", ""),
            ("c", "1", "Depends: perl:native, perl:amd64\n"),
        ]);
        assert_eq!(
            sorted(&resolve(&u, &request(Variant::Essential, &[("a", None)])).unwrap()),
            ["a", "perl"]
        );
        let err = resolve(&u, &request(Variant::Essential, &[("b", None)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("python3:any") && err.contains("Multi-Arch"),
            "{err}"
        );
        assert_eq!(
            sorted(&resolve(&u, &request(Variant::Essential, &[("c", None)])).unwrap()),
            ["c", "perl"]
        );
    }

    #[test]
    fn conflicts_and_breaks_between_selected_packages_fail() {
        let u = universe(&[
            ("a", "1", "Conflicts: b\n"),
            ("b", "1", ""),
            ("c", "1", "Breaks: d (<< 2)\n"),
            ("d", "1", ""),
            ("e", "1", "Provides: mta\nConflicts: mta\n"),
        ]);
        let err = resolve(
            &u,
            &request(Variant::Essential, &[("a", None), ("b", None)]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("a 1 amd64 conflicts with b") && err.contains("b 1 amd64"),
            "{err}"
        );
        let err = resolve(
            &u,
            &request(Variant::Essential, &[("c", None), ("d", None)]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("breaks d (<< 2)"), "{err}");
        // Conflicting with a virtual name one provides oneself is fine.
        resolve(&u, &request(Variant::Essential, &[("e", None)])).unwrap();
    }

    #[test]
    fn alternatives_skip_candidates_that_conflict_with_the_selection() {
        let u = universe(&[
            ("sysvinit-core", "3", "Conflicts: systemd-sysv\n"),
            ("systemd-sysv", "257", ""),
            ("runit-init", "2", "Breaks: sysvinit-core\n"),
            (
                "init",
                "1",
                "Depends: systemd-sysv | runit-init | sysvinit-core\n",
            ),
            ("x", "1", "Depends: mta\n"),
            ("exim", "4", "Provides: mta\nConflicts: sysvinit-core\n"),
            ("postfix", "3", "Provides: mta\n"),
        ]);
        let req = request(
            Variant::Essential,
            &[("sysvinit-core", None), ("init", None)],
        );
        let plan = resolve(&u, &req).unwrap();
        assert_eq!(sorted(&plan), ["init", "sysvinit-core"]);
        let req = request(Variant::Essential, &[("sysvinit-core", None), ("x", None)]);
        assert_eq!(
            sorted(&resolve(&u, &req).unwrap()),
            ["postfix", "sysvinit-core", "x"]
        );
        let u = universe(&[
            ("a", "1", "Conflicts: b\n"),
            ("c", "1", "Depends: b\n"),
            ("b", "1", ""),
        ]);
        let err = resolve(
            &u,
            &request(Variant::Essential, &[("a", None), ("c", None)]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("c depends on b but the selected a 1 amd64 conflicts with b"),
            "{err}"
        );
    }

    #[test]
    fn arch_restrictions_drop_inapplicable_alternatives() {
        let u = universe(&[
            ("a", "1", "Depends: b [arm64], c [!arm64]\n"),
            ("c", "1", ""),
        ]);
        assert_eq!(
            sorted(&resolve(&u, &request(Variant::Essential, &[("a", None)])).unwrap()),
            ["a", "c"]
        );
    }

    #[test]
    fn duplicate_versions_are_kept_once() {
        let u = universe(&[
            ("a", "1", ""),
            ("b", "1", ""),
            ("a", "1", ""),
            ("a", "2", ""),
        ]);
        assert_eq!(u.len(), 3);
        let versions: Vec<String> = u.versions("a").map(|p| p.version.to_string()).collect();
        assert_eq!(versions, ["2", "1"]);
        assert_eq!(u.candidate("b").unwrap().name, "b");
    }

    #[test]
    fn foreign_architectures_are_ignored() {
        let u = universe(&[
            ("a", "1", "Architecture: arm64\n"),
            ("b", "1", "Architecture: all\nProvides: v\n"),
        ]);
        assert_eq!(u.len(), 1);
        assert_eq!(
            u.providers("v")
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(u.candidate("b").map(|p| p.arch.as_str()), Some("all"));
        let err = resolve(&u, &request(Variant::Essential, &[("a", None)])).unwrap_err();
        assert!(matches!(err, ResolveError::NoSuchPackage { .. }));
        let mut req = request(Variant::Essential, &[]);
        req.arch = "arm64".into();
        assert!(matches!(
            resolve(&u, &req),
            Err(ResolveError::ArchMismatch { .. })
        ));
    }

    #[test]
    fn install_order_puts_dependencies_first_and_breaks_cycles_deterministically() {
        let u = universe(&[
            ("app", "1", "Depends: zlib, libc\n"),
            ("zlib", "1", "Depends: libc\n"),
            ("libc", "1", "Depends: libgcc\n"),
            ("libgcc", "1", "Depends: libc\n"),
            ("tool", "1", "Pre-Depends: app\n"),
        ]);
        let req = request(Variant::Essential, &[("tool", None)]);
        let plan = resolve(&u, &req).unwrap();
        assert_eq!(names(&plan), ["libc", "libgcc", "zlib", "app", "tool"]);
        for _ in 0..3 {
            assert_eq!(names(&resolve(&u, &req).unwrap()), names(&plan));
        }
    }

    #[test]
    fn cycle_breaking_prefers_nodes_without_unmet_pre_depends() {
        let u = universe(&[("a", "1", "Pre-Depends: b\n"), ("b", "1", "Depends: a\n")]);
        let plan = resolve(&u, &request(Variant::Essential, &[("a", None)])).unwrap();
        assert_eq!(names(&plan), ["b", "a"]);
    }

    /// What `apt-get --simulate` installs into an empty system from the
    /// same index: the reference the resolver is checked against. None when
    /// apt-get is not on the host. `ForceEssential ","` stops apt from
    /// treating itself as essential (its default), as mmdebstrap does.
    fn apt_oracle(packages_file: &str, patterns: &[&str]) -> Option<Vec<String>> {
        use std::process::Command;
        let dir = tempfile::tempdir().ok()?;
        let d = dir.path().display().to_string();
        for sub in [
            "lists/partial",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/apt.conf.d",
            "cache/archives/partial",
            "state",
        ] {
            std::fs::create_dir_all(format!("{d}/{sub}")).ok()?;
        }
        std::fs::write(format!("{d}/state/status"), "").ok()?;
        std::fs::write(
            format!("{d}/etc/sources.list"),
            format!("deb [trusted=yes arch=amd64] file:{d}/repo x main\n"),
        )
        .ok()?;
        let list_prefix = format!("{d}/lists/{}_repo_dists_x", d.replace('/', "_"));
        std::fs::copy(
            packages_file,
            format!("{list_prefix}_main_binary-amd64_Packages"),
        )
        .ok()?;
        std::fs::write(
            format!("{list_prefix}_Release"),
            "Suite: x\nArchitectures: amd64\nComponents: main\n",
        )
        .ok()?;
        let conf = format!(
            "Dir::Etc \"{d}/etc\";\nDir::State \"{d}/state\";\nDir::State::Lists \"{d}/lists\";\n\
             Dir::State::status \"{d}/state/status\";\nDir::Cache \"{d}/cache\";\nAPT::Architecture \"amd64\";\n\
             APT::Architectures \"amd64\";\npkgCacheGen::ForceEssential \",\";\nAPT::Install-Recommends \"false\";\nDebug::NoLocking \"true\";\n"
        );
        std::fs::write(format!("{d}/apt.conf"), conf).ok()?;
        let out = Command::new("apt-get")
            .env("APT_CONFIG", format!("{d}/apt.conf"))
            .args(["-s", "install"])
            .args(patterns)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("apt-get failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        names.sort();
        Some(names)
    }

    /// Every variant on the real trixie amd64 index, when a copy is at
    /// hand, compared with apt's own choice from the same index when
    /// apt-get is installed.
    #[test]
    fn resolves_real_trixie_variants_if_present() {
        const PATH: &str = "/tmp/trixie-Packages";
        let Ok(text) = std::fs::read_to_string(PATH) else {
            eprintln!("SKIP: {PATH} not found");
            return;
        };
        let start = std::time::Instant::now();
        let stanzas = summarize_packages(&text).unwrap();
        let u = Universe::from_indexes(vec![(text.clone(), stanzas)], "amd64");
        eprintln!(
            "trixie lazy universe of {} packages built in {:?}",
            u.len(),
            start.elapsed()
        );
        let eager = Universe::new(parse_packages(&text).unwrap(), "amd64");
        assert_eq!(eager.len(), u.len());
        let cases: [(Variant, &[&str]); 4] = [
            (Variant::Essential, &["?essential"]),
            (
                Variant::Minbase,
                &["?essential", "?priority(required)", "apt"],
            ),
            (
                Variant::Buildd,
                &[
                    "?essential",
                    "?priority(required)",
                    "apt",
                    "build-essential",
                ],
            ),
            (
                Variant::Important,
                &[
                    "?essential",
                    "?priority(required)",
                    "apt",
                    "?priority(important)",
                ],
            ),
        ];
        for (variant, patterns) in cases {
            let req = request(variant, &[]);
            let start = std::time::Instant::now();
            let plan = resolve(&u, &req).unwrap();
            let elapsed = start.elapsed();
            let eager_plan = resolve(&eager, &req).unwrap();
            assert_eq!(
                plan.packages, eager_plan.packages,
                "{variant}: lazy vs parsed"
            );
            let n = names(&plan);
            eprintln!(
                "trixie {variant}: {} packages in {elapsed:?}: {}",
                n.len(),
                n.join(" ")
            );
            match apt_oracle(PATH, patterns) {
                Some(expected) => assert_eq!(sorted(&plan), expected, "{variant} differs from apt"),
                None => eprintln!("SKIP: apt-get oracle unavailable; checking the core set only"),
            }
            if variant == Variant::Minbase {
                for core in [
                    "base-files",
                    "base-passwd",
                    "bash",
                    "coreutils",
                    "dpkg",
                    "apt",
                    "libc6",
                    "debianutils",
                    "tar",
                ] {
                    assert!(n.iter().any(|x| x == core), "{core} missing from {n:?}");
                }
                assert!((70..=110).contains(&n.len()), "{} packages", n.len());
                let pos = |name: &str| n.iter().position(|x| x == name);
                assert!(pos("libc6") < pos("coreutils") && pos("libc6") < pos("dpkg"));
                // No Pre-Depends cycle exists here, so every Pre-Depends
                // must be met by a package placed earlier.
                for (at, p) in plan.packages.iter().enumerate() {
                    for d in &p.pre_depends {
                        let earlier = &plan.packages[..at];
                        let met = d.alternatives.iter().any(|a| {
                            earlier.iter().any(|q| {
                                q.name == a.name || q.provides.iter().any(|v| v.name == a.name)
                            })
                        });
                        assert!(met, "{} pre-depends on {d}, not placed before it", p.name);
                    }
                }
            }
        }
    }
}
