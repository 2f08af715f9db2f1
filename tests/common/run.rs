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

/// For a test that changes process-wide state (the umask), which every
/// other test running on the binary's threads would see: runs the calling
/// test again, alone, in a child process of this test binary, checks that
/// it ran and passed there, and returns `false`; in that child returns
/// `true`, and the caller runs its body.
pub fn in_own_process() -> bool {
    const CHILD: &str = "ROOTSTRAP_TEST_IN_OWN_PROCESS";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    // libtest names each test's thread after the test (`module::test`).
    let test = std::thread::current()
        .name()
        .expect("called from a libtest test thread")
        .to_owned();
    let out = Command::new(std::env::current_exe().expect("this test binary"))
        .args([test.as_str(), "--exact", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run this test binary again");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} in its own process:\n{stdout}{}",
        text(&out.stderr)
    );
    false
}

/// `rootstrap ARGS` run to the end; what it printed goes to the test's
/// stderr (shown when the test fails).
pub fn logged(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run rootstrap");
    eprintln!(
        "{cmd:?}\n--- stdout\n{}--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Captured output as text (lossy), for messages and assertions.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

/// Whether /dev/shm is a tmpfs with a few GiB free and ample memory, so a
/// default build of a small fixture makes its tree there (see
/// `build::tree_dir` for the rule, which these bounds are well inside).
#[allow(clippy::unnecessary_cast)]
pub fn shm_has_room() -> bool {
    let shm = std::path::Path::new("/dev/shm");
    let tmpfs =
        rustix::fs::statfs(shm).is_ok_and(|fs| fs.f_type as i64 == libc::TMPFS_MAGIC as i64);
    let free = rustix::fs::statvfs(shm)
        .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
        .unwrap_or(0);
    let available_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    tmpfs && free >= 2 << 30 && available_kib >= 8 << 20
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
