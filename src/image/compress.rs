//! Layer compression: a deterministic parallel gzip (pigz's scheme), zstd
//! (multithreaded; libzstd's output does not depend on the worker count) or
//! none.
//!
//! The gzip stream is cut into fixed-size chunks; each chunk is
//! raw-deflated on its own by libdeflate and made joinable (`deflate.rs`),
//! the final chunk left as it is, so the pieces concatenate into one deflate
//! stream and one gzip member. A chunk's bytes depend only on the chunk and
//! whether it is last, never on scheduling, so the output is identical for
//! any thread count.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::Arc;

use super::deflate::deflate_chunk;
use super::{HashingWriter, ImageError, Sha256Digest};

/// Layer blob compression (`--compression`, a recipe's `[image] compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerCompression {
    /// Parallel deterministic gzip; what every consumer accepts.
    #[default]
    Gzip,
    /// zstd at [`ZSTD_LEVEL`] (`+zstd` media type; read by containerd ≥ 1.5,
    /// podman, skopeo, umoci and Docker ≥ 23).
    Zstd,
    /// The plain tar.
    None,
}

/// The zstd level for layers: the fastest level within 5 % of `zstd -3` on
/// the trixie minbase and slim trees (level 2 is 6–9 % larger), at 2.4–3.1×
/// less CPU than the default gzip (BENCHMARKS.md, "Slim images and layer
/// compression").
pub const ZSTD_LEVEL: i32 = 3;

/// Not one of `gzip`, `zstd`, `none`.
#[derive(Debug, thiserror::Error)]
#[error("unknown layer compression {0:?} (expected gzip, zstd or none)")]
pub struct UnknownCompression(pub String);

impl std::str::FromStr for LayerCompression {
    type Err = UnknownCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gzip" => Ok(LayerCompression::Gzip),
            "zstd" => Ok(LayerCompression::Zstd),
            "none" => Ok(LayerCompression::None),
            _ => Err(UnknownCompression(s.to_owned())),
        }
    }
}

impl std::fmt::Display for LayerCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl LayerCompression {
    /// The name used on the command line and in recipes.
    pub fn name(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
            LayerCompression::None => "none",
        }
    }

    /// OCI layer media type for this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => super::oci::MEDIA_TYPE_LAYER_GZIP,
            LayerCompression::Zstd => super::oci::MEDIA_TYPE_LAYER_ZSTD,
            LayerCompression::None => super::oci::MEDIA_TYPE_LAYER_TAR,
        }
    }

    /// Pick by file name: `.gz`/`.tgz` → gzip, `.zst` → zstd, otherwise none.
    pub fn from_file_name(name: &str) -> Self {
        if name.ends_with(".gz") || name.ends_with(".tgz") {
            LayerCompression::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".zstd") {
            LayerCompression::Zstd
        } else {
            LayerCompression::None
        }
    }
}

/// Parallel gzip settings. `threads` changes speed only, never the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipOptions {
    /// libdeflate level 1..=12.
    pub level: u32,
    pub chunk_size: usize,
    /// 0 = all available cores.
    pub threads: usize,
}

/// Default level: libdeflate's own default. On the trixie trees it is
/// 1.1–1.6 % smaller than `gzip -6` at about a quarter of its CPU time
/// (BENCHMARKS.md, "Layer compression"; `examples/gzip_bench.rs`).
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Chunks are compressed independently (libdeflate has no preset
/// dictionary), so each one starts without the 32 KiB of history before
/// it; at 1 MiB that costs ~0.1 % in size, and a layer of a few MiB still
/// spreads over the cores.
pub const DEFAULT_CHUNK_SIZE: usize = 1024 * 1024;
const MIN_CHUNK_SIZE: usize = 32 * 1024;

impl Default for GzipOptions {
    fn default() -> Self {
        GzipOptions {
            level: DEFAULT_GZIP_LEVEL,
            chunk_size: DEFAULT_CHUNK_SIZE,
            threads: 0,
        }
    }
}

struct ChunkResult {
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// A `Write` that gzips in parallel into `W`, with bounded memory: at most
/// `2 × threads + 1` chunks are in flight.
pub struct ParallelGzipWriter<W: Write> {
    out: W,
    opts: GzipOptions,
    pool: Arc<rayon::ThreadPool>,
    max_in_flight: usize,
    pending: Vec<u8>,
    in_flight: VecDeque<mpsc::Receiver<Result<ChunkResult, String>>>,
    crc: crc32fast::Hasher,
    total_in: u64,
    header_written: bool,
}

impl<W: Write> ParallelGzipWriter<W> {
    pub fn new(out: W, opts: GzipOptions) -> Result<Self, ImageError> {
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("gzip-{i}"))
            .build()
            .map_err(|e| ImageError::Compress(format!("starting compression threads: {e}")))?;
        let level = opts.level.clamp(1, 12);
        let chunk_size = opts.chunk_size.max(MIN_CHUNK_SIZE);
        Ok(ParallelGzipWriter {
            out,
            opts: GzipOptions {
                level,
                chunk_size,
                threads,
            },
            pool: Arc::new(pool),
            max_in_flight: 2 * threads + 1,
            pending: Vec::with_capacity(chunk_size),
            in_flight: VecDeque::new(),
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            header_written: false,
        })
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // MTIME 0, no FNAME, XFL 0, OS 255 (unknown): nothing about the
            // build host or time leaks into the bytes.
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight.len() >= self.max_in_flight {
            self.drain_one()?;
        }
        let data = std::mem::replace(&mut self.pending, Vec::with_capacity(self.opts.chunk_size));
        let level = self.opts.level;
        let (tx, rx) = mpsc::sync_channel(1);
        self.pool.spawn(move || {
            let result = deflate_chunk(&data, level, last).map(|deflated| {
                let mut crc = crc32fast::Hasher::new();
                crc.update(&data);
                ChunkResult { deflated, crc }
            });
            // The receiver is gone only if the writer was dropped mid-stream.
            let _ = tx.send(result);
        });
        self.in_flight.push_back(rx);
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        let Some(rx) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let result = rx
            .recv()
            .map_err(|_| io::Error::other("compression worker vanished"))?
            .map_err(io::Error::other)?;
        self.crc.combine(&result.crc);
        self.write_header()?;
        self.out.write_all(&result.deflated)
    }

    /// Flush the last chunk, write the trailer, return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.in_flight.is_empty() {
            self.drain_one()?;
        }
        self.write_header()?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.total_in as u32).to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.opts.chunk_size - self.pending.len();
        let n = room.min(buf.len());
        self.pending.extend_from_slice(&buf[..n]);
        self.total_in += n as u64;
        if self.pending.len() == self.opts.chunk_size {
            self.submit(false)?;
            // Opportunistically emit finished chunks so output keeps flowing.
            while self.in_flight.len() > self.opts.threads {
                self.drain_one()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A flush cannot force a chunk boundary (that would change the bytes).
        self.out.flush()
    }
}

/// Compressed-blob facts known as soon as the stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Sha256Digest,
    pub size: u64,
}

enum Encoder<W: Write> {
    Gzip(ParallelGzipWriter<HashingWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, HashingWriter<W>>),
    None(HashingWriter<W>),
}

/// Compresses into `W` while hashing and counting the compressed bytes, so the
/// blob's digest and size come out of [`Compressor::finish`] without a re-read.
pub struct Compressor<W: Write> {
    enc: Encoder<W>,
}

impl<W: Write> Compressor<W> {
    pub fn new(out: W, compression: LayerCompression) -> Result<Self, ImageError> {
        Self::with_gzip_options(out, compression, GzipOptions::default())
    }

    pub fn with_gzip_options(
        out: W,
        compression: LayerCompression,
        gzip: GzipOptions,
    ) -> Result<Self, ImageError> {
        let hashing = HashingWriter::new(out);
        let enc = match compression {
            LayerCompression::Gzip => Encoder::Gzip(ParallelGzipWriter::new(hashing, gzip)?),
            LayerCompression::Zstd => Encoder::Zstd(zstd_encoder(hashing, gzip.threads)?),
            LayerCompression::None => Encoder::None(hashing),
        };
        Ok(Compressor { enc })
    }

    pub fn finish(self) -> Result<(W, BlobInfo), ImageError> {
        let hashing = match self.enc {
            Encoder::Gzip(g) => g
                .finish()
                .map_err(|e| ImageError::Compress(format!("gzip: {e}")))?,
            Encoder::Zstd(z) => z
                .finish()
                .map_err(|e| ImageError::Compress(format!("zstd: {e}")))?,
            Encoder::None(h) => h,
        };
        let (out, digest, size) = hashing.finish();
        Ok((out, BlobInfo { digest, size }))
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.enc {
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
            Encoder::None(h) => h.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.enc {
            Encoder::Gzip(g) => g.flush(),
            // Flushing the encoder would end a zstd block early and so change
            // the bytes: only the sink is flushed, as for gzip.
            Encoder::Zstd(z) => z.get_mut().flush(),
            Encoder::None(h) => h.flush(),
        }
    }
}

/// A zstd encoder at [`ZSTD_LEVEL`] with one worker per core (`threads`
/// 0) or `threads` workers. libzstd cuts the input into jobs whose size
/// depends only on the parameters, never on the worker count, so the bytes
/// are the same for any `threads` (`zstd_bytes_do_not_depend_on_workers`).
fn zstd_encoder<W: Write>(
    out: W,
    threads: usize,
) -> Result<zstd::stream::write::Encoder<'static, W>, ImageError> {
    let err = |e: io::Error| ImageError::Compress(format!("zstd init: {e}"));
    let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(err)?;
    let workers = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    enc.multithread(workers as u32).map_err(err)?;
    Ok(enc)
}

/// Decompress `input` according to its magic bytes (gzip, zstd, or plain).
pub fn auto_decoder<'a, R: io::BufRead + 'a>(mut input: R) -> io::Result<Box<dyn io::Read + 'a>> {
    let head = input.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(input)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(input)?))
    } else {
        Ok(Box::new(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text-ish with a slow-changing pattern.
        let mut v = Vec::with_capacity(len);
        let mut x: u32 = 12345;
        while v.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let word = ["usr/", "lib/", "share/", "libc.so.6 ", "\0\0\0\0", "doc "]
                [(x >> 16) as usize % 6];
            v.extend_from_slice(word.as_bytes());
            v.push((x >> 24) as u8);
        }
        v.truncate(len);
        v
    }

    fn gz(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut w = ParallelGzipWriter::new(
            Vec::new(),
            GzipOptions {
                level: DEFAULT_GZIP_LEVEL,
                chunk_size: chunk,
                threads,
            },
        )
        .unwrap();
        // Uneven write sizes must not matter.
        for piece in data.chunks(7777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn identical_bytes_for_any_thread_count_and_decodes() {
        for len in [
            0usize,
            1,
            32 * 1024,
            128 * 1024,
            128 * 1024 * 3 + 17,
            1_500_000,
        ] {
            let data = sample(len);
            // Small chunks too: many joins in one stream.
            let small = gz(&data, 1, 40_000);
            assert!(small == gz(&data, 3, 40_000), "len {len}: small chunks");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(small.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}, small chunks");
            let one = gz(&data, 1, DEFAULT_CHUNK_SIZE);
            let four = gz(&data, 4, DEFAULT_CHUNK_SIZE);
            assert!(one == four, "len {len}: output depends on the thread count");
            assert_eq!(&one[..4], &[0x1f, 0x8b, 8, 0]);
            assert_eq!(&one[4..8], &[0, 0, 0, 0], "mtime must be 0");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(one.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }

    fn zst(data: &[u8], threads: usize) -> Vec<u8> {
        let mut c = Compressor::with_gzip_options(
            Vec::new(),
            LayerCompression::Zstd,
            GzipOptions {
                threads,
                ..GzipOptions::default()
            },
        )
        .unwrap();
        for piece in data.chunks(70_001) {
            c.write_all(piece).unwrap();
            // A flush (BufWriter does them) must not end a block early.
            c.flush().unwrap();
        }
        c.finish().unwrap().0
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_workers() {
        // Several jobs (8 MiB each at level 3).
        let data = sample(20 << 20);
        let one = zst(&data, 1);
        for threads in [2, 3, 8] {
            assert!(
                one == zst(&data, threads),
                "{threads} workers changed the bytes"
            );
        }
        assert_eq!(zstd::decode_all(one.as_slice()).unwrap(), data);
        assert!(one.len() < data.len() / 2);
    }

    #[test]
    fn compression_names_round_trip() {
        for c in [
            LayerCompression::Gzip,
            LayerCompression::Zstd,
            LayerCompression::None,
        ] {
            assert_eq!(c.name().parse::<LayerCompression>().unwrap(), c);
        }
        let err = "lz4".parse::<LayerCompression>().unwrap_err();
        assert!(err.to_string().contains("lz4"), "{err}");
    }

    #[test]
    fn system_gzip_accepts_the_stream() {
        if std::process::Command::new("gzip")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIP: system gzip not found");
            return;
        }
        let data = sample(3_000_000);
        let compressed = gz(&data, 2, 100_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        std::fs::write(&path, &compressed).unwrap();
        let t = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&path)
            .status()
            .unwrap();
        assert!(t.success());
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn compressor_hash_matches_bytes() {
        for c in [
            LayerCompression::Gzip,
            LayerCompression::Zstd,
            LayerCompression::None,
        ] {
            let data = sample(300_000);
            let mut comp = Compressor::new(Vec::new(), c).unwrap();
            comp.write_all(&data).unwrap();
            let (bytes, info) = comp.finish().unwrap();
            assert_eq!(info.size, bytes.len() as u64);
            assert_eq!(info.digest, Sha256Digest::of(&bytes));
            let mut back = Vec::new();
            auto_decoder(io::BufReader::new(bytes.as_slice()))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{c:?}");
        }
    }
}
