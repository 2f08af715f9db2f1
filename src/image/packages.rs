//! What `rootstrap inspect` adds to the image module's report: the package
//! list, read from the package database inside the layers (dpkg's status
//! file or apk's installed db), without unpacking the image.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::distro::deb::control;
use crate::image::tar::{LayerEntryKind, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::image::{ImageError, LayerReader, OpenedImage};
use crate::rootfs::safe::{FileKind, RelPath, Root};

/// The package databases we know, by path inside the image.
const DPKG_STATUS: &str = "var/lib/dpkg/status";
const APK_INSTALLED: &str = "lib/apk/db/installed";
/// A status file larger than this is not a status file.
const DB_LIMIT: u64 = 256 << 20;
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
const DOC_DIR: &str = "usr/share/doc/";
/// Only the header paragraphs of a copyright file matter; real ones are
/// tens of KiB, this only bounds memory on hostile images.
const COPYRIGHT_LIMIT: u64 = 4 << 20;
const OS_RELEASE_LIMIT: u64 = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
}

/// Everything the package databases say about one installed package, for
/// SBOMs. Optional fields are `None` when the database does not record them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageRecord {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Source package (dpkg `Source:`, apk `o:` origin); defaults to the name.
    pub source_name: String,
    /// Source version when dpkg records one that differs (`Source: gcc-14 (14.2.0-19)`).
    pub source_version: Option<String>,
    /// License as the distribution writes it: DEP-5 `License:` synopses
    /// (Debian) or apk's `L:` field. Converted to SPDX by the sbom module.
    pub licenses: Vec<String>,
    pub maintainer: Option<String>,
    pub homepage: Option<String>,
    /// apk's `C:` identity (`Q1` + base64 SHA-1 of the package's control
    /// segment), as raw bytes.
    pub apk_checksum_sha1: Option<Vec<u8>>,
}

/// Which package manager recorded the packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageDbKind {
    Dpkg,
    Apk,
}

/// The package database of an image and what identifies the distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageInventory {
    /// `None` when the image has no package database.
    pub kind: Option<PackageDbKind>,
    /// `/etc/os-release` (or `/usr/lib/os-release`) key/value pairs, unquoted.
    pub os_release: BTreeMap<String, String>,
    /// Sorted by name, then architecture.
    pub packages: Vec<PackageRecord>,
}

/// Packages recorded in the image's package database (from the last layer
/// that writes it), sorted by name. Empty when there is none.
pub fn installed_packages(image: &OpenedImage) -> Result<Vec<InstalledPackage>, ImageError> {
    let mut found: Option<(bool, Vec<u8>)> = None;
    for i in 0..image.layers.len() {
        let mut tar = LayerReader::new(image.open_layer(i)?);
        while let Some(h) = tar.next_entry()? {
            let path = h.path.to_string_lossy();
            let path = path.trim_start_matches("./");
            let is_dpkg = path == DPKG_STATUS;
            if (is_dpkg || path == APK_INSTALLED) && h.kind == LayerEntryKind::File {
                let mut bytes = Vec::new();
                tar.data()
                    .take(DB_LIMIT)
                    .read_to_end(&mut bytes)
                    .map_err(ImageError::io(path.to_owned()))?;
                found = Some((is_dpkg, bytes));
            }
        }
    }
    let Some((is_dpkg, bytes)) = found else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut pkgs = if is_dpkg {
        parse_dpkg_status(&text)
    } else {
        parse_apk_installed(&text)
    };
    pkgs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pkgs)
}

/// Packages of a dpkg status file (`is_dpkg`) or an apk installed db,
/// sorted by name.
pub fn packages_from_db(is_dpkg: bool, text: &str) -> Vec<InstalledPackage> {
    let mut pkgs = if is_dpkg {
        parse_dpkg_status(text)
    } else {
        parse_apk_installed(text)
    };
    pkgs.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    pkgs
}

/// The dpkg status paragraphs of packages that are installed or unpacked.
fn installed_paragraphs(text: &str) -> impl Iterator<Item = control::Paragraph<'_>> {
    control::paragraphs(text).flatten().filter(|p| {
        p.get("Status")
            .is_some_and(|s| s.ends_with(" installed") || s.ends_with(" unpacked"))
    })
}

fn parse_dpkg_status(text: &str) -> Vec<InstalledPackage> {
    installed_paragraphs(text)
        .filter_map(|p| {
            Some(InstalledPackage {
                name: p.get("Package")?.to_owned(),
                version: p.get("Version")?.to_owned(),
                arch: p.get("Architecture").unwrap_or("").to_owned(),
            })
        })
        .collect()
}

fn parse_apk_installed(text: &str) -> Vec<InstalledPackage> {
    text.split("\n\n")
        .filter_map(|record| {
            let field = |k: &str| {
                record
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(str::to_owned)
            };
            Some(InstalledPackage {
                name: field("P:")?,
                version: field("V:")?,
                arch: field("A:").unwrap_or_default(),
            })
        })
        .collect()
}

/// A collected entry of the merged filesystem.
#[derive(Debug, Clone)]
enum Collected {
    Data(Vec<u8>),
    /// DEP-5 `License:` synopses of a copyright file (parsed as it streams
    /// by, so thousands of copyright files are not held in memory).
    Licenses(Vec<String>),
    Link(String),
}

/// What [`collect_inventory`] keeps: the package databases, os-release, the
/// copyright files and the `usr/share/doc/<pkg>` symlinks pointing elsewhere.
fn wanted(path: &str) -> bool {
    path == DPKG_STATUS
        || path == APK_INSTALLED
        || OS_RELEASE.contains(&path)
        || path
            .strip_prefix(DOC_DIR)
            .is_some_and(|rest| match rest.split_once('/') {
                None => !rest.is_empty(),
                Some((pkg, file)) => !pkg.is_empty() && file == "copyright",
            })
}

fn is_copyright(path: &str) -> bool {
    path.starts_with(DOC_DIR) && path.ends_with("/copyright")
}

fn entry_limit(path: &str) -> u64 {
    if is_copyright(path) {
        COPYRIGHT_LIMIT
    } else if OS_RELEASE.contains(&path) {
        OS_RELEASE_LIMIT
    } else {
        DB_LIMIT
    }
}

/// Removes `path` and everything below it.
fn remove_tree(files: &mut BTreeMap<String, Collected>, path: &str) {
    files.remove(path);
    // '0' is the byte after '/': the range is exactly the paths below `path`.
    let below: Vec<String> = files
        .range(format!("{path}/")..format!("{path}0"))
        .map(|(k, _)| k.clone())
        .collect();
    for k in below {
        files.remove(&k);
    }
}

/// Walks decompressed layer tars in order, applying whiteouts, and keeps the
/// entries [`wanted`] selects as they are in the merged filesystem.
fn collect_merged<'a, I>(layers: I) -> Result<BTreeMap<String, Collected>, ImageError>
where
    I: IntoIterator<Item = Result<Box<dyn Read + 'a>, ImageError>>,
{
    let mut files: BTreeMap<String, Collected> = BTreeMap::new();
    for layer in layers {
        let mut tar = LayerReader::new(layer?);
        let mut this_layer: HashSet<String> = HashSet::new();
        while let Some(h) = tar.next_entry()? {
            let raw = h.path.to_string_lossy();
            let path = raw.trim_start_matches("./").trim_end_matches('/');
            let (parent, name) = match path.rsplit_once('/') {
                Some((p, n)) => (p, n),
                None => ("", path),
            };
            if name == OPAQUE_WHITEOUT {
                // An opaque root (parent "") hides everything lower layers wrote.
                let prefix = format!("{parent}/");
                files.retain(|p, _| {
                    this_layer.contains(p) || (!parent.is_empty() && !p.starts_with(&prefix))
                });
                continue;
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                let target = if parent.is_empty() {
                    hidden.to_owned()
                } else {
                    format!("{parent}/{hidden}")
                };
                remove_tree(&mut files, &target);
                continue;
            }
            if h.kind != LayerEntryKind::Dir {
                remove_tree(&mut files, path);
            }
            if !wanted(path) {
                continue;
            }
            let collected = match &h.kind {
                LayerEntryKind::File => {
                    let mut bytes = Vec::new();
                    tar.data()
                        .take(entry_limit(path))
                        .read_to_end(&mut bytes)
                        .map_err(ImageError::io(format!("reading {path} from a layer")))?;
                    if is_copyright(path) {
                        Collected::Licenses(dep5_licenses(&String::from_utf8_lossy(&bytes)))
                    } else {
                        Collected::Data(bytes)
                    }
                }
                LayerEntryKind::HardLink(target) => {
                    let target = target.to_string_lossy();
                    match files.get(target.trim_start_matches("./")) {
                        Some(c) => c.clone(),
                        None => continue,
                    }
                }
                LayerEntryKind::Symlink(target) => Collected::Link(target.to_string_lossy().into()),
                _ => continue,
            };
            this_layer.insert(path.to_owned());
            files.insert(path.to_owned(), collected);
        }
    }
    Ok(files)
}

/// Lexically resolves symlink `target` found at `link` (a path relative to
/// the image root); `None` when it climbs above the root.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Follows up to a few symlinks from `path` to data.
fn lookup<'m>(files: &'m BTreeMap<String, Collected>, path: &str) -> Option<&'m Collected> {
    let mut path = path.to_owned();
    for _ in 0..8 {
        match files.get(&path)? {
            Collected::Link(t) => path = resolve_link(&path, t)?,
            other => return Some(other),
        }
    }
    None
}

/// The copyright licenses of a Debian package: its own doc directory, or
/// the one its `usr/share/doc/<pkg>` symlink points to.
fn copyright_licenses(files: &BTreeMap<String, Collected>, package: &str) -> Vec<String> {
    let direct = format!("{DOC_DIR}{package}/copyright");
    let via_link = || match files.get(&format!("{DOC_DIR}{package}")) {
        Some(Collected::Link(t)) => {
            resolve_link(&format!("{DOC_DIR}{package}"), t).map(|d| format!("{d}/copyright"))
        }
        _ => None,
    };
    let found = lookup(files, &direct).or_else(|| via_link().and_then(|p| lookup(files, &p)));
    match found {
        Some(Collected::Licenses(l)) => l.clone(),
        _ => Vec::new(),
    }
}

/// The distinct `License:` synopses (first lines) of a machine-readable
/// (DEP-5) copyright file, in order of appearance; empty for free-form files.
pub fn dep5_licenses(text: &str) -> Vec<String> {
    let first_line = text.lines().next().unwrap_or("");
    if !(first_line.starts_with("Format:") && first_line.contains("copyright-format")) {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for paragraph in control::paragraphs(text).flatten() {
        let Some(license) = paragraph.get("License") else {
            continue;
        };
        let synopsis = license.lines().next().unwrap_or("").trim();
        if !synopsis.is_empty() && !out.iter().any(|l| l == synopsis) {
            out.push(synopsis.to_owned());
        }
    }
    out
}

/// Parses os-release: `KEY=value` lines, values unquoted.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            if k.is_empty() || k.starts_with('#') {
                return None;
            }
            let v = v.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(v);
            let mut value = String::new();
            let mut chars = unquoted.chars();
            while let Some(c) = chars.next() {
                match (c, chars.clone().next()) {
                    ('\\', Some(n)) if "\"\\$`".contains(n) => {
                        value.push(n);
                        chars.next();
                    }
                    _ => value.push(c),
                }
            }
            Some((k.to_owned(), value))
        })
        .collect()
}

/// The package inventory of an image (packages with licenses, source
/// packages, maintainers and apk checksums; os-release), read from the
/// merged filesystem of its layers without unpacking it.
pub fn package_inventory(image: &OpenedImage) -> Result<PackageInventory, ImageError> {
    collect_inventory((0..image.layers.len()).map(|i| image.open_layer(i)))
}

/// [`package_inventory`] from decompressed layer tars, bottom layer first
/// (for images not yet written, e.g. an `ImageBuilder`'s layers).
pub fn collect_inventory<'a, I>(layers: I) -> Result<PackageInventory, ImageError>
where
    I: IntoIterator<Item = Result<Box<dyn Read + 'a>, ImageError>>,
{
    let files = collect_merged(layers)?;
    Ok(inventory_of(&files))
}

/// The same inventory as [`collect_inventory`], read from a finished rootfs
/// directory instead of its layers: a build that still has the tree reads a
/// few hundred small files rather than decoding the whole layer again.
/// Every access goes through [`Root`], so a symlink in the tree never leads
/// outside it.
pub fn collect_inventory_from_tree(rootfs: &Path) -> Result<PackageInventory, ImageError> {
    let root = Root::open(rootfs).map_err(ImageError::io(format!(
        "opening {} for its package inventory",
        rootfs.display()
    )))?;
    let mut files: BTreeMap<String, Collected> = BTreeMap::new();
    let mut wanted_paths: Vec<String> = [DPKG_STATUS, APK_INSTALLED]
        .iter()
        .chain(OS_RELEASE.iter())
        .map(|p| (*p).to_owned())
        .collect();
    let doc = RelPath::from_archive(DOC_DIR.trim_end_matches('/').as_bytes())
        .map_err(|e| tree_err(DOC_DIR, e))?;
    if root.is_dir(&doc) {
        for name in root.read_dir(&doc).map_err(|e| tree_err(DOC_DIR, e))? {
            let name = String::from_utf8_lossy(&name).into_owned();
            wanted_paths.push(format!("{DOC_DIR}{name}"));
            wanted_paths.push(format!("{DOC_DIR}{name}/copyright"));
        }
    }
    for path in wanted_paths {
        if let Some(c) = collect_from_tree(&root, &path)? {
            files.insert(path, c);
        }
    }
    Ok(inventory_of(&files))
}

fn tree_err(path: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid {
        location: path.to_owned(),
        reason: e.to_string(),
    }
}

/// One wanted path of the tree, as the layer walk would have collected it.
fn collect_from_tree(root: &Root, path: &str) -> Result<Option<Collected>, ImageError> {
    let Ok(rel) = RelPath::from_archive(path.as_bytes()) else {
        return Ok(None);
    };
    let Some(meta) = root.lstat(&rel).map_err(|e| tree_err(path, e))? else {
        return Ok(None);
    };
    Ok(match meta.kind {
        FileKind::Symlink => {
            let target = root.read_link(&rel).map_err(|e| tree_err(path, e))?;
            Some(Collected::Link(
                String::from_utf8_lossy(&target).into_owned(),
            ))
        }
        FileKind::File if wanted(path) => {
            let mut bytes = Vec::new();
            root.open_read(&rel)
                .map_err(|e| tree_err(path, e))?
                .take(entry_limit(path))
                .read_to_end(&mut bytes)
                .map_err(ImageError::io(format!("reading {path}")))?;
            Some(if is_copyright(path) {
                Collected::Licenses(dep5_licenses(&String::from_utf8_lossy(&bytes)))
            } else {
                Collected::Data(bytes)
            })
        }
        _ => None,
    })
}

fn inventory_of(files: &BTreeMap<String, Collected>) -> PackageInventory {
    let os_release = OS_RELEASE
        .iter()
        .find_map(|p| match lookup(files, p) {
            Some(Collected::Data(d)) => Some(parse_os_release(&String::from_utf8_lossy(d))),
            _ => None,
        })
        .unwrap_or_default();
    let (kind, mut packages) = match (lookup(files, DPKG_STATUS), lookup(files, APK_INSTALLED)) {
        (Some(Collected::Data(d)), _) => {
            let mut pkgs = dpkg_records(&String::from_utf8_lossy(d));
            for p in &mut pkgs {
                p.licenses = copyright_licenses(files, &p.name);
            }
            (Some(PackageDbKind::Dpkg), pkgs)
        }
        (_, Some(Collected::Data(d))) => (
            Some(PackageDbKind::Apk),
            apk_records(&String::from_utf8_lossy(d)),
        ),
        _ => (None, Vec::new()),
    };
    packages.sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
    PackageInventory {
        kind,
        os_release,
        packages,
    }
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn dpkg_records(text: &str) -> Vec<PackageRecord> {
    installed_paragraphs(text)
        .filter_map(|p| {
            let name = non_empty(p.get("Package"))?;
            let version = non_empty(p.get("Version"))?;
            // `Source: gcc-14 (14.2.0-19)` when the source version differs.
            let (source_name, source_version) = match non_empty(p.get("Source")) {
                Some(s) => match s.split_once(' ') {
                    Some((n, v)) => (
                        n.to_owned(),
                        non_empty(Some(v.trim().trim_start_matches('(').trim_end_matches(')'))),
                    ),
                    None => (s, None),
                },
                None => (name.clone(), None),
            };
            Some(PackageRecord {
                arch: p.get("Architecture").unwrap_or("").trim().to_owned(),
                source_name,
                source_version,
                licenses: Vec::new(),
                maintainer: non_empty(p.get("Maintainer")),
                homepage: non_empty(p.get("Homepage")),
                apk_checksum_sha1: None,
                name,
                version,
            })
        })
        .collect()
}

fn apk_records(text: &str) -> Vec<PackageRecord> {
    text.split("\n\n")
        .filter_map(|record| {
            // Header fields come before the first `F:` (directory) line.
            let header: Vec<&str> = record
                .lines()
                .take_while(|l| !l.starts_with("F:"))
                .collect();
            let field = |k: &str| non_empty(header.iter().find_map(|l| l.strip_prefix(k)));
            let name = field("P:")?;
            let checksum = field("C:")
                .and_then(|c| {
                    c.strip_prefix("Q1")
                        .and_then(crate::distro::apk::index::base64_decode)
                })
                .filter(|d| d.len() == 20);
            Some(PackageRecord {
                version: field("V:")?,
                arch: field("A:").unwrap_or_default(),
                source_name: field("o:").unwrap_or_else(|| name.clone()),
                source_version: None,
                licenses: field("L:").into_iter().collect(),
                maintainer: field("m:"),
                homepage: field("U:"),
                apk_checksum_sha1: checksum,
                name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_databases() {
        let status =
            "Package: b\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 2\n\n";
        assert_eq!(
            parse_dpkg_status(status),
            [InstalledPackage {
                name: "b".into(),
                version: "1".into(),
                arch: "amd64".into()
            }]
        );
        let apk =
            "C:Q1x=\nP:musl\nV:1.2.5-r0\nA:x86_64\n\nC:Q1y=\nP:busybox\nV:1.36.1-r29\nA:x86_64\n\n";
        let names: Vec<_> = parse_apk_installed(apk)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["musl", "busybox"]);
    }

    #[test]
    fn dep5_synopses_only_from_machine_readable_files() {
        let dep5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
                    Files: *\nLicense: GPL-2+\n\nFiles: a\nLicense: BSD-3-clause\n text\n\n\
                    License: GPL-2+\n Full text.\n";
        assert_eq!(dep5_licenses(dep5), ["GPL-2+", "BSD-3-clause"]);
        assert!(dep5_licenses("This package is GPL-2.\nLicense: MIT\n").is_empty());
        assert!(dep5_licenses("").is_empty());
    }

    #[test]
    fn os_release_values_unquoted() {
        let r = parse_os_release(
            "# c\nID=debian\nPRETTY_NAME=\"Debian \\\"13\\\"\"\nVERSION_ID='13'\nbad line\n",
        );
        assert_eq!(r.get("ID").map(String::as_str), Some("debian"));
        assert_eq!(
            r.get("PRETTY_NAME").map(String::as_str),
            Some("Debian \"13\"")
        );
        assert_eq!(r.get("VERSION_ID").map(String::as_str), Some("13"));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn links_resolve_inside_the_root_only() {
        assert_eq!(
            resolve_link("etc/os-release", "../usr/lib/os-release").as_deref(),
            Some("usr/lib/os-release")
        );
        assert_eq!(
            resolve_link("usr/share/doc/a", "/usr/share/doc/b").as_deref(),
            Some("usr/share/doc/b")
        );
        assert_eq!(resolve_link("etc/x", "../../../outside"), None);
    }

    #[test]
    fn symlink_loops_end() {
        let mut files = BTreeMap::new();
        files.insert("a".to_string(), Collected::Link("b".into()));
        files.insert("b".to_string(), Collected::Link("a".into()));
        assert!(lookup(&files, "a").is_none());
    }

    #[test]
    fn apk_checksum_and_origin() {
        let db = "C:Q1ERERERERERERERERERERERERERE=\nP:busybox-binsh\nV:1\nA:x86_64\nL:GPL-2.0-only\no:busybox\nF:bin\nR:sh\nZ:Q1AAAA\n\n";
        let r = apk_records(db);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].source_name, "busybox");
        assert_eq!(r[0].apk_checksum_sha1.as_deref(), Some(&[0x11u8; 20][..]));
        assert_eq!(r[0].licenses, ["GPL-2.0-only"]);
    }
}
