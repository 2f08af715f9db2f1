//! Layer packing benchmark: the build's own packing step (walk the tree,
//! write the tar, hash it, compress, hash the blob, write it) for each layer
//! compression, on one directory, several runs each, interleaved so load
//! changes hit every compression alike.
//!
//!     cargo run --release --example pack_bench -- DIR [RUNS] [gzip,zstd,none]
//!
//! Prints, per compression, the median wall and CPU seconds of the runs, the
//! blob size, and the wall-time ratio to gzip.

use std::path::PathBuf;
use std::time::Instant;

use rootstrap::image::oci::{History, ImageConfig};
use rootstrap::image::{ImageBuilder, LayerCompression, LayerOptions};

/// CPU seconds (user + system) used so far by this process.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Runs {
    compression: LayerCompression,
    wall: Vec<f64>,
    cpu: Vec<f64>,
    size: u64,
    digest: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .expect("usage: pack_bench DIR [RUNS] [COMPRESSIONS]"),
    );
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let kinds: Vec<LayerCompression> = args
        .get(3)
        .map_or("gzip,zstd,none", String::as_str)
        .split(',')
        .map(|s| s.parse().expect("gzip, zstd or none"))
        .collect();
    let scratch = tempfile::tempdir().expect("scratch directory");
    let opts = LayerOptions {
        source_date_epoch: Some(0),
        ..LayerOptions::default()
    };
    let mut results: Vec<Runs> = kinds
        .iter()
        .map(|&compression| Runs {
            compression,
            wall: Vec::new(),
            cpu: Vec::new(),
            size: 0,
            digest: String::new(),
        })
        .collect();
    for _ in 0..runs {
        for r in &mut results {
            let mut builder = ImageBuilder::new_in(
                scratch.path(),
                ImageConfig::new("amd64", "linux"),
                r.compression,
            )
            .expect("image builder");
            let cpu0 = cpu_seconds();
            let t = Instant::now();
            let layer = builder
                .add_layer_from_dir(&dir, &opts, History::default())
                .expect("packing");
            r.wall.push(t.elapsed().as_secs_f64());
            r.cpu.push(cpu_seconds() - cpu0);
            let digest = layer.descriptor.digest.clone();
            assert!(
                r.digest.is_empty() || r.digest == digest,
                "{}: the digest changed between runs",
                r.compression
            );
            r.digest = digest;
            r.size = layer.descriptor.size;
        }
    }
    let gzip_wall = results
        .iter()
        .find(|r| r.compression == LayerCompression::Gzip)
        .map(|r| median(r.wall.clone()));
    println!("packing {} ({runs} runs each, medians)", dir.display());
    for r in &results {
        let wall = median(r.wall.clone());
        let ratio = gzip_wall.map_or(String::new(), |g| {
            format!("  {:.2}x faster than gzip", g / wall)
        });
        println!(
            "{:<5} wall {:>6.3}s  cpu {:>6.3}s  {:>11} B{ratio}",
            r.compression.name(),
            wall,
            median(r.cpu.clone()),
            r.size,
        );
    }
}
