//! Leaving nothing behind on Ctrl-C or SIGTERM.
//!
//! Temporary rootfs directories and half-written outputs are registered here
//! while they exist. On SIGINT/SIGTERM a watcher thread removes whatever is
//! still registered and exits with 128+signal. Sandboxed processes need no
//! entry: they are tied to us by PR_SET_PDEATHSIG and their mounts live in a
//! private mount namespace, so both vanish when we exit.
//!
//! The build's own threads keep running while the watcher cleans up, so
//! they must not undo its work: once interrupted, a thread that registers a
//! new path, reaches a [`checkpoint`] (before a rename into place) or panics
//! stops there for good, and the watcher removes paths again until nothing
//! new appears. The process ends exactly once: the watcher and [`commit`]
//! (the command's last step, before its result is printed) both take
//! `ENDING` and never give it back, so either the interrupt wins and the
//! exit status is 128+signal, or the command's result stands.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rustix::fs::{FlockOperation, Mode, OFlags};

static REGISTERED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Set by the watcher before it removes anything.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Read-held while a thread makes a temporary path and registers it, or
/// renames one into place ([`creating`]); the watcher takes it for writing
/// before it removes anything, so no path is made but not yet registered,
/// or half moved, while it looks.
static CREATING: std::sync::RwLock<()> = std::sync::RwLock::new(());

std::thread_local! {
    /// How deep in [`creating`] scopes this thread is: it must not stop
    /// there, holding `CREATING`.
    static CREATING_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}
/// Taken for good by whichever ends the process: the watcher or [`commit`].
static ENDING: Mutex<()> = Mutex::new(());
/// Makes the temporary names of [`replace_atomically`] unique per call.
static TEMP_FILES: AtomicU64 = AtomicU64::new(0);

/// Makes `dest` whole or not at all: `fill` creates a temporary file next
/// to it (same directory, so the rename is atomic; named `.tmp-…`, which
/// the cache sweeps recognise), which then replaces `dest`. On any error
/// the temporary file is removed and `dest` is left as it was, so a reader
/// sees the old file or the new one, never a part.
pub fn replace_atomically(
    dest: &Path,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = dest.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a file name", dest.display()),
        )
    })?;
    let n = TEMP_FILES.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(format!(".tmp-{}-{n}-", std::process::id()));
    tmp_name.push(name);
    let tmp = dest.with_file_name(tmp_name);
    let result = fill(&tmp).and_then(|()| std::fs::rename(&tmp, dest));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`replace_atomically`] with `bytes` as the new content.
pub fn write_atomically(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_atomically(dest, |tmp| std::fs::write(tmp, bytes))
}

/// A path removed when the guard drops, and also if the process is
/// interrupted while the guard is alive.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    keep: bool,
    /// For [`TempPath::locked_dir`]: the directory's flock, released only
    /// after the directory is removed (fields drop after `Drop::drop`).
    lock: Option<OwnedFd>,
}

impl TempPath {
    /// Registers `path` (which may not exist yet) for removal.
    pub fn new(path: PathBuf) -> TempPath {
        register(&path);
        TempPath {
            path,
            keep: false,
            lock: None,
        }
    }

    /// Creates the directory `path` (mode 0755) and holds an exclusive flock
    /// on it while the guard lives, so [`remove_abandoned`] can tell it from
    /// one whose process died without cleaning up.
    pub fn locked_dir(path: PathBuf) -> std::io::Result<TempPath> {
        creating(|| {
            let mut guard = TempPath::new(path);
            rustix::fs::mkdir(guard.path(), Mode::from_raw_mode(0o755))?;
            guard.lock = Some(lock_dir(guard.path())?);
            Ok(guard)
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops tracking the path without removing it (it was renamed into
    /// place, or the user asked to keep it).
    pub fn persist(mut self) -> PathBuf {
        checkpoint();
        self.keep = true;
        unregister(&self.path);
        self.path.clone()
    }

    /// Keeps the path when the guard drops, but leaves it registered: an
    /// interrupt before the command [`commit`]s still removes it. For a
    /// build's finished outputs, which only the whole build makes good.
    pub fn keep_unless_interrupted(mut self) {
        self.keep = true;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            remove(&self.path);
            unregister(&self.path);
        }
    }
}

/// Registers a temporary path that another owner (a `tempfile` handle)
/// removes or renames into place, so that it is also removed if the process
/// is interrupted first: an interruption exits without running destructors.
/// Dropping the guard only unregisters the path.
#[derive(Debug)]
pub struct Tracked {
    path: PathBuf,
}

impl Tracked {
    pub fn new(path: &Path) -> Tracked {
        register(path);
        Tracked {
            path: path.to_owned(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        unregister(&self.path);
    }
}

/// Registers `path`, then stops the calling thread for good if the process
/// is being interrupted: registered first, the path is removed by the
/// watcher whether it saw the entry or not.
fn register(path: &Path) {
    REGISTERED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_owned());
    if CREATING_DEPTH.get() == 0 {
        checkpoint();
    }
}

/// Runs `make`, which makes a temporary path and registers it (a
/// [`TempPath`] or [`Tracked`] for a `tempfile` it creates) or renames one
/// into place, as one step an interrupt cannot split: the watcher waits
/// for it, and once interrupted the thread stops before starting it or
/// right after it.
pub fn creating<T>(make: impl FnOnce() -> T) -> T {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            CREATING_DEPTH.set(CREATING_DEPTH.get() - 1);
        }
    }
    let outer = CREATING_DEPTH.get() == 0;
    if outer {
        checkpoint();
    }
    let result = {
        let _held = outer.then(|| CREATING.read().unwrap_or_else(|e| e.into_inner()));
        CREATING_DEPTH.set(CREATING_DEPTH.get() + 1);
        let _depth = Depth;
        make()
    };
    if outer {
        checkpoint();
    }
    result
}

/// Before a step that makes a result visible (a rename into place): stops
/// the calling thread for good if the process is being interrupted, so it
/// cannot put back what the watcher removes.
pub fn checkpoint() {
    if INTERRUPTED.load(Ordering::SeqCst) && CREATING_DEPTH.get() == 0 {
        stop_thread();
    }
}

fn stop_thread() -> ! {
    loop {
        std::thread::park();
    }
}

/// The command is done: from here on an interrupt changes nothing, and if
/// one is already being handled, this never returns (the watcher exits).
/// Call once, from the main thread, before printing the command's result.
pub fn commit() {
    std::mem::forget(ENDING.lock().unwrap_or_else(|e| e.into_inner()));
    checkpoint();
}

fn unregister(path: &Path) {
    let mut reg = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = reg.iter().rposition(|p| p == path) {
        reg.remove(i);
    }
}

/// How long a directory must have existed before [`remove_abandoned`] may
/// take it: far longer than the instant between its `mkdir` and its lock.
const ABANDONED_AFTER: Duration = Duration::from_secs(10);

fn lock_dir(dir: &Path) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?;
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)?;
    Ok(fd)
}

/// Removes the directories named `prefix*` in `parent` that were made by
/// [`TempPath::locked_dir`] in a process that is gone (killed with SIGKILL,
/// by the OOM killer): nobody holds their lock. A directory named
/// `<dir>-staging` goes with `<dir>`. A flock dies with its process in any
/// PID namespace, so unlike a PID in the name it cannot be mistaken.
/// Returns what was removed.
pub fn remove_abandoned(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    remove_abandoned_after(parent, prefix, ABANDONED_AFTER)
}

fn remove_abandoned_after(parent: &Path, prefix: &str, min_age: Duration) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(prefix) {
            continue;
        }
        let owner = parent.join(name.strip_suffix("-staging").unwrap_or(name));
        if is_abandoned(&owner, min_age) {
            let path = entry.path();
            remove(&path);
            removed.push(path);
        }
    }
    removed
}

/// Old enough and unlocked, or gone (for a staging directory's owner).
fn is_abandoned(dir: &Path, min_age: Duration) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return true;
    };
    if !meta.is_dir() {
        return false;
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = now.saturating_sub(u64::try_from(meta.ctime()).unwrap_or(u64::MAX));
    age >= min_age.as_secs() && lock_dir(dir).is_ok()
}

/// Removes a file or a directory tree without following symlinks
/// (`remove_dir_all` does not follow them). A rootfs holds thousands of
/// files, so the subtrees two levels down (`usr/lib`, `usr/share`, …) are
/// removed on all cores first.
fn remove(path: &Path) {
    use rayon::prelude::*;
    if is_real_dir(path) {
        let subtrees: Vec<PathBuf> = children(path)
            .into_iter()
            .flat_map(|child| match is_real_dir(&child) {
                true => children(&child),
                false => vec![child],
            })
            .collect();
        subtrees
            .par_iter()
            .with_max_len(1)
            .for_each(|p| remove_one(p));
    }
    remove_one(path);
}

fn remove_one(path: &Path) {
    if is_real_dir(path) {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Starts the watcher thread. Call once, early, from the binary.
pub fn install_signal_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use std::io::Write;
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    // A thread that fails because the watcher removed its files must not
    // report it: it stops, and the watcher decides the exit status.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        checkpoint();
        default_hook(info);
    }));
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // After commit() the command's result stands.
                let _ending = ENDING.lock().unwrap_or_else(|e| e.into_inner());
                INTERRUPTED.store(true, Ordering::SeqCst);
                // Paths being made are registered, renames are done.
                let _creating = CREATING.write().unwrap_or_else(|e| e.into_inner());
                // Not eprintln!: it panics when stderr is gone (a closed
                // pipe), and a panic here would skip the cleanup and exit.
                let _ = writeln!(std::io::stderr(), "rootstrap: interrupted, cleaning up");
                remove_registered_while_new_appear();
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// Removes every registered path, again and again while the build's threads
/// (each stopped at its next registration or checkpoint) may still create
/// or register one, until a round finds nothing new and nothing back.
/// Sequential: rayon's workers may be among the stopped threads.
fn remove_registered_while_new_appear() {
    let mut all: Vec<PathBuf> = Vec::new();
    // Rounds end as soon as one is quiet; the bound (about 5 s) only keeps
    // a thread that never reaches a checkpoint from holding the exit.
    for _ in 0..250 {
        let new = std::mem::take(&mut *REGISTERED.lock().unwrap_or_else(|e| e.into_inner()));
        let quiet = new.is_empty();
        all.extend(new);
        let mut present = false;
        for p in all.iter().rev() {
            if std::fs::symlink_metadata(p).is_ok() {
                present = true;
                remove_one(p);
            }
        }
        if quiet && !present {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_replacement_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("index.json");
        std::fs::write(&dest, b"old").unwrap();
        let err = replace_atomically(&dest, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        write_atomically(&dest, b"new").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["index.json"], "a temporary file was left behind");
    }

    #[test]
    fn removes_on_drop_and_keeps_on_persist() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("sub")).unwrap();
        drop(TempPath::new(a.clone()));
        assert!(!a.exists());

        let b = dir.path().join("b");
        std::fs::write(&b, b"x").unwrap();
        let kept = TempPath::new(b.clone()).persist();
        assert!(kept.exists());
        assert!(!REGISTERED.lock().unwrap().contains(&b));
    }

    /// A locked directory whose lock is gone, as after its process died.
    fn abandoned_dir(path: PathBuf) {
        let mut guard = TempPath::locked_dir(path).unwrap();
        drop(guard.lock.take());
        guard.persist();
    }

    #[test]
    fn a_held_tree_and_its_staging_directory_are_not_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let tree = TempPath::locked_dir(dir.path().join(".rs-tree-1")).unwrap();
        std::fs::create_dir(dir.path().join(".rs-tree-1-staging")).unwrap();
        let removed = remove_abandoned_after(dir.path(), ".rs-tree-", Duration::ZERO);
        assert!(removed.is_empty(), "{removed:?}");
        assert!(tree.path().is_dir());
        drop(tree);
        assert!(!dir.path().join(".rs-tree-1").exists());
    }

    #[test]
    fn trees_of_dead_builds_go_with_their_staging_directories() {
        let dir = tempfile::tempdir().unwrap();
        abandoned_dir(dir.path().join(".rs-tree-1"));
        std::fs::create_dir_all(dir.path().join(".rs-tree-1/usr/lib")).unwrap();
        std::fs::create_dir(dir.path().join(".rs-tree-1-staging")).unwrap();
        // A staging directory whose tree is already gone.
        std::fs::create_dir(dir.path().join(".rs-tree-2-staging")).unwrap();
        std::fs::create_dir(dir.path().join("someone-elses")).unwrap();
        let mut removed = remove_abandoned_after(dir.path(), ".rs-tree-", Duration::ZERO);
        removed.sort();
        let names: Vec<_> = removed.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(
            names,
            [".rs-tree-1", ".rs-tree-1-staging", ".rs-tree-2-staging"]
        );
        assert!(dir.path().join("someone-elses").is_dir());
    }

    #[test]
    fn a_fresh_unlocked_directory_is_left_alone() {
        // The instant between a tree's mkdir and its lock must not count.
        let dir = tempfile::tempdir().unwrap();
        abandoned_dir(dir.path().join(".rs-tree-1"));
        assert!(remove_abandoned(dir.path(), ".rs-tree-").is_empty());
        assert!(dir.path().join(".rs-tree-1").is_dir());
    }

    #[test]
    fn removal_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let t = dir.path().join("t");
        std::fs::create_dir(&t).unwrap();
        std::os::unix::fs::symlink(&outside, t.join("link")).unwrap();
        // Symlinks at the depths removed in parallel, beside real subtrees.
        std::fs::create_dir_all(t.join("usr/lib/deep")).unwrap();
        std::fs::write(t.join("usr/lib/deep/f"), b"x").unwrap();
        std::fs::write(t.join("usr/file"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, t.join("usr/link")).unwrap();
        std::os::unix::fs::symlink(&outside, t.join("usr/lib/link")).unwrap();
        drop(TempPath::new(t.clone()));
        assert!(!t.exists());
        assert!(outside.join("keep").exists());
    }
}
