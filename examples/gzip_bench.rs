//! Layer compression benchmark: rootstrap's parallel gzip and zstd against
//! the system `gzip -6` and `zstd -3` (and `pigz -6` when installed), on the
//! same bytes. LEVELS=6,9 (libdeflate levels; default 6, the layer default)
//! and ZSTD_LEVELS=1,3 pick the levels tried.
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
        if room == 0 {
            // Stop the walk: the sample is complete.
            return Err(io::Error::other("sample cap reached"));
        }
        self.buf.extend_from_slice(&b[..room.min(b.len())]);
        Ok(room.min(b.len()))
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

/// CPU seconds (user + system) used so far by this process or by its waited-for children.
fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Run {
    wall: f64,
    cpu: f64,
    size: u64,
}

fn ours(data: &[u8], level: u32, threads: usize) -> Run {
    let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
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
    Run {
        wall: start.elapsed().as_secs_f64(),
        cpu: cpu_seconds(libc::RUSAGE_SELF) - cpu0,
        size: out.0,
    }
}

fn external(cmd: &str, args: &[&str], path: &PathBuf) -> Option<Run> {
    let cpu0 = cpu_seconds(libc::RUSAGE_CHILDREN);
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
    let ok = child.wait().ok()?.success();
    ok.then(|| Run {
        wall: start.elapsed().as_secs_f64(),
        cpu: cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0,
        size: counter.0,
    })
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
    let walked = write_layer_from_dir(&dir, &LayerOptions::default(), &mut sample);
    let data = sample.buf;
    if let Err(e) = walked {
        assert_eq!(data.len(), cap_mb << 20, "layer walk failed early: {e}");
    }
    println!(
        "input: first {:.1} MB of a layer tar of {} (walk+tar+sha256 {:.2}s)",
        data.len() as f64 / 1e6,
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    let tmp = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(tmp.path(), &data).expect("write sample");
    let path = tmp.path().to_path_buf();
    let mb = data.len() as f64 / 1e6;
    // Wall time is what a user waits for; CPU time is what survives a busy
    // shared machine. Both ratios are against `gzip -6` on the same bytes.
    let report = |name: &str, r: &Run, base: Option<&Run>| {
        let rel = base.map_or(String::new(), |b| {
            format!(
                "  wall {:.2}x  cpu {:.2}x  size {:+.2}%",
                b.wall / r.wall,
                b.cpu / r.cpu,
                (r.size as f64 / b.size as f64 - 1.0) * 100.0
            )
        });
        println!(
            "{name:<30} wall {:>6.2}s cpu {:>6.2}s {:>7.1} MB/s(wall) {:>11} B{rel}",
            r.wall,
            r.cpu,
            mb / r.wall,
            r.size
        );
    };
    let levels: Vec<u32> = std::env::var("LEVELS")
        .ok()
        .map(|s| s.split(',').filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_else(|| vec![6]);
    let gzip6 = external("gzip", &["-6", "-c"], &path);
    match &gzip6 {
        Some(g) => report("gzip -6 (system, 1 core)", g, None),
        None => println!("gzip not found"),
    }
    if let Some(p) = external("pigz", &["-6", "-c"], &path) {
        report("pigz -6", &p, gzip6.as_ref());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for level in levels {
        report(
            &format!("rootstrap gzip L{level} 1 thread"),
            &ours(&data, level, 1),
            gzip6.as_ref(),
        );
        report(
            &format!("rootstrap gzip L{level} {cores} threads"),
            &ours(&data, level, cores),
            gzip6.as_ref(),
        );
    }
    if let Some(z) = external("zstd", &["-3", "-c", "-q"], &path) {
        report("zstd -3 (system, 1 core)", &z, gzip6.as_ref());
    }
    // The layer zstd level: ZSTD_LEVELS=1,2,3 (default 3), each with one
    // worker and with one per core (libzstd's multithreading: same bytes).
    let zstd_levels: Vec<i32> = std::env::var("ZSTD_LEVELS")
        .ok()
        .map(|s| s.split(',').filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_else(|| vec![3]);
    for level in zstd_levels {
        for workers in [1, cores] {
            let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
            let t = Instant::now();
            let mut enc = zstd::stream::write::Encoder::new(Counter(0), level).expect("zstd");
            enc.multithread(workers as u32).expect("zstd workers");
            enc.write_all(&data).expect("zstd");
            let out = enc.finish().expect("zstd");
            let zr = Run {
                wall: t.elapsed().as_secs_f64(),
                cpu: cpu_seconds(libc::RUSAGE_SELF) - cpu0,
                size: out.0,
            };
            report(
                &format!("rootstrap zstd L{level} {workers} worker(s)"),
                &zr,
                gzip6.as_ref(),
            );
        }
    }
}
