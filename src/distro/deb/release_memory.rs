//! The last Release accepted from each source, kept in the cache, so a
//! later build refuses an older one (a replayed or frozen mirror: Debian's
//! main archive sets no Valid-Until, so only this stops a mirror from
//! holding builds on old packages forever) or one whose Origin, Label,
//! Suite or Codename changed (HOSTILE 24, 29). apt keeps the same memory in
//! its lists and asks `--allow-releaseinfo-change` for the second case.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::release::{Release, ReleaseIdentity};

/// What is remembered of one source's Release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub url: String,
    pub date: i64,
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
}

impl Remembered {
    pub fn identity(&self) -> ReleaseIdentity {
        ReleaseIdentity {
            origin: self.origin.clone(),
            label: self.label.clone(),
            suite: self.suite.clone(),
            codename: self.codename.clone(),
        }
    }
}

/// The store: one small JSON file per InRelease URL under the cache.
#[derive(Debug, Clone)]
pub struct ReleaseMemory {
    dir: PathBuf,
    /// `--accept-release-change`: an older or re-identified Release is
    /// accepted (with a warning) and becomes the remembered one.
    pub accept_change: bool,
}

impl ReleaseMemory {
    pub fn new(cache_dir: &Path, accept_change: bool) -> ReleaseMemory {
        ReleaseMemory {
            dir: cache_dir.join("releases"),
            accept_change,
        }
    }

    fn file(&self, url: &str) -> PathBuf {
        let key = without_credentials(url);
        self.dir.join(format!(
            "{}.json",
            hex::encode(Sha256::digest(key.as_bytes()))
        ))
    }

    /// The last accepted Release of `url`; an unreadable or foreign record
    /// counts as none (the cache is not trusted for more than this).
    pub fn previous(&self, url: &str) -> Option<Remembered> {
        let bytes = std::fs::read(self.file(url)).ok()?;
        let record: Remembered = serde_json::from_slice(&bytes).ok()?;
        (record.url == without_credentials(url)).then_some(record)
    }

    /// Records `release` for `url` once everything it lists was fetched and
    /// verified. Never moves the date back unless a change was accepted.
    pub fn remember(&self, url: &str, release: &Release) -> std::io::Result<()> {
        let Some(date) = release.date else {
            return Ok(());
        };
        std::fs::create_dir_all(&self.dir)?;
        // Builds share the cache: the read and the write below are one step,
        // or a build could put back an older date another just moved past.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        if let Some(previous) = self.previous(url) {
            let same = previous.date == date && previous.identity() == release.identity();
            if same || (previous.date > date && !self.accept_change) {
                return Ok(());
            }
        }
        let record = Remembered {
            url: without_credentials(url),
            date,
            origin: release.origin.clone(),
            label: release.label.clone(),
            suite: release.suite.clone(),
            codename: release.codename.clone(),
        };
        let json = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
        // Written aside and renamed: two builds sharing the cache never
        // read a torn record.
        let mut temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)?;
        std::io::Write::write_all(&mut temp, &json)?;
        temp.persist(self.file(url)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Credentials in the URL are not part of the source's identity, and are
/// never written to the cache.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => crate::fetch::redact(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(date: i64, suite: &str) -> Release {
        let text = format!(
            "Origin: Debian\nLabel: Debian\nSuite: {suite}\nCodename: trixie\nDate: {}\n",
            chrono::DateTime::from_timestamp(date, 0)
                .unwrap()
                .format("%a, %d %b %Y %H:%M:%S UTC")
        );
        Release::parse(&text).unwrap()
    }

    #[test]
    fn remembers_only_forward_unless_a_change_was_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://user:secret@m.example/debian/dists/trixie/InRelease";
        let memory = ReleaseMemory::new(dir.path(), false);
        assert_eq!(memory.previous(url), None);
        memory.remember(url, &release(2_000, "stable")).unwrap();
        memory.remember(url, &release(1_000, "stable")).unwrap();
        let kept = memory.previous(url).unwrap();
        assert_eq!((kept.date, kept.suite.as_deref()), (2_000, Some("stable")));
        assert!(!kept.url.contains("secret"));
        // The same source without credentials is the same record.
        assert!(memory
            .previous("http://m.example/debian/dists/trixie/InRelease")
            .is_some());
        let accepting = ReleaseMemory::new(dir.path(), true);
        accepting
            .remember(url, &release(1_500, "oldstable"))
            .unwrap();
        let kept = memory.previous(url).unwrap();
        assert_eq!(
            (kept.date, kept.suite.as_deref()),
            (1_500, Some("oldstable"))
        );
    }

    #[test]
    fn a_damaged_record_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let memory = ReleaseMemory::new(dir.path(), false);
        let url = "http://m.example/dists/x/InRelease";
        memory.remember(url, &release(5, "x")).unwrap();
        std::fs::write(memory.file(url), b"{not json").unwrap();
        assert_eq!(memory.previous(url), None);
    }
}
