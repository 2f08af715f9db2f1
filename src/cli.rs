//! Command-line definitions (clap). Only parsing lives here; main.rs calls
//! the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "rootstrap",
    version,
    about = "Build container base images straight from distribution package repositories — no Docker daemon.",
    long_about = "Build container base images straight from distribution package repositories — no Docker daemon.\n\n\
rootstrap reads a recipe (recipes/*.toml), fetches and verifies the distribution's signed index, \
resolves the package set, installs it into a rootfs (package scripts run in a sandbox), packs it \
as a FROM-scratch layer and writes an OCI image.",
    after_help = "Examples:\n  rootstrap build recipes/debian-trixie.toml --output docker-archive:debian.tar\n  \
docker load -i debian.tar && docker run --rm -ti rootstrap/debian:trixie bash\n  \
rootstrap resolve recipes/debian-bookworm.toml\n  rootstrap inspect oci:out\n  \
rootstrap run oci:out -- cat /etc/os-release"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Progress display: bars on a terminal, plain lines otherwise.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Only print warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// How package scripts, RUN steps and `run` are isolated (build and run):
    /// auto (the strongest the process may use), namespaces (root),
    /// userns (a non-root user with subordinate IDs), chroot (root without
    /// namespace rights, as in a container or pod with default privileges).
    #[arg(
        long,
        global = true,
        env = "ROOTSTRAP_ISOLATION",
        default_value = "auto",
        value_name = "LEVEL",
        hide_env_values = true
    )]
    pub isolation: rootstrap::rootfs::isolation::Requested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Plain,
    Bars,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a recipe.
    Build(Box<BuildArgs>),
    /// Print the package plan (name, version, size) without installing anything.
    Resolve(ResolveArgs),
    /// Show an image's config, layers, sizes and installed packages.
    Inspect(InspectArgs),
    /// Run a command in a built image inside the sandbox (like `docker run --rm`).
    Run(RunArgs),
    /// Push an image to a registry (OCI distribution API), keeping its digest.
    Push(PushArgs),
    /// Pull an image from a registry into an OCI layout directory.
    Pull(PullArgs),
    /// List the recipes shipped with rootstrap.
    Recipes,
    /// Dockerfile utilities.
    #[command(subcommand)]
    Dockerfile(DockerfileCommand),
    /// Write an SBOM (SPDX 2.3 or CycloneDX 1.5 JSON) of an image's installed packages.
    Sbom(SbomArgs),
    /// Compare two images (one platform's of a multi-platform image): config, packages and files (exit 0 identical, 1 different, 2 error).
    Diff(DiffArgs),
    /// List the images in the local image store (built with `build … -t NAME:TAG`).
    Images(StoreArgs),
    /// Remove an image from the local image store.
    Rmi(RmiArgs),
    /// Write an image of the local store to an OCI layout or oci-archive (a multi-platform one whole), or one platform's to a docker-archive.
    Save(SaveArgs),
    /// Resolve a recipe and write its lockfile (the exact package set, for `build --locked`).
    Lock(LockArgs),
    /// Write a partial mirror holding exactly what a lockfile needs (servable as-is, or as file://).
    Mirror(MirrorArgs),
    /// Sign an image in a registry with a key, as cosign does (its `sha256-….sig` tag).
    Sign(SignArgs),
    /// Check an image's signature (and attestations) with a public key (exit 0 valid, 1 not, 2 error).
    Verify(VerifyArgs),
    /// Signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new ECDSA P-256 key pair in cosign's format: PREFIX.key (encrypted) and PREFIX.pub.
    Generate(KeyGenerateArgs),
}

#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// File name prefix of the pair.
    #[arg(long, default_value = "cosign")]
    pub output_prefix: PathBuf,
    /// Read the password from stdin (else $COSIGN_PASSWORD, which may be empty).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST] (the tag's current digest is signed), or
    /// oci:DIR (signed inside the layout; needs --identity).
    pub image: String,
    /// For oci:DIR: the name (HOST/REPO) the image will be published under.
    #[arg(long, value_name = "HOST/REPO")]
    pub identity: Option<String>,
    /// Private key: cosign's encrypted format (password in $COSIGN_PASSWORD) or PKCS#8 PEM.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "gpg_key",
        conflicts_with = "gpg_key"
    )]
    pub key: Option<PathBuf>,
    /// Instead: a GPG "simple signing" signature (skopeo/podman/CRI-O `signedBy` policies) with
    /// this ASCII-armoured OpenPGP secret key (password in $ROOTSTRAP_GPG_PASSWORD), written to
    /// --lookaside.
    #[arg(long, value_name = "FILE", requires = "lookaside")]
    pub gpg_key: Option<PathBuf>,
    /// The lookaside directory GPG signatures go to (serve it, or point registries.d at it).
    #[arg(long, value_name = "DIR")]
    pub lookaside: Option<PathBuf>,
    /// Read the key's password from stdin instead of $COSIGN_PASSWORD.
    #[arg(long)]
    pub password_stdin: bool,
    /// Also attach this in-toto predicate (JSON file) as a signed attestation.
    #[arg(long, value_name = "FILE", requires = "predicate_type")]
    pub predicate: Option<PathBuf>,
    /// The predicate's type: spdx, cyclonedx, slsaprovenance, or a URI.
    #[arg(long = "type", value_name = "TYPE", requires = "predicate")]
    pub predicate_type: Option<String>,
    /// Talk plain HTTP to the registry (always the case for localhost and 127.0.0.0/8).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST], or oci:DIR (signatures kept in the layout).
    pub image: String,
    /// For oci:DIR: require signatures made for this name (HOST/REPO).
    #[arg(long, value_name = "HOST/REPO")]
    pub identity: Option<String>,
    /// Public key (PEM, as `cosign.pub`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Also require a valid attestation (SBOM, provenance) by the key about the image.
    #[arg(long)]
    pub attestation: bool,
    /// Talk plain HTTP to the registry (always the case for localhost and 127.0.0.0/8).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SbomFormatArg {
    Spdx,
    Cyclonedx,
}

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// An image: NAME[:TAG] from the local store, oci:DIR, oci-archive:FILE or docker-archive:FILE.
    pub image: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Document format.
    #[arg(long, value_enum, default_value_t = SbomFormatArg::Spdx)]
    pub format: SbomFormatArg,
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The platform to take from a multi-platform image (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = rootstrap::distro::platform::Platform::parse)]
    pub platform: Option<rootstrap::distro::platform::Platform>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// An image: NAME[:TAG] from the local store, oci:DIR, oci-archive:FILE or docker-archive:FILE.
    pub image_a: String,
    /// An image: NAME[:TAG] from the local store, oci:DIR, oci-archive:FILE or docker-archive:FILE.
    pub image_b: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the differences as JSON.
    #[arg(long)]
    pub json: bool,
    /// The platform to compare from multi-platform images (default: this
    /// machine's); a single image is compared as it is.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = rootstrap::distro::platform::Platform::parse)]
    pub platform: Option<rootstrap::distro::platform::Platform>,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Cache directory holding the image store (default: the user's cache dir).
    #[arg(long, env = "ROOTSTRAP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// NAME[:TAG] (tag defaults to latest); several may be given.
    #[arg(required = true)]
    pub images: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// NAME[:TAG] in the local store (tag defaults to latest).
    pub image: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where: oci:DIR or oci-archive:FILE (the whole image, every
    /// platform), or docker-archive:FILE (one platform's image, as `docker
    /// load` reads it); made complete or not at all.
    #[arg(
        short,
        long,
        value_name = "oci:DIR|oci-archive:FILE|docker-archive:FILE"
    )]
    pub output: String,
    /// The platform a docker-archive: takes from a multi-platform image
    /// (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = rootstrap::distro::platform::Platform::parse)]
    pub platform: Option<rootstrap::distro::platform::Platform>,
}

/// `--platform linux/amd64,linux/arm64`.
#[derive(Debug, Clone)]
pub struct PlatformList(pub Vec<rootstrap::distro::platform::Platform>);

fn parse_platforms(text: &str) -> Result<PlatformList, rootstrap::distro::platform::PlatformError> {
    rootstrap::distro::platform::Platform::parse_list(text).map(PlatformList)
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Recipe file (recipes/debian-trixie.toml) or the name of a shipped recipe (debian-trixie).
    /// With `build -f DOCKERFILE`: the build context directory (default: `.`).
    pub recipe: String,
    /// Package mirror URL (http://, https:// or file://); overrides $ROOTSTRAP_MIRROR and the recipe.
    #[arg(long)]
    pub mirror: Option<String>,
    /// Download cache directory (default: the user's cache dir, e.g. ~/.cache/rootstrap).
    #[arg(long, env = "ROOTSTRAP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Target architecture in the distribution's spelling, overriding the recipe
    /// (Debian: amd64, arm64, armhf, ...; Alpine: x86_64, aarch64, armv7, ...).
    #[arg(long)]
    pub arch: Option<String>,
    /// Target platform(s) as OCI spells them, overriding the recipe: linux/amd64,
    /// linux/arm64, linux/arm/v7, linux/ppc64le, linux/s390x, linux/riscv64, linux/386.
    /// A comma list builds one image index (oci: outputs). A foreign platform's
    /// package scripts run through binfmt_misc + qemu-user.
    #[arg(long, value_name = "OS/ARCH[/VARIANT],…", value_parser = parse_platforms)]
    pub platform: Option<PlatformList>,
    /// Directory of trusted keys (Alpine: *.rsa.pub), used instead of the recipe's keys.
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Accept unsigned or untrusted Alpine indexes and packages; the image is
    /// labelled org.rootstrap.untrusted=true.
    #[arg(long)]
    pub allow_untrusted: bool,
    /// Accept, this once, a Debian Release older than the last one accepted
    /// from the same source, or one whose Origin, Label, Suite or Codename
    /// changed (it becomes the remembered one).
    #[arg(long)]
    pub accept_release_change: bool,
    /// Use only the download cache (and file:// mirrors): no network. Signed
    /// indexes kept from the last online run are verified again.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where to write the image: oci:DIR, oci-archive:FILE, docker-archive:FILE, tar:FILE
    /// (rootfs tarball; .gz/.zst compress), rootfs:DIR, or registry:HOST[:PORT]/REPO[:TAG]
    /// (pushed when the build succeeds; see `rootstrap push`). May be given several times;
    /// optional with -t, which stores the image in the local store.
    #[arg(
        short,
        long = "output",
        value_name = "KIND:PATH",
        required_unless_present_any = ["file", "tags"]
    )]
    pub outputs: Vec<String>,
    /// Image name (NAME[:TAG]): recorded in the outputs and the image stored under it in
    /// the local store; outputs default to the recipe's image.name, else `latest`.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Directory for the temporary rootfs (default: memory, /dev/shm, when
    /// the planned tree fits and no Dockerfile steps follow; else $TMPDIR).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub dockerfile: DockerfileArgs,
    /// Do not run a foreign platform's package scripts (they run through binfmt_misc and
    /// qemu-user otherwise, and a missing interpreter stops the build); the image is
    /// labelled org.rootstrap.scripts=not-run.
    #[arg(long)]
    pub skip_foreign_scripts: bool,
    /// Lockfile: without --locked, report drift against it (or write it if it does not exist).
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// Install exactly the packages of --lock FILE (no resolution); fail if any is missing or differs.
    #[arg(long, requires = "lock")]
    pub locked: bool,
    /// Layer compression: gzip (default; every consumer), zstd (faster, smaller;
    /// Docker ≥ 23, containerd, podman) or none. Overrides the recipe's.
    #[arg(long, value_name = "gzip|zstd|none")]
    pub compression: Option<rootstrap::image::LayerCompression>,
    /// Debian/Ubuntu: leave out docs, man/info pages and translations, as the
    /// official -slim images do (as `slim = true` in the recipe's [source]).
    #[arg(long)]
    pub slim: bool,
    /// Sign each image pushed to a registry: output with this key (cosign format, password in
    /// $COSIGN_PASSWORD, or PKCS#8 PEM), attaching its SBOMs and a provenance statement.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// With --sign-key: also sign the oci: outputs, for this name (HOST/REPO they will be
    /// published under); the signatures travel inside the layout.
    #[arg(long, value_name = "HOST/REPO", requires = "sign_key")]
    pub sign_identity: Option<String>,
    /// Dockerfile builds: a FROM image pulled from a registry must carry a valid signature by
    /// this public key (cosign.pub); the digest verified is the digest pulled.
    #[arg(long, value_name = "PUBKEY")]
    pub require_signed_by: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where to write the lockfile.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The lockfile.
    pub lock: PathBuf,
    /// Directory to create (must not exist or be empty).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Mirror to fetch what the cache lacks (default: $ROOTSTRAP_MIRROR, then the lock's).
    #[arg(long)]
    pub mirror: Option<String>,
    /// Download cache directory (default: the user's cache dir).
    #[arg(long, env = "ROOTSTRAP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use only the download cache; no network.
    #[arg(long)]
    pub offline: bool,
}

/// `build -f Dockerfile CONTEXT`: the positional argument is then the build context.
#[derive(Debug, Args)]
pub struct DockerfileArgs {
    /// Build this Dockerfile instead of a recipe; RECIPE is then the build context directory.
    #[arg(short = 'f', long = "file", value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,
    /// Build argument for the Dockerfile (KEY=VALUE; KEY alone takes it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Stop at this Dockerfile stage (name or index).
    #[arg(long)]
    pub target: Option<String>,
    /// Squash the whole image (base layers included) into one layer.
    #[arg(long)]
    pub squash: bool,
    /// Run every Dockerfile step (`-f`, or a recipe's `[build] dockerfile`) instead of reusing
    /// the step cache.
    #[arg(long)]
    pub no_cache: bool,
    /// A secret for `RUN --mount=type=secret`: id=ID,src=FILE or id=ID,env=VAR.
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    pub secrets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also report how the plan drifted from this lockfile (exit status 1 if it did).
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An image: NAME[:TAG] from the local store, oci:DIR, oci-archive:FILE or docker-archive:FILE.
    pub image: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// The platform to take from a multi-platform image (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = rootstrap::distro::platform::Platform::parse)]
    pub platform: Option<rootstrap::distro::platform::Platform>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// REGISTRY[:PORT]/REPOSITORY[:TAG]
    pub source: String,
    /// Where to write: oci:DIR (must not exist).
    #[arg(short, long = "output", value_name = "oci:DIR")]
    pub output: String,
    /// Platform to pick from a multi-platform image (default: this machine's).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Talk plain HTTP to the registry (always the case for localhost and 127.0.0.0/8).
    #[arg(long)]
    pub insecure: bool,
    /// Refuse the image unless it carries a valid signature by this public key (cosign.pub);
    /// the digest verified is the digest pulled.
    #[arg(long, value_name = "PUBKEY")]
    pub require_signed_by: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// An image: NAME[:TAG] from the local store, oci:DIR, oci-archive:FILE or docker-archive:FILE.
    pub image: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to: REGISTRY[:PORT]/REPOSITORY[:TAG] (tag defaults to latest).
    pub destination: String,
    /// Talk plain HTTP to the registry (always the case for localhost and 127.0.0.0/8).
    #[arg(long)]
    pub insecure: bool,
    /// User name for the registry (else ~/.docker/config.json `auths`).
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password or token for --username from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// An image: NAME[:TAG] from the local store, oci:DIR, oci-archive:FILE or docker-archive:FILE.
    pub image: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Network: share the host's (default) or none.
    #[arg(long, value_enum, default_value_t = NetworkMode::Host)]
    pub network: NetworkMode,
    /// Extra environment variables (KEY=VALUE).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run as this user (name, uid, name:group or uid:gid) instead of the image's.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the image instead of the image's.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// The platform to take from a multi-platform image (default: this
    /// machine's); a foreign one runs through binfmt_misc + qemu-user.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = rootstrap::distro::platform::Platform::parse)]
    pub platform: Option<rootstrap::distro::platform::Platform>,
    /// Command and arguments; the image's entrypoint/cmd when omitted.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkMode {
    Host,
    None,
}

#[derive(Debug, Subcommand)]
pub enum DockerfileCommand {
    /// Parse a Dockerfile and print it in BuildKit's dump format.
    Parse {
        /// The Dockerfile.
        file: PathBuf,
    },
}

/// The command line as parsed: as [`Cli`], except that `build -f
/// DOCKERFILE` needs no RECIPE (the build context then defaults to `.`, the
/// current directory). The derive cannot say this because RECIPE sits in
/// [`SourceArgs`], which `resolve` shares and which has no `-f`.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_subcommand("build", |build| {
        build.mut_arg("recipe", |arg| {
            arg.required(false)
                .required_unless_present("file")
                .default_value_if("file", clap::builder::ArgPredicate::IsPresent, ".")
        })
    })
}

pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn dockerfile_context_defaults_to_the_current_directory() {
        use clap::FromArgMatches;
        let parse = |args: &[&str]| {
            command()
                .try_get_matches_from(args)
                .and_then(|m| Cli::from_arg_matches(&m))
        };
        let cli = parse(&["rootstrap", "build", "-f", "Dockerfile", "-t", "x"]).unwrap();
        let Command::Build(b) = cli.command else {
            panic!()
        };
        assert_eq!(b.source.recipe, ".");
        let cli = parse(&["rootstrap", "build", "-f", "D", "ctx", "-o", "oci:o"]).unwrap();
        let Command::Build(b) = cli.command else {
            panic!()
        };
        assert_eq!(b.source.recipe, "ctx");
        assert!(parse(&["rootstrap", "build", "-o", "oci:o"]).is_err());
        assert!(parse(&["rootstrap", "build", "recipe.toml"]).is_err());
        assert!(parse(&["rootstrap", "resolve"]).is_err());
    }

    #[test]
    fn parses_build_with_several_outputs() {
        let cli = Cli::parse_from([
            "rootstrap",
            "build",
            "recipes/debian-trixie.toml",
            "--output",
            "oci:out",
            "-o",
            "docker-archive:x.tar",
            "-t",
            "me/deb:1",
            "--mirror",
            "http://m",
        ]);
        let Command::Build(b) = cli.command else {
            panic!()
        };
        assert_eq!(b.outputs, ["oci:out", "docker-archive:x.tar"]);
        assert_eq!(b.tags, ["me/deb:1"]);
        assert_eq!(b.source.mirror.as_deref(), Some("http://m"));
    }

    #[test]
    fn offline_is_accepted_by_build_and_resolve() {
        let cli = Cli::parse_from(["rootstrap", "build", "r.toml", "-o", "oci:o", "--offline"]);
        let Command::Build(b) = cli.command else {
            panic!()
        };
        assert!(b.source.offline);
        let cli = Cli::parse_from(["rootstrap", "resolve", "--offline", "r.toml"]);
        let Command::Resolve(r) = cli.command else {
            panic!()
        };
        assert!(r.source.offline);
        let cli = Cli::parse_from(["rootstrap", "resolve", "r.toml"]);
        let Command::Resolve(r) = cli.command else {
            panic!()
        };
        assert!(!r.source.offline);
    }

    #[test]
    fn parses_lock_locked_and_mirror() {
        let cli = Cli::parse_from([
            "rootstrap",
            "build",
            "r.toml",
            "-o",
            "oci:x",
            "--lock",
            "r.lock",
            "--locked",
        ]);
        let Command::Build(b) = cli.command else {
            panic!()
        };
        assert_eq!(b.lock.as_deref(), Some(std::path::Path::new("r.lock")));
        assert!(b.locked);
        assert!(
            Cli::try_parse_from(["rootstrap", "build", "r.toml", "-o", "oci:x", "--locked"])
                .is_err()
        );
        let cli = Cli::parse_from(["rootstrap", "lock", "r.toml", "-o", "r.lock", "--offline"]);
        let Command::Lock(l) = cli.command else {
            panic!()
        };
        assert!(l.source.offline);
        let cli = Cli::parse_from(["rootstrap", "mirror", "r.lock", "-o", "dir"]);
        let Command::Mirror(m) = cli.command else {
            panic!()
        };
        assert_eq!(m.output, std::path::Path::new("dir"));
    }

    #[test]
    fn run_takes_command_after_double_dash() {
        let cli = Cli::parse_from([
            "rootstrap",
            "run",
            "oci:x",
            "--network",
            "none",
            "--",
            "ls",
            "-l",
        ]);
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.command, ["ls", "-l"]);
        assert_eq!(r.network, NetworkMode::None);
    }
}
