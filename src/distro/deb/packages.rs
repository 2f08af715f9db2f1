//! The binary Packages index: one paragraph per package version.
//!
//! Every stanza must carry Filename, Size and SHA256 (HOSTILE 26): those
//! are what a downloaded .deb is checked against before it is parsed. The
//! Filename is validated here because it later becomes a URL path and a
//! cache name.

use std::ops::Range;

use super::control::{self, ControlError, Paragraph};
use super::relation::{self, Atom, Dependency, RelationError};
use super::version::Version;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackagesError {
    #[error("Packages index: {0}")]
    Syntax(#[from] ControlError),
    #[error("Packages index: stanza at line {line}: no Package field")]
    NoName { line: usize },
    #[error("Packages index: package {package} (line {line}): missing {field} field")]
    MissingField {
        package: String,
        line: usize,
        field: &'static str,
    },
    #[error("Packages index: package {package} (line {line}): field {field}: {reason}")]
    BadField {
        package: String,
        line: usize,
        field: &'static str,
        reason: String,
    },
    #[error("Packages index: package {package} (line {line}): field {field}: {source}")]
    Relation {
        package: String,
        line: usize,
        field: &'static str,
        source: RelationError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiArch {
    #[default]
    No,
    Same,
    Foreign,
    Allowed,
}

/// Archive priority; ordered from most to least important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Priority {
    Required,
    Important,
    Standard,
    Optional,
    Extra,
    /// Missing or not one of the above.
    #[default]
    Unknown,
}

/// One package version from a Packages index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryPackage {
    pub name: String,
    pub version: Version,
    pub arch: String,
    pub multi_arch: MultiArch,
    pub priority: Priority,
    pub essential: bool,
    pub depends: Vec<Dependency>,
    pub pre_depends: Vec<Dependency>,
    pub recommends: Vec<Dependency>,
    pub conflicts: Vec<Dependency>,
    pub breaks: Vec<Dependency>,
    pub provides: Vec<Atom>,
    pub replaces: Vec<Dependency>,
    /// Pool path relative to the mirror root; validated: relative, no `..`
    /// or empty component, no control characters.
    pub filename: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// In KiB, as dpkg counts it.
    pub installed_size: Option<u64>,
    /// `Source:` as written (`name` or `name (version)`); absent when the
    /// source package has the binary's name and version.
    pub source: Option<String>,
    pub section: Option<String>,
    pub maintainer: Option<String>,
    pub homepage: Option<String>,
    /// The first line of Description.
    pub synopsis: Option<String>,
}

impl BinaryPackage {
    /// `name version arch`, for messages.
    pub fn id(&self) -> String {
        format!("{} {} {}", self.name, self.version, self.arch)
    }

    /// A Packages stanza carrying every field this type keeps, so that
    /// `parse_packages(&p.to_stanza())` gives `p` back. Used to cache a
    /// resolved plan without keeping the whole index.
    pub fn to_stanza(&self) -> String {
        use std::fmt::Write;
        let join = |deps: &[Dependency]| {
            deps.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\n",
            self.name, self.version, self.arch
        );
        let multi_arch = match self.multi_arch {
            MultiArch::No => None,
            MultiArch::Same => Some("same"),
            MultiArch::Foreign => Some("foreign"),
            MultiArch::Allowed => Some("allowed"),
        };
        let priority = match self.priority {
            Priority::Required => Some("required"),
            Priority::Important => Some("important"),
            Priority::Standard => Some("standard"),
            Priority::Optional => Some("optional"),
            Priority::Extra => Some("extra"),
            Priority::Unknown => None,
        };
        let provides = self
            .provides
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let fields: [(&str, Option<String>); 16] = [
            ("Multi-Arch", multi_arch.map(str::to_owned)),
            ("Priority", priority.map(str::to_owned)),
            ("Essential", self.essential.then(|| "yes".to_owned())),
            ("Depends", Some(join(&self.depends))),
            ("Pre-Depends", Some(join(&self.pre_depends))),
            ("Recommends", Some(join(&self.recommends))),
            ("Conflicts", Some(join(&self.conflicts))),
            ("Breaks", Some(join(&self.breaks))),
            ("Provides", Some(provides)),
            ("Replaces", Some(join(&self.replaces))),
            ("Installed-Size", self.installed_size.map(|n| n.to_string())),
            ("Source", self.source.clone()),
            ("Section", self.section.clone()),
            ("Maintainer", self.maintainer.clone()),
            ("Homepage", self.homepage.clone()),
            ("Description", self.synopsis.clone()),
        ];
        for (name, value) in fields {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                let _ = writeln!(s, "{name}: {v}");
            }
        }
        let _ = write!(
            s,
            "Filename: {}\nSize: {}\nSHA256: {}\n\n",
            self.filename,
            self.size,
            hex::encode(self.sha256)
        );
        s
    }

    /// The source package name (the binary's own name when unset).
    pub fn source_name(&self) -> &str {
        self.source
            .as_deref()
            .and_then(|s| s.split_ascii_whitespace().next())
            .unwrap_or(&self.name)
    }
}

/// Parses a whole Packages file. Large files are cut at stanza boundaries
/// and the pieces parsed in parallel; the result and any error (the first
/// in file order, with its real line number) are the same as a serial
/// parse.
pub fn parse_packages(text: &str) -> Result<Vec<BinaryPackage>, PackagesError> {
    parse_chunked(text, CHUNK_BYTES)
}

/// What resolution needs up front about one stanza of an index that is
/// kept as text: the full [`BinaryPackage`] is parsed again from `range`
/// (with [`parse_stanza_at`]) only for the packages resolution touches, so
/// the parsed index is never in memory all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaSummary {
    /// Byte range of the stanza in the index text.
    pub range: Range<usize>,
    /// Byte ranges of the Package and Architecture values (ranges rather
    /// than strings: ~70k small allocations fewer for a whole index).
    pub name: Range<usize>,
    pub arch: Range<usize>,
    pub essential: bool,
    pub priority: Priority,
    /// The names listed in Provides.
    pub provides: Vec<String>,
}

/// Checks every stanza exactly as [`parse_packages`] does (same errors,
/// same line numbers) but keeps only a summary of each.
pub fn summarize_packages(text: &str) -> Result<Vec<StanzaSummary>, PackagesError> {
    parse_chunked_with(text, CHUNK_BYTES, &|para, pkg| summary(text, para, pkg))
}

/// [`summarize_packages`] for one piece of an index summarized piece by
/// piece as it is decoded, held apart from the text it will be part of (so
/// pieces can be checked in parallel): `piece` starts `offset` bytes into
/// the whole text and ends at a stanza boundary. Ranges are relative to the whole text; an
/// error's line is relative to the piece until [`piece_error_in`] places it.
pub fn summarize_detached(piece: &str, offset: usize) -> Result<Vec<StanzaSummary>, PackagesError> {
    let mut summaries = parse_serial(piece, &|para, pkg| summary(piece, para, pkg))?;
    let shift = |r: &mut Range<usize>| *r = r.start + offset..r.end + offset;
    for s in &mut summaries {
        shift(&mut s.range);
        shift(&mut s.name);
        shift(&mut s.arch);
    }
    Ok(summaries)
}

/// Gives an error from [`summarize_detached`] its line in the whole `text`,
/// where the piece started at byte `offset`.
pub fn piece_error_in(err: PackagesError, text: &str, offset: usize) -> PackagesError {
    shift_line(err, text.get(..offset).map_or(0, count_lines))
}

impl StanzaSummary {
    /// The package name, from the text the summary was made of.
    pub fn name<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.name.clone()).unwrap_or("")
    }

    /// The architecture, from the text the summary was made of.
    pub fn arch<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.arch.clone()).unwrap_or("")
    }
}

fn summary(text: &str, para: &Paragraph<'_>, pkg: BinaryPackage) -> StanzaSummary {
    // parse_stanza accepted the paragraph, so both fields are present and
    // their values are the package's name and architecture.
    let value_range = |field: &str| {
        para.get(field)
            .and_then(|v| span_in(text, v))
            .unwrap_or(0..0)
    };
    StanzaSummary {
        range: stanza_range(text, para),
        name: value_range("Package"),
        arch: value_range("Architecture"),
        essential: pkg.essential,
        priority: pkg.priority,
        provides: pkg.provides.into_iter().map(|a| a.name).collect(),
    }
}

/// Parses the stanza at `range` of `text` (a range from
/// [`summarize_packages`] on the same text).
pub fn parse_stanza_at(text: &str, range: Range<usize>) -> Result<BinaryPackage, PackagesError> {
    // Counted only on error: lines before the stanza, for the message.
    let lines_before = || text.get(..range.start).map_or(0, count_lines);
    let Some(stanza) = text.get(range.clone()) else {
        return Err(PackagesError::Syntax(ControlError {
            line: lines_before() + 1,
            msg: "stanza range outside the index".into(),
        }));
    };
    let parsed = match control::paragraphs(stanza).next() {
        None => Err(PackagesError::NoName { line: 1 }),
        Some(Err(e)) => Err(PackagesError::from(e)),
        Some(Ok(para)) => parse_stanza(&para),
    };
    parsed.map_err(|e| shift_line(e, lines_before()))
}

/// The bytes of `text` a paragraph parsed from it spans: from its first
/// field name to the end of its last value (every name and value is a
/// slice of the text).
fn stanza_range(text: &str, para: &Paragraph<'_>) -> Range<usize> {
    let (mut start, mut end) = (usize::MAX, 0);
    for (name, value) in para.fields() {
        for span in [name, value].into_iter().filter_map(|p| span_in(text, p)) {
            start = start.min(span.start);
            end = end.max(span.end);
        }
    }
    start.min(end)..end
}

/// Where `piece` lies in `text`, if it is a slice of it.
fn span_in(text: &str, piece: &str) -> Option<Range<usize>> {
    let at = (piece.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    (at <= text.len() && piece.len() <= text.len() - at).then(|| at..at + piece.len())
}

fn parse_chunked(text: &str, chunk_bytes: usize) -> Result<Vec<BinaryPackage>, PackagesError> {
    parse_chunked_with(text, chunk_bytes, &|_, pkg| pkg)
}

/// Parses `text` in parallel pieces and maps each parsed stanza through
/// `keep` as soon as it is parsed.
fn parse_chunked_with<T: Send>(
    text: &str,
    chunk_bytes: usize,
    keep: &(dyn Fn(&Paragraph<'_>, BinaryPackage) -> T + Sync),
) -> Result<Vec<T>, PackagesError> {
    use rayon::prelude::*;
    let chunks = split_at_stanzas(text, chunk_bytes);
    let parsed: Vec<Result<Vec<T>, PackagesError>> = chunks
        .par_iter()
        .map(|&(_, chunk)| parse_serial(chunk, keep))
        .collect();
    let mut out = Vec::with_capacity(parsed.iter().map(|r| r.as_ref().map_or(0, Vec::len)).sum());
    for (result, &(start, _)) in parsed.into_iter().zip(&chunks) {
        match result {
            Ok(pkgs) => out.extend(pkgs),
            Err(e) => return Err(shift_line(e, count_lines(&text[..start]))),
        }
    }
    Ok(out)
}

/// Work unit for parallel parsing: big enough that scheduling is noise.
const CHUNK_BYTES: usize = 2 << 20;

fn parse_serial<T>(
    text: &str,
    keep: &dyn Fn(&Paragraph<'_>, BinaryPackage) -> T,
) -> Result<Vec<T>, PackagesError> {
    // A Packages stanza averages about 800 bytes.
    let mut out = Vec::with_capacity(text.len() / 700 + 1);
    for para in control::paragraphs(text) {
        let para = para?;
        let pkg = parse_stanza(&para)?;
        out.push(keep(&para, pkg));
    }
    Ok(out)
}

/// Splits `text` into pieces of about `size` bytes that each end just
/// after a blank line (so no stanza is cut), with their byte offsets.
fn split_at_stanzas(text: &str, size: usize) -> Vec<(usize, &str)> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut target = (start + size).min(text.len());
        while !text.is_char_boundary(target) {
            target += 1;
        }
        let end = match text[target..].find("\n\n") {
            Some(i) => target + i + 2,
            None => text.len(),
        };
        chunks.push((start, &text[start..end]));
        start = end;
    }
    chunks
}

fn count_lines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

/// Turns a line number relative to a chunk into one relative to the file.
fn shift_line(err: PackagesError, offset: usize) -> PackagesError {
    match err {
        PackagesError::Syntax(mut e) => {
            e.line += offset;
            PackagesError::Syntax(e)
        }
        PackagesError::NoName { line } => PackagesError::NoName {
            line: line + offset,
        },
        PackagesError::MissingField {
            package,
            line,
            field,
        } => PackagesError::MissingField {
            package,
            line: line + offset,
            field,
        },
        PackagesError::BadField {
            package,
            line,
            field,
            reason,
        } => PackagesError::BadField {
            package,
            line: line + offset,
            field,
            reason,
        },
        PackagesError::Relation {
            package,
            line,
            field,
            source,
        } => PackagesError::Relation {
            package,
            line: line + offset,
            field,
            source,
        },
    }
}

/// The raw fields of one stanza that we use, gathered in a single pass.
#[derive(Default)]
struct Raw<'a> {
    package: Option<&'a str>,
    version: Option<&'a str>,
    arch: Option<&'a str>,
    multi_arch: Option<&'a str>,
    priority: Option<&'a str>,
    essential: Option<&'a str>,
    depends: Option<&'a str>,
    pre_depends: Option<&'a str>,
    recommends: Option<&'a str>,
    conflicts: Option<&'a str>,
    breaks: Option<&'a str>,
    provides: Option<&'a str>,
    replaces: Option<&'a str>,
    filename: Option<&'a str>,
    size: Option<&'a str>,
    sha256: Option<&'a str>,
    installed_size: Option<&'a str>,
    source: Option<&'a str>,
    section: Option<&'a str>,
    maintainer: Option<&'a str>,
    homepage: Option<&'a str>,
    description: Option<&'a str>,
}

impl<'a> Raw<'a> {
    fn gather(para: &Paragraph<'a>) -> Raw<'a> {
        let mut raw = Raw::default();
        for (name, value) in para.fields() {
            let slot = match name {
                "Package" => &mut raw.package,
                "Version" => &mut raw.version,
                "Architecture" => &mut raw.arch,
                "Multi-Arch" => &mut raw.multi_arch,
                "Priority" => &mut raw.priority,
                "Essential" => &mut raw.essential,
                "Depends" => &mut raw.depends,
                "Pre-Depends" => &mut raw.pre_depends,
                "Recommends" => &mut raw.recommends,
                "Conflicts" => &mut raw.conflicts,
                "Breaks" => &mut raw.breaks,
                "Provides" => &mut raw.provides,
                "Replaces" => &mut raw.replaces,
                "Filename" => &mut raw.filename,
                "Size" => &mut raw.size,
                "SHA256" => &mut raw.sha256,
                "Installed-Size" => &mut raw.installed_size,
                "Source" => &mut raw.source,
                "Section" => &mut raw.section,
                "Maintainer" => &mut raw.maintainer,
                "Homepage" => &mut raw.homepage,
                "Description" => &mut raw.description,
                // Field names are case-insensitive; archives use the
                // canonical spelling, so only the rare other spelling
                // pays for the slower lookup.
                other => match raw.slot_ignoring_case(other) {
                    Some(slot) => slot,
                    None => continue,
                },
            };
            *slot = Some(value);
        }
        raw
    }

    fn slot_ignoring_case(&mut self, name: &str) -> Option<&mut Option<&'a str>> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "package" => &mut self.package,
            "version" => &mut self.version,
            "architecture" => &mut self.arch,
            "multi-arch" => &mut self.multi_arch,
            "priority" => &mut self.priority,
            "essential" => &mut self.essential,
            "depends" => &mut self.depends,
            "pre-depends" => &mut self.pre_depends,
            "recommends" => &mut self.recommends,
            "conflicts" => &mut self.conflicts,
            "breaks" => &mut self.breaks,
            "provides" => &mut self.provides,
            "replaces" => &mut self.replaces,
            "filename" => &mut self.filename,
            "size" => &mut self.size,
            "sha256" => &mut self.sha256,
            "installed-size" => &mut self.installed_size,
            "source" => &mut self.source,
            "section" => &mut self.section,
            "maintainer" => &mut self.maintainer,
            "homepage" => &mut self.homepage,
            "description" => &mut self.description,
            _ => return None,
        })
    }
}

/// Builds errors that name the package and the stanza's line.
struct Ctx<'a> {
    package: &'a str,
    line: usize,
}

impl Ctx<'_> {
    fn bad(&self, field: &'static str, reason: impl Into<String>) -> PackagesError {
        PackagesError::BadField {
            package: self.package.to_string(),
            line: self.line,
            field,
            reason: reason.into(),
        }
    }

    fn require<'v>(
        &self,
        value: Option<&'v str>,
        field: &'static str,
    ) -> Result<&'v str, PackagesError> {
        value.ok_or_else(|| PackagesError::MissingField {
            package: self.package.to_string(),
            line: self.line,
            field,
        })
    }

    fn relations(
        &self,
        value: Option<&str>,
        field: &'static str,
    ) -> Result<Vec<Dependency>, PackagesError> {
        match value {
            None => Ok(Vec::new()),
            Some(v) => relation::parse_relations(v).map_err(|source| PackagesError::Relation {
                package: self.package.to_string(),
                line: self.line,
                field,
                source,
            }),
        }
    }

    fn number(&self, value: &str, field: &'static str) -> Result<u64, PackagesError> {
        value
            .parse::<u64>()
            .map_err(|_| self.bad(field, format!("not a size: {value:?}")))
    }
}

fn parse_stanza(para: &Paragraph<'_>) -> Result<BinaryPackage, PackagesError> {
    let raw = Raw::gather(para);
    let name = raw
        .package
        .ok_or(PackagesError::NoName { line: para.line })?;
    let ctx = Ctx {
        package: name,
        line: para.line,
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b))
    {
        return Err(ctx.bad("Package", format!("invalid package name {name:?}")));
    }
    let version = Version::parse(ctx.require(raw.version, "Version")?)
        .map_err(|e| ctx.bad("Version", e.to_string()))?;
    let arch = ctx.require(raw.arch, "Architecture")?;
    let filename = ctx.require(raw.filename, "Filename")?;
    check_filename(filename).map_err(|reason| ctx.bad("Filename", reason))?;
    let size = ctx.number(ctx.require(raw.size, "Size")?, "Size")?;
    let sha256 =
        parse_sha256(ctx.require(raw.sha256, "SHA256")?).map_err(|r| ctx.bad("SHA256", r))?;
    let provides = match raw.provides {
        None => Vec::new(),
        Some(v) => relation::parse_provides(v).map_err(|source| PackagesError::Relation {
            package: name.to_string(),
            line: para.line,
            field: "Provides",
            source,
        })?,
    };
    Ok(BinaryPackage {
        name: name.to_string(),
        version,
        arch: arch.to_string(),
        multi_arch: parse_multi_arch(raw.multi_arch).map_err(|r| ctx.bad("Multi-Arch", r))?,
        priority: parse_priority(raw.priority),
        essential: parse_yes_no(raw.essential).map_err(|r| ctx.bad("Essential", r))?,
        depends: ctx.relations(raw.depends, "Depends")?,
        pre_depends: ctx.relations(raw.pre_depends, "Pre-Depends")?,
        recommends: ctx.relations(raw.recommends, "Recommends")?,
        conflicts: ctx.relations(raw.conflicts, "Conflicts")?,
        breaks: ctx.relations(raw.breaks, "Breaks")?,
        provides,
        replaces: ctx.relations(raw.replaces, "Replaces")?,
        filename: filename.to_string(),
        size,
        sha256,
        installed_size: raw
            .installed_size
            .map(|v| ctx.number(v, "Installed-Size"))
            .transpose()?,
        source: raw.source.map(str::to_string),
        section: raw.section.map(str::to_string),
        maintainer: raw.maintainer.map(str::to_string),
        homepage: raw.homepage.map(str::to_string),
        synopsis: raw
            .description
            .map(|d| d.split('\n').next().unwrap_or("").trim().to_string()),
    })
}

/// Rejects pool paths that could escape the mirror root or a cache
/// directory when joined to it.
pub fn check_filename(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err(format!("absolute path {path:?}"));
    }
    if path.contains(|c: char| c.is_control()) {
        return Err(format!("control character in {path:?}"));
    }
    if path
        .split('/')
        .any(|c| c == ".." || c == "." || c.is_empty())
    {
        return Err(format!("'..', '.' or empty component in {path:?}"));
    }
    Ok(())
}

fn parse_sha256(hex_text: &str) -> Result<[u8; 32], String> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut digest)
        .map_err(|_| format!("not a 64-digit hex SHA-256: {hex_text:?}"))?;
    Ok(digest)
}

fn parse_multi_arch(value: Option<&str>) -> Result<MultiArch, String> {
    match value {
        None | Some("no") => Ok(MultiArch::No),
        Some("same") => Ok(MultiArch::Same),
        Some("foreign") => Ok(MultiArch::Foreign),
        Some("allowed") => Ok(MultiArch::Allowed),
        Some(other) => Err(format!("unknown value {other:?}")),
    }
}

fn parse_priority(value: Option<&str>) -> Priority {
    match value {
        Some("required") => Priority::Required,
        Some("important") => Priority::Important,
        Some("standard") => Priority::Standard,
        Some("optional") => Priority::Optional,
        Some("extra") => Priority::Extra,
        _ => Priority::Unknown,
    }
}

fn parse_yes_no(value: Option<&str>) -> Result<bool, String> {
    match value {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("yes") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("no") => Ok(false),
        Some(other) => Err(format!("expected yes or no, found {other:?}")),
    }
}

/// Unit tests' index: one stanza per (name, extra fields), amd64 unless
/// the extra fields name an Architecture.
#[cfg(test)]
pub(crate) fn fixture_packages(specs: &[(&str, &str)]) -> Vec<BinaryPackage> {
    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let mut text = String::new();
    for (name, extra) in specs {
        let arch = if extra.contains("Architecture:") {
            ""
        } else {
            "Architecture: amd64\n"
        };
        text.push_str(&format!(
            "Package: {name}\nVersion: 1\n{arch}{extra}\
             Filename: pool/{name}.deb\nSize: 1\nSHA256: {SHA}\n\n"
        ));
    }
    parse_packages(&text).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn stanza(name: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: 1.0-1\nArchitecture: amd64\n{extra}Filename: pool/main/{name}_1.0-1_amd64.deb\nSize: 1234\nSHA256: {SHA}\n"
        )
    }

    #[test]
    fn to_stanza_round_trips() {
        let text = "Package: libc-bin\nSource: glibc (2.41-12)\nVersion: 1:2.41-12\nInstalled-Size: 2628\n\
            Maintainer: M <x@y>\nArchitecture: amd64\nMulti-Arch: foreign\n\
            Depends: libc6 (>> 2.41) | libc6-udeb, b:any [amd64 !i386] <!nocheck>\nPre-Depends: dpkg (>= 1.19)\n\
            Recommends: manpages\nBreaks: old (<< 1)\nConflicts: c\nReplaces: r\nProvides: x (= 1), y\n\
            Essential: yes\nDescription: GNU C Library: Binaries\n more text\nHomepage: https://example.org\n\
            Section: libs\nPriority: required\nFilename: pool/main/g/glibc/libc-bin_2.41-12_amd64.deb\n\
            Size: 609356\nSHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\n\
            Package: plain\nVersion: 1\nArchitecture: all\nFilename: p.deb\nSize: 1\nSHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
        let parsed = parse_packages(text).unwrap();
        let again: String = parsed.iter().map(BinaryPackage::to_stanza).collect();
        assert_eq!(parse_packages(&again).unwrap(), parsed);
    }

    #[test]
    fn parses_a_full_stanza() {
        let text = "Package: libc-bin\nSource: glibc (2.41-12)\nVersion: 2.41-12\nInstalled-Size: 2628\n\
            Maintainer: GNU Libc Maintainers <x@y>\nArchitecture: amd64\nMulti-Arch: foreign\n\
            Depends: libc6 (>> 2.41), libc6 (<< 2.42)\nPre-Depends: dpkg (>= 1.19)\nRecommends: manpages\n\
            Breaks: old (<< 1)\nConflicts: c\nReplaces: r\nProvides: x (= 1), y\nEssential: yes\n\
            Description: GNU C Library: Binaries\n more text\nHomepage: https://example.org\n\
            Section: libs\nPriority: required\nFilename: pool/main/g/glibc/libc-bin_2.41-12_amd64.deb\n\
            Size: 609356\nMD5sum: 00\nSHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
        let pkgs = parse_packages(text).unwrap();
        let p = &pkgs[0];
        assert_eq!(p.name, "libc-bin");
        assert_eq!(p.version.to_string(), "2.41-12");
        assert_eq!(p.multi_arch, MultiArch::Foreign);
        assert_eq!(p.priority, Priority::Required);
        assert!(p.essential);
        assert_eq!(p.depends.len(), 2);
        assert_eq!(p.pre_depends[0].alternatives[0].name, "dpkg");
        assert_eq!(p.recommends.len(), 1);
        assert_eq!(
            (p.breaks.len(), p.conflicts.len(), p.replaces.len()),
            (1, 1, 1)
        );
        assert_eq!(p.provides.len(), 2);
        assert_eq!(p.size, 609356);
        assert_eq!(p.sha256[0], 0x01);
        assert_eq!(p.installed_size, Some(2628));
        assert_eq!(p.source_name(), "glibc");
        assert_eq!(p.synopsis.as_deref(), Some("GNU C Library: Binaries"));
        assert_eq!(p.section.as_deref(), Some("libs"));
    }

    #[test]
    fn hostile_26_missing_filename_size_or_sha256_names_package_and_line() {
        for field in ["Filename", "Size", "SHA256"] {
            let good = stanza("first", "");
            let bad: String = stanza("victim", "")
                .lines()
                .filter(|l| !l.starts_with(&format!("{field}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            let text = format!("{good}\n{bad}");
            let err = parse_packages(&text).unwrap_err();
            assert_eq!(
                err,
                PackagesError::MissingField {
                    package: "victim".into(),
                    line: 8,
                    field: match field {
                        "Filename" => "Filename",
                        "Size" => "Size",
                        _ => "SHA256",
                    },
                }
            );
            assert!(err.to_string().contains("victim") && err.to_string().contains("line 8"));
        }
    }

    #[test]
    fn hostile_26_malformed_size_and_digest() {
        let text = stanza("a", "").replace("Size: 1234", "Size: -1");
        assert!(matches!(
            parse_packages(&text),
            Err(PackagesError::BadField { field: "Size", .. })
        ));
        let text = stanza("a", "").replace(SHA, &SHA[..62]);
        assert!(matches!(
            parse_packages(&text),
            Err(PackagesError::BadField {
                field: "SHA256",
                ..
            })
        ));
    }

    #[test]
    fn rejects_unsafe_filenames() {
        for bad in [
            "/etc/passwd",
            "../x.deb",
            "pool/../../x.deb",
            "pool//x.deb",
            "pool/./x.deb",
            "pool/x\n.deb",
            "pool/x\u{7f}.deb",
            "",
        ] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
        check_filename("pool/main/a/apt/apt_3.0.3_amd64.deb").unwrap();
        let text = stanza("a", "").replace("Filename: pool/main/", "Filename: ../");
        let err = parse_packages(&text).unwrap_err().to_string();
        assert!(
            err.contains("package a") && err.contains("Filename"),
            "{err}"
        );
    }

    #[test]
    fn relation_errors_name_the_package_and_field() {
        let text = stanza("a", "Depends: b (>= 1\n");
        let err = parse_packages(&text).unwrap_err().to_string();
        assert!(
            err.contains("package a") && err.contains("Depends") && err.contains("b (>= 1"),
            "{err}"
        );
    }

    #[test]
    fn invalid_version_and_multi_arch_are_errors() {
        let text = stanza("a", "").replace("Version: 1.0-1", "Version: 1.0-");
        assert!(matches!(
            parse_packages(&text),
            Err(PackagesError::BadField {
                field: "Version",
                ..
            })
        ));
        let text = stanza("a", "Multi-Arch: sometimes\n");
        assert!(matches!(
            parse_packages(&text),
            Err(PackagesError::BadField {
                field: "Multi-Arch",
                ..
            })
        ));
        let text = stanza("a", "Essential: maybe\n");
        assert!(matches!(
            parse_packages(&text),
            Err(PackagesError::BadField {
                field: "Essential",
                ..
            })
        ));
    }

    #[test]
    fn chunked_parse_matches_serial_parse_and_keeps_line_numbers() {
        let text: String = (0..50)
            .map(|i| format!("{}\n", stanza(&format!("p{i}"), "Description: é\n")))
            .collect();
        let serial = parse_serial(&text, &|_, p| p).unwrap();
        for size in [1, 7, 100, 1000, 1 << 20] {
            assert_eq!(
                parse_chunked(&text, size).unwrap(),
                serial,
                "chunk size {size}"
            );
        }
        // Break the 40th stanza: the error's line must be the file's line.
        let broken = text.replace("Package: p39\nVersion: 1.0-1\n", "Package: p39\n");
        let line = 1 + broken[..broken.find("Package: p39").unwrap()]
            .matches('\n')
            .count();
        for size in [1, 100, 1 << 20] {
            let err = parse_chunked(&broken, size).unwrap_err();
            assert_eq!(
                err,
                PackagesError::MissingField {
                    package: "p39".into(),
                    line,
                    field: "Version"
                },
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn summaries_point_at_stanzas_that_parse_back_to_the_same_package() {
        let text = format!(
            "{}\n# comment\n\n{}\n{}",
            stanza("a", "Essential: yes\nProvides: v (= 1), w\n"),
            stanza("b", "Priority: required\nDescription: x\n more\n .\n"),
            stanza("c", "").trim_end()
        );
        let full = parse_packages(&text).unwrap();
        let summaries = summarize_packages(&text).unwrap();
        assert_eq!(summaries.len(), full.len());
        for (s, p) in summaries.iter().zip(&full) {
            assert_eq!(parse_stanza_at(&text, s.range.clone()).unwrap(), *p);
            assert_eq!((s.name(&text), s.arch(&text)), (&*p.name, &*p.arch));
            assert_eq!((s.essential, s.priority), (p.essential, p.priority));
        }
        assert_eq!(summaries[0].provides, ["v", "w"]);
        assert_eq!(summaries[1].priority, Priority::Required);
        assert!(parse_stanza_at(&text, 0..text.len() + 1).is_err());
    }

    #[test]
    fn piecewise_summaries_match_whole_ones() {
        let text: String = (0..20)
            .map(|i| format!("{}\n", stanza(&format!("p{i}"), "")))
            .collect();
        let whole = summarize_packages(&text).unwrap();
        let cut = text[..text.len() / 2].rfind("\n\n").unwrap() + 2;
        let mut pieces = summarize_detached(&text[..cut], 0).unwrap();
        pieces.extend(summarize_detached(&text[cut..], cut).unwrap());
        assert_eq!(pieces, whole);
        let broken = text.replace("Package: p15\nVersion: 1.0-1\n", "Package: p15\n");
        let cut = broken[..broken.len() / 2].rfind("\n\n").unwrap() + 2;
        let err = summarize_detached(&broken[cut..], cut).unwrap_err();
        assert_eq!(
            piece_error_in(err, &broken, cut),
            parse_packages(&broken).unwrap_err()
        );
    }

    #[test]
    fn summaries_report_the_same_errors_as_a_full_parse() {
        let text = format!("{}\n{}", stanza("a", ""), stanza("b", "Depends: (\n"));
        assert_eq!(
            summarize_packages(&text).unwrap_err(),
            parse_packages(&text).unwrap_err()
        );
    }

    /// Deterministic mutation smoke test: corrupted stanzas give errors,
    /// never panics, in every parser of this layer.
    #[test]
    fn mutated_input_never_panics() {
        let base = format!(
            "{}\n{}",
            stanza("a", "Depends: b (>= 1:2.0~rc1-3) | c:any [amd64 !i386] <!nocheck>, d\nProvides: e (= 1)\n"),
            stanza("f", "Pre-Depends: g\nEssential: yes\nMulti-Arch: same\n")
        );
        let pieces = [
            "\n", " ", ":", "(", ")", "|", ",", "[", "]", "<", ">", "!", "~", "-", "é", "\u{0}",
            "\n\n", "=", "",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % bound
        };
        for _ in 0..3000 {
            let mut text = base.clone();
            for _ in 0..1 + next(3) {
                let mut at = next(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let cut = (at + next(4)).min(text.len());
                let cut = (cut..=text.len())
                    .find(|&c| text.is_char_boundary(c))
                    .unwrap_or(text.len());
                text.replace_range(at..cut, pieces[next(pieces.len())]);
            }
            let _ = parse_packages(&text);
            let _ = super::super::release::Release::parse(&text);
            for line in text.lines() {
                let _ = relation::parse_relations(line);
                let _ = Version::parse_lax(line);
            }
        }
    }

    #[test]
    fn field_names_are_case_insensitive() {
        let text = stanza("a", "pre-depends: b\n");
        assert_eq!(parse_packages(&text).unwrap()[0].pre_depends.len(), 1);
    }

    /// CPU seconds this process has used (user + system, all threads).
    fn cpu_seconds() -> f64 {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
        let usage = unsafe {
            libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
            usage.assume_init()
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    }

    /// Release-mode timing on a real index:
    /// `cargo test --release --lib packages::tests::parse_real -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn parse_real_trixie_packages_timing() {
        let Ok(text) = std::fs::read_to_string("/tmp/trixie-Packages") else {
            eprintln!("SKIP: /tmp/trixie-Packages not found");
            return;
        };
        let (start, cpu_start) = (std::time::Instant::now(), cpu_seconds());
        let pkgs = parse_packages(&text).unwrap();
        let (elapsed, cpu) = (start.elapsed(), cpu_seconds() - cpu_start);
        eprintln!(
            "parsed {} packages ({} MB) in {elapsed:?} wall, {cpu:.3} s CPU on {} threads",
            pkgs.len(),
            text.len() >> 20,
            rayon::current_num_threads()
        );
        assert!(pkgs.len() > 50_000);
        if !cfg!(debug_assertions) {
            assert!(cpu < 1.0, "{cpu} s CPU");
        }
    }
}
