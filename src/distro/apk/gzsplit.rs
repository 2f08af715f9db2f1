//! Split a concatenated gzip stream into its members at the compressed-byte
//! boundaries. apk signs and identifies packages by the raw bytes of single
//! members, which `MultiGzDecoder` hides.

use super::ApkError;
use flate2::{Decompress, FlushDecompress, Status};
use std::ops::Range;

/// One gzip member: where its compressed bytes are and what they decode to.
#[derive(Debug, Clone)]
pub struct GzMember {
    /// Byte range of the whole member (header to trailer) in the input.
    pub range: Range<usize>,
    pub data: Vec<u8>,
}

const FTEXT_MASK_RESERVED: u8 = 0xe0;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

fn gz_err(what: &str, offset: usize, reason: impl Into<String>) -> ApkError {
    ApkError::Gzip {
        what: what.to_string(),
        offset,
        reason: reason.into(),
    }
}

/// Length of the RFC 1952 header that starts `b`.
fn header_len(what: &str, b: &[u8], at: usize) -> Result<usize, ApkError> {
    let short = || gz_err(what, at, "truncated header");
    if b.len() < 10 {
        return Err(short());
    }
    if b[0] != 0x1f || b[1] != 0x8b {
        return Err(gz_err(what, at, "bad magic (not a gzip member)"));
    }
    if b[2] != 8 {
        return Err(gz_err(what, at, "compression method is not deflate"));
    }
    let flags = b[3];
    if flags & FTEXT_MASK_RESERVED != 0 {
        return Err(gz_err(what, at, "reserved header flags set"));
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let xlen = b.get(pos..pos + 2).ok_or_else(short)?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = b.get(pos..).and_then(|s| s.iter().position(|&c| c == 0));
            pos += nul.ok_or_else(short)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > b.len() {
        return Err(short());
    }
    Ok(pos)
}

/// Decodes the member starting at `offset`, refusing to inflate more than
/// `max_out` bytes (decompression bombs).
pub fn read_member(
    what: &str,
    bytes: &[u8],
    offset: usize,
    max_out: u64,
) -> Result<GzMember, ApkError> {
    let rest = bytes
        .get(offset..)
        .ok_or_else(|| gz_err(what, offset, "offset past end"))?;
    let hlen = header_len(what, rest, offset)?;
    let body = &rest[hlen..];
    let mut inflater = Decompress::new(false);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let consumed = inflater.total_in() as usize;
        let before_out = inflater.total_out();
        let status = inflater
            .decompress(&body[consumed..], &mut chunk, FlushDecompress::None)
            .map_err(|e| gz_err(what, offset, format!("deflate error: {e}")))?;
        let produced = (inflater.total_out() - before_out) as usize;
        out.extend_from_slice(&chunk[..produced]);
        if inflater.total_out() > max_out {
            return Err(gz_err(
                what,
                offset,
                format!("decompresses to more than {max_out} bytes"),
            ));
        }
        match status {
            Status::StreamEnd => break,
            _ if produced == 0 && inflater.total_in() as usize == consumed => {
                return Err(gz_err(what, offset, "truncated deflate stream"));
            }
            _ => {}
        }
    }
    let trailer_at = hlen + inflater.total_in() as usize;
    let trailer = rest
        .get(trailer_at..trailer_at + 8)
        .ok_or_else(|| gz_err(what, offset, "truncated trailer"))?;
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if crc != crc32fast::hash(&out) {
        return Err(gz_err(what, offset, "CRC32 mismatch"));
    }
    if isize != out.len() as u32 {
        return Err(gz_err(what, offset, "ISIZE mismatch"));
    }
    Ok(GzMember {
        range: offset..offset + trailer_at + 8,
        data: out,
    })
}

/// Splits `bytes` into exactly its gzip members. Any byte after the last member
/// that does not start a valid member is an error, never silently ignored.
pub fn split_members(
    what: &str,
    bytes: &[u8],
    max_members: usize,
    max_out: u64,
) -> Result<Vec<GzMember>, ApkError> {
    let mut members = Vec::new();
    let mut offset = 0;
    let mut total: u64 = 0;
    while offset < bytes.len() {
        if members.len() == max_members {
            return Err(ApkError::format(
                what,
                format!("extra gzip member or trailing bytes at offset {offset} (at most {max_members} members allowed)"),
            ));
        }
        let m = read_member(what, bytes, offset, max_out.saturating_sub(total))?;
        total += m.data.len() as u64;
        offset = m.range.end;
        members.push(m);
    }
    if members.is_empty() {
        return Err(ApkError::format(what, "empty input, no gzip member"));
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    pub(crate) fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn splits_at_member_boundaries() {
        let (a, b) = (gz(b"first"), gz(b"second member"));
        let joined = [a.clone(), b.clone()].concat();
        let m = split_members("t", &joined, 3, 1 << 20).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].range, 0..a.len());
        assert_eq!(m[1].range, a.len()..a.len() + b.len());
        assert_eq!(m[1].data, b"second member");
    }

    #[test]
    fn rejects_trailing_garbage_and_extra_members() {
        let mut bytes = [gz(b"a"), gz(b"b")].concat();
        assert!(split_members("t", &bytes, 1, 1 << 20).is_err());
        bytes.extend_from_slice(b"junk");
        assert!(split_members("t", &bytes, 5, 1 << 20).is_err());
    }

    #[test]
    fn rejects_truncation_bad_crc_and_bombs() {
        let full = gz(&[0u8; 100_000]);
        assert!(split_members("t", &full[..full.len() - 3], 1, 1 << 20).is_err());
        let mut bad = full.clone();
        let n = bad.len();
        bad[n - 8] ^= 1;
        assert!(split_members("t", &bad, 1, 1 << 20).is_err());
        assert!(split_members("t", &full, 1, 50_000).is_err());
    }
}
