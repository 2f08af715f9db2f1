//! Relationship fields: Depends, Pre-Depends, Recommends, Conflicts,
//! Breaks, Replaces (`a (>= 1.0) | b:any, c [amd64 !i386] <!nocheck>`)
//! and Provides (`x, y (= 1.2)`).
//!
//! Architecture restriction lists and build-profile formulas are kept on
//! each [`Atom`] and evaluated by [`Atom::applies`] for a target
//! architecture with no build profile active (the situation of a binary
//! install). Binary indexes normally carry neither, because dpkg-gencontrol
//! reduces them when building, but accepting them costs nothing and keeps a
//! hand-made repository usable.

use std::fmt;

use super::version::{Op, Version};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid relation {text:?}: {reason}")]
pub struct RelationError {
    /// The relation (or whole field) at fault, as written.
    pub text: String,
    pub reason: String,
}

fn error(text: &str, reason: impl Into<String>) -> RelationError {
    RelationError {
        text: text.trim().to_string(),
        reason: reason.into(),
    }
}

/// One comma-separated element of a relationship field: satisfied when any
/// alternative is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub alternatives: Vec<Atom>,
}

/// One package reference with its optional qualifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    pub name: String,
    /// `any`, `native` or an architecture name, from `name:qual`.
    pub arch_qual: Option<String>,
    pub constraint: Option<(Op, Version)>,
    /// `[…]` and `<…>` lists; boxed because binary indexes almost never
    /// carry them and an index holds hundreds of thousands of atoms.
    pub restrictions: Option<Box<Restrictions>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restrictions {
    /// `[amd64 !i386]`; empty when absent.
    pub arches: Vec<ArchTerm>,
    /// `<!nocheck> <stage1 cross>`: a disjunction of conjunctions; empty
    /// when absent.
    pub profiles: Vec<Vec<ProfileTerm>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchTerm {
    pub negated: bool,
    /// An architecture or wildcard (`linux-any`, `any-arm64`).
    pub arch: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTerm {
    pub negated: bool,
    pub name: String,
}

impl Atom {
    /// An unqualified, unversioned reference to `name`.
    pub fn named(name: &str) -> Atom {
        Atom {
            name: name.to_string(),
            arch_qual: None,
            constraint: None,
            restrictions: None,
        }
    }

    /// Whether this atom is in force when installing for `arch` with no
    /// build profile active.
    pub fn applies(&self, arch: &str) -> bool {
        self.restrictions
            .as_deref()
            .is_none_or(|r| r.arch_allows(arch) && r.profiles_allow())
    }

    /// Whether `version` meets this atom's constraint (always, when it has none).
    pub fn version_matches(&self, version: &Version) -> bool {
        match &self.constraint {
            None => true,
            Some((op, wanted)) => version.satisfies(*op, wanted),
        }
    }
}

impl Restrictions {
    fn arch_allows(&self, arch: &str) -> bool {
        if self.arches.is_empty() {
            return true;
        }
        let mut positives = self.arches.iter().filter(|t| !t.negated).peekable();
        let listed_ok =
            positives.peek().is_none() || positives.any(|t| arch_matches(&t.arch, arch));
        let excluded = self
            .arches
            .iter()
            .any(|t| t.negated && arch_matches(&t.arch, arch));
        listed_ok && !excluded
    }

    fn profiles_allow(&self) -> bool {
        // No profile is active, so a term holds exactly when it is negated.
        self.profiles.is_empty()
            || self
                .profiles
                .iter()
                .any(|group| group.iter().all(|term| term.negated))
    }
}

/// The CPU part of a Debian architecture name, for `any-CPU` wildcards.
fn arch_cpu(arch: &str) -> &str {
    match arch {
        "armhf" | "armel" => "arm",
        "ppc64el" => "ppc64el",
        "x32" => "amd64",
        other => other,
    }
}

/// Matches an architecture or wildcard against a (Linux) target
/// architecture: `any`, `linux-any`, `any-CPU`, `linux-ARCH` or `ARCH`.
pub fn arch_matches(pattern: &str, arch: &str) -> bool {
    pattern == arch
        || pattern == "any"
        || pattern == "linux-any"
        || pattern.strip_prefix("linux-") == Some(arch)
        || pattern.strip_prefix("any-") == Some(arch_cpu(arch))
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qual {
            write!(f, ":{q}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({op} {v})")?;
        }
        let Some(r) = self.restrictions.as_deref() else {
            return Ok(());
        };
        if !r.arches.is_empty() {
            let terms: Vec<String> = r
                .arches
                .iter()
                .map(|t| format!("{}{}", if t.negated { "!" } else { "" }, t.arch))
                .collect();
            write!(f, " [{}]", terms.join(" "))?;
        }
        for group in &r.profiles {
            let terms: Vec<String> = group
                .iter()
                .map(|t| format!("{}{}", if t.negated { "!" } else { "" }, t.name))
                .collect();
            write!(f, " <{}>", terms.join(" "))?;
        }
        Ok(())
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, atom) in self.alternatives.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{atom}")?;
        }
        Ok(())
    }
}

/// Parses a relationship field (Depends, Conflicts, …). An empty field
/// gives no dependencies; an empty element (`a, , b`) is an error.
pub fn parse_relations(text: &str) -> Result<Vec<Dependency>, RelationError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    // Sized exactly: an index holds hundreds of thousands of these, and
    // `collect` over a fallible iterator would over-allocate.
    let mut deps = Vec::with_capacity(count_byte(text, b',') + 1);
    for element in text.split(',') {
        let mut alternatives = Vec::with_capacity(count_byte(element, b'|') + 1);
        for alt in element.split('|') {
            alternatives.push(parse_atom(alt, element)?);
        }
        deps.push(Dependency { alternatives });
    }
    Ok(deps)
}

fn count_byte(text: &str, byte: u8) -> usize {
    text.bytes().filter(|&b| b == byte).count()
}

/// Parses a Provides field: plain atoms, versioned only with `=`.
pub fn parse_provides(text: &str) -> Result<Vec<Atom>, RelationError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut provides = Vec::with_capacity(count_byte(text, b',') + 1);
    for element in text.split(',') {
        if element.contains('|') {
            return Err(error(element, "alternatives are not allowed in Provides"));
        }
        let atom = parse_atom(element, element)?;
        if matches!(atom.constraint, Some((op, _)) if op != Op::Eq) {
            return Err(error(element, "Provides may only use the '=' relation"));
        }
        if atom.restrictions.is_some() {
            return Err(error(element, "Provides takes no restriction lists"));
        }
        provides.push(atom);
    }
    Ok(provides)
}

/// A small cursor over one atom's text.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while self
            .s
            .as_bytes()
            .get(self.pos)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// The text up to `close` (exclusive), consuming the delimiter.
    fn until(&mut self, close: u8) -> Option<&'a str> {
        let rest = &self.s[self.pos..];
        let end = rest.bytes().position(|b| b == close)?;
        self.pos += end + 1;
        Some(&rest[..end])
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_')
}

/// Parses one alternative; `element` is the whole comma-separated element,
/// quoted in errors so the user can find it.
fn parse_atom(text: &str, element: &str) -> Result<Atom, RelationError> {
    let mut c = Cursor { s: text, pos: 0 };
    c.skip_ws();
    let name = c.take_while(is_name_byte);
    if name.is_empty() {
        return Err(error(element, "missing package name"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(error(
            element,
            format!("package name {name:?} must start with a letter or digit"),
        ));
    }
    let mut atom = Atom::named(name);
    if c.peek() == Some(b':') {
        c.pos += 1;
        let qual = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
        if qual.is_empty() {
            return Err(error(element, "empty architecture qualifier after ':'"));
        }
        atom.arch_qual = Some(qual.to_string());
    }
    c.skip_ws();
    if c.peek() == Some(b'(') {
        c.pos += 1;
        let inner = c
            .until(b')')
            .ok_or_else(|| error(element, "unclosed '('"))?;
        atom.constraint = Some(parse_constraint(inner, element)?);
        c.skip_ws();
    }
    if c.peek() == Some(b'[') {
        c.pos += 1;
        let inner = c
            .until(b']')
            .ok_or_else(|| error(element, "unclosed '['"))?;
        atom.restrictions.get_or_insert_default().arches =
            parse_terms(inner, element, "architecture list")?
                .into_iter()
                .map(|(negated, arch)| ArchTerm { negated, arch })
                .collect();
        c.skip_ws();
    }
    while c.peek() == Some(b'<') {
        c.pos += 1;
        let inner = c
            .until(b'>')
            .ok_or_else(|| error(element, "unclosed '<'"))?;
        let group = parse_terms(inner, element, "build profile list")?
            .into_iter()
            .map(|(negated, name)| ProfileTerm { negated, name })
            .collect();
        atom.restrictions
            .get_or_insert_default()
            .profiles
            .push(group);
        c.skip_ws();
    }
    if let Some(b) = c.peek() {
        return Err(error(
            element,
            format!("unexpected {:?} after {name:?}", char::from(b)),
        ));
    }
    Ok(atom)
}

fn parse_constraint(inner: &str, element: &str) -> Result<(Op, Version), RelationError> {
    let inner = inner.trim();
    let op_len = inner
        .bytes()
        .take_while(|b| matches!(b, b'<' | b'>' | b'='))
        .count();
    let (op_text, version_text) = inner.split_at(op_len);
    if op_text.is_empty() {
        return Err(error(element, "version constraint without an operator"));
    }
    let op = op_text
        .parse::<Op>()
        .map_err(|e| error(element, e.to_string()))?;
    // Relations only compare; tolerate what dpkg merely warns about.
    let version = Version::parse_lax(version_text).map_err(|e| error(element, e.to_string()))?;
    Ok((op, version))
}

/// Whitespace-separated `[!]word` terms of `[...]` or `<...>`.
fn parse_terms(
    inner: &str,
    element: &str,
    what: &str,
) -> Result<Vec<(bool, String)>, RelationError> {
    let terms: Vec<(bool, String)> = inner
        .split_ascii_whitespace()
        .map(|t| match t.strip_prefix('!') {
            Some(rest) => (true, rest.to_string()),
            None => (false, t.to_string()),
        })
        .collect();
    let bad = terms
        .iter()
        .any(|(_, w)| w.is_empty() || !w.bytes().all(is_name_byte));
    if terms.is_empty() || bad {
        return Err(error(element, format!("malformed {what} {inner:?}")));
    }
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alternatives_qualifiers_and_constraints() {
        let deps = parse_relations("a (>= 1.0) | b:any, c [amd64 !i386] <!nocheck>,\n d (<<2:3-1)")
            .unwrap();
        assert_eq!(deps.len(), 3);
        let a = &deps[0].alternatives[0];
        assert_eq!(a.name, "a");
        assert_eq!(a.constraint, Some((Op::Ge, Version::parse("1.0").unwrap())));
        let b = &deps[0].alternatives[1];
        assert_eq!(
            (b.name.as_str(), b.arch_qual.as_deref()),
            ("b", Some("any"))
        );
        let c = &deps[1].alternatives[0];
        let r = c.restrictions.as_deref().unwrap();
        assert_eq!(r.arches.len(), 2);
        assert!(r.arches[1].negated);
        assert_eq!(r.profiles[0][0].name, "nocheck");
        let d = &deps[2].alternatives[0];
        assert_eq!(d.constraint.as_ref().unwrap().0, Op::Lt);
        assert_eq!(d.constraint.as_ref().unwrap().1.to_string(), "2:3-1");
        assert_eq!(deps[0].to_string(), "a (>= 1.0) | b:any");
    }

    #[test]
    fn obsolete_operators_mean_or_equal() {
        let deps = parse_relations("a (< 1), b (> 2)").unwrap();
        assert_eq!(
            deps[0].alternatives[0].constraint.as_ref().unwrap().0,
            Op::Le
        );
        assert_eq!(
            deps[1].alternatives[0].constraint.as_ref().unwrap().0,
            Op::Ge
        );
    }

    #[test]
    fn evaluates_arch_lists_and_profiles_for_binary_installs() {
        let deps = parse_relations("c [amd64 !i386], d [!amd64], e [linux-any], f <!nocheck>, g <nocheck>, h <stage1> <!cross>").unwrap();
        let applies: Vec<bool> = deps
            .iter()
            .map(|d| d.alternatives[0].applies("amd64"))
            .collect();
        assert_eq!(applies, [true, false, true, true, false, true]);
        assert!(!deps[0].alternatives[0].applies("arm64"));
        assert!(parse_relations("x [any-arm]").unwrap()[0].alternatives[0].applies("armhf"));
    }

    #[test]
    fn errors_name_the_text() {
        for bad in [
            "a (>= 1.0",
            "a, , b",
            "a (1.0)",
            "a (~> 1)",
            "(>= 1)",
            "a b",
            "a [",
            "a []",
            "a (>= )",
            "-a",
            "a:",
        ] {
            let err = parse_relations(bad).unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains("invalid relation"), "{bad}: {shown}");
        }
        let err = parse_relations("ok, broken (>= 1.0").unwrap_err();
        assert_eq!(err.text, "broken (>= 1.0");
        assert!(parse_relations("").unwrap().is_empty());
    }

    #[test]
    fn provides_allows_only_equal_versions() {
        let p = parse_provides("mail-transport-agent, libfoo-abi (= 2.1), x:any").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].constraint.as_ref().unwrap().0, Op::Eq);
        assert!(parse_provides("a (>= 1)").is_err());
        assert!(parse_provides("a | b").is_err());
        assert!(parse_provides("a [amd64]").is_err());
    }
}
