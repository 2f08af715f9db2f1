//! Leaving nothing behind on Ctrl-C or SIGTERM.
//!
//! Temporary rootfs directories and half-written outputs are registered here
//! while they exist. On SIGINT/SIGTERM a watcher thread removes whatever is
//! still registered and exits with 128+signal. Sandboxed processes need no
//! entry: they are tied to us by PR_SET_PDEATHSIG and their mounts live in a
//! private mount namespace, so both vanish when we exit.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static REGISTERED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A path removed when the guard drops, and also if the process is
/// interrupted while the guard is alive.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    /// Registers `path` (which may not exist yet) for removal.
    pub fn new(path: PathBuf) -> TempPath {
        REGISTERED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.clone());
        TempPath { path, keep: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops tracking the path without removing it (it was renamed into
    /// place, or the user asked to keep it).
    pub fn persist(mut self) -> PathBuf {
        self.keep = true;
        unregister(&self.path);
        self.path.clone()
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

fn unregister(path: &Path) {
    let mut reg = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = reg.iter().rposition(|p| p == path) {
        reg.remove(i);
    }
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
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // Not eprintln!: it panics when stderr is gone (a closed
                // pipe), and a panic here would skip the cleanup and exit.
                let _ = writeln!(std::io::stderr(), "rootstrap: interrupted, cleaning up");
                let paths =
                    std::mem::take(&mut *REGISTERED.lock().unwrap_or_else(|e| e.into_inner()));
                for p in paths.iter().rev() {
                    remove(p);
                }
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
