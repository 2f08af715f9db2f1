//! dpkg's database for packages we unpacked ourselves, written exactly as
//! `dpkg --unpack` leaves it, so the target's own `dpkg --configure -a`
//! (run in the sandbox) takes over from there.
//!
//! What `dpkg --unpack` leaves, and what we reproduce:
//! * `status`: the control paragraph with dpkg's field order (known fields
//!   in dpkg's `fieldinfos[]` order, then the others as written),
//!   `Status: install ok unpacked`, and `Conffiles:` lines whose hash is
//!   `newconffile` (dpkg computes real hashes at configure time, when it
//!   moves each `<conffile>.dpkg-new` into place — extraction writes
//!   conffiles under that name for this reason);
//! * `info/<pkg>.list` (`/.` first, then every path in archive order),
//!   `.md5sums` (the package's own, else computed while extracting),
//!   `.conffiles`, maintainer scripts (0755) and the other control files;
//!   `<pkg>:<arch>.*` for `Multi-Arch: same`;
//! * `triggers/`: `File` for file-trigger interests, one file per named
//!   trigger, an empty `Unincorp`; `updates/`, `info/format` = `1`,
//!   empty `available`, `diversions`, `statoverride`, and `arch`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::archive::tar::EntryKind;
use crate::distro::deb::control::{self, ControlError};
use crate::distro::deb::debfile::{ControlFiles, DebError, DebFile};
use crate::rootfs::extract::{extract_tar_with, Claimed, ExtractError, ExtractOptions, Extracted};
use crate::rootfs::safe::{FsError, PathError, RelPath, Root};

#[derive(Debug, thiserror::Error)]
pub enum DpkgDbError {
    #[error("{package}: control file: {source}")]
    Control {
        package: String,
        #[source]
        source: ControlError,
    },
    #[error("{package}: {msg}")]
    Invalid { package: String, msg: String },
    #[error("writing the dpkg database: {0}")]
    Fs(#[from] FsError),
    #[error("writing the dpkg database: {0}")]
    Path(#[from] PathError),
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Db(#[from] DpkgDbError),
}

/// A package whose data is in the rootfs, ready for the dpkg database.
#[derive(Debug, Clone)]
pub struct UnpackedPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// `Multi-Arch: same`: database files are named `<name>:<arch>.*`.
    pub multi_arch_same: bool,
    /// All files of the control member (`control` included).
    pub control: ControlFiles,
    /// Every extracted path, in archive order (the root `./` excluded).
    pub files: Vec<Extracted>,
}

/// Known fields in the order dpkg writes them (lib/dpkg/parse.c
/// `fieldinfos[]`); everything else follows in control-file order.
const FIELD_ORDER: &[&str] = &[
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
    "Triggers-Pending",
    "Triggers-Awaited",
];

const DEPENDENCY_FIELDS: &[&str] = &[
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
];

/// Fields that only describe a package in an archive index, never status.
const INDEX_ONLY: &[&str] = &["Filename", "Size", "MD5sum", "MSDOS-Filename", "Status"];

const SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];

impl UnpackedPackage {
    /// Builds the record from a .deb's control files and what extraction
    /// returned.
    pub fn new(
        control: ControlFiles,
        files: Vec<Extracted>,
        fallback_name: &str,
    ) -> Result<Self, DpkgDbError> {
        let text = control.control_text().ok_or_else(|| DpkgDbError::Invalid {
            package: fallback_name.to_string(),
            msg: "no UTF-8 control file".into(),
        })?;
        let para = control::single_paragraph(text).map_err(|source| DpkgDbError::Control {
            package: fallback_name.to_string(),
            source,
        })?;
        let field = |n: &str| {
            para.get(n)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| DpkgDbError::Invalid {
                    package: fallback_name.to_string(),
                    msg: format!("control file lacks {n}"),
                })
        };
        let name = field("Package")?.to_string();
        if !name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c))
        {
            return Err(DpkgDbError::Invalid {
                package: fallback_name.to_string(),
                msg: format!("invalid package name {name:?}"),
            });
        }
        Ok(UnpackedPackage {
            version: field("Version")?.to_string(),
            arch: field("Architecture")?.to_string(),
            multi_arch_same: para.get("Multi-Arch").map(str::trim) == Some("same"),
            name,
            control,
            files,
        })
    }

    /// `name` or `name:arch` (Multi-Arch: same), as in `info/` file names.
    pub fn db_name(&self) -> String {
        if self.multi_arch_same {
            format!("{}:{}", self.name, self.arch)
        } else {
            self.name.clone()
        }
    }

    /// The package's `status` paragraph (ending with a newline, no blank line).
    pub fn status_stanza(&self) -> Result<String, DpkgDbError> {
        let text = self.control.control_text().unwrap_or_default();
        let para = control::single_paragraph(text).map_err(|source| DpkgDbError::Control {
            package: self.name.clone(),
            source,
        })?;
        let mut known: BTreeMap<usize, String> = BTreeMap::new();
        let mut others = Vec::new();
        for (name, value) in para.fields() {
            if INDEX_ONLY.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                continue;
            }
            match FIELD_ORDER
                .iter()
                .position(|f| f.eq_ignore_ascii_case(name))
            {
                Some(i) => {
                    if let Some(v) = normalise_known(FIELD_ORDER[i], value) {
                        known.insert(i, v);
                    }
                }
                None => others.push(format_field(name, value)),
            }
        }
        let pos = |n: &str| FIELD_ORDER.iter().position(|f| *f == n).unwrap_or(0);
        known.insert(pos("Status"), "Status: install ok unpacked\n".into());
        let conffiles = self.control.conffiles();
        if !conffiles.is_empty() {
            let mut v = String::from("Conffiles:\n");
            for c in conffiles {
                let _ = writeln!(v, " {c} newconffile");
            }
            known.insert(pos("Conffiles"), v);
        }
        let mut out: String = known.into_values().collect();
        for o in others {
            out.push_str(&o);
        }
        Ok(out)
    }

    /// `info/<pkg>.list`.
    pub fn list_file(&self) -> Vec<u8> {
        let mut out = b"/.\n".to_vec();
        for e in &self.files {
            out.extend_from_slice(&e.path.to_absolute());
            out.push(b'\n');
        }
        out
    }

    /// `info/<pkg>.md5sums`: the package's own, else from extraction (regular
    /// files and hard links, archive order). `None` when neither exists.
    pub fn md5sums_file(&self) -> Option<Vec<u8>> {
        if let Some(own) = self.control.get("md5sums") {
            return Some(own.to_vec());
        }
        let mut out = Vec::new();
        for e in &self.files {
            if let (EntryKind::File | EntryKind::Hardlink, Some(md5)) = (e.kind, e.md5) {
                out.extend_from_slice(hex::encode(md5).as_bytes());
                out.extend_from_slice(b"  ");
                out.extend_from_slice(e.path.as_bytes());
                out.push(b'\n');
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

fn format_field(name: &str, value: &str) -> String {
    if value.is_empty() || value.starts_with('\n') {
        format!("{name}:{value}\n")
    } else {
        format!("{name}: {value}\n")
    }
}

/// dpkg parses and re-serialises some fields: booleans default to "no" and
/// are omitted then, `Multi-Arch: no` is omitted, dependency fields are
/// written in canonical spacing on one line.
fn normalise_known(name: &str, value: &str) -> Option<String> {
    let trimmed = value.trim();
    match name {
        "Essential" | "Protected" => (trimmed == "yes").then(|| format!("{name}: yes\n")),
        "Multi-Arch" => (trimmed != "no").then(|| format!("{name}: {trimmed}\n")),
        "Status" | "Conffiles" | "Config-Version" | "Triggers-Pending" | "Triggers-Awaited" => None,
        n if DEPENDENCY_FIELDS.contains(&n) => {
            Some(format!("{name}: {}\n", normalise_dependencies(value)))
        }
        _ => Some(format_field(name, value)),
    }
}

/// `a(>=1)|b ,\n c` → `a (>= 1) | b, c`.
fn normalise_dependencies(value: &str) -> String {
    value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|dep| {
            dep.split('|')
                .map(|alt| normalise_relation(alt.trim()))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn normalise_relation(rel: &str) -> String {
    let (name, rest) = match rel.find(|c: char| c == '(' || c.is_whitespace()) {
        Some(i) => (&rel[..i], rel[i..].trim()),
        None => (rel, ""),
    };
    let Some(inner) = rest.strip_prefix('(').and_then(|r| r.split_once(')')) else {
        return if rest.is_empty() {
            name.to_string()
        } else {
            format!("{name} {rest}")
        };
    };
    let (constraint, tail) = inner;
    let constraint = constraint.trim();
    let op_len = constraint
        .chars()
        .take_while(|c| "<>=".contains(*c))
        .count();
    let (op, version) = constraint.split_at(op_len);
    let mut out = format!("{name} ({op} {})", version.trim());
    let tail = tail.trim();
    if !tail.is_empty() {
        out.push(' ');
        out.push_str(tail);
    }
    out
}

fn rel(s: &str) -> Result<RelPath, PathError> {
    RelPath::from_archive(s.as_bytes())
}

/// Writes the whole dpkg database for `pkgs` (replacing what is there).
pub fn write_database(
    root: &Root,
    pkgs: &[UnpackedPackage],
    native_arch: &str,
) -> Result<(), DpkgDbError> {
    let db = "var/lib/dpkg";
    for dir in ["info", "updates", "triggers"] {
        root.mkdir_all(&rel(&format!("{db}/{dir}"))?, 0o755)?;
    }
    root.write_file(&rel(&format!("{db}/info/format"))?, b"1\n", 0o644)?;
    for empty in [
        "available",
        "diversions",
        "statoverride",
        "triggers/Unincorp",
    ] {
        root.write_file(&rel(&format!("{db}/{empty}"))?, b"", 0o644)?;
    }
    root.write_file(
        &rel(&format!("{db}/arch"))?,
        format!("{native_arch}\n").as_bytes(),
        0o644,
    )?;

    let records = Records::of(root, db, pkgs)?;
    if !records.file_triggers.is_empty() {
        root.write_file(
            &rel(&format!("{db}/triggers/File"))?,
            records.file_triggers.as_bytes(),
            0o644,
        )?;
    }
    for (name, body) in &records.named_triggers {
        root.write_file(&named_trigger_file(db, name)?, body.as_bytes(), 0o644)?;
    }
    // Written last: a half-written database has no status yet.
    root.write_file(
        &rel(&format!("{db}/status"))?,
        records.status.as_bytes(),
        0o644,
    )?;
    Ok(())
}

/// Adds `pkgs`, unpacked after a dpkg run configured the packages recorded
/// so far, to the database that run left: their info files, their trigger
/// interests and their `install ok unpacked` stanzas join dpkg's own
/// (dpkg sorts the status file again when it next writes it).
pub fn add_to_database(root: &Root, pkgs: &[UnpackedPackage]) -> Result<(), DpkgDbError> {
    let db = "var/lib/dpkg";
    let records = Records::of(root, db, pkgs)?;
    let triggers = rel(&format!("{db}/triggers/File"))?;
    append(root, &triggers, &records.file_triggers, b"\n")?;
    for (name, body) in &records.named_triggers {
        append(root, &named_trigger_file(db, name)?, body, b"\n")?;
    }
    // Stanzas are separated by a blank line.
    let status = rel(&format!("{db}/status"))?;
    append(root, &status, &records.status, b"\n\n")
}

/// What recording some packages adds to the database, with their info
/// files already written.
struct Records {
    status: String,
    file_triggers: String,
    named_triggers: BTreeMap<String, String>,
}

impl Records {
    /// Writes the info files of `pkgs` (on all cores: ~400 small files,
    /// between unpacking and stage 2, with nothing else to overlap them)
    /// and collects the rest, sorted by package as dpkg writes it.
    fn of(root: &Root, db: &str, pkgs: &[UnpackedPackage]) -> Result<Records, DpkgDbError> {
        let mut sorted: Vec<&UnpackedPackage> = pkgs.iter().collect();
        sorted.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        let mut seen = HashSet::new();
        for pkg in &sorted {
            if !seen.insert(pkg.db_name()) {
                return Err(DpkgDbError::Invalid {
                    package: pkg.db_name(),
                    msg: "package listed twice".into(),
                });
            }
        }
        {
            use rayon::prelude::*;
            sorted
                .par_iter()
                .try_for_each(|pkg| write_info_files(root, db, pkg))?;
        }
        let mut records = Records {
            status: String::new(),
            file_triggers: String::new(),
            named_triggers: BTreeMap::new(),
        };
        for pkg in sorted {
            collect_trigger_interests(pkg, &mut records.file_triggers, &mut records.named_triggers);
            records.status.push_str(&pkg.status_stanza()?);
            records.status.push('\n');
        }
        // Trigger names come from packages: one plain path component only.
        records
            .named_triggers
            .retain(|name, _| !name.contains('/') && !name.starts_with('.'));
        Ok(records)
    }
}

fn named_trigger_file(db: &str, name: &str) -> Result<RelPath, DpkgDbError> {
    Ok(rel(&format!("{db}/triggers"))?.join(name.as_bytes())?)
}

/// Appends `text` to the file at `p` (created when missing), after
/// newlines enough for a non-empty file to end with `separator` (only
/// newlines).
fn append(root: &Root, p: &RelPath, text: &str, separator: &[u8]) -> Result<(), DpkgDbError> {
    if text.is_empty() {
        return Ok(());
    }
    let mut body = match root.read_file(p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    while !body.is_empty() && !body.ends_with(separator) {
        body.push(b'\n');
    }
    body.extend_from_slice(text.as_bytes());
    root.write_file(p, &body, 0o644)?;
    Ok(())
}

/// The file-trigger interests of the `configured` packages that files of
/// `added` fall under: dpkg activates them when it unpacks such a file, so
/// packages unpacked after the interested one was configured must activate
/// them (`dpkg-trigger`) before they are configured in turn.
pub fn file_triggers_activated(
    configured: &[UnpackedPackage],
    added: &[UnpackedPackage],
) -> Vec<String> {
    let mut interests: Vec<String> = configured
        .iter()
        .flat_map(trigger_interests)
        .map(|(trigger, _)| trigger)
        .filter(|t| t.starts_with('/'))
        .collect();
    interests.sort();
    interests.dedup();
    interests
        .into_iter()
        .filter(|interest| {
            let interest = interest.trim_end_matches('/').as_bytes();
            added.iter().flat_map(|p| &p.files).any(|f| {
                let path = f.path.to_absolute();
                path.starts_with(interest)
                    && (path.len() == interest.len() || path[interest.len()] == b'/')
            })
        })
        .collect()
}

/// Control member names become (parts of) file names: no `/`, not empty.
fn check_member_name(pkg: &UnpackedPackage, name: &str) -> Result<(), DpkgDbError> {
    if name.contains('/') || name.is_empty() {
        return Err(DpkgDbError::Invalid {
            package: pkg.name.clone(),
            msg: format!("invalid control member name {name:?}"),
        });
    }
    Ok(())
}

/// A control member's mode once written out: maintainer scripts run.
fn member_mode(name: &str) -> u32 {
    if SCRIPTS.contains(&name) {
        0o755
    } else {
        0o644
    }
}

fn write_info_files(root: &Root, db: &str, pkg: &UnpackedPackage) -> Result<(), DpkgDbError> {
    let base = pkg.db_name();
    let info = |ext: &str| -> Result<RelPath, DpkgDbError> {
        check_member_name(pkg, ext)?;
        Ok(rel(&format!("{db}/info/{base}.{ext}"))?)
    };
    root.write_file(&info("list")?, &pkg.list_file(), 0o644)?;
    if let Some(md5) = pkg.md5sums_file() {
        root.write_file(&info("md5sums")?, &md5, 0o644)?;
    }
    for (name, data) in &pkg.control.files {
        if name == "control" || name == "md5sums" {
            continue;
        }
        root.write_file(&info(name)?, data, member_mode(name))?;
    }
    Ok(())
}

/// Writes every control member of `pkg` (`control` included, scripts
/// executable) into the directory `dir`, as dpkg lays them out in
/// `tmp.ci` while it runs a preinst.
pub fn write_control_dir(
    root: &Root,
    dir: &RelPath,
    pkg: &UnpackedPackage,
) -> Result<(), DpkgDbError> {
    root.mkdir_all(dir, 0o755)?;
    for (name, data) in &pkg.control.files {
        check_member_name(pkg, name)?;
        // Here the name is a whole path component: `.` and `..` must not pass.
        if name.starts_with('.') {
            return Err(DpkgDbError::Invalid {
                package: pkg.name.clone(),
                msg: format!("invalid control member name {name:?}"),
            });
        }
        root.write_file(&dir.join(name.as_bytes())?, data, member_mode(name))?;
    }
    Ok(())
}

/// `interest[-await|-noawait] <name>` lines of the package's `triggers`,
/// as (trigger, noawait).
fn trigger_interests(pkg: &UnpackedPackage) -> Vec<(String, bool)> {
    let Some(raw) = pkg.control.get("triggers") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(raw).lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let (Some(directive), Some(trigger)) = (words.next(), words.next()) else {
            continue;
        };
        match directive {
            "interest" | "interest-await" => out.push((trigger.to_string(), false)),
            "interest-noawait" => out.push((trigger.to_string(), true)),
            _ => {}
        }
    }
    out
}

/// Adds the package's trigger interests to `triggers/File` lines (`files`)
/// and to the named triggers' files (`named`).
fn collect_trigger_interests(
    pkg: &UnpackedPackage,
    files: &mut String,
    named: &mut BTreeMap<String, String>,
) {
    let who = pkg.db_name();
    for (trigger, noawait) in trigger_interests(pkg) {
        let entry = if noawait {
            format!("{who}/noawait")
        } else {
            who.clone()
        };
        if trigger.starts_with('/') {
            let _ = writeln!(files, "{trigger} {entry}");
        } else {
            let _ = writeln!(named.entry(trigger).or_default(), "{entry}");
        }
    }
}

/// How [`unpack_deb`] extracts.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Apply archive uid/gid (needs root).
    pub preserve_owner: bool,
    pub mtime_clamp: Option<i64>,
    /// Cap on the decompressed data tar. `None`: 4 × Installed-Size plus
    /// 64 MiB for tar headers (HOSTILE 14).
    pub data_limit: Option<u64>,
    /// `AlreadyVerified` when the .deb's SHA-256 was checked against a
    /// signed index: the data member's own xz check is then skipped.
    pub integrity: crate::archive::decompress::Integrity,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            preserve_owner: rustix::process::geteuid().is_root(),
            mtime_clamp: None,
            data_limit: None,
            integrity: crate::archive::decompress::Integrity::Check,
        }
    }
}

/// Reads the .deb at `deb_path` and extracts its data into `root` the way
/// `dpkg --unpack` does (conffiles as `.dpkg-new`). Safe to call for many
/// packages in parallel on one `Root`. `claim` is asked about every path
/// (HOSTILE 16): `Err(reason)` aborts naming the entry, `Claimed::Skip`
/// leaves a path that a `Replaces:`-ing package owns.
pub fn unpack_deb(
    root: &Root,
    deb_path: &Path,
    opts: &UnpackOptions,
    claim: &dyn Fn(&RelPath, EntryKind) -> Result<Claimed, String>,
) -> Result<UnpackedPackage, UnpackError> {
    let shown = deb_path.display().to_string();
    let file = File::open(deb_path).map_err(|source| UnpackError::Open {
        path: shown.clone(),
        source,
    })?;
    let deb = DebFile::read(BufReader::with_capacity(256 * 1024, file), &shown)?;
    let control = deb.control.clone();
    let text = control.control_text().unwrap_or_default();
    let para = control::single_paragraph(text).map_err(|source| DpkgDbError::Control {
        package: shown.clone(),
        source,
    })?;
    let package = para.get("Package").unwrap_or(&shown).trim().to_string();
    let limit = opts.data_limit.unwrap_or_else(|| {
        let kib: u64 = para
            .get("Installed-Size")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1 << 20);
        kib.saturating_mul(4096).saturating_add(64 << 20)
    });
    let mut xopts = ExtractOptions::new(package.clone());
    xopts.preserve_owner = opts.preserve_owner;
    xopts.mtime_clamp = opts.mtime_clamp;
    xopts.md5 = control.get("md5sums").is_none();
    xopts.size_limit = limit;
    for c in control.conffiles() {
        let p = RelPath::from_archive(c.trim_start_matches('/').as_bytes()).map_err(|e| {
            DpkgDbError::Invalid {
                package: package.clone(),
                msg: format!("conffile {c:?}: {e}"),
            }
        })?;
        xopts.conffiles.insert(p);
    }
    let data = deb.into_data(limit, opts.integrity)?;
    let files = extract_tar_with(root, data, &xopts, claim)?;
    Ok(UnpackedPackage::new(control, files, &package)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(control: &str, extra: &[(&str, &[u8])]) -> UnpackedPackage {
        let mut files = BTreeMap::new();
        files.insert("control".to_string(), control.as_bytes().to_vec());
        for (n, d) in extra {
            files.insert(n.to_string(), d.to_vec());
        }
        UnpackedPackage::new(ControlFiles { files }, Vec::new(), "t").unwrap()
    }

    #[test]
    fn status_uses_dpkg_field_order_and_normalises() {
        let p = pkg(
            "Package: hello\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: M <m@x>\nEssential: no\n\
             Homepage: https://h\nDepends: libc6(>=2.3) |foo ,\n bar\nMulti-Arch: foreign\nPriority: optional\n\
             Description: short\n long\n .\n more\n",
            &[("conffiles", b"/etc/a\n/etc/b\n")],
        );
        assert_eq!(
            p.status_stanza().unwrap(),
            "Package: hello\nStatus: install ok unpacked\nPriority: optional\nMaintainer: M <m@x>\n\
             Architecture: amd64\nMulti-Arch: foreign\nVersion: 1.0-1\nDepends: libc6 (>= 2.3) | foo, bar\n\
             Conffiles:\n /etc/a newconffile\n /etc/b newconffile\nDescription: short\n long\n .\n more\n\
             Homepage: https://h\n"
        );
        assert_eq!(p.db_name(), "hello");
    }

    #[test]
    fn multi_arch_same_names_and_triggers() {
        let p = pkg(
            "Package: libx\nVersion: 1\nArchitecture: amd64\nMulti-Arch: same\nDescription: d\n",
            &[(
                "triggers",
                b"interest-noawait ldconfig\ninterest /usr/share/x\nactivate-noawait other\n",
            )],
        );
        assert_eq!(p.db_name(), "libx:amd64");
        let mut files = String::new();
        let mut named = BTreeMap::new();
        collect_trigger_interests(&p, &mut files, &mut named);
        assert_eq!(files, "/usr/share/x libx:amd64\n");
        assert_eq!(named.get("ldconfig").unwrap(), "libx:amd64/noawait\n");
        assert_eq!(named.len(), 1);
    }

    fn with_files(control: &str, triggers: Option<&[u8]>, paths: &[&str]) -> UnpackedPackage {
        let extra: Vec<(&str, &[u8])> = triggers.map(|t| ("triggers", t)).into_iter().collect();
        let mut p = pkg(control, &extra);
        p.files = paths
            .iter()
            .map(|path| Extracted {
                path: RelPath::from_archive(path.as_bytes()).unwrap(),
                kind: EntryKind::File,
                md5: Some([0; 16]),
                size: 0,
                mode: 0o644,
                link_target: None,
                filtered: false,
            })
            .collect();
        p
    }

    #[test]
    fn generated_md5sums_leave_out_filtered_files_as_dpkg_does() {
        let mut p = with_files(
            "Package: x\nVersion: 1\nArchitecture: all\n",
            None,
            &["usr/bin/x", "usr/share/doc/x/README"],
        );
        p.files[1].filtered = true;
        p.files[1].md5 = None;
        let md5 = String::from_utf8(p.md5sums_file().unwrap()).unwrap();
        assert_eq!(md5, format!("{}  usr/bin/x\n", "0".repeat(32)));
        // ... but the list names both.
        let list = String::from_utf8(p.list_file()).unwrap();
        assert_eq!(list, "/.\n/usr/bin/x\n/usr/share/doc/x/README\n");
    }

    #[test]
    fn file_triggers_fire_for_paths_at_or_under_the_interest_only() {
        let watcher = with_files(
            "Package: watcher\nVersion: 1\nArchitecture: all\n",
            Some(b"interest /usr/share/watched\ninterest-noawait /etc/other/\ninterest named\n"),
            &[],
        );
        let near_miss = with_files(
            "Package: a\nVersion: 1\nArchitecture: all\n",
            None,
            &["usr/share/watchedness/x", "usr/share/watch"],
        );
        assert!(file_triggers_activated(std::slice::from_ref(&watcher), &[near_miss]).is_empty());
        let hits = with_files(
            "Package: b\nVersion: 1\nArchitecture: all\n",
            None,
            &["usr/share/watched/x/y", "etc/other"],
        );
        assert_eq!(
            file_triggers_activated(&[watcher], &[hits]),
            ["/etc/other/", "/usr/share/watched"]
        );
    }

    #[test]
    fn packages_added_later_join_the_database_dpkg_left() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let first = with_files(
            "Package: libc-bin\nVersion: 1\nArchitecture: amd64\n",
            Some(b"interest-noawait ldconfig\ninterest /usr/share/watched\n"),
            &["usr/sbin/ldconfig"],
        );
        write_database(&root, &[first], "amd64").unwrap();
        let db = dir.path().join("var/lib/dpkg");
        // As dpkg leaves it after configuring: rewritten, installed.
        std::fs::write(
            db.join("status"),
            "Package: libc-bin\nStatus: install ok installed\nVersion: 1\n",
        )
        .unwrap();
        let later = with_files(
            "Package: libfoo\nVersion: 2\nArchitecture: amd64\nMulti-Arch: same\n",
            Some(b"interest-noawait ldconfig\n"),
            &["usr/lib/libfoo.so.2"],
        );
        add_to_database(&root, &[later]).unwrap();
        let read = |p: &str| std::fs::read_to_string(db.join(p)).unwrap();
        assert_eq!(
            read("status"),
            "Package: libc-bin\nStatus: install ok installed\nVersion: 1\n\n\
             Package: libfoo\nStatus: install ok unpacked\nArchitecture: amd64\n\
             Multi-Arch: same\nVersion: 2\n\n"
        );
        assert_eq!(
            read("triggers/ldconfig"),
            "libc-bin/noawait\nlibfoo:amd64/noawait\n"
        );
        assert_eq!(read("triggers/File"), "/usr/share/watched libc-bin\n");
        assert_eq!(read("info/libfoo:amd64.list"), "/.\n/usr/lib/libfoo.so.2\n");
    }

    #[test]
    fn rejects_bad_package_names() {
        let mut files = BTreeMap::new();
        files.insert(
            "control".to_string(),
            b"Package: ../evil\nVersion: 1\nArchitecture: all\n".to_vec(),
        );
        assert!(UnpackedPackage::new(ControlFiles { files }, Vec::new(), "t").is_err());
    }
}
