//! Progress reporting. The library never draws anything itself: it calls a
//! [`Reporter`], and the CLI decides whether that means progress bars on a
//! terminal or plain log lines.

use std::sync::Arc;

/// A sink for progress events. Every method has a no-op default so a
/// reporter only implements what it shows.
pub trait Reporter: Send + Sync {
    /// A pipeline stage begins ("fetch index", "resolve", "install", ...).
    fn stage(&self, _name: &str) {}
    /// A free-form informational line.
    fn info(&self, _msg: &str) {}
    /// A warning the user should see even in quiet mode.
    fn warn(&self, _msg: &str) {}
    /// A download of `total` bytes (if known) starts; returns an id for updates.
    fn download_start(&self, _name: &str, _total: Option<u64>) -> u64 {
        0
    }
    /// `bytes` more bytes arrived for download `id`.
    fn download_progress(&self, _id: u64, _bytes: u64) {}
    /// Download `id` finished (successfully or not).
    fn download_done(&self, _id: u64) {}
    /// A line of output from a sandboxed command (maintainer script, RUN step).
    fn command_output(&self, _line: &str) {}
}

/// A reporter that drops everything: for tests and library callers that do
/// not care.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {}

/// Shared handle passed through the pipeline.
pub type SharedReporter = Arc<dyn Reporter>;

/// Puts `prefix` before every line of `inner`'s stages, messages and
/// command output: for one of several builds running at once (the
/// platforms of a multi-platform build).
pub fn prefixed(inner: &SharedReporter, prefix: &str) -> SharedReporter {
    Arc::new(Prefixed {
        inner: inner.clone(),
        prefix: prefix.to_owned(),
    })
}

struct Prefixed {
    inner: SharedReporter,
    prefix: String,
}

impl Reporter for Prefixed {
    fn stage(&self, name: &str) {
        self.inner.stage(&format!("{} {name}", self.prefix));
    }
    fn info(&self, msg: &str) {
        self.inner.info(&format!("{} {msg}", self.prefix));
    }
    fn warn(&self, msg: &str) {
        self.inner.warn(&format!("{} {msg}", self.prefix));
    }
    fn download_start(&self, name: &str, total: Option<u64>) -> u64 {
        self.inner.download_start(name, total)
    }
    fn download_progress(&self, id: u64, bytes: u64) {
        self.inner.download_progress(id, bytes);
    }
    fn download_done(&self, id: u64) {
        self.inner.download_done(id);
    }
    fn command_output(&self, line: &str) {
        self.inner
            .command_output(&format!("{} {line}", self.prefix));
    }
}

/// Convenience constructor for a silent shared reporter.
pub fn silent() -> SharedReporter {
    Arc::new(Silent)
}

#[cfg(test)]
mod prefixed_tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Reporter for Recorder {
        fn stage(&self, name: &str) {
            self.0.lock().unwrap().push(format!("stage {name}"));
        }
        fn info(&self, msg: &str) {
            self.0.lock().unwrap().push(format!("info {msg}"));
        }
        fn warn(&self, msg: &str) {
            self.0.lock().unwrap().push(format!("warn {msg}"));
        }
        fn download_start(&self, name: &str, _total: Option<u64>) -> u64 {
            self.0.lock().unwrap().push(format!("download {name}"));
            7
        }
        fn command_output(&self, line: &str) {
            self.0.lock().unwrap().push(format!("output {line}"));
        }
    }

    #[test]
    fn every_line_carries_the_prefix_and_downloads_pass_through() {
        let recorder = Arc::new(Recorder::default());
        let inner: SharedReporter = recorder.clone();
        let p = prefixed(&inner, "[linux/arm64]");
        p.stage("install");
        p.info("hello");
        p.warn("careful");
        p.command_output("Setting up x");
        assert_eq!(p.download_start("pkg.deb", None), 7);
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [
                "stage [linux/arm64] install",
                "info [linux/arm64] hello",
                "warn [linux/arm64] careful",
                "output [linux/arm64] Setting up x",
                "download pkg.deb",
            ]
        );
    }
}
