//! Stage 3: verified .debs fetched and unpacked into the tree on every
//! core, with dpkg's Replaces rule decided in plan order.
use super::*;

/// Fetches and unpacks planned packages, and knows across calls which
/// package each path came from.
///
/// A non-directory path shipped by two packages is an error unless one
/// Replaces the other; then the replacing package's copy wins (the replaced
/// one skips it, or the replacer is unpacked once more at the end of the
/// call, in plan order, so the result never depends on which thread
/// finished last), and the path leaves the replaced package's file list, as
/// dpkg does. A replacer and the package it replaces are unpacked in the
/// same call, or the replacer in an earlier one ([`essential_first`]
/// arranges that).
pub(super) struct Unpacker<'a> {
    pkgs: &'a [&'a BinaryPackage],
    fetcher: &'a Fetcher,
    /// In plan order, one per package.
    items: &'a [FetchItem],
    /// Path → index of the package whose copy is on disk.
    owners: Mutex<HashMap<Vec<u8>, usize>>,
    /// Set by the first failure: what has not started yet is skipped.
    failed: AtomicBool,
    /// dpkg's path-exclude/path-include rules (empty: keep everything).
    filter: &'a slim::PathFilter,
}

impl<'a> Unpacker<'a> {
    pub(super) fn new(
        pkgs: &'a [&'a BinaryPackage],
        fetcher: &'a Fetcher,
        items: &'a [FetchItem],
        filter: &'a slim::PathFilter,
    ) -> Self {
        Unpacker {
            pkgs,
            fetcher,
            items,
            owners: Mutex::new(HashMap::new()),
            failed: AtomicBool::new(false),
            filter,
        }
    }

    /// A path this package may write: written, or left out by the filter
    /// (dpkg checks ownership first, then the filter).
    fn write_or_filter(&self, path: &RelPath, kind: EntryKind) -> Claimed {
        if !self.filter.is_empty() && self.filter.skips(&path.to_absolute(), kind) {
            Claimed::Filter
        } else {
            Claimed::Write
        }
    }

    /// Fetches the packages `which` (plan indices) and unpacks each into
    /// `root` as soon as it is verified. The result is in the order of
    /// `which`.
    pub(super) fn unpack(
        &self,
        root: &Root,
        which: &[usize],
        workers: Workers,
    ) -> Result<Vec<UnpackedPackage>, BootstrapError> {
        let pkgs = self.pkgs;
        // (replacer, replaced, path) for every path taken over.
        let taken: Mutex<Vec<(usize, usize, Vec<u8>)>> = Mutex::new(Vec::new());
        // Every file comes from the fetcher, checked against the signed index.
        let opts = UnpackOptions {
            integrity: decompress::Integrity::AlreadyVerified,
            ..UnpackOptions::default()
        };
        let claim_for = |i: usize| {
            let (owners, taken) = (&self.owners, &taken);
            move |path: &RelPath, kind: EntryKind| -> Result<Claimed, String> {
                if kind == EntryKind::Dir {
                    return Ok(self.write_or_filter(path, kind));
                }
                let mut map = owners.lock().unwrap_or_else(|e| e.into_inner());
                let Some(&other) = map.get(path.as_bytes()) else {
                    map.insert(path.as_bytes().to_vec(), i);
                    return Ok(self.write_or_filter(path, kind));
                };
                let mut taken = taken.lock().unwrap_or_else(|e| e.into_inner());
                if replaces(pkgs[i], pkgs[other]) {
                    map.insert(path.as_bytes().to_vec(), i);
                    taken.push((i, other, path.as_bytes().to_vec()));
                    Ok(self.write_or_filter(path, kind))
                } else if replaces(pkgs[other], pkgs[i]) {
                    Ok(Claimed::Skip)
                } else {
                    Err(format!(
                        "trying to overwrite {path}, which is also in package {} (and {} does not Replace it)",
                        pkgs[other].name, pkgs[i].name
                    ))
                }
            }
        };

        // Largest first: the biggest archives take longest to unpack, so
        // starting them first keeps every core busy until the end (ties
        // stay in plan order). `order[k]` is a position in `which`.
        let mut order: Vec<usize> = (0..which.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(self.items[which[k]].size));
        let ordered: Vec<FetchItem> = order
            .iter()
            .map(|&k| self.items[which[k]].clone())
            .collect();

        // Per package, once handed over: its cached file and how unpacking went.
        type Slot = Mutex<Option<(PathBuf, Result<UnpackedPackage, BootstrapError>)>>;
        let slots: Vec<Slot> = which.iter().map(|_| Mutex::new(None)).collect();
        let failed = &self.failed;
        let (ready_tx, ready_rx) = mpsc::channel::<(usize, PathBuf)>();
        let ready_rx = Mutex::new(ready_rx);
        // Downloads run on the fetcher's threads; these workers unpack what
        // they hand over, so downloading and unpacking overlap.
        let fetched = std::thread::scope(|scope| {
            let threads = match workers {
                Workers::AllCores => rayon::current_num_threads().max(1),
                Workers::Background => 1,
            };
            for _ in 0..threads {
                scope.spawn(|| {
                    if workers == Workers::Background {
                        lower_this_threads_priority();
                    }
                    loop {
                        let next = ready_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((k, path)) = next else { return };
                        if failed.load(Ordering::Relaxed) {
                            continue;
                        }
                        let result = dpkgdb::unpack_deb(root, &path, &opts, &claim_for(which[k]))
                            .map_err(BootstrapError::from);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        *slots[k].lock().unwrap_or_else(|e| e.into_inner()) = Some((path, result));
                    }
                });
            }
            let ready_tx = ready_tx;
            let fetched = self.fetcher.fetch_each(&ordered, &|n, path| {
                !failed.load(Ordering::Relaxed) && ready_tx.send((order[n], path)).is_ok()
            });
            drop(ready_tx);
            fetched
        });
        fetched?;

        // An unpack error is the cause; packages skipped after it are not.
        let mut unpacked = Vec::with_capacity(which.len());
        let mut paths = Vec::with_capacity(which.len());
        let mut skipped = None;
        for (slot, &i) in slots.into_iter().zip(which) {
            match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some((path, result)) => {
                    unpacked.push(result?);
                    paths.push(path);
                }
                None => {
                    skipped.get_or_insert(&self.items[i]);
                }
            }
        }
        if let Some(item) = skipped {
            return Err(crate::fetch::FetchError::Cancelled {
                url: crate::fetch::redact(&item.url),
            }
            .into());
        }
        let position = |i: usize| which.iter().position(|&w| w == i);
        let taken = taken.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut again: Vec<usize> = taken.iter().map(|(replacer, _, _)| *replacer).collect();
        again.sort_unstable();
        again.dedup();
        for i in again {
            let owned_by_others = |path: &RelPath, kind: EntryKind| -> Result<Claimed, String> {
                let map = self.owners.lock().unwrap_or_else(|e| e.into_inner());
                Ok(match map.get(path.as_bytes()) {
                    Some(&owner) if owner != i => Claimed::Skip,
                    _ => self.write_or_filter(path, kind),
                })
            };
            if let Some(k) = position(i) {
                unpacked[k] = dpkgdb::unpack_deb(root, &paths[k], &opts, &owned_by_others)?;
            }
        }
        for (_, replaced, path) in &taken {
            debug_assert!(position(*replaced).is_some(), "replaced in an earlier call");
            if let Some(k) = position(*replaced) {
                unpacked[k]
                    .files
                    .retain(|f| f.path.as_bytes() != path.as_slice());
            }
        }
        Ok(unpacked)
    }
}

/// How [`Unpacker::unpack`] spreads its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Workers {
    /// One thread per core: nothing else is running.
    AllCores,
    /// One thread at the lowest priority, so the maintainer scripts
    /// running meanwhile (the build's critical path) never wait for it: it
    /// only takes what they leave idle.
    Background,
}

/// Nice 19 for the calling thread (Linux keeps a nice value per thread;
/// threads it starts inherit it). Best effort: at worst it competes.
fn lower_this_threads_priority() {
    let tid = rustix::thread::gettid();
    let _ = rustix::process::setpriority_process(Some(tid), 19);
}

fn replaces(a: &BinaryPackage, b: &BinaryPackage) -> bool {
    a.replaces
        .iter()
        .any(|d| d.alternatives.iter().any(|atom| atom.name == b.name))
}
