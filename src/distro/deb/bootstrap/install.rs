//! Stage 4: the rootfs — Essential packages unpacked and configured
//! first while the rest unpack beside it, then dpkg's second stage in the
//! sandbox.
use super::*;

/// How [`install`] finishes the rootfs.
pub struct InstallOptions<'a> {
    /// Run maintainer scripts (false for a foreign architecture).
    pub run_scripts: bool,
    pub sandbox: &'a Sandbox,
    /// Clamp for mtimes and /etc/shadow's last-change field.
    pub epoch: i64,
    /// `deb` line for /etc/apt/sources.list (mirror, suite, components).
    pub apt_source: Option<String>,
    /// What the recipe asked for: decides which packages apt would have
    /// marked as automatically installed.
    pub apt_request: AptRequest,
    /// Leave out what the official `-slim` images leave out ([`slim`]).
    pub slim: bool,
}

/// Fetches the planned packages (`items`, in plan order: see [`fetch_items`])
/// and unpacks each into `root_dir` as soon as it is verified, on all cores,
/// then writes the dpkg database, runs stage 2 in the sandbox and normalises
/// the result.
///
/// When stage 2 runs, the Essential set (see [`essential_first`]) is
/// unpacked and configured first, while the other packages are fetched and
/// unpacked into a staging directory next to `root_dir` on one thread; they
/// move in once the first dpkg run is over, and a second run configures
/// them, as mmdebstrap's apt run does after its Essential set.
pub fn install(
    root_dir: &Path,
    plan: &Plan<'_>,
    fetcher: &Fetcher,
    items: &[FetchItem],
    opts: &InstallOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<(), BootstrapError> {
    let root = open_root(root_dir)?;
    let filter = if opts.slim {
        // In place before the first package is unpacked, as debuerreotype's
        // would be for dpkg: the same rules decide what is written here.
        root.mkdir_all(&RelPath::from_archive(b"etc/dpkg/dpkg.cfg.d")?, 0o755)?;
        root.write_file(
            &RelPath::from_archive(slim::DPKG_CFG_PATH.as_bytes())?,
            slim::dpkg_cfg().as_bytes(),
            0o644,
        )?;
        slim::PathFilter::slim()
    } else {
        slim::PathFilter::default()
    };
    let unpacker = Unpacker::new(&plan.packages, fetcher, items, &filter);
    let arch = plan
        .packages
        .first()
        .map(|_| native_arch(plan))
        .unwrap_or_default();
    let in_first = match opts.run_scripts {
        true => essential_first::first_set(&plan.packages),
        false => vec![true; plan.packages.len()],
    };
    let (mut first, mut rest): (Vec<usize>, Vec<usize>) =
        (0..plan.packages.len()).partition(|&i| in_first[i]);
    if first.is_empty() {
        std::mem::swap(&mut first, &mut rest);
    }
    let unpacked_first = unpacker.unpack(&root, &first, Workers::AllCores)?;
    make_man_section_dirs(&root, &unpacked_first)?;
    dpkgdb::write_database(&root, &unpacked_first, &arch)?;
    if let Some(line) = &opts.apt_source {
        root.mkdir_all(&RelPath::from_archive(b"etc/apt")?, 0o755)?;
        root.write_file(
            &RelPath::from_archive(b"etc/apt/sources.list")?,
            format!("{line}\n").as_bytes(),
            0o644,
        )?;
    }
    write_unconfigured_fstab(&root)?;
    let stage2 = |which: &[usize], unpacked: &[UnpackedPackage], activate: &[String]| {
        let pkgs: Vec<&BinaryPackage> = which.iter().map(|&i| plan.packages[i]).collect();
        run_stage2(
            &root,
            &pkgs,
            unpacked,
            activate,
            &arch,
            opts.sandbox,
            reporter,
        )
    };
    if !opts.run_scripts {
        reporter.warn(
            "foreign architecture: maintainer scripts were not run; packages stay 'unpacked'",
        );
    } else if rest.is_empty() {
        reporter.stage("configure (maintainer scripts in the sandbox)");
        stage2(&first, &unpacked_first, &[])?;
    } else {
        reporter.stage(&format!(
            "configure {} Essential-set packages in the sandbox; unpack {} more meanwhile",
            first.len(),
            rest.len()
        ));
        let staging_dir = sibling(root_dir, "staging");
        let staging = crate::cleanup::creating(|| {
            let staging = TempPath::new(staging_dir.clone());
            std::fs::create_dir(staging.path()).map(|()| staging)
        })
        .map_err(|source| BootstrapError::Rootfs {
            path: staging_dir,
            source,
        })?;
        let staged = open_root(staging.path())?;
        // Unpacking is left to finish even when the scripts fail: a bad
        // package is reported before a failed script, as when everything
        // was unpacked before stage 2, whichever thread was quicker.
        let (unpacked_rest, configured) = std::thread::scope(|scope| {
            let unpacking = scope.spawn(|| unpacker.unpack(&staged, &rest, Workers::Background));
            let configured = stage2(&first, &unpacked_first, &[]);
            let unpacked = unpacking
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (unpacked, configured)
        });
        let unpacked_rest = unpacked_rest?;
        configured?;
        merge::move_tree(&staged, &root)?;
        drop(staging);
        make_man_section_dirs(&root, &unpacked_rest)?;
        dpkgdb::add_to_database(&root, &unpacked_rest)?;
        let activate = dpkgdb::file_triggers_activated(&unpacked_first, &unpacked_rest);
        reporter.stage(&format!(
            "configure the other {} packages in the sandbox",
            rest.len()
        ));
        stage2(&rest, &unpacked_rest, &activate)?;
    }
    normalise(&root, opts.epoch)?;
    apt_state::write_download_dirs(&root)?;
    apt_state::write_extended_states(&root, &plan.packages, &opts.apt_request, &arch)?;
    Ok(())
}

/// The placeholder /etc/fstab debootstrap and mmdebstrap write before any
/// package is installed; a package that ships one keeps its own.
fn write_unconfigured_fstab(root: &Root) -> Result<(), BootstrapError> {
    let fstab = RelPath::from_archive(b"etc/fstab")?;
    if root.lstat(&fstab)?.is_none() {
        root.mkdir_all(&fstab.parent().expect("etc/fstab has a parent"), 0o755)?;
        root.write_file(&fstab, b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n", 0o644)?;
    }
    Ok(())
}

/// The `/usr/share/man/manN` directories the slim filter left out, made
/// again (empty), as debuerreotype's slimify does: see
/// [`slim::is_man_section_dir`].
fn make_man_section_dirs(root: &Root, unpacked: &[UnpackedPackage]) -> Result<(), BootstrapError> {
    for f in unpacked.iter().flat_map(|p| &p.files) {
        if f.filtered && f.kind == EntryKind::Dir && slim::is_man_section_dir(&f.path.to_absolute())
        {
            root.mkdir_all(&f.path, 0o755)?;
        }
    }
    Ok(())
}

fn open_root(dir: &Path) -> Result<Root, BootstrapError> {
    Root::open(dir).map_err(|source| BootstrapError::Rootfs {
        path: dir.to_owned(),
        source,
    })
}

/// `<dir>-<suffix>`: next to `dir`, so on the same filesystem.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!("-{suffix}"));
    PathBuf::from(name)
}

fn native_arch(plan: &Plan<'_>) -> String {
    plan.packages
        .iter()
        .map(|p| p.arch.as_str())
        .find(|a| *a != "all")
        .unwrap_or("all")
        .to_owned()
}

fn run_stage2(
    root: &Root,
    pkgs: &[&BinaryPackage],
    unpacked: &[UnpackedPackage],
    activate: &[String],
    arch: &str,
    sandbox: &Sandbox,
    reporter: &dyn Reporter,
) -> Result<(), BootstrapError> {
    let order: Vec<Stage2Package> = pkgs
        .iter()
        .zip(unpacked)
        .map(|(p, u)| Stage2Package {
            name: p.name.clone(),
            info_name: if p.multi_arch == MultiArch::Same {
                format!("{}:{}", p.name, p.arch)
            } else {
                p.name.clone()
            },
            arch: p.arch.clone(),
            has_preinst: u.control.get("preinst").is_some(),
        })
        .collect();
    let staging = RelPath::from_archive(stage2::PREINST_STAGING.as_bytes())?;
    for (n, (p, u)) in order.iter().zip(unpacked).enumerate() {
        if p.has_preinst {
            dpkgdb::write_control_dir(root, &staging.join(n.to_string().as_bytes())?, u)?;
        }
    }
    let _policy = sandbox::policy_rc_d_guard(root.path())?;
    let mut spec = RunSpec::new(
        root.path(),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            stage2::script(&order, activate, arch),
        ],
    );
    spec.env = stage2::script_env();
    spec.network = Network::NoneIfIsolated;
    spec.chroot_view = true;
    spec.suppress_sync = true;
    let mut lines = Vec::new();
    let status = sandbox.run(&spec, &mut |line| {
        if !line.text.starts_with(stage2::STEP_MARKER) {
            reporter.command_output(&line.text);
        }
        lines.push(line.text);
    })?;
    if !status.success() {
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        return Err(BootstrapError::Stage2 {
            step: stage2::failed_step(&lines).unwrap_or_else(|| "start-up".into()),
            status: status.to_string(),
            tail,
        });
    }
    Ok(())
}
