//! Applies image layers to a rootfs directory through the safe [`Root`] API:
//! the seam between `image::unpack_layers` (which knows layer semantics:
//! order, whiteouts) and the one way rootstrap writes archive entries into
//! a root ([`EntryWriter`]).

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::archive::tar::{EntryHeader, EntryKind as ArchiveKind};
use crate::image::tar::{LayerEntryKind, TarHeader};
use crate::image::UnpackSink;
use crate::rootfs::extract::{Claimed, EntryWriter, ExtractError, ExtractOptions, Overlay};
use crate::rootfs::safe::{FsError, PathError, RelPath, Root};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

/// Writes layer entries into a root through the one [`EntryWriter`], with
/// layer rules ([`Overlay::Layer`]). Owners are applied only when running
/// as root (otherwise chown would fail for every file not ours).
pub struct RootSink<'a> {
    root: &'a Root,
    writer: EntryWriter<'a>,
}

impl<'a> RootSink<'a> {
    pub fn new(root: &'a Root) -> Self {
        let opts = ExtractOptions {
            overlay: Overlay::Layer,
            ..ExtractOptions::new("image layer")
        };
        RootSink {
            root,
            writer: EntryWriter::new(root, opts),
        }
    }
}

fn rel(path: &Path) -> Result<RelPath, PathError> {
    RelPath::from_archive(path.as_os_str().as_encoded_bytes())
}

/// The layer view of an entry back in the archive reader's terms.
fn entry_header(h: &TarHeader) -> EntryHeader {
    let (kind, link_target, dev_major, dev_minor) = match &h.kind {
        LayerEntryKind::File => (ArchiveKind::File, None, 0, 0),
        LayerEntryKind::Dir => (ArchiveKind::Dir, None, 0, 0),
        LayerEntryKind::Symlink(t) => (ArchiveKind::Symlink, Some(t), 0, 0),
        LayerEntryKind::HardLink(t) => (ArchiveKind::Hardlink, Some(t), 0, 0),
        LayerEntryKind::CharDevice { major, minor } => (ArchiveKind::CharDev, None, *major, *minor),
        LayerEntryKind::BlockDevice { major, minor } => {
            (ArchiveKind::BlockDev, None, *major, *minor)
        }
        LayerEntryKind::Fifo => (ArchiveKind::Fifo, None, 0, 0),
    };
    EntryHeader {
        path: h.path.as_os_str().as_bytes().to_vec(),
        kind,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        mtime: h.mtime,
        size: if kind == ArchiveKind::File { h.size } else { 0 },
        link_target: link_target.map(|t| t.as_os_str().as_bytes().to_vec()),
        dev_major,
        dev_minor,
        pax: Default::default(),
        xattrs: h
            .xattrs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

impl UnpackSink for RootSink<'_> {
    type Error = SinkError;

    fn entry(&mut self, h: &TarHeader, data: &mut dyn Read) -> Result<(), SinkError> {
        let header = entry_header(h);
        self.writer
            .apply(&header, data, &|_, _| Ok(Claimed::Write))?;
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
