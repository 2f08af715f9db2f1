//! Mount points the sandbox needs but the rootfs lacks (`/proc`, `/dev`, an
//! empty `/etc/resolv.conf`, targets of extra bind mounts). They are created
//! by the library before the run and removed after it, so the rootfs is left
//! as the command left it. Every operation is relative to a directory
//! descriptor resolved inside the root and never follows a symlink the
//! command may have planted (HOSTILE 41).

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};

use super::{Network, RunSpec, SandboxError, SandboxMode};
use crate::rootfs::safe::{RelPath, Root};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StubKind {
    Dir,
    File,
    /// Chroot isolation: a device node made for the run (no /dev mount).
    CharDevice {
        major: u32,
        minor: u32,
    },
    /// Chroot isolation: a copy of a host file (no bind mount).
    Copy(Vec<u8>),
}

/// The devices chroot isolation makes in /dev for a run (the namespaces
/// sandbox bind-mounts the host's): name, major, minor.
const CHROOT_DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// One created entry: the directory it lives in (held open, so renames by
/// the command cannot redirect removal), its name, and the parent's
/// timestamps before and right after creation.
struct Stub {
    parent: OwnedFd,
    name: String,
    kind: StubKind,
    display: PathBuf,
    parent_times_before: Timestamps,
    parent_mtime_after: Timespec,
}

/// Created mount points, removed in reverse order by [`Stubs::remove`].
#[must_use = "mount points must be removed after the run"]
pub(super) struct Stubs {
    created: Vec<Stub>,
}

/// Creates whatever mount points `spec` needs that the root lacks; under
/// chroot isolation, the device nodes and resolv.conf copy that stand in
/// for the mounts.
pub(super) fn create_mount_points(
    spec: &RunSpec,
    mode: SandboxMode,
) -> Result<Stubs, SandboxError> {
    let root_err = |source: io::Error| SandboxError::Rootfs {
        path: spec.root.clone(),
        source,
    };
    let root = Root::open(&spec.root).map_err(root_err)?;
    let mut stubs = Stubs {
        created: Vec::new(),
    };
    for (path, kind) in wanted(spec, mode, &root) {
        if let Err(e) = stubs.ensure(&root, &spec.root, &path, kind) {
            // Leave nothing behind on a half-done setup.
            let _ = stubs.remove();
            return Err(e);
        }
    }
    Ok(stubs)
}

/// Whether [`create_mount_points`] would create anything, checked without
/// writing: every wanted path is already there.
pub(super) fn needs_mount_points(spec: &RunSpec, mode: SandboxMode) -> Result<bool, SandboxError> {
    let root = Root::open(&spec.root).map_err(|source| SandboxError::Rootfs {
        path: spec.root.clone(),
        source,
    })?;
    for (path, _) in wanted(spec, mode, &root) {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
        let present = open_dir_in_root(&root, parent)
            .and_then(|dir| entry_exists(&dir, name))
            .unwrap_or(false);
        if !present {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The mount points (and stand-ins) a run of `spec` needs in the root.
fn wanted(spec: &RunSpec, mode: SandboxMode, root: &Root) -> Vec<(String, StubKind)> {
    let mut wanted: Vec<(String, StubKind)> = vec![
        ("proc".into(), StubKind::Dir),
        ("dev".into(), StubKind::Dir),
    ];
    if mode == SandboxMode::Chroot {
        for (name, major, minor) in CHROOT_DEVICES {
            wanted.push((
                format!("dev/{name}"),
                StubKind::CharDevice {
                    major: *major,
                    minor: *minor,
                },
            ));
        }
    }
    if spec.network == Network::Host
        && Path::new("/etc/resolv.conf").exists()
        && is_dir_in_root(root, "etc")
    {
        let kind = match mode {
            SandboxMode::Namespaces => StubKind::File,
            // Only when the root has none: the copy is removed afterwards.
            SandboxMode::Chroot => match std::fs::read("/etc/resolv.conf") {
                Ok(bytes) => StubKind::Copy(bytes),
                Err(_) => StubKind::File,
            },
        };
        wanted.push(("etc/resolv.conf".into(), kind));
    }
    for target in &spec.tmpfs_mounts {
        wanted.push((
            target.target.trim_start_matches('/').to_string(),
            StubKind::Dir,
        ));
    }
    for mount in spec.extra_mounts.iter().chain(&spec.writable_mounts) {
        let kind = if mount.source.is_dir() {
            StubKind::Dir
        } else {
            StubKind::File
        };
        wanted.push((mount.target.trim_start_matches('/').to_string(), kind));
    }
    wanted
}

fn is_dir_in_root(root: &Root, relative: &str) -> bool {
    RelPath::from_archive(relative.as_bytes()).is_ok_and(|p| root.is_dir(&p))
}

/// A directory inside the root, opened for reading (its times can then be
/// restored with futimens); `""` is the root itself.
fn open_dir_in_root(root: &Root, relative: &str) -> io::Result<OwnedFd> {
    let rel = if relative.is_empty() {
        RelPath::root()
    } else {
        RelPath::from_archive(relative.as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
    };
    root.open_dir(&rel).map_err(|e| e.source)
}

/// Whether a directory entry exists at all, a dangling symlink included.
fn entry_exists(parent: &OwnedFd, name: &str) -> io::Result<bool> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Stubs {
    /// Creates each missing component of `relative` (directories, and the
    /// last one as `kind`).
    fn ensure(
        &mut self,
        root: &Root,
        root_path: &Path,
        relative: &str,
        kind: StubKind,
    ) -> Result<(), SandboxError> {
        let components: Vec<&str> = relative
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        for i in 0..components.len() {
            let parent_rel = components[..i].join("/");
            let name = components[i];
            let display = root_path.join(components[..=i].join("/"));
            let err = |source: io::Error| SandboxError::Rootfs {
                path: display.clone(),
                source,
            };
            let parent = open_dir_in_root(root, &parent_rel).map_err(err)?;
            if entry_exists(&parent, name).map_err(err)? {
                continue;
            }
            let this_kind = if i + 1 == components.len() {
                kind.clone()
            } else {
                StubKind::Dir
            };
            let before = rustix::fs::fstat(&parent).map_err(|e| err(e.into()))?;
            create_entry(&parent, name, &this_kind).map_err(err)?;
            let after = rustix::fs::fstat(&parent).map_err(|e| err(e.into()))?;
            self.created.push(Stub {
                parent,
                name: name.to_string(),
                kind: this_kind,
                display: display.clone(),
                parent_times_before: Timestamps {
                    last_access: timespec(before.st_atime, before.st_atime_nsec),
                    last_modification: timespec(before.st_mtime, before.st_mtime_nsec),
                },
                parent_mtime_after: timespec(after.st_mtime, after.st_mtime_nsec),
            });
        }
        Ok(())
    }

    /// Removes what was created, newest first. An entry the command replaced
    /// (a symlink, a non-empty file or directory) is left alone and never
    /// followed.
    pub(super) fn remove(mut self) -> Result<(), SandboxError> {
        let mut first_error = None;
        while let Some(stub) = self.created.pop() {
            if let Err(source) = remove_stub(&stub) {
                first_error.get_or_insert(SandboxError::Rootfs {
                    path: stub.display.clone(),
                    source,
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn timespec(sec: i64, nsec: impl TryInto<i64>) -> Timespec {
    Timespec {
        tv_sec: sec,
        tv_nsec: nsec.try_into().unwrap_or(0) as _,
    }
}

fn create_entry(parent: &OwnedFd, name: &str, kind: &StubKind) -> io::Result<()> {
    let new_file = || {
        rustix::fs::openat(
            parent,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
    };
    match kind {
        StubKind::Dir => rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))?,
        StubKind::File => drop(new_file()?),
        StubKind::Copy(bytes) => {
            let file = std::fs::File::from(new_file()?);
            std::io::Write::write_all(&mut &file, bytes)?;
        }
        StubKind::CharDevice { major, minor } => {
            rustix::fs::mknodat(
                parent,
                name,
                FileType::CharacterDevice,
                Mode::from_raw_mode(0o666),
                rustix::fs::makedev(*major, *minor),
            )?;
            // The umask must not narrow the node's mode.
            rustix::fs::chmodat(parent, name, Mode::from_raw_mode(0o666), AtFlags::empty())?;
        }
    }
    Ok(())
}

fn remove_stub(stub: &Stub) -> io::Result<()> {
    let st = match rustix::fs::statat(&stub.parent, stub.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let file_type = FileType::from_raw_mode(st.st_mode);
    let ours = match &stub.kind {
        StubKind::Dir => file_type == FileType::Directory,
        StubKind::File => file_type == FileType::RegularFile && st.st_size == 0,
        // A copy the command edited is still ours: it came from the host.
        StubKind::Copy(_) => file_type == FileType::RegularFile,
        StubKind::CharDevice { major, minor } => {
            file_type == FileType::CharacterDevice
                && st.st_rdev == rustix::fs::makedev(*major, *minor)
        }
    };
    if !ours {
        return Ok(());
    }
    // Only if nothing but our own stub changed the parent since we created
    // it do we restore its times: the stub must not show up in a layer, and
    // a change the command made must.
    let parent = rustix::fs::fstat(&stub.parent)?;
    let untouched = timespec(parent.st_mtime, parent.st_mtime_nsec) == stub.parent_mtime_after;
    let flags = match stub.kind {
        StubKind::Dir => AtFlags::REMOVEDIR,
        _ => AtFlags::empty(),
    };
    match rustix::fs::unlinkat(&stub.parent, stub.name.as_str(), flags) {
        Ok(()) => {}
        // The command filled our directory: its content is its business.
        Err(rustix::io::Errno::NOTEMPTY) | Err(rustix::io::Errno::EXIST) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if untouched {
        rustix::fs::futimens(&stub.parent, &stub.parent_times_before)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::sandbox::BindMount;
    use std::os::unix::fs::MetadataExt;

    fn spec(root: &Path) -> RunSpec {
        let mut spec = RunSpec::new(root, vec!["true".into()]);
        spec.network = Network::None;
        spec
    }

    #[test]
    fn creates_missing_mount_points_and_removes_them() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        let mtime_before = std::fs::metadata(root).unwrap().mtime_nsec();
        let mut spec = spec(root);
        spec.extra_mounts.push(BindMount {
            source: root.join("etc"),
            target: "/mnt/a/b".into(),
        });
        let stubs = create_mount_points(&spec, SandboxMode::Namespaces).unwrap();
        for dir in ["proc", "dev", "mnt/a/b"] {
            assert!(root.join(dir).is_dir(), "{dir} missing");
        }
        stubs.remove().unwrap();
        let left: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("etc")]);
        assert_eq!(std::fs::metadata(root).unwrap().mtime_nsec(), mtime_before);
    }

    #[test]
    fn existing_entries_are_not_stubbed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("proc")).unwrap();
        std::os::unix::fs::symlink("/nowhere", tmp.path().join("dev")).unwrap();
        let stubs = create_mount_points(&spec(tmp.path()), SandboxMode::Namespaces).unwrap();
        assert!(stubs.created.is_empty());
        stubs.remove().unwrap();
        assert!(std::fs::symlink_metadata(tmp.path().join("dev"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    /// HOSTILE 41: a stub swapped for a symlink to a host path is left as
    /// the symlink; removal neither follows it nor touches the target.
    #[test]
    fn swapped_stub_is_not_followed_on_cleanup() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("victim")).unwrap();
        std::fs::write(outside.path().join("file"), "keep").unwrap();
        let root = tmp.path();
        let mut spec = spec(root);
        spec.extra_mounts.push(BindMount {
            source: outside.path().join("file"),
            target: "/ctx-file".into(),
        });
        let stubs = create_mount_points(&spec, SandboxMode::Namespaces).unwrap();
        std::fs::remove_dir(root.join("proc")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), root.join("proc")).unwrap();
        std::fs::remove_file(root.join("ctx-file")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("file"), root.join("ctx-file")).unwrap();
        stubs.remove().unwrap();
        assert!(outside.path().join("victim").is_dir());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("file")).unwrap(),
            "keep"
        );
        assert!(std::fs::symlink_metadata(root.join("proc"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!root.join("dev").exists(), "untouched stub not removed");
    }

    /// A stub the command filled with content is the command's change.
    #[test]
    fn filled_stub_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let stubs = create_mount_points(&spec(tmp.path()), SandboxMode::Namespaces).unwrap();
        std::fs::write(tmp.path().join("dev/made-by-command"), "x").unwrap();
        stubs.remove().unwrap();
        assert!(tmp.path().join("dev/made-by-command").exists());
        assert!(!tmp.path().join("proc").exists());
    }
}
