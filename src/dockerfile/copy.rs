//! COPY/ADD file transfer between two roots (the build context or another
//! stage's rootfs, and the stage's rootfs), entirely through the safe
//! [`Root`] API: the destination resolves inside the target root even
//! through absolute symlinks (HOSTILE 37), and symlinks in the source are
//! copied as links, never followed, so nothing outside the context is ever
//! read (HOSTILE 38).

use std::io;

use crate::dockerfile::DockerIgnore;
use crate::rootfs::safe::{FileKind, FsError, NodeKind, PathError, RelPath, Root};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("invalid path: {0}")]
    Path(#[from] PathError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}: no such file or directory in the source")]
    Missing(String),
    #[error("invalid source pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
}

/// How copied entries are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions<'a> {
    /// Owner for every written entry; `None` keeps the source's (ADD of a
    /// tar archive keeps the archive's owners).
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: mode for every written file and directory.
    pub chmod: Option<u32>,
    /// SOURCE_DATE_EPOCH: mtimes later than this are clamped.
    pub epoch: Option<i64>,
    /// `.dockerignore` of the build context (paths relative to the source root).
    pub ignore: Option<&'a DockerIgnore>,
}

fn shown(p: &RelPath) -> String {
    String::from_utf8_lossy(p.as_bytes()).into_owned()
}

/// Expands a COPY source (possibly a glob) into the matching paths of
/// `from`, sorted. A plain path is returned as is when it exists.
pub fn expand_source(
    from: &Root,
    src: &str,
    ignore: Option<&DockerIgnore>,
) -> Result<Vec<RelPath>, CopyError> {
    let rel = RelPath::from_container_path(src.as_bytes()).or_else(|e| match e {
        PathError::Empty => Ok(RelPath::root()),
        e => Err(e),
    })?;
    if !src.contains(['*', '?', '[']) {
        if from.lstat(&rel)?.is_none() {
            return Err(CopyError::Missing(src.to_string()));
        }
        return Ok(vec![rel]);
    }
    let pattern = String::from_utf8_lossy(rel.as_bytes()).into_owned();
    let matcher = crate::dockerfile::parse_dockerignore(&pattern)
        .ok()
        .and_then(|d| d.patterns.into_iter().next())
        .ok_or_else(|| CopyError::Pattern {
            pattern: src.to_string(),
            reason: "not a valid glob".into(),
        })?;
    let mut found = Vec::new();
    let mut pending = vec![RelPath::root()];
    while let Some(dir) = pending.pop() {
        for name in from.read_dir(&dir)? {
            let path = dir.join(&name)?;
            let text = shown(&path);
            if ignore.is_some_and(|i| i.is_excluded(&text)) {
                continue;
            }
            if matcher.matches(&text) {
                found.push(path);
            } else if from.lstat(&path)?.is_some_and(|m| m.kind == FileKind::Dir) {
                pending.push(path);
            }
        }
    }
    if found.is_empty() {
        return Err(CopyError::Missing(src.to_string()));
    }
    found.sort();
    Ok(found)
}

/// Copies `src` of `from` to `dst` of `to`: a directory's contents are
/// merged into `dst` (created as a directory), anything else becomes `dst`.
pub fn copy_path(
    from: &Root,
    src: &RelPath,
    to: &Root,
    dst: &RelPath,
    opts: &CopyOptions<'_>,
) -> Result<(), CopyError> {
    let meta = from
        .lstat(src)?
        .ok_or_else(|| CopyError::Missing(shown(src)))?;
    if let Some(parent) = dst.parent() {
        to.mkdir_all(&parent, 0o755)?;
    }
    match meta.kind {
        FileKind::Dir => {
            // An existing destination directory keeps its own metadata.
            let created = !to.is_dir(dst);
            if created {
                to.mkdir_all(dst, 0o755)?;
            }
            for name in from.read_dir(src)? {
                let child = src.join(&name)?;
                if let Some(ignore) = opts.ignore {
                    let excluded = ignore.is_excluded(&shown(&child));
                    let is_dir = from.lstat(&child)?.is_some_and(|m| m.kind == FileKind::Dir);
                    if excluded && !(is_dir && ignore.has_exclusions()) {
                        continue;
                    }
                }
                copy_path(from, &child, to, &dst.join(&name)?, opts)?;
            }
            if created && !dst.is_root() {
                finish(
                    to, dst, meta.mode, meta.uid, meta.gid, meta.mtime, opts, true,
                )?;
            }
        }
        FileKind::File => {
            let mut input = from.open_read(src)?;
            let mut output = to.create_file(dst, 0o600)?;
            io::copy(&mut input, &mut output).map_err(|source| CopyError::Io {
                path: shown(src),
                source,
            })?;
            drop(output);
            finish(
                to, dst, meta.mode, meta.uid, meta.gid, meta.mtime, opts, true,
            )?;
        }
        FileKind::Symlink => {
            let target = from.read_link(src)?;
            to.symlink(&target, dst)?;
            finish(
                to, dst, meta.mode, meta.uid, meta.gid, meta.mtime, opts, false,
            )?;
        }
        FileKind::CharDev | FileKind::BlockDev | FileKind::Fifo => {
            let kind = match meta.kind {
                FileKind::CharDev => NodeKind::CharDev,
                FileKind::BlockDev => NodeKind::BlockDev,
                _ => NodeKind::Fifo,
            };
            let (major, minor) = (rustix::fs::major(meta.rdev), rustix::fs::minor(meta.rdev));
            to.mknod(dst, kind, meta.mode, major, minor)?;
            finish(
                to, dst, meta.mode, meta.uid, meta.gid, meta.mtime, opts, true,
            )?;
        }
        // A socket cannot be carried in an image.
        FileKind::Socket => {}
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn finish(
    to: &Root,
    dst: &RelPath,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    opts: &CopyOptions<'_>,
    has_mode: bool,
) -> Result<(), CopyError> {
    let (uid, gid) = opts.owner.unwrap_or((uid, gid));
    if rustix::process::geteuid().is_root() {
        to.set_owner(dst, uid, gid)?;
    }
    if has_mode {
        to.set_mode(dst, opts.chmod.unwrap_or(mode))?;
    }
    let mtime = opts.epoch.map_or(mtime, |e| mtime.min(e));
    to.set_mtime(dst, mtime)?;
    Ok(())
}

/// Writes `data` as a new regular file (COPY heredocs, ADD of a URL).
pub fn write_data(
    to: &Root,
    dst: &RelPath,
    data: &[u8],
    mode: u32,
    mtime: i64,
    opts: &CopyOptions<'_>,
) -> Result<(), CopyError> {
    if let Some(parent) = dst.parent() {
        to.mkdir_all(&parent, 0o755)?;
    }
    to.write_file(dst, data, 0o600)?;
    finish(to, dst, mode, 0, 0, mtime, opts, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_are_copied_as_links_and_destinations_stay_inside() {
        let ctx = tempfile::tempdir().unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("f"), b"data").unwrap();
        symlink("/etc/shadow", ctx.path().join("l")).unwrap();
        std::fs::create_dir(rootfs.path().join("real")).unwrap();
        symlink("/real", rootfs.path().join("t")).unwrap();
        let from = Root::open(ctx.path()).unwrap();
        let to = Root::open(rootfs.path()).unwrap();
        let opts = CopyOptions::default();
        for name in ["f", "l"] {
            let src = RelPath::from_archive(name.as_bytes()).unwrap();
            let dst = RelPath::from_container_path(format!("/t/{name}").as_bytes()).unwrap();
            copy_path(&from, &src, &to, &dst, &opts).unwrap();
        }
        assert_eq!(
            std::fs::read(rootfs.path().join("real/f")).unwrap(),
            b"data"
        );
        assert_eq!(
            std::fs::read_link(rootfs.path().join("real/l")).unwrap(),
            std::path::Path::new("/etc/shadow")
        );
    }

    #[test]
    fn globs_match_and_ignored_files_are_left_out() {
        let ctx = tempfile::tempdir().unwrap();
        for f in ["a.txt", "b.txt", "c.md", "secret.txt"] {
            std::fs::write(ctx.path().join(f), b"x").unwrap();
        }
        let from = Root::open(ctx.path()).unwrap();
        let ignore = crate::dockerfile::parse_dockerignore("secret.txt\n").unwrap();
        let got = expand_source(&from, "*.txt", Some(&ignore)).unwrap();
        let names: Vec<String> = got.iter().map(shown).collect();
        assert_eq!(names, ["a.txt", "b.txt"]);
        assert!(matches!(
            expand_source(&from, "nope", None),
            Err(CopyError::Missing(_))
        ));
    }

    #[test]
    fn sources_never_leave_the_context() {
        let ctx = tempfile::tempdir().unwrap();
        symlink("/etc", ctx.path().join("d")).unwrap();
        symlink("../../../../etc", ctx.path().join("up")).unwrap();
        let from = Root::open(ctx.path()).unwrap();
        for src in [
            "../../../../etc/passwd",
            "d/passwd",
            "up/passwd",
            "/etc/passwd",
        ] {
            assert!(
                matches!(expand_source(&from, src, None), Err(CopyError::Missing(_))),
                "{src}"
            );
        }
    }
}

/// Most symlinks followed while resolving one path (as Linux's ELOOP).
const MAX_LINK_HOPS: usize = 40;

/// `path` with every symlink in it followed inside `root` (an absolute link
/// target restarts at `root`, `..` stops at it), so the host path
/// `root/<result>` names what `path` means inside the root and nothing
/// outside it. Used for `RUN --mount=type=bind` sources, which the sandbox
/// mounts by host path; the result may not exist.
pub fn resolve_in_root(root: &Root, path: &RelPath) -> Result<RelPath, CopyError> {
    let split = |raw: &[u8]| -> Vec<Vec<u8>> {
        raw.split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut todo = split(path.as_bytes());
    let mut current = RelPath::root();
    let mut hops = 0;
    while let Some(component) = todo.pop() {
        match component.as_slice() {
            b"." => continue,
            b".." => {
                current = current.parent().unwrap_or_else(RelPath::root);
                continue;
            }
            _ => {}
        }
        let next = current.join(&component)?;
        let is_link = from_meta(root.lstat(&next)?).is_some_and(|k| k == FileKind::Symlink);
        if !is_link {
            current = next;
            continue;
        }
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return Err(CopyError::Io {
                path: shown(path),
                source: io::Error::other("too many levels of symbolic links"),
            });
        }
        let target = root.read_link(&next)?;
        if target.starts_with(b"/") {
            current = RelPath::root();
        }
        todo.extend(split(&target));
    }
    Ok(current)
}

fn from_meta(meta: Option<crate::rootfs::safe::Meta>) -> Option<FileKind> {
    meta.map(|m| m.kind)
}

#[cfg(test)]
mod resolve_tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        symlink("/a", r.join("abs")).unwrap();
        symlink("../../../../a/b", r.join("a/up")).unwrap();
        symlink("/etc/shadow", r.join("host")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let root = Root::open(r).unwrap();
        let resolve = |p: &str| {
            resolve_in_root(&root, &RelPath::from_container_path(p.as_bytes()).unwrap())
                .map(|p| shown(&p))
        };
        assert_eq!(resolve("abs/b").unwrap(), "a/b");
        assert_eq!(resolve("a/up").unwrap(), "a/b");
        // Stays in the root even when the host path exists.
        assert_eq!(resolve("host").unwrap(), "etc/shadow");
        assert!(resolve("loop").is_err());
    }
}
