//! Layer diffs for Dockerfile steps: an `lstat` snapshot of the rootfs before
//! a step, another after, and the difference written as a layer tar
//! (additions and changes as entries, deletions as `.wh.` whiteouts, a
//! directory that was removed and re-created as an opaque directory).
//!
//! Regular files count as unchanged when kind, mode, owner, size, mtime
//! (ns), inode and ctime are all unchanged. Content is not hashed: the old
//! content is gone once the step ran, so a `touch` without a content change
//! still lands in the layer — what Docker's own naive differ does too.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::image::tar::{LayerEntryKind, TarHeader, TarWriter};
use crate::image::ImageError;
use crate::rootfs::safe::{FileKind, FsError, Meta, RelPath, Root};

/// What one path was at snapshot time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeType {
    File,
    Dir,
    Symlink(Vec<u8>),
    CharDevice(u64),
    BlockDevice(u64),
    Fifo,
}

/// Every path under a root (relative, `/`-separated bytes), sorted.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: BTreeMap<Vec<u8>, Node>,
}

/// Walks `root` through [`Root`], without following symlinks. Sockets are
/// left out (they cannot be carried in a layer).
pub fn snapshot(root: &Path) -> io::Result<Snapshot> {
    let root = Root::open(root)?;
    let mut nodes = BTreeMap::new();
    walk(&root, &RelPath::root(), &mut nodes).map_err(|e| io::Error::new(e.kind(), e))?;
    Ok(Snapshot { nodes })
}

fn walk(root: &Root, dir: &RelPath, out: &mut BTreeMap<Vec<u8>, Node>) -> Result<(), FsError> {
    for name in root.read_dir(dir)? {
        let path = dir.join(&name).map_err(|e| FsError {
            op: "readdir",
            path: dir.to_string(),
            source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        })?;
        // Gone since the directory was read: nothing to record.
        let Some(meta) = root.lstat(&path)? else {
            continue;
        };
        if let Some(node) = node_of(root, &path, &meta)? {
            let is_dir = node.kind == NodeType::Dir;
            out.insert(path.as_bytes().to_vec(), node);
            if is_dir {
                walk(root, &path, out)?;
            }
        }
    }
    Ok(())
}

fn node_of(root: &Root, path: &RelPath, meta: &Meta) -> Result<Option<Node>, FsError> {
    let kind = match meta.kind {
        FileKind::Dir => NodeType::Dir,
        FileKind::Symlink => NodeType::Symlink(root.read_link(path)?),
        FileKind::File => NodeType::File,
        FileKind::CharDev => NodeType::CharDevice(meta.rdev),
        FileKind::BlockDev => NodeType::BlockDevice(meta.rdev),
        FileKind::Fifo => NodeType::Fifo,
        FileKind::Socket => return Ok(None),
    };
    Ok(Some(Node {
        kind,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        size: if meta.kind == FileKind::File {
            meta.size
        } else {
            0
        },
        mtime_ns: meta.mtime_ns,
        ctime_ns: meta.ctime_ns,
        ino: meta.ino,
        dev: meta.dev,
        nlink: meta.nlink,
    }))
}

/// One entry of a layer diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Write the path as it is now.
    Upsert(Vec<u8>),
    /// The path is a directory re-created since: hide everything below it in
    /// lower layers, then write it.
    Opaque(Vec<u8>),
    Delete(Vec<u8>),
}

impl Change {
    pub fn path(&self) -> &[u8] {
        match self {
            Change::Upsert(p) | Change::Opaque(p) | Change::Delete(p) => p,
        }
    }
}

fn parent_of(path: &[u8]) -> Option<&[u8]> {
    path.iter().rposition(|&c| c == b'/').map(|i| &path[..i])
}

fn is_under(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// Whether `old` → `new` is a change worth a layer entry. Directories only
/// count for their own metadata: entries added or removed below them change
/// their mtime, and those entries carry their parents in anyway.
fn differs(old: &Node, new: &Node) -> bool {
    if old.kind != new.kind || old.mode != new.mode || old.uid != new.uid || old.gid != new.gid {
        return true;
    }
    match new.kind {
        NodeType::Dir => false,
        _ => {
            old.size != new.size
                || old.mtime_ns != new.mtime_ns
                || old.ino != new.ino
                || old.ctime_ns != new.ctime_ns
        }
    }
}

/// The changes from `before` to `after`, sorted by path, with the parent
/// directories of every changed path included (as image diffs carry them).
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut changes: BTreeMap<Vec<u8>, Change> = BTreeMap::new();
    let mut deleted_dirs: Vec<&[u8]> = Vec::new();
    for (path, old) in &before.nodes {
        if after.nodes.contains_key(path) {
            continue;
        }
        // Only the topmost deleted path needs a whiteout.
        if deleted_dirs.iter().any(|d| is_under(path, d)) {
            continue;
        }
        if old.kind == NodeType::Dir {
            deleted_dirs.push(path);
        }
        changes.insert(path.clone(), Change::Delete(path.clone()));
    }
    let mut opaque_dirs: Vec<&[u8]> = Vec::new();
    for (path, new) in &after.nodes {
        if opaque_dirs.iter().any(|d| is_under(path, d)) {
            changes.insert(path.clone(), Change::Upsert(path.clone()));
            continue;
        }
        match before.nodes.get(path) {
            None => {
                changes.insert(path.clone(), Change::Upsert(path.clone()));
            }
            Some(old) if old.kind == NodeType::Dir && new.kind == NodeType::Dir => {
                if old.ino != new.ino {
                    opaque_dirs.push(path);
                    changes.insert(path.clone(), Change::Opaque(path.clone()));
                } else if differs(old, new) {
                    changes.insert(path.clone(), Change::Upsert(path.clone()));
                }
            }
            Some(old) => {
                if differs(old, new) {
                    changes.insert(path.clone(), Change::Upsert(path.clone()));
                }
            }
        }
    }
    changes.retain(|path, change| {
        !(matches!(change, Change::Delete(_)) && opaque_dirs.iter().any(|d| is_under(path, d)))
    });
    let mut parents = Vec::new();
    for path in changes.keys() {
        let mut p = parent_of(path);
        while let Some(dir) = p {
            if !changes.contains_key(dir) && after.nodes.contains_key(dir) {
                parents.push(dir.to_vec());
            }
            p = parent_of(dir);
        }
    }
    for dir in parents {
        changes.entry(dir.clone()).or_insert(Change::Upsert(dir));
    }
    changes.into_values().collect()
}

/// Writes `changes` as a layer tar. File contents are read from `root`
/// through the safe API; mtimes are clamped to `epoch` when given.
pub fn write_diff(
    root: &Root,
    after: &Snapshot,
    changes: &[Change],
    epoch: Option<i64>,
    out: &mut dyn Write,
) -> Result<(), ImageError> {
    let mut tar = TarWriter::new(out);
    let mut first_link: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for change in changes {
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(change.path()));
        match change {
            Change::Delete(_) => tar.append_whiteout(&path)?,
            Change::Upsert(p) | Change::Opaque(p) => {
                let Some(node) = after.nodes.get(p) else {
                    continue;
                };
                append_node(root, &mut tar, &path, node, epoch, &mut first_link)?;
                if matches!(change, Change::Opaque(_)) {
                    tar.append_opaque_whiteout(&path)?;
                }
            }
        }
    }
    tar.finish()?;
    Ok(())
}

fn append_node(
    root: &Root,
    tar: &mut TarWriter<&mut dyn Write>,
    path: &Path,
    node: &Node,
    epoch: Option<i64>,
    first_link: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), ImageError> {
    let secs = i64::try_from(node.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0);
    let kind = match &node.kind {
        NodeType::File => LayerEntryKind::File,
        NodeType::Dir => LayerEntryKind::Dir,
        NodeType::Symlink(t) => {
            LayerEntryKind::Symlink(PathBuf::from(std::ffi::OsStr::from_bytes(t)))
        }
        NodeType::CharDevice(rdev) => LayerEntryKind::CharDevice {
            major: rustix::fs::major(*rdev),
            minor: rustix::fs::minor(*rdev),
        },
        NodeType::BlockDevice(rdev) => LayerEntryKind::BlockDevice {
            major: rustix::fs::major(*rdev),
            minor: rustix::fs::minor(*rdev),
        },
        NodeType::Fifo => LayerEntryKind::Fifo,
    };
    let mut header = TarHeader::new(path, kind);
    header.mode = node.mode;
    header.uid = u64::from(node.uid);
    header.gid = u64::from(node.gid);
    header.mtime = epoch.map_or(secs, |e| secs.min(e));
    if matches!(node.kind, NodeType::File | NodeType::Dir) {
        header.xattrs = layer_xattrs(root, path);
    }
    if node.kind != NodeType::File {
        return tar.append(&header, &mut io::empty());
    }
    if node.nlink > 1 {
        if let Some(first) = first_link.get(&(node.dev, node.ino)) {
            header.kind = LayerEntryKind::HardLink(first.clone());
            return tar.append(&header, &mut io::empty());
        }
        first_link.insert((node.dev, node.ino), path.to_path_buf());
    }
    header.size = node.size;
    let rel =
        RelPath::from_archive(path.as_os_str().as_bytes()).map_err(|e| ImageError::TarEntry {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    let file = root.open_read(&rel).map_err(|e| ImageError::Io {
        context: format!("reading {rel} for the layer"),
        source: io::Error::new(e.kind(), e.to_string()),
    })?;
    tar.append(&header, &mut file.take(node.size))
}

/// The xattrs a layer carries (as `image::layer` packs them): file
/// capabilities and `user.*`, read through the root. Unreadable ones are
/// left out: a filesystem without xattr support simply has none.
fn layer_xattrs(root: &Root, path: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(rel) = RelPath::from_archive(path.as_os_str().as_bytes()) else {
        return BTreeMap::new();
    };
    root.xattrs(&rel)
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| name == "security.capability" || name.starts_with("user."))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeType, ino: u64) -> Node {
        Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 1,
            mtime_ns: 5,
            ctime_ns: 5,
            ino,
            dev: 1,
            nlink: 1,
        }
    }

    fn snap(entries: &[(&str, Node)]) -> Snapshot {
        Snapshot {
            nodes: entries
                .iter()
                .map(|(p, n)| (p.as_bytes().to_vec(), n.clone()))
                .collect(),
        }
    }

    #[test]
    fn deletions_whiteout_only_the_topmost_path() {
        let before = snap(&[
            ("a", node(NodeType::Dir, 1)),
            ("a/b", node(NodeType::File, 2)),
            ("c", node(NodeType::File, 3)),
        ]);
        let after = snap(&[("c", node(NodeType::File, 3))]);
        assert_eq!(diff(&before, &after), vec![Change::Delete(b"a".to_vec())]);
    }

    #[test]
    fn additions_bring_their_parents_and_changes_are_detected() {
        let before = snap(&[
            ("d", node(NodeType::Dir, 1)),
            ("d/old", node(NodeType::File, 2)),
        ]);
        let mut changed = node(NodeType::File, 2);
        changed.size = 9;
        let after = snap(&[
            ("d", node(NodeType::Dir, 1)),
            ("d/new", node(NodeType::File, 3)),
            ("d/old", changed),
        ]);
        assert_eq!(
            diff(&before, &after),
            vec![
                Change::Upsert(b"d".to_vec()),
                Change::Upsert(b"d/new".to_vec()),
                Change::Upsert(b"d/old".to_vec()),
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn recreated_directory_is_opaque() {
        let before = snap(&[
            ("d", node(NodeType::Dir, 1)),
            ("d/x", node(NodeType::File, 2)),
        ]);
        let after = snap(&[
            ("d", node(NodeType::Dir, 7)),
            ("d/y", node(NodeType::File, 8)),
        ]);
        assert_eq!(
            diff(&before, &after),
            vec![
                Change::Opaque(b"d".to_vec()),
                Change::Upsert(b"d/y".to_vec()),
            ]
        );
    }

    #[test]
    fn layer_tar_holds_changes_whiteouts_and_clamped_mtimes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keep")).unwrap();
        std::fs::write(dir.path().join("keep/same"), b"same").unwrap();
        std::fs::write(dir.path().join("gone"), b"x").unwrap();
        let before = snapshot(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("gone")).unwrap();
        std::fs::write(dir.path().join("keep/new"), b"new!").unwrap();
        let xattr_ok = rustix::fs::setxattr(
            dir.path().join("keep/new"),
            "user.t",
            b"v",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        let after = snapshot(dir.path()).unwrap();
        let changes = diff(&before, &after);
        let root = Root::open(dir.path()).unwrap();
        let mut out = Vec::new();
        write_diff(&root, &after, &changes, Some(100), &mut out).unwrap();
        let mut reader = crate::image::LayerReader::new(&out[..]);
        let mut seen = Vec::new();
        while let Some(h) = reader.next_entry().unwrap() {
            let mut data = Vec::new();
            reader.data().read_to_end(&mut data).unwrap();
            if h.path == Path::new("keep/new") {
                assert_eq!(data, b"new!");
                assert_eq!(h.mtime, 100);
                if xattr_ok {
                    assert_eq!(h.xattrs.get("user.t").map(Vec::as_slice), Some(&b"v"[..]));
                }
            }
            seen.push(h.path.display().to_string());
        }
        assert_eq!(seen, [".wh.gone", "keep", "keep/new"]);
    }
}
