//! USER / `--chown` resolution by reading the rootfs's /etc/passwd and
//! /etc/group as text. The host's NSS is never consulted: it would dlopen
//! `libnss_*.so`, and the rootfs could plant those (HOSTILE 42).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::SandboxError;
use crate::rootfs::safe::{RelPath, Root};

/// uid, gid, supplementary gids.
pub type UserIds = (u32, u32, Vec<u32>);

/// Largest passwd/group file read.
const MAX_DB: u64 = 16 << 20;

/// Resolves a Docker `USER` value (`name`, `uid`, `name:group`, `uid:gid`,
/// and mixes) against the rootfs at `root`, following Docker (runc)
/// semantics: a numeric uid need not exist (gid then 0), a name must; an
/// explicit group replaces the supplementary groups, otherwise they are the
/// groups listing the user as a member.
pub fn lookup_user(root: &Path, spec: &str) -> Result<UserIds, SandboxError> {
    let rootfs = Root::open(root).map_err(|source| SandboxError::Rootfs {
        path: root.to_path_buf(),
        source,
    })?;
    let passwd = read_db(&rootfs, "etc/passwd")?;
    let group = read_db(&rootfs, "etc/group")?;
    resolve_user(
        spec,
        passwd.as_deref(),
        group.as_deref(),
        &root.join("etc/passwd"),
        &root.join("etc/group"),
    )
}

/// Reads a regular file inside the root (symlinks never lead out of it);
/// `None` if it does not exist.
fn read_db(root: &Root, relative: &str) -> Result<Option<String>, SandboxError> {
    let err = |source: io::Error| SandboxError::Rootfs {
        path: root.path().join(relative),
        source,
    };
    let rel = RelPath::from_archive(relative.as_bytes())
        .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
    let file = match root.open_read(&rel) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.source)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_DB).read_to_end(&mut bytes).map_err(err)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// The pure part of [`lookup_user`]: `passwd` and `group` are the file
/// contents (`None` when absent); the paths only label errors.
pub fn resolve_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
    passwd_path: &Path,
    group_path: &Path,
) -> Result<UserIds, SandboxError> {
    let bad = |message: &str| SandboxError::BadUserSpec {
        spec: spec.to_string(),
        message: message.to_string(),
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part == Some("") {
        return Err(bad("empty user or group"));
    }
    if spec.chars().any(|c| c.is_control() || c == '\n') {
        return Err(bad("control character"));
    }
    let numeric_user = parse_id(user_part);
    let users = parse_passwd(passwd.unwrap_or(""), user_part, passwd_path)?;
    let matched = users
        .iter()
        .find(|u| u.name == user_part || Some(u.uid) == numeric_user);
    let (uid, mut gid, user_name) = match (matched, numeric_user) {
        (Some(entry), _) => (entry.uid, entry.gid, Some(entry.name)),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => {
            return Err(SandboxError::UnknownUser {
                spec: spec.to_string(),
                file: passwd_path.to_path_buf(),
            })
        }
    };
    let groups = parse_group(group.unwrap_or(""), group_part, group_path)?;
    let mut supplementary = Vec::new();
    match group_part {
        Some(group_arg) => {
            let numeric_group = parse_id(group_arg);
            let found = groups
                .iter()
                .find(|g| g.name == group_arg || Some(g.gid) == numeric_group);
            gid = match (found, numeric_group) {
                (Some(entry), _) => entry.gid,
                (None, Some(gid)) => gid,
                (None, None) => {
                    return Err(SandboxError::UnknownGroup {
                        spec: spec.to_string(),
                        file: group_path.to_path_buf(),
                    })
                }
            };
        }
        None => {
            if let Some(name) = user_name {
                for entry in groups.iter().filter(|g| g.members.contains(&name)) {
                    if !supplementary.contains(&entry.gid) {
                        supplementary.push(entry.gid);
                    }
                }
            }
        }
    }
    Ok((uid, gid, supplementary))
}

fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_passwd<'a>(
    text: &'a str,
    wanted: &str,
    path: &Path,
) -> Result<Vec<PasswdEntry<'a>>, SandboxError> {
    parse_entries(
        text,
        Some(wanted),
        path,
        "expected name:password:uid:gid:...",
        |fields| match fields {
            [name, _pw, uid, gid, ..] => parse_id(uid)
                .zip(parse_id(gid))
                .map(|(uid, gid)| PasswdEntry { name, uid, gid }),
            _ => None,
        },
    )
}

fn parse_group<'a>(
    text: &'a str,
    wanted: Option<&str>,
    path: &Path,
) -> Result<Vec<GroupEntry<'a>>, SandboxError> {
    parse_entries(
        text,
        wanted,
        path,
        "expected name:password:gid:members",
        |fields| match fields {
            [name, _pw, gid, rest @ ..] => parse_id(gid).map(|gid| GroupEntry {
                name,
                gid,
                members: rest
                    .first()
                    .map(|m| m.split(',').filter(|m| !m.is_empty()).collect())
                    .unwrap_or_default(),
            }),
            _ => None,
        },
    )
}

/// Parses passwd or group lines with `parse`, skipping comments, NIS
/// `+`/`-` entries and lines too malformed to use — except that a malformed
/// line for the wanted name is an error (`expected` says what it should
/// be), since silently skipping it would pick the wrong ids.
fn parse_entries<'a, T>(
    text: &'a str,
    wanted: Option<&str>,
    path: &Path,
    expected: &str,
    parse: impl Fn(&[&'a str]) -> Option<T>,
) -> Result<Vec<T>, SandboxError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') || line.starts_with(['+', '-']) {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        match parse(&fields) {
            Some(entry) => out.push(entry),
            None if wanted.is_some() && fields.first() == wanted.as_ref() => {
                return Err(malformed(path, index, expected))
            }
            None => {}
        }
    }
    Ok(out)
}

fn malformed(path: &Path, index: usize, message: &str) -> SandboxError {
    SandboxError::Malformed {
        file: PathBuf::from(path),
        line: index + 1,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        +nis\n\
        daemon:x:1:1::/:/usr/sbin/nologin\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        broken:x:notanumber:1\n";
    const GROUP: &str = "root:x:0:\n\
        app:x:1000:\n\
        audio:x:29:app,other\n\
        video:x:44:other\n\
        staff:x:50:app\n";

    fn resolve(spec: &str) -> Result<UserIds, SandboxError> {
        resolve_user(
            spec,
            Some(PASSWD),
            Some(GROUP),
            Path::new("/r/etc/passwd"),
            Path::new("/r/etc/group"),
        )
    }

    #[test]
    fn name_gives_ids_and_member_groups() {
        assert_eq!(resolve("app").unwrap(), (1000, 1000, vec![29, 50]));
        assert_eq!(resolve("root").unwrap(), (0, 0, vec![]));
    }

    #[test]
    fn known_uid_behaves_like_its_name() {
        assert_eq!(resolve("1000").unwrap(), (1000, 1000, vec![29, 50]));
    }

    #[test]
    fn unknown_uid_gets_gid_zero() {
        assert_eq!(resolve("4242").unwrap(), (4242, 0, vec![]));
        assert_eq!(
            resolve_user("7", None, None, Path::new("p"), Path::new("g")).unwrap(),
            (7, 0, vec![])
        );
    }

    #[test]
    fn explicit_group_replaces_supplementary_groups() {
        assert_eq!(resolve("app:video").unwrap(), (1000, 44, vec![]));
        assert_eq!(resolve("app:777").unwrap(), (1000, 777, vec![]));
        assert_eq!(resolve("1000:50").unwrap(), (1000, 50, vec![]));
    }

    #[test]
    fn unknown_names_are_errors_naming_the_file() {
        let err = resolve("nobody").unwrap_err();
        assert!(err.to_string().contains("/r/etc/passwd"), "{err}");
        assert!(matches!(
            resolve("app:nogroup"),
            Err(SandboxError::UnknownGroup { .. })
        ));
    }

    #[test]
    fn malformed_line_for_the_wanted_user_is_reported_with_its_line() {
        match resolve("broken") {
            Err(SandboxError::Malformed { line, .. }) => assert_eq!(line, 6),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_specs_are_rejected() {
        for spec in ["", ":", "app:", ":0", "a\nb"] {
            assert!(resolve(spec).is_err(), "{spec:?} accepted");
        }
    }

    /// HOSTILE 42: an absolute symlink in the rootfs names a path inside the
    /// root, never the host's file.
    #[test]
    fn passwd_symlink_to_a_host_path_stays_in_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(
            outside.path().join("passwd"),
            "evil:x:4242:4242::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("passwd"),
            root.path().join("etc/passwd"),
        )
        .unwrap();
        assert!(matches!(
            lookup_user(root.path(), "evil"),
            Err(SandboxError::UnknownUser { .. })
        ));
    }

    #[test]
    fn non_regular_passwd_is_an_error_not_a_hang() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        let fifo = root.path().join("etc/passwd");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = lookup_user(root.path(), "app").unwrap_err();
        assert!(err.to_string().contains("etc/passwd"), "{err}");
    }

    #[test]
    fn reads_the_rootfs_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(root.path().join("etc/group"), GROUP).unwrap();
        assert_eq!(
            lookup_user(root.path(), "app:staff").unwrap(),
            (1000, 50, vec![])
        );
    }
}
