//! apk-tools conformance: version.data and the solver test-suite.

use crate::common::conformance;
use rootstrap::distro::apk::version::{self, VersionOp};
use std::path::PathBuf;

fn conformance_dir(sub: &str) -> Option<PathBuf> {
    conformance::path(sub)
}

/// One line of version.data, as test/unit/version_test.c reads it.
fn check_version_line(line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [v] => {
            let (want_valid, v) = match v.strip_prefix('!') {
                Some(rest) => (false, rest),
                None => (true, *v),
            };
            if version::is_valid(v) == want_valid {
                Ok(())
            } else {
                Err(format!("validity of {v:?} should be {want_valid}"))
            }
        }
        [a, op, b] => {
            let (negate, op_str) = match op.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, *op),
            };
            let op = VersionOp::parse(op_str).ok_or_else(|| format!("bad operator {op_str}"))?;
            if version::matches(a, op, b) != negate {
                Ok(())
            } else {
                Err(format!("{a} {} {b} should be {}", op_str, !negate))
            }
        }
        _ => Err("unparseable line".to_string()),
    }
}

#[test]
fn version_data() {
    let Some(dir) = conformance_dir("apk-version") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("version.data")).expect("read version.data");
    let (mut total, mut failures) = (0, Vec::new());
    for (no, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        total += 1;
        if let Err(e) = check_version_line(line) {
            failures.push(format!("line {}: {e}", no + 1));
        }
    }
    println!("version.data: {}/{} passed", total - failures.len(), total);
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert!(total > 700, "version.data looks truncated: {total} lines");
}

mod solver_suite {
    use rootstrap::distro::apk::{
        parse_index_text, solve_with, version, ApkPackage, Change, Dependency, SolveOptions,
    };
    use std::path::Path;

    /// A parsed `*.test` file of apk-tools' test/solver.
    struct Case {
        args: Vec<String>,
        repos: Vec<(Option<String>, String)>,
        installed: Option<String>,
        world: Vec<String>,
        expect: Vec<String>,
        cache: bool,
    }

    fn parse_case(text: &str) -> Case {
        let mut c = Case {
            args: vec![],
            repos: vec![],
            installed: None,
            world: vec![],
            expect: vec![],
            cache: false,
        };
        let mut in_expect = false;
        for line in text.lines() {
            if in_expect {
                c.expect.push(line.to_string());
                continue;
            }
            let mut words = line.split_whitespace();
            match words.next() {
                Some("@ARGS") => c.args.extend(words.map(str::to_string)),
                Some("@REPO") => {
                    let w: Vec<&str> = words.collect();
                    match w.as_slice() {
                        [tag, file] => c.repos.push((
                            Some(tag.trim_start_matches('@').to_string()),
                            file.to_string(),
                        )),
                        [file] => c.repos.push((None, file.to_string())),
                        _ => {}
                    }
                }
                Some("@INSTALLED") => c.installed = words.next().map(str::to_string),
                Some("@WORLD") => c.world.extend(words.map(str::to_string)),
                Some("@CACHE") => c.cache = true,
                Some("@EXPECT") => in_expect = true,
                _ => {}
            }
        }
        c
    }

    /// Normalised outcome: Ok(list of "Verb name version") or Err(()) for failure.
    type Outcome = Result<Vec<String>, ()>;

    fn expected_outcome(c: &Case) -> Outcome {
        if c.expect.iter().any(|l| l.starts_with("ERROR:")) {
            return Err(());
        }
        let mut out = Vec::new();
        for l in &c.expect {
            // "(1/2) Installing b (2)" or "(1/2) Upgrading b (1 -> 2)"
            let Some(rest) = l
                .strip_prefix('(')
                .and_then(|r| r.split_once(") "))
                .map(|x| x.1)
            else {
                continue;
            };
            let mut parts = rest.splitn(3, ' ');
            let (Some(verb), Some(name), Some(ver)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            // "(1/2) Updating pinning a@testing2 (3)"
            if (verb, name) == ("Updating", "pinning") {
                if let Some((who, v)) = ver.split_once(" (") {
                    out.push(format!("Repinning {who} {}", v.trim_end_matches(')')));
                    continue;
                }
            }
            let ver = ver.trim_matches(|c| c == '(' || c == ')');
            let ver = ver.rsplit(" -> ").next().unwrap_or(ver);
            out.push(format!("{verb} {name} {ver}"));
        }
        Ok(out)
    }

    /// Why a case cannot be run by this model, if it cannot.
    fn unsupported(c: &Case) -> Option<&'static str> {
        if c.cache {
            return Some("@CACHE (cache-only install)");
        }
        for a in &c.args {
            match a.as_str() {
                "fix" => return Some("apk fix"),
                "-t" | "--virtual" => return Some("virtual packages (-t)"),
                "--force-broken-world" => return Some("--force-broken-world"),
                "--prune" => return Some("upgrade --prune"),
                "--no-network" => return Some("--no-network repository availability"),
                "--self-upgrade-only" | "--ignore" => return Some("self-upgrade"),
                _ => {}
            }
        }
        None
    }

    fn load(dir: &Path, file: &str, tag: Option<String>) -> Result<Vec<ApkPackage>, String> {
        let text = std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
        let mut pkgs = parse_index_text(file, &text).map_err(|e| e.to_string())?;
        for p in &mut pkgs {
            p.repo_tag = tag.clone();
        }
        Ok(pkgs)
    }

    fn parse_world_dep(w: &str) -> Option<Dependency> {
        let d = Dependency::parse(w)?;
        match &d.version {
            Some(v) if !version::is_valid(v) => None,
            _ => Some(d),
        }
    }

    fn run(dir: &Path, c: &Case) -> Result<Outcome, String> {
        let mut repo = Vec::new();
        for (tag, file) in &c.repos {
            repo.extend(load(dir, file, tag.clone())?);
        }
        // The installed database keeps each package's tag (`s:`).
        let installed = match &c.installed {
            Some(f) => {
                let text = std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
                rootstrap::distro::apk::installed::parse_installed(f, &text)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|r| r.pkg)
                    .collect()
            }
            None => Vec::new(),
        };
        let mut world: Vec<Dependency> = Vec::new();
        for w in &c.world {
            world.push(parse_world_dep(w).ok_or_else(|| format!("bad @WORLD {w}"))?);
        }
        let mut opts = SolveOptions {
            arch: Some("x86_64".into()),
            ..Default::default()
        };
        let args: Vec<&str> = c
            .args
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "-v" && !a.starts_with("--root-tmpfs"))
            .collect();
        let (applet, rest) = args.split_first().ok_or("no applet")?;
        let mut names: Vec<&str> = Vec::new();
        let mut flags: Vec<&str> = Vec::new();
        // apk 3's pre-upgrade set: apk-tools unless `!apk-tools`, plus each
        // `--preupgrade-depends DEP`.
        let mut preupgrade: Vec<&str> = vec!["apk-tools"];
        let mut it = rest.iter().copied();
        while let Some(a) = it.next() {
            if a == "--preupgrade-depends" {
                let dep = it.next().ok_or("--preupgrade-depends without a value")?;
                match dep.strip_prefix('!') {
                    Some(name) => preupgrade.retain(|n| *n != name),
                    None => preupgrade.push(dep),
                }
            } else if a.starts_with('-') {
                flags.push(a);
            } else {
                names.push(a);
            }
        }
        let upgrade_flag = flags.iter().any(|f| {
            matches!(
                *f,
                "-u" | "--upgrade" | "-l" | "--latest" | "-a" | "--available"
            )
        });
        opts.latest = flags.iter().any(|f| matches!(*f, "-l" | "--latest"));
        match *applet {
            "add" => {
                opts.upgrade = upgrade_flag;
                for n in names {
                    let Some(d) = parse_world_dep(n) else {
                        return Ok(Err(()));
                    };
                    world.retain(|w| w.name != d.name);
                    world.push(d);
                }
            }
            "del" => {
                world.retain(|w| !names.contains(&w.name.as_str()));
                opts.removing = names.iter().map(|n| n.to_string()).collect();
            }
            "upgrade" if flags.contains(&"--preupgrade-only") => {
                // Upgrade only the pre-upgrade names whose installed package
                // satisfies the given dependency.
                for dep in preupgrade {
                    let d = parse_world_dep(dep).ok_or_else(|| format!("bad {dep}"))?;
                    if installed
                        .iter()
                        .any(|p| p.name == d.name && d.version_matches(Some(&p.version)))
                    {
                        opts.upgrade_names.push(d.name.clone());
                    }
                }
                if opts.upgrade_names.is_empty() {
                    return Ok(Ok(Vec::new()));
                }
            }
            "upgrade" if !names.is_empty() => {
                opts.upgrade_names = names.iter().map(|n| n.to_string()).collect();
            }
            "upgrade" => {
                opts.upgrade = true;
                opts.available = flags.iter().any(|f| matches!(*f, "-a" | "--available"));
            }
            other => return Err(format!("applet {other} not modelled")),
        }
        let solved = match solve_with(&repo, &installed, &world, &opts) {
            Ok(s) => s,
            Err(_) => return Ok(Err(())),
        };
        let lines = solved
            .changes(&installed)
            .into_iter()
            .map(|ch| match ch {
                Change::Install(p) => format!("Installing {} {}", shown(p), p.version),
                Change::Upgrade(_, p) => format!("Upgrading {} {}", shown(p), p.version),
                Change::Downgrade(_, p) => format!("Downgrading {} {}", shown(p), p.version),
                Change::Replace(_, p) => format!("Replacing {} {}", shown(p), p.version),
                Change::Repin(p, tag) => match tag {
                    Some(t) => format!("Repinning {}@{t} {}", p.name, p.version),
                    None => format!("Repinning {} {}", p.name, p.version),
                },
                // apk names a removed package without its old tag.
                Change::Remove(p) => format!("Purging {} {}", p.name, p.version),
            })
            .collect();
        Ok(Ok(lines))
    }

    /// apk prints `name@tag` for packages from a tagged repository.
    fn shown(p: &ApkPackage) -> String {
        match &p.repo_tag {
            Some(t) => format!("{}@{t}", p.name),
            None => p.name.clone(),
        }
    }

    const GROUPS: [&str; 11] = [
        "basic",
        "complicated",
        "conflict",
        "error",
        "provides",
        "installif",
        "fix",
        "fuzzy",
        "pinning",
        "selfupgrade",
        "upgrade",
    ];

    #[test]
    fn solver_tests() {
        let Some(dir) = super::conformance_dir("apk-version/solver") else {
            return;
        };
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("solver dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".test"))
            .collect();
        files.sort();
        let (mut passed, mut total, mut set_only) = (0, 0, 0);
        let mut skipped: Vec<String> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        let mut per_group: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
        for f in &files {
            let text = std::fs::read_to_string(dir.join(f)).expect("read test");
            let case = parse_case(&text);
            if let Some(why) = unsupported(&case) {
                skipped.push(format!("{f} ({why})"));
                continue;
            }
            let group = GROUPS
                .iter()
                .find(|g| f.starts_with(*g))
                .copied()
                .unwrap_or("other");
            let want = expected_outcome(&case);
            let got = match run(&dir, &case) {
                Ok(g) => g,
                Err(why) => {
                    skipped.push(format!("{f} ({why})"));
                    continue;
                }
            };
            total += 1;
            let entry = per_group.entry(group).or_default();
            entry.1 += 1;
            if got == want {
                passed += 1;
                entry.0 += 1;
            } else {
                let same_set = match (&got, &want) {
                    (Ok(g), Ok(w)) => {
                        let (mut g, mut w) = (g.clone(), w.clone());
                        g.sort();
                        w.sort();
                        g == w
                    }
                    _ => false,
                };
                if same_set {
                    set_only += 1;
                }
                failed.push(format!("{f}: expected {want:?}, got {got:?}"));
            }
        }
        println!(
            "apk solver: {passed}/{total} passed (same set, other order: {set_only}; skipped: {} — {})",
            skipped.len(),
            skipped.join(", ")
        );
        for (g, (p, t)) in &per_group {
            println!("  {g}: {p}/{t}");
        }
        for f in &failed {
            println!("  FAIL {f}");
        }
        let core_total: u32 = [
            "basic",
            "complicated",
            "conflict",
            "error",
            "provides",
            "installif",
        ]
        .iter()
        .filter_map(|g| per_group.get(g))
        .map(|x| x.1)
        .sum();
        let core_passed: u32 = [
            "basic",
            "complicated",
            "conflict",
            "error",
            "provides",
            "installif",
        ]
        .iter()
        .filter_map(|g| per_group.get(g))
        .map(|x| x.0)
        .sum();
        println!("core groups: {core_passed}/{core_total}");
        assert!(total >= 96, "solver suite looks incomplete: {total}");
        // The groups the Alpine issue requires must all match apk.
        assert_eq!(core_passed, core_total, "core solver groups regressed");
        // Every case this model runs matches apk: any regression fails.
        assert_eq!(
            passed,
            total,
            "solver cases regressed:\n{}",
            failed.join("\n")
        );
    }
}

mod installed_db {
    use rootstrap::distro::apk::installed::{
        parse_installed, write_installed, write_scripts_tar, ScriptEntry,
    };
    use rootstrap::distro::apk::{tar, ApkPackage, Checksum};

    /// The real Alpine 3.21 installed db re-serialises byte for byte.
    #[test]
    fn real_installed_db_round_trips() {
        let Some(dir) = super::conformance_dir("apk-version/installed-db") else {
            return;
        };
        let text = std::fs::read_to_string(dir.join("query-installed.data")).unwrap();
        let pkgs = parse_installed("query-installed.data", &text).expect("parse");
        let files: usize = pkgs
            .iter()
            .flat_map(|p| &p.dirs)
            .map(|d| d.files.len())
            .sum();
        println!("installed-db: {} packages, {files} files", pkgs.len());
        assert_eq!(pkgs.len(), 39);
        let written = String::from_utf8(write_installed(&pkgs)).unwrap();
        let first_diff = written
            .lines()
            .zip(text.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b);
        assert_eq!(first_diff, None, "first differing line");
        assert_eq!(written, text);
    }

    /// The reference triggers file is reproduced from its own records.
    #[test]
    fn triggers_match_reference_bytes() {
        use rootstrap::distro::apk::installed::write_triggers;
        let Some(dir) = super::conformance_dir("apkindex/installed-db/apko-root-expected") else {
            return;
        };
        let reference = std::fs::read(dir.join("triggers")).unwrap();
        let text = String::from_utf8(reference.clone()).unwrap();
        let mut owned = Vec::new();
        for line in text.lines() {
            let mut words = line.split(' ');
            let id = words.next().unwrap();
            let pkg = ApkPackage {
                checksum: Checksum::parse(id),
                ..Default::default()
            };
            assert!(pkg.checksum.is_some(), "{id}");
            owned.push((pkg, words.map(str::to_string).collect::<Vec<_>>()));
        }
        let entries: Vec<(&ApkPackage, &[String])> =
            owned.iter().map(|(p, g)| (p, g.as_slice())).collect();
        assert_eq!(write_triggers(&entries), reference);
    }

    /// apko's scripts.tar is rebuilt byte for byte from its own entries.
    #[test]
    fn scripts_tar_matches_reference_bytes() {
        let Some(dir) = super::conformance_dir("apkindex/installed-db/apko-root-expected") else {
            return;
        };
        let reference = std::fs::read(dir.join("scripts.tar")).unwrap();
        let entries = tar::parse_entries("scripts.tar", &reference).unwrap();
        let mut pkgs = Vec::new();
        for e in &entries {
            // <name>-<version>.<Q1…=>.<script>: the identity ends at the '=' padding.
            let (stem, script) = e
                .path
                .rsplit_once(".Q1")
                .map(|(s, rest)| {
                    let (id, script) = rest.split_at(rest.find("=.").unwrap() + 1);
                    ((s, format!("Q1{id}")), script.to_string())
                })
                .unwrap();
            let ((nv, id), script) = (stem, script);
            let mut parts = nv.rsplitn(3, '-');
            let (rel, ver, name) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let pkg = ApkPackage {
                name: name.to_string(),
                version: format!("{ver}-{rel}"),
                checksum: Checksum::parse(&id),
                build_time: Some(e.mtime),
                ..Default::default()
            };
            pkgs.push((pkg, script, reference[e.data.clone()].to_vec(), e.mtime));
        }
        let scripts: Vec<ScriptEntry> = pkgs
            .iter()
            .map(|(pkg, script, content, _)| ScriptEntry {
                pkg,
                script,
                content,
            })
            .collect();
        let rebuilt = write_scripts_tar(&scripts);
        println!("scripts.tar: {} entries rebuilt", scripts.len());
        let first_diff = rebuilt.iter().zip(&reference).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "first differing byte");
        assert_eq!(rebuilt.len(), reference.len());
    }
}
