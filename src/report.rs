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

/// Convenience constructor for a silent shared reporter.
pub fn silent() -> SharedReporter {
    Arc::new(Silent)
}
