//! Squashing a layer stack into one tar (rootfs tar output, `--squash`).
//!
//! Each layer is decompressed once into a temporary file so entries can be
//! read back in the final order; only headers and offsets are kept in memory.
//! Whiteouts and opaque directories are applied as `unpack_layers` does.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::compress::auto_decoder;
use super::read::check_entry_path;
use super::tar::{
    LayerEntryKind, LayerReader, TarHeader, TarWriter, OPAQUE_WHITEOUT, WHITEOUT_PREFIX,
};
use super::{ImageError, Sha256Digest};

/// Sort key giving `tar --sort=name` order: component-wise byte comparison,
/// so a directory comes right before its own contents.
type Key = Vec<Vec<u8>>;

fn key_of(path: &Path) -> Key {
    path.as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn is_under(key: &Key, dir: &Key) -> bool {
    key.len() > dir.len() && key.starts_with(dir)
}

struct Node {
    layer: usize,
    header: TarHeader,
    offset: u64,
}

/// Regular files of one layer: path → (header, data offset), for resolving
/// hard links whose target did not survive into the squashed tree.
type LayerFiles = HashMap<PathBuf, (TarHeader, u64)>;

fn entry_err(path: &Path, reason: &str) -> ImageError {
    ImageError::TarEntry {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Squash compressed (or plain) layer blobs, lowest first, into one tar
/// written to `out`. `scratch` holds the decompressed copies meanwhile.
/// Returns the digest and size of the tar written.
pub fn squash_layers(
    blobs: &[PathBuf],
    scratch: &Path,
    out: impl Write,
) -> Result<(Sha256Digest, u64), ImageError> {
    let mut tree: BTreeMap<Key, Node> = BTreeMap::new();
    let mut files: Vec<LayerFiles> = Vec::new();
    let mut plain: Vec<PathBuf> = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        let path = scratch.join(format!("squash-{i}.tar"));
        decompress_to(blob, &path)?;
        let reader = BufReader::new(
            File::open(&path).map_err(ImageError::io(format!("opening {}", path.display())))?,
        );
        files.push(apply_layer(i, reader, &mut tree)?);
        plain.push(path);
    }
    let mut tar = TarWriter::new(super::HashingWriter::new(out));
    let mut readers: Vec<File> = plain
        .iter()
        .map(|p| File::open(p).map_err(ImageError::io(format!("opening {}", p.display()))))
        .collect::<Result<_, _>>()?;
    for (key, node) in &tree {
        emit(&mut tar, key, node, &tree, &files, &mut readers)?;
    }
    let hashing = tar.finish()?;
    let (mut out, digest, size) = hashing.finish();
    out.flush()
        .map_err(ImageError::io("writing squashed tar"))?;
    Ok((digest, size))
}

fn decompress_to(blob: &Path, dest: &Path) -> Result<(), ImageError> {
    let src = File::open(blob).map_err(ImageError::io(format!("opening {}", blob.display())))?;
    let mut decoded = auto_decoder(BufReader::with_capacity(256 * 1024, src))
        .map_err(ImageError::io(format!("decompressing {}", blob.display())))?;
    let mut out = BufWriter::new(
        File::create(dest).map_err(ImageError::io(format!("creating {}", dest.display())))?,
    );
    io::copy(&mut decoded, &mut out)
        .map_err(ImageError::io(format!("decompressing {}", blob.display())))?;
    out.flush()
        .map_err(ImageError::io(format!("writing {}", dest.display())))
}

fn apply_layer(
    layer: usize,
    reader: impl Read,
    tree: &mut BTreeMap<Key, Node>,
) -> Result<LayerFiles, ImageError> {
    let mut tar = LayerReader::new(reader);
    let mut files = LayerFiles::new();
    while let Some(header) = tar.next_entry()? {
        let offset = tar.offset();
        if header.path == Path::new(".") {
            if header.kind != LayerEntryKind::Dir {
                return Err(entry_err(
                    &header.path,
                    "the root of a layer must be a directory",
                ));
            }
            continue;
        }
        check_entry_path(&header.path, "entry path")?;
        if let LayerEntryKind::HardLink(target) = &header.kind {
            check_entry_path(target, "hard link target")?;
        }
        let name = header
            .path
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        let parent = key_of(header.path.parent().unwrap_or(Path::new("")));
        if name == OPAQUE_WHITEOUT.as_bytes() {
            tree.retain(|k, n| !(is_under(k, &parent) && n.layer < layer));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(entry_err(
                    &header.path,
                    "whiteout without a valid target name",
                ));
            }
            let mut target = parent.clone();
            target.push(hidden.to_vec());
            tree.retain(|k, _| !k.starts_with(&target));
            continue;
        }
        let key = key_of(&header.path);
        if header.kind != LayerEntryKind::Dir {
            // A non-directory replaces whatever subtree was there.
            tree.retain(|k, _| !is_under(k, &key));
        }
        if header.kind == LayerEntryKind::File {
            files.insert(header.path.clone(), (header.clone(), offset));
        }
        tree.insert(
            key,
            Node {
                layer,
                header,
                offset,
            },
        );
    }
    Ok(files)
}

fn emit<W: Write>(
    tar: &mut TarWriter<W>,
    key: &Key,
    node: &Node,
    tree: &BTreeMap<Key, Node>,
    files: &[LayerFiles],
    readers: &mut [File],
) -> Result<(), ImageError> {
    let (header, layer, offset) = match &node.header.kind {
        LayerEntryKind::HardLink(target) => {
            let tkey = key_of(target);
            let still_valid = tree.get(&tkey).is_some_and(|t| {
                t.layer == node.layer && tkey < *key && t.header.kind == LayerEntryKind::File
            });
            if still_valid {
                return tar.append(&node.header, &mut io::empty());
            }
            // The link's target was replaced, deleted or sorts later: store
            // the content the link had in its own layer.
            let (target_header, offset) = files[node.layer].get(target).ok_or_else(|| {
                entry_err(&node.header.path, "hard link target not found in its layer")
            })?;
            let mut h = target_header.clone();
            h.path = node.header.path.clone();
            (h, node.layer, *offset)
        }
        _ => (node.header.clone(), node.layer, node.offset),
    };
    if header.kind != LayerEntryKind::File || header.size == 0 {
        return tar.append(&header, &mut io::empty());
    }
    let f = &mut readers[layer];
    f.seek(SeekFrom::Start(offset))
        .map_err(ImageError::io(format!("reading {}", header.path.display())))?;
    tar.append(&header, &mut BufReader::new(f).take(header.size))
}
