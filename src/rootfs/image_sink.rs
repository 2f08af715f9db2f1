//! Applies image layers to a rootfs directory through the safe [`Root`] API:
//! the seam between `image::unpack_layers` (which knows layer semantics:
//! order, whiteouts) and the one way rootstrap writes into a root.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::image::tar::{EntryKind, TarHeader};
use crate::image::UnpackSink;
use crate::rootfs::safe::{FileKind, FsError, NodeKind, PathError, RelPath, Root};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Writes layer entries into a root. Owners are applied only when running
/// as root (otherwise chown would fail for every file not ours).
pub struct RootSink<'a> {
    root: &'a Root,
    preserve_owner: bool,
}

impl<'a> RootSink<'a> {
    pub fn new(root: &'a Root) -> Self {
        RootSink {
            root,
            preserve_owner: rustix::process::geteuid().is_root(),
        }
    }
}

fn rel(path: &Path) -> Result<RelPath, PathError> {
    RelPath::from_archive(path.as_os_str().as_encoded_bytes())
}

impl UnpackSink for RootSink<'_> {
    type Error = SinkError;

    fn entry(&mut self, h: &TarHeader, data: &mut dyn Read) -> Result<(), SinkError> {
        let p = rel(&h.path)?;
        if p.is_root() {
            if self.preserve_owner {
                self.root.set_owner(&p, h.uid as u32, h.gid as u32)?;
            }
            self.root.set_mode(&p, h.mode)?;
            return Ok(());
        }
        if let Some(parent) = p.parent() {
            self.root.mkdir_all(&parent, 0o755)?;
        }
        match &h.kind {
            EntryKind::Dir => {
                let existing = self.root.lstat(&p)?;
                if existing.is_some_and(|m| m.kind != FileKind::Dir) {
                    self.root.remove_all(&p)?;
                }
                self.root.mkdir(&p, h.mode)?;
            }
            EntryKind::File => {
                let mut file = self.root.create_file(&p, h.mode)?;
                std::io::copy(data, &mut file).map_err(|source| SinkError::Io {
                    path: p.to_string(),
                    source,
                })?;
            }
            EntryKind::Symlink(target) => {
                self.remove_non_dir(&p)?;
                self.root
                    .symlink(target.as_os_str().as_encoded_bytes(), &p)?;
            }
            EntryKind::HardLink(target) => {
                self.remove_non_dir(&p)?;
                self.root.hardlink(&rel(target)?, &p)?;
                return Ok(());
            }
            EntryKind::CharDevice { major, minor } => {
                self.remove_non_dir(&p)?;
                self.root
                    .mknod(&p, NodeKind::CharDev, h.mode, *major, *minor)?;
            }
            EntryKind::BlockDevice { major, minor } => {
                self.remove_non_dir(&p)?;
                self.root
                    .mknod(&p, NodeKind::BlockDev, h.mode, *major, *minor)?;
            }
            EntryKind::Fifo => {
                self.remove_non_dir(&p)?;
                self.root.mkfifo(&p, h.mode)?;
            }
        }
        if self.preserve_owner {
            self.root.set_owner(&p, h.uid as u32, h.gid as u32)?;
        }
        if !matches!(h.kind, EntryKind::Symlink(_)) {
            // chown clears setuid/setgid, so the mode goes last.
            self.root.set_mode(&p, h.mode)?;
            for (name, value) in &h.xattrs {
                self.root.set_xattr(&p, name, value)?;
            }
        }
        self.root.set_mtime(&p, h.mtime)?;
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> Result<(), SinkError> {
        Ok(self.root.remove_all(&rel(path)?)?)
    }

    fn clear_dir(&mut self, dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<(), SinkError> {
        let d = rel(dir)?;
        let names = match self.root.read_dir(&d) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for name in names {
            let child = d.join(&name)?;
            if !keep(Path::new(std::ffi::OsStr::from_bytes(child.as_bytes()))) {
                self.root.remove_all(&child)?;
            }
        }
        Ok(())
    }
}

impl RootSink<'_> {
    fn remove_non_dir(&self, p: &RelPath) -> Result<(), SinkError> {
        match self.root.lstat(p)? {
            Some(m) if m.kind == FileKind::Dir => Ok(self.root.remove_all(p)?),
            Some(_) => Ok(self.root.remove(p)?),
            None => Ok(()),
        }
    }
}
