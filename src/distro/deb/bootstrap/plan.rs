//! Stage 2: the package set — resolved from the recipe, or a lock's
//! packages checked against the signed index — and what to download.
use super::*;

/// Resolves the source's variant and extra packages against the universe.
pub fn plan<'u>(index: &'u LoadedIndex, src: &DebSource) -> Result<Plan<'u>, BootstrapError> {
    plan_in(&index.universe, src)
}

/// The plan of a lock (`build --locked`): exactly the locked packages, in
/// the lock's order, each looked up in the verified index by name, version
/// and architecture and required to have the locked size and SHA-256. Every
/// package that is missing or differs is named in one error.
pub fn plan_from_lock<'u>(
    index: &'u LoadedIndex,
    locked: &[crate::lock::LockedPackage],
) -> Result<Plan<'u>, BootstrapError> {
    let mut packages = Vec::with_capacity(locked.len());
    let mut problems = Vec::new();
    for want in locked {
        let found = index
            .universe
            .versions(&want.name)
            .find(|p| p.arch == want.arch && p.version.to_string() == want.version);
        match found {
            None => problems.push(format!(
                "{} {} ({}): not in the signed index",
                want.name, want.version, want.arch
            )),
            Some(p) if p.sha256 != want.sha256.0 || p.size != want.size => problems.push(format!(
                "{} {} ({}): the index has sha256 {} ({} bytes), the lock {} ({} bytes)",
                want.name,
                want.version,
                want.arch,
                Sha256Digest(p.sha256).to_hex(),
                p.size,
                want.sha256.to_hex(),
                want.size
            )),
            Some(p) => packages.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(BootstrapError::Locked { problems });
    }
    let why = packages
        .iter()
        .map(|p| (p.name.clone(), "lock".to_owned()))
        .collect();
    Ok(Plan { packages, why })
}

pub(super) fn plan_in<'u>(
    universe: &'u Universe,
    src: &DebSource,
) -> Result<Plan<'u>, BootstrapError> {
    let mut include = Vec::new();
    for (name, pin) in &src.include {
        let pin = match pin {
            Some(p) => Some(p.parse::<Version>().map_err(|e| BootstrapError::Pin {
                package: name.clone(),
                pin: p.clone(),
                message: e.to_string(),
            })?),
            None => None,
        };
        include.push((name.clone(), pin));
    }
    let req = Request {
        variant: src.variant,
        include,
        arch: src.arch.clone(),
    };
    Ok(resolve::resolve(universe, &req)?)
}

/// What to download for the plan: every .deb with the size and SHA-256 the
/// signed Packages index gives it, in plan order.
pub fn fetch_items(mirror: &str, plan: &Plan<'_>) -> Result<Vec<FetchItem>, BootstrapError> {
    Ok(plan
        .packages
        .iter()
        .map(|p| {
            Ok(FetchItem {
                url: crate::fetch::join_mirror(mirror, &p.filename)?,
                size: p.size,
                sha256: Sha256Digest(p.sha256),
                name: p.name.clone(),
            })
        })
        .collect::<Result<Vec<FetchItem>, crate::fetch::FetchError>>()?)
}
