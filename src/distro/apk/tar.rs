//! A small strict tar reader for the control/index/data tars inside apk files.
//! It works on an in-memory decompressed buffer (members are already bounded by
//! the gzip splitter). ustar + PAX (`x`, `g` ignored) + GNU long names.
//!
//! Private stand-in: the project's shared strict reader (src/archive/tar.rs)
//! can replace it; only `parse_entries` and `TarEntry` are used by callers.

use super::ApkError;
use std::collections::BTreeMap;
use std::ops::Range;

const BLOCK: usize = 512;
/// Bound on PAX / GNU long-name payloads (HOSTILE 11).
const MAX_META: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

#[derive(Debug, Clone)]
pub struct TarEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub link_name: String,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// PAX records that applied to this entry (e.g. `APK-TOOLS.checksum.SHA1`).
    pub pax: BTreeMap<String, Vec<u8>>,
    /// Content range inside the buffer given to `parse_entries`.
    pub data: Range<usize>,
}

fn tar_err(what: &str, entry: &str, reason: impl Into<String>) -> ApkError {
    ApkError::Tar {
        what: what.to_string(),
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

fn octal(what: &str, entry: &str, field: &str, raw: &[u8]) -> Result<u64, ApkError> {
    let text: Vec<u8> = raw
        .iter()
        .copied()
        .take_while(|&c| c != 0)
        .filter(|&c| c != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let mut v: u64 = 0;
    for c in text {
        if !(b'0'..=b'7').contains(&c) {
            return Err(tar_err(what, entry, format!("non-octal {field} field")));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(|| tar_err(what, entry, format!("{field} overflows")))?;
    }
    Ok(v)
}

/// A NUL-terminated string field; a field with no NUL uses all of its bytes
/// only where tar allows it (name, linkname, prefix fill their field exactly).
fn cstr(raw: &[u8]) -> &[u8] {
    let n = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    &raw[..n]
}

fn utf8(what: &str, entry: &str, raw: &[u8]) -> Result<String, ApkError> {
    String::from_utf8(raw.to_vec()).map_err(|_| tar_err(what, entry, "name is not UTF-8"))
}

fn verify_checksum(what: &str, h: &[u8]) -> Result<(), ApkError> {
    let stored = octal(what, "?", "checksum", &h[148..156])?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(c)
            }
        })
        .sum();
    if sum != stored {
        let name = String::from_utf8_lossy(cstr(&h[..100])).into_owned();
        return Err(tar_err(what, &name, "bad header checksum"));
    }
    Ok(())
}

/// Parses `len key=value\n` PAX records.
fn parse_pax(what: &str, mut data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, ApkError> {
    let mut out = BTreeMap::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&c| c == b' ')
            .ok_or_else(|| tar_err(what, "PAX header", "record without length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| tar_err(what, "PAX header", "bad record length"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(tar_err(what, "PAX header", "malformed record"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| tar_err(what, "PAX header", "record without '='"))?;
        let key = utf8(what, "PAX header", &rec[..eq])?;
        out.insert(key, rec[eq + 1..].to_vec());
        data = &data[len..];
    }
    Ok(out)
}

fn kind_of(what: &str, name: &str, flag: u8) -> Result<EntryKind, ApkError> {
    Ok(match flag {
        b'0' | 0 | b'7' => EntryKind::File,
        b'1' => EntryKind::HardLink,
        b'2' => EntryKind::Symlink,
        b'3' => EntryKind::CharDevice,
        b'4' => EntryKind::BlockDevice,
        b'5' => EntryKind::Directory,
        b'6' => EntryKind::Fifo,
        other => {
            return Err(tar_err(
                what,
                name,
                format!("unsupported typeflag {:?}", other as char),
            ))
        }
    })
}

/// Parses every entry of an in-memory tar. The archive may end with zero
/// blocks or (as abuild's "cut" control segments do) right at a block boundary.
pub fn parse_entries(what: &str, buf: &[u8]) -> Result<Vec<TarEntry>, ApkError> {
    let mut entries = Vec::new();
    let mut pos = 0;
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    while pos < buf.len() {
        let h = buf
            .get(pos..pos + BLOCK)
            .ok_or_else(|| tar_err(what, "?", "truncated header block"))?;
        if h.iter().all(|&c| c == 0) {
            // End of archive: everything after must be zero padding too.
            if buf[pos..].iter().any(|&c| c != 0) {
                return Err(ApkError::format(what, "data after tar end-of-archive"));
            }
            break;
        }
        verify_checksum(what, h)?;
        let raw_name = cstr(&h[..100]);
        let shown = String::from_utf8_lossy(raw_name).into_owned();
        let size = octal(what, &shown, "size", &h[124..136])?;
        let start = pos + BLOCK;
        let size_usize = usize::try_from(size)
            .map_err(|_| tar_err(what, &shown, "size does not fit in memory"))?;
        let end = start
            .checked_add(size_usize)
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| tar_err(what, &shown, "entry data truncated"))?;
        let padded = end.div_ceil(BLOCK) * BLOCK;
        let flag = h[156];
        let data = &buf[start..end];
        pos = padded;
        match flag {
            b'x' | b'g' | b'L' | b'K' if size_usize > MAX_META => {
                return Err(tar_err(what, &shown, "metadata header over 1 MiB"));
            }
            b'x' => {
                pax = parse_pax(what, data)?;
                continue;
            }
            b'g' => continue,
            b'L' => {
                long_name = Some(cstr(data).to_vec());
                continue;
            }
            b'K' => {
                long_link = Some(cstr(data).to_vec());
                continue;
            }
            _ => {}
        }
        let is_ustar = &h[257..262] == b"ustar";
        let mut name = raw_name.to_vec();
        if is_ustar && h[345] != 0 {
            let mut full = cstr(&h[345..500]).to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
        if let Some(n) = long_name.take() {
            name = n;
        }
        if let Some(p) = pax.get("path") {
            name = p.clone();
        }
        let mut link = long_link
            .take()
            .unwrap_or_else(|| cstr(&h[157..257]).to_vec());
        if let Some(l) = pax.get("linkpath") {
            link = l.clone();
        }
        let path = utf8(what, &shown, &name)?;
        // A PAX size overrides the ustar one (GNU tar and Go agree, HOSTILE 10).
        let (data_range, next) = match pax.get("size") {
            Some(s) => {
                let sz: usize = std::str::from_utf8(s)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| tar_err(what, &path, "bad PAX size"))?;
                let e = start
                    .checked_add(sz)
                    .filter(|&e| e <= buf.len())
                    .ok_or_else(|| tar_err(what, &path, "entry data truncated"))?;
                (start..e, e.div_ceil(BLOCK) * BLOCK)
            }
            None => (start..end, padded),
        };
        pos = next;
        let kind = kind_of(what, &path, flag)?;
        let num = |field: &str, r: Range<usize>| octal(what, &path, field, &h[r]);
        let entry = TarEntry {
            kind,
            mode: num("mode", 100..108)? as u32 & 0o7777,
            uid: num("uid", 108..116)? as u32,
            gid: num("gid", 116..124)? as u32,
            mtime: num("mtime", 136..148)?,
            dev_major: num("devmajor", 329..337)? as u32,
            dev_minor: num("devminor", 337..345)? as u32,
            link_name: utf8(what, &path, &link)?,
            pax: std::mem::take(&mut pax),
            data: data_range,
            path,
        };
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ustar header block + data for tests.
    pub(crate) fn entry(name: &str, flag: u8, data: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&c| u32::from(c)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut out = h;
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    pub(crate) fn pax_entry(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in records {
            let payload_len = k.len() + v.len() + 3;
            let mut len = payload_len + payload_len.to_string().len();
            if (len).to_string().len() != payload_len.to_string().len() {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        entry("PaxHeader", b'x', &body)
    }

    #[test]
    fn reads_entries_with_pax() {
        let mut t = pax_entry(&[("path", b"long/name"), ("APK-TOOLS.checksum.SHA1", b"ab")]);
        t.extend(entry("short", b'0', b"hello"));
        t.extend(entry("dir/", b'5', b""));
        t.extend([0u8; 1024]);
        let e = parse_entries("t", &t).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, "long/name");
        assert_eq!(&t[e[0].data.clone()], b"hello");
        assert_eq!(e[0].pax["APK-TOOLS.checksum.SHA1"], b"ab");
        assert!(e[1].pax.is_empty());
        assert_eq!(e[1].kind, EntryKind::Directory);
    }

    #[test]
    fn rejects_bad_checksum_truncation_and_unknown_type() {
        let mut t = entry("f", b'0', b"x");
        t[0] = b'g';
        assert!(parse_entries("t", &t).is_err());
        let t = entry("f", b'0', &[1u8; 600]);
        assert!(parse_entries("t", &t[..700]).is_err());
        assert!(parse_entries("t", &entry("f", b'Z', b"")).is_err());
        let huge = entry("././@LongLink", b'L', &vec![b'a'; MAX_META + 1]);
        assert!(parse_entries("t", &huge).is_err());
    }
}
