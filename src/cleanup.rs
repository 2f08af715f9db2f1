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
/// (`remove_dir_all` does not follow them).
fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Starts the watcher thread. Call once, early, from the binary.
pub fn install_signal_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("rootstrap: interrupted, cleaning up");
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
        drop(TempPath::new(t.clone()));
        assert!(!t.exists());
        assert!(outside.join("keep").exists());
    }
}
