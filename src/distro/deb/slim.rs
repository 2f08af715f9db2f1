//! "Slim" images: the dpkg `path-exclude`/`path-include` configuration of
//! the official `debian:*-slim` images (debuerreotype's slimify list), and
//! dpkg's own rule for applying it, so the packages rootstrap unpacks itself
//! leave out exactly what `dpkg --unpack` would.
//!
//! dpkg (src/main/filters.c) decides per archive entry:
//! * every rule whose pattern matches the entry's absolute path (`/usr/…`)
//!   under `fnmatch(3)` with no flags (`*` also matches `/`) sets "skip"
//!   for an exclude and clears it for an include: the last match wins;
//! * a skipped directory or symlink is kept all the same when some include
//!   pattern, cut at its first wildcard (`*?[\`) and stripped of trailing
//!   slashes, is a byte prefix of its path, so the parents of included files
//!   (and symlinks such as `/usr/share/doc/libfoo -> foo`) survive.
//!
//! A filtered entry is not written, but dpkg still lists it in
//! `info/<pkg>.list`; it computes no hash for it (so a generated `md5sums`
//! leaves it out; a shipped one is installed as is), and `dpkg --verify`
//! reports it as `missing`. [`crate::rootfs::extract::Claimed::Filter`] keeps
//! the same record.

use std::ffi::CString;

use crate::archive::tar::EntryKind;

/// Where the configuration goes: the name the official images use, so
/// whoever knows to delete it there to get documentation back finds it.
pub const DPKG_CFG_PATH: &str = "etc/dpkg/dpkg.cfg.d/docker";

/// Left out (debuerreotype's `.slimify-excludes`, sorted).
pub const EXCLUDES: &[&str] = &[
    "/usr/share/doc/*",
    "/usr/share/doc/kde/HTML/*/*",
    "/usr/share/gnome/help/*/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
    "/usr/share/omf/*/*-*.emf",
];

/// Kept although an exclude matches (`.slimify-includes`, sorted): every
/// package's `copyright` stays, so licences come out whole.
pub const INCLUDES: &[&str] = &[
    "/usr/share/doc/*/copyright",
    "/usr/share/doc/kde/HTML/C/*",
    "/usr/share/gnome/help/*/C/*",
    "/usr/share/locale/all_languages",
    "/usr/share/locale/currency/*",
    "/usr/share/locale/l10n/*",
    "/usr/share/locale/languages",
    "/usr/share/locale/locale.alias",
    "/usr/share/omf/*/*-C.emf",
];

/// The dpkg.cfg.d file: excludes first, then includes (dpkg applies rules
/// in the order it reads them, the last match winning).
pub fn dpkg_cfg() -> String {
    let mut out = String::from(
        "# This is the \"slim\" variant of the Debian base image.\n\
         # Many files which are normally unnecessary in containers are excluded,\n\
         # and this configuration file keeps them that way.\n\n",
    );
    for p in EXCLUDES {
        out.push_str(&format!("path-exclude {p}\n"));
    }
    out.push('\n');
    for p in INCLUDES {
        out.push_str(&format!("path-include {p}\n"));
    }
    out
}

#[derive(Debug, thiserror::Error)]
#[error("path filter pattern {0:?} contains a NUL byte")]
pub struct BadPattern(String);

/// One `path-exclude` or `path-include` rule.
#[derive(Debug, Clone)]
struct Rule {
    pattern: CString,
    include: bool,
}

/// dpkg's path filter: rules in configuration order.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    rules: Vec<Rule>,
}

impl PathFilter {
    /// The slim configuration's rules, in the order [`dpkg_cfg`] writes them.
    pub fn slim() -> PathFilter {
        let mut f = PathFilter::default();
        for p in EXCLUDES {
            f.add(p, false).expect("shipped patterns have no NUL");
        }
        for p in INCLUDES {
            f.add(p, true).expect("shipped patterns have no NUL");
        }
        f
    }

    /// Appends a rule, as dpkg does for each `--path-exclude`/`--path-include`.
    pub fn add(&mut self, pattern: &str, include: bool) -> Result<(), BadPattern> {
        let pattern = CString::new(pattern).map_err(|_| BadPattern(pattern.to_owned()))?;
        self.rules.push(Rule { pattern, include });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether dpkg would leave out the archive entry at `path` (absolute,
    /// `/usr/share/doc/x`) of this kind.
    pub fn skips(&self, path: &[u8], kind: EntryKind) -> bool {
        let Ok(cpath) = CString::new(path) else {
            // Tar paths never hold NUL; nothing to match then.
            return false;
        };
        let mut skip = false;
        for rule in &self.rules {
            if fnmatch(&rule.pattern, &cpath) {
                skip = !rule.include;
            }
        }
        if skip && matches!(kind, EntryKind::Dir | EntryKind::Symlink) {
            let reincluded = self.rules.iter().filter(|r| r.include).any(|r| {
                let pattern = r.pattern.as_bytes();
                let mut len = pattern
                    .iter()
                    .position(|b| b"*?[\\".contains(b))
                    .unwrap_or(pattern.len());
                while len > 0 && pattern[len - 1] == b'/' {
                    len -= 1;
                }
                // dpkg's strncmp(path, pattern, len) == 0.
                path.starts_with(&pattern[..len])
            });
            if reincluded {
                return false;
            }
        }
        skip
    }
}

/// `fnmatch(pattern, path, 0)`: the C library's, the function dpkg calls,
/// so brackets, escapes and `*` across `/` behave exactly as there.
fn fnmatch(pattern: &CString, path: &CString) -> bool {
    // SAFETY: both are valid NUL-terminated strings that outlive the call;
    // fnmatch only reads them.
    unsafe { libc::fnmatch(pattern.as_ptr(), path.as_ptr(), 0) == 0 }
}

/// Whether `path` (absolute) is one of the `/usr/share/man/man[0-9]`
/// directories. debuerreotype creates those that existed again after
/// slimming, because some maintainer scripts (update-alternatives slave
/// links for man pages) fail without them; rootstrap does the same for
/// those it left out.
pub fn is_man_section_dir(path: &[u8]) -> bool {
    match path.strip_prefix(b"/usr/share/man/man") {
        Some([d]) => d.is_ascii_digit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(path: &str, kind: EntryKind) -> bool {
        PathFilter::slim().skips(path.as_bytes(), kind)
    }

    #[test]
    fn slim_rules_follow_dpkg() {
        use EntryKind::*;
        // Excluded files, at any depth (`*` crosses `/`).
        assert!(skips("/usr/share/doc/bash/README", File));
        assert!(skips("/usr/share/doc/bash/examples/x/y", File));
        assert!(skips("/usr/share/man/man1/ls.1.gz", File));
        assert!(skips("/usr/share/locale/de/LC_MESSAGES/x.mo", File));
        assert!(skips("/usr/share/info/dir", File));
        // The last matching rule wins: copyright files come back.
        assert!(!skips("/usr/share/doc/bash/copyright", File));
        assert!(!skips("/usr/share/locale/locale.alias", File));
        // `*` crosses `/` here too: a nested copyright is kept.
        assert!(!skips("/usr/share/doc/a/b/copyright", File));
        // Directories and symlinks an include's fixed prefix covers stay.
        assert!(!skips("/usr/share/doc/bash", Dir));
        assert!(!skips("/usr/share/doc/libfoo", Symlink));
        // ... files do not, nor directories outside every include prefix.
        assert!(skips("/usr/share/doc/libfoo", File));
        assert!(skips("/usr/share/man/man1", Dir));
        assert!(skips("/usr/share/info/sub", Dir));
        // The matched directory itself is not matched by `dir/*`.
        assert!(!skips("/usr/share/doc", Dir));
        assert!(!skips("/usr/share/man", Dir));
        // Elsewhere nothing changes.
        assert!(!skips("/usr/bin/bash", File));
        assert!(!skips("/usr/share/docs/x", File));
        assert!(!skips("/usr/share/zoneinfo/UTC", File));
        // Include prefixes are whole: `/usr/share/locale/currency/*` keeps
        // its own directory, not `/usr/share/locale/de`.
        assert!(skips("/usr/share/locale/de", Dir));
        assert!(!skips("/usr/share/locale/currency", Dir));
        assert!(skips("/usr/share/locale/de/LC_MESSAGES/sed.mo", File));
    }

    #[test]
    fn fnmatch_is_the_c_librarys() {
        let mut f = PathFilter::default();
        f.add("/a/[bc]?/*.gz", false).unwrap();
        f.add("/a/b\\*/x", false).unwrap();
        assert!(f.skips(b"/a/bz/q/r.gz", EntryKind::File));
        assert!(!f.skips(b"/a/dz/r.gz", EntryKind::File));
        assert!(f.skips(b"/a/b*/x", EntryKind::File));
        assert!(!f.skips(b"/a/bb/x", EntryKind::File));
        // No rules: nothing is skipped.
        assert!(!PathFilter::default().skips(b"/usr/share/doc/x", EntryKind::File));
        assert!(f.add("a\0b", true).is_err());
    }

    #[test]
    fn cfg_lists_every_rule_in_order() {
        let cfg = dpkg_cfg();
        let rules: Vec<&str> = cfg.lines().filter(|l| l.starts_with("path-")).collect();
        assert_eq!(rules.len(), EXCLUDES.len() + INCLUDES.len());
        assert_eq!(rules[0], "path-exclude /usr/share/doc/*");
        assert_eq!(
            rules.last().copied(),
            Some("path-include /usr/share/omf/*/*-C.emf")
        );
        let first_include = rules
            .iter()
            .position(|r| r.starts_with("path-include"))
            .unwrap();
        assert!(rules[first_include..]
            .iter()
            .all(|r| r.starts_with("path-include")));
    }

    #[test]
    fn man_section_dirs() {
        assert!(is_man_section_dir(b"/usr/share/man/man1"));
        assert!(is_man_section_dir(b"/usr/share/man/man8"));
        assert!(!is_man_section_dir(b"/usr/share/man/de"));
        assert!(!is_man_section_dir(b"/usr/share/man/man1/ls.1.gz"));
    }
}
