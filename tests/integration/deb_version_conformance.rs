//! Debian version parsing and ordering against the upstream test vectors
//! of dpkg, apt and python-debian (../shared/conformance/deb-version).

use std::cmp::Ordering;

use rootstrap::distro::deb::version::{compare_part, parse_deb_format_version, Op, Version};

/// Reads one vector file, or skips and returns None when the
/// conformance folder is not there (as on a user's machine).
fn read(name: &str) -> Option<String> {
    let path = crate::common::conformance::path(&format!("deb-version/{name}"))?;
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn parse(text: &str, context: &str) -> Version {
    Version::parse(text).unwrap_or_else(|e| panic!("{context}: {e}"))
}

fn sign(o: Ordering) -> i32 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

/// Checks `a <=> b == expected` in both directions and through every
/// relation operator, as the upstream runners do.
fn check_compare(a: &Version, b: &Version, expected: i32, context: &str) {
    assert_eq!(sign(a.cmp(b)), expected, "{context}: {a} vs {b}");
    assert_eq!(sign(b.cmp(a)), -expected, "{context}: reversed {b} vs {a}");
    let ops = [
        (Op::Lt, expected < 0),
        (Op::Le, expected <= 0),
        (Op::Eq, expected == 0),
        (Op::Ge, expected >= 0),
        (Op::Gt, expected > 0),
    ];
    for (op, want) in ops {
        assert_eq!(a.satisfies(op, b), want, "{context}: {a} {op} {b}");
    }
    // The obsolete `<` and `>` mean `<=` and `>=`.
    let lt: Op = "<".parse().unwrap();
    let gt: Op = ">".parse().unwrap();
    assert_eq!(a.satisfies(lt, b), expected <= 0, "{context}: {a} < {b}");
    assert_eq!(a.satisfies(gt, b), expected >= 0, "{context}: {a} > {b}");
}

/// Lines of the form `A B RES` (with optional trailing comments).
fn check_triples(name: &str) -> Option<usize> {
    let text = read(name)?;
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        let line = line.split(" #").next().unwrap_or("");
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{name}:{}: malformed line {line:?}", n + 1);
        let context = format!("{name}:{}", n + 1);
        let a = parse(fields[0], &context);
        let b = parse(fields[1], &context);
        let expected: i32 = fields[2].parse().unwrap();
        check_compare(&a, &b, expected.signum(), &context);
        count += 1;
    }
    Some(count)
}

#[test]
fn dpkg_version_data() {
    if let Some(n) = check_triples("dpkg-Dpkg_Version.data") {
        eprintln!("dpkg-Dpkg_Version.data: {n} vectors checked");
        assert!(n >= 43);
    }
}

#[test]
fn apt_compareversion() {
    if let Some(n) = check_triples("apt-compareversion.txt") {
        eprintln!("apt-compareversion.txt: {n} vectors checked");
        assert!(n >= 64);
    }
}

#[test]
fn apt_versions_lst() {
    if let Some(n) = check_triples("apt-versions.lst") {
        eprintln!("apt-versions.lst: {n} vectors checked");
        assert!(n >= 60);
    }
}

/// Undoes the escapes the hand-extracted files use inside quotes.
fn unescape(quoted: &str) -> String {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not quoted: {quoted:?}"));
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            other => panic!("unknown escape {other:?} in {quoted:?}"),
        }
    }
    out
}

#[test]
fn dpkg_parse_cases() {
    let Some(text) = read("dpkg-parse-cases.txt") else {
        return;
    };
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let context = format!("dpkg-parse-cases.txt:{}", n + 1);
        let (input, result) = line.rsplit_once('\t').expect("TAB-separated");
        let input = unescape(input);
        match result {
            "error" => {
                let err = Version::parse_lax(&input).expect_err(&context);
                assert!(!err.lax_ok, "{context}: {err}");
                assert!(Version::parse(&input).is_err(), "{context}");
            }
            "warn" => {
                let err = Version::parse(&input).expect_err(&context);
                assert!(err.lax_ok, "{context}: {err}");
                assert!(Version::parse_lax(&input).is_ok(), "{context}");
            }
            // Dpkg::Version->is_valid() is false: strict parsing rejects.
            "invalid" => assert!(Version::parse(&input).is_err(), "{context}"),
            ok => {
                let parts = ok.strip_prefix("ok ").expect("ok EPOCH|UP|REV");
                let expected: Vec<&str> = parts.split('|').collect();
                let v = parse(&input, &context);
                assert_eq!(v.epoch().to_string(), expected[0], "{context}");
                assert_eq!(v.upstream(), expected[1], "{context}");
                assert_eq!(v.revision(), expected[2], "{context}");
                let again = parse(&v.to_string(), &context);
                assert_eq!(again.to_string(), v.to_string(), "{context}");
            }
        }
        count += 1;
    }
    eprintln!("dpkg-parse-cases.txt: {count} vectors checked");
    assert!(count >= 89);
}

#[test]
fn dpkg_sort_and_debformat() {
    let Some(text) = read("dpkg-sort-and-debformat.txt") else {
        return;
    };
    let mut count = 0;
    let mut section = "";
    let mut unsorted: Vec<&str> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let context = format!("dpkg-sort-and-debformat.txt:{}", n + 1);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line.split(']').next().unwrap_or("").trim_start_matches('[');
            continue;
        }
        if let Some(rest) = line.strip_prefix("unsorted:") {
            unsorted = rest.split_whitespace().collect();
            continue;
        }
        if let Some(rest) = line.strip_prefix("expected:") {
            let expected: Vec<&str> = rest.split_whitespace().collect();
            let mut got = unsorted.clone();
            match section {
                "sort version_compare" => got.sort_by_key(|a| parse(a, &context)),
                // dpkg's perl `version_compare_string` is a test helper that
                // weighs each character alone; on this list verrevcmp (which
                // dpkg actually orders packages by) gives the same order.
                "sort version_compare_part" | "sort version_compare_string" => {
                    got.sort_by(|a, b| compare_part(a, b))
                }
                other => panic!("{context}: unknown section {other}"),
            }
            assert_eq!(got, expected, "{context}: {section}");
            count += 1;
            continue;
        }
        assert_eq!(section, "deb_version_parse", "{context}: unexpected line");
        let (input, result) = line.rsplit_once('\t').expect("TAB-separated");
        let input = unescape(input);
        let got = parse_deb_format_version(&input);
        if result == "error" {
            assert!(got.is_err(), "{context}: {input:?} parsed as {got:?}");
        } else {
            let (major, minor) = got.unwrap_or_else(|e| panic!("{context}: {e}"));
            assert_eq!(format!("major={major} minor={minor}"), result, "{context}");
        }
        count += 1;
    }
    eprintln!("dpkg-sort-and-debformat.txt: {count} vectors checked");
    assert!(count >= 21);
}

#[test]
fn python_debian_cases() {
    let Some(text) = read("python-debian-cases.txt") else {
        return;
    };
    let mut count = 0;
    let mut section = "";
    for (n, line) in text.lines().enumerate() {
        let context = format!("python-debian-cases.txt:{}", n + 1);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']);
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match section {
            "compare" => {
                // python-debian accepts "a" (no leading digit); dpkg only
                // warns about it, so compare such versions the lax way.
                let lax =
                    |s: &str| Version::parse_lax(s).unwrap_or_else(|e| panic!("{context}: {e}"));
                let (a, b) = (lax(fields[0]), lax(fields[2]));
                let expected = match fields[1] {
                    "<" => -1,
                    "==" => 0,
                    ">" => 1,
                    other => panic!("{context}: unknown operator {other}"),
                };
                check_compare(&a, &b, expected, &context);
            }
            "split" => {
                let v = parse(fields[0], &context);
                let epoch = if fields[1] == "-" { "0" } else { fields[1] };
                let revision = if fields[3] == "-" { "" } else { fields[3] };
                assert_eq!(v.epoch().to_string(), epoch, "{context}");
                assert_eq!(v.upstream(), fields[2], "{context}");
                assert_eq!(v.revision(), revision, "{context}");
                assert_eq!(v.to_string(), fields[0], "{context}");
            }
            "invalid" => {
                assert!(Version::parse_lax(fields[0]).is_err(), "{context}");
            }
            other => panic!("{context}: unknown section {other}"),
        }
        count += 1;
    }
    eprintln!("python-debian-cases.txt: {count} vectors checked");
    assert!(count >= 40);
}
