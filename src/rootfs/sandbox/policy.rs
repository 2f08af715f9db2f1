//! `/usr/sbin/policy-rc.d` that forbids maintainer scripts to start services
//! (exit 101, as debootstrap and mmdebstrap install it; HOSTILE 43).

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

use super::SandboxError;
use crate::rootfs::safe::{RelPath, Root};

const NAME: &str = "policy-rc.d";
/// Where a policy-rc.d the rootfs already had waits while ours is in place.
const SAVED: &str = "policy-rc.d.rootstrap-saved";
const SCRIPT: &[u8] =
    b"#!/bin/sh\n# installed by rootstrap for the build: start no services\nexit 101\n";

/// Removes the installed policy-rc.d (and restores a pre-existing one) when
/// dropped or on [`PolicyRcDGuard::release`].
#[derive(Debug)]
#[must_use = "dropping the guard removes policy-rc.d at once"]
pub struct PolicyRcDGuard {
    /// `usr/sbin`, held open so the command cannot redirect removal.
    dir: Option<OwnedFd>,
    path: PathBuf,
    restore_saved: bool,
}

/// Installs `root/usr/sbin/policy-rc.d` (mode 0755, `exit 101`). The
/// directory must exist; it is resolved without leaving the root.
pub fn policy_rc_d_guard(root: &Path) -> Result<PolicyRcDGuard, SandboxError> {
    let path = root.join("usr/sbin").join(NAME);
    let err = |source: io::Error| SandboxError::Rootfs {
        path: path.clone(),
        source,
    };
    let rootfs = Root::open(root).map_err(err)?;
    let usr_sbin = RelPath::from_archive(b"usr/sbin").expect("a valid constant path");
    let dir = rootfs.open_dir(&usr_sbin).map_err(|e| err(e.source))?;
    let restore_saved = match rustix::fs::statat(&dir, NAME, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => {
            rustix::fs::renameat_with(&dir, NAME, &dir, SAVED, rustix::fs::RenameFlags::NOREPLACE)
                .map_err(|e| err(e.into()))?;
            true
        }
        Err(rustix::io::Errno::NOENT) => false,
        Err(e) => return Err(err(e.into())),
    };
    let guard = PolicyRcDGuard {
        dir: Some(dir),
        path: path.clone(),
        restore_saved,
    };
    let dir = guard.dir.as_ref().expect("just set");
    write_script(dir).map_err(err)?;
    Ok(guard)
}

fn write_script(dir: &OwnedFd) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        NAME,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o755),
    )?;
    // Mode bits given to open are narrowed by the umask.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
    std::fs::File::from(fd).write_all(SCRIPT)
}

impl PolicyRcDGuard {
    /// The installed script's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the script now, reporting failures that `Drop` would swallow.
    pub fn release(mut self) -> Result<(), SandboxError> {
        self.restore().map_err(|source| SandboxError::Rootfs {
            path: self.path.clone(),
            source,
        })
    }

    fn restore(&mut self) -> io::Result<()> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        // unlinkat never follows: whatever the scripts left at the name
        // (our script or a replacement) is removed, not its target.
        match rustix::fs::unlinkat(&dir, NAME, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        if self.restore_saved {
            rustix::fs::renameat_with(&dir, SAVED, &dir, NAME, rustix::fs::RenameFlags::NOREPLACE)?;
        }
        Ok(())
    }
}

impl Drop for PolicyRcDGuard {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_exit_101_and_removes_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("usr/sbin")).unwrap();
        let script = tmp.path().join("usr/sbin/policy-rc.d");
        let guard = policy_rc_d_guard(tmp.path()).unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/bin/sh\n") && text.ends_with("exit 101\n"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
            0o755
        );
        guard.release().unwrap();
        assert!(!script.exists());
    }

    #[test]
    fn restores_an_existing_policy_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("usr/sbin")).unwrap();
        let script = tmp.path().join("usr/sbin/policy-rc.d");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        {
            let _guard = policy_rc_d_guard(tmp.path()).unwrap();
            assert!(std::fs::read_to_string(&script)
                .unwrap()
                .contains("exit 101"));
        }
        assert_eq!(
            std::fs::read_to_string(&script).unwrap(),
            "#!/bin/sh\nexit 0\n"
        );
        assert!(!tmp.path().join("usr/sbin").join(SAVED).exists());
    }

    #[test]
    fn usr_sbin_symlink_out_of_the_root_stays_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("usr")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("usr/sbin")).unwrap();
        // The absolute link resolves inside the root, where it names nothing.
        assert!(policy_rc_d_guard(tmp.path()).is_err());
        assert!(!outside.path().join("policy-rc.d").exists());
    }
}
