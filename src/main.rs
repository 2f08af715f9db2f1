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
                require_signed_by: args.require_signed_by.clone(),
                signer: None,
            };
            let signing = match &args.sign_key {
                Some(key) => Some(std::sync::Arc::new(BuildSigning::load(
                    key,
                    &args,
                    &request.file,
                )?)),
                None => None,
            };
            let request = DockerfileRequest {
                signer: signing.clone().map(BuildSigning::signer),
                ..request
            };
            let result = build_dockerfile(&request, reporter.clone(), &mut std::io::stdout());
            reporter.finish();
            result?;
            if let (Some(signing), Some(identity)) = (&signing, &args.sign_identity) {
                for dir in args.outputs.iter().filter_map(|o| o.strip_prefix("oci:")) {
                    println!(
                        "{}",
                        signing.sign_layout(std::path::Path::new(dir), identity)?
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Build(args) => {
            if args.require_signed_by.is_some() {
                anyhow::bail!("--require-signed-by checks the FROM images of a Dockerfile build (-f); a recipe build pulls no image");
            }
            let recipe = recipe::find(&args.source.recipe)?;
            // `-t` stores the image, as `build -f` does: from the layout of
            // an oci: output, or one staged for pushing or storing.
            let mut publication =
                Publication::plan(&args.outputs, &args.tags, args.work_dir.as_deref(), true)?;
            let signing = match &args.sign_key {
                Some(key) => Some(std::sync::Arc::new(BuildSigning::load(
                    key,
                    &args,
                    &recipe.path,
                )?)),
                None => None,
            };
            if let Some(signing) = &signing {
                publication.sign_pushes_with(signing.clone().signer());
            }
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
                if let (
                    Some(signing),
                    Some(identity),
                    build::BuildOutput::Image(rootstrap::image::Output::OciDir(dir)),
                ) = (&signing, &args.sign_identity, out)
                {
                    println!("{}", signing.sign_layout(dir, identity)?);
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
            let image = open_platform(&resolved, args.platform.as_ref())
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
                platform: args.platform.map(|p| rootstrap::image::oci::Platform {
                    architecture: p.architecture,
                    os: p.os,
                    variant: p.variant,
                }),
            };
            let image = resolve_image(&args.image, &args.store)?;
            let status = rootstrap::run::run_image(&image.source, image.name.as_deref(), &opts)
                .with_context(|| format!("running {}", args.image))?;
            Ok(ExitCode::from(u8::try_from(status.code()).unwrap_or(255)))
        }
        Command::Push(args) => {
            let held = resolve_image(&args.image, &args.store)?;
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
                (Some((bytes, index)), Some(dir)) => {
                    verify_platforms(&held, index, &args.image)?;
                    rootstrap::image::registry::push_index(
                        dir,
                        held.name.as_deref(),
                        &reference,
                        bytes,
                        index,
                        &opts,
                        reporter.as_ref(),
                    )
                }
                _ => {
                    let image = OpenedImage::open(&held.source, held.name.as_deref())
                        .with_context(|| format!("opening {}", args.image))?;
                    fsck(&image).with_context(|| format!("verifying {}", args.image))?;
                    rootstrap::image::registry::push(&image, &reference, &opts, reporter.as_ref())
                }
            };
            reporter.finish();
            let report = result
                .with_context(|| format!("pushing {} to {}", args.image, args.destination))?;
            eprintln!(
                "{} blobs uploaded, {} already present, {} referrers",
                report.blobs_uploaded, report.blobs_present, report.referrers
            );
            println!("{}", report.pushed);
            // Signatures kept in the layout go where cosign looks, too.
            if let (Some(dir), None) = (&layout, &index) {
                let mut repo = rootstrap::image::registry::Repository::open(&reference, &opts)?;
                let published = rootstrap::sign::layout::publish_tags(
                    dir,
                    held.name.as_deref(),
                    &mut repo,
                    report.manifest_digest,
                )
                .context("publishing the layout's signatures")?;
                if published > 0 {
                    eprintln!(
                        "{published} signature/attestation layer(s) published under cosign's tags"
                    );
                }
            }
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
            // Verified first, then pulled by the digest verified: the tag
            // cannot move to another image in between.
            let mut pulled_ref = reference.clone();
            if let Some(key) = &args.require_signed_by {
                let key = rootstrap::sign::read_public_key(key)?;
                let target = rootstrap::sign::Target {
                    reference: reference.clone(),
                    digest: None,
                };
                let verified = rootstrap::sign::remote::verify(&target, &key, false, &opts)
                    .with_context(|| format!("{}: refused (--require-signed-by)", args.source))?;
                eprintln!("{}: signature verified", verified.image);
                pulled_ref.tag = verified.digest.to_string();
            }
            let result = rootstrap::image::registry::pull(
                &pulled_ref,
                (arch, os),
                &opts,
                std::path::Path::new(dest),
                reporter.as_ref(),
            );
            reporter.finish();
            let report = result.with_context(|| format!("pulling {}", args.source))?;
            let mut repo = rootstrap::image::registry::Repository::open(&reference, &opts)?;
            let carried = rootstrap::sign::layout::import(
                std::path::Path::new(dest),
                &mut repo,
                report.manifest_digest,
            )
            .context("copying the image's signatures into the layout")?;
            if carried > 0 {
                eprintln!("{carried} signature/attestation layer(s) kept in the layout");
            }
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
        Command::Sign(args) => {
            sign(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => Ok(match verify(&args) {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rootstrap: {}: {e}", args.image);
                ExitCode::from(if e.is_verification_failure() { 1 } else { 2 })
            }
        }),
        Command::Key(cli::KeyCommand::Generate(args)) => {
            let password = rootstrap::sign::password(args.password_stdin)?.with_context(|| {
                format!(
                    "set {} (it may be empty) or pass --password-stdin: the private key is stored encrypted",
                    rootstrap::sign::keys::PASSWORD_ENV
                )
            })?;
            let (private, public) =
                rootstrap::sign::generate_key_pair(&args.output_prefix, &password)?;
            println!("{}", private.display());
            println!("{}", public.display());
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
                "{:<40} {:<16} {:<14} {:<22} {:>10}  PLATFORMS",
                "REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE"
            );
            for image in images {
                let short: String = image
                    .digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
                // An image index lists its platforms; one image, "-".
                let platforms = match image.platforms.as_slice() {
                    [] => "-".to_owned(),
                    list => format!("index: {}", list.join(",")),
                };
                println!(
                    "{:<40} {:<16} {:<14} {:<22} {:>10}  {platforms}",
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
        Command::Save(args) => {
            let output = match build::parse_output(&args.output) {
                Ok(build::BuildOutput::Image(
                    o @ (rootstrap::image::Output::OciDir(_)
                    | rootstrap::image::Output::OciArchive(_)
                    | rootstrap::image::Output::DockerArchive(_)),
                )) => o,
                _ => {
                    return Err(rootstrap::image::store::StoreError::SaveOutput(
                        args.output.clone(),
                    )
                    .into())
                }
            };
            let store = image_store(args.store.cache_dir.as_deref());
            let platform = args.platform.as_ref().map(oci_platform);
            let saved = store
                .save(&args.image, &output, platform.as_ref())
                .with_context(|| format!("saving {} to {}", args.image, args.output))?;
            if let Some(p) = &saved.platform {
                eprintln!(
                    "{}: {p} of the image index {}",
                    args.output, saved.image.digest
                );
            }
            if saved.zstd_layers {
                eprintln!(
                    "rootstrap: warning: {}",
                    rootstrap::image::archive::ZSTD_DOCKER_NOTE
                );
            }
            println!("{}  {}", args.output, saved.digest);
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
    platform: Option<&rootstrap::image::oci::Platform>,
) -> Result<(OpenedImage, rootstrap::image::store::ResolvedImage)> {
    let store = image_store(store.cache_dir.as_deref());
    Ok(rootstrap::image::store::open_verified(
        spec,
        &store,
        &std::env::temp_dir(),
        platform,
        &rootstrap::report::Silent,
    )?)
}

/// Every platform's image of the multi-platform image `held` (its image
/// index `index`), every blob re-hashed, before it is pushed.
fn verify_platforms(
    held: &rootstrap::image::store::ResolvedImage,
    index: &rootstrap::image::oci::Index,
    spec: &str,
) -> Result<()> {
    for entry in &index.manifests {
        let Some(platform) = &entry.platform else {
            continue;
        };
        let image = OpenedImage::open_platform(&held.source, held.name.as_deref(), platform)
            .with_context(|| format!("opening {spec} for {platform}"))?;
        fsck(&image).with_context(|| format!("verifying {spec} for {platform}"))?;
    }
    Ok(())
}

/// The image `held` names: `platform`'s from a multi-platform image, else
/// this machine's.
fn open_platform(
    held: &rootstrap::image::store::ResolvedImage,
    platform: Option<&rootstrap::distro::platform::Platform>,
) -> Result<OpenedImage, rootstrap::image::ImageError> {
    match platform {
        Some(p) => OpenedImage::open_platform(&held.source, held.name.as_deref(), &oci_platform(p)),
        None => OpenedImage::open(&held.source, held.name.as_deref()),
    }
}

fn oci_platform(p: &rootstrap::distro::platform::Platform) -> rootstrap::image::oci::Platform {
    rootstrap::image::oci::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
    }
}

/// `rootstrap sbom IMAGE [--format] [-o FILE]`.
fn sbom(args: &cli::SbomArgs) -> Result<()> {
    use rootstrap::sbom::SbomFormat;
    let held = resolve_image(&args.image, &args.store)?;
    let image = open_platform(&held, args.platform.as_ref())
        .with_context(|| format!("opening {}", args.image))?;
    fsck(&image).with_context(|| format!("verifying {}", args.image))?;
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

/// `rootstrap diff A B [--json] [--platform P]`; true when identical.
fn diff(args: &cli::DiffArgs) -> Result<bool> {
    let platform = args.platform.as_ref().map(oci_platform);
    let (a, _held_a) = open_verified(&args.image_a, &args.store, platform.as_ref())?;
    let (b, _held_b) = open_verified(&args.image_b, &args.store, platform.as_ref())?;
    let d = rootstrap::image::diff::diff_images(&a, &b)
        .with_context(|| format!("comparing {} and {}", args.image_a, args.image_b))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        println!("{d}");
    }
    Ok(d.is_identical())
}

/// `rootstrap sign IMAGE --key KEY`: a registry image, or an oci: layout.
fn sign(args: &cli::SignArgs) -> Result<()> {
    if let (Some(gpg_key), Some(lookaside)) = (&args.gpg_key, &args.lookaside) {
        return sign_gpg(args, gpg_key, lookaside);
    }
    let password = rootstrap::sign::password(args.password_stdin)?;
    let key_file = args
        .key
        .as_deref()
        .context("--key or --gpg-key is needed")?;
    let key = rootstrap::sign::read_private_key(key_file, password.as_deref())?;
    let predicates = match (&args.predicate, &args.predicate_type) {
        (Some(file), Some(kind)) => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            vec![rootstrap::sign::remote::Predicate {
                predicate_type: rootstrap::sign::attest::predicate_type(kind)?,
                predicate: serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}: not JSON", file.display()))?,
            }]
        }
        _ => Vec::new(),
    };
    if let Some(dir) = args.image.strip_prefix("oci:") {
        let identity = args.identity.as_deref().with_context(|| {
            format!(
                "{}: name the HOST/REPO it will be published under with --identity",
                args.image
            )
        })?;
        rootstrap::sign::Target::parse(identity)?;
        let digest = rootstrap::sign::layout::sign(
            std::path::Path::new(dir),
            None,
            identity,
            &key,
            &predicates,
        )
        .with_context(|| format!("signing {}", args.image))?;
        println!("signed {}@{digest}  {identity}", args.image);
        return Ok(());
    }
    let target = rootstrap::sign::Target::parse(&args.image)?;
    let opts = rootstrap::image::registry::PushOptions {
        insecure: args.insecure,
        ..Default::default()
    };
    let signed = rootstrap::sign::remote::sign(&target, &key, &predicates, &opts)
        .with_context(|| format!("signing {}", args.image))?;
    print_signed(&signed);
    Ok(())
}

/// `rootstrap sign IMAGE --gpg-key KEY --lookaside DIR`.
fn sign_gpg(
    args: &cli::SignArgs,
    key: &std::path::Path,
    lookaside: &std::path::Path,
) -> Result<()> {
    let target = rootstrap::sign::Target::parse(&args.image)?;
    let password = std::env::var_os("ROOTSTRAP_GPG_PASSWORD").unwrap_or_default();
    let secret = rootstrap::sign::gpg::read_secret_key(key)?;
    let opts = rootstrap::image::registry::PushOptions {
        insecure: args.insecure,
        ..Default::default()
    };
    let mut repo = rootstrap::image::registry::Repository::open(&target.reference, &opts)?;
    let digest = match target.digest {
        Some(d) => d,
        None => {
            let (_, bytes) = repo
                .manifest(&target.reference.tag)?
                .with_context(|| format!("{}: not in the registry", args.image))?;
            rootstrap::image::Sha256Digest::of(&bytes)
        }
    };
    let written = rootstrap::sign::gpg::sign_to_lookaside(
        &secret,
        password.as_encoded_bytes(),
        &target.reference.familiar(),
        &target.reference.repository,
        digest,
        lookaside,
    )
    .with_context(|| format!("signing {}", args.image))?;
    println!("signed {}@{digest}  {}", repo.name(), written.display());
    Ok(())
}

/// `rootstrap verify IMAGE --key PUB`: the lines to print when valid.
fn verify(args: &cli::VerifyArgs) -> Result<Vec<String>, rootstrap::sign::SignError> {
    let key = rootstrap::sign::read_public_key(&args.key)?;
    if let Some(dir) = args.image.strip_prefix("oci:") {
        let v = rootstrap::sign::layout::verify(
            std::path::Path::new(dir),
            None,
            &key,
            args.identity.as_deref(),
            args.attestation,
        )?;
        let mut lines = vec![format!(
            "{}@{}  verified: {} signature(s) for {}",
            args.image,
            v.digest,
            v.identities.len(),
            v.identities.join(", ")
        )];
        lines.extend(
            v.attestations
                .iter()
                .map(|k| format!("{}@{}  attestation: {k}", args.image, v.digest)),
        );
        return Ok(lines);
    }
    let target = rootstrap::sign::Target::parse(&args.image)?;
    let opts = rootstrap::image::registry::PushOptions {
        insecure: args.insecure,
        ..Default::default()
    };
    let v = rootstrap::sign::remote::verify(&target, &key, args.attestation, &opts)?;
    let mut lines = vec![format!(
        "{}  verified: {} signature(s)",
        v.image, v.signatures
    )];
    lines.extend(
        v.attestations
            .iter()
            .map(|k| format!("{}  attestation: {k}", v.image)),
    );
    Ok(lines)
}

/// What `sign` (or a signed build) wrote, one line each.
fn signed_lines(signed: &rootstrap::sign::remote::Signed) -> Vec<String> {
    let mut lines = vec![format!("signed {}  {}", signed.image, signed.signatures)];
    if let Some(att) = &signed.attestations {
        lines.push(format!("attested {}  {att}", signed.image));
    }
    lines
}

fn print_signed(signed: &rootstrap::sign::remote::Signed) {
    for line in signed_lines(signed) {
        println!("{line}");
    }
}

/// `build --sign-key`: the key (read, and its password checked, before
/// anything is built) and what the provenance statement records.
struct BuildSigning {
    key: p256::ecdsa::SigningKey,
    provenance: rootstrap::sign::attest::Provenance,
    /// Read when signing: the build may have just written it.
    lock: Option<std::path::PathBuf>,
}

impl BuildSigning {
    fn load(
        key: &std::path::Path,
        args: &cli::BuildArgs,
        definition: &std::path::Path,
    ) -> Result<Self> {
        use rootstrap::sign::attest::Provenance;
        let password = rootstrap::sign::password(false)?;
        let key = rootstrap::sign::read_private_key(key, password.as_deref())?;
        let pushes = args.outputs.iter().any(|o| o.starts_with("registry:"));
        if !pushes && args.sign_identity.is_none() {
            anyhow::bail!(
                "--sign-key signs what a build pushes (--output registry:HOST/REPO[:TAG]), or its oci: outputs for --sign-identity HOST/REPO"
            );
        }
        if let Some(identity) = &args.sign_identity {
            rootstrap::sign::Target::parse(identity)?;
        }
        Ok(BuildSigning {
            key,
            provenance: Provenance {
                definition: Some(Provenance::file(definition)?),
                lockfile: None,
                platforms: args
                    .source
                    .platform
                    .as_ref()
                    .map(|list| list.0.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
            },
            lock: args.lock.clone(),
        })
    }

    fn provenance(
        &self,
    ) -> Result<rootstrap::sign::attest::Provenance, rootstrap::sign::SignError> {
        use rootstrap::sign::attest::Provenance;
        Ok(Provenance {
            lockfile: self.lock.as_deref().map(Provenance::file).transpose()?,
            ..self.provenance.clone()
        })
    }

    /// The signer of the build's registry pushes.
    fn signer(self: std::sync::Arc<Self>) -> rootstrap::image::publish::Signer {
        rootstrap::image::publish::Signer(std::sync::Arc::new(move |layout, reference, digest| {
            let opts = rootstrap::image::registry::PushOptions::default();
            let signed = rootstrap::sign::attest::sign_published(
                layout,
                reference,
                digest,
                &self.key,
                &self.provenance()?,
                &opts,
            )?;
            Ok(signed.iter().flat_map(signed_lines).collect())
        }))
    }

    /// Signs an oci: output inside the layout; the line to print.
    fn sign_layout(&self, dir: &std::path::Path, identity: &str) -> Result<String> {
        let digest = rootstrap::sign::attest::sign_layout_output(
            dir,
            identity,
            &self.key,
            &self.provenance()?,
        )
        .with_context(|| format!("signing oci:{}", dir.display()))?;
        Ok(format!("signed oci:{}@{digest}  {identity}", dir.display()))
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}
