//! Sandbox integration tests (need root and a static busybox at /bin/busybox).
//!
//! `harness = false`: this binary is also the sandbox helper (`/proc/self/exe`
//! is what `Sandbox::new()` re-executes), so `main` first dispatches on
//! `HELPER_ARG`, like the real `rootstrap` binary does. It also acts as a
//! stand-in "build process" for the kill tests (`BUILD_ARG`).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common/skip.rs"]
mod skip;

use rootstrap::rootfs::sandbox::{
    self, lookup_user, policy_rc_d_guard, BindMount, ExitStatus, Network, OutputLine, RunSpec,
    Sandbox, SandboxError, SandboxMode, Session, StdinMode, Stream, DEFAULT_PATH, HELPER_ARG,
};

const BUSYBOX: &str = "/bin/busybox";
/// Runs one sandboxed command in a child "build" process for the kill tests.
const BUILD_ARG: &str = "__test-build";
/// The same, with the command's stdin inherited from the build.
const BUILD_STDIN_ARG: &str = "__test-build-stdin";
/// The same, under chroot isolation.
const BUILD_CHROOT_ARG: &str = "__test-build-chroot";

type TestResult = Result<(), String>;

/// The longest a case may take (the slowest, the kill tests, take seconds).
const CASE_LIMIT: Duration = Duration::from_secs(180);
type TestCase = (&'static str, fn() -> TestResult);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(HELPER_ARG) {
        sandbox::helper_main();
    }
    if args.get(1).map(String::as_str) == Some(BUILD_ARG) {
        build_process(&args[2..], StdinMode::Null);
    }
    if args.get(1).map(String::as_str) == Some(BUILD_STDIN_ARG) {
        build_process(&args[2..], StdinMode::Inherit);
    }
    if args.get(1).map(String::as_str) == Some(BUILD_CHROOT_ARG) {
        build_process_in(&args[2..], StdinMode::Null, SandboxMode::Chroot);
    }
    if !rustix::process::geteuid().is_root() {
        skip::skip_as("sandbox (every case)", "sandbox tests need root");
        println!("0 passed, 0 failed (all skipped: not root)");
        return;
    }
    if !Path::new(BUSYBOX).exists() {
        skip::skip_as(
            "sandbox (every case)",
            format!("sandbox tests need a static {BUSYBOX}"),
        );
        println!("0 passed, 0 failed (all skipped: no busybox)");
        return;
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let cases: &[TestCase] = &[
        ("echo_output_is_captured", echo_output_is_captured),
        (
            "stdout_and_stderr_are_told_apart",
            stdout_and_stderr_are_told_apart,
        ),
        ("exit_code_is_propagated", exit_code_is_propagated),
        ("signal_death_is_reported", signal_death_is_reported),
        ("inherit_mode_returns_status", inherit_mode_returns_status),
        (
            "command_runs_in_its_own_pid_namespace",
            command_runs_in_its_own_pid_namespace,
        ),
        ("hostname_is_set_inside_only", hostname_is_set_inside_only),
        (
            "dev_holds_only_the_minimal_set",
            dev_holds_only_the_minimal_set,
        ),
        (
            "network_none_has_only_loopback",
            network_none_has_only_loopback,
        ),
        ("user_switch_via_etc_passwd", user_switch_via_etc_passwd),
        ("cwd_is_entered", cwd_is_entered),
        ("missing_cwd_is_an_error", missing_cwd_is_an_error),
        ("leaked_fd_workdir_is_refused", leaked_fd_workdir_is_refused),
        (
            "symlinked_workdir_stays_inside",
            symlinked_workdir_stays_inside,
        ),
        (
            "environment_is_exactly_the_spec",
            environment_is_exactly_the_spec,
        ),
        (
            "unknown_program_is_an_exec_error",
            unknown_program_is_an_exec_error,
        ),
        ("capabilities_are_bounded", capabilities_are_bounded),
        (
            "sync_calls_are_suppressed_only_when_asked",
            sync_calls_are_suppressed_only_when_asked,
        ),
        (
            "planted_device_nodes_are_inert",
            planted_device_nodes_are_inert,
        ),
        (
            "resolv_conf_only_during_the_run",
            resolv_conf_only_during_the_run,
        ),
        ("existing_resolv_conf_is_kept", existing_resolv_conf_is_kept),
        (
            "extra_mount_is_read_only_and_removed",
            extra_mount_is_read_only_and_removed,
        ),
        ("policy_rc_d_forbids_services", policy_rc_d_forbids_services),
        (
            "host_mounts_unchanged_after_runs",
            host_mounts_unchanged_after_runs,
        ),
        ("signals_start_at_defaults", signals_start_at_defaults),
        ("stdin_modes", stdin_modes),
        (
            "leftover_daemon_is_killed_when_the_command_ends",
            leftover_daemon_is_killed_when_the_command_ends,
        ),
        (
            "ctrl_c_on_build_group_leaves_no_process",
            ctrl_c_on_build_group_leaves_no_process,
        ),
        (
            "dangling_resolv_conf_symlink_is_left_alone",
            dangling_resolv_conf_symlink_is_left_alone,
        ),
        ("host_root_is_refused", host_root_is_refused),
        ("unwired_helper_is_reported", unwired_helper_is_reported),
        ("explicit_helper_path_works", explicit_helper_path_works),
        ("symlinked_proc_is_refused", symlinked_proc_is_refused),
        (
            "sigkill_of_build_leaves_no_process",
            sigkill_of_build_leaves_no_process,
        ),
        (
            "sigterm_of_build_leaves_no_process",
            sigterm_of_build_leaves_no_process,
        ),
        ("package_scripts_see_a_chroot", package_scripts_see_a_chroot),
        ("chroot_mode_runs_commands", chroot_mode_runs_commands),
        (
            "chroot_mode_devices_exist_only_during_the_run",
            chroot_mode_devices_exist_only_during_the_run,
        ),
        (
            "chroot_mode_cannot_mknod_or_chroot_out",
            chroot_mode_cannot_mknod_or_chroot_out,
        ),
        (
            "chroot_mode_kills_leftover_daemons",
            chroot_mode_kills_leftover_daemons,
        ),
        (
            "chroot_mode_refuses_mounts_and_network_none",
            chroot_mode_refuses_mounts_and_network_none,
        ),
        ("chroot_mode_suppresses_syncs", chroot_mode_suppresses_syncs),
        (
            "chroot_mode_killed_build_leaves_no_process",
            chroot_mode_killed_build_leaves_no_process,
        ),
        (
            "a_session_sees_what_is_written_between_steps",
            a_session_sees_what_is_written_between_steps,
        ),
        (
            "a_dropped_session_leaves_no_process_and_no_mount",
            a_dropped_session_leaves_no_process_and_no_mount,
        ),
        (
            "no_session_where_it_would_leave_stubs",
            no_session_where_it_would_leave_stubs,
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        // Each case runs on a thread of its own with a time limit, so a
        // case that hangs (a sandbox that never answers) fails the run
        // instead of holding it forever; exiting kills its sandboxes.
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(case).unwrap_or_else(|panic| {
                Err(panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()))
            });
            let _ = done.send(outcome);
        });
        let outcome = outcome.recv_timeout(CASE_LIMIT).unwrap_or_else(|_| {
            println!("test {name} ... FAILED: still running after {CASE_LIMIT:?}");
            std::process::exit(1)
        });
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(message) => {
                failed += 1;
                println!("test {name} ... FAILED: {message}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- fixtures

/// A busybox rootfs with /bin applets, /tmp, /etc/passwd and /etc/group.
/// `with_mount_points` adds /proc and /dev, so runs need no stubs.
struct Rootfs {
    dir: tempfile::TempDir,
}

impl Rootfs {
    fn new(with_mount_points: bool) -> Rootfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in ["bin", "etc", "tmp", "usr/sbin", "home/app"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod tmp");
        if with_mount_points {
            std::fs::create_dir(root.join("proc")).expect("mkdir proc");
            std::fs::create_dir(root.join("dev")).expect("mkdir dev");
        }
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
        let list = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                    .expect("applet link");
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\napp:x:1000:\naudio:x:29:app\n",
        )
        .expect("group");
        Rootfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn spec(&self, argv: &[&str]) -> RunSpec {
        RunSpec::new(self.path(), argv.iter().map(|s| s.to_string()).collect())
    }
}

struct Run {
    status: ExitStatus,
    lines: Vec<OutputLine>,
}

impl Run {
    fn stdout(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| l.stream == Stream::Stdout)
            .map(|l| l.text.clone())
            .collect()
    }

    fn all_text(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn run(spec: &RunSpec) -> Result<Run, SandboxError> {
    let mut lines = Vec::new();
    let status = Sandbox::new().run(spec, &mut |line| lines.push(line))?;
    Ok(Run { status, lines })
}

fn run_ok(spec: &RunSpec) -> Result<Run, String> {
    let result = run(spec).map_err(|e| format!("run failed: {e}"))?;
    if !result.status.success() {
        return Err(format!("{}: {}", result.status, result.all_text()));
    }
    Ok(result)
}

fn check(condition: bool, message: impl FnOnce() -> String) -> TestResult {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

fn check_eq<T: PartialEq + std::fmt::Debug>(actual: T, expected: T, what: &str) -> TestResult {
    check(actual == expected, || {
        format!("{what}: expected {expected:?}, got {actual:?}")
    })
}

// ---------------------------------------------------------------- cases

fn echo_output_is_captured() -> TestResult {
    let root = Rootfs::new(true);
    let result = run_ok(&root.spec(&["echo", "ok"]))?;
    check_eq(result.stdout(), vec!["ok".to_string()], "stdout")?;
    check_eq(result.lines.len(), 1, "line count")
}

fn stdout_and_stderr_are_told_apart() -> TestResult {
    let root = Rootfs::new(true);
    let result = run_ok(&root.spec(&["sh", "-c", "echo out; echo err >&2"]))?;
    let mut got: Vec<(Stream, String)> = result
        .lines
        .iter()
        .map(|l| (l.stream, l.text.clone()))
        .collect();
    got.sort_by_key(|(s, _)| *s == Stream::Stderr);
    check_eq(
        got,
        vec![
            (Stream::Stdout, "out".into()),
            (Stream::Stderr, "err".into()),
        ],
        "streams",
    )
}

fn exit_code_is_propagated() -> TestResult {
    let root = Rootfs::new(true);
    let result = run(&root.spec(&["sh", "-c", "exit 3"])).map_err(|e| e.to_string())?;
    check_eq(result.status, ExitStatus::Exited(3), "status")?;
    check_eq(result.status.code(), 3, "code")
}

fn signal_death_is_reported() -> TestResult {
    let root = Rootfs::new(true);
    let result = run(&root.spec(&["sh", "-c", "kill -9 $$"])).map_err(|e| e.to_string())?;
    check_eq(result.status, ExitStatus::Signaled(9), "status")?;
    check_eq(result.status.code(), 137, "code")
}

fn inherit_mode_returns_status() -> TestResult {
    let root = Rootfs::new(true);
    let status = Sandbox::new()
        .run_inherit(&root.spec(&["sh", "-c", "exit 5"]))
        .map_err(|e| e.to_string())?;
    check_eq(status, ExitStatus::Exited(5), "status")
}

fn command_runs_in_its_own_pid_namespace() -> TestResult {
    let root = Rootfs::new(true);
    let script = "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'";
    let result = run_ok(&root.spec(&["sh", "-c", script]))?;
    let out = result.stdout();
    // PID 1 is the sandbox's own init (the helper); the command is its child.
    check_eq(out.first().map(String::as_str), Some("2"), "shell pid")?;
    check(out.get(1).is_some_and(|l| l.contains(HELPER_ARG)), || {
        format!("/proc/1 is not the sandbox init: {out:?}")
    })?;
    let processes: usize = out.get(2).and_then(|n| n.trim().parse().ok()).unwrap_or(99);
    check(processes <= 4, || {
        format!("{processes} processes visible: {out:?}")
    })
}

fn hostname_is_set_inside_only() -> TestResult {
    let root = Rootfs::new(true);
    let host_before = rustix::system::uname().nodename().to_owned();
    let mut spec = root.spec(&["hostname"]);
    spec.hostname = "sandbox-test-host".into();
    let result = run_ok(&spec)?;
    check_eq(
        result.stdout(),
        vec!["sandbox-test-host".to_string()],
        "hostname",
    )?;
    check_eq(
        rustix::system::uname().nodename().to_owned(),
        host_before,
        "host hostname",
    )
}

fn dev_holds_only_the_minimal_set() -> TestResult {
    let root = Rootfs::new(true);
    let script = "ls -A /dev; head -c 5 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; \
                  test -c /dev/pts/ptmx && echo pts-ok; test -d /dev/shm && test -w /dev/shm && echo shm-ok";
    let result = run_ok(&root.spec(&["sh", "-c", script]))?;
    let out = result.stdout();
    let mut expected = vec![
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
        "urandom", "zero",
    ];
    // /dev/tty is bound only where the host has one.
    if Path::new("/dev/tty").exists() {
        expected.push("tty");
    }
    expected.sort_unstable();
    let count = expected.len().min(out.len());
    let mut names: Vec<&str> = out.iter().take(count).map(String::as_str).collect();
    names.sort_unstable();
    check_eq(names, expected, "/dev entries")?;
    check_eq(
        out[count..].to_vec(),
        vec![
            "5".to_string(),
            "null-ok".into(),
            "pts-ok".into(),
            "shm-ok".into(),
        ],
        "device checks",
    )
}

fn interfaces(result: &Run) -> Vec<String> {
    result
        .stdout()
        .iter()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .collect()
}

fn network_none_has_only_loopback() -> TestResult {
    let root = Rootfs::new(true);
    let mut spec = root.spec(&["cat", "/proc/net/dev"]);
    spec.network = Network::None;
    let isolated = run_ok(&spec)?;
    check_eq(interfaces(&isolated), vec!["lo".to_string()], "interfaces")?;
    // With the host network the host's interfaces are visible.
    spec.network = Network::Host;
    let shared = run_ok(&spec)?;
    let host = std::fs::read_to_string("/proc/net/dev").map_err(|e| e.to_string())?;
    let host_count = host.lines().count().saturating_sub(2);
    check_eq(interfaces(&shared).len(), host_count, "host interfaces")
}

fn user_switch_via_etc_passwd() -> TestResult {
    let root = Rootfs::new(true);
    let user = lookup_user(root.path(), "app").map_err(|e| e.to_string())?;
    check_eq(user.clone(), (1000, 1000, vec![29]), "lookup_user")?;
    let mut spec = root.spec(&["id"]);
    spec.user = Some(user);
    let result = run_ok(&spec)?;
    check_eq(
        result.stdout(),
        vec!["uid=1000(app) gid=1000(app) groups=29(audio)".to_string()],
        "id as app",
    )?;
    let as_root = run_ok(&root.spec(&["id"]))?;
    check_eq(
        as_root.stdout(),
        vec!["uid=0(root) gid=0(root)".to_string()],
        "id as root",
    )
}

fn cwd_is_entered() -> TestResult {
    let root = Rootfs::new(true);
    let mut spec = root.spec(&["pwd"]);
    spec.cwd = "/home/app".into();
    check_eq(
        run_ok(&spec)?.stdout(),
        vec!["/home/app".to_string()],
        "pwd",
    )
}

fn missing_cwd_is_an_error() -> TestResult {
    let root = Rootfs::new(true);
    let mut spec = root.spec(&["pwd"]);
    spec.cwd = "/nonexistent".into();
    match run(&spec) {
        Err(SandboxError::Setup { message, .. }) if message.contains("/nonexistent") => Ok(()),
        other => Err(format!(
            "expected a setup error, got {:?}",
            other.map(|r| r.status)
        )),
    }
}

/// HOSTILE 40 / CVE-2024-21626: a directory descriptor leaked from the build
/// (opened without O_CLOEXEC) must not be usable as `WORKDIR /proc/self/fd/N`.
fn leaked_fd_workdir_is_refused() -> TestResult {
    let root = Rootfs::new(true);
    let leaked = std::fs::File::open("/").map_err(|e| e.to_string())?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    // SAFETY: clearing FD_CLOEXEC on a descriptor this function owns.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return Err("cannot clear FD_CLOEXEC".into());
    }
    let mut spec = root.spec(&["sh", "-c", "pwd; ls /"]);
    for cwd in [
        format!("/proc/self/fd/{fd}"),
        format!("/proc/self/fd/{fd}/etc"),
    ] {
        spec.cwd = cwd.clone();
        match run(&spec) {
            Err(SandboxError::Setup { .. }) => {}
            Ok(result) => {
                return Err(format!(
                    "WORKDIR {cwd} accepted: {} {:?}",
                    result.status,
                    result.stdout()
                ))
            }
            Err(e) => return Err(format!("WORKDIR {cwd}: unexpected error {e}")),
        }
    }
    drop(leaked);
    Ok(())
}

/// A WORKDIR that is a relative symlink climbing out of the root ends at the
/// sandbox's `/`, never on the host.
fn symlinked_workdir_stays_inside() -> TestResult {
    let root = Rootfs::new(true);
    std::os::unix::fs::symlink("../../../../../../..", root.path().join("escape"))
        .map_err(|e| e.to_string())?;
    let mut spec = root.spec(&["sh", "-c", "pwd -P; ls /bin/busybox"]);
    spec.cwd = "/escape".into();
    let result = run_ok(&spec)?;
    check_eq(
        result.stdout(),
        vec!["/".to_string(), "/bin/busybox".into()],
        "cwd through symlink",
    )
}

fn environment_is_exactly_the_spec() -> TestResult {
    let root = Rootfs::new(true);
    let mut spec = root.spec(&["env"]);
    spec.env = vec![
        ("FOO".into(), "bar baz".into()),
        ("EMPTY".into(), String::new()),
    ];
    let mut got = run_ok(&spec)?.stdout();
    got.sort();
    check_eq(
        got,
        vec![
            "EMPTY=".to_string(),
            "FOO=bar baz".into(),
            format!("PATH={DEFAULT_PATH}"),
        ],
        "environment",
    )?;
    spec.env = vec![("PATH".into(), "/bin".into())];
    check_eq(
        run_ok(&spec)?.stdout(),
        vec!["PATH=/bin".to_string()],
        "explicit PATH",
    )
}

fn unknown_program_is_an_exec_error() -> TestResult {
    let root = Rootfs::new(true);
    match run(&root.spec(&["no-such-program"])) {
        Err(SandboxError::Exec { program, .. }) if program == "no-such-program" => Ok(()),
        other => Err(format!(
            "expected an exec error, got {:?}",
            other.map(|r| r.status)
        )),
    }
}

/// HOSTILE 41: RUN gets Docker's default capabilities, nothing more, so it
/// cannot mount, and a root command cannot remount its way out.
fn capabilities_are_bounded() -> TestResult {
    let root = Rootfs::new(true);
    // Docker's default set, narrowed by whatever the host itself lacks.
    let docker_default_caps = 0xa804_25fb_u64;
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let host_bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or("no CapBnd in /proc/self/status")?;
    let script = "grep CapBnd /proc/self/status; mount -t tmpfs t /tmp 2>/dev/null && echo mounted || echo no-mount";
    let result = run_ok(&root.spec(&["sh", "-c", script]))?;
    check_eq(
        result.stdout(),
        vec![
            format!("CapBnd:\t{:016x}", docker_default_caps & host_bounding),
            "no-mount".into(),
        ],
        "capabilities",
    )
}

fn sync_calls_are_suppressed_only_when_asked() -> TestResult {
    let root = Rootfs::new(true);
    // fdatasync on /dev/null fails with EINVAL when the kernel runs it, so
    // "synced" shows the call never reached the kernel.
    let script = "grep Seccomp: /proc/self/status; sync -d /dev/null 2>/dev/null && echo synced; \
                  echo data > /tmp/f; sync -d /tmp/f && sync -f /tmp/f && sync && cat /tmp/f";
    let plain = run_ok(&root.spec(&["sh", "-c", script]))?;
    check_eq(
        plain.stdout(),
        vec!["Seccomp:\t0".to_string(), "data".into()],
        "without suppress_sync",
    )?;
    let mut spec = root.spec(&["sh", "-c", script]);
    spec.suppress_sync = true;
    let suppressed = run_ok(&spec)?;
    // Mode 2 is a filter.
    check_eq(
        suppressed.stdout(),
        vec!["Seccomp:\t2".to_string(), "synced".into(), "data".into()],
        "with suppress_sync",
    )
}

/// HOSTILE 41: a device node the command creates in the rootfs cannot be
/// opened (the root is mounted nodev), so only /dev's listed devices work.
fn planted_device_nodes_are_inert() -> TestResult {
    let root = Rootfs::new(true);
    let script = "mknod /tmp/mem c 1 1 && echo made; head -c 1 /tmp/mem >/dev/null 2>&1 && echo opened || echo refused";
    let result = run_ok(&root.spec(&["sh", "-c", script]))?;
    check_eq(
        result.stdout(),
        vec!["made".to_string(), "refused".into()],
        "planted node",
    )
}

/// Everything about the tree that a layer would record.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let mut entry = format!(
            "mode={:o} uid={} gid={} size={} mtime={}.{}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        if meta.file_type().is_symlink() {
            entry += &format!(
                " -> {}",
                std::fs::read_link(&path).expect("readlink").display()
            );
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            entry += &format!(" content={:x?}", &bytes[..bytes.len().min(64)]);
            entry += &format!(" sum={}", bytes.iter().map(|&b| b as u64).sum::<u64>());
        } else if meta.is_dir() {
            for child in std::fs::read_dir(&path).expect("readdir") {
                stack.push(child.expect("dirent").path());
            }
        }
        out.insert(
            path.strip_prefix(root).expect("prefix").to_path_buf(),
            entry,
        );
    }
    out
}

fn diff(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, entry) in before {
        match after.get(path) {
            None => out.push(format!("removed {}", path.display())),
            Some(other) if other != entry => {
                out.push(format!("changed {}: {entry} => {other}", path.display()))
            }
            _ => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("added {}", path.display()));
    }
    out
}

/// The rootfs lacks /proc, /dev and /etc/resolv.conf: the run sees the
/// host's resolv.conf, and afterwards the tree is identical, parent
/// directory times included.
fn resolv_conf_only_during_the_run() -> TestResult {
    let Ok(host_resolv) = std::fs::read_to_string("/etc/resolv.conf") else {
        skip::skip_as(
            "sandbox::resolv_conf_only_during_the_run",
            "host has no /etc/resolv.conf",
        );
        return Ok(());
    };
    let root = Rootfs::new(false);
    let before = snapshot(root.path());
    let result = run_ok(&root.spec(&["cat", "/etc/resolv.conf"]))?;
    let expected: Vec<String> = host_resolv.lines().map(String::from).collect();
    check_eq(result.stdout(), expected, "resolv.conf during the run")?;
    let changes = diff(&before, &snapshot(root.path()));
    check(changes.is_empty(), || {
        format!("rootfs changed: {changes:#?}")
    })?;
    // Writing to it fails: the mount is read-only.
    let result =
        run(&root.spec(&["sh", "-c", "echo x >> /etc/resolv.conf"])).map_err(|e| e.to_string())?;
    check(!result.status.success(), || {
        "resolv.conf was writable".into()
    })?;
    let changes = diff(&before, &snapshot(root.path()));
    check(changes.is_empty(), || {
        format!("rootfs changed: {changes:#?}")
    })
}

fn existing_resolv_conf_is_kept() -> TestResult {
    if !Path::new("/etc/resolv.conf").exists() {
        skip::skip_as(
            "sandbox::existing_resolv_conf_is_kept",
            "host has no /etc/resolv.conf",
        );
        return Ok(());
    }
    let root = Rootfs::new(true);
    let own = "nameserver 192.0.2.1\n";
    std::fs::write(root.path().join("etc/resolv.conf"), own).map_err(|e| e.to_string())?;
    let before = snapshot(root.path());
    let result = run_ok(&root.spec(&["cat", "/etc/resolv.conf"]))?;
    check(!result.stdout().contains(&own.trim().to_string()), || {
        "the rootfs's own resolv.conf was visible instead of the host's".into()
    })?;
    let mut spec = root.spec(&["cat", "/etc/resolv.conf"]);
    spec.network = Network::None;
    check_eq(
        run_ok(&spec)?.stdout(),
        vec![own.trim().to_string()],
        "no network: own file",
    )?;
    let changes = diff(&before, &snapshot(root.path()));
    check(changes.is_empty(), || {
        format!("rootfs changed: {changes:#?}")
    })
}

fn extra_mount_is_read_only_and_removed() -> TestResult {
    let root = Rootfs::new(true);
    let context = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(context.path().join("file"), "context data\n").map_err(|e| e.to_string())?;
    let before = snapshot(root.path());
    let mut spec = root.spec(&[
        "sh",
        "-c",
        "cat /mnt/ctx/file; touch /mnt/ctx/new 2>/dev/null && echo writable || echo read-only",
    ]);
    spec.extra_mounts = vec![BindMount {
        source: context.path().to_path_buf(),
        target: "/mnt/ctx".into(),
    }];
    let result = run_ok(&spec)?;
    check_eq(
        result.stdout(),
        vec!["context data".to_string(), "read-only".into()],
        "bind mount",
    )?;
    check(!context.path().join("new").exists(), || {
        "host context written".into()
    })?;
    let changes = diff(&before, &snapshot(root.path()));
    check(changes.is_empty(), || {
        format!("rootfs changed: {changes:#?}")
    })
}

/// HOSTILE 43: with the guard in place, `invoke-rc.d`-style checks see 101.
fn policy_rc_d_forbids_services() -> TestResult {
    let root = Rootfs::new(true);
    let guard = policy_rc_d_guard(root.path()).map_err(|e| e.to_string())?;
    let result = run(&root.spec(&["sh", "-c", "/usr/sbin/policy-rc.d; echo $?"]))
        .map_err(|e| e.to_string())?;
    check_eq(result.stdout(), vec!["101".to_string()], "policy-rc.d exit")?;
    guard.release().map_err(|e| e.to_string())?;
    check(!root.path().join("usr/sbin/policy-rc.d").exists(), || {
        "policy-rc.d left behind".into()
    })
}

fn mountinfo() -> Vec<String> {
    // Mount ids are stable; only the set of mounts matters.
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

fn host_mounts_unchanged_after_runs() -> TestResult {
    let root = Rootfs::new(false);
    let before = mountinfo();
    run_ok(&root.spec(&["true"]))?;
    let mut spec = root.spec(&["sh", "-c", "mount; exit 1"]);
    spec.network = Network::None;
    run(&spec).map_err(|e| e.to_string())?;
    let after = mountinfo();
    check_eq(after, before, "host mountinfo")
}

/// Lines from a session up to (not including) `end`; an error if the
/// session's output ends first.
fn session_lines_until(session: &mut Session, end: &str) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    loop {
        let Some(line) = session.next_line() else {
            return Err(format!("the session ended before {end:?}: {lines:?}"));
        };
        if line.text == end {
            return Ok(lines);
        }
        lines.push(line.text);
    }
}

/// A shell kept open in `root` (no network, so no resolv.conf stub is
/// needed and a session is possible).
fn open_shell(root: &Rootfs) -> Result<Session, String> {
    let mut spec = root.spec(&["sh"]);
    spec.network = Network::None;
    Sandbox::new()
        .session(&spec)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no session under namespaces".to_string())
}

/// One shell, several steps: a file the build writes into the root between
/// two steps is seen by the second; the shell's exit code is the status.
fn a_session_sees_what_is_written_between_steps() -> TestResult {
    let root = Rootfs::new(true);
    let mut session = open_shell(&root)?;
    session
        .send(b"echo $$; test -e /between || echo absent; echo end-1\n")
        .map_err(|e| e.to_string())?;
    let first = session_lines_until(&mut session, "end-1")?;
    // The shell is the command, PID 2 under the namespace's init.
    check_eq(first, vec!["2".to_string(), "absent".into()], "first step")?;
    std::fs::write(root.path().join("between"), "written by the build\n").expect("write");
    session
        .send(b"cat /between; echo end-2\n")
        .map_err(|e| e.to_string())?;
    let second = session_lines_until(&mut session, "end-2")?;
    check_eq(
        second,
        vec!["written by the build".to_string()],
        "second step",
    )?;
    session.send(b"exit 3\n").map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    let status = session
        .finish(&mut |line| rest.push(line.text))
        .map_err(|e| e.to_string())?;
    check_eq(status, ExitStatus::Exited(3), "status")?;
    check(rest.is_empty(), || {
        format!("output after the end: {rest:?}")
    })
}

/// A session given up half-way (an install that failed) takes the shell
/// and what it started with it, and its mounts never reach the host.
fn a_dropped_session_leaves_no_process_and_no_mount() -> TestResult {
    let root = Rootfs::new(true);
    let before = mountinfo();
    let marker = format!("sleep 31{}", std::process::id() % 1000);
    let mut session = open_shell(&root)?;
    session
        .send(format!("{marker} &\necho started\n").as_bytes())
        .map_err(|e| e.to_string())?;
    session_lines_until(&mut session, "started")?;
    check(
        wait_until(Duration::from_secs(10), || {
            !processes_with(&marker).is_empty()
        }),
        || "the background process did not start".into(),
    )?;
    drop(session);
    check(
        wait_until(Duration::from_secs(10), || {
            processes_with(&marker).is_empty()
        }),
        || format!("{marker} outlived the session"),
    )?;
    check_eq(mountinfo(), before, "host mountinfo")
}

/// Under chroot isolation the device nodes standing in for /dev would stay
/// in the root for the session's life, and a root without /proc would keep
/// its stub: no session there, the caller runs each step alone.
fn no_session_where_it_would_leave_stubs() -> TestResult {
    let root = Rootfs::new(true);
    let chroot = Sandbox::new().with_mode(SandboxMode::Chroot);
    check(
        chroot
            .session(&root.spec(&["sh"]))
            .map_err(|e| e.to_string())?
            .is_none(),
        || "a session under chroot isolation".into(),
    )?;
    let bare = Rootfs::new(false);
    let before = snapshot(bare.path());
    check(
        Sandbox::new()
            .session(&bare.spec(&["sh"]))
            .map_err(|e| e.to_string())?
            .is_none(),
        || "a session in a root without /proc".into(),
    )?;
    let changes = diff(&before, &snapshot(bare.path()));
    check(changes.is_empty(), || {
        format!("the root changed: {changes:#?}")
    })
}

/// The stand-in build process: runs one sandboxed command and reports.
fn build_process(args: &[String], stdin: StdinMode) -> ! {
    build_process_in(args, stdin, SandboxMode::Namespaces)
}

fn build_process_in(args: &[String], stdin: StdinMode, mode: SandboxMode) -> ! {
    let mut spec = RunSpec::new(&args[0], args[1..].to_vec());
    spec.stdin = stdin;
    let status = Sandbox::new().with_mode(mode).run_inherit(&spec);
    std::process::exit(if status.is_ok() { 0 } else { 2 })
}

fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

/// HOSTILE 34: the build dies while a RUN step runs a foreground and a
/// daemonised background process; both disappear, and no mount remains.
/// How the test delivers the signal to the stand-in build.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// To the build process alone (`kill PID`, a Kubernetes stop).
    Process,
    /// To its whole process group, as a terminal's Ctrl-C does.
    Group,
}

fn killed_build_leaves_nothing(
    signal: rustix::process::Signal,
    target: Target,
    marker: u32,
) -> TestResult {
    killed_build_in_mode_leaves_nothing(signal, target, marker, BUILD_ARG)
}

fn killed_build_in_mode_leaves_nothing(
    signal: rustix::process::Signal,
    target: Target,
    marker: u32,
    build_arg: &str,
) -> TestResult {
    let root = Rootfs::new(true);
    let mounts_before = mountinfo();
    let (fg, bg) = (format!("sleep {marker}"), format!("sleep {}", marker + 1));
    let script = format!("setsid {bg} & {fg}");
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command
        .arg(build_arg)
        .arg(root.path())
        .args(["sh", "-c", &script])
        .process_group(0);
    // A background job of a non-interactive shell starts with SIGINT and
    // SIGQUIT ignored, and that would be inherited: the stand-in build must
    // die of the signals the test sends, as a build in a terminal does.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut build = command.spawn().map_err(|e| e.to_string())?;
    let started = wait_until(Duration::from_secs(10), || {
        !processes_with(&fg).is_empty() && !processes_with(&bg).is_empty()
    });
    if !started {
        let _ = build.kill();
        let _ = build.wait();
        return Err("sandboxed sleeps never started".into());
    }
    let pid = rustix::process::Pid::from_raw(build.id() as i32).ok_or("no pid")?;
    match target {
        Target::Process => rustix::process::kill_process(pid, signal),
        Target::Group => rustix::process::kill_process_group(pid, signal),
    }
    .map_err(|e| e.to_string())?;
    let exited = wait_until(Duration::from_secs(10), || {
        !matches!(build.try_wait(), Ok(None))
    });
    if !exited {
        let _ = build.kill();
        let _ = build.wait();
        return Err(format!("the build ignored signal {signal:?} for 10 s"));
    }
    let gone = wait_until(Duration::from_secs(10), || {
        processes_with(&fg).is_empty() && processes_with(&bg).is_empty()
    });
    check(gone, || {
        format!(
            "processes survived: {:?} {:?}",
            processes_with(&fg),
            processes_with(&bg)
        )
    })?;
    check_eq(mountinfo(), mounts_before, "host mountinfo after kill")
}

fn sigkill_of_build_leaves_no_process() -> TestResult {
    killed_build_leaves_nothing(rustix::process::Signal::KILL, Target::Process, 47_101)
}

fn sigterm_of_build_leaves_no_process() -> TestResult {
    killed_build_leaves_nothing(rustix::process::Signal::TERM, Target::Process, 47_201)
}

fn ctrl_c_on_build_group_leaves_no_process() -> TestResult {
    killed_build_leaves_nothing(rustix::process::Signal::INT, Target::Group, 47_301)
}

/// Chroot isolation has no PID namespace to take the processes with it:
/// the helper, told by SIGTERM that the build is gone, kills them.
fn chroot_mode_killed_build_leaves_no_process() -> TestResult {
    use rustix::process::Signal;
    killed_build_in_mode_leaves_nothing(Signal::TERM, Target::Process, 47_401, BUILD_CHROOT_ARG)?;
    killed_build_in_mode_leaves_nothing(Signal::INT, Target::Group, 47_501, BUILD_CHROOT_ARG)?;
    killed_build_in_mode_leaves_nothing(Signal::KILL, Target::Process, 47_601, BUILD_CHROOT_ARG)
}

/// `StdinMode::Null`: a command reading stdin sees EOF at once;
/// `StdinMode::Inherit`: it reads what the build was given.
fn stdin_modes() -> TestResult {
    let root = Rootfs::new(true);
    let null = run_ok(&root.spec(&["cat"]))?;
    check_eq(null.stdout(), Vec::<String>::new(), "stdin null")?;
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg(BUILD_STDIN_ARG)
        .arg(root.path())
        .arg("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin
            .write_all(b"from the build\n")
            .map_err(|e| e.to_string())?;
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    check_eq(
        String::from_utf8_lossy(&output.stdout).into_owned(),
        "from the build\n".to_string(),
        "stdin inherit",
    )
}

/// The helper's own ignored SIGPIPE (Rust's default) and any blocked signals
/// must not leak into the command.
fn signals_start_at_defaults() -> TestResult {
    let root = Rootfs::new(true);
    let result = run_ok(&root.spec(&["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]))?;
    check_eq(
        result.stdout(),
        vec![
            "SigBlk:\t0000000000000000".to_string(),
            "SigIgn:\t0000000000000000".into(),
        ],
        "signal state",
    )
}

/// An explicit helper that is not wired to helper_main reports nothing.
fn unwired_helper_is_reported() -> TestResult {
    let root = Rootfs::new(true);
    match Sandbox::with_helper("/bin/true").run(&root.spec(&["true"]), &mut |_| {}) {
        Err(SandboxError::HelperDied { .. }) => Ok(()),
        other => Err(format!("expected HelperDied, got {other:?}")),
    }
}

fn explicit_helper_path_works() -> TestResult {
    let root = Rootfs::new(true);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let status = Sandbox::with_helper(exe)
        .run(&root.spec(&["echo", "via explicit helper"]), &mut |l| {
            lines.push(l.text)
        })
        .map_err(|e| e.to_string())?;
    check_eq(status, ExitStatus::Exited(0), "status")?;
    check_eq(lines, vec!["via explicit helper".to_string()], "output")
}

/// A rootfs whose /proc is a symlink to its root is refused, not mounted
/// over its own root.
fn symlinked_proc_is_refused() -> TestResult {
    let root = Rootfs::new(false);
    std::fs::create_dir(root.path().join("dev")).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("/", root.path().join("proc")).map_err(|e| e.to_string())?;
    match run(&root.spec(&["true"])) {
        Err(SandboxError::Setup { message, .. }) if message.contains("/proc") => Ok(()),
        other => Err(format!(
            "expected a setup error, got {:?}",
            other.map(|r| r.status)
        )),
    }
}

/// A rootfs whose resolv.conf is a dangling symlink (systemd-resolved style)
/// gets no resolv.conf, and nothing is created through the link.
fn dangling_resolv_conf_symlink_is_left_alone() -> TestResult {
    let root = Rootfs::new(true);
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        root.path().join("etc/resolv.conf"),
    )
    .map_err(|e| e.to_string())?;
    let before = snapshot(root.path());
    let result = run(&root.spec(&["cat", "/etc/resolv.conf"])).map_err(|e| e.to_string())?;
    check(!result.status.success(), || {
        format!(
            "resolv.conf readable through a dangling link: {:?}",
            result.stdout()
        )
    })?;
    let changes = diff(&before, &snapshot(root.path()));
    check(changes.is_empty(), || {
        format!("rootfs changed: {changes:#?}")
    })
}

fn host_root_is_refused() -> TestResult {
    match run(&RunSpec::new("/", vec!["true".into()])) {
        Err(SandboxError::InvalidSpec(_)) => Ok(()),
        other => Err(format!(
            "expected InvalidSpec, got {:?}",
            other.map(|r| r.status)
        )),
    }
}

/// A command that leaves a daemon behind (holding stdout) still finishes:
/// when the command ends, PID 1 exits and the kernel kills the rest.
fn leftover_daemon_is_killed_when_the_command_ends() -> TestResult {
    let root = Rootfs::new(true);
    let start = Instant::now();
    let result = run_ok(&root.spec(&["sh", "-c", "setsid sleep 47401 & echo started"]))?;
    check_eq(result.stdout(), vec!["started".to_string()], "output")?;
    check(start.elapsed() < Duration::from_secs(20), || {
        format!("run took {:?}", start.elapsed())
    })?;
    let gone = wait_until(Duration::from_secs(5), || {
        processes_with("sleep 47401").is_empty()
    });
    check(gone, || "the daemon survived the run".into())
}

// ------------------------------------------- chroot view and chroot mode

fn run_chroot(spec: &RunSpec) -> Result<Run, String> {
    let mut lines = Vec::new();
    let status = Sandbox::new()
        .with_mode(SandboxMode::Chroot)
        .run(spec, &mut |line| lines.push(line))
        .map_err(|e| format!("run failed: {e}"))?;
    let result = Run { status, lines };
    if !result.status.success() {
        return Err(format!("{}: {}", result.status, result.all_text()));
    }
    Ok(result)
}

/// `ischroot` compares / with /proc/1/root: package scripts (chroot_view)
/// must see them differ, as under debootstrap; RUN steps, as in Docker, not.
fn package_scripts_see_a_chroot() -> TestResult {
    let root = Rootfs::new(true);
    let script = "[ \"$(stat -L -c %i /)\" = \"$(stat -L -c %i /proc/1/root)\" ] && echo same || echo differ";
    let plain = run_ok(&root.spec(&["sh", "-c", script]))?;
    check_eq(plain.stdout(), vec!["same".to_string()], "RUN view")?;
    let mut spec = root.spec(&["sh", "-c", script]);
    spec.chroot_view = true;
    let scripts = run_ok(&spec)?;
    check_eq(scripts.stdout(), vec!["differ".to_string()], "script view")?;
    // Through PID 1's root the command reaches only its own tree.
    spec.argv = vec!["sh".into(), "-c".into(), "ls /proc/1/root".into()];
    let outer = run_ok(&spec)?;
    check_eq(outer.stdout(), vec!["root".to_string()], "outer root")
}

fn chroot_mode_runs_commands() -> TestResult {
    let root = Rootfs::new(false);
    let mut spec = root.spec(&["sh", "-c", "id -u; pwd; echo err >&2; exit 3"]);
    spec.user = Some((1000, 1000, vec![29]));
    spec.cwd = "/home/app".into();
    let mut lines = Vec::new();
    let status = Sandbox::new()
        .with_mode(SandboxMode::Chroot)
        .run(&spec, &mut |line| lines.push(line))
        .map_err(|e| e.to_string())?;
    let result = Run { status, lines };
    check_eq(result.status, ExitStatus::Exited(3), "status")?;
    check_eq(
        result.stdout(),
        vec!["1000".to_string(), "/home/app".into()],
        "output",
    )?;
    // Nothing the run needed is left in the tree.
    let left: Vec<String> = std::fs::read_dir(root.path())
        .map_err(|e| e.to_string())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    check(!left.iter().any(|n| n == "dev" || n == "proc"), || {
        format!("stubs left: {left:?}")
    })
}

fn chroot_mode_devices_exist_only_during_the_run() -> TestResult {
    let root = Rootfs::new(true);
    let before = snapshot(root.path());
    let result = run_chroot(&root.spec(&[
        "sh",
        "-c",
        "echo gone > /dev/null && head -c 4 /dev/zero | wc -c && ls /dev",
    ]))?;
    check_eq(
        result.stdout(),
        vec![
            "4".to_string(),
            "full".into(),
            "null".into(),
            "random".into(),
            "tty".into(),
            "urandom".into(),
            "zero".into(),
        ],
        "devices",
    )?;
    let changes = diff(&before, &snapshot(root.path()));
    check(changes.is_empty(), || format!("tree changed: {changes:?}"))
}

fn chroot_mode_cannot_mknod_or_chroot_out() -> TestResult {
    let root = Rootfs::new(true);
    let script = "mknod /tmp/mem c 1 1 2>/dev/null && echo made || echo no-mknod; \
                  mkdir -p /tmp/x && chroot /tmp/x /bin/true 2>/dev/null && echo chrooted || echo no-chroot";
    let result = run_chroot(&root.spec(&["sh", "-c", script]))?;
    check_eq(
        result.stdout(),
        vec!["no-mknod".to_string(), "no-chroot".into()],
        "capabilities",
    )
}

fn chroot_mode_kills_leftover_daemons() -> TestResult {
    let root = Rootfs::new(true);
    let result = run_chroot(&root.spec(&["sh", "-c", "setsid sleep 47402 & echo started"]))?;
    check_eq(result.stdout(), vec!["started".to_string()], "output")?;
    let gone = wait_until(Duration::from_secs(5), || {
        processes_with("sleep 47402").is_empty()
    });
    check(gone, || "the daemon survived the run".into())
}

fn chroot_mode_refuses_mounts_and_network_none() -> TestResult {
    let root = Rootfs::new(true);
    let mut spec = root.spec(&["true"]);
    spec.network = Network::None;
    let sandbox = Sandbox::new().with_mode(SandboxMode::Chroot);
    let refused = |spec: &RunSpec| {
        matches!(
            sandbox.run(spec, &mut |_| {}),
            Err(SandboxError::NotUnderChroot { .. })
        )
    };
    check(refused(&spec), || "network none accepted".into())?;
    spec.network = Network::NoneIfIsolated;
    check(!refused(&spec), || "package-script network refused".into())?;
    spec.tmpfs_mounts.push(sandbox::TmpfsMount {
        target: "/mnt".into(),
        size: None,
    });
    check(refused(&spec), || "tmpfs mount accepted".into())
}

fn chroot_mode_suppresses_syncs() -> TestResult {
    let root = Rootfs::new(true);
    // fdatasync on /dev/null fails with EINVAL when the kernel runs it.
    let script = "sync -d /dev/null 2>/dev/null && echo synced || echo real";
    let mut spec = root.spec(&["sh", "-c", script]);
    spec.suppress_sync = true;
    // Here the helper has CAP_SYS_ADMIN; in a container without it, the
    // no_new_privs path runs (scripts/e2e-pod.sh builds with it).
    check_eq(
        run_chroot(&spec)?.stdout(),
        vec!["synced".to_string()],
        "root",
    )
}
