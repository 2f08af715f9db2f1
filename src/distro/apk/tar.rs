//! The entries of the control/index/data tars inside apk files, read with the
//! project's one strict tar reader ([`crate::archive::tar`]) over an
//! in-memory decompressed member (members are already bounded by the gzip
//! splitter). Each entry remembers where its content lies in that buffer, so
//! signature, checksum and extraction passes share one parse.

use std::collections::BTreeMap;
use std::ops::Range;

use super::ApkError;
pub use crate::archive::tar::EntryKind;
use crate::archive::tar::{TarError, TarReader};

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

/// The reader's error as the apk one: the entry by name when the reader
/// knew it, otherwise by its position.
fn from_tar_error(what: &str, e: TarError) -> ApkError {
    let (entry, reason) = match &e {
        TarError::Invalid { name, msg, .. } => (name.clone(), msg.clone()),
        TarError::Truncated { name, .. } => (name.clone(), "archive truncated".to_string()),
        TarError::Io { name, source, .. } => (name.clone(), source.to_string()),
    };
    let entry = entry.unwrap_or_else(|| format!("#{}", e.index()));
    tar_err(what, &entry, reason)
}

fn utf8(what: &str, entry: &str, raw: Vec<u8>) -> Result<String, ApkError> {
    String::from_utf8(raw).map_err(|_| tar_err(what, entry, "name is not UTF-8"))
}

/// Parses every entry of an in-memory tar. The archive may end with zero
/// blocks or (as abuild's "cut" control segments do) right at a block
/// boundary; anything but zeros after the end-of-archive marker is refused.
pub fn parse_entries(what: &str, buf: &[u8]) -> Result<Vec<TarEntry>, ApkError> {
    let mut reader = TarReader::new(buf);
    let mut entries = Vec::new();
    loop {
        let entry = match reader.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => return Err(from_tar_error(what, e)),
        };
        let h = entry.header;
        let shown = String::from_utf8_lossy(&h.path).into_owned();
        let too_big = || tar_err(what, &shown, "size does not fit in memory");
        let start = usize::try_from(reader.offset()).map_err(|_| too_big())?;
        let end = usize::try_from(h.size)
            .ok()
            .and_then(|n| start.checked_add(n))
            .ok_or_else(too_big)?;
        if end > buf.len() {
            return Err(tar_err(what, &shown, "entry data truncated"));
        }
        let id = |v: u64, field: &str| {
            u32::try_from(v).map_err(|_| tar_err(what, &shown, format!("{field} out of range")))
        };
        entries.push(TarEntry {
            kind: h.kind,
            mode: h.mode,
            uid: id(h.uid, "uid")?,
            gid: id(h.gid, "gid")?,
            mtime: u64::try_from(h.mtime).map_err(|_| tar_err(what, &shown, "negative mtime"))?,
            dev_major: h.dev_major,
            dev_minor: h.dev_minor,
            link_name: utf8(what, &shown, h.link_target.unwrap_or_default())?,
            pax: h.pax,
            data: start..end,
            path: utf8(what, &shown, h.path)?,
        });
    }
    let rest = usize::try_from(reader.offset()).unwrap_or(usize::MAX);
    if buf
        .get(rest..)
        .is_some_and(|tail| tail.iter().any(|&c| c != 0))
    {
        return Err(ApkError::format(what, "data after tar end-of-archive"));
    }
    Ok(entries)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ustar header block + data for tests.
    const BLOCK: usize = 512;

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
        assert_eq!(e[1].kind, EntryKind::Dir);
    }

    #[test]
    fn rejects_bad_checksum_truncation_and_unknown_type() {
        let mut t = entry("f", b'0', b"x");
        t[0] = b'g';
        assert!(parse_entries("t", &t).is_err());
        let t = entry("f", b'0', &[1u8; 600]);
        assert!(parse_entries("t", &t[..700]).is_err());
        assert!(parse_entries("t", &entry("f", b'Z', b"")).is_err());
        let huge = entry(
            "././@LongLink",
            b'L',
            &vec![b'a'; crate::archive::tar::META_LIMIT as usize + 1],
        );
        assert!(parse_entries("t", &huge).is_err());
    }
}
