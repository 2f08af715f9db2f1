//! What apt leaves in a tree that mmdebstrap bootstrapped, written without
//! running apt: `/var/lib/apt/extended_states` (the packages apt marked as
//! automatically installed, which `apt-get autoremove` in a derived image
//! relies on) and the download directories and locks apt creates.
//!
//! mmdebstrap installs in two phases: the Essential set and its
//! dependencies with plain `dpkg --install` (apt records nothing about
//! them), then the variant's other packages (minbase: Priority required,
//! which takes in apt) and `--include` with `apt-get install`. apt marks
//! each package that second run installs only as a dependency as
//! `Auto-Installed: 1`, and writes the stanzas in its package cache's hash
//! order (see [`extended_states`]).

use std::collections::{HashMap, HashSet};

use super::packages::{BinaryPackage, Priority};
use super::resolve::Variant;
use crate::rootfs::safe::{FileKind, FsError, PathError, RelPath, Root};

/// What was asked for, as mmdebstrap asks apt for it.
#[derive(Debug, Clone)]
pub struct AptRequest {
    pub variant: Variant,
    /// `[packages] install` names (a virtual name stands for its provider).
    pub include: Vec<String>,
}

/// The packages of `pkgs` (a resolved plan) that apt marks as
/// automatically installed, in plan order; `None` when apt would not run
/// at all (nothing beyond the Essential set's closure was installed).
pub fn auto_installed<'p>(
    pkgs: &[&'p BinaryPackage],
    request: &AptRequest,
) -> Option<Vec<&'p BinaryPackage>> {
    let by_dpkg = installed_by_dpkg(pkgs);
    if by_dpkg.iter().all(|&d| d) {
        return None;
    }
    let include: HashSet<&str> = request.include.iter().map(String::as_str).collect();
    let asked = |p: &BinaryPackage| {
        let by_priority = match request.variant {
            Variant::Essential => false,
            Variant::Minbase | Variant::Buildd => p.priority == Priority::Required,
            Variant::Important => matches!(p.priority, Priority::Required | Priority::Important),
        };
        // rootstrap's non-essential variants name apt, as mmdebstrap's
        // take it in through its priority; buildd names build-essential.
        let named = match request.variant {
            Variant::Essential => false,
            Variant::Buildd => p.name == "apt" || p.name == "build-essential",
            Variant::Minbase | Variant::Important => p.name == "apt",
        };
        by_priority
            || named
            || include.contains(p.name.as_str())
            || p.provides.iter().any(|v| include.contains(v.name.as_str()))
    };
    Some(
        pkgs.iter()
            .zip(by_dpkg)
            .filter(|&(p, by_dpkg)| !by_dpkg && !asked(p))
            .map(|(p, _)| *p)
            .collect(),
    )
}

/// For each package, whether mmdebstrap's first phase installs it: the
/// Essential packages and, for each of their dependencies not already met
/// by that set, the first alternative the plan has (apt's choice).
fn installed_by_dpkg(pkgs: &[&BinaryPackage]) -> Vec<bool> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in pkgs.iter().enumerate() {
        by_name.entry(p.name.as_str()).or_default().push(i);
    }
    for (i, p) in pkgs.iter().enumerate() {
        for provided in &p.provides {
            by_name.entry(provided.name.as_str()).or_default().push(i);
        }
    }
    let mut chosen: Vec<bool> = pkgs.iter().map(|p| p.essential).collect();
    let mut todo: Vec<usize> = (0..pkgs.len()).filter(|&i| chosen[i]).collect();
    todo.reverse();
    while let Some(i) = todo.pop() {
        for dep in pkgs[i].pre_depends.iter().chain(&pkgs[i].depends) {
            let candidates = |name: &str| by_name.get(name).map(Vec::as_slice).unwrap_or(&[]);
            let met = dep
                .alternatives
                .iter()
                .any(|a| candidates(&a.name).iter().any(|&j| chosen[j]));
            if met {
                continue;
            }
            let first = dep
                .alternatives
                .iter()
                .find_map(|a| candidates(&a.name).first().copied());
            if let Some(j) = first {
                chosen[j] = true;
                todo.push(j);
            }
        }
    }
    chosen
}

/// `extended_states` as apt writes it from scratch: one stanza per package,
/// `Architecture` being the native one for `Architecture: all`, in the
/// order apt walks its package cache (by hash bucket, then by name length
/// and bytes within a bucket).
pub fn extended_states(auto: &[&BinaryPackage], native_arch: &str) -> String {
    let mut sorted: Vec<&BinaryPackage> = auto.to_vec();
    sorted.sort_by(|a, b| {
        let key = |p: &BinaryPackage| (apt_hash_bucket(&p.name), p.name.len());
        key(a)
            .cmp(&key(b))
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });
    let mut text = String::new();
    for p in sorted {
        let arch = if p.arch == "all" {
            native_arch
        } else {
            &p.arch
        };
        text.push_str(&format!(
            "Package: {}\nArchitecture: {arch}\nAuto-Installed: 1\n\n",
            p.name
        ));
    }
    text
}

/// apt's package hash table size (`APT::Cache-HashTableSize`, the same
/// default in apt 2.6 and 3.0).
const APT_HASH_TABLE_SIZE: u32 = 196_613;

/// The bucket apt's cache puts a package name in: DJB's times-33 hash of
/// the lower-cased name, modulo the table size.
fn apt_hash_bucket(name: &str) -> u32 {
    let hash = name.bytes().fold(5381u32, |h, c| {
        h.wrapping_mul(33)
            .wrapping_add(u32::from(c.to_ascii_lowercase()))
    });
    hash % APT_HASH_TABLE_SIZE
}

#[derive(Debug, thiserror::Error)]
pub enum AptStateError {
    #[error("rootfs: {0}")]
    Fs(#[from] FsError),
    #[error(transparent)]
    Path(#[from] PathError),
}

/// apt's download directories (owned by `_apt`, which apt drops to for
/// downloads, mode 0700) and the two lock files (empty, 0640) apt creates
/// the first time it runs. `_apt` is looked up in the tree's own
/// /etc/passwd; without it (no scripts ran, or no such user) root keeps
/// the directories, as apt does then.
pub fn write_download_dirs(root: &Root) -> Result<(), AptStateError> {
    let apt_uid = apt_user(root)?.unwrap_or(0);
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = RelPath::from_archive(dir.as_bytes())?;
        root.mkdir_all(&dir, 0o755)?;
        let partial = dir.join(b"partial")?;
        if root.lstat(&partial)?.is_none() {
            root.mkdir(&partial, 0o700)?;
        }
        // Whatever else a package left there is not apt's to take over.
        if root
            .lstat(&partial)?
            .is_some_and(|m| m.kind == FileKind::Dir)
        {
            root.set_owner(&partial, apt_uid, 0)?;
            root.set_mode(&partial, 0o700)?;
        }
        let lock = dir.join(b"lock")?;
        if root.lstat(&lock)?.is_none() {
            root.write_file(&lock, b"", 0o640)?;
        }
    }
    Ok(())
}

/// `_apt`'s uid in the tree's /etc/passwd, if it has one.
fn apt_user(root: &Root) -> Result<Option<u32>, AptStateError> {
    let passwd = RelPath::from_archive(b"etc/passwd")?;
    if !root
        .lstat(&passwd)?
        .is_some_and(|m| m.kind == FileKind::File)
    {
        return Ok(None);
    }
    let text = root.read_file(&passwd)?;
    Ok(uid_of(&String::from_utf8_lossy(&text), "_apt"))
}

fn uid_of(passwd: &str, user: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(user))
            .then(|| fields.nth(1).and_then(|uid| uid.parse().ok()))
            .flatten()
    })
}

/// Writes `var/lib/apt/extended_states` (0644, as apt leaves it) when apt
/// would have run.
pub fn write_extended_states(
    root: &Root,
    pkgs: &[&BinaryPackage],
    request: &AptRequest,
    native_arch: &str,
) -> Result<(), AptStateError> {
    let Some(auto) = auto_installed(pkgs, request) else {
        return Ok(());
    };
    let dir = RelPath::from_archive(b"var/lib/apt")?;
    root.mkdir_all(&dir, 0o755)?;
    root.write_file(
        &dir.join(b"extended_states")?,
        extended_states(&auto, native_arch).as_bytes(),
        0o644,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::packages::fixture_packages as packages;
    use super::*;

    fn auto_names(
        specs: &[(&str, &str)],
        variant: Variant,
        include: &[&str],
    ) -> Option<Vec<String>> {
        let pkgs = packages(specs);
        let refs: Vec<&BinaryPackage> = pkgs.iter().collect();
        let request = AptRequest {
            variant,
            include: include.iter().map(|s| s.to_string()).collect(),
        };
        auto_installed(&refs, &request).map(|v| v.iter().map(|p| p.name.clone()).collect())
    }

    /// A minbase plan shaped like bookworm's: libraries only apt or a
    /// required non-Essential package pull in are automatic; those the
    /// Essential set needs, and the required packages themselves, are not.
    #[test]
    fn only_dependencies_installed_by_apt_are_automatic() {
        let plan = [
            ("libc6", "Priority: optional\n"),
            (
                "dpkg",
                "Essential: yes\nPriority: required\nPre-Depends: libc6, tar\n",
            ),
            ("tar", "Essential: yes\nPriority: required\n"),
            ("libsystemd0", "Priority: optional\nDepends: libc6\n"),
            ("mount", "Priority: required\nDepends: libmount1\n"),
            ("libmount1", "Priority: optional\n"),
            (
                "apt",
                "Priority: required\nDepends: libapt-pkg6.0, gpgv | gpgv2, libsystemd0, \
                 debian-archive-keyring\n",
            ),
            ("libapt-pkg6.0", "Priority: optional\nDepends: libc6\n"),
            ("gpgv", "Priority: optional\n"),
            (
                "debian-archive-keyring",
                "Architecture: all\nPriority: important\n",
            ),
            (
                "login",
                "Essential: yes\nPriority: required\nPre-Depends: libsystemd0\n",
            ),
        ];
        assert_eq!(
            auto_names(&plan, Variant::Minbase, &[]).unwrap(),
            [
                "libmount1",
                "libapt-pkg6.0",
                "gpgv",
                "debian-archive-keyring"
            ]
        );
        // What the recipe installs is asked for, so not automatic; a
        // virtual name stands for its provider.
        let mut with_include = plan.to_vec();
        with_include.push(("gpgv-provider", "Provides: gpg-verify\n"));
        assert_eq!(
            auto_names(&with_include, Variant::Minbase, &["gpgv", "gpg-verify"]).unwrap(),
            ["libmount1", "libapt-pkg6.0", "debian-archive-keyring"]
        );
    }

    #[test]
    fn an_essential_dependency_met_by_a_later_alternative_pulls_in_nothing() {
        let plan = [
            ("bash", "Essential: yes\nDepends: awk-one | mawk\n"),
            ("mawk", "Essential: yes\n"),
            ("awk-one", ""),
            ("tool", "Depends: awk-one\n"),
        ];
        // mawk meets bash's dependency, so awk-one comes with tool, by apt.
        assert_eq!(
            auto_names(&plan, Variant::Essential, &["tool"]).unwrap(),
            ["awk-one"]
        );
    }

    #[test]
    fn without_a_second_phase_apt_writes_nothing() {
        let plan = [("libc6", ""), ("dpkg", "Essential: yes\nDepends: libc6\n")];
        assert_eq!(auto_names(&plan, Variant::Essential, &[]), None);
        assert_eq!(
            auto_names(&plan, Variant::Essential, &["libc6"]),
            None,
            "already installed by dpkg"
        );
    }

    #[test]
    fn apt_hash_matches_apts_own() {
        // pkgCache::sHash of these names, from apt 2.6 with the default
        // table size.
        for (name, bucket) in [
            ("libext2fs2", 11719),
            ("libffi8", 11830),
            ("libstdc++6", 190435),
            ("debian-archive-keyring", 87366),
            ("LibFFI8", 11830),
        ] {
            assert_eq!(apt_hash_bucket(name), bucket, "{name}");
        }
    }

    /// bookworm's minbase `extended_states` as mmdebstrap (apt 2.6) wrote
    /// it: the same 22 packages in the same order, byte for byte.
    #[test]
    fn stanzas_follow_apts_cache_order() {
        let mmdebstrap_order = [
            "libext2fs2",
            "libffi8",
            "libnettle8",
            "libunistring2",
            "libidn2-0",
            "libtasn1-6",
            "libp11-kit0",
            "libapt-pkg6.0",
            "libsepol2",
            "debian-archive-keyring",
            "libcom-err2",
            "gpgv",
            "libsemanage2",
            "adduser",
            "libxxhash0",
            "libsemanage-common",
            "libseccomp2",
            "libhogweed6",
            "libgnutls30",
            "logsave",
            "libss2",
            "libstdc++6",
        ];
        let mut specs: Vec<(&str, &str)> = mmdebstrap_order
            .iter()
            .map(|n| {
                let all = ["debian-archive-keyring", "adduser", "libsemanage-common"];
                (
                    *n,
                    if all.contains(n) {
                        "Architecture: all\n"
                    } else {
                        ""
                    },
                )
            })
            .collect();
        specs.sort();
        let pkgs = packages(&specs);
        let refs: Vec<&BinaryPackage> = pkgs.iter().collect();
        let text = extended_states(&refs, "amd64");
        let expected: String = mmdebstrap_order
            .iter()
            .map(|n| format!("Package: {n}\nArchitecture: amd64\nAuto-Installed: 1\n\n"))
            .collect();
        assert_eq!(text, expected);
    }

    #[test]
    fn a_bucket_shared_by_two_names_keeps_them_in_byte_order() {
        // 'a'·33 + 'm' = 'c'·33 + '+': the same times-33 hash.
        assert_eq!(apt_hash_bucket("amz"), apt_hash_bucket("c+z"));
        let pkgs = packages(&[("c+z", ""), ("amz", "")]);
        let refs: Vec<&BinaryPackage> = pkgs.iter().collect();
        assert!(extended_states(&refs, "amd64").starts_with("Package: amz\n"));
    }

    #[test]
    fn apt_uid_comes_from_the_trees_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n_apt:x:100:65534::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(uid_of(passwd, "_apt"), Some(100));
        assert_eq!(uid_of(passwd, "_ap"), None);
        assert_eq!(uid_of("_apt:x:notanumber:0::/:/bin/sh\n", "_apt"), None);
        assert_eq!(uid_of("", "_apt"), None);
    }

    #[test]
    fn download_dirs_belong_to_apt_and_are_private() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIP: giving a directory to another uid needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let etc = RelPath::from_archive(b"etc").unwrap();
        root.mkdir_all(&etc, 0o755).unwrap();
        root.write_file(
            &etc.join(b"passwd").unwrap(),
            b"root:x:0:0::/root:/bin/sh\n_apt:x:4242:65534::/nonexistent:/bin/false\n",
            0o644,
        )
        .unwrap();
        write_download_dirs(&root).unwrap();
        use std::os::unix::fs::MetadataExt;
        for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            let partial = std::fs::metadata(dir.path().join(d).join("partial")).unwrap();
            assert_eq!(
                (partial.uid(), partial.gid(), partial.mode() & 0o7777),
                (4242, 0, 0o700),
                "{d}/partial"
            );
            let lock = std::fs::metadata(dir.path().join(d).join("lock")).unwrap();
            assert_eq!((lock.len(), lock.mode() & 0o7777), (0, 0o640), "{d}/lock");
        }
    }
}
