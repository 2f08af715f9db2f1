//! Stage 6: the apk database and configuration the target's own apk-tools
//! reads.

use super::*;

/// Writes lib/apk/db/{installed,scripts.tar,triggers,lock} and
/// etc/apk/{world,repositories,arch,keys/} as apk-tools leaves them.
pub(super) fn write_database(
    root: &Root,
    records: &[InstalledPackage],
    plan: &[&ApkPackage],
    apks: &[&VerifiedApk],
    src: &ApkSource,
    keys: &[KeyFile],
) -> Result<(), ApkBootstrapError> {
    // apk 2.14 writes the installed database sorted by package name.
    let mut sorted: Vec<&InstalledPackage> = records.iter().collect();
    sorted.sort_by(|a, b| a.pkg.name.cmp(&b.pkg.name));
    root.write_file(
        &rel("lib/apk/db/installed")?,
        &installed::write_installed(sorted),
        0o644,
    )?;
    // scripts.tar keeps install order and, per package, apk's order of
    // script types, each stamped with the package's build time.
    let mut scripts = Vec::new();
    for (rec, apk) in records.iter().zip(apks) {
        for name in SCRIPT_NAMES {
            if let Some(content) = apk.scripts.get(name) {
                scripts.push(ScriptEntry {
                    pkg: &rec.pkg,
                    script: name,
                    content,
                });
            }
        }
    }
    root.write_file(
        &rel("lib/apk/db/scripts.tar")?,
        &installed::write_scripts_tar(&scripts),
        0o644,
    )?;
    let globs: Vec<Vec<String>> = apks.iter().map(|a| trigger_globs(a)).collect();
    let triggers: Vec<(&ApkPackage, &[String])> = plan
        .iter()
        .zip(&globs)
        .map(|(p, g)| (*p, g.as_slice()))
        .collect();
    root.write_file(
        &rel("lib/apk/db/triggers")?,
        &installed::write_triggers(&triggers),
        0o644,
    )?;
    root.write_file(&rel("lib/apk/db/lock")?, b"", 0o600)?;

    let mut world = src.world().join("\n");
    world.push('\n');
    root.write_file(&rel("etc/apk/world")?, world.as_bytes(), 0o644)?;
    let mut repos = String::new();
    for line in src.repository_lines()? {
        repos.push_str(&format!("{line}\n"));
    }
    root.write_file(&rel("etc/apk/repositories")?, repos.as_bytes(), 0o644)?;
    root.write_file(
        &rel("etc/apk/arch")?,
        format!("{}\n", src.arch).as_bytes(),
        0o644,
    )?;
    let keys_dir = rel("etc/apk/keys")?;
    root.mkdir_all(&keys_dir, 0o755)?;
    for k in keys {
        let name = Path::new(&k.name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let path = keys_dir.join(name.as_bytes())?;
        // alpine-keys ships most of them (possibly as symlinks): what a
        // package installed is what its database record describes.
        if root.lstat(&path)?.is_some() {
            continue;
        }
        root.write_file(&path, &k.bytes, 0o644)?;
    }
    Ok(())
}
