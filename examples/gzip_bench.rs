//! Layer compression benchmark: rootstrap's parallel gzip (and zstd) against
//! the system `gzip -6` (and `pigz -6` when installed), on the same bytes.
//!
//!     cargo run --release --example gzip_bench -- [DIR] [CAP_MB]
//!
//! Input: the first CAP_MB (default 200) of a layer tar of DIR (default
//! /usr), written by rootstrap's own layer writer, so the data is what a real
//! rootfs layer looks like.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use rootstrap::image::{write_layer_from_dir, GzipOptions, LayerOptions, ParallelGzipWriter};

/// Keeps the first `cap` bytes and discards the rest, so walking a big tree
/// still yields a bounded sample.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
}

impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let room = self.cap - self.buf.len();
        self.buf.extend_from_slice(&b[..room.min(b.len())]);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Counter(u64);
impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn ours(data: &[u8], level: u32, threads: usize) -> (f64, u64) {
    let start = Instant::now();
    let mut w = ParallelGzipWriter::new(
        Counter(0),
        GzipOptions {
            level,
            threads,
            ..GzipOptions::default()
        },
    )
    .expect("gzip writer");
    w.write_all(data).expect("compress");
    let out = w.finish().expect("finish");
    (start.elapsed().as_secs_f64(), out.0)
}

fn external(cmd: &str, args: &[&str], path: &PathBuf) -> Option<(f64, u64)> {
    let start = Instant::now();
    let mut child = Command::new(cmd)
        .args(args)
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let mut counter = Counter(0);
    io::copy(&mut stdout, &mut counter).ok()?;
    child
        .wait()
        .ok()?
        .success()
        .then(|| (start.elapsed().as_secs_f64(), counter.0))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("/usr", String::as_str));
    let cap_mb: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut sample = Capped {
        buf: Vec::with_capacity(cap_mb << 20),
        cap: cap_mb << 20,
    };
    let t = Instant::now();
    let stats = write_layer_from_dir(&dir, &LayerOptions::default(), &mut sample).expect("layer");
    let data = sample.buf;
    println!(
        "input: first {:.1} MB of a {:.1} MB layer tar of {} ({} entries, walk+tar+sha256 {:.2}s)",
        data.len() as f64 / 1e6,
        stats.uncompressed_size as f64 / 1e6,
        dir.display(),
        stats.entries,
        t.elapsed().as_secs_f64()
    );
    let tmp = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(tmp.path(), &data).expect("write sample");
    let path = tmp.path().to_path_buf();
    let mb = data.len() as f64 / 1e6;
    let report = |name: &str, (secs, size): (f64, u64), base: Option<(f64, u64)>| {
        let rel = base.map_or(String::new(), |(bs, bsize)| {
            format!(
                "  speed {:.2}x  size {:+.2}%",
                bs / secs,
                (size as f64 / bsize as f64 - 1.0) * 100.0
            )
        });
        println!(
            "{name:<28} {secs:>7.2}s {:>8.1} MB/s {:>12} bytes{rel}",
            mb / secs,
            size
        );
    };
    let gzip6 = external("gzip", &["-6", "-c"], &path);
    match gzip6 {
        Some(g) => report("gzip -6 (system, 1 core)", g, None),
        None => println!("gzip not found"),
    }
    if let Some(p) = external("pigz", &["-6", "-c"], &path) {
        report("pigz -6", p, gzip6);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for level in [6, 5, 4, 3, 2, 1] {
        report(
            &format!("rootstrap gzip L{level} 1 thread"),
            ours(&data, level, 1),
            gzip6,
        );
        report(
            &format!("rootstrap gzip L{level} {cores} threads"),
            ours(&data, level, cores),
            gzip6,
        );
    }
    let t = Instant::now();
    let z = zstd::stream::encode_all(data.as_slice(), 3).expect("zstd");
    report(
        "zstd crate -3 (1 thread)",
        (t.elapsed().as_secs_f64(), z.len() as u64),
        gzip6,
    );
}
