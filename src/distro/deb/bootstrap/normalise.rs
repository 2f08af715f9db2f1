//! Stage 5: what differs on every run (logs, caches, machine ids, shadow
//! dates) removed or clamped so builds are reproducible.
use super::*;

/// Files installs leave behind that differ on every run (logs, caches,
/// backups, random seeds): removed so builds are reproducible (HOSTILE 44).
const VOLATILE: &[&str] = &[
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",
    "var/cache/ldconfig/aux-cache",
    "var/lib/systemd/catalog/database",
    "var/lib/systemd/random-seed",
    "etc/apt/apt.conf.d/01autoremove-kernels",
    "usr/share/info/dir.old",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid-",
    "etc/subgid-",
    "usr/sbin/policy-rc.d",
];

/// Directories whose matching files are all volatile: (directory, which
/// names). Backups (`*-old`) are written on every database update, apt's
/// binary caches and downloaded lists depend on when they were made.
const VOLATILE_IN: &[(&str, NameFilter)] = &[
    ("var/lib/dpkg", is_old_backup),
    ("var/cache/debconf", is_old_backup),
    ("var/cache/apt", is_apt_binary_cache),
    ("var/lib/apt/lists", is_apt_list),
    ("var/lib/apt/lists/partial", |_| true),
];

type NameFilter = fn(&[u8]) -> bool;

fn is_old_backup(name: &[u8]) -> bool {
    name.ends_with(b"-old")
}

fn is_apt_binary_cache(name: &[u8]) -> bool {
    name.ends_with(b".bin")
}

/// Everything in apt's lists directory but its lock (and `partial/`,
/// emptied separately).
fn is_apt_list(name: &[u8]) -> bool {
    name != b"lock"
}

/// Files that must stay but whose content is per-machine: emptied, as
/// systemd expects an empty machine-id in images ("first boot").
const EMPTIED: &[&str] = &["etc/machine-id", "var/lib/dbus/machine-id"];

/// Normalises what package scripts leave behind (DESIGN: reproducibility).
pub fn normalise(root: &Root, epoch: i64) -> Result<(), BootstrapError> {
    for path in VOLATILE {
        let rel = RelPath::from_archive(path.as_bytes())?;
        if root.lstat(&rel)?.is_some() {
            root.remove(&rel)?;
        }
    }
    for (dir, volatile) in VOLATILE_IN {
        remove_files_in(root, dir, *volatile)?;
    }
    clear_run(root)?;
    for path in EMPTIED {
        let rel = RelPath::from_archive(path.as_bytes())?;
        // A symlink (dbus's usually points at /etc/machine-id) is left alone.
        if root.lstat(&rel)?.is_some_and(|m| m.kind == FileKind::File) {
            root.write_file(&rel, b"", 0o444)?;
        }
    }
    let shadow = RelPath::from_archive(b"etc/shadow")?;
    if let Some(meta) = root.lstat(&shadow)?.filter(|m| m.kind == FileKind::File) {
        let text = String::from_utf8_lossy(&root.read_file(&shadow)?).into_owned();
        let clamped = clamp_shadow(&text, epoch / 86400);
        if clamped != text {
            // Rewritten in place of passwd's: same mode, and its group
            // (`shadow`, which lets unix_chkpwd read it) stays.
            root.write_file(&shadow, clamped.as_bytes(), meta.mode)?;
            root.set_owner(&shadow, meta.uid, meta.gid)?;
            root.set_mode(&shadow, meta.mode)?;
        }
    }
    Ok(())
}

/// Empties /run but for `lock`, as mmdebstrap does: what scripts left
/// there belongs to a running system, but /var/lock links to /run/lock
/// (base-files), so that stays (1777, as base-files makes it).
fn clear_run(root: &Root) -> Result<(), BootstrapError> {
    let run = RelPath::from_archive(b"run")?;
    if !root.lstat(&run)?.is_some_and(|m| m.kind == FileKind::Dir) {
        return Ok(());
    }
    for name in root.read_dir(&run)? {
        if name != b"lock" {
            root.remove_all(&run.join(&name)?)?;
        }
    }
    Ok(())
}

/// Removes the non-directory entries of `dir` whose names match; a missing
/// directory, or one that is a symlink, is left alone.
fn remove_files_in(root: &Root, dir: &str, volatile: NameFilter) -> Result<(), BootstrapError> {
    let rel = RelPath::from_archive(dir.as_bytes())?;
    if !root.lstat(&rel)?.is_some_and(|m| m.kind == FileKind::Dir) {
        return Ok(());
    }
    for name in root.read_dir(&rel)? {
        if !volatile(&name) {
            continue;
        }
        let entry = rel.join(&name)?;
        if root.lstat(&entry)?.is_some_and(|m| m.kind != FileKind::Dir) {
            root.remove(&entry)?;
        }
    }
    Ok(())
}

/// Clamps field 3 (days since the epoch of the last password change) so a
/// rebuild on another day produces the same file.
fn clamp_shadow(text: &str, max_day: i64) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let mut fields: Vec<String> = body.split(':').map(str::to_owned).collect();
        if let Some(day) = fields.get(2).and_then(|d| d.parse::<i64>().ok()) {
            if day > max_day {
                fields[2] = max_day.to_string();
            }
        }
        out.push_str(&fields.join(":"));
        out.push_str(nl);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_removes_volatile_files_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let write = |p: &str, data: &[u8]| {
            let rel = RelPath::from_archive(p.as_bytes()).unwrap();
            root.mkdir_all(&rel.parent().unwrap(), 0o755).unwrap();
            root.write_file(&rel, data, 0o644).unwrap();
        };
        // Spelled out so that dropping a path from VOLATILE fails here;
        // VOLATILE itself is chained in below so a new entry is covered too.
        let removed = [
            "var/log/dpkg.log",
            "var/log/alternatives.log",
            "var/log/bootstrap.log",
            "var/log/apt/history.log",
            "var/log/apt/term.log",
            "var/log/apt/eipp.log.xz",
            "var/cache/ldconfig/aux-cache",
            "var/lib/systemd/catalog/database",
            "etc/apt/apt.conf.d/01autoremove-kernels",
            "usr/share/info/dir.old",
            "etc/passwd-",
            "etc/group-",
            "etc/gshadow-",
            "etc/subuid-",
            "etc/subgid-",
            "usr/sbin/policy-rc.d",
            "var/lib/dpkg/status-old",
            "var/lib/dpkg/triggers-old",
            "var/cache/debconf/templates.dat-old",
            "var/cache/debconf/passwords.dat-old",
            "var/cache/apt/pkgcache.bin",
            "var/cache/apt/srcpkgcache.bin",
            "var/lib/apt/lists/deb.example_debian_dists_trixie_InRelease",
            "var/lib/apt/lists/partial/x_Packages",
            "var/lib/systemd/random-seed",
            "etc/shadow-",
            "run/mount/utab",
            "run/systemd/deep/state",
        ];
        let kept = [
            "run/lock/x.lock",
            "var/lib/dpkg/status",
            "var/cache/debconf/templates.dat",
            "var/lib/apt/lists/lock",
            "var/cache/apt/archives/lock",
            "etc/passwd",
        ];
        for p in removed.iter().chain(VOLATILE).chain(&kept) {
            write(p, b"data\n");
        }
        write("etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        write("etc/shadow", b"root:*:30000:0:99999:7:::\n");
        let shadow = RelPath::from_archive(b"etc/shadow").unwrap();
        // Group `shadow` needs root to set; otherwise our own group stands in.
        let gid = if rustix::process::geteuid().is_root() {
            42
        } else {
            rustix::process::getegid().as_raw()
        };
        let uid = rustix::process::geteuid().as_raw();
        root.set_owner(&shadow, uid, gid).unwrap();
        root.set_mode(&shadow, 0o640).unwrap();
        let dbus = RelPath::from_archive(b"var/lib/dbus/machine-id").unwrap();
        root.mkdir_all(&dbus.parent().unwrap(), 0o755).unwrap();
        root.symlink(b"/etc/machine-id", &dbus).unwrap();

        normalise(&root, 20000 * 86400).unwrap();
        for p in removed.iter().chain(VOLATILE) {
            assert!(!dir.path().join(p).exists(), "{p} should be gone");
        }
        for p in kept {
            assert!(dir.path().join(p).exists(), "{p} should stay");
        }
        assert!(dir.path().join("var/lib/apt/lists/partial").is_dir());
        assert_eq!(
            std::fs::read(dir.path().join("etc/machine-id")).unwrap(),
            b""
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("var/lib/dbus/machine-id")).unwrap(),
            Path::new("/etc/machine-id")
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("etc/shadow")).unwrap(),
            "root:*:20000:0:99999:7:::\n"
        );
        let meta = std::fs::metadata(dir.path().join("etc/shadow")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (uid, gid, 0o640)
        );
    }

    #[test]
    fn shadow_last_change_is_clamped() {
        let text = "root:*:20000:0:99999:7:::\nnobody:*:10:0:99999:7:::\nbroken\n";
        assert_eq!(
            clamp_shadow(text, 19000),
            "root:*:19000:0:99999:7:::\nnobody:*:10:0:99999:7:::\nbroken\n"
        );
    }
}
