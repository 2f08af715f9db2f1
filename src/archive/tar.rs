//! A strict, streaming tar reader.
//!
//! Written by hand rather than with the `tar` crate because every archive we
//! read is hostile until proven otherwise (HOSTILE 10–12): header checksums
//! are verified, numeric fields must be octal or base-256, unknown type flags
//! are errors, and GNU long names and PAX records are capped at 1 MiB so a
//! crafted 64 MiB long name gives a bounded error instead of an allocation.
//!
//! Precedence for names and sizes follows GNU tar and Go's archive/tar: a PAX
//! record beats a GNU `L`/`K` long name, which beats the ustar name/prefix;
//! a PAX `size` beats the ustar size. Header-only types (links, directories,
//! devices, FIFOs) must carry size 0, so a reader that skips or does not skip
//! their "data" can never be desynchronised from us.

use std::collections::BTreeMap;
use std::io::{self, Read};

/// Upper bound for one GNU long name/link or PAX header block, and for all
/// metadata pending before one entry (apt caps long names at 1 MiB too).
pub const META_LIMIT: u64 = 1 << 20;

const BLOCK: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("tar entry #{index}{}: {msg}", name_suffix(.name))]
    Invalid {
        index: u64,
        name: Option<String>,
        msg: String,
    },
    #[error("tar entry #{index}{}: archive truncated", name_suffix(.name))]
    Truncated { index: u64, name: Option<String> },
    #[error("tar entry #{index}{}: {source}", name_suffix(.name))]
    Io {
        index: u64,
        name: Option<String>,
        #[source]
        source: io::Error,
    },
}

fn name_suffix(name: &Option<String>) -> String {
    match name {
        Some(n) => format!(" ({n})"),
        None => String::new(),
    }
}

impl TarError {
    /// Index (0-based, counting only real entries) of the entry at fault.
    pub fn index(&self) -> u64 {
        match self {
            TarError::Invalid { index, .. }
            | TarError::Truncated { index, .. }
            | TarError::Io { index, .. } => *index,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EntryKind {
    #[default]
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDev,
    BlockDev,
    Fifo,
}

impl EntryKind {
    /// Types whose header is the whole entry: any data size must be 0.
    fn header_only(self) -> bool {
        !matches!(self, EntryKind::File)
    }
}

/// Everything the header (plus PAX / GNU extensions) says about one entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryHeader {
    /// The raw path, as written in the archive (not sanitised here).
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (07777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch (fractional PAX mtimes are truncated).
    pub mtime: i64,
    pub size: u64,
    /// Symlink target or hardlink target path.
    pub link_target: Option<Vec<u8>>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// All PAX records in effect for this entry (global then local), e.g.
    /// `APK-TOOLS.checksum.SHA1`.
    pub pax: BTreeMap<String, Vec<u8>>,
    /// `SCHILY.xattr.*` records, name without the prefix.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl EntryHeader {
    /// Path for messages: lossy UTF-8.
    pub fn display_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

pub struct TarReader<R> {
    inner: R,
    /// Bytes consumed from `inner` so far (the stream offset of the next byte).
    offset: u64,
    /// Unread bytes of the current entry's data.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// Index of the next real entry.
    index: u64,
    /// Name of the current entry, for error messages from `Read`.
    current: Option<String>,
    global_pax: BTreeMap<String, Vec<u8>>,
    finished: bool,
}

/// One entry: its header, and `Read` for its data. Unread data is skipped
/// by the next `next_entry` call.
pub struct Entry<'a, R: Read> {
    pub header: EntryHeader,
    /// 0-based index among real entries (metadata headers not counted).
    pub index: u64,
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for Entry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read_data(buf)
    }
}

/// The current entry's data, for callers that keep only the header of the
/// [`Entry`] that [`TarReader::next_entry`] returned.
pub struct EntryData<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read_data(buf)
    }
}

/// Metadata gathered from extension headers before the entry they describe.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<BTreeMap<String, Vec<u8>>>,
    bytes: u64,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            index: 0,
            current: None,
            global_pax: BTreeMap::new(),
            finished: false,
        }
    }

    /// Offset in the (uncompressed) stream of the next unread byte: right
    /// after `next_entry` returns, where the entry's data starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads what is left of the current entry's data.
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    /// The underlying reader (for callers that need to check what follows).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn invalid(&self, name: Option<&[u8]>, msg: impl Into<String>) -> TarError {
        TarError::Invalid {
            index: self.index,
            name: name.map(|n| String::from_utf8_lossy(n).into_owned()),
            msg: msg.into(),
        }
    }

    fn io_err(&self, e: io::Error) -> TarError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TarError::Truncated {
                index: self.index,
                name: self.current.clone(),
            }
        } else {
            TarError::Io {
                index: self.index,
                name: self.current.clone(),
                source: e,
            }
        }
    }

    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = super::read_member_data(&mut self.inner, &mut self.remaining, buf, || {
            format!(
                "tar entry {}: archive truncated inside the data",
                self.current.as_deref().unwrap_or("?")
            )
        })?;
        self.offset += n as u64;
        Ok(n)
    }

    /// Discards `n` bytes of the input.
    fn skip(&mut self, n: u64) -> Result<(), TarError> {
        if n == 0 {
            return Ok(());
        }
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(|e| self.io_err(e))?;
        self.offset += copied;
        if copied != n {
            return Err(self.io_err(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// Reads one 512-byte block; `Ok(false)` on a clean EOF before any byte.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, TarError> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(self.io_err(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    filled += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(true)
    }

    /// Reads the data of an extension header, capped by [`META_LIMIT`].
    fn read_meta(
        &mut self,
        size: u64,
        pending: &mut Pending,
        what: &str,
    ) -> Result<Vec<u8>, TarError> {
        pending.bytes = pending.bytes.saturating_add(size);
        if size > META_LIMIT || pending.bytes > META_LIMIT {
            return Err(self.invalid(
                None,
                format!("{what} of {size} bytes exceeds the {META_LIMIT}-byte limit"),
            ));
        }
        let len = usize::try_from(size).map_err(|_| self.invalid(None, "size overflow"))?;
        let mut data = vec![0u8; len];
        self.inner
            .read_exact(&mut data)
            .map_err(|e| self.io_err(e))?;
        self.offset += size;
        self.skip(padding_for(size))?;
        Ok(data)
    }

    /// Advances to the next real entry, skipping whatever is left of the
    /// current one. `Ok(None)` at the end-of-archive marker or a clean EOF.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_, R>>, TarError> {
        if self.finished {
            return Ok(None);
        }
        let leftover = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(leftover)?;
        self.current = None;

        let mut pending = Pending::default();
        let mut block = [0u8; BLOCK];
        loop {
            if !self.read_block(&mut block)? {
                if pending.bytes > 0 || pending.pax.is_some() {
                    return Err(self.io_err(io::ErrorKind::UnexpectedEof.into()));
                }
                self.finished = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                if pending.bytes > 0 || pending.pax.is_some() {
                    return Err(self.invalid(None, "extension header not followed by an entry"));
                }
                self.finished = true;
                return Ok(None);
            }
            // A header that does not parse is named by its raw name field, so the
            // message says which entry it was meant to be.
            let raw = RawHeader::parse(&block).map_err(|m| {
                let name = field_str(&block[..100]);
                self.invalid((!name.is_empty()).then_some(&name[..]), m)
            })?;
            let size = raw.size;
            match raw.typeflag {
                b'L' => {
                    pending.long_name = Some(trim_nul(self.read_meta(
                        size,
                        &mut pending,
                        "GNU long name",
                    )?))
                }
                b'K' => {
                    pending.long_link = Some(trim_nul(self.read_meta(
                        size,
                        &mut pending,
                        "GNU long link",
                    )?))
                }
                b'x' => {
                    let data = self.read_meta(size, &mut pending, "PAX header")?;
                    let recs = parse_pax(&data).map_err(|m| self.invalid(None, m))?;
                    pending.pax.get_or_insert_with(BTreeMap::new).extend(recs);
                }
                b'g' => {
                    let data = self.read_meta(size, &mut pending, "PAX global header")?;
                    let recs = parse_pax(&data).map_err(|m| self.invalid(None, m))?;
                    for (k, v) in recs {
                        if v.is_empty() {
                            self.global_pax.remove(&k);
                        } else {
                            self.global_pax.insert(k, v);
                        }
                    }
                    let total: usize = self.global_pax.iter().map(|(k, v)| k.len() + v.len()).sum();
                    if total as u64 > META_LIMIT {
                        return Err(self.invalid(None, "PAX global headers exceed the size limit"));
                    }
                }
                _ => {
                    let header = self.build_header(raw, pending)?;
                    self.current = Some(header.display_path());
                    self.remaining = header.size;
                    self.padding = padding_for(header.size);
                    let index = self.index;
                    self.index += 1;
                    return Ok(Some(Entry {
                        header,
                        index,
                        reader: self,
                    }));
                }
            }
        }
    }

    fn build_header(&self, raw: RawHeader, pending: Pending) -> Result<EntryHeader, TarError> {
        let mut pax = self.global_pax.clone();
        for (k, v) in pending.pax.unwrap_or_default() {
            if v.is_empty() {
                pax.remove(&k);
            } else {
                pax.insert(k, v);
            }
        }
        let path = pax
            .get("path")
            .cloned()
            .or(pending.long_name)
            .unwrap_or(raw.name);
        let err = |msg: String| self.invalid(Some(&path), msg);
        let kind = match raw.typeflag {
            b'0' | b'\0' | b'7' => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDev,
            b'4' => EntryKind::BlockDev,
            b'5' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            t => return Err(err(format!("unsupported type flag {:?}", t as char))),
        };
        let size = match pax.get("size") {
            Some(v) => parse_decimal_u64(v)
                .ok_or_else(|| err("PAX size is not a decimal number".into()))?,
            None => raw.size,
        };
        if kind.header_only() && size != 0 {
            return Err(err(format!("{kind:?} entry with non-zero size {size}")));
        }
        let uid = pax_number(&pax, "uid").map_err(err)?.unwrap_or(raw.uid);
        let gid = pax_number(&pax, "gid").map_err(err)?.unwrap_or(raw.gid);
        let mtime = match pax.get("mtime") {
            Some(v) => parse_pax_time(v).ok_or_else(|| err("PAX mtime is not a number".into()))?,
            None => raw.mtime,
        };
        let link_target = match kind {
            EntryKind::Symlink | EntryKind::Hardlink => Some(
                pax.get("linkpath")
                    .cloned()
                    .or(pending.long_link)
                    .unwrap_or(raw.linkname),
            ),
            _ => None,
        };
        let (dev_major, dev_minor) = match kind {
            EntryKind::CharDev | EntryKind::BlockDev => (
                u32::try_from(raw.dev_major.map_err(&err)?)
                    .map_err(|_| err("device major out of range".into()))?,
                u32::try_from(raw.dev_minor.map_err(&err)?)
                    .map_err(|_| err("device minor out of range".into()))?,
            ),
            _ => (0, 0),
        };
        let xattrs = pax
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("SCHILY.xattr.")
                    .map(|n| (n.to_string(), v.clone()))
            })
            .collect();
        if path.is_empty() {
            return Err(err("empty path".into()));
        }
        Ok(EntryHeader {
            path,
            kind,
            mode: u32::try_from(raw.mode & 0o7777).unwrap_or(0),
            uid,
            gid,
            mtime,
            size,
            link_target,
            dev_major,
            dev_minor,
            pax,
            xattrs,
        })
    }
}

fn padding_for(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// The ustar/GNU header block, decoded but not yet merged with extensions.
struct RawHeader {
    name: Vec<u8>,
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    typeflag: u8,
    linkname: Vec<u8>,
    dev_major: Result<u64, String>,
    dev_minor: Result<u64, String>,
}

impl RawHeader {
    fn parse(b: &[u8; BLOCK]) -> Result<RawHeader, String> {
        verify_checksum(b)?;
        let magic = &b[257..265];
        let posix = &magic[..6] == b"ustar\0";
        let gnu = magic == b"ustar  \0";
        let v7 = magic.iter().all(|&c| c == 0);
        if !(posix || gnu || v7) {
            return Err("unknown header magic".into());
        }
        let field_name = |range: std::ops::Range<usize>| field_str(&b[range]);
        let mut name = field_name(0..100);
        if posix {
            let prefix = field_name(345..500);
            if !prefix.is_empty() {
                let mut full = prefix;
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }
        if posix || gnu {
            // uname and gname must be NUL-terminated (apk-tools CVE-2021-30139).
            for (what, range) in [("uname", 265..297), ("gname", 297..329)] {
                if !b[range].contains(&0) {
                    return Err(format!("{what} field is not NUL-terminated"));
                }
            }
        }
        let typeflag = b[156];
        let size = parse_numeric(&b[124..136]).map_err(|m| format!("size: {m}"))?;
        if size < 0 {
            return Err("negative size".into());
        }
        Ok(RawHeader {
            name,
            mode: parse_numeric(&b[100..108])
                .map_err(|m| format!("mode: {m}"))?
                .try_into()
                .map_err(|_| "negative mode".to_string())?,
            uid: parse_numeric(&b[108..116])
                .map_err(|m| format!("uid: {m}"))?
                .try_into()
                .map_err(|_| "negative uid".to_string())?,
            gid: parse_numeric(&b[116..124])
                .map_err(|m| format!("gid: {m}"))?
                .try_into()
                .map_err(|_| "negative gid".to_string())?,
            size: size as u64,
            mtime: parse_numeric(&b[136..148]).map_err(|m| format!("mtime: {m}"))?,
            typeflag,
            linkname: field_name(157..257),
            dev_major: parse_numeric(&b[329..337])
                .and_then(|v| u64::try_from(v).map_err(|_| "negative".into()))
                .map_err(|m| format!("devmajor: {m}")),
            dev_minor: parse_numeric(&b[337..345])
                .and_then(|v| u64::try_from(v).map_err(|_| "negative".into()))
                .map_err(|m| format!("devminor: {m}")),
        })
    }
}

/// A string field: up to the first NUL, or the whole field when full.
fn field_str(f: &[u8]) -> Vec<u8> {
    let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    f[..end].to_vec()
}

fn verify_checksum(b: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_numeric(&b[148..156]).map_err(|m| format!("checksum field: {m}"))?;
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &c) in b.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += i64::from(c);
        signed += i64::from(c as i8);
    }
    if stored == unsigned || stored == signed {
        Ok(())
    } else {
        Err(format!(
            "header checksum mismatch (stored {stored}, computed {unsigned})"
        ))
    }
}

/// Octal (NUL/space padded) or GNU base-256 numeric field.
fn parse_numeric(f: &[u8]) -> Result<i64, String> {
    if let Some(&first) = f.first() {
        if first & 0x80 != 0 {
            return parse_base256(f);
        }
    }
    let text = f
        .iter()
        .position(|&c| c != b' ')
        .map(|start| &f[start..])
        .unwrap_or(&[]);
    let end = text
        .iter()
        .position(|&c| c == 0 || c == b' ')
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(end);
    if rest.iter().any(|&c| c != 0 && c != b' ') {
        return Err("garbage after the number".into());
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !(b'0'..=b'7').contains(&c) {
            return Err(format!(
                "not an octal number: {:?}",
                String::from_utf8_lossy(f)
            ));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or("octal number overflows")?;
    }
    Ok(v)
}

fn parse_base256(f: &[u8]) -> Result<i64, String> {
    let negative = f[0] & 0x40 != 0;
    let mut v: i128 = i128::from(f[0] & 0x3f);
    if negative {
        v -= 0x40;
    }
    for &c in &f[1..] {
        v = v.checked_mul(256).ok_or("base-256 number overflows")? + i128::from(c);
        if v > i128::from(i64::MAX) || v < i128::from(i64::MIN) {
            return Err("base-256 number overflows".into());
        }
    }
    i64::try_from(v).map_err(|_| "base-256 number overflows".into())
}

fn parse_decimal_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn pax_number(pax: &BTreeMap<String, Vec<u8>>, key: &str) -> Result<Option<u64>, String> {
    match pax.get(key) {
        None => Ok(None),
        Some(v) => parse_decimal_u64(v)
            .map(Some)
            .ok_or_else(|| format!("PAX {key} is not a decimal number")),
    }
}

/// PAX times are decimal seconds with an optional fraction and sign.
fn parse_pax_time(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let int = s.split('.').next()?;
    let (neg, digits) = match int.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, int),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac = &s[int.len()..];
    let frac_ok =
        frac.is_empty() || (frac.len() > 1 && frac[1..].bytes().all(|c| c.is_ascii_digit()));
    if !frac_ok {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(if neg { -n } else { n })
}

/// Parses PAX records `"<len> <key>=<value>\n"`, strictly.
fn parse_pax(mut data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        // Some writers pad the last block with NULs.
        if data.iter().all(|&c| c == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&c| c == b' ')
            .ok_or("PAX record without a length")?;
        let len = parse_decimal_u64(&data[..sp]).ok_or("PAX record length is not decimal")?;
        let len = usize::try_from(len).map_err(|_| "PAX record length overflows")?;
        if len <= sp + 1 || len > data.len() {
            return Err("PAX record length out of range".into());
        }
        let record = &data[sp + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or("PAX record does not end with a newline")?;
        let eq = record
            .iter()
            .position(|&c| c == b'=')
            .ok_or("PAX record without '='")?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| "PAX key is not UTF-8")?;
        if key.is_empty() {
            return Err("PAX record with an empty key".into());
        }
        out.push((key.to_string(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A tiny tar writer for tests: it can write things a sane writer never
    //! would (bad checksums, giant long names, mismatching PAX sizes).

    pub struct RawEntry<'a> {
        pub name: &'a [u8],
        pub typeflag: u8,
        pub size_field: Option<&'a [u8]>,
        pub data: &'a [u8],
        pub link: &'a [u8],
        pub mode: u32,
    }

    impl Default for RawEntry<'_> {
        fn default() -> Self {
            RawEntry {
                name: b"",
                typeflag: b'0',
                size_field: None,
                data: b"",
                link: b"",
                mode: 0o644,
            }
        }
    }

    pub fn header(e: &RawEntry<'_>, gnu: bool) -> [u8; 512] {
        let mut h = [0u8; 512];
        let n = e.name.len().min(100);
        h[..n].copy_from_slice(&e.name[..n]);
        h[100..108].copy_from_slice(format!("{:07o}\0", e.mode).as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        match e.size_field {
            Some(f) => h[124..124 + f.len()].copy_from_slice(f),
            None => h[124..136].copy_from_slice(format!("{:011o}\0", e.data.len()).as_bytes()),
        }
        h[136..148].copy_from_slice(b"14000000000\0");
        h[156] = e.typeflag;
        let l = e.link.len().min(100);
        h[157..157 + l].copy_from_slice(&e.link[..l]);
        if gnu {
            h[257..265].copy_from_slice(b"ustar  \0");
        } else {
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
        }
        fix_checksum(&mut h);
        h
    }

    pub fn fix_checksum(h: &mut [u8; 512]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    pub fn push(out: &mut Vec<u8>, e: &RawEntry<'_>) {
        out.extend_from_slice(&header(e, false));
        push_data(out, e.data);
    }

    pub fn push_data(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    pub fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
        let body_len = key.len() + value.len() + 3;
        let mut len = body_len + 1;
        while len != body_len + len.to_string().len() {
            len = body_len + len.to_string().len();
        }
        let mut r = format!("{len} {key}=").into_bytes();
        r.extend_from_slice(value);
        r.push(b'\n');
        r
    }

    pub fn finish(out: &mut Vec<u8>) {
        out.extend_from_slice(&[0u8; 1024]);
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn entries(data: &[u8]) -> Result<Vec<(EntryHeader, Vec<u8>)>, TarError> {
        let mut r = TarReader::new(data);
        let mut out = Vec::new();
        while let Some(mut e) = r.next_entry()? {
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).map_err(|e| TarError::Io {
                index: 0,
                name: None,
                source: e,
            })?;
            out.push((e.header.clone(), buf));
        }
        Ok(out)
    }

    #[test]
    fn reads_ustar_entries_and_skips_unread_data() {
        let mut t = Vec::new();
        push(
            &mut t,
            &RawEntry {
                name: b"./a",
                data: b"hello",
                ..Default::default()
            },
        );
        push(
            &mut t,
            &RawEntry {
                name: b"./d/",
                typeflag: b'5',
                mode: 0o755,
                ..Default::default()
            },
        );
        push(
            &mut t,
            &RawEntry {
                name: b"./l",
                typeflag: b'2',
                link: b"a",
                ..Default::default()
            },
        );
        finish(&mut t);
        let mut r = TarReader::new(&t[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.header.path, b"./a");
        assert_eq!(e.header.size, 5);
        assert_eq!(e.header.mtime, 0o14000000000);
        // Do not read the data: the next call must skip it.
        let d = r.next_entry().unwrap().unwrap();
        assert_eq!(d.header.kind, EntryKind::Dir);
        assert_eq!(d.header.mode, 0o755);
        let l = r.next_entry().unwrap().unwrap();
        assert_eq!(l.header.link_target.as_deref(), Some(&b"a"[..]));
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn gnu_long_name_and_link() {
        let long = vec![b'n'; 300];
        let link = vec![b'k'; 200];
        let mut t = Vec::new();
        let mut lname = long.clone();
        lname.push(0);
        t.extend_from_slice(&header(
            &RawEntry {
                name: b"././@LongLink",
                typeflag: b'L',
                data: &lname,
                ..Default::default()
            },
            true,
        ));
        push_data(&mut t, &lname);
        t.extend_from_slice(&header(
            &RawEntry {
                name: b"././@LongLink",
                typeflag: b'K',
                data: &link,
                ..Default::default()
            },
            true,
        ));
        push_data(&mut t, &link);
        t.extend_from_slice(&header(
            &RawEntry {
                name: b"short",
                typeflag: b'2',
                link: b"x",
                ..Default::default()
            },
            true,
        ));
        finish(&mut t);
        let es = entries(&t).unwrap();
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].0.path, long);
        assert_eq!(es[0].0.link_target.as_deref(), Some(&link[..]));
    }

    #[test]
    fn pax_overrides_gnu_and_ustar() {
        let mut pax = pax_record("path", b"from-pax");
        pax.extend(pax_record("SCHILY.xattr.security.capability", b"\x01\x02"));
        pax.extend(pax_record("APK-TOOLS.checksum.SHA1", b"abc"));
        pax.extend(pax_record("mtime", b"1700000000.5"));
        let mut t = Vec::new();
        let lname = b"from-gnu\0".to_vec();
        t.extend_from_slice(&header(
            &RawEntry {
                name: b"././@LongLink",
                typeflag: b'L',
                data: &lname,
                ..Default::default()
            },
            true,
        ));
        push_data(&mut t, &lname);
        push(
            &mut t,
            &RawEntry {
                name: b"PaxHeader",
                typeflag: b'x',
                data: &pax,
                ..Default::default()
            },
        );
        push(
            &mut t,
            &RawEntry {
                name: b"ustar-name",
                data: b"x",
                ..Default::default()
            },
        );
        finish(&mut t);
        let es = entries(&t).unwrap();
        assert_eq!(es[0].0.path, b"from-pax");
        assert_eq!(es[0].0.mtime, 1_700_000_000);
        assert_eq!(
            es[0].0.xattrs,
            vec![("security.capability".to_string(), vec![1, 2])]
        );
        assert_eq!(es[0].0.pax.get("APK-TOOLS.checksum.SHA1").unwrap(), b"abc");
    }

    #[test]
    fn pax_size_beats_ustar_size() {
        // HOSTILE 10: ustar says 0, PAX says 600. GNU tar and Go read 600
        // bytes of data; so do we, which keeps us in sync with them.
        let pax = pax_record("size", b"600");
        let data = vec![7u8; 600];
        let mut t = Vec::new();
        push(
            &mut t,
            &RawEntry {
                name: b"p",
                typeflag: b'x',
                data: &pax,
                ..Default::default()
            },
        );
        t.extend_from_slice(&header(
            &RawEntry {
                name: b"big",
                size_field: Some(b"00000000000\0"),
                ..Default::default()
            },
            false,
        ));
        push_data(&mut t, &data);
        push(
            &mut t,
            &RawEntry {
                name: b"after",
                data: b"z",
                ..Default::default()
            },
        );
        finish(&mut t);
        let es = entries(&t).unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].1, data);
        assert_eq!(es[1].0.path, b"after");
    }

    #[test]
    fn global_pax_applies_to_later_entries() {
        let g = pax_record("uid", b"42");
        let mut t = Vec::new();
        push(
            &mut t,
            &RawEntry {
                name: b"g",
                typeflag: b'g',
                data: &g,
                ..Default::default()
            },
        );
        push(
            &mut t,
            &RawEntry {
                name: b"a",
                ..Default::default()
            },
        );
        push(
            &mut t,
            &RawEntry {
                name: b"b",
                ..Default::default()
            },
        );
        finish(&mut t);
        let es = entries(&t).unwrap();
        assert_eq!(es[0].0.uid, 42);
        assert_eq!(es[1].0.uid, 42);
    }

    fn expect_err(t: &[u8], needle: &str) {
        match entries(t) {
            Err(e) => assert!(
                e.to_string().contains(needle),
                "{e} does not contain {needle}"
            ),
            Ok(es) => panic!(
                "expected error containing {needle}, got {} entries",
                es.len()
            ),
        }
    }

    #[test]
    fn rejects_bad_checksum() {
        let mut h = header(
            &RawEntry {
                name: b"a",
                ..Default::default()
            },
            false,
        );
        h[0] = b'b';
        let mut t = h.to_vec();
        finish(&mut t);
        expect_err(&t, "checksum");
    }

    #[test]
    fn rejects_non_octal_size() {
        let mut t = Vec::new();
        push(
            &mut t,
            &RawEntry {
                name: b"a",
                size_field: Some(b"0000000009\0"),
                ..Default::default()
            },
        );
        finish(&mut t);
        expect_err(&t, "size");
    }

    #[test]
    fn rejects_unknown_typeflag() {
        let mut t = Vec::new();
        push(
            &mut t,
            &RawEntry {
                name: b"a",
                typeflag: b'S',
                ..Default::default()
            },
        );
        finish(&mut t);
        expect_err(&t, "unsupported type flag");
    }

    #[test]
    fn rejects_uname_without_nul() {
        let mut h = header(
            &RawEntry {
                name: b"a",
                ..Default::default()
            },
            false,
        );
        h[265..297].fill(b'u');
        fix_checksum(&mut h);
        let mut t = h.to_vec();
        finish(&mut t);
        expect_err(&t, "uname");
    }

    #[test]
    fn rejects_gname_without_nul() {
        let mut h = header(
            &RawEntry {
                name: b"a",
                ..Default::default()
            },
            false,
        );
        h[297..329].fill(b'g');
        fix_checksum(&mut h);
        let mut t = h.to_vec();
        finish(&mut t);
        expect_err(&t, "gname");
    }

    #[test]
    fn rejects_giant_long_name_without_allocating_it() {
        // HOSTILE 11: a 64 MiB long name is refused from its header alone.
        let size = format!("{:011o}\0", 64u64 << 20);
        let mut t = header(
            &RawEntry {
                name: b"././@LongLink",
                typeflag: b'L',
                size_field: Some(size.as_bytes()),
                ..Default::default()
            },
            true,
        )
        .to_vec();
        t.extend_from_slice(&[b'a'; 4096]);
        expect_err(&t, "exceeds");
    }

    #[test]
    fn rejects_giant_pax_header() {
        let size = format!("{:011o}\0", 2u64 << 20);
        let mut t = header(
            &RawEntry {
                name: b"p",
                typeflag: b'x',
                size_field: Some(size.as_bytes()),
                ..Default::default()
            },
            false,
        )
        .to_vec();
        t.extend_from_slice(&[b'a'; 4096]);
        expect_err(&t, "exceeds");
    }

    #[test]
    fn rejects_truncated_data() {
        let mut t = header(
            &RawEntry {
                name: b"a",
                size_field: Some(b"00000001000\0"),
                ..Default::default()
            },
            false,
        )
        .to_vec();
        t.extend_from_slice(b"short");
        let mut r = TarReader::new(&t[..]);
        let mut e = r.next_entry().unwrap().unwrap();
        let err = e.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn rejects_size_on_header_only_types() {
        let mut t = Vec::new();
        push(
            &mut t,
            &RawEntry {
                name: b"l",
                typeflag: b'2',
                link: b"x",
                data: b"junk",
                ..Default::default()
            },
        );
        finish(&mut t);
        expect_err(&t, "non-zero size");
    }

    #[test]
    fn base256_numbers() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 0x10;
        f[10] = 0x01;
        assert_eq!(parse_numeric(&f).unwrap(), 0x110);
        assert_eq!(parse_numeric(b"  0755 \0").unwrap(), 0o755);
        assert!(parse_numeric(b"07x5\0").is_err());
    }

    #[test]
    fn pax_parsing_is_strict() {
        assert!(parse_pax(b"5 a=b").is_err());
        assert!(parse_pax(b"99 a=b\n").is_err());
        assert!(parse_pax(b"6 a=b\n").is_ok());
        assert!(parse_pax(b"6 =bc\n").is_err());
    }
}
