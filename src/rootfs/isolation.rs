//! Isolation levels: how package scripts, RUN steps and `rootstrap run`
//! are kept apart from the host, chosen once per process.
//!
//! - **namespaces**: root allowed to create namespaces (a laptop, a CI VM):
//!   private mount, PID, UTS, IPC (and network) namespaces, pivot_root.
//! - **userns**: a non-root user with subordinate IDs: the whole process
//!   moves into a user namespace mapping the user to 0 and its subordinate
//!   range to 1…N (through the set-uid `newuidmap`/`newgidmap`, as
//!   mmdebstrap's unshare mode, buildah and podman do rootless), and the
//!   namespaces level runs inside it. Files get owners 0–65535 as in a root
//!   build.
//! - **chroot**: root without namespace rights (Docker's default seccomp
//!   profile and capabilities, a Kubernetes pod): chroot(2) only, as
//!   buildah's `--isolation chroot` and kaniko. No private /proc, /dev,
//!   network or PID space; device nodes are made in the tree for the run.
//!
//! The level changes how commands are isolated, never what the image holds.
//!
//! Entering the user namespace and probing for namespace rights fork the
//! process, so [`select`] must run while it is still single-threaded.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What the sandbox helper does for each command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SandboxMode {
    /// Fresh namespaces and pivot_root (levels namespaces and userns).
    Namespaces,
    /// chroot(2) only.
    Chroot,
}

/// The level asked for (`--isolation`, `$ROOTSTRAP_ISOLATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Auto,
    Namespaces,
    Userns,
    Chroot,
}

impl std::str::FromStr for Requested {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Requested::Auto),
            "namespaces" => Ok(Requested::Namespaces),
            "userns" => Ok(Requested::Userns),
            "chroot" => Ok(Requested::Chroot),
            other => Err(format!(
                "unknown isolation level {other:?} (auto, namespaces, userns, chroot)"
            )),
        }
    }
}

/// The level in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    Namespaces,
    Userns(UserMapping),
    Chroot {
        /// Why namespaces were not used (empty when chroot was asked for).
        reason: String,
    },
}

impl Level {
    pub fn sandbox_mode(&self) -> SandboxMode {
        match self {
            Level::Namespaces | Level::Userns(_) => SandboxMode::Namespaces,
            Level::Chroot { .. } => SandboxMode::Chroot,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Level::Namespaces => "namespaces",
            Level::Userns(_) => "userns",
            Level::Chroot { .. } => "chroot",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Namespaces => write!(
                f,
                "namespaces (root: private mount, PID, UTS, IPC and network namespaces, pivot_root)"
            ),
            Level::Userns(m) => write!(
                f,
                "userns (rootless: uid {} gid {} mapped to 0, subordinate uids {}-{} and gids {}-{} to 1-{}; \
                 private mount, PID, UTS, IPC and network namespaces inside)",
                m.uid,
                m.gid,
                m.subuid.start,
                m.subuid.start + m.subuid.count - 1,
                m.subgid.start,
                m.subgid.start + m.subgid.count - 1,
                m.subuid.count.min(m.subgid.count)
            ),
            Level::Chroot { reason } => {
                write!(
                    f,
                    "chroot (no private /proc, network or PID space; /dev holds device nodes made for each run)"
                )?;
                if !reason.is_empty() {
                    write!(f, "; namespaces unavailable: {reason}")?;
                }
                Ok(())
            }
        }
    }
}

/// One subordinate ID range from /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// How the user's IDs map into the user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMapping {
    pub uid: u32,
    pub gid: u32,
    pub subuid: IdRange,
    pub subgid: IdRange,
}

/// Subordinate IDs needed to give package files the owners 1–65535 (and
/// `nobody`, 65534) as a root build does.
pub const MIN_SUBORDINATE_IDS: u32 = 65535;

impl UserMapping {
    /// `newuidmap`/`newgidmap` arguments after the PID: inside ID, outside
    /// ID, count, repeated.
    pub fn uid_map_args(&self) -> Vec<String> {
        map_args(self.uid, self.subuid)
    }

    pub fn gid_map_args(&self) -> Vec<String> {
        map_args(self.gid, self.subgid)
    }
}

fn map_args(own: u32, sub: IdRange) -> Vec<String> {
    [0, own, 1, 1, sub.start, sub.count]
        .iter()
        .map(u32::to_string)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error(
        "no isolation level is usable: {detail}\n\
         rootstrap runs package scripts and RUN steps isolated from the host, and needs one of:\n  \
         - root allowed to create namespaces (--isolation namespaces),\n  \
         - a non-root user with subordinate IDs in /etc/subuid and /etc/subgid, Debian's `uidmap` package (newuidmap, newgidmap) and user namespaces enabled (--isolation userns),\n  \
         - root with CAP_SYS_CHROOT, CAP_MKNOD and CAP_SETPCAP, as in a container with Docker's default capabilities (--isolation chroot)"
    )]
    NothingUsable { detail: String },
    #[error("isolation {level} needs {what}")]
    Unavailable { level: &'static str, what: String },
    #[error("{file} line {line}: {message}")]
    BadIdFile {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("entering a user namespace: {0}")]
    EnterUserns(String),
}

static SELECTED: OnceLock<Level> = OnceLock::new();

/// The sandbox mode of this process: the selected level's, or namespaces
/// when nothing was selected (library users, tests run as root).
pub fn sandbox_mode() -> SandboxMode {
    SELECTED
        .get()
        .map_or(SandboxMode::Namespaces, Level::sandbox_mode)
}

/// The level chosen by [`select`], if any.
pub fn selected() -> Option<&'static Level> {
    SELECTED.get()
}

/// Chooses the level (entering a user namespace for `userns`) and records
/// it for [`sandbox_mode`]. Must be called while the process is still
/// single-threaded, and at most once.
pub fn select(requested: Requested) -> Result<&'static Level, IsolationError> {
    let level = choose(requested, &HostProbe)?;
    if let Level::Userns(mapping) = &level {
        enter_userns(mapping)?;
        // Inside, the namespaces level must work; say so now rather than at
        // the first package script.
        probe_namespaces().map_err(|detail| IsolationError::Unavailable {
            level: "userns",
            what: format!("namespaces inside the user namespace, which failed: {detail}"),
        })?;
    }
    Ok(SELECTED.get_or_init(|| level))
}

/// What selection needs to know about the host; a trait so the decision
/// table is tested without root or namespaces.
pub trait Probe {
    fn is_root(&self) -> bool;
    fn namespaces(&self) -> Result<(), String>;
    /// CAP_SYS_CHROOT, CAP_MKNOD and CAP_SETPCAP (to narrow the commands'
    /// bounding set) in the effective set; `Err` names the missing ones.
    fn chroot_caps(&self) -> Result<(), String>;
    fn user_mapping(&self) -> Result<UserMapping, IsolationError>;
}

/// The decision table: the strongest level the process may use, or the
/// forced one if it is usable.
pub fn choose(requested: Requested, probe: &dyn Probe) -> Result<Level, IsolationError> {
    let root = probe.is_root();
    match requested {
        Requested::Namespaces => {
            if !root {
                return Err(IsolationError::Unavailable {
                    level: "namespaces",
                    what: "root (as a non-root user, use --isolation userns)".into(),
                });
            }
            probe.namespaces().map(|()| Level::Namespaces).map_err(|e| {
                IsolationError::Unavailable {
                    level: "namespaces",
                    what: format!(
                        "the right to create mount and PID namespaces and mount /proc ({e}); \
                         in an unprivileged container use --isolation chroot"
                    ),
                }
            })
        }
        Requested::Chroot => {
            if !root {
                return Err(IsolationError::Unavailable {
                    level: "chroot",
                    what: "root (as a non-root user, use --isolation userns)".into(),
                });
            }
            probe
                .chroot_caps()
                .map(|()| Level::Chroot {
                    reason: String::new(),
                })
                .map_err(|e| IsolationError::Unavailable {
                    level: "chroot",
                    what: e,
                })
        }
        Requested::Userns => {
            if root {
                return Err(IsolationError::Unavailable {
                    level: "userns",
                    what: "a non-root user (root uses --isolation namespaces or chroot)".into(),
                });
            }
            probe.user_mapping().map(Level::Userns)
        }
        Requested::Auto if root => match probe.namespaces() {
            Ok(()) => Ok(Level::Namespaces),
            Err(ns) => match probe.chroot_caps() {
                Ok(()) => Ok(Level::Chroot { reason: ns }),
                Err(caps) => Err(IsolationError::NothingUsable {
                    detail: format!("running as root, but namespaces fail ({ns}) and {caps}"),
                }),
            },
        },
        Requested::Auto => match probe.user_mapping() {
            Ok(mapping) => Ok(Level::Userns(mapping)),
            Err(e) => Err(IsolationError::NothingUsable {
                detail: format!("running as a non-root user, and {e}"),
            }),
        },
    }
}

/// The real host.
struct HostProbe;

impl Probe for HostProbe {
    fn is_root(&self) -> bool {
        rustix::process::geteuid().is_root()
    }

    fn namespaces(&self) -> Result<(), String> {
        probe_namespaces()
    }

    fn chroot_caps(&self) -> Result<(), String> {
        use rustix::thread::CapabilitySet;
        let caps = rustix::thread::capabilities(None).map_err(|e| format!("capget: {e}"))?;
        let missing: Vec<&str> = [
            (CapabilitySet::SYS_CHROOT, "CAP_SYS_CHROOT"),
            (CapabilitySet::MKNOD, "CAP_MKNOD"),
            (CapabilitySet::SETPCAP, "CAP_SETPCAP"),
        ]
        .into_iter()
        .filter(|(cap, _)| !caps.effective.contains(*cap))
        .map(|(_, name)| name)
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("the process lacks {}", missing.join(" and ")))
        }
    }

    fn user_mapping(&self) -> Result<UserMapping, IsolationError> {
        host_user_mapping()
    }
}

/// The calling user's mapping from /etc/passwd, /etc/subuid, /etc/subgid,
/// checking that newuidmap and newgidmap exist.
fn host_user_mapping() -> Result<UserMapping, IsolationError> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = user_name(&passwd, uid);
    let who = name.clone().unwrap_or_else(|| uid.to_string());
    let range = |file: &str| -> Result<IdRange, IsolationError> {
        let path = Path::new(file);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(IsolationError::Unavailable {
                    level: "userns",
                    what: format!("{file} readable: {e}"),
                })
            }
        };
        match subordinate_range(&text, path, name.as_deref(), uid)? {
            Some(r) if r.count >= MIN_SUBORDINATE_IDS => Ok(r),
            Some(r) => Err(IsolationError::Unavailable {
                level: "userns",
                what: format!(
                    "at least {MIN_SUBORDINATE_IDS} subordinate IDs for {who} in {file} (it gives {}); \
                     as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}",
                    r.count
                ),
            }),
            None => Err(IsolationError::Unavailable {
                level: "userns",
                what: format!(
                    "subordinate IDs for {who} in {file} (none found); \
                     as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}"
                ),
            }),
        }
    };
    let subuid = range("/etc/subuid")?;
    let subgid = range("/etc/subgid")?;
    for tool in ["newuidmap", "newgidmap"] {
        if find_tool(tool).is_none() {
            return Err(IsolationError::Unavailable {
                level: "userns",
                what: format!("{tool} (install Debian's `uidmap` package)"),
            });
        }
    }
    Ok(UserMapping {
        uid,
        gid,
        subuid,
        subgid,
    })
}

/// The name of `uid` in passwd-format text.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse() == Ok(uid)).then(|| name.to_string())
    })
}

/// The first range of `name` (or of the numeric `uid`, which shadow's
/// tools also accept) in subuid/subgid-format text.
pub fn subordinate_range(
    text: &str,
    file: &Path,
    name: Option<&str>,
    uid: u32,
) -> Result<Option<IdRange>, IsolationError> {
    let uid_text = uid.to_string();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: &str| IsolationError::BadIdFile {
            file: file.to_path_buf(),
            line: n + 1,
            message: message.to_string(),
        };
        let fields: Vec<&str> = line.split(':').collect();
        let [owner, start, count] = fields[..] else {
            return Err(bad("expected NAME:START:COUNT"));
        };
        if Some(owner) != name && owner != uid_text {
            continue;
        }
        let start: u32 = start.parse().map_err(|_| bad("START is not a number"))?;
        let count: u32 = count.parse().map_err(|_| bad("COUNT is not a number"))?;
        if count == 0 || start.checked_add(count).is_none() {
            return Err(bad("the range is empty or overflows"));
        }
        return Ok(Some(IdRange { start, count }));
    }
    Ok(None)
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into(), "/bin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Forks a child that tries what the namespaces sandbox does first:
/// unshare mount, PID, UTS and IPC namespaces and mount a fresh /proc.
pub fn probe_namespaces() -> Result<(), String> {
    // SAFETY: called while single-threaded; the child only makes system
    // calls and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: raw system calls in a forked single-threaded child.
        unsafe {
            let flags =
                libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
            if libc::unshare(flags) != 0 {
                libc::_exit(probe_code(1));
            }
            let private = libc::MS_REC | libc::MS_PRIVATE;
            let null = std::ptr::null();
            if libc::mount(null, c"/".as_ptr(), null, private, std::ptr::null()) != 0 {
                libc::_exit(probe_code(2));
            }
            // /proc can only be mounted by a member of the new PID namespace.
            let child = libc::fork();
            if child == 0 {
                let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                let r = libc::mount(
                    c"proc".as_ptr(),
                    c"/proc".as_ptr(),
                    c"proc".as_ptr(),
                    flags,
                    std::ptr::null(),
                );
                libc::_exit(if r == 0 { 0 } else { probe_code(3) });
            }
            let mut status = 0;
            if child < 0 || libc::waitpid(child, &mut status, 0) != child {
                libc::_exit(probe_code(4));
            }
            libc::_exit(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                4 << 6
            });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(format!("waitpid: {}", io::Error::last_os_error()));
        }
    }
    if !libc::WIFEXITED(status) {
        return Err("the namespace probe was killed".into());
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        code => {
            let step = match code >> 6 {
                1 => "unshare(mount, PID, UTS, IPC namespaces)",
                2 => "making mounts private",
                3 => "mounting /proc in a new PID namespace",
                _ => "the probe process",
            };
            let errno = code & 0x3f;
            Err(format!("{step}: {}", io::Error::from_raw_os_error(errno)))
        }
    }
}

/// An exit code carrying the failed step (high bits) and errno (low six
/// bits: EPERM, EACCES, EINVAL, ENOSPC… all fit).
fn probe_code(step: i32) -> i32 {
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0) & 0x3f;
    (step << 6) | errno
}

/// Moves this (single-threaded) process into a new user namespace whose
/// maps are written by newuidmap/newgidmap, run from a child that stays in
/// the parent namespace. Afterwards the process is uid 0 with full
/// capabilities inside, and every file it creates belongs to the user.
fn enter_userns(mapping: &UserMapping) -> Result<(), IsolationError> {
    let err = |m: String| IsolationError::EnterUserns(m);
    let (go_read, go_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| err(format!("pipe: {e}")))?;
    let target = rustix::process::getpid().as_raw_nonzero().get();
    let uid_args = mapping.uid_map_args();
    let gid_args = mapping.gid_map_args();
    let newuidmap = find_tool("newuidmap").ok_or_else(|| err("newuidmap not found".into()))?;
    let newgidmap = find_tool("newgidmap").ok_or_else(|| err("newgidmap not found".into()))?;
    // SAFETY: the process is single-threaded (select's contract); the
    // child waits, runs two programs and leaves with _exit.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(err(format!("fork: {}", io::Error::last_os_error())));
    }
    if child == 0 {
        drop(go_write);
        let mut byte = [0u8; 1];
        let code = match rustix::io::read(&go_read, &mut byte) {
            Ok(1) => {
                let run = |tool: &Path, args: &[String]| {
                    std::process::Command::new(tool)
                        .arg(target.to_string())
                        .args(args)
                        .status()
                        .is_ok_and(|s| s.success())
                };
                if run(&newuidmap, &uid_args) && run(&newgidmap, &gid_args) {
                    0
                } else {
                    1
                }
            }
            _ => 2,
        };
        // SAFETY: leaving the forked child without running the parent's
        // exit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(go_read);
    // SAFETY: unshare with a constant flag in a single-threaded process.
    let unshared = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    let unshare_error = io::Error::last_os_error();
    if unshared == 0 {
        let _ = rustix::io::write(&go_write, b"g");
    }
    drop(go_write);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(child, &mut status, 0) } != child {
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(err(format!("waitpid: {}", io::Error::last_os_error())));
        }
    }
    if unshared != 0 {
        return Err(err(format!(
            "unshare(CLONE_NEWUSER): {unshare_error} (are unprivileged user namespaces disabled? \
             see /proc/sys/kernel/unprivileged_userns_clone, /proc/sys/user/max_user_namespaces, \
             and AppArmor's kernel.apparmor_restrict_unprivileged_userns)"
        )));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(err(format!(
            "newuidmap {} / newgidmap {} failed (their message is above)",
            uid_args.join(" "),
            gid_args.join(" ")
        )));
    }
    // The maps make our IDs 0 already; set them explicitly so saved and
    // filesystem IDs agree.
    // SAFETY: plain ID system calls.
    let r = unsafe { libc::setresgid(0, 0, 0) | libc::setresuid(0, 0, 0) };
    if r != 0 {
        return Err(err(format!(
            "becoming root in the user namespace: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        root: bool,
        ns: Result<(), String>,
        caps: Result<(), String>,
        mapping: Option<UserMapping>,
    }

    impl Probe for Fake {
        fn is_root(&self) -> bool {
            self.root
        }
        fn namespaces(&self) -> Result<(), String> {
            self.ns.clone()
        }
        fn chroot_caps(&self) -> Result<(), String> {
            self.caps.clone()
        }
        fn user_mapping(&self) -> Result<UserMapping, IsolationError> {
            self.mapping.clone().ok_or(IsolationError::Unavailable {
                level: "userns",
                what: "subordinate IDs for u in /etc/subuid (none found)".into(),
            })
        }
    }

    fn mapping() -> UserMapping {
        UserMapping {
            uid: 1000,
            gid: 1000,
            subuid: IdRange {
                start: 100000,
                count: 65536,
            },
            subgid: IdRange {
                start: 200000,
                count: 65536,
            },
        }
    }

    fn fake(root: bool, ns: bool, caps: bool, mapped: bool) -> Fake {
        Fake {
            root,
            ns: if ns { Ok(()) } else { Err("EPERM".into()) },
            caps: if caps {
                Ok(())
            } else {
                Err("the process lacks CAP_SYS_CHROOT".into())
            },
            mapping: mapped.then(mapping),
        }
    }

    #[test]
    fn auto_picks_the_strongest_usable_level() {
        let level = |f: Fake| choose(Requested::Auto, &f).map(|l| l.name());
        assert_eq!(level(fake(true, true, true, false)).unwrap(), "namespaces");
        assert_eq!(level(fake(true, false, true, false)).unwrap(), "chroot");
        assert_eq!(level(fake(false, true, true, true)).unwrap(), "userns");
        // Root in a pod without CAP_SYS_CHROOT, or a user without IDs.
        for f in [
            fake(true, false, false, true),
            fake(false, true, true, false),
        ] {
            let e = choose(Requested::Auto, &f).unwrap_err();
            assert!(matches!(e, IsolationError::NothingUsable { .. }), "{e}");
            let text = e.to_string();
            assert!(text.contains("--isolation chroot") && text.contains("uidmap"));
        }
    }

    #[test]
    fn auto_chroot_says_why_namespaces_were_not_used() {
        let level = choose(Requested::Auto, &fake(true, false, true, false)).unwrap();
        assert_eq!(level.sandbox_mode(), SandboxMode::Chroot);
        assert!(level.to_string().contains("namespaces unavailable: EPERM"));
    }

    #[test]
    fn forced_levels_are_checked() {
        let e = choose(Requested::Namespaces, &fake(true, false, true, false)).unwrap_err();
        assert!(e.to_string().contains("--isolation chroot"), "{e}");
        assert!(choose(Requested::Namespaces, &fake(false, true, true, true)).is_err());
        assert!(choose(Requested::Chroot, &fake(false, true, true, true)).is_err());
        assert!(choose(Requested::Chroot, &fake(true, true, false, false)).is_err());
        assert!(choose(Requested::Userns, &fake(true, true, true, true)).is_err());
        // Forcing chroot works even where namespaces would.
        let level = choose(Requested::Chroot, &fake(true, true, true, false)).unwrap();
        assert_eq!(
            level,
            Level::Chroot {
                reason: String::new()
            }
        );
    }

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = "# comment\nother:1:65536\nalice:100000:65536\n1001:300000:70000\n";
        let f = Path::new("/etc/subuid");
        assert_eq!(
            subordinate_range(text, f, Some("alice"), 1000).unwrap(),
            Some(IdRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            subordinate_range(text, f, None, 1001).unwrap(),
            Some(IdRange {
                start: 300000,
                count: 70000
            })
        );
        assert_eq!(subordinate_range(text, f, Some("bob"), 1002).unwrap(), None);
        for bad in [
            "alice:x:1\n",
            "alice:1\n",
            "alice:1:0\n",
            "alice:4294967295:2\n",
        ] {
            let e = subordinate_range(bad, f, Some("alice"), 1000).unwrap_err();
            assert!(e.to_string().starts_with("/etc/subuid line 1:"), "{e}");
        }
    }

    #[test]
    fn maps_the_user_to_root_and_the_range_after_it() {
        let m = mapping();
        assert_eq!(m.uid_map_args(), ["0", "1000", "1", "1", "100000", "65536"]);
        assert_eq!(m.gid_map_args(), ["0", "1000", "1", "1", "200000", "65536"]);
        assert!(Level::Userns(m).to_string().contains("100000-165535"));
    }

    #[test]
    fn user_names_come_from_passwd_text() {
        let passwd = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n";
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(passwd, 5), None);
    }

    #[test]
    fn requested_levels_parse() {
        assert_eq!("userns".parse::<Requested>().unwrap(), Requested::Userns);
        assert!("rootless".parse::<Requested>().is_err());
    }
}
