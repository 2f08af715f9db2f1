//! A hand-written tar writer (ustar + PAX) with deterministic output, and a
//! bounded reader for the layers we open back (ustar, PAX, GNU long names).
//!
//! Written by hand rather than through the `tar` crate so every byte of a
//! layer is decided here: no uname/gname, no atime/ctime, fixed PAX header
//! names, numeric ids only.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::ImageError;

const BLOCK: usize = 512;
/// Longest PAX extended header or GNU long name we accept when reading; apt
/// caps long names at 1 MiB (CVE-2020-27350), xattrs make PAX headers larger.
const MAX_EXTENDED_HEADER: u64 = 8 << 20;
pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What a tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
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
    pub kind: EntryKind,
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
    pub fn new(path: impl Into<PathBuf>, kind: EntryKind) -> Self {
        let mode = if kind == EntryKind::Dir { 0o755 } else { 0o644 };
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
        let mut header = TarHeader::new(wh_path, EntryKind::File);
        header.mode = 0o644;
        self.append_raw(&header, &mut io::empty())
    }

    /// Append an opaque whiteout: `dir`'s contents in lower layers are hidden.
    pub fn append_opaque_whiteout(&mut self, dir: &Path) -> Result<(), ImageError> {
        let header = TarHeader::new(dir.join(OPAQUE_WHITEOUT), EntryKind::File);
        self.append_raw(&header, &mut io::empty())
    }

    fn append_raw(&mut self, header: &TarHeader, data: &mut dyn Read) -> Result<(), ImageError> {
        let name = entry_name_bytes(header)?;
        let link = match &header.kind {
            EntryKind::Symlink(t) | EntryKind::HardLink(t) => t.as_os_str().as_bytes().to_vec(),
            _ => Vec::new(),
        };
        if link.contains(&0) {
            return Err(entry_err(header, "link target contains a NUL byte"));
        }
        let size = if header.kind == EntryKind::File {
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
    if header.kind == EntryKind::Dir {
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
        EntryKind::File => (b'0', None),
        EntryKind::HardLink(_) => (b'1', None),
        EntryKind::Symlink(_) => (b'2', None),
        EntryKind::CharDevice { major, minor } => (b'3', Some((*major, *minor))),
        EntryKind::BlockDevice { major, minor } => (b'4', Some((*major, *minor))),
        EntryKind::Dir => (b'5', None),
        EntryKind::Fifo => (b'6', None),
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

/// Reads tar entries one by one. After [`TarReader::next_entry`] returns a
/// header, [`TarReader::data`] reads that entry's content; unread content is
/// skipped by the next call.
pub struct TarReader<R: Read> {
    inner: R,
    offset: u64,
    remaining: u64,
    padding: u64,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
        }
    }

    /// Byte offset in the (uncompressed) stream of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reader over the current entry's data.
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    fn format_err(&self, reason: impl Into<String>) -> ImageError {
        ImageError::TarFormat {
            offset: self.offset,
            reason: reason.into(),
        }
    }

    fn read_exact_counted(&mut self, buf: &mut [u8]) -> Result<(), ImageError> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.format_err("unexpected end of archive")
            } else {
                ImageError::Io {
                    context: format!("reading tar at byte {}", self.offset),
                    source: e,
                }
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<(), ImageError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let take = n.min(buf.len() as u64) as usize;
            self.read_exact_counted(&mut buf[..take])?;
            n -= take as u64;
        }
        Ok(())
    }

    fn skip_rest(&mut self) -> Result<(), ImageError> {
        let n = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(n)
    }

    fn read_extended(&mut self, size: u64) -> Result<Vec<u8>, ImageError> {
        if size > MAX_EXTENDED_HEADER {
            return Err(self.format_err(format!(
                "extended header of {size} bytes exceeds the {MAX_EXTENDED_HEADER}-byte limit"
            )));
        }
        let mut buf = vec![0u8; size as usize];
        self.read_exact_counted(&mut buf)?;
        self.skip(padding_for(size))?;
        Ok(buf)
    }

    /// The next entry, or `None` at the end-of-archive marker (or clean EOF).
    pub fn next_entry(&mut self) -> Result<Option<TarHeader>, ImageError> {
        self.skip_rest()?;
        let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut block = [0u8; BLOCK];
            let start = self.offset;
            match self.inner.read(&mut block[..1]) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => {
                    return Err(ImageError::Io {
                        context: format!("reading tar at byte {start}"),
                        source: e,
                    })
                }
            }
            self.offset += 1;
            self.read_exact_counted(&mut block[1..])?;
            if block.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            verify_checksum(&block).map_err(|r| ImageError::TarFormat {
                offset: start,
                reason: r,
            })?;
            let typeflag = block[156];
            let size = parse_numeric(&block[124..136]).map_err(|r| ImageError::TarFormat {
                offset: start,
                reason: format!("size: {r}"),
            })?;
            match typeflag {
                b'x' => {
                    let data = self.read_extended(size)?;
                    parse_pax(&data, &mut pax).map_err(|r| ImageError::TarFormat {
                        offset: start,
                        reason: r,
                    })?;
                }
                b'g' => {
                    // Global headers carry nothing we honour (comments, mtimes).
                    self.read_extended(size)?;
                }
                b'L' => long_name = Some(trim_nul(self.read_extended(size)?)),
                b'K' => long_link = Some(trim_nul(self.read_extended(size)?)),
                _ => {
                    let header = build_header(&block, typeflag, size, &pax, long_name, long_link)
                        .map_err(|r| ImageError::TarFormat {
                        offset: start,
                        reason: r,
                    })?;
                    let data_len = if matches!(header.kind, EntryKind::File) {
                        header.size
                    } else {
                        0
                    };
                    self.remaining = data_len;
                    self.padding = padding_for(data_len);
                    return Ok(Some(header));
                }
            }
        }
    }
}

/// Read access to the current entry's content.
pub struct EntryData<'a, R: Read> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.reader;
        if r.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(r.remaining as usize);
        let n = r.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar entry data truncated",
            ));
        }
        r.remaining -= n as u64;
        r.offset += n as u64;
        Ok(n)
    }
}

fn padding_for(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn verify_checksum(block: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_octal(&block[148..156]).map_err(|e| format!("checksum field: {e}"))?;
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    // Historic writers summed signed chars; accept both as GNU tar does.
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(format!(
            "bad header checksum (stored {stored}, computed {unsigned})"
        ))
    }
}

fn parse_octal(field: &[u8]) -> Result<u64, String> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let mut v: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(format!("non-octal byte 0x{b:02x}"));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or("octal number overflows")?;
    }
    Ok(v)
}

/// Octal, or GNU base-256 when the high bit of the first byte is set.
fn parse_numeric(field: &[u8]) -> Result<u64, String> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err("negative base-256 number".into());
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or("base-256 number overflows")?;
        }
        return Ok(v);
    }
    parse_octal(field)
}

fn parse_pax(data: &[u8], out: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), String> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record length is not a number")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("PAX record length disagrees with its content".into());
        }
        let record = &rest[sp + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without `=`")?;
        out.insert(record[..eq].to_vec(), record[eq + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(())
}

fn cstr_field(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

fn pax_number(pax: &BTreeMap<Vec<u8>, Vec<u8>>, key: &[u8]) -> Result<Option<i128>, String> {
    match pax.get(key) {
        None => Ok(None),
        Some(v) => {
            let s = std::str::from_utf8(v)
                .map_err(|_| format!("PAX {} is not UTF-8", String::from_utf8_lossy(key)))?;
            // mtime may carry a fraction; the integer part is what we keep.
            let int_part = s.split('.').next().unwrap_or(s);
            int_part
                .parse::<i128>()
                .map(Some)
                .map_err(|_| format!("PAX {} is not a number: {s}", String::from_utf8_lossy(key)))
        }
    }
}

fn build_header(
    block: &[u8; BLOCK],
    typeflag: u8,
    ustar_size: u64,
    pax: &BTreeMap<Vec<u8>, Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
) -> Result<TarHeader, String> {
    let is_ustar = &block[257..262] == b"ustar";
    let mut name = if let Some(p) = pax.get(&b"path"[..]) {
        p.clone()
    } else if let Some(l) = long_name {
        l
    } else {
        let base = cstr_field(&block[..100]);
        let prefix = if is_ustar && &block[257..265] == b"ustar\x0000" {
            cstr_field(&block[345..500])
        } else {
            &[][..]
        };
        if prefix.is_empty() {
            base.to_vec()
        } else {
            let mut v = prefix.to_vec();
            v.push(b'/');
            v.extend_from_slice(base);
            v
        }
    };
    let link = if let Some(p) = pax.get(&b"linkpath"[..]) {
        p.clone()
    } else if let Some(l) = long_link {
        l
    } else {
        cstr_field(&block[157..257]).to_vec()
    };
    let is_dir_name = name.ends_with(b"/");
    while name.len() > 1 && name.ends_with(b"/") {
        name.pop();
    }
    let name = name.strip_prefix(b"./").map(<[u8]>::to_vec).unwrap_or(name);
    if name.is_empty() || name.contains(&0) {
        return Err("entry with an empty name".into());
    }
    let size = match pax_number(pax, b"size")? {
        Some(v) => u64::try_from(v).map_err(|_| "PAX size out of range")?,
        None => ustar_size,
    };
    let mode = parse_numeric(&block[100..108]).map_err(|e| format!("mode: {e}"))? as u32 & 0o7777;
    let uid = match pax_number(pax, b"uid")? {
        Some(v) => u64::try_from(v).map_err(|_| "PAX uid out of range")?,
        None => parse_numeric(&block[108..116]).map_err(|e| format!("uid: {e}"))?,
    };
    let gid = match pax_number(pax, b"gid")? {
        Some(v) => u64::try_from(v).map_err(|_| "PAX gid out of range")?,
        None => parse_numeric(&block[116..124]).map_err(|e| format!("gid: {e}"))?,
    };
    let mtime = match pax_number(pax, b"mtime")? {
        Some(v) => i64::try_from(v).map_err(|_| "PAX mtime out of range")?,
        None => parse_numeric(&block[136..148]).map_err(|e| format!("mtime: {e}"))? as i64,
    };
    let dev = || -> Result<(u32, u32), String> {
        let major = parse_numeric(&block[329..337]).map_err(|e| format!("devmajor: {e}"))?;
        let minor = parse_numeric(&block[337..345]).map_err(|e| format!("devminor: {e}"))?;
        Ok((
            u32::try_from(major).map_err(|_| "devmajor out of range")?,
            u32::try_from(minor).map_err(|_| "devminor out of range")?,
        ))
    };
    let link_path = || PathBuf::from(std::ffi::OsString::from_vec(link.clone()));
    let kind = match typeflag {
        b'0' | 0 | b'7' if is_dir_name => EntryKind::Dir,
        b'0' | 0 | b'7' => EntryKind::File,
        b'1' => EntryKind::HardLink(link_path()),
        b'2' => EntryKind::Symlink(link_path()),
        b'3' => {
            let (major, minor) = dev()?;
            EntryKind::CharDevice { major, minor }
        }
        b'4' => {
            let (major, minor) = dev()?;
            EntryKind::BlockDevice { major, minor }
        }
        b'5' => EntryKind::Dir,
        b'6' => EntryKind::Fifo,
        other => return Err(format!("unsupported entry type {:?}", other as char)),
    };
    let mut xattrs = BTreeMap::new();
    for (k, v) in pax {
        if let Some(x) = k.strip_prefix(b"SCHILY.xattr.") {
            let key = String::from_utf8(x.to_vec()).map_err(|_| "xattr name is not UTF-8")?;
            xattrs.insert(key, v.clone());
        }
    }
    Ok(TarHeader {
        path: PathBuf::from(std::ffi::OsString::from_vec(name)),
        kind,
        mode,
        uid,
        gid,
        mtime,
        size,
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
        let mut r = TarReader::new(bytes.as_slice());
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
        let mut file = TarHeader::new(&long, EntryKind::File);
        file.size = 5;
        file.uid = 5_000_000;
        file.gid = 7;
        file.mode = 0o4755;
        file.mtime = 1_700_000_000;
        file.xattrs
            .insert("security.capability".into(), vec![1, 0, 0, 2, 0, 0xff]);
        let link = TarHeader::new("l", EntryKind::Symlink(PathBuf::from("x/".repeat(70))));
        let dir = TarHeader::new("dir", EntryKind::Dir);
        let dev = TarHeader::new("null", EntryKind::CharDevice { major: 1, minor: 3 });
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
        w.append(&TarHeader::new("a", EntryKind::Dir), &mut io::empty())
            .unwrap();
        let mut bytes = w.finish().unwrap();
        bytes[0] = b'b';
        let err = TarReader::new(bytes.as_slice()).next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn oversized_extended_header_is_bounded() {
        let mut block = [0u8; BLOCK];
        block[..4].copy_from_slice(b"long");
        write_octal(&mut block[124..136], 64 << 20);
        block[156] = b'L';
        finish_ustar(&mut block);
        let err = TarReader::new(&block[..]).next_entry().unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn append_refuses_whiteout_names_but_whiteout_api_writes_them() {
        let mut w = TarWriter::new(Vec::new());
        let err = w
            .append(
                &TarHeader::new("etc/.wh.passwd", EntryKind::File),
                &mut io::empty(),
            )
            .unwrap_err();
        assert!(matches!(err, ImageError::WhiteoutInRootfs { .. }));
        w.append_whiteout(Path::new("etc/passwd")).unwrap();
        w.append_opaque_whiteout(Path::new("var/cache")).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = TarReader::new(bytes.as_slice());
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
        let mut h = TarHeader::new("f", EntryKind::File);
        h.size = 10;
        let err = TarWriter::new(Vec::new())
            .append(&h, &mut &b"abc"[..])
            .unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
