//! Running the built `rootstrap` binary from integration tests, and the
//! host facts tests decide on.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The `rootstrap` binary this package built.
pub const BIN: &str = env!("CARGO_BIN_EXE_rootstrap");

/// `rootstrap --progress plain` (no progress bars in captured output).
pub fn rootstrap() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["--progress", "plain"]);
    cmd
}

/// [`rootstrap`] without the caller's `ROOTSTRAP_MIRROR` and
/// `SOURCE_DATE_EPOCH`, which would override a test's mirror or epoch.
pub fn rootstrap_isolated() -> Command {
    let mut cmd = rootstrap();
    cmd.env_remove("ROOTSTRAP_MIRROR")
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Captured output as text (lossy), for messages and assertions.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A Debian architecture this host cannot run, so package scripts are
/// skipped.
pub fn foreign_deb_arch() -> &'static str {
    if std::env::consts::ARCH == "aarch64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// An Alpine architecture this host cannot run.
pub fn foreign_apk_arch() -> &'static str {
    if std::env::consts::ARCH == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    }
}
