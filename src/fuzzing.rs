//! The bodies of the cargo-fuzz targets in `fuzz/`: each takes any bytes and
//! drives one parser or reader of untrusted input the way a build does,
//! and must neither panic nor run away, whatever it is given. They live in
//! the library so `fuzz/` (libFuzzer, for hours) and the test suite
//! (`tests/integration/fuzz_replay.rs`: seeds, conformance data and bounded
//! random mutations on every `cargo test`) run the same code.

pub mod apk_package;
pub mod apk_tar;
pub mod apkindex;
pub mod ar_deb;
pub mod clearsign;
pub mod deb_control;
pub mod decompress;
pub mod dockerfile;
pub mod dockerfile_words;
pub mod dockerignore;
pub mod gzip_members;
pub mod image_archive;
pub mod lockfile;
pub mod oci_json;
pub mod recipe;
pub mod signatures;
pub mod tar_reader;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("apk_package", apk_package::run),
    ("apk_tar", apk_tar::run),
    ("apkindex", apkindex::run),
    ("ar_deb", ar_deb::run),
    ("clearsign", clearsign::run),
    ("deb_control", deb_control::run),
    ("decompress", decompress::run),
    ("dockerfile", dockerfile::run),
    ("dockerfile_words", dockerfile_words::run),
    ("dockerignore", dockerignore::run),
    ("gzip_members", gzip_members::run),
    ("image_archive", image_archive::run),
    ("lockfile", lockfile::run),
    ("oci_json", oci_json::run),
    ("recipe", recipe::run),
    ("signatures", signatures::run),
    ("tar_reader", tar_reader::run),
];
