//! A hand-written tar writer (ustar + PAX) with deterministic output, and
//! the layer view of the strict reader in src/archive for the layers we open
//! back.
//!
//! Written by hand rather than through the `tar` crate so every byte of a
//! layer is decided here: no uname/gname, no atime/ctime, fixed PAX header
//! names, numeric ids only.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::ImageError;
use crate::archive::tar as archive_tar;

const BLOCK: usize = 512;
pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What a tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEntryKind {
    File,
    Dir,
    Symlink(PathBuf),
    /// A hard link to an earlier entry of the same archive (path relative to the root).
    HardLink(PathBuf),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One entry's metadata. `path` is relative, without `./` and without a
/// trailing slash (the writer adds it for directories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarHeader {
    pub path: PathBuf,
    pub kind: LayerEntryKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Data length; only regular files carry data.
    pub size: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl TarHeader {
    pub fn new(path: impl Into<PathBuf>, kind: LayerEntryKind) -> Self {
        let mode = if kind == LayerEntryKind::Dir {
            0o755
        } else {
            0o644
        };
        TarHeader {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            xattrs: BTreeMap::new(),
        }
    }

    fn display_path(&self) -> String {
        self.path.display().to_string()
    }
}

/// Streams tar entries to `W`. Call [`TarWriter::finish`] to write the two
/// terminating zero blocks.
pub struct TarWriter<W: Write> {
    out: W,
    entries: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out, entries: 0 }
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Append one entry; `data` must yield exactly `header.size` bytes for a
    /// regular file (it is not read for other kinds). Names starting with
    /// `.wh.` are refused: use [`TarWriter::append_whiteout`] for those.
    pub fn append(&mut self, header: &TarHeader, data: &mut dyn Read) -> Result<(), ImageError> {
        if is_whiteout_name(&header.path) {
            return Err(ImageError::WhiteoutInRootfs {
                path: header.path.clone(),
            });
        }
        self.append_raw(header, data)
    }

    /// Append a whiteout deleting `path` from lower layers.
    pub fn append_whiteout(&mut self, path: &Path) -> Result<(), ImageError> {
        let name = path.file_name().ok_or_else(|| ImageError::TarEntry {
            path: path.display().to_string(),
            reason: "a whiteout needs a file name".into(),
        })?;
        let mut wh = std::ffi::OsString::from(WHITEOUT_PREFIX);
        wh.push(name);
        let wh_path = path
            .parent()
            .map(|p| p.join(&wh))
            .unwrap_or_else(|| PathBuf::from(wh));
        let mut header = TarHeader::new(wh_path, LayerEntryKind::File);
        header.mode = 0o644;
        self.append_raw(&header, &mut io::empty())
    }

    /// Append an opaque whiteout: `dir`'s contents in lower layers are hidden.
    pub fn append_opaque_whiteout(&mut self, dir: &Path) -> Result<(), ImageError> {
        let header = TarHeader::new(dir.join(OPAQUE_WHITEOUT), LayerEntryKind::File);
        self.append_raw(&header, &mut io::empty())
    }

    fn append_raw(&mut self, header: &TarHeader, data: &mut dyn Read) -> Result<(), ImageError> {
        let name = entry_name_bytes(header)?;
        let link = match &header.kind {
            LayerEntryKind::Symlink(t) | LayerEntryKind::HardLink(t) => {
                t.as_os_str().as_bytes().to_vec()
            }
            _ => Vec::new(),
        };
        if link.contains(&0) {
            return Err(entry_err(header, "link target contains a NUL byte"));
        }
        let size = if header.kind == LayerEntryKind::File {
            header.size
        } else {
            0
        };
        let pax = pax_records(header, &name, &link, size);
        let io_ctx = || format!("writing tar entry {}", header.display_path());
        if !pax.is_empty() {
            let pax_header = pax_header_block(&name, pax.len() as u64);
            self.out
                .write_all(&pax_header)
                .map_err(ImageError::io(io_ctx()))?;
            self.out.write_all(&pax).map_err(ImageError::io(io_ctx()))?;
            self.pad(pax.len() as u64)
                .map_err(ImageError::io(io_ctx()))?;
        }
        let block = ustar_block(header, &name, &link, size);
        self.out
            .write_all(&block)
            .map_err(ImageError::io(io_ctx()))?;
        if size > 0 {
            let copied =
                io::copy(&mut data.take(size), &mut self.out).map_err(ImageError::io(io_ctx()))?;
            if copied != size {
                return Err(entry_err(
                    header,
                    &format!("file shrank while packing: expected {size} bytes, read {copied}"),
                ));
            }
            self.pad(size).map_err(ImageError::io(io_ctx()))?;
        }
        self.entries += 1;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Write the end-of-archive marker and return the inner writer.
    pub fn finish(mut self) -> Result<W, ImageError> {
        self.out
            .write_all(&[0u8; BLOCK * 2])
            .map_err(ImageError::io("writing tar trailer"))?;
        Ok(self.out)
    }
}

fn entry_err(header: &TarHeader, reason: &str) -> ImageError {
    ImageError::TarEntry {
        path: header.display_path(),
        reason: reason.to_string(),
    }
}

/// True when the last component starts with `.wh.` (whiteout or opaque marker).
pub fn is_whiteout_name(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()))
}

fn entry_name_bytes(header: &TarHeader) -> Result<Vec<u8>, ImageError> {
    let raw = header.path.as_os_str().as_bytes();
    if raw.is_empty() || raw.starts_with(b"/") {
        return Err(entry_err(header, "path must be relative and non-empty"));
    }
    if raw.contains(&0) {
        return Err(entry_err(header, "path contains a NUL byte"));
    }
    if header.path.components().any(|c| {
        matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::CurDir
        )
    }) {
        return Err(entry_err(header, "path contains `.` or `..` components"));
    }
    let mut name = raw.to_vec();
    while name.ends_with(b"/") {
        name.pop();
    }
    if header.kind == LayerEntryKind::Dir {
        name.push(b'/');
    }
    Ok(name)
}

const USTAR_SIZE_MAX: u64 = 0o777_7777_7777;
const USTAR_ID_MAX: u64 = 0o777_7777;

fn pax_records(header: &TarHeader, name: &[u8], link: &[u8], size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if name.len() > 100 {
        push_pax_record(&mut out, b"path", name);
    }
    if link.len() > 100 {
        push_pax_record(&mut out, b"linkpath", link);
    }
    if size > USTAR_SIZE_MAX {
        push_pax_record(&mut out, b"size", size.to_string().as_bytes());
    }
    if header.uid > USTAR_ID_MAX {
        push_pax_record(&mut out, b"uid", header.uid.to_string().as_bytes());
    }
    if header.gid > USTAR_ID_MAX {
        push_pax_record(&mut out, b"gid", header.gid.to_string().as_bytes());
    }
    if header.mtime < 0 || header.mtime as u64 > USTAR_SIZE_MAX {
        push_pax_record(&mut out, b"mtime", header.mtime.to_string().as_bytes());
    }
    // BTreeMap iteration keeps xattr order stable.
    for (key, value) in &header.xattrs {
        let mut k = b"SCHILY.xattr.".to_vec();
        k.extend_from_slice(key.as_bytes());
        push_pax_record(&mut out, &k, value);
    }
    out
}

/// `"<len> <key>=<value>\n"` where `<len>` counts the whole record, itself included.
fn push_pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Fixed PAX header name as Go's archive/tar does (`dir/PaxHeaders.0/base`), so
/// nothing depends on the process id the way GNU tar's default does.
fn pax_header_block(name: &[u8], len: u64) -> [u8; BLOCK] {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut pax_name = dir.to_vec();
    pax_name.extend_from_slice(b"PaxHeaders.0/");
    pax_name.extend_from_slice(base);
    pax_name.truncate(100);
    let mut block = [0u8; BLOCK];
    block[..pax_name.len()].copy_from_slice(&pax_name);
    write_octal(&mut block[100..108], 0o644);
    write_octal(&mut block[108..116], 0);
    write_octal(&mut block[116..124], 0);
    write_octal(&mut block[124..136], len);
    write_octal(&mut block[136..148], 0);
    block[156] = b'x';
    finish_ustar(&mut block);
    block
}

fn ustar_block(header: &TarHeader, name: &[u8], link: &[u8], size: u64) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    let n = name.len().min(100);
    block[..n].copy_from_slice(&name[..n]);
    write_octal(&mut block[100..108], u64::from(header.mode & 0o7777));
    write_octal(&mut block[108..116], header.uid.min(USTAR_ID_MAX));
    write_octal(&mut block[116..124], header.gid.min(USTAR_ID_MAX));
    write_octal(&mut block[124..136], size.min(USTAR_SIZE_MAX));
    let mtime = header.mtime.clamp(0, USTAR_SIZE_MAX as i64) as u64;
    write_octal(&mut block[136..148], mtime);
    let (typeflag, dev) = match &header.kind {
        LayerEntryKind::File => (b'0', None),
        LayerEntryKind::HardLink(_) => (b'1', None),
        LayerEntryKind::Symlink(_) => (b'2', None),
        LayerEntryKind::CharDevice { major, minor } => (b'3', Some((*major, *minor))),
        LayerEntryKind::BlockDevice { major, minor } => (b'4', Some((*major, *minor))),
        LayerEntryKind::Dir => (b'5', None),
        LayerEntryKind::Fifo => (b'6', None),
    };
    block[156] = typeflag;
    let l = link.len().min(100);
    block[157..157 + l].copy_from_slice(&link[..l]);
    if let Some((major, minor)) = dev {
        write_octal(&mut block[329..337], u64::from(major).min(USTAR_ID_MAX));
        write_octal(&mut block[337..345], u64::from(minor).min(USTAR_ID_MAX));
    }
    finish_ustar(&mut block);
    block
}

/// Magic, version, zero devmajor/minor defaults are written by the callers;
/// this sets magic and the checksum last.
fn finish_ustar(block: &mut [u8; BLOCK]) {
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    if block[329..337].iter().all(|&b| b == 0) {
        write_octal(&mut block[329..337], 0);
        write_octal(&mut block[337..345], 0);
    }
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let mut field = [0u8; 8];
    write_octal(&mut field[..7], u64::from(sum));
    field[7] = b' ';
    block[148..156].copy_from_slice(&field);
}

/// Zero-padded octal filling all but the last byte, which is NUL.
fn write_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    let s = s.as_bytes();
    // Callers clamp values to the field width, so `s` always fits.
    let start = s.len().saturating_sub(digits);
    field[..digits].copy_from_slice(&s[start..]);
    field[digits] = 0;
}

// ---------------------------------------------------------------------------
// Reading

/// Reads layer entries one by one, through the project's one strict tar
/// reader ([`crate::archive::tar`]), as [`TarHeader`]s: paths without `./`
/// or a trailing slash, link targets and device numbers inside the kind.
/// After [`LayerReader::next_entry`] returns a header, [`LayerReader::data`]
/// reads that entry's content; unread content is skipped by the next call.
pub struct LayerReader<R: Read> {
    inner: archive_tar::TarReader<R>,
}

impl<R: Read> LayerReader<R> {
    pub fn new(inner: R) -> Self {
        LayerReader {
            inner: archive_tar::TarReader::new(inner),
        }
    }

    /// Byte offset in the (uncompressed) stream of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.inner.offset()
    }

    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }

    /// Reader over the current entry's data.
    pub fn data(&mut self) -> archive_tar::EntryData<'_, R> {
        self.inner.data()
    }

    /// The next entry, or `None` at the end-of-archive marker (or clean EOF).
    pub fn next_entry(&mut self) -> Result<Option<TarHeader>, ImageError> {
        let start = self.inner.offset();
        let header = match self.inner.next_entry() {
            Ok(Some(entry)) => entry.header,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(ImageError::TarFormat {
                    offset: start,
                    reason: e.to_string(),
                })
            }
        };
        let shown = header.display_path();
        layer_header(header)
            .map(Some)
            .map_err(|reason| ImageError::TarFormat {
                offset: start,
                reason: format!("entry {shown}: {reason}"),
            })
    }
}

/// The layer view of a parsed entry. A regular file named with a trailing
/// slash is a directory, as old writers put it.
fn layer_header(h: archive_tar::EntryHeader) -> Result<TarHeader, String> {
    let mut name = h.path;
    let is_dir_name = name.ends_with(b"/");
    while name.len() > 1 && name.ends_with(b"/") {
        name.pop();
    }
    let name = name.strip_prefix(b"./").map(<[u8]>::to_vec).unwrap_or(name);
    if name.is_empty() || name.contains(&0) {
        return Err("entry with an empty name".into());
    }
    let link = || {
        PathBuf::from(std::ffi::OsString::from_vec(
            h.link_target.clone().unwrap_or_default(),
        ))
    };
    let kind = match h.kind {
        archive_tar::EntryKind::File if is_dir_name && h.size == 0 => LayerEntryKind::Dir,
        archive_tar::EntryKind::File => LayerEntryKind::File,
        archive_tar::EntryKind::Dir => LayerEntryKind::Dir,
        archive_tar::EntryKind::Symlink => LayerEntryKind::Symlink(link()),
        archive_tar::EntryKind::Hardlink => LayerEntryKind::HardLink(link()),
        archive_tar::EntryKind::CharDev => LayerEntryKind::CharDevice {
            major: h.dev_major,
            minor: h.dev_minor,
        },
        archive_tar::EntryKind::BlockDev => LayerEntryKind::BlockDevice {
            major: h.dev_major,
            minor: h.dev_minor,
        },
        archive_tar::EntryKind::Fifo => LayerEntryKind::Fifo,
    };
    let mut xattrs = BTreeMap::new();
    for (key, value) in h.xattrs {
        xattrs.insert(key, value);
    }
    Ok(TarHeader {
        path: PathBuf::from(std::ffi::OsString::from_vec(name)),
        kind,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        mtime: h.mtime,
        size: h.size,
        xattrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(headers: &[(TarHeader, Vec<u8>)]) -> Vec<(TarHeader, Vec<u8>)> {
        let mut w = TarWriter::new(Vec::new());
        for (h, d) in headers {
            w.append(h, &mut d.as_slice()).unwrap();
        }
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let mut r = LayerReader::new(bytes.as_slice());
        let mut out = Vec::new();
        while let Some(h) = r.next_entry().unwrap() {
            let mut d = Vec::new();
            r.data().read_to_end(&mut d).unwrap();
            out.push((h, d));
        }
        out
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        push_pax_record(&mut v, b"path", &[b'a'; 93]);
        // 93 + "path" 4 + 3 = 100 body bytes, plus "103" → 103 total.
        assert!(v.starts_with(b"103 path="));
        assert_eq!(v.len(), 103);
        let mut v = Vec::new();
        push_pax_record(&mut v, b"k", b"v");
        assert_eq!(v, b"6 k=v\n");
    }

    #[test]
    fn long_names_links_xattrs_and_big_ids_roundtrip() {
        let long = "d/".repeat(80) + "file-with-a-long-name";
        let mut file = TarHeader::new(&long, LayerEntryKind::File);
        file.size = 5;
        file.uid = 5_000_000;
        file.gid = 7;
        file.mode = 0o4755;
        file.mtime = 1_700_000_000;
        file.xattrs
            .insert("security.capability".into(), vec![1, 0, 0, 2, 0, 0xff]);
        let link = TarHeader::new("l", LayerEntryKind::Symlink(PathBuf::from("x/".repeat(70))));
        let dir = TarHeader::new("dir", LayerEntryKind::Dir);
        let dev = TarHeader::new("null", LayerEntryKind::CharDevice { major: 1, minor: 3 });
        let input = vec![
            (file, b"hello".to_vec()),
            (link, Vec::new()),
            (dir, Vec::new()),
            (dev, Vec::new()),
        ];
        let out = roundtrip(&input);
        assert_eq!(out, input);
    }

    #[test]
    fn corrupt_checksum_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        w.append(&TarHeader::new("a", LayerEntryKind::Dir), &mut io::empty())
            .unwrap();
        let mut bytes = w.finish().unwrap();
        bytes[0] = b'b';
        let err = LayerReader::new(bytes.as_slice()).next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn oversized_extended_header_is_bounded() {
        let mut block = [0u8; BLOCK];
        block[..4].copy_from_slice(b"long");
        write_octal(&mut block[124..136], 64 << 20);
        block[156] = b'L';
        finish_ustar(&mut block);
        let err = LayerReader::new(&block[..]).next_entry().unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn append_refuses_whiteout_names_but_whiteout_api_writes_them() {
        let mut w = TarWriter::new(Vec::new());
        let err = w
            .append(
                &TarHeader::new("etc/.wh.passwd", LayerEntryKind::File),
                &mut io::empty(),
            )
            .unwrap_err();
        assert!(matches!(err, ImageError::WhiteoutInRootfs { .. }));
        w.append_whiteout(Path::new("etc/passwd")).unwrap();
        w.append_opaque_whiteout(Path::new("var/cache")).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = LayerReader::new(bytes.as_slice());
        assert_eq!(
            r.next_entry().unwrap().unwrap().path,
            Path::new("etc/.wh.passwd")
        );
        assert_eq!(
            r.next_entry().unwrap().unwrap().path,
            Path::new("var/cache/.wh..wh..opq")
        );
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn short_data_is_an_error() {
        let mut h = TarHeader::new("f", LayerEntryKind::File);
        h.size = 10;
        let err = TarWriter::new(Vec::new())
            .append(&h, &mut &b"abc"[..])
            .unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
