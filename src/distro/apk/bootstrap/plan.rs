//! Stage 3: the world solved against the indexes, in install order, and
//! the release package.

use super::*;

/// Resolves the world against the loaded indexes, in install order.
pub fn plan<'a>(
    index: &'a LoadedIndexes,
    src: &ApkSource,
) -> Result<Vec<&'a ApkPackage>, ApkBootstrapError> {
    let world = parse_world(&src.world())?;
    for d in &world {
        if let Some(tag) = &d.tag {
            if !index.repos.iter().any(|r| r.tag.as_ref() == Some(tag)) {
                return Err(ApkBootstrapError::UnknownTag {
                    request: d.to_string(),
                    tag: tag.clone(),
                });
            }
        }
    }
    let opts = SolveOptions {
        arch: Some(src.arch.clone()),
        ..SolveOptions::default()
    };
    Ok(solve_with(&index.packages, &[], &world, &opts)?.install)
}

/// The package whose files identify the release (`/etc/os-release`,
/// `/etc/alpine-release`, `/etc/issue`, `/etc/secfixes.d/alpine`).
pub const RELEASE_PACKAGE: &str = "alpine-release";

/// The release's `alpine-release` package (newest in the untagged
/// repositories) when the plan does not install it: the official
/// minirootfs build unpacks it without registering it, and rootstrap does
/// the same, so scanners that read /etc/os-release identify every image.
pub fn release_package<'a>(
    index: &'a LoadedIndexes,
    src: &ApkSource,
    plan: &[&ApkPackage],
) -> Option<&'a ApkPackage> {
    if plan.iter().any(|p| p.name == RELEASE_PACKAGE) {
        return None;
    }
    index
        .packages
        .iter()
        .filter(|p| {
            p.name == RELEASE_PACKAGE
                && p.repo_tag.is_none()
                && (p.arch == src.arch || p.arch == "noarch")
        })
        .max_by(|a, b| crate::distro::apk::version::compare(&a.version, &b.version))
}

/// The plan plus [`release_package`]: what a build downloads and a lock
/// records.
pub fn plan_with_release<'a>(
    index: &'a LoadedIndexes,
    src: &ApkSource,
) -> Result<Vec<&'a ApkPackage>, ApkBootstrapError> {
    let mut all = plan(index, src)?;
    all.extend(release_package(index, src, &all));
    Ok(all)
}

/// Splits [`plan_with_release`]'s list (or a lock's) into the packages to
/// install and the release package to unpack unregistered: `alpine-release`
/// when neither the world nor another listed package depends on it.
pub fn split_release<'a>(
    all: &[&'a ApkPackage],
    src: &ApkSource,
) -> (Vec<&'a ApkPackage>, Option<usize>) {
    let world = src.world();
    let named =
        |entry: &String| entry.split(['@', '<', '>', '=', '~']).next() == Some(RELEASE_PACKAGE);
    let required = world.iter().any(named)
        || all.iter().any(|p| {
            p.depends
                .iter()
                .any(|d| !d.conflict && d.name == RELEASE_PACKAGE)
        });
    let at = all
        .iter()
        .position(|p| p.name == RELEASE_PACKAGE)
        .filter(|_| !required);
    let plan = all
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != at)
        .map(|(_, p)| *p)
        .collect();
    (plan, at)
}

fn parse_world(entries: &[String]) -> Result<Vec<Dependency>, ApkBootstrapError> {
    entries
        .iter()
        .map(|w| Dependency::parse(w).ok_or_else(|| ApkBootstrapError::Request(w.clone())))
        .collect()
}
