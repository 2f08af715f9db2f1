//! Skipping a test that cannot run here, so that it is counted as
//! skipped rather than passing in silence.
//!
//! libtest has no outcome "skipped" decided at run time: a test that
//! returns early passes. So each skip
//! - prints `SKIP <test>: <why>` straight to the process's stderr (past
//!   libtest's capture, so the line shows in a plain `cargo test`),
//! - appends a line to the file `$ROOTSTRAP_SKIP_LOG` names, from which
//!   `scripts/test.sh` prints the count and the list after the run,
//! - and, when `ROOTSTRAP_REQUIRE_ALL=1` (CI: root, every tool installed,
//!   the conformance data beside the checkout), fails the test instead,
//!   unless the test cannot apply to this host at all ([`not_applicable`]).
#![allow(dead_code)]

use std::fmt::Display;
use std::io::Write;

/// The environment variable that turns a [`skip`] into a failure.
pub const REQUIRE_ALL: &str = "ROOTSTRAP_REQUIRE_ALL";
/// The environment variable naming the file skips are appended to.
pub const LOG: &str = "ROOTSTRAP_SKIP_LOG";

/// The running test lacks something this host could provide (root, a
/// tool, a daemon, the conformance data): counted as skipped, and a
/// failure when every test is required to run. The caller returns.
pub fn skip(why: impl Display) {
    skip_as(&current_test(), why);
}

/// [`skip`] for a test that is not run by libtest (the sandbox binary),
/// named by the caller.
pub fn skip_as(test: &str, why: impl Display) {
    let why = why.to_string();
    record("required", test, &why);
    if required() {
        panic!("SKIP {test}: {why}, but {REQUIRE_ALL}=1: every test must run here");
    }
}

/// The running test does not apply to this host (another architecture, a
/// filesystem without the feature): counted as skipped, never a failure.
pub fn not_applicable(why: impl Display) {
    record("not-applicable", &current_test(), &why.to_string());
}

/// Whether every test must run (CI).
pub fn required() -> bool {
    std::env::var(REQUIRE_ALL).is_ok_and(|v| v == "1")
}

/// libtest runs each test on a thread named after it (`module::test`).
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned()
}

fn record(kind: &str, test: &str, why: &str) {
    // One write each, so lines from parallel tests do not interleave.
    let line = format!("SKIP {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    let Some(log) = std::env::var_os(LOG) else {
        return;
    };
    let entry = format!("{kind}\t{test}\t{}\n", why.replace(['\t', '\n'], " "));
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(entry.as_bytes()));
    if let Err(e) = appended {
        panic!("cannot append to {LOG} {}: {e}", log.to_string_lossy());
    }
}
