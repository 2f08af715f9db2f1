//! The helper side of the sandbox: runs in a freshly executed, single-threaded
//! process, enters new namespaces, builds the mounts, and executes the command.
//!
//! Nothing here ever executes or loads a file from the rootfs except the
//! command itself, after `pivot_root` and with capabilities bounded.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{HelperRequest, Network, Report, RunSpec, SandboxMode, DEFAULT_PATH};

/// Largest run specification the helper accepts.
const MAX_SPEC: u64 = 16 << 20;

/// Docker's default capability set: a RUN step gets exactly these, so a
/// command cannot mount, load modules, or reach devices beyond /dev's.
const DEFAULT_CAPS: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    13, // NET_RAW
    18, // SYS_CHROOT
    27, // MKNOD
    29, // AUDIT_WRITE
    31, // SETFCAP
];

/// Host device nodes bind-mounted into the sandbox's /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Devices some hosts (minimal CI containers) lack; skipped there.
const OPTIONAL_DEVICES: &[&str] = &["tty"];

const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

type SetupResult<T> = Result<T, String>;

/// Entry point of the helper process; see the module documentation of
/// `rootfs::sandbox`. Never returns.
pub fn helper_main() -> ! {
    let args: Vec<String> = std::env::args().collect();
    let fds = (
        args.get(2).and_then(|a| a.parse::<RawFd>().ok()),
        args.get(3).and_then(|a| a.parse::<RawFd>().ok()),
    );
    let (Some(spec_fd), Some(status_fd)) = fds else {
        eprintln!(
            "rootstrap: {} is internal to the sandbox",
            super::HELPER_ARG
        );
        std::process::exit(125);
    };
    let status = StatusPipe(status_fd);
    match helper_process(spec_fd, &status) {
        Ok(code) => exit_now(code),
        Err(message) => {
            status.send(&Report::SetupFailed(message));
            exit_now(125)
        }
    }
}

/// The report channel back to the library; written with plain `write(2)`
/// (each report is one short line, so writes are atomic).
struct StatusPipe(RawFd);

impl StatusPipe {
    fn send(&self, report: &Report) {
        let Ok(mut line) = serde_json::to_vec(report) else {
            return;
        };
        line.push(b'\n');
        let mut rest = &line[..];
        while !rest.is_empty() {
            // SAFETY: writing an owned buffer to a descriptor we were given.
            let n = unsafe { libc::write(self.0, rest.as_ptr().cast(), rest.len()) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                return;
            }
            rest = &rest[n as usize..];
        }
    }
}

fn helper_process(spec_fd: RawFd, status: &StatusPipe) -> SetupResult<i32> {
    set_death_signal()?;
    set_cloexec(status.0)?;
    let request = read_request(spec_fd)?;
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != request.parent_pid {
        return Err("the build process exited before the sandbox started".into());
    }
    mark_all_fds_cloexec()?;
    if request.mode == SandboxMode::Chroot {
        return chroot_helper(&request.spec, status, request.parent_pid);
    }
    unshare_namespaces(request.spec.network)?;
    // Nothing mounted from here on may propagate back to the host.
    // SAFETY: mount(2) with a constant target and NULL source/type/data.
    sys("make mounts private", unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })?;
    let (alive_read, alive_write) = pipe()?;
    match fork()? {
        0 => {
            drop(alive_write);
            init_process(&request.spec, status, alive_read)
        }
        init => {
            drop(alive_read);
            let wait_status = wait_for(init)?;
            // Keep the pipe open until init is gone: its closing tells a
            // racing init that the helper died.
            drop(alive_write);
            Ok(shell_code(wait_status))
        }
    }
}

/// Docker's default capabilities less CAP_MKNOD and CAP_SYS_CHROOT: under
/// chroot isolation nothing mounts /dev nodev and no pivot_root hides the
/// host, so a command must neither make device nodes nor chroot its way
/// back out.
const CHROOT_CAPS: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 29, 31];

/// Chroot isolation (no namespace rights): the command is forked into
/// chroot(2); this process stays outside as a subreaper, so whatever the
/// command leaves running is killed when it ends (there is no PID
/// namespace to do it).
fn chroot_helper(spec: &RunSpec, status: &StatusPipe, parent: i32) -> SetupResult<i32> {
    // Same uid, no PID namespace: the command must not ptrace us.
    // SAFETY: prctl with integer arguments.
    sys("set non-dumpable", unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0)
    })?;
    // SAFETY: prctl with integer arguments.
    sys("become a subreaper", unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    })?;
    let root = path_cstring(&spec.root)?;
    let root_fd = open_path(&root, libc::O_PATH | libc::O_DIRECTORY)?;
    // No PID namespace dies with the build here: when the build goes, this
    // helper must live long enough to kill what the command started, so
    // its parent's death is a catchable SIGTERM rather than SIGKILL.
    catch_termination()?;
    // SAFETY: prctl with integer arguments.
    sys("set death signal", unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err("the build process exited before the sandbox started".into());
    }
    let command = match fork()? {
        0 => chroot_command(spec, status, &root_fd),
        pid => pid,
    };
    drop(root_fd);
    // The flag is checked before every wait, and the wait is a short sleep
    // that SIGTERM, SIGINT and SIGCHLD interrupt: a termination arriving
    // just before a blocking waitpid would otherwise be missed for good,
    // leaving this helper and the command running after the build died.
    let wait_status = loop {
        if TERMINATED.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: killing our own child.
            unsafe { libc::kill(command, libc::SIGKILL) };
            kill_leftovers();
            exit_now(128 + libc::SIGTERM);
        }
        let mut wait_status = 0;
        // SAFETY: waiting for our own child, without blocking.
        let waited = unsafe { libc::waitpid(command, &mut wait_status, libc::WNOHANG) };
        if waited == command {
            break wait_status;
        }
        if waited < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(format!("waitpid: {}", io::Error::last_os_error()));
        }
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        // SAFETY: nanosleep with a valid timespec; an interruption is what
        // the loop waits for.
        unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
    };
    kill_leftovers();
    let report = if libc::WIFSIGNALED(wait_status) {
        Report::Signaled(libc::WTERMSIG(wait_status))
    } else {
        Report::Exited(libc::WEXITSTATUS(wait_status))
    };
    status.send(&report);
    Ok(shell_code(wait_status))
}

fn chroot_command(spec: &RunSpec, status: &StatusPipe, root_fd: &OwnedFd) -> ! {
    let setup = set_death_signal()
        // SAFETY: fchdir to a directory descriptor, chroot and chdir to
        // constant paths.
        .and_then(|()| sys("enter root", unsafe { libc::fchdir(root_fd.as_raw_fd()) }))
        .and_then(|()| sys("chroot", unsafe { libc::chroot(c".".as_ptr()) }))
        .and_then(|()| sys("chdir /", unsafe { libc::chdir(c"/".as_ptr()) }))
        .and_then(|()| reset_signals())
        .and_then(|()| close_fds_except(status.0))
        .and_then(|()| enter_cwd(&spec.cwd))
        .and_then(|()| match spec.suppress_sync {
            true => suppress_sync_without_admin(spec),
            false => Ok(()),
        })
        .and_then(|()| bound_capabilities(CHROOT_CAPS))
        .and_then(|()| switch_user(spec.user.as_ref()))
        .and_then(|()| set_death_signal());
    exec_after(setup, spec, status)
}

static TERMINATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn note_termination(_: libc::c_int) {
    TERMINATED.store(true, std::sync::atomic::Ordering::SeqCst);
}

extern "C" fn note_child(_: libc::c_int) {}

/// SIGTERM and SIGINT set a flag, and they and SIGCHLD (a handler doing
/// nothing) interrupt the helper's sleep between waits (no SA_RESTART).
fn catch_termination() -> SetupResult<()> {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
        let handler: extern "C" fn(libc::c_int) = if signal == libc::SIGCHLD {
            note_child
        } else {
            note_termination
        };
        // SAFETY: a zeroed sigaction with a handler that only stores to an
        // atomic (or does nothing), which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as usize;
            libc::sigemptyset(&mut action.sa_mask);
            sys(
                "install a signal handler",
                libc::sigaction(signal, &action, std::ptr::null_mut()),
            )?;
        }
    }
    Ok(())
}

/// Without CAP_SYS_ADMIN a seccomp filter needs `no_new_privs`, which
/// would also stop set-uid programs: taken only for a root command, which
/// set-uid programs cannot raise anyway. Others keep real syncs.
fn suppress_sync_without_admin(spec: &RunSpec) -> SetupResult<()> {
    if super::nosync::install().is_ok() {
        return Ok(());
    }
    let runs_as_root = spec.user.as_ref().is_none_or(|(uid, _, _)| *uid == 0);
    if !runs_as_root {
        return Ok(());
    }
    // SAFETY: prctl with integer arguments.
    sys("set no_new_privs", unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    })?;
    super::nosync::install()
}

/// Kills and reaps every process left under this subreaper; bounded, so a
/// fork bomb cannot keep the helper here forever.
fn kill_leftovers() {
    let me = std::process::id();
    for _ in 0..1000 {
        loop {
            let mut st = 0;
            // SAFETY: reaping our own children without blocking.
            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if r > 0 {
                continue;
            }
            if r < 0 {
                return; // ECHILD: nothing left
            }
            break;
        }
        for pid in children_of(me) {
            // SAFETY: signalling a child of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The processes whose parent is `parent`, from /proc/PID/stat.
fn children_of(parent: u32) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parent_pid(&stat))
                == Some(parent)
        })
        .collect()
}

/// Field 4 of /proc/PID/stat, after the command name (which may hold
/// spaces and parentheses, hence the last ')').
fn parent_pid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn read_request(spec_fd: RawFd) -> SetupResult<HelperRequest> {
    // SAFETY: the library passed us this descriptor and nothing else owns it.
    let file = unsafe { File::from_raw_fd(spec_fd) };
    let mut json = Vec::new();
    file.take(MAX_SPEC)
        .read_to_end(&mut json)
        .map_err(|e| format!("read run specification: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("decode run specification: {e}"))
}

fn unshare_namespaces(network: Network) -> SetupResult<()> {
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if matches!(network, Network::None | Network::NoneIfIsolated) {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: the helper is single-threaded (it was just executed).
    sys("unshare namespaces", unsafe { libc::unshare(flags) })
}

/// PID 1 of the new PID namespace: sets up the root, then runs the command
/// as its child and reaps everything until the command ends. When it exits,
/// the kernel kills whatever the command left running.
fn init_process(spec: &RunSpec, status: &StatusPipe, alive: OwnedFd) -> ! {
    let setup = set_death_signal()
        .and_then(|()| exit_if_parent_gone(&alive))
        .and_then(|()| setup_root(spec))
        // Installed while init still has CAP_SYS_ADMIN; the command inherits it.
        .and_then(|()| match spec.suppress_sync {
            true => super::nosync::install(),
            false => Ok(()),
        })
        // Init keeps no more than the command gets: nothing to misuse, and
        // the command (same uid, no more capabilities) may then look at
        // /proc/1/root, which is how `ischroot` tells a chroot.
        .and_then(|()| bound_capabilities(DEFAULT_CAPS))
        .and_then(|()| keep_only(DEFAULT_CAPS));
    drop(alive);
    if let Err(message) = setup {
        status.send(&Report::SetupFailed(message));
        exit_now(125);
    }
    let command = match fork() {
        Ok(0) => command_process(spec, status),
        Ok(pid) => pid,
        Err(message) => {
            status.send(&Report::SetupFailed(message));
            exit_now(125);
        }
    };
    loop {
        let mut wait_status = 0;
        // SAFETY: plain waitpid on any child.
        let pid = unsafe { libc::waitpid(-1, &mut wait_status, 0) };
        if pid == command {
            let report = if libc::WIFSIGNALED(wait_status) {
                Report::Signaled(libc::WTERMSIG(wait_status))
            } else {
                Report::Exited(libc::WEXITSTATUS(wait_status))
            };
            status.send(&report);
            exit_now(shell_code(wait_status));
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            status.send(&Report::SetupFailed("lost track of the command".into()));
            exit_now(125);
        }
    }
}

fn exit_if_parent_gone(alive: &OwnedFd) -> SetupResult<()> {
    let mut poll = libc::pollfd {
        fd: alive.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    if n > 0 && poll.revents & (libc::POLLHUP | libc::POLLIN) != 0 {
        exit_now(125);
    }
    Ok(())
}

/// Builds the mount tree inside the private namespace and pivots into it.
fn setup_root(spec: &RunSpec) -> SetupResult<()> {
    let root = path_cstring(&spec.root)?;
    mount(
        &root,
        &root,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
        "bind root",
    )?;
    // Device nodes the command creates in the rootfs stay inert: only the
    // nodes bind-mounted into /dev below can be opened.
    let keep = kept_mount_flags(&root)?;
    mount_remount(&root, keep | libc::MS_NODEV, "remount root nodev")?;
    let root_fd = open_path(&root, libc::O_PATH | libc::O_DIRECTORY)?;

    let proc_dir = open_mount_point_dir(&root_fd, "proc")?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(
        c"proc",
        &fd_path(&proc_dir),
        Some(c"proc"),
        flags,
        None,
        "mount /proc",
    )?;
    setup_dev(&root_fd)?;
    if spec.network == Network::Host {
        mount_resolv_conf(&root_fd)?;
    }
    for bind in &spec.extra_mounts {
        let source = path_cstring(&bind.source)?;
        bind_read_only(&root_fd, &source, &bind.target)?;
    }
    for bind in &spec.writable_mounts {
        let source = path_cstring(&bind.source)?;
        bind_writable(&root_fd, &source, &bind.target)?;
    }
    for tmpfs in &spec.tmpfs_mounts {
        mount_tmpfs(&root_fd, tmpfs)?;
    }
    let hostname = spec.hostname.as_bytes();
    // SAFETY: pointer and length of a live buffer.
    sys("set hostname", unsafe {
        libc::sethostname(hostname.as_ptr().cast(), hostname.len())
    })?;
    if spec.chroot_view {
        let parent = path_cstring(spec.root.parent().unwrap_or(Path::new("/")))?;
        let outer = outer_root(&parent, &root_fd)?;
        return enter_root(&outer);
    }
    enter_root(&root_fd)
}

/// Where the command's root is mounted in the chroot view: init (PID 1)
/// stays in a small tmpfs holding only the rootfs at [`INNER_ROOT`], and
/// the command chroots into it, so PID 1's root differs from the
/// command's, as when debootstrap runs scripts from the host. Through
/// `/proc/1/root` the command reaches only that tmpfs and its own root.
const INNER_ROOT: &CStr = c"/root";

/// Stacks the tmpfs on the rootfs's parent directory (in this private
/// mount namespace only) and binds the prepared tree, held by `root_fd`,
/// with its mounts, inside it. Not on the rootfs itself: a mount stacked
/// on the prepared bind would be what `root_fd`'s path leads to.
fn outer_root(parent: &CStr, root_fd: &OwnedFd) -> SetupResult<OwnedFd> {
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(
        c"rootstrap",
        parent,
        Some(c"tmpfs"),
        flags,
        Some(c"mode=755,size=64k"),
        "mount the outer root",
    )?;
    let outer = open_path(parent, libc::O_PATH | libc::O_DIRECTORY)?;
    let name = c"root";
    // SAFETY: mkdirat relative to a directory we own.
    sys("mkdir the inner root", unsafe {
        libc::mkdirat(outer.as_raw_fd(), name.as_ptr(), 0o755)
    })?;
    let target = CString::new(format!("{}/root", fd_path(&outer).to_string_lossy()))
        .map_err(|e| e.to_string())?;
    mount(
        &fd_path(root_fd),
        &target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
        "bind the rootfs into the outer root",
    )?;
    Ok(outer)
}

/// A fresh tmpfs with only the listed devices, devpts and shm.
fn setup_dev(root_fd: &OwnedFd) -> SetupResult<()> {
    let dev_dir = open_mount_point_dir(root_fd, "dev")?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let data = c"mode=755,size=65536k";
    mount(
        c"tmpfs",
        &fd_path(&dev_dir),
        Some(c"tmpfs"),
        flags,
        Some(data),
        "mount /dev",
    )?;
    // Reopen: the old descriptor names the directory under the new tmpfs.
    let dev = open_in_root(root_fd, "dev", libc::O_RDONLY | libc::O_DIRECTORY)?;
    for name in DEVICES {
        let host = CString::new(format!("/dev/{name}")).map_err(|e| e.to_string())?;
        if OPTIONAL_DEVICES.contains(name) && !Path::new(&format!("/dev/{name}")).exists() {
            continue;
        }
        check_char_device(&host)?;
        let node = cstr(name)?;
        // SAFETY: creating a file relative to a directory descriptor we own.
        let fd = unsafe {
            libc::openat(
                dev.as_raw_fd(),
                node.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o666,
            )
        };
        let file = owned("create /dev mount point", fd)?;
        drop(file);
        let target = CString::new(format!("{}/{name}", fd_path(&dev).to_string_lossy()))
            .map_err(|e| e.to_string())?;
        mount(&host, &target, None, libc::MS_BIND, None, "bind device")?;
    }
    make_dir(&dev, "pts", 0o755)?;
    make_dir(&dev, "shm", 0o1777)?;
    let pts = CString::new(format!("{}/pts", fd_path(&dev).to_string_lossy()))
        .map_err(|e| e.to_string())?;
    let pts_data = c"newinstance,ptmxmode=0666,mode=0620,gid=5";
    let pts_flags = libc::MS_NOSUID | libc::MS_NOEXEC;
    mount(
        c"devpts",
        &pts,
        Some(c"devpts"),
        pts_flags,
        Some(pts_data),
        "mount /dev/pts",
    )?;
    let shm = CString::new(format!("{}/shm", fd_path(&dev).to_string_lossy()))
        .map_err(|e| e.to_string())?;
    let shm_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(
        c"shm",
        &shm,
        Some(c"tmpfs"),
        shm_flags,
        Some(c"mode=1777,size=65536k"),
        "mount /dev/shm",
    )?;
    for (name, target) in DEV_SYMLINKS {
        let (link, target) = (cstr(name)?, cstr(target)?);
        // SAFETY: both strings are NUL-terminated and live.
        sys("create /dev symlink", unsafe {
            libc::symlinkat(target.as_ptr(), dev.as_raw_fd(), link.as_ptr())
        })?;
    }
    Ok(())
}

/// Mounts the host's resolv.conf over the rootfs's (or over the empty stub
/// the library created). A rootfs whose resolv.conf is a dangling symlink
/// gets none, rather than a file written through the link.
fn mount_resolv_conf(root_fd: &OwnedFd) -> SetupResult<()> {
    let host = c"/etc/resolv.conf";
    // SAFETY: stat into a zeroed buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::stat(host.as_ptr(), &mut st) } != 0 {
        return Ok(());
    }
    match openat2_in_root(root_fd, "etc/resolv.conf", libc::O_PATH) {
        Ok(target) if is_regular(&target)? => {
            bind_fd_read_only(root_fd, host, &target, "etc/resolv.conf")
        }
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(format!("open /etc/resolv.conf in root: {e}")),
    }
}

/// A read-write bind mount (no setuid, no device nodes).
fn bind_writable(root_fd: &OwnedFd, source: &CStr, target: &str) -> SetupResult<()> {
    let relative = target.trim_start_matches('/');
    let target_fd = openat2_in_root(root_fd, relative, libc::O_PATH)
        .map_err(|e| format!("bind mount target {target}: {e}"))?;
    let what = format!("bind {} to {target}", source.to_string_lossy());
    bind_fd(
        root_fd,
        source,
        &target_fd,
        relative,
        &what,
        libc::MS_NOSUID | libc::MS_NODEV,
    )
}

fn mount_tmpfs(root_fd: &OwnedFd, tmpfs: &super::TmpfsMount) -> SetupResult<()> {
    let relative = tmpfs.target.trim_start_matches('/');
    let target_fd = openat2_in_root(root_fd, relative, libc::O_PATH)
        .map_err(|e| format!("tmpfs mount target {}: {e}", tmpfs.target))?;
    let data = match tmpfs.size {
        Some(size) => format!("mode=1777,size={size}"),
        None => "mode=1777".to_string(),
    };
    let data = CString::new(data).map_err(|e| e.to_string())?;
    mount(
        c"tmpfs",
        &fd_path(&target_fd),
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&data),
        &format!("mount tmpfs on {}", tmpfs.target),
    )
}

fn bind_read_only(root_fd: &OwnedFd, source: &CStr, target: &str) -> SetupResult<()> {
    let relative = target.trim_start_matches('/');
    let target_fd = openat2_in_root(root_fd, relative, libc::O_PATH)
        .map_err(|e| format!("bind mount target {target}: {e}"))?;
    bind_fd_read_only(root_fd, source, &target_fd, relative)
}

fn bind_fd_read_only(
    root_fd: &OwnedFd,
    source: &CStr,
    target_fd: &OwnedFd,
    relative: &str,
) -> SetupResult<()> {
    let what = format!("bind {} to /{relative}", source.to_string_lossy());
    let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    bind_fd(root_fd, source, target_fd, relative, &what, flags)
}

/// Binds `source` onto `target_fd` (`relative` in the root), then remounts
/// the new mount with `flags`; `what` names the mount in errors.
fn bind_fd(
    root_fd: &OwnedFd,
    source: &CStr,
    target_fd: &OwnedFd,
    relative: &str,
    what: &str,
    flags: libc::c_ulong,
) -> SetupResult<()> {
    mount(
        source,
        &fd_path(target_fd),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
        what,
    )?;
    // The remount must name the new mount, not the file under it.
    let top =
        openat2_in_root(root_fd, relative, libc::O_PATH).map_err(|e| format!("{what}: {e}"))?;
    mount_remount(&fd_path(&top), flags, what)
}

/// pivot_root leaves no path back to the host (a chroot can be escaped with
/// CAP_SYS_CHROOT); chroot is only the fallback for hosts running from an
/// initramfs, where pivot_root is refused.
fn enter_root(root_fd: &OwnedFd) -> SetupResult<()> {
    // SAFETY: fchdir on a directory descriptor we own.
    sys("enter root", unsafe { libc::fchdir(root_fd.as_raw_fd()) })?;
    // SAFETY: raw syscall with two valid C strings.
    let pivoted = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } == 0;
    if pivoted {
        // SAFETY: detaching the old root stacked on ".".
        sys("detach old root", unsafe {
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH)
        })?;
    } else {
        // SAFETY: chroot to the current directory.
        sys("chroot", unsafe { libc::chroot(c".".as_ptr()) })?;
    }
    // SAFETY: chdir to a constant path.
    sys("chdir /", unsafe { libc::chdir(c"/".as_ptr()) })
}

/// The command: drop everything the build process had, then exec.
fn command_process(spec: &RunSpec, status: &StatusPipe) -> ! {
    let setup = reset_signals()
        .and_then(|()| close_fds_except(status.0))
        .and_then(|()| match spec.chroot_view {
            true => enter_inner_root(),
            false => Ok(()),
        })
        .and_then(|()| enter_cwd(&spec.cwd))
        .and_then(|()| bound_capabilities(DEFAULT_CAPS))
        .and_then(|()| switch_user(spec.user.as_ref()))
        .and_then(|()| set_death_signal());
    exec_after(setup, spec, status)
}

/// Executes the command once its setup succeeded; reports whichever failed.
fn exec_after(setup: SetupResult<()>, spec: &RunSpec, status: &StatusPipe) -> ! {
    if let Err(message) = setup {
        status.send(&Report::SetupFailed(message));
        exit_now(127);
    }
    let env = environment(&spec.env);
    let message = exec_command(&spec.argv, &env);
    status.send(&Report::ExecFailed {
        program: spec.argv[0].clone(),
        message,
    });
    exit_now(127)
}

fn enter_inner_root() -> SetupResult<()> {
    // SAFETY: chroot and chdir to constant paths.
    sys("chroot into the inner root", unsafe {
        libc::chroot(INNER_ROOT.as_ptr())
    })?;
    sys("chdir /", unsafe { libc::chdir(c"/".as_ptr()) })
}

/// CVE-2024-21626: with no descriptor left open, `/proc/self/fd/N` cannot
/// lead out of the root; the getcwd check catches any other way out.
fn enter_cwd(cwd: &str) -> SetupResult<()> {
    let path = cstr(cwd)?;
    // SAFETY: chdir to a NUL-terminated path.
    if unsafe { libc::chdir(path.as_ptr()) } != 0 {
        return Err(format!(
            "working directory {cwd}: {}",
            io::Error::last_os_error()
        ));
    }
    let mut buf = vec![0u8; 4096];
    // The raw syscall: glibc's wrapper hides the "(unreachable)" marker.
    // SAFETY: the buffer is live and its length is passed.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if n <= 0 || buf[0] != b'/' {
        return Err(format!("working directory {cwd} is outside the root"));
    }
    Ok(())
}

fn bound_capabilities(keep: &[u32]) -> SetupResult<()> {
    for cap in 0..64u32 {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break; // past the kernel's last capability
            }
            return Err(format!(
                "drop capability {cap}: {}",
                io::Error::last_os_error()
            ));
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    let mut sets = rustix::thread::capabilities(None).map_err(|e| format!("capget: {e}"))?;
    sets.inheritable = rustix::thread::CapabilitySet::empty();
    rustix::thread::set_capabilities(None, sets).map_err(|e| format!("capset: {e}"))
}

/// Reduces the permitted and effective sets to `keep`.
fn keep_only(keep: &[u32]) -> SetupResult<()> {
    use rustix::thread::CapabilitySet;
    let mask = keep.iter().fold(0u64, |m, c| m | 1 << c);
    let keep = CapabilitySet::from_bits_retain(mask);
    let mut sets = rustix::thread::capabilities(None).map_err(|e| format!("capget: {e}"))?;
    sets.permitted &= keep;
    sets.effective &= keep;
    sets.inheritable = CapabilitySet::empty();
    rustix::thread::set_capabilities(None, sets).map_err(|e| format!("capset: {e}"))
}

fn switch_user(user: Option<&(u32, u32, Vec<u32>)>) -> SetupResult<()> {
    let (uid, gid, groups) = match user {
        Some((uid, gid, groups)) => (*uid, *gid, groups.as_slice()),
        None => (0, 0, &[][..]),
    };
    // SAFETY: pointer and length of a live slice of gid_t (u32).
    sys("setgroups", unsafe {
        libc::setgroups(groups.len(), groups.as_ptr())
    })?;
    // SAFETY: integer arguments.
    sys("setgid", unsafe { libc::setgid(gid) })?;
    // SAFETY: integer arguments.
    sys("setuid", unsafe { libc::setuid(uid) })
}

fn environment(env: &[(String, String)]) -> Vec<CString> {
    let mut out: Vec<CString> = env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        out.extend(CString::new(format!("PATH={DEFAULT_PATH}")).ok());
    }
    out
}

/// Looks the program up in the command's own PATH, inside the root, and
/// executes it; returns only on failure, with the reason.
fn exec_command(argv: &[String], env: &[CString]) -> String {
    let Ok(args) = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return "argument contains a NUL byte".into();
    };
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());

    let program = &argv[0];
    let candidates: Vec<String> = if program.contains('/') {
        vec![program.clone()]
    } else {
        let path = env
            .iter()
            .find_map(|e| e.to_bytes().strip_prefix(b"PATH="))
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
            .collect()
    };
    let mut last_error = "not found in the command's PATH".to_string();
    for candidate in candidates {
        let Ok(c) = CString::new(candidate.as_bytes()) else {
            continue;
        };
        // SAFETY: NUL-terminated path and NULL-terminated pointer arrays
        // whose strings outlive the call.
        unsafe { libc::execve(c.as_ptr(), arg_ptrs.as_ptr(), env_ptrs.as_ptr()) };
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ENOENT) || program.contains('/') {
            last_error = format!("{candidate}: {error}");
            if error.raw_os_error() != Some(libc::EACCES) {
                break;
            }
        }
    }
    last_error
}

fn reset_signals() -> SetupResult<()> {
    // The helper is a Rust program, which ignores SIGPIPE; ignored signals
    // survive exec, and `yes | head` must not see EPIPE instead of dying.
    // The raw syscall, because glibc refuses to touch the signals it
    // reserves (32, 33), and those too may arrive ignored from our parent.
    // An all-zero kernel `struct sigaction` is SIG_DFL with no flags.
    let default_action = [0u64; 4];
    for signal in 1..=64 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: the kernel reads at most 4 words from the live array.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    default_action.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
        }
    }
    // SAFETY: an empty, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    Ok(())
}

fn close_fds_except(keep: RawFd) -> SetupResult<()> {
    let ranges = [(3, keep - 1), (keep + 1, libc::c_int::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: closing descriptors nothing in this process still uses.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
        if r != 0 {
            // Kernels before 5.9 lack close_range.
            for fd in open_fds()?
                .into_iter()
                .filter(|&fd| fd >= first && fd <= last)
            {
                // SAFETY: as above, one descriptor at a time.
                unsafe { libc::close(fd) };
            }
        }
    }
    Ok(())
}

fn mark_all_fds_cloexec() -> SetupResult<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: only sets flags on descriptors.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC.
    for fd in open_fds()?.into_iter().filter(|&fd| fd >= 3) {
        set_cloexec(fd)?;
    }
    Ok(())
}

/// The descriptors open in this process, read from /proc/self/fd; the
/// directory's own descriptor is closed again before this returns.
fn open_fds() -> SetupResult<Vec<RawFd>> {
    let entries = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))?;
    let mut fds: Vec<RawFd> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The listing included read_dir's own (now closed) descriptor.
    // SAFETY: F_GETFD only queries.
    fds.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1);
    Ok(fds)
}

fn set_death_signal() -> SetupResult<()> {
    // SAFETY: prctl with integer arguments.
    sys("set death signal", unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
}

fn set_cloexec(fd: RawFd) -> SetupResult<()> {
    // SAFETY: fcntl on a descriptor number; fails cleanly if invalid.
    sys("fcntl", unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC)
    })
}

fn fork() -> SetupResult<libc::pid_t> {
    // SAFETY: the helper is single-threaded, so the child may do anything.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    Ok(pid)
}

fn wait_for(pid: libc::pid_t) -> SetupResult<libc::c_int> {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(format!("waitpid: {}", io::Error::last_os_error()));
        }
    }
}

fn shell_code(wait_status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(wait_status) {
        128 + libc::WTERMSIG(wait_status)
    } else {
        libc::WEXITSTATUS(wait_status)
    }
}

fn exit_now(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong
    // to the parent after a fork.
    unsafe { libc::_exit(code) }
}

fn pipe() -> SetupResult<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn sys(what: &str, r: libc::c_int) -> SetupResult<()> {
    if r == -1 {
        return Err(format!("{what}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

fn owned(what: &str, fd: RawFd) -> SetupResult<OwnedFd> {
    if fd < 0 {
        return Err(format!("{what}: {}", io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstr(s: &str) -> SetupResult<CString> {
    CString::new(s).map_err(|_| format!("NUL byte in {s:?}"))
}

fn path_cstring(path: &Path) -> SetupResult<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("NUL byte in {}", path.display()))
}

/// `/proc/self/fd/N`: mounting onto it targets exactly the opened inode,
/// whatever symlinks the rootfs holds.
fn fd_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

fn open_path(path: &CStr, flags: libc::c_int) -> SetupResult<OwnedFd> {
    // SAFETY: NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    owned(&format!("open {}", path.to_string_lossy()), fd)
}

/// `/proc` and `/dev` must be real directories: a rootfs with `proc -> /`
/// would otherwise have the mount land on the root itself.
fn open_mount_point_dir(root_fd: &OwnedFd, name: &str) -> SetupResult<OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    rustix::fs::openat2(
        root_fd,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
    )
    .map_err(|e| format!("/{name} in root must be a directory, not a symlink: {e}"))
}

fn open_in_root(root_fd: &OwnedFd, relative: &str, flags: libc::c_int) -> SetupResult<OwnedFd> {
    openat2_in_root(root_fd, relative, flags).map_err(|e| format!("open /{relative} in root: {e}"))
}

/// Resolves `relative` with symlinks (and `..`) clamped to the root.
fn openat2_in_root(root_fd: &OwnedFd, relative: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let oflags = OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC;
    rustix::fs::openat2(
        root_fd,
        relative,
        oflags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
}

fn is_regular(fd: &OwnedFd) -> SetupResult<bool> {
    let st = rustix::fs::fstat(fd).map_err(|e| format!("fstat: {e}"))?;
    Ok(rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile)
}

fn check_char_device(path: &CStr) -> SetupResult<()> {
    // SAFETY: stat into a zeroed buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::stat(path.as_ptr(), &mut st) };
    sys(&format!("host device {}", path.to_string_lossy()), r)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Err(format!(
            "host {} is not a character device",
            path.to_string_lossy()
        ));
    }
    Ok(())
}

fn make_dir(dir: &OwnedFd, name: &str, mode: libc::mode_t) -> SetupResult<()> {
    let c = cstr(name)?;
    // SAFETY: mkdirat relative to a directory we own.
    sys(&format!("mkdir /dev/{name}"), unsafe {
        libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode)
    })?;
    // The umask must not narrow /dev/shm's sticky world-writable mode.
    // SAFETY: fchmodat relative to a directory we own.
    sys(&format!("chmod /dev/{name}"), unsafe {
        libc::fchmodat(dir.as_raw_fd(), c.as_ptr(), mode, 0)
    })
}

/// Mount flags a bind remount must repeat, or the kernel refuses (or, for
/// `ro`, silently makes the bind writable).
fn kept_mount_flags(path: &CStr) -> SetupResult<libc::c_ulong> {
    // SAFETY: statvfs into a zeroed buffer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    sys("statvfs root", unsafe {
        libc::statvfs(path.as_ptr(), &mut st)
    })?;
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

fn mount(
    source: &CStr,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
    what: &str,
) -> SetupResult<()> {
    // SAFETY: all strings are NUL-terminated and live for the call.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), CStr::as_ptr),
            flags,
            data.map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    sys(what, r)
}

fn mount_remount(target: &CStr, flags: libc::c_ulong, what: &str) -> SetupResult<()> {
    // SAFETY: NUL-terminated target; other pointers NULL.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | flags,
            std::ptr::null(),
        )
    };
    sys(what, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_survives_odd_command_names() {
        assert_eq!(parent_pid("12 (a) b) c) S 7 12 12 0"), Some(7));
        assert_eq!(parent_pid("12 (sh) R 1 12"), Some(1));
        assert_eq!(parent_pid("garbage"), None);
    }

    #[test]
    fn chroot_capabilities_are_the_default_less_mknod_and_chroot() {
        let expected: Vec<u32> = DEFAULT_CAPS
            .iter()
            .copied()
            .filter(|c| *c != 27 && *c != 18)
            .collect();
        assert_eq!(CHROOT_CAPS, &expected[..]);
    }

    /// The last line of defence of `enter_cwd` (CVE-2024-21626): a working
    /// directory outside the process's root — the state a leaked descriptor
    /// or a chroot without chdir leaves — is refused even though `chdir`
    /// to it succeeds. Made here in a child process of this test binary
    /// (chroot changes the whole process): it enters a directory, then
    /// chroots somewhere else below it, so its cwd lies outside its root.
    #[test]
    fn a_working_directory_outside_the_root_is_refused() {
        const CHILD: &str = "ROOTSTRAP_TEST_CWD_OUTSIDE_ROOT";
        if let Some(dirs) = std::env::var_os(CHILD) {
            let dirs = std::path::PathBuf::from(dirs);
            std::env::set_current_dir(dirs.join("outside")).unwrap();
            let inside = CString::new(dirs.join("inside").as_os_str().as_bytes()).unwrap();
            // SAFETY: chroot to a NUL-terminated path, in this child only.
            assert_eq!(unsafe { libc::chroot(inside.as_ptr()) }, 0);
            let err = enter_cwd(".").unwrap_err();
            assert!(err.contains("outside the root"), "{err}");
            assert_eq!(enter_cwd("/"), Ok(()));
            return;
        }
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIP: chroot needs root");
            return;
        }
        let dirs = tempfile::tempdir().unwrap();
        std::fs::create_dir(dirs.path().join("outside")).unwrap();
        std::fs::create_dir(dirs.path().join("inside")).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "rootfs::sandbox::helper::tests::a_working_directory_outside_the_root_is_refused",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD, dirs.path())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{log}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(log.contains("1 passed"), "the child ran no test: {log}");
    }
}
