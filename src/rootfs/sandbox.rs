//! Run a command (maintainer script, Dockerfile RUN) inside a rootfs.
//!
//! Namespaces can only be entered safely from a single-threaded process, and
//! the build is multi-threaded, so the work happens in a re-executed helper:
//! [`Sandbox::run`] spawns the helper executable (by default `/proc/self/exe`)
//! with [`HELPER_ARG`] as its first argument; the binary's `main` must call
//! [`helper_main`] when it sees that argument, before anything else.
//!
//! The run specification travels as JSON over an inherited pipe (never argv,
//! which other users can read); the helper reports setup failures and the
//! command's exit status as JSON lines over a second pipe.
//!
//! Process tree: build → helper (host PID namespace; unshares mount, PID, UTS,
//! IPC and optionally network namespaces) → init (PID 1 of the new PID
//! namespace: sets up mounts, pivots into the root, reaps) → command (PID 2).
//! Each link dies with its parent (`PR_SET_PDEATHSIG`), and when PID 1 dies the
//! kernel kills everything left in the namespace, so Ctrl-C on the build
//! leaves no process behind. All mounts live in the private mount namespace
//! and vanish with it.

mod helper;
mod nosync;
mod policy;
mod stubs;
mod users;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use super::isolation;
pub use super::isolation::SandboxMode;
pub use helper::helper_main;
pub use policy::{policy_rc_d_guard, PolicyRcDGuard};
pub use users::{lookup_user, resolve_user, UserIds};

/// The hidden first argument that turns the binary into the sandbox helper.
pub const HELPER_ARG: &str = "__sandbox-exec";

/// `PATH` given to the command when the specification sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Longest output line handed to the callback; longer lines arrive in pieces
/// so a command printing without newlines cannot exhaust memory.
const MAX_LINE: usize = 64 * 1024;

/// Network access of the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// Share the host's network namespace (Docker's default for RUN);
    /// the host's `/etc/resolv.conf` is mounted read-only for the run.
    Host,
    /// A fresh network namespace with only a loopback interface (down).
    None,
    /// No network where the isolation level can give a network namespace;
    /// the host's (without its resolv.conf) under chroot isolation. For
    /// package scripts, which need no network and are not asked to refuse it.
    NoneIfIsolated,
}

/// What the command reads on standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdinMode {
    /// `/dev/null`.
    Null,
    /// The build process's own standard input.
    Inherit,
}

/// A read-only bind mount of a host path into the root for the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the root. A missing mount point is created for
    /// the run and removed afterwards.
    pub target: String,
}

/// An empty tmpfs mounted for the run (Dockerfile `RUN --mount=type=tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsMount {
    /// Absolute path inside the root; a missing mount point is created for
    /// the run and removed afterwards.
    pub target: String,
    /// Size limit in bytes (the kernel's default, half of RAM, when `None`).
    pub size: Option<u64>,
}

/// Everything that describes one sandboxed command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The root filesystem (host path to a directory).
    pub root: PathBuf,
    /// Program and arguments; the program is looked up in the command's
    /// `PATH` inside the root unless it contains a `/`.
    pub argv: Vec<String>,
    /// The complete environment of the command; `PATH` defaults to
    /// [`DEFAULT_PATH`] when absent.
    pub env: Vec<(String, String)>,
    /// Absolute working directory inside the root; it must exist.
    pub cwd: String,
    /// uid, gid and supplementary groups; `None` runs as root (uid 0, gid 0,
    /// no supplementary groups).
    pub user: Option<(u32, u32, Vec<u32>)>,
    pub network: Network,
    pub hostname: String,
    pub stdin: StdinMode,
    pub extra_mounts: Vec<BindMount>,
    /// Read-write bind mounts, mounted after `extra_mounts` (Dockerfile
    /// `RUN --mount=type=cache`): what the command writes there stays in
    /// the host directory, not in the root.
    #[serde(default)]
    pub writable_mounts: Vec<BindMount>,
    /// Empty tmpfs mounts, mounted last.
    #[serde(default)]
    pub tmpfs_mounts: Vec<TmpfsMount>,
    /// fsync, fdatasync, sync, syncfs and sync_file_range succeed without
    /// writing anything (a seccomp filter): for commands whose whole output
    /// is a build tree, where durability is only waiting.
    #[serde(default)]
    pub suppress_sync: bool,
    /// The command sees itself in a chroot, as package scripts do under
    /// debootstrap and mmdebstrap: `ischroot` answers yes (PID 1's root
    /// differs from the command's), so scripts skip restarting init.
    #[serde(default)]
    pub chroot_view: bool,
}

impl RunSpec {
    /// A specification with Docker's defaults: root user, `/` as working
    /// directory, host network, stdin from `/dev/null`, no extra mounts.
    pub fn new(root: impl Into<PathBuf>, argv: Vec<String>) -> Self {
        RunSpec {
            root: root.into(),
            argv,
            env: Vec::new(),
            cwd: "/".to_string(),
            user: None,
            network: Network::Host,
            hostname: "rootstrap".to_string(),
            stdin: StdinMode::Null,
            extra_mounts: Vec::new(),
            writable_mounts: Vec::new(),
            tmpfs_mounts: Vec::new(),
            suppress_sync: false,
            chroot_view: false,
        }
    }
}

/// Which stream an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line (without its trailing newline) written by the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: Stream,
    pub text: String,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Normal exit with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The shell convention: the exit code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox run specification: {0}")]
    InvalidSpec(String),
    #[error("cannot start sandbox helper {helper}: {source}")]
    Spawn {
        helper: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sandbox helper communication ({what}): {source}")]
    HelperIo {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "sandbox helper {helper} ended without a status ({status}); is it wired to helper_main()?"
    )]
    HelperDied {
        helper: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("sandbox setup in {root} failed: {message}")]
    Setup { root: PathBuf, message: String },
    #[error("cannot execute {program:?} in {root}: {message}")]
    Exec {
        root: PathBuf,
        program: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Rootfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("user {spec:?}: no such user in {file}")]
    UnknownUser { spec: String, file: PathBuf },
    #[error("user {spec:?}: no such group in {file}")]
    UnknownGroup { spec: String, file: PathBuf },
    #[error("{file} line {line}: {message}")]
    Malformed {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("user {spec:?}: {message}")]
    BadUserSpec { spec: String, message: String },
    #[error("{root} is on a file system mounted nodev, where the device nodes chroot isolation makes in /dev cannot be opened; put the tree elsewhere (--work-dir, or TMPDIR)")]
    NodevUnderChroot { root: PathBuf },
    #[error("{what} needs {needs}, which isolation chroot does not have (use a host or container where rootstrap may create namespaces, or drop it)")]
    NotUnderChroot { what: String, needs: &'static str },
}

/// What the library sends to the helper.
#[derive(Debug, Serialize, Deserialize)]
struct HelperRequest {
    spec: RunSpec,
    mode: SandboxMode,
    /// The helper exits at once if its parent is no longer this process
    /// (the build died before the helper armed its death signal).
    parent_pid: i32,
}

/// What the helper side reports back, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
enum Report {
    SetupFailed(String),
    ExecFailed { program: String, message: String },
    Exited(i32),
    Signaled(i32),
}

/// Runs commands inside a root filesystem.
#[derive(Debug, Clone)]
pub struct Sandbox {
    helper: PathBuf,
    mode: SandboxMode,
    /// Variables every command gets unless its spec sets them.
    default_env: Vec<(String, String)>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

enum OutputMode<'a> {
    Capture(&'a mut dyn FnMut(OutputLine)),
    Inherit,
}

impl Sandbox {
    /// A sandbox whose helper is this very executable.
    /// A sandbox whose helper is this very executable, isolating as the
    /// process's selected level does ([`isolation::sandbox_mode`]).
    pub fn new() -> Self {
        Sandbox {
            helper: PathBuf::from("/proc/self/exe"),
            mode: isolation::sandbox_mode(),
            default_env: Vec::new(),
        }
    }

    /// A sandbox using another executable whose `main` calls
    /// [`helper_main`] on [`HELPER_ARG`].
    pub fn with_helper(path: impl Into<PathBuf>) -> Self {
        Sandbox {
            helper: path.into(),
            mode: isolation::sandbox_mode(),
            default_env: Vec::new(),
        }
    }

    /// The same sandbox isolating with `mode` instead.
    pub fn with_mode(mut self, mode: SandboxMode) -> Self {
        self.mode = mode;
        self
    }

    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// The same sandbox giving every command `vars` unless its spec sets
    /// them (the emulator's settings for a foreign tree's programs).
    pub fn with_default_env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.default_env.extend(vars);
        self
    }

    /// Runs the command, handing each line of its stdout and stderr to
    /// `output` (on the calling thread, in arrival order).
    ///
    /// The calling thread must stay alive until this returns: the helper's
    /// death signal is tied to it.
    pub fn run(
        &self,
        spec: &RunSpec,
        output: &mut dyn FnMut(OutputLine),
    ) -> Result<ExitStatus, SandboxError> {
        self.run_with(spec, OutputMode::Capture(output))
    }

    /// Runs the command with stdout and stderr inherited from the build.
    pub fn run_inherit(&self, spec: &RunSpec) -> Result<ExitStatus, SandboxError> {
        self.run_with(spec, OutputMode::Inherit)
    }

    fn run_with(&self, spec: &RunSpec, mode: OutputMode<'_>) -> Result<ExitStatus, SandboxError> {
        let spec = self.prepare(spec)?;
        // Mount points the run needs but the rootfs lacks; removed (without
        // following anything the command may have planted) when dropped.
        let stubs = stubs::create_mount_points(&spec, self.mode)?;
        let result = self.spawn_and_wait(&spec, mode);
        let cleanup = stubs.remove();
        let status = result?;
        cleanup?;
        Ok(status)
    }

    /// Starts `spec`'s command (a shell, say) to be fed on its standard
    /// input, for a series of short steps in one root without a sandbox
    /// start for each: see [`Session`]. None where the run would need
    /// mount points the root lacks (or, under chroot isolation, the device
    /// nodes that stand in for mounts): those stay in the root while a
    /// session is open, where the caller may be writing, so such a root
    /// gets one [`run`](Self::run) per step instead. `spec.stdin` is
    /// ignored.
    pub fn session(&self, spec: &RunSpec) -> Result<Option<Session>, SandboxError> {
        if self.mode == SandboxMode::Chroot {
            return Ok(None);
        }
        let spec = self.prepare(spec)?;
        if stubs::needs_mount_points(&spec, self.mode)? {
            return Ok(None);
        }
        let (mut child, status_read) = self.spawn(&spec, StdinPipe::Piped, true)?;
        let stdin = child.get().stdin.take();
        let lines = OutputLines::start(child.get());
        Ok(Some(Session {
            child,
            stdin,
            lines,
            status_read,
            spec,
            helper: self.helper.clone(),
        }))
    }

    /// The checked specification with the canonical root and the default
    /// environment.
    fn prepare(&self, spec: &RunSpec) -> Result<RunSpec, SandboxError> {
        validate(spec)?;
        if self.mode == SandboxMode::Chroot {
            check_chroot_spec(spec)?;
        }
        let root = std::fs::canonicalize(&spec.root).map_err(|source| SandboxError::Rootfs {
            path: spec.root.clone(),
            source,
        })?;
        if root == Path::new("/") {
            return Err(SandboxError::InvalidSpec(
                "the host's / cannot be a sandbox root".into(),
            ));
        }
        if self.mode == SandboxMode::Chroot && is_nodev(&root) {
            return Err(SandboxError::NodevUnderChroot { root });
        }
        let mut spec = RunSpec {
            root: root.clone(),
            ..spec.clone()
        };
        for (k, v) in &self.default_env {
            if !spec.env.iter().any(|(set, _)| set == k) {
                spec.env.push((k.clone(), v.clone()));
            }
        }
        Ok(spec)
    }

    fn spawn_and_wait(
        &self,
        spec: &RunSpec,
        mode: OutputMode<'_>,
    ) -> Result<ExitStatus, SandboxError> {
        let stdin = match spec.stdin {
            StdinMode::Null => StdinPipe::Null,
            StdinMode::Inherit => StdinPipe::Inherit,
        };
        let capture = matches!(mode, OutputMode::Capture(_));
        let (mut child, status_read) = self.spawn(spec, stdin, capture)?;
        if let OutputMode::Capture(output) = mode {
            forward_output(child.get(), output)?;
        }
        finish(child, status_read, spec, &self.helper)
    }

    /// Starts the helper and sends it the specification.
    fn spawn(
        &self,
        spec: &RunSpec,
        stdin: StdinPipe,
        capture: bool,
    ) -> Result<(KillOnDrop, OwnedFd), SandboxError> {
        let pipe = |what| {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
                SandboxError::HelperIo {
                    what,
                    source: e.into(),
                }
            })
        };
        let (spec_read, spec_write) = pipe("create spec pipe")?;
        let (status_read, status_write) = pipe("create status pipe")?;

        let mut command = self.helper_command(&spec_read, &status_write, stdin, capture);
        let child = command.spawn().map_err(|source| SandboxError::Spawn {
            helper: self.helper.clone(),
            source,
        })?;
        let child = KillOnDrop(Some(child));
        drop(spec_read);
        drop(status_write);

        let request = HelperRequest {
            spec: spec.clone(),
            mode: self.mode,
            parent_pid: rustix::process::getpid().as_raw_nonzero().get(),
        };
        match send_request(spec_write, &request) {
            // A helper that exits without reading (not wired to
            // helper_main, or dead at once) is diagnosed from its status.
            Err(SandboxError::HelperIo { source, .. })
                if source.kind() == io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
        Ok((child, status_read))
    }

    fn helper_command(
        &self,
        spec_read: &OwnedFd,
        status_write: &OwnedFd,
        stdin: StdinPipe,
        capture: bool,
    ) -> Command {
        let fds = [spec_read.as_raw_fd(), status_write.as_raw_fd()];
        let mut command = Command::new(&self.helper);
        command
            .arg(HELPER_ARG)
            .arg(fds[0].to_string())
            .arg(fds[1].to_string())
            .env_clear()
            .stdin(match stdin {
                StdinPipe::Null => Stdio::null(),
                StdinPipe::Inherit => Stdio::inherit(),
                StdinPipe::Piped => Stdio::piped(),
            });
        match capture {
            true => command.stdout(Stdio::piped()).stderr(Stdio::piped()),
            false => command.stdout(Stdio::inherit()).stderr(Stdio::inherit()),
        };
        // SAFETY: the closure only calls fcntl, which is async-signal-safe,
        // on descriptors that stay open in the parent until after spawn.
        unsafe {
            command.pre_exec(move || {
                for fd in fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        command
    }
}

/// Where the helper's (and so the command's) standard input comes from.
#[derive(Debug, Clone, Copy)]
enum StdinPipe {
    Null,
    Inherit,
    /// A pipe the library writes: a [`Session`].
    Piped,
}

/// Reads the helper's reports once its output is done, waits for it, and
/// says how the command ended.
fn finish(
    mut child: KillOnDrop,
    status_read: OwnedFd,
    spec: &RunSpec,
    helper: &Path,
) -> Result<ExitStatus, SandboxError> {
    let reports = read_reports(status_read)?;
    let helper_status = child
        .take()
        .wait()
        .map_err(|source| SandboxError::HelperIo {
            what: "wait for helper",
            source,
        })?;
    interpret_reports(&reports, spec, helper, helper_status)
}

/// A command kept running in the sandbox and fed on its standard input
/// ([`Sandbox::session`]): one sandbox start for many short steps, such as
/// a shell running one package script after another while the packages
/// are installed between them. The root is the same directory the caller
/// writes to, so what it writes between steps is visible inside. Output
/// from both streams arrives in one queue, [`Session::next_line`]; a
/// caller that needs to know where a step's output ends has the command
/// print a marker. Dropping a session kills it and everything it started.
/// As with [`Sandbox::run`], the thread that starts a session must outlive
/// it: the helper's death signal is tied to that thread.
pub struct Session {
    child: KillOnDrop,
    stdin: Option<std::process::ChildStdin>,
    lines: OutputLines,
    status_read: OwnedFd,
    spec: RunSpec,
    helper: PathBuf,
}

impl Session {
    /// Writes `input` to the command's standard input. A command that has
    /// ended makes this fail with a broken pipe; [`finish`](Self::finish)
    /// then tells how it ended.
    pub fn send(&mut self, input: &[u8]) -> Result<(), SandboxError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| SandboxError::HelperIo {
            what: "write to the session",
            source: io::ErrorKind::BrokenPipe.into(),
        })?;
        stdin
            .write_all(input)
            .and_then(|()| stdin.flush())
            .map_err(|source| SandboxError::HelperIo {
                what: "write to the session",
                source,
            })
    }

    /// The next line the command printed, waiting for it; None once the
    /// command and everything it started have closed their output.
    pub fn next_line(&mut self) -> Option<OutputLine> {
        self.lines.next()
    }

    /// Closes the command's input, hands whatever it still prints to
    /// `output`, and waits for it to end.
    pub fn finish(self, output: &mut dyn FnMut(OutputLine)) -> Result<ExitStatus, SandboxError> {
        let Session {
            child,
            stdin,
            lines,
            status_read,
            spec,
            helper,
        } = self;
        drop(stdin);
        lines.finish(output)?;
        finish(child, status_read, &spec, &helper)
    }
}

fn send_request(spec_write: OwnedFd, request: &HelperRequest) -> Result<(), SandboxError> {
    let json = serde_json::to_vec(request).map_err(|e| SandboxError::HelperIo {
        what: "encode run specification",
        source: io::Error::other(e),
    })?;
    let mut file = File::from(spec_write);
    file.write_all(&json)
        .map_err(|source| SandboxError::HelperIo {
            what: "send run specification",
            source,
        })
}

/// Reads both output pipes on helper threads and calls `output` on this one,
/// so the callback need not be `Send`.
fn forward_output(
    child: &mut Child,
    output: &mut dyn FnMut(OutputLine),
) -> Result<(), SandboxError> {
    OutputLines::start(child).finish(output)
}

/// The command's stdout and stderr, each read on a thread of its own and
/// queued, line by line, in the order they arrive, so the caller (and its
/// callback) need not be `Send`.
struct OutputLines {
    queue: mpsc::Receiver<io::Result<OutputLine>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// The first read error, reported by `finish`.
    error: Option<io::Error>,
}

impl OutputLines {
    fn start(child: &mut Child) -> Self {
        let (tx, queue) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(spawn_line_reader(stdout, Stream::Stdout, tx.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(spawn_line_reader(stderr, Stream::Stderr, tx));
        }
        OutputLines {
            queue,
            readers,
            error: None,
        }
    }

    /// The next line, waiting for it; None once both pipes are closed.
    fn next(&mut self) -> Option<OutputLine> {
        loop {
            match self.queue.recv().ok()? {
                Ok(line) => return Some(line),
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
        }
    }

    /// Hands the remaining lines to `output` until both pipes close.
    fn finish(mut self, output: &mut dyn FnMut(OutputLine)) -> Result<(), SandboxError> {
        while let Some(line) = self.next() {
            output(line);
        }
        for reader in self.readers.drain(..) {
            // A reader thread only ends by returning; a panic there is a bug.
            let _ = reader.join();
        }
        match self.error {
            Some(source) => Err(SandboxError::HelperIo {
                what: "read command output",
                source,
            }),
            None => Ok(()),
        }
    }
}

fn spawn_line_reader(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    tx: mpsc::Sender<io::Result<OutputLine>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let result = split_lines(BufReader::new(pipe), MAX_LINE, &mut |bytes| {
            let text = String::from_utf8_lossy(bytes).into_owned();
            // The receiver only goes away if the caller stopped listening.
            let _ = tx.send(Ok(OutputLine { stream, text }));
        });
        if let Err(e) = result {
            let _ = tx.send(Err(e));
        }
    })
}

/// Splits a byte stream into lines without the `\n`, cutting lines longer
/// than `max` into pieces of at most `max` bytes.
fn split_lines(
    mut reader: impl BufRead,
    max: usize,
    emit: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !line.is_empty() {
                emit(&line);
            }
            return Ok(());
        }
        let room = max - line.len();
        let window = &buf[..buf.len().min(room)];
        let consumed = match window.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                line.extend_from_slice(&window[..newline]);
                emit(&line);
                line.clear();
                newline + 1
            }
            None => {
                line.extend_from_slice(window);
                if line.len() == max {
                    emit(&line);
                    line.clear();
                }
                window.len()
            }
        };
        reader.consume(consumed);
    }
}

fn read_reports(status_read: OwnedFd) -> Result<Vec<Report>, SandboxError> {
    let mut text = String::new();
    File::from(status_read)
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|source| SandboxError::HelperIo {
            what: "read helper status",
            source,
        })?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// The first failure wins: a setup error explains the 127 that follows it.
fn interpret_reports(
    reports: &[Report],
    spec: &RunSpec,
    helper: &Path,
    helper_status: std::process::ExitStatus,
) -> Result<ExitStatus, SandboxError> {
    for report in reports {
        match report {
            Report::SetupFailed(message) => {
                return Err(SandboxError::Setup {
                    root: spec.root.clone(),
                    message: message.clone(),
                })
            }
            Report::ExecFailed { program, message } => {
                return Err(SandboxError::Exec {
                    root: spec.root.clone(),
                    program: program.clone(),
                    message: message.clone(),
                })
            }
            Report::Exited(_) | Report::Signaled(_) => {}
        }
    }
    for report in reports {
        match *report {
            Report::Exited(code) => return Ok(ExitStatus::Exited(code)),
            Report::Signaled(signal) => return Ok(ExitStatus::Signaled(signal)),
            _ => {}
        }
    }
    Err(SandboxError::HelperDied {
        helper: helper.to_path_buf(),
        status: helper_status,
    })
}

fn is_nodev(path: &Path) -> bool {
    rustix::fs::statvfs(path).is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::NODEV))
}

/// What chroot isolation cannot give is refused, never silently dropped.
fn check_chroot_spec(spec: &RunSpec) -> Result<(), SandboxError> {
    let refuse = |what: String, needs| Err(SandboxError::NotUnderChroot { what, needs });
    if spec.network == Network::None {
        return refuse("network none".into(), "a network namespace");
    }
    let mounts = spec
        .extra_mounts
        .iter()
        .chain(&spec.writable_mounts)
        .map(|m| &m.target)
        .chain(spec.tmpfs_mounts.iter().map(|t| &t.target));
    if let Some(target) = mounts.into_iter().next() {
        return refuse(format!("a mount at {target}"), "the right to mount");
    }
    Ok(())
}

fn validate(spec: &RunSpec) -> Result<(), SandboxError> {
    let invalid = |msg: String| Err(SandboxError::InvalidSpec(msg));
    if spec.argv.is_empty() {
        return invalid("empty command".into());
    }
    if !spec.root.is_absolute() {
        return invalid(format!("root {} is not absolute", spec.root.display()));
    }
    let mut strings: Vec<&str> = spec.argv.iter().map(String::as_str).collect();
    strings.push(&spec.cwd);
    strings.push(&spec.hostname);
    for (key, value) in &spec.env {
        if key.is_empty() || key.contains('=') {
            return invalid(format!("environment variable name {key:?}"));
        }
        strings.push(key);
        strings.push(value);
    }
    if let Some(bad) = strings.iter().find(|s| s.contains('\0')) {
        return invalid(format!("NUL byte in {bad:?}"));
    }
    if !spec.cwd.starts_with('/') {
        return invalid(format!("working directory {:?} is not absolute", spec.cwd));
    }
    if spec.hostname.is_empty() || spec.hostname.len() > 64 {
        return invalid(format!("hostname {:?} must be 1-64 bytes", spec.hostname));
    }
    let tmpfs = spec.tmpfs_mounts.iter().map(|t| (&t.target, None));
    let binds = spec
        .extra_mounts
        .iter()
        .chain(&spec.writable_mounts)
        .map(|m| (&m.target, Some(&m.source)));
    for (target, source) in binds.chain(tmpfs) {
        if !target.starts_with('/') || target.split('/').any(|c| c == "..") || target.contains('\0')
        {
            return invalid(format!(
                "bind mount target {target:?} must be absolute without '..'"
            ));
        }
        if let Some(source) = source.filter(|s| !s.is_absolute()) {
            return invalid(format!(
                "bind mount source {} is not absolute",
                source.display()
            ));
        }
    }
    Ok(())
}

/// Kills the helper (and with it, through the death signals, everything in
/// the sandbox) if the run is abandoned half-way.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().expect("child taken only once, at the end")
    }

    fn take(&mut self) -> Child {
        self.0.take().expect("child taken only once, at the end")
    }
}

impl Drop for KillOnDrop {
    /// SIGTERM first: under chroot isolation the helper then kills what
    /// the command started (no PID namespace does it); SIGKILL if it has
    /// not gone within a second.
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            for _ in 0..100 {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        split_lines(input, max, &mut |l| out.push(l.to_vec())).unwrap();
        out
    }

    #[test]
    fn splits_lines_and_keeps_a_final_partial_line() {
        assert_eq!(
            lines(b"a\nbb\n\nc", 100),
            vec![b"a".to_vec(), b"bb".to_vec(), vec![], b"c".to_vec()]
        );
    }

    #[test]
    fn cuts_overlong_lines() {
        assert_eq!(
            lines(b"abcdefg\nh", 3),
            vec![
                b"abc".to_vec(),
                b"def".to_vec(),
                b"g".to_vec(),
                b"h".to_vec()
            ]
        );
    }

    #[test]
    fn exit_status_codes_follow_the_shell_convention() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Signaled(15).success());
    }

    #[test]
    fn rejects_bad_specs() {
        let ok = RunSpec::new("/tmp", vec!["true".into()]);
        assert!(validate(&ok).is_ok());
        type Mutation = Box<dyn Fn(&mut RunSpec)>;
        let cases: Vec<Mutation> = vec![
            Box::new(|s| s.argv.clear()),
            Box::new(|s| s.cwd = "relative".into()),
            Box::new(|s| s.root = "rel".into()),
            Box::new(|s| s.argv.push("a\0b".into())),
            Box::new(|s| s.env.push(("A=B".into(), "x".into()))),
            Box::new(|s| s.hostname = "h".repeat(65)),
            Box::new(|s| {
                s.extra_mounts.push(BindMount {
                    source: "/tmp".into(),
                    target: "/a/../../b".into(),
                })
            }),
            Box::new(|s| {
                s.writable_mounts.push(BindMount {
                    source: "relative".into(),
                    target: "/c".into(),
                })
            }),
            Box::new(|s| {
                s.tmpfs_mounts.push(TmpfsMount {
                    target: "t".into(),
                    size: None,
                })
            }),
        ];
        for (i, mutate) in cases.iter().enumerate() {
            let mut spec = ok.clone();
            mutate(&mut spec);
            assert!(
                matches!(validate(&spec), Err(SandboxError::InvalidSpec(_))),
                "case {i} accepted"
            );
        }
    }

    #[test]
    fn first_failure_report_wins() {
        let spec = RunSpec::new("/r", vec!["x".into()]);
        let reports = vec![
            Report::ExecFailed {
                program: "x".into(),
                message: "not found".into(),
            },
            Report::Exited(127),
        ];
        let status = std::process::ExitStatus::default();
        let err = interpret_reports(&reports, &spec, Path::new("/h"), status).unwrap_err();
        assert!(matches!(err, SandboxError::Exec { ref program, .. } if program == "x"));
        let ok = interpret_reports(&[Report::Signaled(9)], &spec, Path::new("/h"), status);
        assert_eq!(ok.unwrap(), ExitStatus::Signaled(9));
        assert!(matches!(
            interpret_reports(&[], &spec, Path::new("/h"), status),
            Err(SandboxError::HelperDied { .. })
        ));
    }
}
