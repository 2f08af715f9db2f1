//! `rootstrap diff`: what differs between two images — config (as JSON
//! paths), installed packages, and the files of the merged filesystems with
//! the attributes that differ. Meant for the question "why is this rebuild
//! not identical?", so everything that reaches the image bytes is compared:
//! content, size, mode, owner, mtime, link target, device numbers, xattrs.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::read::{unpack_layers, OpenedImage, UnpackSink};
use super::tar::{LayerEntryKind, TarHeader};
use super::{HashingWriter, ImageError};
use crate::image::packages::{packages_from_db, InstalledPackage};

/// Package databases captured while walking the layers.
const DPKG_STATUS: &str = "var/lib/dpkg/status";
const APK_INSTALLED: &str = "lib/apk/db/installed";
const DB_LIMIT: u64 = 256 << 20;

/// One entry of a merged filesystem, as far as the image bytes record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileMeta {
    /// file, dir, symlink, hardlink, char, block, fifo
    pub kind: &'static str,
    /// Content digest (hex) of regular files and hard links.
    pub sha256: Option<String>,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Symlink target, or the path a hard link shares its inode with.
    pub link_target: Option<String>,
    /// `major:minor` of device nodes.
    pub device: Option<String>,
    /// Values hex-encoded (they are bytes).
    pub xattrs: BTreeMap<String, String>,
}

/// The merged filesystem of an image, and its package database if any.
#[derive(Debug, Clone, Default)]
pub struct FileTree {
    pub entries: BTreeMap<PathBuf, FileMeta>,
    /// (is dpkg, contents) of the package database in the merged tree.
    package_db: Option<(bool, Vec<u8>)>,
}

impl FileTree {
    /// Applies the image's layers in order (whiteouts included), verifying
    /// every layer digest on the way; nothing is written to disk.
    pub fn of_image(image: &OpenedImage) -> Result<Self, ImageError> {
        let mut tree = FileTree::default();
        unpack_layers(image, &mut tree)?;
        Ok(tree)
    }

    /// Installed packages per the package database, sorted by name.
    pub fn packages(&self) -> Vec<InstalledPackage> {
        match &self.package_db {
            Some((is_dpkg, bytes)) => packages_from_db(*is_dpkg, &String::from_utf8_lossy(bytes)),
            None => Vec::new(),
        }
    }

    /// Removes `path` and everything below it. Children sort right after
    /// their parent in component order, so this is a range, not a scan.
    fn remove_subtree(&mut self, path: &Path) {
        let doomed: Vec<PathBuf> = self
            .entries
            .range(path.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(path))
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.entries.remove(&p);
        }
        if self.package_db_path_removed(path) {
            self.package_db = None;
        }
    }

    fn package_db_path_removed(&self, removed: &Path) -> bool {
        self.package_db.as_ref().is_some_and(|(is_dpkg, _)| {
            Path::new(if *is_dpkg { DPKG_STATUS } else { APK_INSTALLED }).starts_with(removed)
        })
    }
}

fn kind_name(kind: &LayerEntryKind) -> &'static str {
    match kind {
        LayerEntryKind::File => "file",
        LayerEntryKind::Dir => "dir",
        LayerEntryKind::Symlink(_) => "symlink",
        LayerEntryKind::HardLink(_) => "hardlink",
        LayerEntryKind::CharDevice { .. } => "char",
        LayerEntryKind::BlockDevice { .. } => "block",
        LayerEntryKind::Fifo => "fifo",
    }
}

impl UnpackSink for FileTree {
    type Error = io::Error;

    fn entry(&mut self, header: &TarHeader, data: &mut dyn Read) -> Result<(), io::Error> {
        let path_str = header.path.to_string_lossy();
        let db = match path_str.as_ref() {
            DPKG_STATUS => Some(true),
            APK_INSTALLED => Some(false),
            _ => None,
        };
        let mut shared = None;
        if let LayerEntryKind::HardLink(target) = &header.kind {
            // Looked up before the removal below, which may remove the target.
            shared = self.entries.get(target).cloned();
        }
        if header.kind != LayerEntryKind::Dir {
            // A non-directory replaces whatever subtree was there (and the
            // package database captured at this path, if it was one).
            self.remove_subtree(&header.path);
        }
        let (mut sha256, mut size, mut link_target, mut device) = (None, header.size, None, None);
        match &header.kind {
            LayerEntryKind::File => {
                let mut hasher = HashingWriter::new(io::sink());
                match db {
                    Some(is_dpkg) => {
                        let mut bytes = Vec::new();
                        data.take(DB_LIMIT).read_to_end(&mut bytes)?;
                        io::copy(&mut &bytes[..], &mut hasher)?;
                        self.package_db = Some((is_dpkg, bytes));
                    }
                    None => {
                        io::copy(data, &mut hasher)?;
                    }
                }
                let (_, digest, n) = hasher.finish();
                sha256 = Some(digest.to_hex());
                size = n;
            }
            LayerEntryKind::HardLink(target) => {
                let shared = shared.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("hard link target {} missing", target.display()),
                    )
                })?;
                sha256 = shared.sha256.clone();
                size = shared.size;
                link_target = Some(target.to_string_lossy().into_owned());
            }
            LayerEntryKind::Symlink(target) => {
                link_target = Some(target.to_string_lossy().into_owned());
                size = 0;
            }
            LayerEntryKind::CharDevice { major, minor }
            | LayerEntryKind::BlockDevice { major, minor } => {
                device = Some(format!("{major}:{minor}"));
            }
            LayerEntryKind::Dir | LayerEntryKind::Fifo => {}
        }
        self.entries.insert(
            header.path.clone(),
            FileMeta {
                kind: kind_name(&header.kind),
                sha256,
                size,
                mode: header.mode,
                uid: header.uid,
                gid: header.gid,
                mtime: header.mtime,
                link_target,
                device,
                xattrs: header
                    .xattrs
                    .iter()
                    .map(|(k, v)| (k.clone(), hex::encode(v)))
                    .collect(),
            },
        );
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> Result<(), io::Error> {
        self.remove_subtree(path);
        Ok(())
    }

    fn clear_dir(&mut self, dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<(), io::Error> {
        let doomed: Vec<PathBuf> = self
            .entries
            .range(dir.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(dir))
            .filter(|(p, _)| p.as_path() != dir && !keep(p))
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.entries.remove(&p);
            if self.package_db_path_removed(&p) {
                self.package_db = None;
            }
        }
        Ok(())
    }
}

/// One attribute that differs, with both values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeChange {
    pub attribute: String,
    pub a: Value,
    pub b: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum FileChange {
    Added {
        path: String,
    },
    Removed {
        path: String,
    },
    Changed {
        path: String,
        attributes: Vec<AttributeChange>,
    },
}

/// A JSON path whose value differs (`null` where one side has nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    pub path: String,
    pub a: Value,
    pub b: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    pub name: String,
    pub arch: String,
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageChanges {
    pub added: Vec<InstalledPackage>,
    pub removed: Vec<InstalledPackage>,
    pub changed: Vec<VersionChange>,
}

impl PackageChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageDiff {
    /// Manifest digests (config digests for archives without a manifest).
    pub a: String,
    pub b: String,
    /// The platform compared, for a side taken from a multi-platform image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a_platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b_platform: Option<String>,
    pub config: Vec<ConfigChange>,
    pub packages: PackageChanges,
    pub files: Vec<FileChange>,
}

impl ImageDiff {
    /// How many changed files differ in each attribute: a rebuild that
    /// differs only in `mtime` is a timestamp problem, not a content one.
    pub fn attribute_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for change in &self.files {
            if let FileChange::Changed { attributes, .. } = change {
                for a in attributes {
                    *counts.entry(a.attribute.as_str()).or_insert(0) += 1;
                }
            }
        }
        counts
    }

    /// No difference in config, packages or files (the layer blobs may
    /// still differ, e.g. in compression).
    pub fn is_identical(&self) -> bool {
        self.config.is_empty() && self.packages.is_empty() && self.files.is_empty()
    }
}

/// Compares two opened images.
pub fn diff_images(a: &OpenedImage, b: &OpenedImage) -> Result<ImageDiff, ImageError> {
    let to_value = |image: &OpenedImage| {
        serde_json::to_value(&image.config).map_err(|source| ImageError::Json {
            what: "image config".into(),
            source,
        })
    };
    let tree_a = FileTree::of_image(a)?;
    let tree_b = FileTree::of_image(b)?;
    let digest = |i: &OpenedImage| i.manifest_digest.unwrap_or(i.config_digest).to_string();
    let platform = |i: &OpenedImage| {
        i.index.as_ref().map(|_| {
            let c = &i.config;
            match &c.variant {
                Some(v) => format!("{}/{}/{v}", c.os, c.architecture),
                None => format!("{}/{}", c.os, c.architecture),
            }
        })
    };
    Ok(ImageDiff {
        a: digest(a),
        b: digest(b),
        a_platform: platform(a),
        b_platform: platform(b),
        config: diff_json(&to_value(a)?, &to_value(b)?),
        packages: diff_packages(&tree_a.packages(), &tree_b.packages()),
        files: diff_trees(&tree_a.entries, &tree_b.entries),
    })
}

/// JSON paths (`config.Env[1]`, `history[0].created`) whose values differ.
pub fn diff_json(a: &Value, b: &Value) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    diff_value("", a, b, &mut out);
    out
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn diff_value(path: &str, a: &Value, b: &Value, out: &mut Vec<ConfigChange>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff_value(
                    &join_key(path, k),
                    ma.get(k).unwrap_or(&null),
                    mb.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(va), Value::Array(vb)) => {
            for i in 0..va.len().max(vb.len()) {
                let null = Value::Null;
                diff_value(
                    &format!("{path}[{i}]"),
                    va.get(i).unwrap_or(&null),
                    vb.get(i).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(ConfigChange {
            path: if path.is_empty() {
                ".".into()
            } else {
                path.into()
            },
            a: a.clone(),
            b: b.clone(),
        }),
        _ => {}
    }
}

/// Packages keyed by (name, arch): added, removed, and version changes.
pub fn diff_packages(a: &[InstalledPackage], b: &[InstalledPackage]) -> PackageChanges {
    let key = |p: &InstalledPackage| (p.name.clone(), p.arch.clone());
    let ma: BTreeMap<_, _> = a.iter().map(|p| (key(p), p)).collect();
    let mb: BTreeMap<_, _> = b.iter().map(|p| (key(p), p)).collect();
    let mut changes = PackageChanges::default();
    for (k, pa) in &ma {
        match mb.get(k) {
            None => changes.removed.push((*pa).clone()),
            Some(pb) if pb.version != pa.version => changes.changed.push(VersionChange {
                name: pa.name.clone(),
                arch: pa.arch.clone(),
                a: pa.version.clone(),
                b: pb.version.clone(),
            }),
            Some(_) => {}
        }
    }
    for (k, pb) in &mb {
        if !ma.contains_key(k) {
            changes.added.push((*pb).clone());
        }
    }
    changes
}

/// The attributes of two entries that differ.
pub fn diff_meta(a: &FileMeta, b: &FileMeta) -> Vec<AttributeChange> {
    let mut out = Vec::new();
    let mut cmp = |name: &str, va: Value, vb: Value| {
        if va != vb {
            out.push(AttributeChange {
                attribute: name.to_owned(),
                a: va,
                b: vb,
            });
        }
    };
    cmp("kind", a.kind.into(), b.kind.into());
    cmp("sha256", a.sha256.clone().into(), b.sha256.clone().into());
    cmp("size", a.size.into(), b.size.into());
    cmp(
        "mode",
        format!("{:04o}", a.mode).into(),
        format!("{:04o}", b.mode).into(),
    );
    cmp("uid", a.uid.into(), b.uid.into());
    cmp("gid", a.gid.into(), b.gid.into());
    cmp("mtime", a.mtime.into(), b.mtime.into());
    cmp(
        "link_target",
        a.link_target.clone().into(),
        b.link_target.clone().into(),
    );
    cmp("device", a.device.clone().into(), b.device.clone().into());
    let keys: std::collections::BTreeSet<&String> =
        a.xattrs.keys().chain(b.xattrs.keys()).collect();
    for k in keys {
        cmp(
            &format!("xattr {k}"),
            a.xattrs.get(k).cloned().into(),
            b.xattrs.get(k).cloned().into(),
        );
    }
    out
}

/// Files added, removed or changed between two merged trees, by path.
pub fn diff_trees(
    a: &BTreeMap<PathBuf, FileMeta>,
    b: &BTreeMap<PathBuf, FileMeta>,
) -> Vec<FileChange> {
    let show = |p: &Path| format!("/{}", p.display());
    let mut out = Vec::new();
    for (path, ma) in a {
        match b.get(path) {
            None => out.push(FileChange::Removed { path: show(path) }),
            Some(mb) => {
                let attributes = diff_meta(ma, mb);
                if !attributes.is_empty() {
                    out.push(FileChange::Changed {
                        path: show(path),
                        attributes,
                    });
                }
            }
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(FileChange::Added { path: show(path) });
    }
    out.sort_by(|x, y| file_change_path(x).cmp(file_change_path(y)));
    out
}

fn file_change_path(c: &FileChange) -> &str {
    match c {
        FileChange::Added { path } | FileChange::Removed { path } => path,
        FileChange::Changed { path, .. } => path,
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s
    }
}

impl fmt::Display for ImageDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = |p: &Option<String>| p.as_ref().map(|p| format!(" ({p})")).unwrap_or_default();
        writeln!(f, "--- {}{}", self.a, from(&self.a_platform))?;
        writeln!(f, "+++ {}{}", self.b, from(&self.b_platform))?;
        if !self.config.is_empty() {
            writeln!(f, "config:")?;
            for c in &self.config {
                writeln!(f, "  ~ {}: {} -> {}", c.path, short(&c.a), short(&c.b))?;
            }
        }
        let p = &self.packages;
        if !p.is_empty() {
            writeln!(f, "packages:")?;
            for x in &p.removed {
                writeln!(f, "  - {} {} ({})", x.name, x.version, x.arch)?;
            }
            for x in &p.added {
                writeln!(f, "  + {} {} ({})", x.name, x.version, x.arch)?;
            }
            for x in &p.changed {
                writeln!(f, "  ~ {} {} -> {} ({})", x.name, x.a, x.b, x.arch)?;
            }
        }
        if !self.files.is_empty() {
            writeln!(f, "files:")?;
            for c in &self.files {
                match c {
                    FileChange::Added { path } => writeln!(f, "  + {path}")?,
                    FileChange::Removed { path } => writeln!(f, "  - {path}")?,
                    FileChange::Changed { path, attributes } => {
                        writeln!(f, "  ~ {path}")?;
                        for a in attributes {
                            writeln!(
                                f,
                                "      {}: {} -> {}",
                                a.attribute,
                                short(&a.a),
                                short(&a.b)
                            )?;
                        }
                    }
                }
            }
        }
        if self.is_identical() {
            return write!(f, "identical");
        }
        write!(
            f,
            "{} config paths, {} packages, {} files differ",
            self.config.len(),
            p.added.len() + p.removed.len() + p.changed.len(),
            self.files.len()
        )?;
        let by_attribute = self.attribute_counts();
        if !by_attribute.is_empty() {
            let counts: Vec<String> = by_attribute
                .iter()
                .map(|(a, n)| format!("{a} {n}"))
                .collect();
            write!(f, " (changed attributes: {})", counts.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(sha: &str) -> FileMeta {
        FileMeta {
            kind: "file",
            sha256: Some(sha.into()),
            size: 1,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 5,
            link_target: None,
            device: None,
            xattrs: BTreeMap::new(),
        }
    }

    #[test]
    fn json_paths_of_differences() {
        let a = json!({"config": {"Env": ["A=1", "B=2"]}, "created": "x", "os": "linux"});
        let b = json!({"config": {"Env": ["A=1"]}, "created": "y", "os": "linux", "new": 1});
        let paths: Vec<String> = diff_json(&a, &b).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["config.Env[1]", "created", "new"]);
        assert!(diff_json(&a, &a).is_empty());
    }

    #[test]
    fn packages_by_name_and_arch() {
        let p = |n: &str, v: &str| InstalledPackage {
            name: n.into(),
            version: v.into(),
            arch: "amd64".into(),
        };
        let c = diff_packages(&[p("a", "1"), p("b", "1")], &[p("b", "2"), p("c", "1")]);
        assert_eq!(c.removed, [p("a", "1")]);
        assert_eq!(c.added, [p("c", "1")]);
        assert_eq!(c.changed.len(), 1);
        assert_eq!(
            (c.changed[0].a.as_str(), c.changed[0].b.as_str()),
            ("1", "2")
        );
    }

    #[test]
    fn attributes_that_differ() {
        let a = meta("aa");
        let mut b = meta("bb");
        b.mode = 0o755;
        b.xattrs.insert("user.x".into(), "01".into());
        let names: Vec<String> = diff_meta(&a, &b).into_iter().map(|c| c.attribute).collect();
        assert_eq!(names, ["sha256", "mode", "xattr user.x"]);
    }

    #[test]
    fn subtree_removal_is_exact() {
        let mut t = FileTree::default();
        for p in ["a", "a/b", "a/b/c", "a/b-x", "a/b0"] {
            t.entries.insert(PathBuf::from(p), meta("00"));
        }
        t.remove_subtree(Path::new("a/b"));
        let left: Vec<String> = t.entries.keys().map(|p| p.display().to_string()).collect();
        assert_eq!(left, ["a", "a/b-x", "a/b0"]);
    }
}
