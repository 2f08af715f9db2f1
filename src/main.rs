//! The rootstrap command line: parse arguments, call the library, map errors
//! to messages and exit codes (0 success, 1 failure, 2 usage; `run` passes
//! the command's own exit code through).

mod cli;
mod term;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use rootstrap::build::from_dockerfile::{build_dockerfile, DockerfileRequest};
use rootstrap::build::{self, BuildOptions, SourceOptions};
use rootstrap::image::publish::Publication;
use rootstrap::image::{fsck, inspect, OpenedImage};
use rootstrap::recipe;
use rootstrap::rootfs::sandbox;

use cli::{Cli, Command, DockerfileCommand, NetworkMode, SourceArgs};
use term::TermReporter;

fn main() -> ExitCode {
    // The sandbox helper is this same executable, re-exec'd: it must take
    // over before anything else (threads, signal handlers) starts.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == sandbox::HELPER_ARG)
    {
        sandbox::helper_main();
    }
    let cli = cli::parse();
    // Before any thread starts: entering a user namespace and probing for
    // namespace rights need a single-threaded process.
    if matches!(cli.command, Command::Build(_) | Command::Run(_)) {
        if let Err(e) = rootstrap::rootfs::isolation::select(cli.isolation) {
            eprintln!("rootstrap: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = rootstrap::cleanup::install_signal_handlers() {
        eprintln!("rootstrap: warning: cannot install signal handlers: {e}");
    }
    let result = run(cli);
    // An interrupt from here on changes nothing; one being handled ends
    // the process here (no error from files the cleanup took away).
    rootstrap::cleanup::commit();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rootstrap: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", as anyhow's `{:#}` does, but
/// without a cause whose text its parent's message already carries (many
/// library errors name their source in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn source_options(args: &SourceArgs) -> SourceOptions {
    SourceOptions {
        mirror: args.mirror.clone(),
        cache_dir: args.cache_dir.clone(),
        arch: args.arch.clone(),
        // One platform is a source setting; several are a build's (an index).
        platform: match &args.platform {
            Some(list) if list.0.len() == 1 => list.0.first().cloned(),
            _ => None,
        },
        offline: args.offline,
        keys_dir: args.keys.clone(),
        allow_untrusted: args.allow_untrusted,
        accept_release_change: args.accept_release_change,
    }
}

/// `resolve` takes one `--platform`.
fn one_platform(args: &SourceArgs, command: &str) -> Result<()> {
    match &args.platform {
        Some(list) if list.0.len() > 1 => anyhow::bail!(
            "rootstrap {command} works on one platform at a time: run it once per --platform"
        ),
        _ => Ok(()),
    }
}

/// `--platform A,B`: the platforms of an image index (none for one).
fn several_platforms(args: &SourceArgs) -> Vec<rootstrap::distro::platform::Platform> {
    match &args.platform {
        Some(list) if list.0.len() > 1 => list.0.clone(),
        _ => Vec::new(),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let reporter = Arc::new(TermReporter::new(cli.progress, cli.quiet));
    if let (Command::Build(_), Some(level)) =
        (&cli.command, rootstrap::rootfs::isolation::selected())
    {
        use rootstrap::report::Reporter as _;
        reporter.info(&format!("isolation: {level}"));
    }
    match cli.command {
        Command::Build(args) if args.dockerfile.file.is_some() => {
            let request = DockerfileRequest {
                file: args.dockerfile.file.clone().unwrap_or_default(),
                context: std::path::PathBuf::from(&args.source.recipe),
                source: source_options(&args.source),
                outputs: args.outputs.clone(),
                tags: args.tags.clone(),
                work_dir: args.work_dir.clone(),
                build_args: args.dockerfile.build_args.clone(),
                secrets: args.dockerfile.secrets.clone(),
                target: args.dockerfile.target.clone(),
                squash: args.dockerfile.squash,
                no_cache: args.dockerfile.no_cache,
                compression: args.compression,
                slim: args.slim,
                skip_foreign_scripts: args.skip_foreign_scripts,
                platforms: args
                    .source
                    .platform
                    .as_ref()
                    .map(|list| list.0.clone())
                    .unwrap_or_default(),
            };
            let result = build_dockerfile(&request, reporter.clone(), &mut std::io::stdout());
            reporter.finish();
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build(args) => {
            let recipe = recipe::find(&args.source.recipe)?;
            // `-t` stores the image, as `build -f` does: from the layout of
            // an oci: output, or one staged for pushing or storing.
            let publication =
                Publication::plan(&args.outputs, &args.tags, args.work_dir.as_deref(), true)?;
            let mut outputs = publication
                .local
                .iter()
                .map(|o| build::parse_output(o))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(dir) = publication.staging_dir() {
                outputs.push(build::BuildOutput::Image(rootstrap::image::Output::OciDir(
                    dir.to_owned(),
                )));
            }
            let opts = BuildOptions {
                source: source_options(&args.source),
                outputs,
                tags: args.tags.clone(),
                work_dir: args.work_dir.clone(),
                sandbox_helper: None,
                lock: args.lock.clone().map(|file| build::LockRequest {
                    file,
                    locked: args.locked,
                }),
                no_step_cache: args.dockerfile.no_cache,
                compression: args.compression,
                slim: args.slim,
                skip_foreign_scripts: args.skip_foreign_scripts,
                platforms: several_platforms(&args.source),
            };
            let result = build::build(&recipe, &opts, reporter.clone());
            reporter.finish();
            let report = result.with_context(|| format!("building {}", recipe.path.display()))?;
            for (out, digest) in &report.outputs {
                if publication.is_staging(out.path()) {
                    continue;
                }
                match digest {
                    Some(d) => println!("{}  {d}", out.path().display()),
                    None => println!("{}", out.path().display()),
                }
            }
            let store = image_store(args.source.cache_dir.as_deref());
            let stdout = &mut std::io::stdout();
            publication.store_staged(&store, stdout)?;
            publication.push(reporter.as_ref(), stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Resolve(args) => {
            let recipe = recipe::find(&args.source.recipe)?;
            one_platform(&args.source, "resolve")?;
            let opts = source_options(&args.source);
            let result = match &args.lock {
                Some(lock) => build::resolve_with_lock(&recipe, &opts, lock, reporter.clone())
                    .map(|(plan, drift)| (plan, Some(drift))),
                None => build::resolve(&recipe, &opts, reporter.clone()).map(|plan| (plan, None)),
            };
            reporter.finish();
            let (plan, drift) =
                result.with_context(|| format!("resolving {}", recipe.path.display()))?;
            if args.json {
                let mut value = serde_json::to_value(&plan)?;
                if let Some(drift) = &drift {
                    value["drift"] = drift.iter().map(|d| d.to_string()).collect();
                }
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let width = plan
                    .packages
                    .iter()
                    .map(|p| p.name.len())
                    .max()
                    .unwrap_or(0);
                for p in &plan.packages {
                    println!("{:width$}  {:<30} {:>10}", p.name, p.version, human(p.size));
                }
                println!(
                    "{} packages ({} {} {} {}), {} to download, {} installed",
                    plan.packages.len(),
                    plan.distro,
                    plan.suite,
                    plan.arch,
                    plan.variant,
                    human(plan.download_bytes),
                    human(plan.installed_kib * 1024)
                );
                if let (Some(drift), Some(lock)) = (&drift, &args.lock) {
                    match drift.len() {
                        0 => println!("{}: no drift", lock.display()),
                        n => println!("{}: {n} package(s) drifted:", lock.display()),
                    }
                    for d in drift {
                        println!("  {d}");
                    }
                }
            }
            // Like `git diff --exit-code`: a stale lock fails a CI check.
            Ok(match drift {
                Some(d) if !d.is_empty() => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            })
        }
        Command::Inspect(args) => {
            let resolved = resolve_image(&args.image, &args.store)?;
            let image = OpenedImage::open(&resolved.source, resolved.name.as_deref())
                .with_context(|| format!("opening {}", args.image))?;
            let checked = fsck(&image).with_context(|| format!("verifying {}", args.image))?;
            let report = inspect(&image).with_unpacked_sizes(&checked.unpacked_sizes);
            let packages = rootstrap::image::packages::installed_packages(&image)?;
            if args.json {
                let mut value = serde_json::to_value(&report)?;
                value["packages"] = serde_json::to_value(&packages)?;
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{report}");
                println!("packages: {}", packages.len());
                for p in &packages {
                    println!("  {} {} {}", p.name, p.version, p.arch);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let opts = rootstrap::run::RunOptions {
                command: args.command,
                env: args.env,
                user: args.user,
                workdir: args.workdir,
                no_network: args.network == NetworkMode::None,
                sandbox_helper: None,
            };
            let image = resolve_image(&args.image, &args.store)?;
            let status = rootstrap::run::run_image(&image.source, image.name.as_deref(), &opts)
                .with_context(|| format!("running {}", args.image))?;
            Ok(ExitCode::from(u8::try_from(status.code()).unwrap_or(255)))
        }
        Command::Push(args) => {
            let (image, held) = open_verified(&args.image, &args.store)?;
            let reference = rootstrap::image::reference::ImageReference::parse(&args.destination)?;
            let credentials = match &args.username {
                Some(username) => {
                    let mut password = String::new();
                    std::io::stdin()
                        .read_line(&mut password)
                        .context("reading the password from stdin")?;
                    Some(rootstrap::image::registry::Credentials {
                        username: username.clone(),
                        password: password.trim_end_matches(['\r', '\n']).to_owned(),
                    })
                }
                None => None,
            };
            let opts = rootstrap::image::registry::PushOptions {
                insecure: args.insecure,
                credentials,
                ..Default::default()
            };
            // An OCI layout holding an image index (a multi-platform build):
            // every platform, then the index.
            let layout = match &held.source {
                rootstrap::image::ImageSource::OciDir(dir) => Some(dir.clone()),
                _ => None,
            };
            let index = match &layout {
                Some(dir) => rootstrap::image::registry::layout_index(dir, held.name.as_deref())?,
                None => None,
            };
            let result = match (&index, &layout) {
                (Some((bytes, index)), Some(dir)) => rootstrap::image::registry::push_index(
                    dir,
                    &reference,
                    bytes,
                    index,
                    &opts,
                    reporter.as_ref(),
                ),
                _ => rootstrap::image::registry::push(&image, &reference, &opts, reporter.as_ref()),
            };
            reporter.finish();
            let report = result
                .with_context(|| format!("pushing {} to {}", args.image, args.destination))?;
            eprintln!(
                "{} blobs uploaded, {} already present, {} referrers",
                report.blobs_uploaded, report.blobs_present, report.referrers
            );
            println!("{}", report.pushed);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pull(args) => {
            let reference = rootstrap::image::reference::ImageReference::parse(&args.source)?;
            let dest = args
                .output
                .strip_prefix("oci:")
                .with_context(|| format!("{}: pull writes oci:DIR", args.output))?;
            let host = rootstrap::image::oci::oci_arch(std::env::consts::ARCH).0;
            let (os, arch) = match &args.platform {
                Some(p) => p
                    .split_once('/')
                    .with_context(|| format!("--platform {p}: expected OS/ARCH"))?,
                None => ("linux", host),
            };
            let opts = rootstrap::image::registry::PushOptions {
                insecure: args.insecure,
                ..Default::default()
            };
            let result = rootstrap::image::registry::pull(
                &reference,
                (arch, os),
                &opts,
                std::path::Path::new(dest),
                reporter.as_ref(),
            );
            reporter.finish();
            let report = result.with_context(|| format!("pulling {}", args.source))?;
            println!("{}  {}", args.output, report.manifest_digest);
            Ok(ExitCode::SUCCESS)
        }
        Command::Recipes => {
            for (name, text) in recipe::SHIPPED {
                let summary = text
                    .lines()
                    .find_map(|l| l.strip_prefix("# "))
                    .unwrap_or("")
                    .trim_end_matches(':');
                println!("{name:<18} {summary}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sbom(args) => {
            sbom(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff(args) => Ok(match diff(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("rootstrap: error: {e:#}");
                ExitCode::from(2)
            }
        }),
        Command::Images(args) => {
            let store = image_store(args.cache_dir.as_deref());
            let images = store.list().context("reading the local image store")?;
            println!(
                "{:<40} {:<16} {:<14} {:<22} {:>10}",
                "REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE"
            );
            for image in images {
                let short: String = image
                    .digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
                println!(
                    "{:<40} {:<16} {:<14} {:<22} {:>10}",
                    image.name,
                    image.tag,
                    short,
                    image.created.as_deref().unwrap_or("-"),
                    human(image.size)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rmi(args) => {
            let store = image_store(args.store.cache_dir.as_deref());
            for name in &args.images {
                let removed = store
                    .remove(name)
                    .with_context(|| format!("removing {name}"))?;
                println!("Untagged: {}", removed.reference());
                println!("Deleted: {}", removed.digest);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lock(args) => {
            let recipe = recipe::find(&args.source.recipe)?;
            let result = build::lock(
                &recipe,
                &source_options(&args.source),
                &several_platforms(&args.source),
                &args.output,
                reporter.clone(),
            );
            reporter.finish();
            let report = result.with_context(|| format!("locking {}", recipe.path.display()))?;
            for (platform, lock) in report.lock.all() {
                println!(
                    "{}{}: {} packages, {} index files",
                    report.file.display(),
                    platform.map(|p| format!(" {p}")).unwrap_or_default(),
                    lock.packages.len(),
                    lock.index.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mirror(args) => {
            let opts = SourceOptions {
                mirror: args.mirror.clone(),
                cache_dir: args.cache_dir.clone(),
                offline: args.offline,
                ..SourceOptions::default()
            };
            let result = build::write_mirror(&args.lock, &args.output, &opts, reporter.clone());
            reporter.finish();
            let report = result.with_context(|| format!("mirroring {}", args.lock.display()))?;
            println!(
                "{}: {} files, {} ({} from the cache)",
                report.dir.display(),
                report.files,
                human(report.bytes),
                report.from_cache
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Dockerfile(DockerfileCommand::Parse { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let dump = rootstrap::dockerfile::dump_file(&text)
                .with_context(|| file.display().to_string())?;
            print!("{dump}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The local image store under the cache directory.
fn image_store(cache_dir: Option<&std::path::Path>) -> rootstrap::image::store::ImageStore {
    let dir = cache_dir
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(build::default_cache_dir);
    rootstrap::image::store::ImageStore::new(&dir)
}

/// Where the image argument `spec` is (see `image::store::resolve_image`).
fn resolve_image(
    spec: &str,
    store: &cli::StoreArgs,
) -> Result<rootstrap::image::store::ResolvedImage> {
    let store = image_store(store.cache_dir.as_deref());
    let quiet = rootstrap::report::Silent;
    let work_dir = std::env::temp_dir();
    Ok(rootstrap::image::store::resolve_image(
        spec, &store, &work_dir, &quiet,
    )?)
}

/// The image `spec`, every blob re-hashed; the second value keeps a pulled
/// image's temporary layout until the caller is done with the image.
fn open_verified(
    spec: &str,
    store: &cli::StoreArgs,
) -> Result<(OpenedImage, rootstrap::image::store::ResolvedImage)> {
    let store = image_store(store.cache_dir.as_deref());
    Ok(rootstrap::image::store::open_verified(
        spec,
        &store,
        &std::env::temp_dir(),
        &rootstrap::report::Silent,
    )?)
}

/// `rootstrap sbom IMAGE [--format] [-o FILE]`.
fn sbom(args: &cli::SbomArgs) -> Result<()> {
    use rootstrap::sbom::SbomFormat;
    let (image, _held) = open_verified(&args.image, &args.store)?;
    let format = match args.format {
        cli::SbomFormatArg::Spdx => SbomFormat::Spdx,
        cli::SbomFormatArg::Cyclonedx => SbomFormat::CycloneDx,
    };
    let bytes = rootstrap::sbom::output::image_sbom(&image, format, &args.image)?;
    match &args.output {
        Some(path) => rootstrap::sbom::output::write_file(path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?,
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), &bytes)?,
    }
    Ok(())
}

/// `rootstrap diff A B [--json]`; true when identical.
fn diff(args: &cli::DiffArgs) -> Result<bool> {
    let (a, _held_a) = open_verified(&args.image_a, &args.store)?;
    let (b, _held_b) = open_verified(&args.image_b, &args.store)?;
    let d = rootstrap::image::diff::diff_images(&a, &b)
        .with_context(|| format!("comparing {} and {}", args.image_a, args.image_b))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        println!("{d}");
    }
    Ok(d.is_identical())
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}
