//! Extracting a package's tar stream into a rootfs, in one streaming pass,
//! through [`Root`] only (HOSTILE 1–9, 16). [`EntryWriter`] applies one entry
//! at a time: it is what .deb data, .apk packages and image layers
//! ([`crate::rootfs::image_sink`]) all go through, so the rules below live
//! here only.
//!
//! Rules beyond what [`Root`] already guarantees:
//! * entry names must be valid [`RelPath`]s; anything but a directory at
//!   the root (`./` as a symlink or file) is refused (HOSTILE 9);
//! * a hard link's target must be a regular file extracted earlier from the
//!   same archive, still a regular file when linked (HOSTILE 8);
//! * a directory entry over an existing directory keeps it (and updates its
//!   mode/owner); over a symlink that leads to a directory inside the root
//!   it keeps the symlink untouched (merged-/usr `bin -> usr/bin`) and never
//!   chmods the target (HOSTILE 6); over anything else it is an error;
//! * `claim` is asked about every entry before it is written, so a caller
//!   can refuse files owned by another package (HOSTILE 16).
//!
//! Image layers ([`Overlay::Layer`]) differ where OCI says a layer replaces
//! what lower layers left: see [`Overlay`].
//!
//! Directory mtimes are not set: later entries change them anyway, and
//! the layer writer clamps every mtime.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use md5::{Digest, Md5};

use crate::archive::tar::{EntryHeader, EntryKind, TarError, TarReader};
use crate::rootfs::safe::{FileKind, FsError, NodeKind, RelPath, Root};

/// What an entry does to what is already at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlay {
    /// A package (dpkg, apk): a directory entry keeps an existing directory,
    /// or a symlink that leads to a directory inside the root (merged
    /// /usr); anything else in its way is an error. Hard links name only
    /// regular files extracted earlier from the same archive.
    #[default]
    Package,
    /// An image layer (OCI): every entry replaces what lower layers left at
    /// its path (a directory replaces a symlink or file, a non-directory
    /// replaces a directory tree), hard links may name any file already in
    /// the root, the root entry's owner and mode apply to the root, and
    /// directories get their mtime.
    Layer,
}

#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Package (or archive) name, for error messages.
    pub package: String,
    /// Apply the archive's uid/gid (needs root); otherwise files belong to
    /// whoever runs the extraction.
    pub preserve_owner: bool,
    /// Compute the MD5 of each regular file while writing it (dpkg md5sums).
    pub md5: bool,
    /// mtimes later than this are set to it (SOURCE_DATE_EPOCH).
    pub mtime_clamp: Option<i64>,
    /// Upper bound on the total bytes of regular-file data.
    pub size_limit: u64,
    /// Apply `SCHILY.xattr.*` records (e.g. security.capability).
    pub xattrs: bool,
    /// Regular files written to `<path>.dpkg-new` instead of `<path>`, as
    /// `dpkg --unpack` does for conffiles (`dpkg --configure` moves them).
    /// The returned [`Extracted::path`] is still the real path.
    pub conffiles: HashSet<RelPath>,
    /// Set the archive's mtime on symlinks and device nodes too. The apk
    /// installer leaves them at the time of extraction (the layer writer
    /// clamps it), and Alpine image digests depend on that.
    pub link_and_node_mtimes: bool,
    /// Package or image-layer rules for what is already there.
    pub overlay: Overlay,
}

impl ExtractOptions {
    pub fn new(package: impl Into<String>) -> Self {
        ExtractOptions {
            package: package.into(),
            preserve_owner: rustix::process::geteuid().is_root(),
            md5: false,
            mtime_clamp: None,
            size_limit: u64::MAX,
            xattrs: true,
            conffiles: HashSet::new(),
            link_and_node_mtimes: true,
            overlay: Overlay::Package,
        }
    }
}

/// One extracted entry, in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub path: RelPath,
    pub kind: EntryKind,
    /// MD5 of a regular file's (or hard link's target's) content, when
    /// [`ExtractOptions::md5`] is set.
    pub md5: Option<[u8; 16]>,
    pub size: u64,
    pub mode: u32,
    pub link_target: Option<Vec<u8>>,
    /// Left out by a path filter ([`Claimed::Filter`]): not on disk.
    pub filtered: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{package}: {source}")]
    Tar {
        package: String,
        #[source]
        source: TarError,
    },
    #[error("{package}: entry {entry}: {reason}")]
    Rejected {
        package: String,
        entry: String,
        reason: String,
    },
    #[error("{package}: entry {entry}: {source}")]
    Fs {
        package: String,
        entry: String,
        #[source]
        source: FsError,
    },
    #[error("{package}: entry {entry}: reading data: {source}")]
    Read {
        package: String,
        entry: String,
        #[source]
        source: io::Error,
    },
}

impl ExtractError {
    /// The entry at fault, as written in the archive (lossy UTF-8).
    pub fn entry(&self) -> Option<&str> {
        match self {
            ExtractError::Tar { .. } => None,
            ExtractError::Rejected { entry, .. }
            | ExtractError::Fs { entry, .. }
            | ExtractError::Read { entry, .. } => Some(entry),
        }
    }
}

/// Applies archive entries to a root, one at a time, remembering what this
/// archive wrote so far (for hard links and claims).
pub struct EntryWriter<'a> {
    root: &'a Root,
    opts: ExtractOptions,
    /// Regular files of this archive, for hard-link checks and their MD5s.
    files: HashMap<RelPath, Option<[u8; 16]>>,
    /// Paths the claim told us to leave alone.
    skipped: HashSet<RelPath>,
    /// Paths a path filter left out.
    filtered: HashSet<RelPath>,
    written: u64,
    buf: Vec<u8>,
    entry: String,
}

/// What a claim callback decided for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// Write the entry.
    Write,
    /// Leave what is there (another package that `Replaces:` this one owns
    /// the path); the entry is not returned in the extracted list.
    Skip,
    /// Do not write the entry (dpkg's `path-exclude`), but return it,
    /// marked `filtered` and without an MD5: dpkg still lists a filtered
    /// path in `info/<pkg>.list` and hashes nothing for it.
    Filter,
}

/// Extracts every entry of `tar` into `root`. `claim` decides whether this
/// package may write each path (`Err(reason)` aborts, naming the entry).
/// On error, what was already written stays (the caller discards the
/// rootfs); nothing is ever written outside the root.
pub fn extract_tar<R: Read>(
    root: &Root,
    tar: R,
    opts: &ExtractOptions,
    claim: &dyn Fn(&RelPath, EntryKind) -> Result<(), String>,
) -> Result<Vec<Extracted>, ExtractError> {
    extract_tar_with(root, tar, opts, &|p, k| {
        claim(p, k).map(|()| Claimed::Write)
    })
}

/// [`extract_tar`] with a claim that may also skip entries (for packages
/// whose files were taken over through `Replaces:`).
pub fn extract_tar_with<R: Read>(
    root: &Root,
    tar: R,
    opts: &ExtractOptions,
    claim: &dyn Fn(&RelPath, EntryKind) -> Result<Claimed, String>,
) -> Result<Vec<Extracted>, ExtractError> {
    let mut reader = TarReader::new(tar);
    let mut x = EntryWriter::new(root, opts.clone());
    let mut out = Vec::new();
    loop {
        // Once interrupted, not one more entry: the cleanup is removing
        // the tree, and writing on would put its directories back.
        crate::cleanup::checkpoint();
        let mut entry = match reader.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(source) => {
                return Err(ExtractError::Tar {
                    package: opts.package.clone(),
                    source,
                })
            }
        };
        let header = std::mem::take(&mut entry.header);
        if let Some(done) = x.apply(&header, &mut entry, claim)? {
            out.push(done);
        }
    }
    Ok(out)
}

impl<'a> EntryWriter<'a> {
    pub fn new(root: &'a Root, opts: ExtractOptions) -> Self {
        EntryWriter {
            root,
            opts,
            files: HashMap::new(),
            skipped: HashSet::new(),
            filtered: HashSet::new(),
            written: 0,
            buf: Vec::new(),
            entry: String::new(),
        }
    }

    /// Applies one entry (its data, for a regular file, read from `data`).
    /// `claim` decides whether this archive may write the path. Returns
    /// what was written, or `None` for an entry left out.
    pub fn apply(
        &mut self,
        h: &EntryHeader,
        data: &mut dyn Read,
        claim: &dyn Fn(&RelPath, EntryKind) -> Result<Claimed, String>,
    ) -> Result<Option<Extracted>, ExtractError> {
        self.entry = h.display_path();
        self.entry_one(h, data, claim)
    }

    fn reject(&self, reason: impl Into<String>) -> ExtractError {
        ExtractError::Rejected {
            package: self.opts.package.clone(),
            entry: self.entry.clone(),
            reason: reason.into(),
        }
    }

    fn fs(&self, source: FsError) -> ExtractError {
        ExtractError::Fs {
            package: self.opts.package.clone(),
            entry: self.entry.clone(),
            source,
        }
    }

    fn entry_one(
        &mut self,
        h: &EntryHeader,
        data: &mut dyn Read,
        claim: &dyn Fn(&RelPath, EntryKind) -> Result<Claimed, String>,
    ) -> Result<Option<Extracted>, ExtractError> {
        let path = RelPath::from_archive(&h.path).map_err(|e| self.reject(e.to_string()))?;
        if path.is_root() {
            if h.kind == EntryKind::Dir {
                // `./`: the root exists; a package leaves its metadata to
                // the image, a layer sets it.
                if self.opts.overlay == Overlay::Layer {
                    self.apply_owner(&path, h)?;
                    self.root.set_mode(&path, h.mode).map_err(|e| self.fs(e))?;
                }
                return Ok(None);
            }
            return Err(self.reject(format!("a {:?} entry would replace the root", h.kind)));
        }
        match claim(&path, h.kind).map_err(|reason| self.reject(reason))? {
            Claimed::Write => {}
            Claimed::Skip => {
                // The reader skips the unread data.
                self.skipped.insert(path);
                return Ok(None);
            }
            Claimed::Filter => {
                self.filtered.insert(path.clone());
                return Ok(Some(Extracted {
                    path,
                    kind: h.kind,
                    md5: None,
                    size: h.size,
                    mode: h.mode,
                    link_target: h.link_target.clone(),
                    filtered: true,
                }));
            }
        }
        let mut md5 = None;
        let mut link_target = None;
        if h.kind != EntryKind::Dir {
            self.clear_directory_for_layer(&path)?;
        }
        match h.kind {
            EntryKind::Dir => self.directory(&path, h)?,
            EntryKind::File => {
                md5 = self.regular_file(&path, h, data)?;
                if self.opts.overlay == Overlay::Package {
                    self.files.insert(path.clone(), md5);
                }
            }
            EntryKind::Symlink => {
                let target = h.link_target.clone().unwrap_or_default();
                if target.is_empty() || target.contains(&0) {
                    return Err(self.reject("empty or invalid symlink target"));
                }
                self.with_parents(&path, |r| r.symlink(&target, &path))?;
                self.apply_owner(&path, h)?;
                self.link_or_node_mtime(&path, h)?;
                link_target = Some(target);
            }
            EntryKind::Hardlink if self.opts.overlay == Overlay::Layer => {
                let raw = h.link_target.clone().unwrap_or_default();
                let target = RelPath::from_archive(&raw)
                    .map_err(|e| self.reject(format!("hard link target: {e}")))?;
                self.with_parents(&path, |r| r.hardlink(&target, &path))?;
                link_target = Some(raw);
            }
            EntryKind::Hardlink => {
                let raw = h.link_target.clone().unwrap_or_default();
                md5 = self.hardlink(&path, &raw)?;
                link_target = Some(raw);
            }
            EntryKind::CharDev | EntryKind::BlockDev | EntryKind::Fifo => {
                let kind = match h.kind {
                    EntryKind::CharDev => NodeKind::CharDev,
                    EntryKind::BlockDev => NodeKind::BlockDev,
                    _ => NodeKind::Fifo,
                };
                self.with_parents(&path, |r| {
                    r.mknod(&path, kind, h.mode, h.dev_major, h.dev_minor)
                })?;
                self.apply_owner(&path, h)?;
                // chown clears setuid/setgid bits; restore the exact mode.
                self.root.set_mode(&path, h.mode).map_err(|e| self.fs(e))?;
                if self.opts.overlay == Overlay::Layer {
                    // As layers always did: a node's xattrs are refused by
                    // `Root::set_xattr` rather than dropped.
                    self.apply_xattrs(&path, h)?;
                }
                self.link_or_node_mtime(&path, h)?;
            }
        }
        Ok(Some(Extracted {
            path,
            kind: h.kind,
            md5,
            size: h.size,
            mode: h.mode,
            link_target,
            filtered: false,
        }))
    }

    /// A layer's non-directory replaces a directory tree at its path.
    fn clear_directory_for_layer(&self, path: &RelPath) -> Result<(), ExtractError> {
        if self.opts.overlay != Overlay::Layer {
            return Ok(());
        }
        match self.root.lstat(path).map_err(|e| self.fs(e))? {
            Some(m) if m.kind == FileKind::Dir => {
                self.root.remove_all(path).map_err(|e| self.fs(e))
            }
            _ => Ok(()),
        }
    }

    fn link_or_node_mtime(&self, path: &RelPath, h: &EntryHeader) -> Result<(), ExtractError> {
        if !self.opts.link_and_node_mtimes {
            return Ok(());
        }
        self.root
            .set_mtime(path, self.mtime(h))
            .map_err(|e| self.fs(e))
    }

    fn mtime(&self, h: &EntryHeader) -> i64 {
        match self.opts.mtime_clamp {
            Some(c) => h.mtime.min(c),
            None => h.mtime,
        }
    }

    /// Runs `op`; if a parent directory is missing (archives need not list
    /// them), creates the parents and runs it again.
    fn with_parents<T>(
        &self,
        path: &RelPath,
        op: impl Fn(&Root) -> Result<T, FsError>,
    ) -> Result<T, ExtractError> {
        match op(self.root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    self.root
                        .mkdir_all(&parent, 0o755)
                        .map_err(|e| self.fs(e))?;
                }
                op(self.root).map_err(|e| self.fs(e))
            }
            r => r.map_err(|e| self.fs(e)),
        }
    }

    fn apply_owner(&self, path: &RelPath, h: &EntryHeader) -> Result<(), ExtractError> {
        if !self.opts.preserve_owner {
            return Ok(());
        }
        let (uid, gid) = self.ids(h)?;
        self.root.set_owner(path, uid, gid).map_err(|e| self.fs(e))
    }

    fn ids(&self, h: &EntryHeader) -> Result<(u32, u32), ExtractError> {
        let uid = u32::try_from(h.uid).map_err(|_| self.reject("uid out of range"))?;
        let gid = u32::try_from(h.gid).map_err(|_| self.reject("gid out of range"))?;
        Ok((uid, gid))
    }

    fn directory(&self, path: &RelPath, h: &EntryHeader) -> Result<(), ExtractError> {
        match self.root.lstat(path).map_err(|e| self.fs(e))? {
            None => {
                self.with_parents(path, |r| r.mkdir(path, 0o700).map(|_| ()))?;
            }
            Some(m) if m.kind == FileKind::Dir => {}
            Some(_) if self.opts.overlay == Overlay::Layer => {
                self.root.remove(path).map_err(|e| self.fs(e))?;
                self.with_parents(path, |r| r.mkdir(path, 0o700).map(|_| ()))?;
            }
            Some(m) if m.kind == FileKind::Symlink => {
                if self.root.is_dir(path) {
                    // Keep the link (e.g. merged /usr); leave its target alone.
                    return Ok(());
                }
                return Err(self.reject("a symlink that does not lead to a directory inside the root is in the way of a directory"));
            }
            Some(m) => {
                return Err(self.reject(format!("a {:?} is in the way of a directory", m.kind)))
            }
        }
        self.apply_owner(path, h)?;
        self.root.set_mode(path, h.mode).map_err(|e| self.fs(e))?;
        self.apply_xattrs(path, h)?;
        if self.opts.overlay == Overlay::Layer {
            self.root
                .set_mtime(path, self.mtime(h))
                .map_err(|e| self.fs(e))?;
        }
        Ok(())
    }

    fn apply_xattrs(&self, path: &RelPath, h: &EntryHeader) -> Result<(), ExtractError> {
        if !self.opts.xattrs {
            return Ok(());
        }
        for (name, value) in &h.xattrs {
            self.root
                .set_xattr(path, name, value)
                .map_err(|e| self.fs(e))?;
        }
        Ok(())
    }

    fn regular_file(
        &mut self,
        path: &RelPath,
        h: &EntryHeader,
        data: &mut dyn Read,
    ) -> Result<Option<[u8; 16]>, ExtractError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; 256 * 1024];
        }
        self.written = self.written.saturating_add(h.size);
        if self.written > self.opts.size_limit {
            return Err(self.reject(format!(
                "package data exceeds the limit of {} bytes",
                self.opts.size_limit
            )));
        }
        let target = if self.opts.conffiles.contains(path) {
            path.with_suffix(".dpkg-new")
                .map_err(|e| self.reject(e.to_string()))?
        } else {
            path.clone()
        };
        let mut file = self.with_parents(&target, |r| r.create_file(&target, 0o600))?;
        let mut hasher = self.opts.md5.then(Md5::new);
        let mut left = h.size;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match data.read(&mut self.buf[..want]) {
                Ok(0) => return Err(self.read_err(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_err(e)),
            };
            if let Some(hs) = hasher.as_mut() {
                hs.update(&self.buf[..n]);
            }
            file.write_all(&self.buf[..n])
                .map_err(|e| self.write_err(&target, e))?;
            left -= n as u64;
        }
        let fd = file.as_fd();
        if self.opts.preserve_owner {
            let (uid, gid) = self.ids(h)?;
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| self.write_err(&target, e.into()))?;
        }
        rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode(h.mode & 0o7777))
            .map_err(|e| self.write_err(&target, e.into()))?;
        let t = rustix::fs::Timespec {
            tv_sec: self.mtime(h),
            tv_nsec: 0,
        };
        rustix::fs::futimens(
            fd,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
        )
        .map_err(|e| self.write_err(&target, e.into()))?;
        if self.opts.xattrs {
            for (name, value) in &h.xattrs {
                rustix::fs::fsetxattr(fd, name.as_str(), value, rustix::fs::XattrFlags::empty())
                    .map_err(|e| self.write_err(&target, e.into()))?;
            }
        }
        Ok(hasher.map(|hs| hs.finalize().into()))
    }

    fn read_err(&self, source: io::Error) -> ExtractError {
        ExtractError::Read {
            package: self.opts.package.clone(),
            entry: self.entry.clone(),
            source,
        }
    }

    fn write_err(&self, path: &RelPath, source: io::Error) -> ExtractError {
        self.fs(FsError {
            op: "write",
            path: path.to_string(),
            source,
        })
    }

    fn hardlink(
        &self,
        path: &RelPath,
        raw_target: &[u8],
    ) -> Result<Option<[u8; 16]>, ExtractError> {
        let target = RelPath::from_archive(raw_target)
            .map_err(|e| self.reject(format!("hard link target: {e}")))?;
        if self.skipped.contains(&target) {
            return Err(self.reject(format!(
                "hard link target {target} was skipped (owned by another package)"
            )));
        }
        if self.filtered.contains(&target) {
            // dpkg's link(2) fails the same way.
            return Err(self.reject(format!(
                "hard link target {target} was left out by a path-exclude filter"
            )));
        }
        let Some(md5) = self.files.get(&target) else {
            return Err(self.reject(format!(
                "hard link target {target} is not a regular file earlier in this archive"
            )));
        };
        let real_target = if self.opts.conffiles.contains(&target) {
            target
                .with_suffix(".dpkg-new")
                .map_err(|e| self.reject(e.to_string()))?
        } else {
            target.clone()
        };
        match self.root.lstat(&real_target).map_err(|e| self.fs(e))? {
            Some(m) if m.kind == FileKind::File => {}
            _ => {
                return Err(self.reject(format!(
                    "hard link target {target} is no longer a regular file"
                )))
            }
        }
        self.with_parents(path, |r| r.hardlink(&real_target, path))?;
        Ok(*md5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tar::testutil::*;

    fn no_claim(_: &RelPath, _: EntryKind) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn extracts_files_dirs_links_with_md5_in_order() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut tar = Vec::new();
        push(
            &mut tar,
            &RawEntry {
                name: b"./",
                typeflag: b'5',
                mode: 0o755,
                ..Default::default()
            },
        );
        push(
            &mut tar,
            &RawEntry {
                name: b"./usr/bin/",
                typeflag: b'5',
                mode: 0o755,
                ..Default::default()
            },
        );
        push(
            &mut tar,
            &RawEntry {
                name: b"./usr/bin/a",
                data: b"hello\n",
                mode: 0o4755,
                ..Default::default()
            },
        );
        push(
            &mut tar,
            &RawEntry {
                name: b"./usr/bin/b",
                typeflag: b'1',
                link: b"./usr/bin/a",
                ..Default::default()
            },
        );
        push(
            &mut tar,
            &RawEntry {
                name: b"./usr/bin/c",
                typeflag: b'2',
                link: b"a",
                ..Default::default()
            },
        );
        push(
            &mut tar,
            &RawEntry {
                name: b"./etc/conf",
                data: b"c=1\n",
                ..Default::default()
            },
        );
        finish(&mut tar);
        let mut opts = ExtractOptions::new("demo");
        opts.md5 = true;
        opts.conffiles
            .insert(RelPath::from_archive(b"etc/conf").unwrap());
        let out = extract_tar(&root, &tar[..], &opts, &no_claim).unwrap();
        let paths: Vec<_> = out.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "/usr/bin",
                "/usr/bin/a",
                "/usr/bin/b",
                "/usr/bin/c",
                "/etc/conf"
            ]
        );
        let md5_hello: [u8; 16] = Md5::digest(b"hello\n").into();
        assert_eq!(out[1].md5, Some(md5_hello));
        assert_eq!(out[2].md5, Some(md5_hello));
        assert_eq!(
            std::fs::read(t.path().join("usr/bin/b")).unwrap(),
            b"hello\n"
        );
        assert_eq!(
            std::fs::read_link(t.path().join("usr/bin/c"))
                .unwrap()
                .as_os_str(),
            "a"
        );
        assert_eq!(
            std::fs::read(t.path().join("etc/conf.dpkg-new")).unwrap(),
            b"c=1\n"
        );
        assert!(!t.path().join("etc/conf").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.path().join("usr/bin/a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o4755);
    }

    #[test]
    fn dir_entry_over_symlink_to_dir_keeps_the_link() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", t.path().join("bin")).unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut tar = Vec::new();
        push(
            &mut tar,
            &RawEntry {
                name: b"./bin/",
                typeflag: b'5',
                mode: 0o700,
                ..Default::default()
            },
        );
        push(
            &mut tar,
            &RawEntry {
                name: b"./bin/sh",
                data: b"#!",
                mode: 0o755,
                ..Default::default()
            },
        );
        finish(&mut tar);
        extract_tar(&root, &tar[..], &ExtractOptions::new("usrmerge"), &no_claim).unwrap();
        assert!(std::fs::symlink_metadata(t.path().join("bin"))
            .unwrap()
            .is_symlink());
        assert_eq!(std::fs::read(t.path().join("usr/bin/sh")).unwrap(), b"#!");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.path().join("usr/bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(
            mode & 0o777,
            0o700,
            "target of the symlink must not be chmodded"
        );
    }

    #[test]
    fn claim_refusal_names_the_entry() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut tar = Vec::new();
        push(
            &mut tar,
            &RawEntry {
                name: b"./etc/passwd",
                data: b"x",
                ..Default::default()
            },
        );
        finish(&mut tar);
        let claim = |p: &RelPath, _: EntryKind| {
            Err(format!(
                "trying to overwrite {p}, which is owned by base-passwd"
            ))
        };
        let err = extract_tar(&root, &tar[..], &ExtractOptions::new("evil"), &claim).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("evil") && msg.contains("./etc/passwd") && msg.contains("base-passwd"),
            "{msg}"
        );
        assert!(!t.path().join("etc/passwd").exists());
    }

    #[test]
    fn skipped_entries_leave_existing_files_alone() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("shared"), b"from the replacing package").unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut tar = Vec::new();
        push(
            &mut tar,
            &RawEntry {
                name: b"./shared",
                data: b"old",
                ..Default::default()
            },
        );
        push(
            &mut tar,
            &RawEntry {
                name: b"./mine",
                data: b"mine",
                ..Default::default()
            },
        );
        finish(&mut tar);
        let claim = |p: &RelPath, _: EntryKind| {
            Ok(if p.as_bytes() == b"shared" {
                Claimed::Skip
            } else {
                Claimed::Write
            })
        };
        let out = extract_tar_with(&root, &tar[..], &ExtractOptions::new("old"), &claim).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path.as_bytes(), b"mine");
        assert_eq!(
            std::fs::read(t.path().join("shared")).unwrap(),
            b"from the replacing package"
        );
        assert_eq!(std::fs::read(t.path().join("mine")).unwrap(), b"mine");
    }

    #[test]
    fn size_limit_is_enforced() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut tar = Vec::new();
        push(
            &mut tar,
            &RawEntry {
                name: b"big",
                data: &[0u8; 2000],
                ..Default::default()
            },
        );
        finish(&mut tar);
        let mut opts = ExtractOptions::new("p");
        opts.size_limit = 1000;
        let err = extract_tar(&root, &tar[..], &opts, &no_claim).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn devices_fifos_and_xattrs() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIP: device nodes and trusted xattrs need root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut pax = pax_record("SCHILY.xattr.user.origin", b"rootstrap");
        pax.extend(pax_record("uid", b"1234"));
        let mut tar = Vec::new();
        push(
            &mut tar,
            &RawEntry {
                name: b"p",
                typeflag: b'x',
                data: &pax,
                ..Default::default()
            },
        );
        push(
            &mut tar,
            &RawEntry {
                name: b"./bin/ping",
                data: b"elf",
                mode: 0o4755,
                ..Default::default()
            },
        );
        let mut null = header(
            &RawEntry {
                name: b"./dev/null",
                typeflag: b'3',
                mode: 0o666,
                ..Default::default()
            },
            false,
        );
        null[329..337].copy_from_slice(b"0000001\0");
        null[337..345].copy_from_slice(b"0000003\0");
        fix_checksum(&mut null);
        tar.extend_from_slice(&null);
        push(
            &mut tar,
            &RawEntry {
                name: b"./run/fifo",
                typeflag: b'6',
                mode: 0o600,
                ..Default::default()
            },
        );
        finish(&mut tar);
        let out = extract_tar(&root, &tar[..], &ExtractOptions::new("devs"), &no_claim).unwrap();
        assert_eq!(out.len(), 3);
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let ping = std::fs::symlink_metadata(t.path().join("bin/ping")).unwrap();
        assert_eq!(ping.uid(), 1234);
        assert_eq!(
            ping.mode() & 0o7777,
            0o4755,
            "setuid must survive the chown"
        );
        let mut value = [0u8; 64];
        let n = rustix::fs::getxattr(
            t.path().join("bin/ping").as_path(),
            "user.origin",
            &mut value[..],
        );
        match n {
            Ok(n) => assert_eq!(&value[..n], b"rootstrap"),
            Err(e) if e == rustix::io::Errno::NOTSUP => {
                eprintln!("SKIP: no user xattrs on this filesystem")
            }
            Err(e) => panic!("getxattr: {e}"),
        }
        let null = std::fs::symlink_metadata(t.path().join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
        assert!(std::fs::symlink_metadata(t.path().join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
    }
}
