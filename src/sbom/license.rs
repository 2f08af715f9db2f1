//! Distribution license names → SPDX license expressions.
//!
//! Debian's DEP-5 short names (`GPL-2+`, `Expat`, `BSD-3-clause`) and
//! Alpine's `L:` fields (mostly SPDX already, sometimes old or custom
//! names) are mapped to SPDX identifiers where the meaning is certain; any
//! other name becomes a `LicenseRef-…` carrying the original text, so the
//! document always validates and never claims a license it was not given.

/// An SPDX license expression and the `LicenseRef-` identifiers it uses,
/// each with the distribution's original name (SPDX needs their text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseExpression {
    pub expression: String,
    /// (`LicenseRef-…` identifier, original names joined with `; `).
    pub refs: Vec<(String, String)>,
}

/// SPDX license identifiers we emit as they are (matched case-insensitively).
const SPDX_IDS: &[&str] = &[
    "0BSD",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.0",
    "Apache-1.1",
    "Apache-2.0",
    "APSL-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "Beerware",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSD-Source-Code",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "curl",
    "EPL-1.0",
    "EPL-2.0",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "GFDL-1.1-only",
    "GFDL-1.1-or-later",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ICU",
    "IJG",
    "Info-ZIP",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "libpng-2.0",
    "Libpng",
    "libtiff",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "NCSA",
    "NTP",
    "OFL-1.1",
    "OpenSSL",
    "PostgreSQL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Sleepycat",
    "TCL",
    "Unicode-DFS-2016",
    "Unlicense",
    "Vim",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];

/// SPDX license exceptions (for `WITH`).
const SPDX_EXCEPTIONS: &[&str] = &[
    "Autoconf-exception-2.0",
    "Autoconf-exception-3.0",
    "Bison-exception-2.2",
    "Classpath-exception-2.0",
    "Font-exception-2.0",
    "GCC-exception-2.0",
    "GCC-exception-3.1",
    "Libtool-exception",
    "Linux-syscall-note",
    "LLVM-exception",
    "OpenJDK-assembly-exception-1.0",
];

/// Debian short names that differ from the SPDX identifier.
const DEBIAN_ALIASES: &[(&str, &str)] = &[
    ("Expat", "MIT"),
    ("Artistic", "Artistic-1.0-Perl"),
    ("PSF-2", "PSF-2.0"),
    ("CC0", "CC0-1.0"),
    ("Apache-2", "Apache-2.0"),
    ("MPL-2", "MPL-2.0"),
    ("zlib", "Zlib"),
];

/// Debian's names for exceptions (`GPL-3+ with Bison exception`).
const EXCEPTION_ALIASES: &[(&str, &str)] = &[
    ("Bison exception", "Bison-exception-2.2"),
    ("Bison-2.2 exception", "Bison-exception-2.2"),
    ("Linux-syscall-note exception", "Linux-syscall-note"),
    ("GCC-exception-3.1 exception", "GCC-exception-3.1"),
    ("Classpath exception", "Classpath-exception-2.0"),
    ("LLVM exception", "LLVM-exception"),
];

fn spdx_exception(words: &str) -> Option<&'static str> {
    EXCEPTION_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(words))
        .map(|(_, id)| *id)
        .or_else(|| find_ci(SPDX_EXCEPTIONS, words))
}

fn find_ci<'a>(list: &[&'a str], name: &str) -> Option<&'a str> {
    list.iter()
        .copied()
        .find(|id| id.eq_ignore_ascii_case(name))
}

/// `GPL-2`, `GPL-2+`, `GPL-2.0`, `GPL-2.0+`, `LGPL-2.1-only`, `GFDL-1.3+`…
/// → the current `-only` / `-or-later` identifier.
fn gnu_license(name: &str) -> Option<&'static str> {
    let (family, rest) = name.split_once('-')?;
    let family = ["GPL", "LGPL", "AGPL", "GFDL"]
        .into_iter()
        .find(|f| f.eq_ignore_ascii_case(family))?;
    let (version, later) = if let Some(v) = rest.strip_suffix('+') {
        (v, true)
    } else if let Some(v) = rest.strip_suffix("-or-later") {
        (v, true)
    } else if let Some(v) = rest.strip_suffix("-only") {
        (v, false)
    } else {
        (rest, false)
    };
    let version = if version.contains('.') {
        version.to_owned()
    } else {
        format!("{version}.0")
    };
    let wanted = format!(
        "{family}-{version}-{}",
        if later { "or-later" } else { "only" }
    );
    find_ci(SPDX_IDS, &wanted)
}

fn spdx_id(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches([',', ';']);
    if let Some((_, id)) = DEBIAN_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
    {
        return Some(id);
    }
    gnu_license(name).or_else(|| find_ci(SPDX_IDS, name))
}

/// `LicenseRef-` + the name with everything outside `[A-Za-z0-9.-]` as `-`.
fn license_ref(name: &str) -> String {
    let body: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut collapsed = String::with_capacity(body.len());
    for c in body.chars() {
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    let body = collapsed.trim_matches('-');
    format!(
        "LicenseRef-{}",
        if body.is_empty() { "unknown" } else { body }
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// SPDX form, distribution's original words.
    License(String, String),
    And,
    Or,
    Open,
    Close,
}

/// Splits an expression into words and parentheses; `,` separates terms.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' | ')' | ',' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                if c != ',' {
                    out.push(c.to_string());
                }
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Converter {
    refs: Vec<(String, String)>,
}

impl Converter {
    fn reference(&mut self, original: &str) -> String {
        let id = license_ref(original);
        match self.refs.iter_mut().find(|(r, _)| *r == id) {
            Some((_, text)) if !text.split("; ").any(|t| t == original) => {
                text.push_str("; ");
                text.push_str(original);
            }
            Some(_) => {}
            None => self.refs.push((id.clone(), original.to_owned())),
        }
        id
    }

    fn term(&mut self, name: &str) -> String {
        match spdx_id(name) {
            Some(id) => id.to_owned(),
            None => self.reference(name),
        }
    }

    /// Converts one expression; `None` when it is not well-formed.
    fn convert(&mut self, text: &str) -> Option<String> {
        let words = words(text);
        let mut tokens: Vec<Token> = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let w = &words[i];
            let token = match w.to_ascii_lowercase().as_str() {
                "or" | "|" => Token::Or,
                "and" | "&" => Token::And,
                "(" => Token::Open,
                ")" => Token::Close,
                "with" => {
                    // `X with Y [exception]`: an SPDX exception, or else the
                    // whole phrase becomes one reference.
                    let Some(Token::License(base, original_base)) = tokens.pop() else {
                        return None;
                    };
                    let mut j = i + 1;
                    while j < words.len()
                        && !matches!(
                            words[j].to_ascii_lowercase().as_str(),
                            "or" | "and" | "(" | ")" | "|" | "&"
                        )
                    {
                        j += 1;
                    }
                    let exception = words[i + 1..j].join(" ");
                    let original = format!("{original_base} with {exception}");
                    let term = match spdx_exception(&exception) {
                        Some(e) if !base.starts_with("LicenseRef-") => format!("{base} WITH {e}"),
                        _ => self.reference(&original),
                    };
                    i = j;
                    tokens.push(Token::License(term, original));
                    continue;
                }
                _ => Token::License(self.term(w), w.clone()),
            };
            // Two licenses side by side (`GPL-2+, LGPL-2+`): both apply.
            if matches!(token, Token::License(..) | Token::Open)
                && matches!(tokens.last(), Some(Token::License(..) | Token::Close))
            {
                tokens.push(Token::And);
            }
            tokens.push(token);
            i += 1;
        }
        well_formed(&tokens).then(|| render(&tokens))
    }
}

/// expr := term (op term)* ; term := license | '(' expr ')'
fn well_formed(tokens: &[Token]) -> bool {
    fn expr(t: &[Token], mut i: usize) -> Option<usize> {
        i = term(t, i)?;
        while matches!(t.get(i), Some(Token::And | Token::Or)) {
            i = term(t, i + 1)?;
        }
        Some(i)
    }
    fn term(t: &[Token], i: usize) -> Option<usize> {
        match t.get(i)? {
            Token::License(..) => Some(i + 1),
            Token::Open => {
                let j = expr(t, i + 1)?;
                matches!(t.get(j), Some(Token::Close)).then_some(j + 1)
            }
            _ => None,
        }
    }
    expr(tokens, 0) == Some(tokens.len())
}

fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    for t in tokens {
        let s = match t {
            Token::License(l, _) => l.as_str(),
            Token::And => "AND",
            Token::Or => "OR",
            Token::Open => "(",
            Token::Close => ")",
        };
        if !out.is_empty() && !out.ends_with('(') && s != ")" {
            out.push(' ');
        }
        out.push_str(s);
    }
    out
}

impl LicenseExpression {
    /// The DEP-5 `License:` synopses of one package, all of which apply
    /// (to different files): joined with AND. `None` when there are none.
    pub fn from_debian(synopses: &[String]) -> Option<Self> {
        let mut conv = Converter { refs: Vec::new() };
        let mut parts: Vec<String> = Vec::new();
        for s in synopses {
            let part = conv.convert(s).unwrap_or_else(|| conv.reference(s));
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        let expression = match parts.as_slice() {
            [] => return None,
            [one] => one.clone(),
            many => many
                .iter()
                .map(|p| {
                    if p.contains(' ') {
                        format!("({p})")
                    } else {
                        p.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        };
        Some(LicenseExpression {
            expression,
            refs: conv.refs,
        })
    }

    /// An apk `L:` field: an SPDX expression, or close to one.
    pub fn from_spdx_like(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let mut conv = Converter { refs: Vec::new() };
        let expression = conv.convert(text).unwrap_or_else(|| conv.reference(text));
        Some(LicenseExpression {
            expression,
            refs: conv.refs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian(names: &[&str]) -> String {
        let v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        LicenseExpression::from_debian(&v)
            .map(|l| l.expression)
            .unwrap_or_default()
    }

    #[test]
    fn debian_short_names_map_to_spdx() {
        assert_eq!(debian(&["GPL-2+"]), "GPL-2.0-or-later");
        assert_eq!(debian(&["GPL-3"]), "GPL-3.0-only");
        assert_eq!(debian(&["LGPL-2.1+"]), "LGPL-2.1-or-later");
        assert_eq!(
            debian(&["Expat", "BSD-3-clause", "Expat"]),
            "MIT AND BSD-3-Clause"
        );
        assert_eq!(
            debian(&["GPL-1+ or Artistic", "public-domain"]),
            "(GPL-1.0-or-later OR Artistic-1.0-Perl) AND LicenseRef-public-domain"
        );
        assert_eq!(debian(&[]), "");
    }

    #[test]
    fn debian_exception_phrases() {
        assert_eq!(
            debian(&["GPL-3+ with Bison exception"]),
            "GPL-3.0-or-later WITH Bison-exception-2.2"
        );
        // An unknown base keeps its original words, referenced once.
        assert_eq!(
            debian(&["BSD-3-clause-Cambridge with BINARY LIBRARY-LIKE PACKAGES exception"]),
            "LicenseRef-BSD-3-clause-Cambridge-with-BINARY-LIBRARY-LIKE-PACKAGES-exception"
        );
    }

    #[test]
    fn exceptions_and_unknown_phrases() {
        assert_eq!(
            debian(&["GPL-3+ with GCC-exception-3.1"]),
            "GPL-3.0-or-later WITH GCC-exception-3.1"
        );
        let l = LicenseExpression::from_debian(&["GPL-2+ with OpenSSL exception".into()])
            .expect("a license");
        assert_eq!(l.expression, "LicenseRef-GPL-2-with-OpenSSL-exception");
        assert_eq!(l.refs.len(), 1);
    }

    #[test]
    fn apk_fields_and_malformed_input_stay_valid() {
        let apk = |s: &str| LicenseExpression::from_spdx_like(s).map(|l| l.expression);
        assert_eq!(
            apk("MIT AND (Apache-2.0 OR BSD-2-Clause)").as_deref(),
            Some("MIT AND (Apache-2.0 OR BSD-2-Clause)")
        );
        assert_eq!(apk("GPL-2.0"), Some("GPL-2.0-only".into()));
        assert_eq!(
            apk("GPL-2.0+ LGPL-2.1+").as_deref(),
            Some("GPL-2.0-or-later AND LGPL-2.1-or-later")
        );
        assert_eq!(apk("custom"), Some("LicenseRef-custom".into()));
        // Unbalanced or dangling operators: the whole text becomes one reference.
        assert_eq!(apk("(MIT OR"), Some("LicenseRef-MIT-OR".into()));
        assert_eq!(apk("AND"), Some("LicenseRef-AND".into()));
        assert_eq!(apk("   "), None);
    }

    #[test]
    fn references_keep_every_original_name() {
        let l = LicenseExpression::from_debian(&["foo_bar".into(), "foo:bar".into()])
            .expect("a license");
        assert_eq!(l.expression, "LicenseRef-foo-bar");
        assert_eq!(
            l.refs,
            [(
                "LicenseRef-foo-bar".to_string(),
                "foo_bar; foo:bar".to_string()
            )]
        );
    }
}
