//! The one way to write into a root filesystem, safe by construction
//! (HOSTILE 1–9, 37).
//!
//! * Paths that come from packages are [`RelPath`]s, which can only be built
//!   by [`RelPath::from_archive`]: no absolute paths, no `..`, no NUL,
//!   control characters or newlines.
//! * [`Root`] holds an `O_PATH` descriptor of the root directory. Every
//!   operation opens the *parent* directory with
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so symlinks in the
//!   path — absolute or relative — resolve inside the root exactly as they
//!   would after a `chroot`, and never outside it. The leaf operation then
//!   runs on that directory descriptor with no-follow semantics: a symlink
//!   at the leaf is replaced or acted on itself, never written, chmodded,
//!   chowned, timestamped or xattr-ed through.
//! * Files are created with `O_CREAT | O_EXCL | O_NOFOLLOW` after unlinking
//!   whatever was there. `O_EXCL` guarantees a fresh inode, so we never
//!   write through a symlink *or* a hard link into another name's content
//!   (HOSTILE 7). A temporary name plus `rename` would give the same safety
//!   with one more syscall per file and litter on failure; atomic
//!   replacement buys nothing here because nothing reads the rootfs while
//!   it is being built.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};

/// Why an archive path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("absolute path {0:?}")]
    Absolute(String),
    #[error("path {0:?} contains a '..' component")]
    DotDot(String),
    #[error("path {0:?} contains a NUL, control character or newline")]
    Control(String),
}

/// A path relative to a rootfs, normalised and free of `..`: the only kind
/// of path [`Root`] accepts. The empty path is the root itself; operations
/// that would replace the root refuse it (HOSTILE 9).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    /// Validates a path as written in an archive or by our own code
    /// (`"./usr/bin/x"`, `"usr/bin/"`, `"etc/passwd"`). Leading `./`,
    /// repeated slashes, `.` components and a trailing slash are dropped.
    pub fn from_archive(raw: &[u8]) -> Result<RelPath, PathError> {
        let shown = || String::from_utf8_lossy(raw).into_owned();
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.iter().any(|&c| c < 0x20 || c == 0x7f) {
            return Err(PathError::Control(shown()));
        }
        if raw[0] == b'/' {
            return Err(PathError::Absolute(shown()));
        }
        let mut out = Vec::with_capacity(raw.len());
        for comp in raw.split(|&c| c == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => return Err(PathError::DotDot(shown())),
                c => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(c);
                }
            }
        }
        Ok(RelPath(out))
    }

    /// A path as written *inside* the container (a Dockerfile `COPY`
    /// destination, `WORKDIR`, a path from the image config): absolute or
    /// relative to the root, with `..` resolved lexically and clamped at
    /// the root, as `/..` is `/` in a chroot. Symlinks are resolved later,
    /// inside the root, by [`Root`]. NUL and control characters are refused.
    pub fn from_container_path(raw: &[u8]) -> Result<RelPath, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.iter().any(|&c| c < 0x20 || c == 0x7f) {
            return Err(PathError::Control(
                String::from_utf8_lossy(raw).into_owned(),
            ));
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for comp in raw.split(|&c| c == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        Ok(RelPath(parts.join(&b'/')))
    }

    /// The root itself (what `./` names in an archive).
    pub fn root() -> RelPath {
        RelPath(Vec::new())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The parent directory (`None` for the root).
    pub fn parent(&self) -> Option<RelPath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.iter().rposition(|&c| c == b'/') {
            Some(i) => RelPath(self.0[..i].to_vec()),
            None => RelPath::root(),
        })
    }

    /// The last component (empty for the root).
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&c| c == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// This path with `suffix` appended to its last component
    /// (`etc/x` + `.dpkg-new`). The suffix must not contain `/`.
    pub fn with_suffix(&self, suffix: &str) -> Result<RelPath, PathError> {
        let mut raw = self.0.clone();
        raw.extend_from_slice(suffix.as_bytes());
        if suffix.contains('/') {
            return Err(PathError::Control(
                String::from_utf8_lossy(&raw).into_owned(),
            ));
        }
        RelPath::from_archive(&raw)
    }

    /// `self/child`, validating `child` like an archive path.
    pub fn join(&self, child: &[u8]) -> Result<RelPath, PathError> {
        let child = RelPath::from_archive(child)?;
        if self.is_root() {
            return Ok(child);
        }
        let mut raw = self.0.clone();
        if !child.is_root() {
            raw.push(b'/');
            raw.extend_from_slice(&child.0);
        }
        Ok(RelPath(raw))
    }

    /// The absolute form inside the rootfs, as dpkg's `.list` files write
    /// it: `/usr/bin/x`, and `/.` for the root.
    pub fn to_absolute(&self) -> Vec<u8> {
        if self.is_root() {
            return b"/.".to_vec();
        }
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.push(b'/');
        v.extend_from_slice(&self.0);
        v
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(&self.0))
    }
}

/// A failed filesystem operation inside the root, naming the operation and
/// the path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct FsError {
    pub op: &'static str,
    pub path: String,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The errno, when the failure came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

pub type FsResult<T> = Result<T, FsError>;

fn fs_err<'a>(op: &'static str, path: &'a RelPath) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError {
        op,
        path: path.to_string(),
        source,
    }
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// File types as seen by `lstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

/// The parts of `lstat` that callers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: FileKind,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    /// mtime and ctime to the nanosecond (change detection).
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
}

impl Meta {
    fn from_stat(st: &rfs::Stat) -> Meta {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => FileKind::Dir,
            FileType::Symlink => FileKind::Symlink,
            FileType::CharacterDevice => FileKind::CharDev,
            FileType::BlockDevice => FileKind::BlockDev,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            _ => FileKind::File,
        };
        Meta {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
            mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
            ctime_ns: i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec),
            #[allow(clippy::useless_conversion)]
            nlink: u64::from(st.st_nlink),
            dev: st.st_dev,
            ino: st.st_ino,
            rdev: st.st_rdev,
        }
    }
}

/// Special files [`Root::mknod`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    CharDev,
    BlockDev,
    Fifo,
}

/// A root filesystem directory. `Send + Sync`: it is only a descriptor,
/// and every operation resolves afresh, so threads may share it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    /// Opens an existing directory as a root. `path` is the caller's (host)
    /// path and is resolved normally.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The host path the root was opened from (for the sandbox and messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `openat2` inside the root, retrying the `EAGAIN` the kernel returns
    /// when a concurrent rename makes an in-root lookup ambiguous.
    fn resolve(&self, p: &RelPath, flags: OFlags) -> io::Result<OwnedFd> {
        let target: &[u8] = if p.is_root() { b"." } else { p.as_bytes() };
        let mut attempts = 0;
        loop {
            match rfs::openat2(
                &self.fd,
                target,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Err(rustix::io::Errno::AGAIN) if attempts < 16 => attempts += 1,
                r => return r.map_err(errno),
            }
        }
    }

    /// Opens the directory `p` (following symlinks inside the root).
    fn dir_fd(&self, p: &RelPath) -> io::Result<OwnedFd> {
        self.resolve(p, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// The parent directory's descriptor and the leaf name. The root itself
    /// has no leaf: operations on it are refused.
    fn parent(&self, p: &RelPath) -> io::Result<(OwnedFd, CString)> {
        let parent = p.parent().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "refusing to operate on the root itself",
            )
        })?;
        let fd = self.dir_fd(&parent)?;
        let leaf = CString::new(p.file_name()).map_err(|_| other("NUL in path"))?;
        Ok((fd, leaf))
    }

    /// `lstat`; `None` when the path (or a parent) does not exist.
    pub fn lstat(&self, p: &RelPath) -> FsResult<Option<Meta>> {
        let res = if p.is_root() {
            rfs::fstat(&self.fd).map_err(errno)
        } else {
            match self.parent(p) {
                Ok((dir, leaf)) => {
                    rfs::statat(&dir, &leaf, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
                }
                Err(e) => Err(e),
            }
        };
        match res {
            Ok(st) => Ok(Some(Meta::from_stat(&st))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(fs_err("lstat", p)(e)),
        }
    }

    /// `stat` following symlinks inside the root; `None` if nothing is there.
    pub fn stat(&self, p: &RelPath) -> FsResult<Option<Meta>> {
        match self.resolve(p, OFlags::PATH) {
            Ok(fd) => Ok(Some(Meta::from_stat(
                &rfs::fstat(&fd).map_err(errno).map_err(fs_err("stat", p))?,
            ))),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                Ok(None)
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(None),
            Err(e) => Err(fs_err("stat", p)(e)),
        }
    }

    /// Whether `p` resolves (inside the root) to a directory.
    pub fn is_dir(&self, p: &RelPath) -> bool {
        self.dir_fd(p).is_ok()
    }

    /// Creates `p` and missing parents (like `mkdir -p`, with symlinks in
    /// the way followed inside the root). New directories get `mode` minus
    /// the umask; an existing non-directory is an error.
    pub fn mkdir_all(&self, p: &RelPath, mode: u32) -> FsResult<()> {
        self.mkdir_all_inner(p, mode).map_err(fs_err("mkdir", p))
    }

    fn mkdir_all_inner(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        match self.dir_fd(p) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = p.parent() {
            self.mkdir_all_inner(&parent, mode)?;
        }
        let (dir, leaf) = self.parent(p)?;
        match rfs::mkdirat(&dir, &leaf, Mode::from_raw_mode(mode)) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => match rfs::openat(
                &dir,
                &leaf,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                // Another thread made it first.
                Ok(_) => Ok(()),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory (or a symlink that leads nowhere inside the root)",
                )),
            },
            Err(e) => Err(errno(e)),
        }
    }

    /// Creates a directory (single level; the parent must exist). Returns
    /// `false` when a directory — not a symlink to one — is already there.
    pub fn mkdir(&self, p: &RelPath, mode: u32) -> FsResult<bool> {
        let (dir, leaf) = self.parent(p).map_err(fs_err("mkdir", p))?;
        match rfs::mkdirat(&dir, &leaf, Mode::from_raw_mode(mode)) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => {
                let st = rfs::statat(&dir, &leaf, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno)
                    .map_err(fs_err("mkdir", p))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    Ok(false)
                } else {
                    Err(fs_err("mkdir", p)(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "exists and is not a directory",
                    )))
                }
            }
            Err(e) => Err(fs_err("mkdir", p)(errno(e))),
        }
    }

    /// Runs `create` on the leaf; when something other than a directory is
    /// in the way, unlinks it (never following it) and tries again.
    fn replace_leaf<T>(
        &self,
        p: &RelPath,
        op: &'static str,
        mut create: impl FnMut(BorrowedFd<'_>, &CString) -> rustix::io::Result<T>,
    ) -> FsResult<T> {
        let (dir, leaf) = self.parent(p).map_err(fs_err(op, p))?;
        for _ in 0..4 {
            match create(dir.as_fd(), &leaf) {
                Err(rustix::io::Errno::EXIST) => {
                    let st = rfs::statat(&dir, &leaf, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(errno)
                        .map_err(fs_err(op, p))?;
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                        return Err(fs_err(op, p)(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "a directory is in the way",
                        )));
                    }
                    match rfs::unlinkat(&dir, &leaf, AtFlags::empty()) {
                        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                        Err(e) => return Err(fs_err(op, p)(errno(e))),
                    }
                }
                r => return r.map_err(errno).map_err(fs_err(op, p)),
            }
        }
        Err(fs_err(op, p)(other(
            "path keeps reappearing while it is being replaced",
        )))
    }

    /// Creates a fresh regular file with exactly `mode` (umask ignored),
    /// replacing a file, symlink or hard link that is there without ever
    /// opening it. Open for writing.
    pub fn create_file(&self, p: &RelPath, mode: u32) -> FsResult<File> {
        let fd = self.replace_leaf(p, "create", |dir, leaf| {
            rfs::openat(
                dir,
                leaf,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode & 0o777),
            )
        })?;
        rfs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
            .map_err(errno)
            .map_err(fs_err("chmod", p))?;
        Ok(File::from(fd))
    }

    /// Writes a whole file (see [`Root::create_file`]).
    pub fn write_file(&self, p: &RelPath, bytes: &[u8], mode: u32) -> FsResult<()> {
        let mut f = self.create_file(p, mode)?;
        f.write_all(bytes).map_err(fs_err("write", p))
    }

    /// Creates (or replaces) a symlink. The target is stored verbatim; it
    /// is only ever followed inside the root.
    pub fn symlink(&self, target: &[u8], p: &RelPath) -> FsResult<()> {
        let target =
            CString::new(target).map_err(|_| fs_err("symlink", p)(other("NUL in link target")))?;
        self.replace_leaf(p, "symlink", |dir, leaf| rfs::symlinkat(&target, dir, leaf))
    }

    /// Makes `new` a hard link to `existing` (both inside the root; a
    /// symlink at `existing` is linked itself, never followed).
    pub fn hardlink(&self, existing: &RelPath, new: &RelPath) -> FsResult<()> {
        let (odir, oleaf) = self.parent(existing).map_err(fs_err("link", existing))?;
        self.replace_leaf(new, "link", |dir, leaf| {
            rfs::linkat(&odir, &oleaf, dir, leaf, AtFlags::empty())
        })
    }

    /// Creates a device node or FIFO with exactly `mode`.
    pub fn mknod(
        &self,
        p: &RelPath,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> FsResult<()> {
        let ft = match kind {
            NodeKind::CharDev => FileType::CharacterDevice,
            NodeKind::BlockDev => FileType::BlockDevice,
            NodeKind::Fifo => FileType::Fifo,
        };
        let dev = rfs::makedev(major, minor);
        self.replace_leaf(p, "mknod", |dir, leaf| {
            rfs::mknodat(dir, leaf, ft, Mode::from_raw_mode(mode & 0o777), dev)
        })?;
        self.set_mode(p, mode)
    }

    pub fn mkfifo(&self, p: &RelPath, mode: u32) -> FsResult<()> {
        self.mknod(p, NodeKind::Fifo, mode, 0, 0)
    }

    /// `lchown`: a symlink's own owner changes, never its target's.
    pub fn set_owner(&self, p: &RelPath, uid: u32, gid: u32) -> FsResult<()> {
        let (dir, leaf) = self.leaf_or_root(p).map_err(fs_err("chown", p))?;
        rfs::chownat(
            &dir,
            &leaf,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::EMPTY_PATH,
        )
        .map_err(errno)
        .map_err(fs_err("chown", p))
    }

    /// Like `parent`, but the root maps to (root fd, "") for `AT_EMPTY_PATH`.
    fn leaf_or_root(&self, p: &RelPath) -> io::Result<(OwnedFd, CString)> {
        if p.is_root() {
            Ok((self.dir_fd(p)?, CString::default()))
        } else {
            self.parent(p)
        }
    }

    /// `chmod` without following: on a symlink it does nothing (Linux has no
    /// symlink modes), so a target is never chmodded (HOSTILE 6).
    pub fn set_mode(&self, p: &RelPath, mode: u32) -> FsResult<()> {
        self.set_mode_inner(p, mode).map_err(fs_err("chmod", p))
    }

    fn set_mode_inner(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        let (dir, leaf) = self.leaf_or_root(p)?;
        // Pin the inode first: an O_PATH|O_NOFOLLOW descriptor is the
        // symlink itself if a symlink is there.
        let fd = rfs::openat(
            &dir,
            &leaf,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let fd = match fd {
            Ok(fd) => fd,
            Err(_) if p.is_root() => self.dir_fd(p)?,
            Err(e) => return Err(errno(e)),
        };
        let st = rfs::fstat(&fd).map_err(errno)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Ok(());
        }
        chmod_pinned(&fd, mode & 0o7777)
    }

    /// Sets atime and mtime (seconds), on a symlink itself if it is one.
    pub fn set_mtime(&self, p: &RelPath, mtime: i64) -> FsResult<()> {
        let (dir, leaf) = self.leaf_or_root(p).map_err(fs_err("utimes", p))?;
        let t = Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        let flags = if p.is_root() {
            AtFlags::EMPTY_PATH
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        let r = if p.is_root() {
            rfs::futimens(&self.dir_fd_rw(p).map_err(fs_err("utimes", p))?, &times)
        } else {
            rfs::utimensat(&dir, &leaf, &times, flags)
        };
        r.map_err(errno).map_err(fs_err("utimes", p))
    }

    fn dir_fd_rw(&self, p: &RelPath) -> io::Result<OwnedFd> {
        self.resolve(p, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// A readable descriptor of the directory `p` (symlinks followed inside
    /// the root only), for callers that must pin a directory across a run:
    /// create and later remove entries in it with the `*at` calls (which
    /// never follow a leaf), or restore its timestamps.
    pub fn open_dir(&self, p: &RelPath) -> FsResult<OwnedFd> {
        self.dir_fd_rw(p).map_err(fs_err("open directory", p))
    }

    /// The extended attributes of a regular file or directory (no symlink
    /// followed at the leaf), name → value, sorted by name.
    pub fn xattrs(&self, p: &RelPath) -> FsResult<Vec<(String, Vec<u8>)>> {
        let fd = self
            .open_nofollow_rdonly(p)
            .map_err(fs_err("listxattr", p))?;
        let mut names = vec![0u8; 64 * 1024];
        let n = rfs::flistxattr(&fd, &mut names[..])
            .map_err(errno)
            .map_err(fs_err("listxattr", p))?;
        let mut out = Vec::new();
        for raw in names[..n.min(names.len())].split(|&b| b == 0) {
            let Ok(name) = std::str::from_utf8(raw) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let mut value = vec![0u8; 64 * 1024];
            let got = match rfs::fgetxattr(&fd, name, &mut value[..]) {
                Ok(n) => n,
                // Removed between list and get: there is nothing to read.
                Err(rustix::io::Errno::NODATA) => continue,
                Err(e) => return Err(fs_err("getxattr", p)(errno(e))),
            };
            value.truncate(got);
            out.push((name.to_string(), value));
        }
        out.sort();
        Ok(out)
    }

    /// Sets an extended attribute on a regular file or directory, through a
    /// descriptor opened with `O_NOFOLLOW` (symlinks and special files are
    /// refused rather than followed or opened).
    pub fn set_xattr(&self, p: &RelPath, name: &str, value: &[u8]) -> FsResult<()> {
        let fd = self
            .open_nofollow_rdonly(p)
            .map_err(fs_err("setxattr", p))?;
        rfs::fsetxattr(&fd, name, value, rfs::XattrFlags::empty())
            .map_err(errno)
            .map_err(fs_err("setxattr", p))
    }

    /// Opens a regular file or directory read-only without following a
    /// symlink at the leaf and without opening devices or FIFOs.
    fn open_nofollow_rdonly(&self, p: &RelPath) -> io::Result<OwnedFd> {
        if p.is_root() {
            return self.dir_fd_rw(p);
        }
        let (dir, leaf) = self.parent(p)?;
        let pinned = rfs::openat(
            &dir,
            &leaf,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let st = rfs::fstat(&pinned).map_err(errno)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile | FileType::Directory => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "not a regular file or directory",
                ))
            }
        }
        let fd = rfs::openat(
            &dir,
            &leaf,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let again = rfs::fstat(&fd).map_err(errno)?;
        if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
            return Err(other("path changed while it was being opened"));
        }
        Ok(fd)
    }

    /// Removes a file, symlink, special file or empty directory (no follow).
    pub fn remove(&self, p: &RelPath) -> FsResult<()> {
        let (dir, leaf) = self.parent(p).map_err(fs_err("remove", p))?;
        match rfs::unlinkat(&dir, &leaf, AtFlags::empty()) {
            Err(rustix::io::Errno::ISDIR) => rfs::unlinkat(&dir, &leaf, AtFlags::REMOVEDIR),
            r => r,
        }
        .map_err(errno)
        .map_err(fs_err("remove", p))
    }

    /// Removes `p` and, for a directory, everything below it. Symlinks are
    /// removed, never followed. Missing paths are not an error.
    pub fn remove_all(&self, p: &RelPath) -> FsResult<()> {
        let (dir, leaf) = match self.parent(p) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(fs_err("remove", p)(e)),
        };
        remove_tree_at(dir.as_fd(), &leaf).map_err(fs_err("remove", p))
    }

    /// Renames within the root (leaf symlinks are moved, not followed).
    pub fn rename(&self, from: &RelPath, to: &RelPath) -> FsResult<()> {
        let (fdir, fleaf) = self.parent(from).map_err(fs_err("rename", from))?;
        let (tdir, tleaf) = self.parent(to).map_err(fs_err("rename", to))?;
        rfs::renameat(&fdir, &fleaf, &tdir, &tleaf)
            .map_err(errno)
            .map_err(fs_err("rename", from))
    }

    /// Moves `from` in the root `src` to `to` in this root, replacing a
    /// non-directory at `to`. Both roots must be on one filesystem.
    pub fn rename_from(&self, src: &Root, from: &RelPath, to: &RelPath) -> FsResult<()> {
        let (fdir, fleaf) = src.parent(from).map_err(fs_err("rename", from))?;
        let (tdir, tleaf) = self.parent(to).map_err(fs_err("rename", to))?;
        rfs::renameat(&fdir, &fleaf, &tdir, &tleaf)
            .map_err(errno)
            .map_err(fs_err("rename", to))
    }

    pub fn read_link(&self, p: &RelPath) -> FsResult<Vec<u8>> {
        let (dir, leaf) = self.parent(p).map_err(fs_err("readlink", p))?;
        rfs::readlinkat(&dir, &leaf, Vec::new())
            .map(|c| c.into_bytes())
            .map_err(errno)
            .map_err(fs_err("readlink", p))
    }

    /// Opens a regular file for reading, following symlinks inside the root
    /// only. Anything but a regular file is refused.
    pub fn open_read(&self, p: &RelPath) -> FsResult<File> {
        let fd = self
            .resolve(p, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)
            .map_err(fs_err("open", p))?;
        let st = rfs::fstat(&fd).map_err(errno).map_err(fs_err("open", p))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(fs_err("open", p)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        // Blocking mode back on for ordinary reads.
        rfs::fcntl_setfl(&fd, OFlags::empty())
            .map_err(errno)
            .map_err(fs_err("open", p))?;
        Ok(File::from(fd))
    }

    /// Names in directory `p` (resolved inside the root), sorted, without
    /// `.` and `..`.
    pub fn read_dir(&self, p: &RelPath) -> FsResult<Vec<Vec<u8>>> {
        let fd = self
            .resolve(p, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(fs_err("readdir", p))?;
        let mut dir = rfs::Dir::read_from(&fd)
            .map_err(errno)
            .map_err(fs_err("readdir", p))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(errno).map_err(fs_err("readdir", p))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Reads a whole regular file.
    pub fn read_file(&self, p: &RelPath) -> FsResult<Vec<u8>> {
        let mut f = self.open_read(p)?;
        let mut v = Vec::new();
        io::Read::read_to_end(&mut f, &mut v).map_err(fs_err("read", p))?;
        Ok(v)
    }
}

/// chmod of an `O_PATH` descriptor: `fchmodat2(AT_EMPTY_PATH)` (Linux
/// 6.6+), else through its `/proc/self/fd` entry, which names exactly the
/// pinned inode.
fn chmod_pinned(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    let empty = c"";
    // SAFETY: plain syscall with a valid fd and a NUL-terminated string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            empty.as_ptr(),
            mode as libc::c_uint,
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EINVAL) => {
            let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            rfs::chmod(proc_path.as_str(), Mode::from_raw_mode(mode)).map_err(errno)
        }
        _ => Err(e),
    }
}

fn remove_tree_at(dir: BorrowedFd<'_>, name: &CString) -> io::Result<()> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno(e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rfs::unlinkat(dir, name, AtFlags::empty()).map_err(errno);
    }
    let child = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(&child).map_err(errno)? {
        let entry = entry.map_err(errno)?;
        let n = entry.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n.to_owned());
        }
    }
    for n in names {
        remove_tree_at(child.as_fd(), &n)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn relpath_table() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"./usr/bin/x", b"usr/bin/x"),
            (b"usr/bin/", b"usr/bin"),
            (b"usr//bin/./x", b"usr/bin/x"),
            (b"./", b""),
            (b".", b""),
            (b"a..b/..c", b"a..b/..c"),
            ("ünï/çødé".as_bytes(), "ünï/çødé".as_bytes()),
        ];
        for (raw, want) in ok {
            assert_eq!(
                RelPath::from_archive(raw).unwrap().as_bytes(),
                *want,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let bad: &[(&[u8], PathError)] = &[
            (b"", PathError::Empty),
            (b"/etc/x", PathError::Absolute("/etc/x".into())),
            (b"/.", PathError::Absolute("/.".into())),
            (b"../x", PathError::DotDot("../x".into())),
            (b"./../x", PathError::DotDot("./../x".into())),
            (b"a/../../x", PathError::DotDot("a/../../x".into())),
            (b"a/..", PathError::DotDot("a/..".into())),
            (b"a\nb", PathError::Control("a\nb".into())),
            (b"a\0b", PathError::Control("a\0b".into())),
            (b"a\x1bb", PathError::Control("a\x1bb".into())),
            (b"a\x7f", PathError::Control("a\x7f".into())),
            (b"a\rb", PathError::Control("a\rb".into())),
        ];
        for (raw, want) in bad {
            assert_eq!(&RelPath::from_archive(raw).unwrap_err(), want);
        }
    }

    #[test]
    fn container_paths_clamp_at_the_root() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/usr/local/bin", b"usr/local/bin"),
            (b"/../../etc", b"etc"),
            (b"a/../../b/./c/", b"b/c"),
            (b"/", b""),
            (b"rel", b"rel"),
        ];
        for (raw, want) in cases {
            assert_eq!(RelPath::from_container_path(raw).unwrap().as_bytes(), *want);
        }
        assert!(RelPath::from_container_path(b"a\nb").is_err());
        assert!(RelPath::from_container_path(b"").is_err());
    }

    #[test]
    fn relpath_helpers() {
        let p = RelPath::from_archive(b"./etc/foo/bar").unwrap();
        assert_eq!(p.parent().unwrap().as_bytes(), b"etc/foo");
        assert_eq!(p.file_name(), b"bar");
        assert_eq!(p.to_absolute(), b"/etc/foo/bar");
        assert_eq!(RelPath::root().to_absolute(), b"/.");
        assert_eq!(
            p.with_suffix(".dpkg-new").unwrap().as_bytes(),
            b"etc/foo/bar.dpkg-new"
        );
        assert!(RelPath::root().parent().is_none());
        assert_eq!(
            RelPath::from_archive(b"x").unwrap().parent().unwrap(),
            RelPath::root()
        );
        assert!(p.join(b"../x").is_err());
    }

    fn setup() -> (tempfile::TempDir, Root, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let rootdir = t.path().join("root");
        let outside = t.path().join("outside");
        std::fs::create_dir(&rootdir).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"host").unwrap();
        let root = Root::open(&rootdir).unwrap();
        (t, root, outside)
    }

    fn rp(s: &str) -> RelPath {
        RelPath::from_archive(s.as_bytes()).unwrap()
    }

    #[test]
    fn open_dir_and_xattrs_stay_inside_the_root() {
        let (_t, root, outside) = setup();
        root.symlink(outside.as_os_str().as_encoded_bytes(), &rp("out"))
            .unwrap();
        // `out` names rootfs/<outside path>, which does not exist.
        assert!(root.open_dir(&rp("out")).is_err());
        root.mkdir_all(&rp("usr/sbin"), 0o755).unwrap();
        let dir = root.open_dir(&rp("usr/sbin")).unwrap();
        rustix::fs::statat(&dir, ".", AtFlags::empty()).unwrap();

        root.write_file(&rp("f"), b"x", 0o644).unwrap();
        if root.set_xattr(&rp("f"), "user.b", b"2").is_err() {
            eprintln!("SKIP: no user xattrs on this filesystem");
            return;
        }
        root.set_xattr(&rp("f"), "user.a", b"1").unwrap();
        let got = root.xattrs(&rp("f")).unwrap();
        let user: Vec<_> = got.iter().filter(|(n, _)| n.starts_with("user.")).collect();
        assert_eq!(
            user,
            [
                &("user.a".to_string(), b"1".to_vec()),
                &("user.b".to_string(), b"2".to_vec())
            ]
        );
        // A symlink is refused, never followed.
        root.symlink(b"f", &rp("l")).unwrap();
        assert!(root.xattrs(&rp("l")).is_err());
    }

    #[test]
    fn absolute_and_relative_symlinks_resolve_inside_the_root() {
        let (_t, root, outside) = setup();
        root.symlink(outside.as_os_str().as_encoded_bytes(), &rp("abs"))
            .unwrap();
        root.symlink(b"../../../../../../..", &rp("rel")).unwrap();
        // The link's target does not exist inside the root: refused, and
        // nothing appears outside (HOSTILE 5).
        assert!(root.mkdir_all(&rp("abs/sub"), 0o755).is_err());
        assert!(!outside.join("sub").exists());
        // Once the target exists inside the root, it is used.
        root.mkdir_all(
            &RelPath::from_archive(
                outside
                    .strip_prefix("/")
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes(),
            )
            .unwrap(),
            0o755,
        )
        .unwrap();
        root.mkdir_all(&rp("abs/sub"), 0o755).unwrap();
        root.write_file(&rp("rel/secret"), b"inside", 0o644)
            .unwrap();
        root.write_file(&rp("abs/sub/f"), b"x", 0o644).unwrap();
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"host");
        assert!(!outside.join("sub").exists());
        // rel -> ../.. clamps to the root itself.
        assert_eq!(
            std::fs::read(root.path().join("secret")).unwrap(),
            b"inside"
        );
        assert!(root
            .path()
            .join(outside.strip_prefix("/").unwrap())
            .join("sub/f")
            .exists());
    }

    #[test]
    fn create_file_replaces_links_without_writing_through() {
        let (_t, root, outside) = setup();
        let secret = outside.join("secret");
        std::os::unix::fs::symlink(&secret, root.path().join("sym")).unwrap();
        std::fs::write(root.path().join("orig"), b"orig").unwrap();
        std::fs::hard_link(root.path().join("orig"), root.path().join("hard")).unwrap();
        root.write_file(&rp("sym"), b"new", 0o600).unwrap();
        root.write_file(&rp("hard"), b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&secret).unwrap(), b"host");
        assert_eq!(std::fs::read(root.path().join("orig")).unwrap(), b"orig");
        let m = std::fs::symlink_metadata(root.path().join("sym")).unwrap();
        assert!(m.is_file());
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    fn chmod_chown_utimes_never_follow() {
        let (_t, root, outside) = setup();
        let secret = outside.join("secret");
        let before = std::fs::metadata(&secret).unwrap();
        std::os::unix::fs::symlink(&secret, root.path().join("l")).unwrap();
        root.set_mode(&rp("l"), 0o777).unwrap();
        root.set_mtime(&rp("l"), 12345).unwrap();
        // Only root may give a file away, so only then can a chown that
        // followed the link show on the target.
        if rustix::process::geteuid().is_root() {
            let (uid, gid) = (before.uid() + 4321, before.gid() + 4321);
            root.set_owner(&rp("l"), uid, gid).unwrap();
            let link = std::fs::symlink_metadata(root.path().join("l")).unwrap();
            assert_eq!((link.uid(), link.gid()), (uid, gid));
        } else {
            eprintln!("SKIP: chown to another owner needs root");
        }
        assert!(root.set_xattr(&rp("l"), "user.x", b"1").is_err());
        let after = std::fs::metadata(&secret).unwrap();
        assert_eq!(before.mode(), after.mode());
        assert_eq!(before.mtime(), after.mtime());
        assert_eq!((before.uid(), before.gid()), (after.uid(), after.gid()));
        assert_eq!(
            std::fs::symlink_metadata(root.path().join("l"))
                .unwrap()
                .mtime(),
            12345
        );
    }

    #[test]
    fn set_mode_on_files_and_dirs_is_exact() {
        let (_t, root, _o) = setup();
        root.mkdir_all(&rp("a/b"), 0o700).unwrap();
        root.set_mode(&rp("a/b"), 0o1777).unwrap();
        root.write_file(&rp("a/f"), b"", 0o644).unwrap();
        root.set_mode(&rp("a/f"), 0o4755).unwrap();
        let mode = |p: &str| {
            std::fs::symlink_metadata(root.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("a/b"), 0o1777);
        assert_eq!(mode("a/f"), 0o4755);
    }

    #[test]
    fn hardlink_remove_rename_readlink_lstat() {
        let (_t, root, _o) = setup();
        root.write_file(&rp("f"), b"data", 0o644).unwrap();
        root.hardlink(&rp("f"), &rp("g")).unwrap();
        assert_eq!(root.lstat(&rp("g")).unwrap().unwrap().nlink, 2);
        root.symlink(b"/f", &rp("s")).unwrap();
        assert_eq!(root.read_link(&rp("s")).unwrap(), b"/f");
        assert_eq!(
            root.lstat(&rp("s")).unwrap().unwrap().kind,
            FileKind::Symlink
        );
        // Absolute symlink followed inside the root for reads.
        assert_eq!(root.read_file(&rp("s")).unwrap(), b"data");
        root.rename(&rp("g"), &rp("h")).unwrap();
        assert!(root.lstat(&rp("g")).unwrap().is_none());
        root.remove(&rp("h")).unwrap();
        root.mkdir_all(&rp("d/e/f"), 0o755).unwrap();
        root.write_file(&rp("d/e/f/x"), b"", 0o644).unwrap();
        root.symlink(b"/", &rp("d/e/up")).unwrap();
        root.remove_all(&rp("d")).unwrap();
        assert!(root.lstat(&rp("d")).unwrap().is_none());
        assert!(
            root.lstat(&rp("f")).unwrap().is_some(),
            "remove_all must not follow d/e/up"
        );
        assert!(root.symlink(b"x", &RelPath::root()).is_err());
    }

    #[test]
    fn mkfifo_and_root_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Root>();
        let (_t, root, _o) = setup();
        root.mkfifo(&rp("fifo"), 0o600).unwrap();
        assert_eq!(
            root.lstat(&rp("fifo")).unwrap().unwrap().kind,
            FileKind::Fifo
        );
        assert!(root.open_read(&rp("fifo")).is_err());
    }
}
