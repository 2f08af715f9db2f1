//! Packing a root filesystem directory into a deterministic layer tar.
//!
//! Order is that of `tar --sort=name`: a depth-first walk where each
//! directory's entries are sorted by their name bytes, so parents come before
//! children and the byte stream depends only on the tree's content.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::tar::{is_whiteout_name, LayerEntryKind, TarHeader, TarWriter};
use super::{HashingWriter, ImageError, Sha256Digest};

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
    let mut packer = Packer {
        root: dir,
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
    root: &'a Path,
    opts: &'a LayerOptions,
    excludes: Vec<PathBuf>,
    tar: TarWriter<W>,
    /// (dev, ino) of multiply-linked files → the first path written for them.
    first_link: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Packer<'_, W> {
    fn walk_dir(&mut self, rel: &Path) -> Result<(), ImageError> {
        if !rel.as_os_str().is_empty() && self.excludes.iter().any(|e| e == rel) {
            return Ok(());
        }
        let abs = self.root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&abs)
            .map_err(ImageError::io(format!("listing {}", abs.display())))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(ImageError::io(format!("listing {}", abs.display())))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child = rel.join(&name);
            let child_abs = self.root.join(&child);
            if is_whiteout_name(&child) {
                return Err(ImageError::WhiteoutInRootfs { path: child });
            }
            let meta = fs::symlink_metadata(&child_abs)
                .map_err(ImageError::io(format!("lstat {}", child_abs.display())))?;
            if meta.file_type().is_socket() {
                continue;
            }
            self.write_entry(&child, &child_abs, &meta)?;
            if meta.is_dir() {
                self.walk_dir(&child)?;
            }
        }
        Ok(())
    }

    fn write_entry(&mut self, rel: &Path, abs: &Path, meta: &Metadata) -> Result<(), ImageError> {
        let ft = meta.file_type();
        let mut header = TarHeader::new(rel, LayerEntryKind::File);
        header.mode = meta.mode() & 0o7777;
        header.uid = u64::from(meta.uid());
        header.gid = u64::from(meta.gid());
        header.mtime = match self.opts.source_date_epoch {
            Some(epoch) => meta.mtime().min(epoch),
            None => meta.mtime(),
        };
        header.xattrs = read_xattrs(abs)?;
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.first_link.get(&key) {
                header.kind = LayerEntryKind::HardLink(first.clone());
                header.xattrs.clear();
                return self.tar.append(&header, &mut io::empty());
            }
            self.first_link.insert(key, rel.to_path_buf());
        }
        if ft.is_dir() {
            header.kind = LayerEntryKind::Dir;
            self.tar.append(&header, &mut io::empty())
        } else if ft.is_symlink() {
            let target = fs::read_link(abs)
                .map_err(ImageError::io(format!("readlink {}", abs.display())))?;
            header.kind = LayerEntryKind::Symlink(target);
            self.tar.append(&header, &mut io::empty())
        } else if ft.is_file() {
            self.write_file(header, abs, meta)
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            let (major, minor) = (libc::major(rdev), libc::minor(rdev));
            header.kind = if ft.is_char_device() {
                LayerEntryKind::CharDevice { major, minor }
            } else {
                LayerEntryKind::BlockDevice { major, minor }
            };
            self.tar.append(&header, &mut io::empty())
        } else if ft.is_fifo() {
            header.kind = LayerEntryKind::Fifo;
            self.tar.append(&header, &mut io::empty())
        } else {
            Ok(())
        }
    }

    fn write_file(
        &mut self,
        mut header: TarHeader,
        abs: &Path,
        meta: &Metadata,
    ) -> Result<(), ImageError> {
        // O_NOFOLLOW: if the path was swapped for a symlink since lstat, fail
        // rather than pack whatever it points at.
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(abs)
            .map_err(ImageError::io(format!("opening {}", abs.display())))?;
        let fmeta = file
            .metadata()
            .map_err(ImageError::io(format!("fstat {}", abs.display())))?;
        if fmeta.ino() != meta.ino() || fmeta.dev() != meta.dev() || !fmeta.is_file() {
            return Err(ImageError::TarEntry {
                path: header.path.display().to_string(),
                reason: "file was replaced while packing".into(),
            });
        }
        header.size = fmeta.len();
        let mut reader = io::BufReader::with_capacity(128 * 1024, file);
        self.tar.append(&header, &mut reader)
    }
}

fn read_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, ImageError> {
    let mut out = BTreeMap::new();
    let ctx = || format!("listing xattrs of {}", path.display());
    let len = match rustix::fs::llistxattr_query(path) {
        Ok(len) => len,
        Err(e) if e == rustix::io::Errno::NOTSUP || e == rustix::io::Errno::PERM => return Ok(out),
        Err(e) => return Err(ImageError::io(ctx())(e.into())),
    };
    if len == 0 {
        return Ok(out);
    }
    let mut names = vec![0u8; len];
    let n = rustix::fs::llistxattr(path, &mut names[..])
        .map_err(|e| ImageError::io(ctx())(e.into()))?;
    for raw in names[..n.min(len)]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        if !keep_xattr(name) {
            continue;
        }
        let vctx = || format!("reading xattr {name} of {}", path.display());
        let vlen = match rustix::fs::lgetxattr_query(path, name) {
            Ok(v) => v,
            // Removed between list and get: nothing to carry.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(ImageError::io(vctx())(e.into())),
        };
        let mut value = vec![0u8; vlen];
        let got = rustix::fs::lgetxattr(path, name, &mut value[..])
            .map_err(|e| ImageError::io(vctx())(e.into()))?;
        value.truncate(got);
        out.insert(name.to_string(), value);
    }
    Ok(out)
}
