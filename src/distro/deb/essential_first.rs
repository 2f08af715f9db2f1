//! Which planned packages stage 2 configures first.
//!
//! Configuring is one core's work (the target's dpkg running one
//! maintainer script after another), and it is the longest step of a cold
//! build. Like mmdebstrap, which installs the Essential set before apt
//! installs the rest, we configure the Essential set and everything it
//! depends on first; the other packages are fetched and unpacked on the
//! side meanwhile, on the core the scripts leave idle, and are configured
//! in a second dpkg run.
//!
//! The first set is closed under Pre-Depends and Depends (every
//! alternative and provider in the plan counts, so `dpkg --configure -a`
//! never meets a missing dependency), and under Replaces pointing into it:
//! a package that takes files over from a first-set package is unpacked
//! with the first set, so its copy lands before those files are configured
//! and recorded, as dpkg would have it.

use std::collections::HashMap;

use super::packages::BinaryPackage;

/// For each package of `pkgs`, whether it belongs to the first set.
pub fn first_set(pkgs: &[&BinaryPackage]) -> Vec<bool> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in pkgs.iter().enumerate() {
        by_name.entry(p.name.as_str()).or_default().push(i);
        for provided in &p.provides {
            by_name.entry(provided.name.as_str()).or_default().push(i);
        }
    }
    let mut first = vec![false; pkgs.len()];
    let mut todo: Vec<usize> = (0..pkgs.len()).filter(|&i| pkgs[i].essential).collect();
    loop {
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut first[i], true) {
                continue;
            }
            let deps = pkgs[i].pre_depends.iter().chain(&pkgs[i].depends);
            for atom in deps.flat_map(|d| &d.alternatives) {
                let providers = by_name.get(atom.name.as_str()).into_iter().flatten();
                todo.extend(providers.filter(|&&j| !first[j]));
            }
        }
        // A package outside that Replaces one inside (by its real name, as
        // unpacking settles a shared path) joins, with its dependencies;
        // repeat until nothing more joins.
        let replaces_one_inside = |i: usize| {
            let mut replaced = pkgs[i].replaces.iter().flat_map(|d| &d.alternatives);
            replaced.any(|atom| {
                let named = by_name.get(atom.name.as_str()).into_iter().flatten();
                named
                    .filter(|&&j| pkgs[j].name == atom.name)
                    .any(|&j| first[j])
            })
        };
        todo = (0..pkgs.len())
            .filter(|&i| !first[i] && replaces_one_inside(i))
            .collect();
        if todo.is_empty() {
            return first;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::packages::fixture_packages as packages;
    use super::*;

    fn first_names(specs: &[(&str, &str)]) -> Vec<String> {
        let pkgs = packages(specs);
        let refs: Vec<&BinaryPackage> = pkgs.iter().collect();
        let first = first_set(&refs);
        refs.iter()
            .zip(first)
            .filter(|(_, f)| *f)
            .map(|(p, _)| p.name.clone())
            .collect()
    }

    #[test]
    fn essential_packages_and_their_dependencies_come_first() {
        let names = first_names(&[
            ("libc6", ""),
            ("libtinfo6", "Depends: libc6\n"),
            ("bash", "Essential: yes\nPre-Depends: libtinfo6\n"),
            (
                "dash",
                "Essential: yes\nDepends: debianutils (>= 5) | awk\n",
            ),
            ("debianutils", ""),
            ("mawk", "Provides: awk\n"),
            ("apt", "Depends: libapt\n"),
            ("libapt", "Depends: libc6\n"),
        ]);
        assert_eq!(
            names,
            ["libc6", "libtinfo6", "bash", "dash", "debianutils", "mawk"]
        );
    }

    #[test]
    fn a_package_replacing_one_of_the_first_set_joins_it_with_its_dependencies() {
        let names = first_names(&[
            ("coreutils", "Essential: yes\n"),
            ("newutils", "Replaces: coreutils (<< 2)\nDepends: libnew\n"),
            ("libnew", ""),
            ("other", "Replaces: newutils\n"),
            ("apt", ""),
        ]);
        assert_eq!(names, ["coreutils", "newutils", "libnew", "other"]);
    }

    #[test]
    fn without_essential_packages_nothing_comes_first() {
        assert!(first_names(&[("a", "Depends: b\n"), ("b", "")]).is_empty());
    }
}
