//! Moving a tree that was unpacked on the side into a root, as if it had
//! been unpacked there. Stage 2 unpacks the packages it configures last
//! into a staging root next to the rootfs while the first ones are being
//! configured; they then move in by `rename`, one call per top-most new
//! entry, because both roots are on one filesystem.

use super::safe::{FileKind, FsError, PathError, RelPath, Root};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{path}: a {kind:?} in the rootfs is in the way of a directory")]
    NotADirectory { path: String, kind: FileKind },
    #[error("{path}: a directory in the rootfs is in the way of a {kind:?}")]
    DirectoryInTheWay { path: String, kind: FileKind },
}

/// Moves everything in `from` into `into`. A directory `into` lacks moves
/// whole; one it has (or a symlink there that leads to a directory inside
/// `into`, as merged /usr has) is merged entry by entry and keeps `into`'s
/// metadata, as extraction over an existing directory keeps the link;
/// anything else replaces what is at its path. Paths resolve inside each
/// root, so nothing lands outside `into`. Names are taken in sorted order,
/// so the result does not depend on directory order.
pub fn move_tree(from: &Root, into: &Root) -> Result<(), MergeError> {
    move_children(from, into, &RelPath::root())
}

fn move_children(from: &Root, into: &Root, dir: &RelPath) -> Result<(), MergeError> {
    for name in from.read_dir(dir)? {
        let path = dir.join(&name)?;
        let Some(meta) = from.lstat(&path)? else {
            continue;
        };
        let existing = into.lstat(&path)?;
        match (meta.kind, existing) {
            (FileKind::Dir, None) => into.rename_from(from, &path, &path)?,
            (FileKind::Dir, Some(m)) if m.kind == FileKind::Dir => {
                move_children(from, into, &path)?
            }
            (FileKind::Dir, Some(m)) if m.kind == FileKind::Symlink && into.is_dir(&path) => {
                move_children(from, into, &path)?
            }
            (FileKind::Dir, Some(m)) => {
                return Err(MergeError::NotADirectory {
                    path: path.to_string(),
                    kind: m.kind,
                })
            }
            (kind, Some(m)) if m.kind == FileKind::Dir => {
                return Err(MergeError::DirectoryInTheWay {
                    path: path.to_string(),
                    kind,
                })
            }
            _ => into.rename_from(from, &path, &path)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn roots() -> (tempfile::TempDir, Root, Root) {
        let t = tempfile::tempdir().unwrap();
        for d in ["stage", "root"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        let stage = Root::open(&t.path().join("stage")).unwrap();
        let root = Root::open(&t.path().join("root")).unwrap();
        (t, stage, root)
    }

    #[test]
    fn new_trees_move_whole_and_existing_directories_merge() {
        let (t, stage, root) = roots();
        let (s, r) = (t.path().join("stage"), t.path().join("root"));
        std::fs::create_dir_all(s.join("usr/lib/new/sub")).unwrap();
        std::fs::write(s.join("usr/lib/new/sub/f"), b"new").unwrap();
        std::fs::write(s.join("usr/lib/libx.so.1"), b"x").unwrap();
        std::fs::write(s.join("usr/lib/replaced"), b"staged").unwrap();
        std::fs::set_permissions(s.join("usr/lib"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::fs::write(r.join("usr/lib/kept"), b"kept").unwrap();
        std::fs::write(r.join("usr/lib/replaced"), b"old").unwrap();

        move_tree(&stage, &root).unwrap();

        let read = |p: &str| std::fs::read(r.join(p)).unwrap();
        assert_eq!(read("usr/lib/new/sub/f"), b"new");
        assert_eq!(read("usr/lib/libx.so.1"), b"x");
        assert_eq!(read("usr/lib/replaced"), b"staged");
        assert_eq!(read("usr/lib/kept"), b"kept");
        let mode = std::fs::metadata(r.join("usr/lib")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o755, "an existing directory keeps its metadata");
        assert!(!s.join("usr/lib/new").exists(), "moved, not copied");
    }

    #[test]
    fn a_symlinked_directory_is_followed_inside_the_root() {
        let (t, stage, root) = roots();
        let (s, r) = (t.path().join("stage"), t.path().join("root"));
        std::fs::create_dir_all(s.join("lib/x86_64-linux-gnu")).unwrap();
        std::fs::write(s.join("lib/x86_64-linux-gnu/libold.so"), b"o").unwrap();
        std::fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();

        move_tree(&stage, &root).unwrap();

        assert_eq!(
            std::fs::read(r.join("usr/lib/x86_64-linux-gnu/libold.so")).unwrap(),
            b"o"
        );
        assert!(r.join("lib").symlink_metadata().unwrap().is_symlink());
    }

    #[test]
    fn a_symlink_out_of_the_root_is_not_followed() {
        let (t, stage, root) = roots();
        let (s, r) = (t.path().join("stage"), t.path().join("root"));
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::create_dir_all(s.join("etc")).unwrap();
        std::fs::write(s.join("etc/passwd"), b"staged").unwrap();
        symlink(&outside, r.join("etc")).unwrap();

        let err = move_tree(&stage, &root).unwrap_err();
        assert!(matches!(err, MergeError::NotADirectory { .. }), "{err}");
        assert!(!outside.join("passwd").exists());
    }

    #[test]
    fn a_file_does_not_replace_a_directory() {
        let (t, stage, root) = roots();
        let (s, r) = (t.path().join("stage"), t.path().join("root"));
        std::fs::write(s.join("thing"), b"file").unwrap();
        std::fs::create_dir(r.join("thing")).unwrap();
        let err = move_tree(&stage, &root).unwrap_err();
        assert!(matches!(err, MergeError::DirectoryInTheWay { .. }), "{err}");
        assert!(r.join("thing").is_dir());
    }
}
