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
}

impl<R> Capped<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Capped {
            inner,
            limit,
            read: 0,
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
            return Err(io::Error::other(format!(
                "decompressed data exceeds the limit of {} bytes",
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
