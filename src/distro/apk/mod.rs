//! Alpine (apk-tools compatible) back end: versions, signed APKINDEX, v2 .apk
//! packages, the solver and the installed database writer.
//!
//! Everything here is pure (bytes in, values out) except
//! `TrustedKeys::load_dir`, which reads a key directory.
//!
//! `tar` lists the entries of the in-memory control, index and data tars
//! through the shared strict reader in src/archive.

pub mod backend;
pub mod bootstrap;
pub mod gzsplit;
pub mod index;
pub mod installed;
pub(crate) mod lock;
pub mod package;
pub mod sign;
pub mod solver;
pub mod tar;
pub mod version;

mod error;
pub use error::ApkError;
pub use index::{parse_index, parse_index_text, ApkIndex, ApkPackage, Checksum, Dependency};
pub use package::{open_package, PkgInfo, VerifiedApk};
pub use sign::{Trust, TrustedKeys};
pub use solver::dependency_order;
pub use solver::{solve, solve_with, Change, Solution, SolveError, SolveOptions};
