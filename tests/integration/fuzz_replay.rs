//! The fuzz targets (`rootstrap::fuzzing`, the same bodies `fuzz/` runs
//! under libFuzzer for hours) run on every `cargo test`, for a short bounded
//! time each: no sanitizer and no coverage feedback, but the same code on
//! the same kinds of input. Each target gets its committed seeds
//! (`fuzz/seeds/<target>`), the conformance data `scripts/fuzz.sh` seeds it
//! from, inputs made here with the fixture writers (tars, a `.deb`, gzip
//! and xz streams, an oci-archive), and then random mutations of all of them
//! (bit flips, interesting bytes, cuts, repeats, splices) until
//! `ROOTSTRAP_FUZZ_SECONDS` (default 1) have passed. `ROOTSTRAP_FUZZ_CORPUS=1`
//! adds the local libFuzzer corpus (`fuzz/corpus/<target>`, not committed).
//!
//! A panic fails the test, names the target and keeps the input in a file
//! (printed) to replay with `cargo fuzz run <target> <file>` in `fuzz/`. The
//! mutations are reproducible: the seed of the random source is printed,
//! and `ROOTSTRAP_FUZZ_SEED` sets it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::conformance;
use crate::common::debrepo::{gzip, xz, DebPackage, TarBuilder};

/// Longest input tried: what `scripts/fuzz.sh` gives the archive targets.
const MAX_INPUT: usize = 1 << 20;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The regular files under `dir` (recursively, sorted), up to `MAX_INPUT`
/// bytes each.
fn files_under(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            files_under(&p, out);
        } else if meta.is_file() && meta.len() as usize <= MAX_INPUT {
            if let Ok(bytes) = std::fs::read(&p) {
                out.push(bytes);
            }
        }
    }
}

/// A small tar of a directory tree (regular files and directories only).
fn tar_of(dir: &Path) -> Vec<u8> {
    fn walk(tar: &mut TarBuilder, base: &Path, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                tar.dir(&rel, 0o755);
                walk(tar, base, &p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                tar.file(&rel, 0o644, &bytes);
            }
        }
    }
    let mut tar = TarBuilder::default();
    walk(&mut tar, dir, dir);
    tar.finish()
}

fn small_tar() -> Vec<u8> {
    let mut tar = TarBuilder::default();
    tar.dir("etc", 0o755);
    tar.file("etc/hostname", 0o644, b"rootstrap\n");
    tar.link("etc/alias", "hostname", b'2');
    tar.link("etc/hard", "etc/hostname", b'1');
    tar.finish()
}

/// Every input a target starts from.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new(), vec![0; 512], b"\n".to_vec()];
    files_under(&repo_root().join("fuzz/seeds").join(target), &mut out);
    let conformance_dirs: &[&str] = match target {
        "dockerfile" => &["dockerfile-parser/parser"],
        "dockerfile_words" => &["dockerfile-parser/shell"],
        "apkindex" | "apk_package" | "apk_tar" | "gzip_members" | "decompress" => &["apkindex"],
        "deb_control" => &["deb-version"],
        "oci_json" => &["oci-apko-golden"],
        _ => &[],
    };
    for rel in conformance_dirs {
        if let Some(dir) = conformance::path(rel) {
            files_under(&dir, &mut out);
        }
    }
    let deb = || {
        DebPackage::new("fuzz-seed", "1.0-1")
            .depends("libc6 (>= 2.36)")
            .dir("/usr/share/doc/fuzz-seed")
            .file("/usr/share/doc/fuzz-seed/README", 0o644, b"seed\n")
            .symlink("/usr/share/doc/fuzz-seed/LINK", "README")
            .build()
    };
    match target {
        "recipe" => files_under(&repo_root().join("recipes"), &mut out),
        "tar_reader" | "apk_tar" => out.push(small_tar()),
        "ar_deb" => out.push(deb()),
        "decompress" => {
            out.push(gzip(&small_tar()));
            out.push(xz(&small_tar()));
        }
        "gzip_members" => out.push([gzip(b"one\n"), gzip(b"two\n")].concat()),
        "image_archive" => {
            if let Some(dir) = conformance::path("oci-apko-golden/base_image") {
                out.push(tar_of(&dir));
            }
        }
        _ => {}
    }
    if std::env::var_os("ROOTSTRAP_FUZZ_CORPUS").is_some() {
        files_under(&repo_root().join("fuzz/corpus").join(target), &mut out);
    }
    out
}

/// One random change of `input`, sometimes spliced with another seed.
fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = v.len();
        match rng.gen_range(0..7) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] = [0u8, 0xff, 0x7f, 0x80, b'\n', b'/', b'0', b' '][rng.gen_range(0..8)];
            }
            2 if len > 0 => v.truncate(rng.gen_range(0..len)),
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                v.drain(a..b);
            }
            4 if len > 0 && len < MAX_INPUT / 2 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 256));
                let piece = v[a..b].to_vec();
                let at = rng.gen_range(0..=len);
                v.splice(at..at, piece);
            }
            5 if !other.is_empty() => {
                let at = rng.gen_range(0..=len);
                let from = rng.gen_range(0..other.len());
                v.truncate(at);
                v.extend_from_slice(&other[from..other.len().min(from + 4096)]);
            }
            _ => {
                let at = rng.gen_range(0..=len);
                let bytes: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.gen()).collect();
                v.splice(at..at, bytes);
            }
        }
    }
    v.truncate(MAX_INPUT);
    v
}

/// Runs `target` on `input`; a panic keeps the input and fails the test.
fn run_one(name: &str, target: rootstrap::fuzzing::Target, input: &[u8], how: &str) {
    if std::panic::catch_unwind(|| target(input)).is_err() {
        let dir = std::env::temp_dir().join("rootstrap-fuzz-replay");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!(
            "{name}-{}",
            hex::encode(&rootstrap::verify::Sha256Digest::of(input).0[..8])
        ));
        std::fs::write(&file, input).unwrap();
        panic!(
            "fuzz target {name} panicked on {how} ({} bytes), kept in {}",
            input.len(),
            file.display()
        );
    }
}

fn replay(name: &str) {
    let target = rootstrap::fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
        .1;
    let seeds = seeds(name);
    for (i, seed) in seeds.iter().enumerate() {
        run_one(name, target, seed, &format!("seed {i}"));
    }
    let seconds: f64 = std::env::var("ROOTSTRAP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let rng_seed: u64 = std::env::var("ROOTSTRAP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(rng_seed);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let a = &seeds[rng.gen_range(0..seeds.len())];
        let b = &seeds[rng.gen_range(0..seeds.len())];
        let input = mutate(&mut rng, a, b);
        run_one(
            name,
            target,
            &input,
            &format!("mutation {runs} (ROOTSTRAP_FUZZ_SEED={rng_seed})"),
        );
        runs += 1;
    }
    println!(
        "fuzz target {name}: {} seeds, {runs} mutations in {seconds} s (ROOTSTRAP_FUZZ_SEED={rng_seed})",
        seeds.len()
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        /// Every target of the library has its test here.
        #[test]
        fn every_fuzz_target_is_replayed() {
            let here = [$(stringify!($name)),*];
            for (name, _) in rootstrap::fuzzing::TARGETS {
                assert!(here.contains(name), "fuzz target {name} has no replay test");
            }
        }
    };
}

replay_tests!(
    apk_package,
    apk_tar,
    apkindex,
    ar_deb,
    clearsign,
    deb_control,
    decompress,
    dockerfile,
    dockerfile_words,
    dockerignore,
    gzip_members,
    image_archive,
    lockfile,
    oci_json,
    recipe,
    signatures,
    tar_reader,
);
