//! Fixture sources as the end-to-end tests use them: a directory holding a
//! fresh archive key and the signed Debian repositories it signs, the
//! Alpine minirootfs repository, and the `[source]` of recipes for them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::apkrepo::{self, FixtureRepo};
use super::debrepo::Repo;
use super::signing::ArchiveKey;

/// A temporary directory with a fresh archive key, whose public half is
/// `archive.asc` in it (what [`debian_source`] names), for recipes and the
/// signed repositories written into it.
pub struct DebFixture {
    pub dir: tempfile::TempDir,
    pub key: ArchiveKey,
}

impl DebFixture {
    pub fn new() -> DebFixture {
        let dir = tempfile::tempdir().unwrap();
        let key = ArchiveKey::generate();
        std::fs::write(dir.path().join("archive.asc"), key.public_armored()).unwrap();
        DebFixture { dir, key }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `repo` under `rel`, its InRelease signed with the key;
    /// returns the repository's directory.
    pub fn write_repo(&self, rel: &str, repo: &Repo) -> PathBuf {
        let repo_dir = self.path(rel);
        repo.write(&repo_dir, &|text| self.key.clearsign(text));
        repo_dir
    }
}

/// `[source]` of a recipe for a [`DebFixture`] repository (suite
/// `fixture`, component `main`, variant `essential`) for `arch`; further
/// `[source]` lines may follow.
pub fn debian_source(arch: &str) -> String {
    format!(
        "[source]\ndistro = \"debian\"\nsuite = \"fixture\"\ncomponents = [\"main\"]\n\
         variant = \"essential\"\narch = \"{arch}\"\nkeys = [\"archive.asc\"]\n"
    )
}

/// The release of [`alpine_repo`]; its one repository is `main`.
pub const ALPINE_RELEASE: &str = "v3.20";

/// The minirootfs fixture repository (`v3.20/main` for `arch`) with the
/// mirror root `mirror`.
pub fn alpine_repo(mirror: &Path, arch: &str, busybox: &[u8]) -> FixtureRepo {
    apkrepo::write_minirootfs_repo(mirror, ALPINE_RELEASE, "main", arch, busybox).unwrap()
}

/// `[source]` of a recipe for [`alpine_repo`] for `arch`; further
/// `[source]` lines may follow.
pub fn alpine_source(arch: &str) -> String {
    format!(
        "[source]\ndistro = \"alpine\"\nrelease = \"{ALPINE_RELEASE}\"\nrepositories = [\"main\"]\n\
         arch = \"{arch}\"\nkeys = [\"alpine\"]\n"
    )
}
