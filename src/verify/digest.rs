//! SHA-256 digests, and readers/writers that hash while streaming so a file
//! is never read twice just to check it.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// A SHA-256 digest. Displays as `sha256:<hex>` (the OCI form, what image
/// manifests and registries use); [`Sha256Digest::to_hex`] is the bare
/// lowercase hex of Debian indexes, locks and the download cache.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

/// Why a string is not a SHA-256 hex digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestParseError {
    #[error("SHA-256 digest {0:?} must be 64 hex digits")]
    Length(String),
    #[error("SHA-256 digest {0:?} contains a non-hex character")]
    NotHex(String),
}

/// Why a string is not an OCI `sha256:<64 lowercase hex>` digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("blob {digest}: {reason}")]
pub struct OciDigestError {
    pub digest: String,
    pub reason: &'static str,
}

impl Sha256Digest {
    /// Digest of an in-memory buffer.
    pub fn of(data: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(data).into())
    }

    /// Lowercase hex form (what Debian indices and OCI blob paths use).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<Self, DigestParseError> {
        if s.len() != 64 {
            return Err(DigestParseError::Length(s.to_string()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| DigestParseError::NotHex(s.to_string()))?;
        Ok(Sha256Digest(out))
    }

    /// Parses the OCI form `sha256:<64 lowercase hex>`; any other algorithm
    /// is rejected.
    pub fn parse(s: &str) -> Result<Self, OciDigestError> {
        let bad = |reason| OciDigestError {
            digest: s.to_string(),
            reason,
        };
        let hex_part = s
            .strip_prefix("sha256:")
            .ok_or_else(|| bad("only sha256 digests are supported"))?;
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad("not 64 lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| bad("not hex"))?;
        Ok(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

/// Hex SHA-256 of a buffer.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256Digest::of(data).to_hex()
}

/// Wraps a reader; every byte read through it is hashed and counted.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.count
    }

    /// Consumes the reader, returning the digest of everything read and the
    /// byte count. Bytes not yet read are not included.
    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest(self.hasher.finalize().into()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Wraps a writer; every byte accepted by the inner writer is hashed and
/// counted.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.count
    }

    /// Access to the wrapped writer (e.g. to fsync a file).
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Sha256Digest, u64) {
        (
            self.inner,
            Sha256Digest(self.hasher.finalize().into()),
            self.count,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer took, so short writes stay exact.
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A [`HashingWriter`] that hashes on a thread of its own, a chunk behind
/// the writes: for a big stream whose producer and sink keep only one core
/// busy (packing a tree into an uncompressed layer blob), the SHA-256 of
/// its ~130 MB then costs no wall time. Writes are buffered into 1 MiB
/// chunks, each written to the inner writer and then handed to the hasher;
/// spent chunks come back for reuse, so at most a few are ever allocated.
pub struct ThreadedHashingWriter<W: Write> {
    inner: W,
    chunk: Vec<u8>,
    to_hasher: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
    hasher: Option<std::thread::JoinHandle<Sha256>>,
    count: u64,
}

const HASH_CHUNK: usize = 1 << 20;

impl<W: Write> ThreadedHashingWriter<W> {
    pub fn new(inner: W) -> Self {
        let (to_hasher, chunks) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let (give_back, spent) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
        let hasher = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            for mut chunk in chunks {
                hasher.update(&chunk);
                chunk.clear();
                // Dropped instead when the writer has enough spares.
                let _ = give_back.try_send(chunk);
            }
            hasher
        });
        ThreadedHashingWriter {
            inner,
            chunk: Vec::with_capacity(HASH_CHUNK),
            to_hasher: Some(to_hasher),
            spent,
            hasher: Some(hasher),
            count: 0,
        }
    }

    /// Writes the buffered chunk, then queues it for hashing.
    fn pass_on(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.inner.write_all(&self.chunk)?;
        let spare = self
            .spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(HASH_CHUNK));
        let full = std::mem::replace(&mut self.chunk, spare);
        // Dropping the writer unfinished (an error upstream) drops the
        // sender, which ends the thread.
        self.to_hasher
            .as_ref()
            .expect("present until finish")
            .send(full)
            .map_err(|_| io::Error::other("the hashing thread stopped"))
    }

    /// Writes what is buffered and returns the inner writer, the digest of
    /// everything written and the byte count.
    pub fn finish(mut self) -> io::Result<(W, Sha256Digest, u64)> {
        self.pass_on()?;
        drop(self.to_hasher.take());
        let hasher = self
            .hasher
            .take()
            .expect("present until finish")
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        Ok((
            self.inner,
            Sha256Digest(hasher.finalize().into()),
            self.count,
        ))
    }
}

impl<W: Write> Write for ThreadedHashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(HASH_CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        self.count += n as u64;
        if self.chunk.len() == HASH_CHUNK {
            self.pass_on()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pass_on()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vector() {
        assert_eq!(sha256_hex(b"abc"), ABC);
        assert_eq!(Sha256Digest::of(b"abc").to_hex(), ABC);
        assert_eq!(
            Sha256Digest::of(b"abc").to_string(),
            format!("sha256:{ABC}")
        );
    }

    #[test]
    fn threaded_hashing_matches_inline_hashing_across_chunks() {
        // Odd-sized writes straddling the 1 MiB chunks, and a flush mid-way.
        let data: Vec<u8> = (0..(3 * HASH_CHUNK + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut threaded = ThreadedHashingWriter::new(Vec::new());
        for (k, piece) in data.chunks(65_521).enumerate() {
            threaded.write_all(piece).unwrap();
            if k == 20 {
                threaded.flush().unwrap();
            }
        }
        let (written, digest, count) = threaded.finish().unwrap();
        assert!(written == data);
        assert_eq!(digest, Sha256Digest::of(&data));
        assert_eq!(count, data.len() as u64);

        let (written, digest, count) = ThreadedHashingWriter::new(Vec::new()).finish().unwrap();
        assert!(written.is_empty() && count == 0);
        assert_eq!(digest, Sha256Digest::of(b""));
    }

    #[test]
    fn parse_round_trip_and_errors() {
        let d = Sha256Digest::from_hex(ABC).unwrap();
        assert_eq!(d.to_hex(), ABC);
        let upper = Sha256Digest::from_hex(&ABC.to_uppercase()).unwrap();
        assert_eq!(upper, d);
        assert!(matches!(
            Sha256Digest::from_hex("abc"),
            Err(DigestParseError::Length(_))
        ));
        let bad = format!("{}zz", &ABC[..62]);
        assert!(matches!(
            Sha256Digest::from_hex(&bad),
            Err(DigestParseError::NotHex(_))
        ));
    }

    #[test]
    fn oci_form_round_trips_and_rejects_other_forms() {
        let d = Sha256Digest::from_hex(ABC).unwrap();
        assert_eq!(Sha256Digest::parse(&d.to_string()), Ok(d));
        let err = Sha256Digest::parse(ABC).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("blob {ABC}: only sha256 digests are supported")
        );
        let upper = format!("sha256:{}", ABC.to_uppercase());
        assert_eq!(
            Sha256Digest::parse(&upper).unwrap_err().reason,
            "not 64 lowercase hex digits"
        );
        assert!(Sha256Digest::parse("sha512:abc").is_err());
    }

    #[test]
    fn streaming_reader_and_writer_agree() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = HashingReader::new(&data[..]);
        let mut sink = Vec::new();
        io::copy(&mut r, &mut sink).unwrap();
        let (rd, rn) = r.finish();
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, wd, wn) = w.finish();
        assert_eq!(out, data);
        assert_eq!(rd, Sha256Digest::of(&data));
        assert_eq!(wd, rd);
        assert_eq!((rn, wn), (100_000, 100_000));
    }
}
