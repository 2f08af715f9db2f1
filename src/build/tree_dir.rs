//! Where a base build's rootfs tree is made: in memory when it fits.
//!
//! The tree only lives until its layer is packed, but on a disk file system
//! making it costs far more than the bytes: every file's blocks are allocated
//! and written back while the build still runs, competing with unpacking and
//! the package scripts for the CPU, and the tree's removal is another pass
//! over its inodes. On this project's 2-core bench machine a trixie minbase
//! build made in `/dev/shm` took ~0.25 s less wall time on average (16
//! alternated pairs, −0.4 to +0.85 s each; its system time halved) than one
//! made in an ext4 `/tmp` (BENCHMARKS.md). On a Debian 13 host `/tmp` is a
//! tmpfs anyway.
//!
//! Memory is only chosen when nothing said otherwise (`--work-dir`,
//! `$TMPDIR`), when the tree can only hold what the plan installs (no
//! Dockerfile steps follow, whose growth is unknown), and when the planned
//! size fits with room to spare: twice the plan (package scripts, the
//! staging directory) must fit in the tmpfs's free space and in a quarter of
//! the memory available, a cgroup limit (a container's, a pod's) included.
//! Otherwise the tree goes where it always did.

use std::path::{Path, PathBuf};

use super::{set_mode, unique_dir, work_dir, BuildError, BuildOptions};
use crate::cleanup::{self, TempPath};
use crate::report::Reporter;

/// Every rootfs tree's name starts with this (then the PID and a stamp).
const TREE_PREFIX: &str = "rootstrap-rootfs";

/// The memory-backed directory every Linux system mounts (a tmpfs).
const SHM: &str = "/dev/shm";

/// Room kept free in the tmpfs beyond twice the plan, for the files the
/// package scripts write and what other programs keep there.
const SHM_HEADROOM: u64 = 256 << 20;

/// Where the rootfs of a build goes, and why, for the build log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeDir {
    pub path: PathBuf,
    pub in_memory: bool,
}

/// The parent directory for the build's rootfs tree. `planned_bytes` is the
/// plan's installed size; `grows_after` says whether later steps (a recipe
/// Dockerfile) add to the tree.
pub(crate) fn choose(
    opts: &BuildOptions,
    planned_bytes: u64,
    grows_after: bool,
) -> Result<TreeDir, BuildError> {
    let disk = TreeDir {
        path: work_dir(opts)?,
        in_memory: false,
    };
    if opts.work_dir.is_some() || std::env::var_os("TMPDIR").is_some() || grows_after {
        return Ok(disk);
    }
    let shm = Path::new(SHM);
    match (tmpfs_free_bytes(shm), mem_available_bytes()) {
        (Some(free), Some(available)) if fits_in_memory(planned_bytes, free, available) => {
            Ok(TreeDir {
                path: shm.to_path_buf(),
                in_memory: true,
            })
        }
        _ => Ok(disk),
    }
}

/// Makes the build's rootfs directory in `parent`, locked for as long as
/// the guard lives. In memory, trees left there by killed builds are
/// removed first: tmpfs pages stay until removed or the machine reboots.
pub(crate) fn make_tree(parent: &TreeDir, reporter: &dyn Reporter) -> Result<TempPath, BuildError> {
    if parent.in_memory {
        for gone in cleanup::remove_abandoned(&parent.path, &format!(".{TREE_PREFIX}-")) {
            reporter.info(&format!(
                "removed {}, left by a build that was killed",
                gone.display()
            ));
        }
        reporter.info(&format!(
            "rootfs made in memory ({})",
            parent.path.display()
        ));
    }
    let tree = TempPath::locked_dir(unique_dir(&parent.path, TREE_PREFIX)).map_err(|source| {
        BuildError::WorkDir {
            path: parent.path.clone(),
            source,
        }
    })?;
    set_mode(tree.path(), 0o755);
    Ok(tree)
}

/// The rule: twice the plan fits in the tmpfs with headroom, and in a
/// quarter of available memory (tmpfs pages are RAM; the rest of the build
/// and the machine's other work need the remainder).
fn fits_in_memory(planned_bytes: u64, tmpfs_free: u64, mem_available: u64) -> bool {
    let needed = planned_bytes.saturating_mul(2);
    needed.saturating_add(SHM_HEADROOM) <= tmpfs_free && needed <= mem_available / 4
}

/// Free bytes of `dir` if it is a writable tmpfs directory.
/// A hardened system may mount /dev/shm `noexec`: package scripts could
/// not run from a tree there, so it does not count.
fn tmpfs_free_bytes(dir: &Path) -> Option<u64> {
    use rustix::fs::StatVfsMountFlags;
    if !is_tmpfs(dir) {
        return None;
    }
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).ok()?;
    let vfs = rustix::fs::statvfs(dir).ok()?;
    if vfs
        .f_flag
        .intersects(StatVfsMountFlags::NOEXEC | StatVfsMountFlags::RDONLY)
    {
        return None;
    }
    // Chroot isolation makes device nodes in the tree for each run, and a
    // `nodev` mount (as /dev/shm usually is) would make them unusable.
    if crate::rootfs::isolation::sandbox_mode() == crate::rootfs::isolation::SandboxMode::Chroot
        && vfs.f_flag.contains(StatVfsMountFlags::NODEV)
    {
        return None;
    }
    Some(vfs.f_bavail.saturating_mul(vfs.f_frsize))
}

// The casts are no-ops on x86_64 but not on every target (`f_type` is
// 32-bit on some), so they stay.
#[allow(clippy::unnecessary_cast)]
fn is_tmpfs(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|fs| fs.f_type as i64 == libc::TMPFS_MAGIC as i64)
}

/// What the build may still use: `MemAvailable` from /proc/meminfo, or
/// less if a cgroup memory limit (a container's, a Kubernetes pod's) leaves
/// less room. tmpfs pages count against the cgroup of the process that
/// writes them, and /proc/meminfo in a container shows the host's memory.
fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = parse_mem_available(&text)?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    Some(
        match cgroup_memory_room(Path::new("/sys/fs/cgroup"), &cgroups) {
            Some(room) => available.min(room),
            None => available,
        },
    )
}

/// The least room (limit − usage) of this process's memory cgroup and its
/// ancestors, v2 (`memory.max`, `memory.current`) or v1
/// (`memory.limit_in_bytes`, `memory.usage_in_bytes`); `None` without a
/// limit. `proc_self_cgroup` is the text of /proc/self/cgroup.
fn cgroup_memory_room(sys_cgroup: &Path, proc_self_cgroup: &str) -> Option<u64> {
    let mut room: Option<u64> = None;
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (base, limit_file, usage_file) = if id == "0" && controllers.is_empty() {
            (sys_cgroup.to_path_buf(), "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                sys_cgroup.join("memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        let mut dir = Some(base.join(path.trim_start_matches('/')));
        while let Some(level) = dir {
            let read = |name: &str| -> Option<u64> {
                std::fs::read_to_string(level.join(name))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            };
            // "max" (v2) does not parse: no limit at this level.
            if let (Some(limit), Some(usage)) = (read(limit_file), read(usage_file)) {
                let left = limit.saturating_sub(usage);
                room = Some(room.map_or(left, |r| r.min(left)));
            }
            dir = if level == base {
                None
            } else {
                level.parent().map(Path::to_path_buf)
            };
        }
    }
    room
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::backend::planned_bytes;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn small_tree_with_ample_memory_goes_to_memory() {
        // trixie minbase: ~190 MiB installed.
        assert!(fits_in_memory(190 * MIB, 12 * GIB, 23 * GIB));
    }

    #[test]
    fn tree_larger_than_a_quarter_of_available_memory_stays_on_disk() {
        assert!(!fits_in_memory(190 * MIB, 12 * GIB, GIB));
        assert!(fits_in_memory(190 * MIB, 12 * GIB, 2 * GIB));
    }

    #[test]
    fn small_tmpfs_keeps_the_tree_on_disk() {
        // A container's default 64 MiB /dev/shm.
        assert!(!fits_in_memory(190 * MIB, 64 * MIB, 23 * GIB));
        // Twice the plan plus headroom is needed, not just the plan.
        assert!(!fits_in_memory(190 * MIB, 400 * MIB, 23 * GIB));
        assert!(fits_in_memory(
            190 * MIB,
            380 * MIB + SHM_HEADROOM,
            23 * GIB
        ));
    }

    #[test]
    fn huge_plans_do_not_overflow() {
        assert!(!fits_in_memory(u64::MAX, u64::MAX, u64::MAX));
        assert_eq!(
            planned_bytes([(Some(u64::MAX), 0), (Some(1), 0)].into_iter()),
            u64::MAX
        );
    }

    #[test]
    fn unknown_installed_size_counts_as_four_times_the_download() {
        let plan = [(Some(1000 * 1024), 400 * 1024), (None, 100)];
        assert_eq!(planned_bytes(plan.into_iter()), 1000 * 1024 + 400);
    }

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:       24683568 kB\nMemFree:        23000000 kB\n\
                       MemAvailable:   23456789 kB\nBuffers:            1234 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(23_456_789 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots\n"), None);
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_cgroup_v2_limit_on_any_ancestor_bounds_the_room() {
        let sys = tempfile::tempdir().unwrap();
        let pod = sys.path().join("kubepods/pod1");
        let container = pod.join("ctr");
        write(sys.path(), "memory.max", "max\n");
        write(sys.path(), "memory.current", "9000000000\n");
        write(&pod, "memory.max", "2147483648\n");
        write(&pod, "memory.current", "1073741824\n");
        write(&container, "memory.max", "max\n");
        write(&container, "memory.current", "1000\n");
        let room = cgroup_memory_room(sys.path(), "0::/kubepods/pod1/ctr\n");
        assert_eq!(room, Some(GIB));
        // No limit anywhere: no bound.
        assert_eq!(cgroup_memory_room(sys.path(), "0::/\n"), None);
    }

    #[test]
    fn a_cgroup_v1_memory_limit_bounds_the_room() {
        let sys = tempfile::tempdir().unwrap();
        let memory = sys.path().join("memory");
        let group = memory.join("docker/abc");
        write(&memory, "memory.limit_in_bytes", "9223372036854771712\n");
        write(&memory, "memory.usage_in_bytes", "5000000000\n");
        write(&group, "memory.limit_in_bytes", "536870912\n");
        write(&group, "memory.usage_in_bytes", "268435456\n");
        let proc = "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n";
        assert_eq!(cgroup_memory_room(sys.path(), proc), Some(256 * MIB));
    }

    #[test]
    fn a_limit_already_exceeded_leaves_no_room() {
        let sys = tempfile::tempdir().unwrap();
        write(sys.path(), "memory.max", "100\n");
        write(sys.path(), "memory.current", "200\n");
        assert_eq!(cgroup_memory_room(sys.path(), "0::/\n"), Some(0));
    }

    /// A tmpfs mounted for the test, unmounted when dropped.
    struct TestTmpfs(tempfile::TempDir);

    impl TestTmpfs {
        fn mount(options: &str) -> Option<TestTmpfs> {
            use rustix::mount::{mount, MountFlags};
            let dir = tempfile::tempdir().ok()?;
            let flags = match options {
                "noexec" => MountFlags::NOEXEC,
                _ => MountFlags::empty(),
            };
            mount("tmpfs", dir.path(), "tmpfs", flags, Some(c"size=8m")).ok()?;
            Some(TestTmpfs(dir))
        }
    }

    impl Drop for TestTmpfs {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(self.0.path(), rustix::mount::UnmountFlags::DETACH);
        }
    }

    #[test]
    fn a_noexec_tmpfs_is_not_used() {
        let (Some(plain), Some(noexec)) = (TestTmpfs::mount(""), TestTmpfs::mount("noexec")) else {
            eprintln!("skipping: cannot mount a tmpfs here (needs root)");
            return;
        };
        assert!(tmpfs_free_bytes(plain.0.path()).is_some_and(|free| free > 0));
        assert_eq!(tmpfs_free_bytes(noexec.0.path()), None);
    }

    #[test]
    fn explicit_work_dir_is_always_used() {
        let dir = tempfile::tempdir().unwrap();
        let opts = BuildOptions {
            work_dir: Some(dir.path().to_path_buf()),
            ..BuildOptions::default()
        };
        let chosen = choose(&opts, MIB, false).unwrap();
        assert_eq!(
            chosen,
            TreeDir {
                path: dir.path().to_path_buf(),
                in_memory: false
            }
        );
    }

    #[test]
    fn a_tree_that_grows_later_stays_in_the_work_dir() {
        let chosen = choose(&BuildOptions::default(), MIB, true).unwrap();
        assert!(!chosen.in_memory);
    }

    #[test]
    fn only_a_tmpfs_counts_as_memory() {
        assert_eq!(tmpfs_free_bytes(Path::new("/proc")), None);
        let shm = Path::new(SHM);
        if is_tmpfs(shm) {
            assert!(tmpfs_free_bytes(shm).is_some());
        } else {
            eprintln!("skipping the {SHM} half: it is not a tmpfs here");
        }
    }
}
