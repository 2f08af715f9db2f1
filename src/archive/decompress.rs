//! Decompression with an output cap.
//!
//! Every decoder is wrapped in [`Capped`], which fails with an error once
//! more than `limit` bytes come out: a decompression bomb (HOSTILE 14) stops
//! the extraction with a clear message instead of filling the disk, and it is
//! never silently truncated into something that looks like a valid archive.

use std::io::{self, BufReader, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// From a file or member name: `.gz`/`.tgz`, `.xz`, `.zst`; anything else
    /// is uncompressed (callers reject unsupported suffixes themselves).
    pub fn from_name(name: &str) -> Compression {
        if name.ends_with(".gz") || name.ends_with(".tgz") {
            Compression::Gzip
        } else if name.ends_with(".xz") || name.ends_with(".txz") {
            Compression::Xz
        } else if name.ends_with(".zst") || name.ends_with(".zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// From the first bytes of the data (at least 6 for xz).
    pub fn from_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A reader that errors once more than `limit` bytes have been read.
pub struct Capped<R> {
    inner: R,
    limit: u64,
    read: u64,
    /// What the data is, for the error: the error surfaces wherever the
    /// reader is drained (a tar header, a file's data), far from its caller.
    what: Option<String>,
}

impl<R> Capped<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Capped {
            inner,
            limit,
            read: 0,
            what: None,
        }
    }

    /// [`Capped::new`] whose error names `what`.
    pub fn named(inner: R, limit: u64, what: impl Into<String>) -> Self {
        Capped {
            what: Some(what.into()),
            ..Capped::new(inner, limit)
        }
    }

    /// Bytes produced so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            let of = self
                .what
                .as_deref()
                .map(|w| format!(" of {w}"))
                .unwrap_or_default();
            return Err(io::Error::other(format!(
                "decompressed data{of} exceeds the limit of {} bytes",
                self.limit
            )));
        }
        Ok(n)
    }
}

/// Wraps `r` in the decoder for `c`, capped at `limit` output bytes.
/// Only zstd can fail here (it allocates its context up front).
pub fn decoder<'a, R: Read + 'a>(
    c: Compression,
    r: R,
    limit: u64,
) -> io::Result<Box<dyn Read + 'a>> {
    decoder_for(c, r, limit, Integrity::Check)
}

/// Whether a decoder checks the compressed format's own checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    Check,
    /// The input's SHA-256 was checked against a signed index before it
    /// got here: xz's CRC64 over the same bytes adds nothing but ~5% of the
    /// decoding time. (gzip's CRC32 and zstd's checksum are cheap and kept.)
    AlreadyVerified,
}

/// [`decoder`], choosing whether xz verifies its check field.
pub fn decoder_for<'a, R: Read + 'a>(
    c: Compression,
    r: R,
    limit: u64,
    integrity: Integrity,
) -> io::Result<Box<dyn Read + 'a>> {
    if c == Compression::Xz && integrity == Integrity::AlreadyVerified {
        let flags = liblzma::stream::CONCATENATED | liblzma::stream::IGNORE_CHECK;
        let stream = liblzma::stream::Stream::new_auto_decoder(u64::MAX, flags)
            .map_err(|e| io::Error::other(format!("xz decoder: {e}")))?;
        return Ok(Box::new(Capped::new(
            liblzma::bufread::XzDecoder::new_stream(BufReader::with_capacity(64 * 1024, r), stream),
            limit,
        )));
    }
    Ok(match c {
        Compression::None => Box::new(Capped::new(r, limit)),
        Compression::Gzip => Box::new(Capped::new(
            flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, r)),
            limit,
        )),
        Compression::Xz => Box::new(Capped::new(
            liblzma::bufread::XzDecoder::new_multi_decoder(BufReader::with_capacity(64 * 1024, r)),
            limit,
        )),
        Compression::Zstd => Box::new(Capped::new(zstd::stream::read::Decoder::new(r)?, limit)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(c: Compression, compressed: &[u8], expect: &[u8]) {
        assert_eq!(Compression::from_magic(compressed), c);
        let mut out = Vec::new();
        decoder(c, compressed, 1 << 20)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, expect);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_all_formats() {
        let data = b"hello hello hello".repeat(100);
        roundtrip(Compression::Gzip, &gzip(&data), &data);
        roundtrip(Compression::Xz, &xz(&data), &data);
        roundtrip(
            Compression::Zstd,
            &zstd::encode_all(&data[..], 3).unwrap(),
            &data,
        );
        let mut out = Vec::new();
        decoder(Compression::None, &data[..], 1 << 20)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn already_verified_input_skips_only_the_xz_check() {
        let data = b"verified ".repeat(1000);
        let mut x = xz(&data);
        // The block's CRC64 ends just before the index, which the stream
        // footer (CRC32, backward size, flags, magic) locates.
        let n = x.len();
        let backward = u32::from_le_bytes(x[n - 8..n - 4].try_into().unwrap()) as usize;
        let index_start = n - 12 - (backward + 1) * 4;
        x[index_start - 1] ^= 0xff;
        let read = |integrity| -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            decoder_for(Compression::Xz, &x[..], 1 << 20, integrity)?.read_to_end(&mut out)?;
            Ok(out)
        };
        assert!(read(Integrity::Check).is_err());
        assert_eq!(read(Integrity::AlreadyVerified).unwrap(), data);
        // Damaged compressed data is still an error.
        let mut damaged = xz(&data);
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x55;
        let mut out = Vec::new();
        let result = decoder_for(
            Compression::Xz,
            &damaged[..],
            1 << 20,
            Integrity::AlreadyVerified,
        )
        .unwrap()
        .read_to_end(&mut out);
        assert!(result.is_err() || out != data);
    }

    #[test]
    fn names_map_to_compressions() {
        assert_eq!(Compression::from_name("data.tar.xz"), Compression::Xz);
        assert_eq!(Compression::from_name("control.tar.gz"), Compression::Gzip);
        assert_eq!(Compression::from_name("data.tar.zst"), Compression::Zstd);
        assert_eq!(Compression::from_name("data.tar"), Compression::None);
    }

    #[test]
    fn bombs_hit_the_cap_with_an_error() {
        // HOSTILE 14: 16 MiB of zeros compresses to a few KiB.
        let zeros = vec![0u8; 16 << 20];
        for (c, bomb) in [
            (Compression::Gzip, gzip(&zeros)),
            (Compression::Xz, xz(&zeros)),
            (Compression::Zstd, zstd::encode_all(&zeros[..], 3).unwrap()),
        ] {
            assert!(bomb.len() < 1 << 20);
            let err = io::copy(
                &mut decoder(c, &bomb[..], 1 << 20).unwrap(),
                &mut io::sink(),
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("exceeds the limit"),
                "{c:?}: {err}"
            );
        }
    }
}
