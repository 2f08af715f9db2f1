//! Packing a root filesystem directory into a deterministic layer tar.
//!
//! Order is that of `tar --sort=name`: a depth-first walk where each
//! directory's entries are sorted by their name bytes, so parents come before
//! children and the byte stream depends only on the tree's content.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::tar::{is_whiteout_name, LayerEntryKind, TarHeader, TarWriter};
use super::{HashingWriter, ImageError, Sha256Digest};
use crate::rootfs::safe::{FileKind, FsError, Meta, RelPath, Root};

/// How to pack a directory.
#[derive(Debug, Clone, Default)]
pub struct LayerOptions {
    /// Clamp every mtime to at most this (SOURCE_DATE_EPOCH).
    pub source_date_epoch: Option<i64>,
    /// Directories (relative to the root, a leading `/` is ignored) whose
    /// contents are left out while the directory entry itself is kept, as
    /// `tar --exclude='proc/*'` does: `proc`, `sys`, `dev`, ...
    pub exclude: Vec<PathBuf>,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerStats {
    /// SHA-256 of the uncompressed tar (the OCI `diff_id`).
    pub diff_id: Sha256Digest,
    pub uncompressed_size: u64,
    pub entries: u64,
}

/// xattr namespaces carried into layers. `security.selinux` labels belong to
/// the build host's policy, and `trusted.*`/`system.*` are host-private.
fn keep_xattr(name: &str) -> bool {
    name == "security.capability" || name.starts_with("user.")
}

/// Pack `dir` as a layer tar into `out`. The root directory itself is not an
/// entry; symlinks are stored, never followed; sockets are skipped.
pub fn write_layer_from_dir(
    dir: &Path,
    opts: &LayerOptions,
    out: impl Write,
) -> Result<LayerStats, ImageError> {
    let mut hashing = HashingWriter::new(out);
    let entries = pack_dir(dir, opts, &mut hashing)?;
    let (_, diff_id, uncompressed_size) = hashing.finish();
    Ok(LayerStats {
        diff_id,
        uncompressed_size,
        entries,
    })
}

/// Writes the tar of `dir` into `out` (flushed) and returns its entry
/// count; for callers that hash the stream themselves.
pub(crate) fn pack_dir(
    dir: &Path,
    opts: &LayerOptions,
    out: impl Write,
) -> Result<u64, ImageError> {
    let root_meta =
        fs::symlink_metadata(dir).map_err(ImageError::io(format!("reading {}", dir.display())))?;
    if !root_meta.is_dir() {
        return Err(ImageError::Invalid {
            location: dir.display().to_string(),
            reason: "layer source is not a directory".into(),
        });
    }
    let excludes: Vec<PathBuf> = opts
        .exclude
        .iter()
        .map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf())
        .collect();
    let root = Root::open(dir).map_err(ImageError::io(format!("opening {}", dir.display())))?;
    let mut packer = Packer {
        root,
        opts,
        excludes,
        tar: TarWriter::new(out),
        first_link: HashMap::new(),
    };
    packer.walk_dir(Path::new(""))?;
    let entries = packer.tar.entries();
    let mut out = packer.tar.finish()?;
    out.flush()
        .map_err(ImageError::io("flushing layer output"))?;
    Ok(entries)
}

struct Packer<'a, W: Write> {
    /// Every read goes through the root: a symlink in the tree never leads
    /// the packer outside it.
    root: Root,
    opts: &'a LayerOptions,
    excludes: Vec<PathBuf>,
    tar: TarWriter<W>,
    /// (dev, ino) of multiply-linked files → the first path written for them.
    first_link: HashMap<(u64, u64), PathBuf>,
}

/// A root operation's error as the packer reports it: what it was doing,
/// on which host path.
fn fs_err(what: &str, abs: &Path) -> impl FnOnce(FsError) -> ImageError {
    let context = format!("{what} {}", abs.display());
    move |e| ImageError::Io {
        context,
        source: e.source,
    }
}

impl<W: Write> Packer<'_, W> {
    fn walk_dir(&mut self, rel: &Path) -> Result<(), ImageError> {
        if !rel.as_os_str().is_empty() && self.excludes.iter().any(|e| e == rel) {
            return Ok(());
        }
        let abs = self.root.path().join(rel);
        let dir = self.rel_path(rel)?;
        let names = self.root.read_dir(&dir).map_err(fs_err("listing", &abs))?;
        for name in names {
            let child = rel.join(std::ffi::OsStr::from_bytes(&name));
            let child_abs = self.root.path().join(&child);
            if is_whiteout_name(&child) {
                return Err(ImageError::WhiteoutInRootfs { path: child });
            }
            let child_rel = self.rel_path(&child)?;
            let meta = self
                .root
                .lstat(&child_rel)
                .map_err(fs_err("lstat", &child_abs))?
                .ok_or_else(|| {
                    ImageError::io(format!("lstat {}", child_abs.display()))(
                        io::ErrorKind::NotFound.into(),
                    )
                })?;
            if meta.kind == FileKind::Socket {
                continue;
            }
            self.write_entry(&child, &child_rel, &meta)?;
            if meta.kind == FileKind::Dir {
                self.walk_dir(&child)?;
            }
        }
        Ok(())
    }

    fn rel_path(&self, rel: &Path) -> Result<RelPath, ImageError> {
        if rel.as_os_str().is_empty() {
            return Ok(RelPath::root());
        }
        RelPath::from_archive(rel.as_os_str().as_bytes()).map_err(|e| ImageError::TarEntry {
            path: rel.display().to_string(),
            reason: e.to_string(),
        })
    }

    fn write_entry(&mut self, rel: &Path, p: &RelPath, meta: &Meta) -> Result<(), ImageError> {
        let abs = self.root.path().join(rel);
        let mut header = TarHeader::new(rel, LayerEntryKind::File);
        header.mode = meta.mode;
        header.uid = u64::from(meta.uid);
        header.gid = u64::from(meta.gid);
        header.mtime = match self.opts.source_date_epoch {
            Some(epoch) => meta.mtime.min(epoch),
            None => meta.mtime,
        };
        header.xattrs = self.read_xattrs(p, meta, &abs)?;
        if meta.kind != FileKind::Dir && meta.nlink > 1 {
            let key = (meta.dev, meta.ino);
            if let Some(first) = self.first_link.get(&key) {
                header.kind = LayerEntryKind::HardLink(first.clone());
                header.xattrs.clear();
                return self.tar.append(&header, &mut io::empty());
            }
            self.first_link.insert(key, rel.to_path_buf());
        }
        match meta.kind {
            FileKind::Dir => {
                header.kind = LayerEntryKind::Dir;
                self.tar.append(&header, &mut io::empty())
            }
            FileKind::Symlink => {
                let target = self.root.read_link(p).map_err(fs_err("readlink", &abs))?;
                header.kind =
                    LayerEntryKind::Symlink(PathBuf::from(std::ffi::OsString::from_vec(target)));
                self.tar.append(&header, &mut io::empty())
            }
            FileKind::File => self.write_file(header, p, &abs, meta),
            FileKind::CharDev | FileKind::BlockDev => {
                let (major, minor) = (libc::major(meta.rdev), libc::minor(meta.rdev));
                header.kind = if meta.kind == FileKind::CharDev {
                    LayerEntryKind::CharDevice { major, minor }
                } else {
                    LayerEntryKind::BlockDevice { major, minor }
                };
                self.tar.append(&header, &mut io::empty())
            }
            FileKind::Fifo => {
                header.kind = LayerEntryKind::Fifo;
                self.tar.append(&header, &mut io::empty())
            }
            FileKind::Socket => Ok(()),
        }
    }

    fn write_file(
        &mut self,
        mut header: TarHeader,
        p: &RelPath,
        abs: &Path,
        meta: &Meta,
    ) -> Result<(), ImageError> {
        // Opened through the root; if the path was swapped since lstat, the
        // inode check below fails rather than pack something else.
        let file = self.root.open_read(p).map_err(fs_err("opening", abs))?;
        let fmeta = file
            .metadata()
            .map_err(ImageError::io(format!("fstat {}", abs.display())))?;
        if fmeta.ino() != meta.ino || fmeta.dev() != meta.dev || !fmeta.is_file() {
            return Err(ImageError::TarEntry {
                path: header.path.display().to_string(),
                reason: "file was replaced while packing".into(),
            });
        }
        header.size = fmeta.len();
        let mut reader = io::BufReader::with_capacity(128 * 1024, file);
        self.tar.append(&header, &mut reader)
    }

    /// The xattrs a layer carries ([`keep_xattr`]). Only regular files and
    /// directories can hold them; a filesystem without xattr support has
    /// none.
    fn read_xattrs(
        &self,
        p: &RelPath,
        meta: &Meta,
        abs: &Path,
    ) -> Result<BTreeMap<String, Vec<u8>>, ImageError> {
        if !matches!(meta.kind, FileKind::File | FileKind::Dir) {
            return Ok(BTreeMap::new());
        }
        let all = match self.root.xattrs(p) {
            Ok(all) => all,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) => {
                return Ok(BTreeMap::new())
            }
            Err(e) => return Err(fs_err("reading xattrs of", abs)(e)),
        };
        Ok(all
            .into_iter()
            .filter(|(name, _)| keep_xattr(name))
            .collect())
    }
}
