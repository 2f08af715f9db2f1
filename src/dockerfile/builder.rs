//! Running a Dockerfile without a daemon: each stage gets a working rootfs
//! directory and an [`ImageBuilder`]; metadata instructions edit the image
//! config, file-changing ones (RUN, COPY, ADD, WORKDIR that creates
//! directories) add a layer holding the difference between an `lstat`
//! snapshot taken before the step and one taken after (see [`snapshot`]).
//!
//! Unlike the rest of this module, this does I/O: it is where parsed
//! instructions meet the rootfs, the sandbox and the image writer. All
//! writes into a rootfs go through the safe [`Root`] API; RUN goes through
//! the [`Sandbox`]; users are resolved from the rootfs's own /etc/passwd.
//!
//! [`snapshot`]: super::snapshot

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::copy::{self, CopyError, CopyOptions};
use super::mounts::{CacheSharing, Mount, MountType};
use super::snapshot::{diff, snapshot, write_diff};
use super::step_cache::{digest_sources, step_key, CachedLayer, StepEntry};
use super::{
    expand_word, parse, parse_dockerignore, parse_instructions, parse_mount, Command, CopySpec,
    DockerIgnore, EnvLookup, Healthcheck, Instruction, ParseError, RunCommand, ShellOrExec, Stages,
};
use crate::archive::decompress::{self, Compression};
use crate::cleanup::TempPath;
use crate::fetch::{redact, Cache, ClientConfig, Fetcher};
use crate::image::oci::{self, History, ImageConfig};
use crate::image::{
    unpack_layers, ImageBuilder, ImageError, ImageReference, ImageSource, LayerCompression,
    OpenedImage, Output, Sha256Digest,
};
use crate::report::Reporter;
use crate::rootfs::extract::{extract_tar, ExtractOptions};
use crate::rootfs::image_sink::RootSink;
use crate::rootfs::safe::{FileKind, RelPath, Root};
use crate::rootfs::sandbox::{
    lookup_user, BindMount, ExitStatus, Network, RunSpec, Sandbox, TmpfsMount,
};

pub use super::step_cache::StepCache;

/// Builds the base image of a `FROM some-recipe.toml` stage and returns the
/// OCI layout directory it was written to. Supplied by the caller so this
/// module knows nothing about distributions.
pub type RecipeBase<'a> = &'a dyn Fn(&Path) -> Result<PathBuf, String>;

/// Largest file `ADD <url>` downloads.
const MAX_URL_BYTES: u64 = 1 << 30;

/// `ADD` of a compressed tar stops once the tar it decompresses to grows
/// past this many times the compressed size (and past the floor below):
/// real archives stay far below it, a decompression bomb (HOSTILE 14,
/// CVE-2017-14992) runs into it after a bounded amount of work and disk.
const ADD_MAX_EXPANSION: u64 = 100;
const ADD_MIN_CAP: u64 = 256 << 20;

pub struct BuildOptions<'a> {
    /// `--build-arg K=V`.
    pub build_args: HashMap<String, String>,
    /// `--target`: the stage to stop at (default: the last).
    pub target: Option<String>,
    /// `--squash`: the result is one single layer (base layers included).
    pub squash: bool,
    /// SOURCE_DATE_EPOCH: clamps mtimes in new layers, sets `created`.
    pub source_date_epoch: Option<i64>,
    /// Where stage root filesystems and blobs live while building.
    pub work_dir: PathBuf,
    pub sandbox: Sandbox,
    pub compression: LayerCompression,
    pub recipe_base: Option<RecipeBase<'a>>,
    /// The step cache; `None` (`--no-cache`) runs every step.
    pub cache: Option<StepCache>,
    /// The local image store `FROM name:tag` looks in first.
    pub store: Option<crate::store::ImageStore>,
    /// Where `RUN --mount=type=cache` directories persist between builds
    /// (`None`: a directory that lives as long as the build).
    pub mount_cache_dir: Option<PathBuf>,
    /// `--secret id=…`: what `RUN --mount=type=secret,id=…` exposes.
    pub secrets: HashMap<String, Vec<u8>>,
}

impl BuildOptions<'_> {
    pub fn new(work_dir: PathBuf) -> Self {
        BuildOptions {
            build_args: HashMap::new(),
            target: None,
            squash: false,
            source_date_epoch: None,
            work_dir,
            sandbox: Sandbox::new(),
            compression: LayerCompression::Gzip,
            recipe_base: None,
            cache: None,
            store: None,
            mount_cache_dir: None,
            secrets: HashMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Dockerfile line {}: {}", .0.line, .0.kind)]
    Parse(#[from] ParseError),
    #[error("step #{step} (line {line}) `{instruction}`: {message}")]
    Step {
        step: usize,
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("step #{step} (line {line}) `{instruction}` failed: {status}")]
    RunFailed {
        step: usize,
        line: usize,
        instruction: String,
        status: ExitStatus,
    },
    #[error("target stage {0:?} not found")]
    UnknownTarget(String),
    #[error("the Dockerfile has no stage (no FROM)")]
    NoStage,
    #[error("a recipe's Dockerfile is applied on top of the recipe's image and must not contain FROM (line {0})")]
    FromInRecipe(usize),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// A finished build: the image (write it with [`ImageBuilder::write`]) and
/// the final stage's rootfs, removed when this is dropped. Layers reused
/// from the step cache are applied to the rootfs only when something needs
/// it: call [`Built::materialize`] before reading `rootfs`.
pub struct Built {
    pub image: ImageBuilder,
    pub rootfs: TempPath,
    applied: usize,
    work_dir: PathBuf,
}

impl Built {
    /// Brings `rootfs` up to date with every layer of `image` and returns it.
    pub fn materialize(&mut self) -> Result<&Path, BuildError> {
        let root = Root::open(self.rootfs.path())
            .map_err(io_err(format!("opening {}", self.rootfs.path().display())))?;
        materialize(&self.work_dir, &self.image, &root, &mut self.applied)?;
        Ok(self.rootfs.path())
    }
}

/// A finished (or base) stage kept for `COPY --from` and `FROM <stage>`.
struct Finished {
    image: ImageBuilder,
    rootfs: TempPath,
    /// How many of `image`'s layers are applied to `rootfs` (the others
    /// came from the step cache or the base image and wait for a step that
    /// needs the files).
    applied: usize,
}

/// Applies the layers of `image` that `root` does not hold yet (`applied`
/// onwards), through the same whiteout-aware unpacker as a base image.
fn materialize(
    work_dir: &Path,
    image: &ImageBuilder,
    root: &Root,
    applied: &mut usize,
) -> Result<(), BuildError> {
    let total = image.layers().len();
    if *applied >= total {
        return Ok(());
    }
    let tmp = tempfile::Builder::new()
        .prefix(".rootstrap-apply-")
        .tempdir_in(work_dir)
        .map_err(io_err(format!(
            "creating a directory in {}",
            work_dir.display()
        )))?;
    let dir = tmp.path().join("oci");
    image.write(&Output::OciDir(dir.clone()), None)?;
    let mut opened = OpenedImage::open(&ImageSource::OciDir(dir), None)?;
    opened.layers.drain(..*applied);
    unpack_layers(&opened, &mut RootSink::new(root))?;
    *applied = total;
    Ok(())
}

/// Parses `text` and builds it with `context` as the build context.
pub fn build(
    text: &str,
    context: &Path,
    opts: &BuildOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<Built, BuildError> {
    let file = parse(text)?;
    let stages = parse_instructions(&file)?;
    if stages.stages.is_empty() {
        return Err(BuildError::NoStage);
    }
    let target = match &opts.target {
        Some(t) => stages
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .or_else(|| t.parse::<usize>().ok().filter(|&i| i < stages.stages.len()))
            .ok_or_else(|| BuildError::UnknownTarget(t.clone()))?,
        None => stages.stages.len() - 1,
    };
    let ctx = Context::open(context)?;
    let global = stages.global_arg_values(&opts.build_args, &predefined_args())?;
    let mut run = Runner {
        opts,
        reporter,
        ctx: &ctx,
        stages: &stages,
        global: &global,
        done: Vec::new(),
        step: 0,
        fetcher: None,
        scratch: None,
        pulled: Default::default(),
    };
    let needed = needed_stages(&stages, target, &global);
    for (index, stage) in stages.stages.iter().enumerate().take(target + 1) {
        if !needed[index] {
            run.done.push(None);
            continue;
        }
        run.step += 1;
        let (base, _platform) = stages.expand_base(stage, &global)?;
        reporter.info(&format!("#{} {}", run.step, stage_from_line(stage, &base)));
        let at = StepAt {
            step: run.step,
            line: stage.start_line,
            text: format!("FROM {base}"),
        };
        let mut finished = run.open_base(&base, &at)?;
        let root = Root::open(finished.rootfs.path()).map_err(io_err(format!(
            "opening {}",
            finished.rootfs.path().display()
        )))?;
        let mut state = StageState::new(&mut finished.image, &root, finished.applied);
        run.trigger_onbuild(&mut state)?;
        for command in &stage.commands {
            run.step += 1;
            run.execute(&mut state, command)?;
        }
        finished.applied = state.applied;
        run.done.push(Some(finished));
    }
    for name in opts.build_args.keys() {
        if !stages.global_args.iter().any(|c| declares(c, name))
            && !stages.stages[..=target]
                .iter()
                .any(|s| s.commands.iter().any(|c| declares(c, name)))
        {
            reporter.warn(&format!("build argument {name} was not consumed"));
        }
    }
    let Some(Some(mut last)) = run.done.pop() else {
        return Err(BuildError::NoStage);
    };
    if let Some(epoch) = opts.source_date_epoch {
        last.image.config_mut().created = Some(oci::format_timestamp(epoch));
    }
    if opts.squash {
        last.image.squash()?;
    }
    Ok(Built {
        image: last.image,
        rootfs: last.rootfs,
        applied: last.applied,
        work_dir: opts.work_dir.clone(),
    })
}

/// Applies the instructions of a FROM-less Dockerfile (a recipe's `[build]
/// dockerfile`) to `image`, whose last layer is `rootfs` as it is on disk.
pub fn apply_steps(
    image: &mut ImageBuilder,
    rootfs: &Path,
    dockerfile: &str,
    context: &Path,
    opts: &BuildOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    // The parser only accepts instructions inside a stage: give it one, and
    // shift line numbers back so messages name the user's lines.
    let file = parse(&format!("FROM scratch\n{dockerfile}")).map_err(|mut e| {
        e.line = e.line.saturating_sub(1);
        e.end_line = e.end_line.saturating_sub(1);
        e
    })?;
    let mut stages = parse_instructions(&file)?;
    if let Some(extra) = stages.stages.get(1) {
        return Err(BuildError::FromInRecipe(extra.start_line - 1));
    }
    for command in stages.stages.iter_mut().flat_map(|s| s.commands.iter_mut()) {
        command.start_line -= 1;
        command.end_line -= 1;
    }
    let ctx = Context::open(context)?;
    let global = stages.global_arg_values(&opts.build_args, &predefined_args())?;
    let mut run = Runner {
        opts,
        reporter,
        ctx: &ctx,
        stages: &stages,
        global: &global,
        done: Vec::new(),
        step: 0,
        fetcher: None,
        scratch: None,
        pulled: Default::default(),
    };
    let root = Root::open(rootfs).map_err(io_err(format!("opening {}", rootfs.display())))?;
    let applied = image.layers().len();
    let mut state = StageState::new(image, &root, applied);
    if let Some(stage) = stages.stages.first() {
        for command in &stage.commands {
            run.step += 1;
            run.execute(&mut state, command)?;
        }
    }
    // The caller goes on using the rootfs: bring it up to date.
    let mut applied = state.applied;
    materialize(&opts.work_dir, image, &root, &mut applied)?;
    if opts.squash {
        image.squash()?;
    }
    Ok(())
}

/// The seam for `src/build.rs`: runs a recipe's `[build] dockerfile`
/// (relative to the recipe; context: `[build] context` or the Dockerfile's
/// directory) on top of the image whose rootfs is `rootfs`. With `cache`,
/// steps are reused as in `build -f`: the base's config (its diff_ids)
/// starts each key, so a reproducible base gives the same keys.
#[allow(clippy::too_many_arguments)]
pub fn apply_recipe_dockerfile(
    image: &mut ImageBuilder,
    rootfs: &Path,
    recipe: &crate::recipe::Recipe,
    dockerfile: &str,
    work_dir: &Path,
    epoch: i64,
    sandbox: &Sandbox,
    cache: Option<StepCache>,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    let base = recipe.path.parent().unwrap_or(Path::new("."));
    let file = base.join(dockerfile);
    let text =
        std::fs::read_to_string(&file).map_err(io_err(format!("reading {}", file.display())))?;
    let context = match recipe.build.as_ref().and_then(|b| b.context.as_ref()) {
        Some(c) => base.join(c),
        None => file.parent().unwrap_or(base).to_path_buf(),
    };
    let mut opts = BuildOptions::new(work_dir.to_path_buf());
    opts.source_date_epoch = Some(epoch);
    opts.sandbox = sandbox.clone();
    opts.cache = cache;
    opts.compression = image.compression();
    apply_steps(image, rootfs, &text, &context, &opts, reporter)
}

/// Which stages up to `target` the target depends on (through FROM or
/// `COPY --from`), as BuildKit skips the others. A reference that still
/// holds a `$` (a stage ARG) conservatively needs every earlier stage.
fn needed_stages(stages: &Stages, target: usize, global: &HashMap<String, String>) -> Vec<bool> {
    let mut needed = vec![false; target + 1];
    needed[target] = true;
    for i in (0..=target).rev() {
        if !needed[i] {
            continue;
        }
        let stage = &stages.stages[i];
        let base = stages
            .expand_base(stage, global)
            .map(|(b, _)| b)
            .unwrap_or_else(|_| stage.base.clone());
        let copies = stage.commands.iter().flat_map(|c| match &c.instruction {
            Instruction::Copy { from: Some(f), .. } => vec![f.clone()],
            // `RUN --mount=…,from=stage`; a spec with `$` is resolved later,
            // so keep its raw text, which makes every earlier stage needed.
            Instruction::Run { mounts, .. } => mounts
                .iter()
                .filter_map(|m| match parse_mount(m) {
                    Ok(mount) => mount.from,
                    Err(_) => m.contains('$').then(|| m.clone()),
                })
                .collect(),
            _ => Vec::new(),
        });
        for reference in std::iter::once(base).chain(copies) {
            if reference.contains('$') {
                needed[..i].iter_mut().for_each(|n| *n = true);
                continue;
            }
            let lower = reference.to_ascii_lowercase();
            let by_name = stages.stages[..i]
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()));
            if let Some(j) = by_name.or_else(|| reference.parse::<usize>().ok().filter(|&j| j < i))
            {
                needed[j] = true;
            }
        }
    }
    needed
}

fn declares(command: &Command, name: &str) -> bool {
    matches!(&command.instruction, Instruction::Arg(pairs) if pairs.iter().any(|(k, _)| k == name))
}

fn stage_from_line(stage: &super::Stage, base: &str) -> String {
    match &stage.name {
        Some(n) => format!("FROM {base} AS {n}"),
        None => format!("FROM {base}"),
    }
}

fn host_platform() -> (&'static str, Option<&'static str>) {
    oci::oci_arch(std::env::consts::ARCH)
}

/// BuildKit's automatic platform ARGs (usable in FROM, and in a stage once
/// declared with a bare `ARG NAME`).
fn predefined_args() -> HashMap<String, String> {
    let (arch, variant) = host_platform();
    let platform = match variant {
        Some(v) => format!("linux/{arch}/{v}"),
        None => format!("linux/{arch}"),
    };
    let mut m = HashMap::new();
    for prefix in ["TARGET", "BUILD"] {
        m.insert(format!("{prefix}PLATFORM"), platform.clone());
        m.insert(format!("{prefix}OS"), "linux".to_string());
        m.insert(format!("{prefix}ARCH"), arch.to_string());
        m.insert(
            format!("{prefix}VARIANT"),
            variant.unwrap_or("").to_string(),
        );
    }
    m
}

/// The build context: a root (so symlinks in it resolve inside it) and its
/// `.dockerignore`.
struct Context {
    dir: PathBuf,
    root: Root,
    ignore: Option<DockerIgnore>,
}

impl Context {
    fn open(dir: &Path) -> Result<Context, BuildError> {
        let root = Root::open(dir).map_err(io_err(format!(
            "opening the build context {}",
            dir.display()
        )))?;
        let ignore =
            match root.read_file(&RelPath::from_archive(b".dockerignore").map_err(|e| {
                BuildError::Io {
                    context: ".dockerignore".into(),
                    source: std::io::Error::other(e.to_string()),
                }
            })?) {
                Ok(text) => Some(parse_dockerignore(&String::from_utf8_lossy(&text)).map_err(
                    |e| BuildError::Io {
                        context: format!("{}/.dockerignore", dir.display()),
                        source: std::io::Error::other(e.to_string()),
                    },
                )?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(BuildError::Io {
                        context: format!("{}/.dockerignore", dir.display()),
                        source: std::io::Error::other(e.to_string()),
                    })
                }
            };
        Ok(Context {
            dir: dir.to_path_buf(),
            root,
            ignore,
        })
    }
}

/// Where a step is, for messages.
struct StepAt {
    step: usize,
    line: usize,
    text: String,
}

impl StepAt {
    fn fail(&self, message: impl std::fmt::Display) -> BuildError {
        BuildError::Step {
            step: self.step,
            line: self.line,
            instruction: self.text.clone(),
            message: message.to_string(),
        }
    }
}

/// The per-stage state besides the image config.
struct StageState<'a> {
    image: &'a mut ImageBuilder,
    root: &'a Root,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, String>,
    /// CMD set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// Layers of `image` already applied to `root` (see [`materialize`]).
    applied: usize,
}

impl<'a> StageState<'a> {
    fn new(image: &'a mut ImageBuilder, root: &'a Root, applied: usize) -> Self {
        StageState {
            image,
            root,
            args: BTreeMap::new(),
            cmd_set: false,
            applied,
        }
    }

    fn config(&mut self) -> &mut oci::ContainerConfig {
        &mut self.image.config_mut().config
    }

    fn env_pairs(&self) -> Vec<(String, String)> {
        self.image
            .config()
            .config
            .env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What `$VAR` means in this stage: ARGs, overridden by ENV.
    fn lookup_map(&self) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = self.args.clone().into_iter().collect();
        m.extend(self.env_pairs());
        m
    }

    fn workdir(&self) -> String {
        self.image
            .config()
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    fn shell(&self) -> Vec<String> {
        let s = &self.image.config().config.shell;
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s.clone()
        }
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let env = &mut self.config().env;
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map(|(k, _)| k) == Some(key))
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
}

struct Runner<'a> {
    opts: &'a BuildOptions<'a>,
    reporter: &'a dyn Reporter,
    ctx: &'a Context,
    stages: &'a Stages,
    global: &'a HashMap<String, String>,
    done: Vec<Option<Finished>>,
    step: usize,
    fetcher: Option<(Fetcher, TempPath)>,
    /// Per-build directory for cache mounts when there is no cache dir.
    scratch: Option<TempPath>,
    /// Images pulled from registries in this build, by FROM reference, so
    /// the cache key and the stage read the same pull.
    pulled: std::cell::RefCell<HashMap<String, TempPath>>,
}

impl Runner<'_> {
    fn history(&self, created_by: String) -> History {
        History {
            created: self.opts.source_date_epoch.map(oci::format_timestamp),
            created_by: Some(created_by),
            comment: Some("rootstrap".into()),
            ..History::default()
        }
    }

    /// A directory under the work dir that also vanishes on Ctrl-C.
    fn temp_dir(&self, prefix: &str, at: &StepAt) -> Result<TempPath, BuildError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.opts.work_dir)
            .map_err(|e| {
                at.fail(format!(
                    "creating a directory in {}: {e}",
                    self.opts.work_dir.display()
                ))
            })?
            .keep();
        Ok(TempPath::new(dir))
    }

    fn new_rootfs(&self, at: &StepAt) -> Result<TempPath, BuildError> {
        let path = self.temp_dir(".rootstrap-stage-", at)?;
        std::fs::set_permissions(
            path.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| at.fail(e))?;
        Ok(path)
    }

    /// An image source (and the name to pick in it) for FROM / COPY --from
    /// that is not a stage. The local image store comes first.
    fn image_source(
        &self,
        base: &str,
        at: &StepAt,
    ) -> Result<(ImageSource, Option<String>), BuildError> {
        if crate::image::read::TRANSPORTS
            .iter()
            .any(|t| base.starts_with(t))
        {
            return ImageSource::parse_named(base).map_err(|e| at.fail(e));
        }
        if let Some(store) = self
            .opts
            .store
            .as_ref()
            .filter(|_| !base.starts_with("recipe:"))
        {
            if let Some(found) = store.lookup(base).map_err(|e| at.fail(e))? {
                return Ok(found);
            }
        }
        let recipe = match base.strip_prefix("recipe:") {
            Some(name) => Some(PathBuf::from(name)),
            // A recipe file: relative to the context when it is there.
            None if base.ends_with(".toml") => {
                let in_context = self.ctx.dir.join(base);
                Some(if Path::new(base).is_relative() && in_context.exists() {
                    in_context
                } else {
                    PathBuf::from(base)
                })
            }
            None => None,
        };
        if let Some(recipe) = recipe {
            let Some(build_recipe) = self.opts.recipe_base else {
                return Err(at.fail("FROM a recipe is not available here"));
            };
            let dir = build_recipe(&recipe)
                .map_err(|e| at.fail(format!("building recipe {base}: {e}")))?;
            return Ok((ImageSource::OciDir(dir), None));
        }
        // Anything else is a registry reference, Docker Hub when no host is
        // named (`debian:bookworm` = docker.io/library/debian:bookworm).
        let mut reference = ImageReference::parse(base).map_err(|e| {
            at.fail(format!(
                "{e}; FROM takes an image built here with -t, HOST[:PORT]/NAME[:TAG], a recipe \
                 (recipe:NAME or a .toml file), oci:DIR, oci-archive:FILE, docker-archive:FILE, an earlier stage \
                 or scratch"
            ))
        })?;
        if reference.registry.is_none() {
            reference.registry = Some("docker.io".into());
            if !reference.repository.contains('/') {
                reference.repository = format!("library/{}", reference.repository);
            }
        }
        self.pull(base, &reference, at)
    }

    /// `FROM host[:port]/name:tag`: pulled once per build into the work dir.
    fn pull(
        &self,
        base: &str,
        reference: &ImageReference,
        at: &StepAt,
    ) -> Result<(ImageSource, Option<String>), BuildError> {
        if let Some(dir) = self.pulled.borrow().get(base) {
            return Ok((ImageSource::OciDir(dir.path().join("oci")), None));
        }
        let tmp = self.temp_dir(".rootstrap-pull-", at)?;
        let dest = tmp.path().join("oci");
        self.reporter.stage(&format!("pull {base}"));
        let (arch, _) = host_platform();
        crate::image::registry::pull(
            reference,
            (arch, "linux"),
            &crate::image::registry::PushOptions::default(),
            &dest,
            self.reporter,
        )
        .map_err(|e| {
            at.fail(format!(
                "{base} is not in the local image store (see `rootstrap images`), and pulling it \
                 from its registry failed: {e}"
            ))
        })?;
        self.pulled.borrow_mut().insert(base.to_owned(), tmp);
        Ok((ImageSource::OciDir(dest), None))
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .stages
            .iter()
            .take(self.done.len())
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|&i| i < self.done.len()))
    }

    /// The image and rootfs a stage starts from.
    fn open_base(&mut self, base: &str, at: &StepAt) -> Result<Finished, BuildError> {
        let rootfs = self.new_rootfs(at)?;
        if base.eq_ignore_ascii_case("scratch") {
            let (arch, variant) = host_platform();
            let mut config = ImageConfig::new(arch, "linux");
            config.variant = variant.map(str::to_string);
            config.created = self.opts.source_date_epoch.map(oci::format_timestamp);
            config
                .config
                .env
                .push(format!("PATH={}", crate::rootfs::sandbox::DEFAULT_PATH));
            let image = ImageBuilder::new_in(&self.opts.work_dir, config, self.opts.compression)?;
            return Ok(Finished {
                image,
                rootfs,
                applied: 0,
            });
        }
        let (source, _tmp) = match self.stage_index(base) {
            Some(i) => {
                let tmp = self.temp_dir(".rootstrap-stage-image-", at)?;
                let dir = tmp.path().join("oci");
                let prev = self.done[i]
                    .as_ref()
                    .ok_or_else(|| at.fail("stage not available"))?;
                prev.image.write(&Output::OciDir(dir.clone()), None)?;
                ((ImageSource::OciDir(dir), None), Some(tmp))
            }
            None => (self.image_source(base, at)?, None),
        };
        let opened = OpenedImage::open(&source.0, source.1.as_deref()).map_err(|e| at.fail(e))?;
        let image = ImageBuilder::from_image(&self.opts.work_dir, &opened, self.opts.compression)?;
        // The files are unpacked when a step first needs them, so a build
        // whose steps all come from the cache never unpacks the base.
        Ok(Finished {
            image,
            rootfs,
            applied: 0,
        })
    }

    /// ONBUILD triggers of the base run first, then are dropped from the
    /// config (they fire once, in the direct child).
    fn trigger_onbuild(&mut self, state: &mut StageState<'_>) -> Result<(), BuildError> {
        let triggers = std::mem::take(&mut state.config().on_build);
        for trigger in triggers {
            self.step += 1;
            let file = parse(&format!("FROM scratch\n{trigger}"))?;
            let stages = parse_instructions(&file)?;
            for command in stages.stages.iter().flat_map(|s| &s.commands) {
                self.execute(state, command)?;
            }
        }
        Ok(())
    }

    fn execute(&mut self, state: &mut StageState<'_>, command: &Command) -> Result<(), BuildError> {
        let shown = redact(&command.original);
        self.reporter.info(&format!("#{} {shown}", self.step));
        let at = StepAt {
            step: self.step,
            line: command.start_line,
            text: shown.clone(),
        };
        let env = state.lookup_map();
        let lookup = |n: &str| env.get(n).cloned();
        let instruction = command.expand(&lookup, self.stages.escape)?;
        match &instruction {
            Instruction::Run { .. } => {
                let instruction = expand_mounts(&instruction, &lookup, self.stages.escape)
                    .map_err(|e| at.fail(e))?;
                // As Docker records it: the shell spelled out.
                let created_by = match instruction.run_command() {
                    Some(RunCommand::Shell(line)) => {
                        redact(&format!("RUN {} {line}", state.shell().join(" ")))
                    }
                    _ => shown,
                };
                let inputs = self.run_inputs(&instruction, &at);
                let key = self.cache_key(state, &instruction, inputs)?;
                self.with_layer(state, &at, created_by, key, |r, s| {
                    r.run(s, &instruction, &at)
                })
            }
            Instruction::Copy { parents: true, .. } => {
                Err(at.fail("COPY --parents is not supported"))
            }
            Instruction::Copy { spec, .. } | Instruction::Add { spec, .. }
                if !spec.exclude.is_empty() =>
            {
                Err(at.fail("--exclude is not supported"))
            }
            Instruction::Copy { spec, from, .. } => {
                let inputs = self.copy_inputs(spec, from.as_deref(), None, &at);
                let key = self.cache_key(state, &instruction, inputs)?;
                self.with_layer(state, &at, shown, key, |r, s| {
                    r.copy(s, spec, from.as_deref(), None, &at)
                })
            }
            Instruction::Add {
                spec,
                checksum,
                unpack,
                ..
            } => {
                let inputs = self.copy_inputs(spec, None, Some(checksum.as_deref()), &at);
                let key = self.cache_key(state, &instruction, inputs)?;
                self.with_layer(state, &at, shown, key, |r, s| {
                    r.copy(s, spec, None, Some((checksum.as_deref(), *unpack)), &at)
                })
            }
            Instruction::Workdir(dir) => {
                let dir = join_container_path(&state.workdir(), dir);
                state.config().working_dir = Some(dir.clone());
                let key = self.cache_key(state, &instruction, Some(String::new()))?;
                self.with_layer(state, &at, shown, key, |_, s| make_workdir(s, &dir, &at))
            }
            Instruction::Arg(pairs) => {
                for (name, default) in pairs {
                    let value = self
                        .opts
                        .build_args
                        .get(name)
                        .cloned()
                        .or_else(|| default.clone())
                        .or_else(|| self.global.get(name).cloned());
                    if let Some(v) = value {
                        state.args.insert(name.clone(), v);
                    }
                }
                Ok(())
            }
            other => {
                apply_metadata(state, other, &at)?;
                let history = self.history(shown);
                state.image.add_empty_history(history);
                Ok(())
            }
        }
    }

    /// The step-cache key of a file-changing step, or `None` when there is
    /// no cache or the step cannot be cached (`extra` is `None`: its inputs
    /// are not known before it runs). `extra` digests what the step reads
    /// besides the image: copied files, the source stage.
    fn cache_key(
        &self,
        state: &StageState<'_>,
        instruction: &Instruction,
        extra: Option<String>,
    ) -> Result<Option<String>, BuildError> {
        let (Some(_), Some(extra)) = (&self.opts.cache, extra) else {
            return Ok(None);
        };
        // The config holds the parent layers (diff_ids), env, user, workdir,
        // shell and platform: everything of the image a step can see.
        let config = oci::canonical_json(&state.image.final_config())?;
        // Build args reach only RUN (as its environment); elsewhere they
        // already are in the expanded instruction.
        let args: String = match instruction {
            Instruction::Run { .. } => state
                .args
                .iter()
                .map(|(k, v)| format!("{k}={v}\0"))
                .collect(),
            _ => String::new(),
        };
        let settings = format!(
            "{:?} {:?}",
            self.opts.compression, self.opts.source_date_epoch
        );
        Ok(Some(step_key(&[
            &config,
            format!("{instruction:?}").as_bytes(),
            args.as_bytes(),
            extra.as_bytes(),
            settings.as_bytes(),
        ])))
    }

    /// What COPY/ADD reads, as a digest for the cache key; `None` when it
    /// cannot be known up front (an ADD of a URL without --checksum, a
    /// source that does not exist: the step then runs and reports it).
    fn copy_inputs(
        &mut self,
        spec: &CopySpec,
        from: Option<&str>,
        add_checksum: Option<Option<&str>>,
        at: &StepAt,
    ) -> Option<String> {
        self.opts.cache.as_ref()?;
        let urls = spec.srcs.iter().any(|s| is_url(s));
        if urls && add_checksum.is_some_and(|c| c.is_none()) {
            return None;
        }
        let Some(name) = from else {
            let mut paths = Vec::new();
            for src in spec.srcs.iter().filter(|s| !is_url(s)) {
                paths.extend(
                    copy::expand_source(&self.ctx.root, src, self.ctx.ignore.as_ref()).ok()?,
                );
            }
            let digest = digest_sources(&self.ctx.root, &paths, self.ctx.ignore.as_ref()).ok()?;
            return Some(format!("context:{digest}"));
        };
        self.other_image_inputs(name, at)
    }

    /// What RUN reads besides the image: the sources of its bind mounts
    /// (cache, tmpfs and secret mounts do not count, as in BuildKit).
    fn run_inputs(&mut self, instruction: &Instruction, at: &StepAt) -> Option<String> {
        self.opts.cache.as_ref()?;
        let Instruction::Run { mounts, .. } = instruction else {
            return Some(String::new());
        };
        let mut inputs = String::new();
        for raw in mounts {
            let mount = parse_mount(raw).ok()?;
            if mount.kind != MountType::Bind {
                continue;
            }
            let part = match mount.from.as_deref() {
                Some(name) => self.other_image_inputs(name, at)?,
                None => {
                    let src = mount.source.as_deref().unwrap_or("/");
                    let rel = context_rel(src).ok()?;
                    let resolved = copy::resolve_in_root(&self.ctx.root, &rel).ok()?;
                    let ignore = self.ctx.ignore.as_ref();
                    format!(
                        "context:{}",
                        digest_sources(&self.ctx.root, &[resolved], ignore).ok()?
                    )
                }
            };
            inputs.push_str(&part);
            inputs.push('\0');
        }
        Some(inputs)
    }

    /// A stage's or image's identity for the cache key: its config, which
    /// names its layers.
    fn other_image_inputs(&mut self, name: &str, at: &StepAt) -> Option<String> {
        let config = match self.stage_index(name) {
            Some(i) => self.done[i].as_ref()?.image.final_config(),
            None => {
                let (source, pick) = self.image_source(name, at).ok()?;
                OpenedImage::open(&source, pick.as_deref()).ok()?.config
            }
        };
        let bytes = oci::canonical_json(&config).ok()?;
        Some(format!("from:{}", Sha256Digest::of(&bytes)))
    }

    /// Runs a file-changing step between two snapshots and records the
    /// difference as a layer (or an empty history entry if nothing changed).
    /// With a cache `key`, a recorded outcome is reused instead, and a fresh
    /// one is recorded.
    fn with_layer(
        &mut self,
        state: &mut StageState<'_>,
        at: &StepAt,
        created_by: String,
        key: Option<String>,
        step: impl FnOnce(&mut Self, &mut StageState<'_>) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let history = self.history(created_by);
        if let (Some(cache), Some(key)) = (&self.opts.cache, &key) {
            if let Some(entry) = cache.get(key) {
                if reuse(state, cache, &entry, history.clone()) {
                    self.reporter.info(&format!("#{} CACHED", self.step));
                    return Ok(());
                }
            }
        }
        materialize(
            &self.opts.work_dir,
            state.image,
            state.root,
            &mut state.applied,
        )
        .map_err(|e| at.fail(format!("applying cached layers: {e}")))?;
        let dir = state.root.path().to_path_buf();
        let before = snapshot(&dir).map_err(|e| at.fail(format!("scanning the rootfs: {e}")))?;
        step(self, state)?;
        let after = snapshot(&dir).map_err(|e| at.fail(format!("scanning the rootfs: {e}")))?;
        let changes = diff(&before, &after);
        if changes.is_empty() {
            state.image.add_empty_history(history);
            self.remember(key.as_deref(), StepEntry { layer: None }, None);
            return Ok(());
        }
        let epoch = self.opts.source_date_epoch;
        let root = state.root;
        let layer = state
            .image
            .add_layer_with(history, |w| write_diff(root, &after, &changes, epoch, w))?;
        let entry = StepEntry {
            layer: Some(CachedLayer {
                digest: layer.descriptor.digest.clone(),
                diff_id: layer.diff_id.to_string(),
                uncompressed_size: layer.uncompressed_size.unwrap_or(0),
            }),
        };
        let blob = layer.path().to_path_buf();
        // The rootfs already holds what the new layer records.
        state.applied = state.image.layers().len();
        self.remember(key.as_deref(), entry, Some(&blob));
        Ok(())
    }

    /// Records a step's outcome; a cache that cannot be written only costs
    /// a warning.
    fn remember(&self, key: Option<&str>, entry: StepEntry, blob: Option<&Path>) {
        if let (Some(cache), Some(key)) = (&self.opts.cache, key) {
            if let Err(e) = cache.put(key, &entry, blob) {
                self.reporter.warn(&format!(
                    "step #{}: cannot write the step cache in {}: {e}",
                    self.step,
                    cache.dir().display()
                ));
            }
        }
    }

    fn run(
        &mut self,
        state: &mut StageState<'_>,
        instruction: &Instruction,
        at: &StepAt,
    ) -> Result<(), BuildError> {
        let Instruction::Run {
            mounts,
            network,
            security,
            ..
        } = instruction
        else {
            return Ok(());
        };
        if security.as_deref().is_some_and(|s| s != "sandbox") {
            return Err(at.fail("RUN --security=insecure is not supported"));
        }
        let network = match network.as_deref() {
            None | Some("default") | Some("host") => Network::Host,
            Some("none") => Network::None,
            Some(other) => return Err(at.fail(format!("unknown --network={other}"))),
        };
        let mut script_path = None;
        let argv = match instruction.run_command() {
            Some(RunCommand::Exec(args)) => args,
            Some(RunCommand::Shell(line)) => {
                let mut argv = state.shell();
                argv.push(line);
                argv
            }
            Some(RunCommand::Script { content, .. }) if content.starts_with("#!") => {
                let rel = RelPath::from_archive(format!(".rootstrap-run-{}", self.step).as_bytes())
                    .map_err(|e| at.fail(e))?;
                state
                    .root
                    .write_file(&rel, content.as_bytes(), 0o755)
                    .map_err(|e| at.fail(e))?;
                script_path = Some(rel.clone());
                vec![String::from_utf8_lossy(&rel.to_absolute()).into_owned()]
            }
            Some(RunCommand::Script { content, .. }) => {
                let mut argv = state.shell();
                argv.push(content);
                argv
            }
            None => Vec::new(),
        };
        if argv.is_empty() {
            return Err(at.fail("empty command"));
        }
        let mut env: Vec<(String, String)> = state.args.clone().into_iter().collect();
        for (k, v) in state.env_pairs() {
            env.retain(|(existing, _)| *existing != k);
            env.push((k, v));
        }
        let cwd = state.workdir();
        let rel_cwd = RelPath::from_container_path(cwd.as_bytes()).map_err(|e| at.fail(e))?;
        if !state.root.is_dir(&rel_cwd) {
            state
                .root
                .mkdir_all(&rel_cwd, 0o755)
                .map_err(|e| at.fail(e))?;
        }
        let user = match state
            .image
            .config()
            .config
            .user
            .clone()
            .filter(|u| !u.is_empty())
        {
            Some(u) => Some(lookup_user(state.root.path(), &u).map_err(|e| at.fail(e))?),
            None => None,
        };
        let prepared = self.prepare_mounts(state, mounts, at)?;
        for (k, v) in &prepared.env {
            env.retain(|(existing, _)| existing != k);
            env.push((k.clone(), v.clone()));
        }
        let mut spec = RunSpec::new(state.root.path(), argv);
        spec.env = env;
        spec.extra_mounts = prepared.read_only.clone();
        spec.writable_mounts = prepared.writable.clone();
        spec.tmpfs_mounts = prepared.tmpfs.clone();
        // The step's tree becomes a layer, so its syncs are only waiting;
        // a cache mount's contents outlive the build, so they keep theirs.
        spec.suppress_sync = prepared.writable.is_empty();
        spec.cwd = cwd;
        spec.user = user;
        spec.network = network;
        let step = self.step;
        let reporter = self.reporter;
        let result = self.opts.sandbox.run(&spec, &mut |line| {
            reporter.command_output(&format!("#{step} {}", line.text));
        });
        drop(prepared);
        if let Some(rel) = script_path {
            state.root.remove(&rel).map_err(|e| at.fail(e))?;
        }
        let status = result.map_err(|e| at.fail(e))?;
        if !status.success() {
            return Err(BuildError::RunFailed {
                step: at.step,
                line: at.line,
                instruction: at.text.clone(),
                status,
            });
        }
        Ok(())
    }

    /// Turns `RUN --mount` specs into what the sandbox mounts. Nothing
    /// mounted is part of the rootfs, so none of it lands in the layer.
    fn prepare_mounts(
        &mut self,
        state: &StageState<'_>,
        mounts: &[String],
        at: &StepAt,
    ) -> Result<PreparedMounts, BuildError> {
        let mut prepared = PreparedMounts::default();
        let workdir = state.workdir();
        for raw in mounts {
            let fail = |e: &dyn std::fmt::Display| at.fail(format!("--mount={raw}: {e}"));
            let m = parse_mount(raw).map_err(|e| fail(&e))?;
            let target = m
                .target
                .as_deref()
                .map(|t| join_container_path(&workdir, t));
            let need_target = || target.clone().ok_or_else(|| fail(&"a target is required"));
            match m.kind {
                MountType::Cache => {
                    let target = need_target()?;
                    if m.from.is_some() {
                        return Err(fail(&"cache mounts seeded from= are not supported"));
                    }
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self.cache_mount_dir(&id, &m, at)?;
                    if matches!(
                        m.sharing,
                        Some(CacheSharing::Locked | CacheSharing::Private)
                    ) {
                        prepared.locks.push(lock_file(&dir).map_err(|e| fail(&e))?);
                    }
                    let source = match m.source.as_deref() {
                        Some(sub) => cache_subdir(&dir, sub).map_err(|e| fail(&e))?,
                        None => dir,
                    };
                    let mount = BindMount { source, target };
                    if m.read_only {
                        prepared.read_only.push(mount);
                    } else {
                        prepared.writable.push(mount);
                    }
                }
                MountType::Tmpfs => prepared.tmpfs.push(TmpfsMount {
                    target: need_target()?,
                    size: m.size,
                }),
                MountType::Bind => {
                    let target = need_target()?;
                    let source = self.bind_source(&m, &mut prepared, at)?;
                    let mount = BindMount { source, target };
                    if m.read_only {
                        prepared.read_only.push(mount);
                    } else {
                        prepared.writable.push(mount);
                    }
                }
                MountType::Secret => self.mount_secret(&m, target, &mut prepared, at)?,
                MountType::Ssh => return Err(fail(&"ssh mounts are not supported")),
            }
        }
        Ok(prepared)
    }

    /// The persistent directory of a cache mount, created on first use with
    /// the mount's mode and owner.
    fn cache_mount_dir(&mut self, id: &str, m: &Mount, at: &StepAt) -> Result<PathBuf, BuildError> {
        let base = match &self.opts.mount_cache_dir {
            Some(dir) => dir.clone(),
            None => {
                if self.scratch.is_none() {
                    self.scratch = Some(self.temp_dir(".rootstrap-mounts-", at)?);
                }
                match &self.scratch {
                    Some(t) => t.path().to_path_buf(),
                    None => return Err(at.fail("no scratch directory")),
                }
            }
        };
        let name = Sha256Digest::of(id.as_bytes()).to_hex();
        let dir = base.join(&name[..32]);
        if dir.is_dir() {
            return Ok(dir);
        }
        let fail =
            |e: std::io::Error| at.fail(format!("cache mount {id:?} in {}: {e}", base.display()));
        std::fs::create_dir_all(&base).map_err(fail)?;
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&base)
            .map_err(fail)?;
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(m.mode.unwrap_or(0o755)),
        )
        .map_err(fail)?;
        if m.uid.is_some() || m.gid.is_some() {
            std::os::unix::fs::chown(tmp.path(), m.uid, m.gid).map_err(fail)?;
        }
        let made = tmp.keep();
        // Another build may have created it meanwhile: theirs wins.
        if std::fs::rename(&made, &dir).is_err() {
            let _ = std::fs::remove_dir(&made);
        }
        Ok(dir)
    }

    /// The host path a bind mount shows: the source inside the context, a
    /// stage or an image, with symlinks resolved inside that root. A
    /// writable mount, or a context with a .dockerignore, gets a copy (what
    /// the command writes is discarded, ignored files stay hidden).
    fn bind_source(
        &mut self,
        m: &Mount,
        prepared: &mut PreparedMounts,
        at: &StepAt,
    ) -> Result<PathBuf, BuildError> {
        let src = m.source.as_deref().unwrap_or("/");
        let fail = |e: &dyn std::fmt::Display| at.fail(format!("bind mount source {src:?}: {e}"));
        let (root_dir, ignore) = match m.from.as_deref() {
            None => (self.ctx.dir.clone(), self.ctx.ignore.clone()),
            Some(name) => {
                let work_dir = self.opts.work_dir.clone();
                let mut finished = match self.stage_index(name) {
                    Some(i) => self.done.get_mut(i).and_then(Option::take),
                    None => Some(self.open_base(name, at)?),
                };
                let Some(f) = finished.as_mut() else {
                    return Err(fail(&format!("stage {name} is not available")));
                };
                let root = Root::open(f.rootfs.path()).map_err(|e| fail(&e))?;
                materialize(&work_dir, &f.image, &root, &mut f.applied).map_err(|e| fail(&e))?;
                let dir = f.rootfs.path().to_path_buf();
                // A stage goes back where it was; an image lives as long as the run.
                match self.stage_index(name) {
                    Some(i) => self.done[i] = finished,
                    None => prepared.images.extend(finished),
                }
                (dir, None)
            }
        };
        let root_dir = std::fs::canonicalize(&root_dir).map_err(|e| fail(&e))?;
        let root = Root::open(&root_dir).map_err(|e| fail(&e))?;
        let rel = context_rel(src).map_err(|e| fail(&e))?;
        let resolved = copy::resolve_in_root(&root, &rel).map_err(|e| fail(&e))?;
        if root.lstat(&resolved).map_err(|e| fail(&e))?.is_none() {
            return Err(fail(&"not found"));
        }
        if m.read_only && ignore.is_none() {
            use std::os::unix::ffi::OsStrExt;
            return Ok(root_dir.join(std::ffi::OsStr::from_bytes(resolved.as_bytes())));
        }
        let tmp = self.temp_dir(".rootstrap-bind-", at)?;
        let copy_root = Root::open(tmp.path()).map_err(|e| fail(&e))?;
        let data = RelPath::from_archive(b"data").map_err(|e| fail(&e))?;
        let opts = CopyOptions {
            owner: None,
            chmod: None,
            epoch: None,
            ignore: ignore.as_ref(),
        };
        copy::copy_path(&root, &resolved, &copy_root, &data, &opts).map_err(|e| fail(&e))?;
        let path = tmp.path().join("data");
        prepared.temps.push(tmp);
        Ok(path)
    }

    /// `type=secret`: the `--secret` value as a read-only file at the target
    /// (default /run/secrets/<id>) and/or an environment variable.
    fn mount_secret(
        &mut self,
        m: &Mount,
        target: Option<String>,
        prepared: &mut PreparedMounts,
        at: &StepAt,
    ) -> Result<(), BuildError> {
        let id = m.id.clone().or_else(|| {
            target
                .as_deref()
                .and_then(|t| t.rsplit('/').find(|s| !s.is_empty()))
                .map(str::to_string)
        });
        let Some(id) = id else {
            return Err(at.fail("secret mount without an id"));
        };
        let Some(data) = self.opts.secrets.get(&id) else {
            if m.required {
                return Err(at.fail(format!(
                    "secret {id:?} is required but was not given (--secret id={id},src=FILE)"
                )));
            }
            return Ok(());
        };
        if let Some(var) = &m.env {
            prepared
                .env
                .push((var.clone(), String::from_utf8_lossy(data).into_owned()));
            if target.is_none() {
                return Ok(());
            }
        }
        let tmp = self.temp_dir(".rootstrap-secret-", at)?;
        let file = tmp.path().join("secret");
        let fail = |e: std::io::Error| at.fail(format!("secret {id:?}: {e}"));
        std::fs::write(&file, data).map_err(fail)?;
        std::fs::set_permissions(
            &file,
            std::os::unix::fs::PermissionsExt::from_mode(m.mode.unwrap_or(0o400)),
        )
        .map_err(fail)?;
        if m.uid.is_some() || m.gid.is_some() {
            std::os::unix::fs::chown(&file, m.uid, m.gid).map_err(fail)?;
        }
        prepared.read_only.push(BindMount {
            source: file,
            target: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
        });
        prepared.temps.push(tmp);
        Ok(())
    }

    /// COPY (`add` = None) and ADD (`add` = Some((checksum, unpack))).
    fn copy(
        &mut self,
        state: &mut StageState<'_>,
        spec: &CopySpec,
        from: Option<&str>,
        add: Option<(Option<&str>, Option<bool>)>,
        at: &StepAt,
    ) -> Result<(), BuildError> {
        let owner = match spec.chown.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => {
                let (uid, gid, _) = lookup_user(state.root.path(), c).map_err(|e| at.fail(e))?;
                (uid, gid)
            }
            None => (0, 0),
        };
        let chmod = match spec.chmod.as_deref() {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| at.fail(format!("invalid --chmod={m}: expected octal")))?,
            ),
            None => None,
        };
        // A temporary root for `--from=<image>`; kept alive while copying.
        let mut other_image: Option<Finished> = None;
        let other_root;
        let (source, ignore): (&Root, Option<&DockerIgnore>) = match from {
            None => (&self.ctx.root, self.ctx.ignore.as_ref()),
            Some(name) => {
                let work_dir = &self.opts.work_dir;
                let bring_up_to_date = |f: &mut Finished| {
                    let root = Root::open(f.rootfs.path()).map_err(|e| at.fail(e))?;
                    materialize(work_dir, &f.image, &root, &mut f.applied)
                        .map_err(|e| at.fail(format!("--from={name}: {e}")))?;
                    Ok::<_, BuildError>(f.rootfs.path().to_path_buf())
                };
                let dir = match self.stage_index(name) {
                    Some(i) => match self.done.get_mut(i) {
                        Some(Some(f)) => bring_up_to_date(f)?,
                        _ => return Err(at.fail("stage not available")),
                    },
                    None => {
                        let mut f = self.open_base(name, at)?;
                        let p = bring_up_to_date(&mut f)?;
                        other_image = Some(f);
                        p
                    }
                };
                other_root = Root::open(&dir).map_err(|e| at.fail(e))?;
                (&other_root, None)
            }
        };
        let workdir = state.workdir();
        let dst_text = join_container_path(&workdir, &spec.dst);
        let dst =
            RelPath::from_container_path(dst_text.as_bytes()).unwrap_or_else(|_| RelPath::root());
        let count = spec.srcs.len() + spec.inline.len();
        let dst_is_dir = spec.dst.ends_with('/')
            || spec.dst.ends_with("/.")
            || spec.dst == "."
            || count > 1
            || state.root.is_dir(&dst);
        let epoch = self.opts.source_date_epoch;
        let opts = CopyOptions {
            owner: Some(owner),
            chmod,
            epoch,
            ignore,
        };
        let mut paths = Vec::new();
        for src in &spec.srcs {
            if add.is_some() && is_url(src) {
                continue;
            }
            let found = copy::expand_source(source, src, ignore).map_err(|e| at.fail(e))?;
            if found.len() > 1 && !dst_is_dir {
                return Err(at.fail("several sources need a destination directory ending in /"));
            }
            paths.extend(found);
        }
        if let Some(ignore) = ignore {
            if let Some(p) = paths.iter().find(|p| {
                !p.is_root() && ignore.is_excluded(&String::from_utf8_lossy(p.as_bytes()))
            }) {
                return Err(at.fail(format!("{p}: excluded by .dockerignore")));
            }
        }
        let into = |name: &[u8]| -> Result<RelPath, BuildError> {
            if dst_is_dir {
                dst.join(name).map_err(|e| at.fail(e))
            } else {
                Ok(dst.clone())
            }
        };
        for src in &spec.srcs {
            if let (Some((checksum, _)), true) = (add, is_url(src)) {
                let data = self.fetch_url(src, checksum, at)?;
                let name = url_file_name(src);
                let target = into(name.as_bytes())?;
                let mtime = epoch.unwrap_or(0);
                copy::write_data(
                    state.root,
                    &target,
                    &data,
                    chmod.unwrap_or(0o600),
                    mtime,
                    &opts,
                )
                .map_err(|e| at.fail(e))?;
            }
        }
        for inline in &spec.inline {
            let target = into(inline.name.as_bytes())?;
            copy::write_data(
                state.root,
                &target,
                inline.data.as_bytes(),
                chmod.unwrap_or(0o644),
                epoch.unwrap_or(0),
                &opts,
            )
            .map_err(|e| at.fail(e))?;
        }
        for path in &paths {
            let meta = source.lstat(path).map_err(|e| at.fail(e))?;
            let kind = meta.map(|m| m.kind);
            if kind == Some(FileKind::File) && add.is_some_and(|(_, unpack)| unpack != Some(false))
            {
                if let Some(compression) = tar_archive(source, path).map_err(|e| at.fail(e))? {
                    // An archive always unpacks into the destination directory.
                    self.extract_into(state, source, path, compression, &dst, at)?;
                    continue;
                }
            }
            let target = if kind == Some(FileKind::Dir) {
                dst.clone()
            } else {
                into(path.file_name())?
            };
            copy::copy_path(source, path, state.root, &target, &opts).map_err(|e| at.fail(e))?;
        }
        drop(other_image);
        Ok(())
    }

    /// ADD of a local tar: extracted by the hostile-safe extractor into a
    /// fresh directory, then merged into the destination (owners kept).
    fn extract_into(
        &self,
        state: &mut StageState<'_>,
        source: &Root,
        path: &RelPath,
        compression: Compression,
        dst: &RelPath,
        at: &StepAt,
    ) -> Result<(), BuildError> {
        let file = source.open_read(path).map_err(|e| at.fail(e))?;
        let cap = add_decompression_cap(compression, &file).map_err(|e| at.fail(e))?;
        let reader = decompress::decoder(compression, std::io::BufReader::new(file), cap)
            .map_err(|e| at.fail(e))?;
        let mut xopts = ExtractOptions::new(String::from_utf8_lossy(path.as_bytes()).into_owned());
        xopts.mtime_clamp = self.opts.source_date_epoch;
        if dst.is_root() {
            // The classic `ADD rootfs.tar.gz /`: straight into the root,
            // keeping hard links.
            extract_tar(state.root, reader, &xopts, &|_, _| Ok(())).map_err(|e| at.fail(e))?;
            return Ok(());
        }
        let tmp = self.temp_dir(".rootstrap-add-", at)?;
        let tmp_root = Root::open(tmp.path()).map_err(|e| at.fail(e))?;
        extract_tar(&tmp_root, reader, &xopts, &|_, _| Ok(())).map_err(|e| at.fail(e))?;
        let opts = CopyOptions {
            owner: None,
            chmod: None,
            epoch: self.opts.source_date_epoch,
            ignore: None,
        };
        state.root.mkdir_all(dst, 0o755).map_err(|e| at.fail(e))?;
        copy::copy_path(&tmp_root, &RelPath::root(), state.root, dst, &opts)
            .map_err(|e: CopyError| at.fail(e))
    }

    fn fetch_url(
        &mut self,
        url: &str,
        checksum: Option<&str>,
        at: &StepAt,
    ) -> Result<Vec<u8>, BuildError> {
        if self.fetcher.is_none() {
            let dir = self.temp_dir(".rootstrap-fetch-", at)?;
            let cache = Cache::open(dir.path()).map_err(|e| at.fail(e))?;
            let fetcher = Fetcher::new(
                ClientConfig::default().with_env_proxies(),
                cache,
                crate::report::silent(),
                false,
            )
            .map_err(|e| at.fail(e))?;
            self.fetcher = Some((fetcher, dir));
        }
        let Some((fetcher, _)) = &self.fetcher else {
            return Err(at.fail("no HTTP client"));
        };
        let expected = checksum
            .map(|c| Sha256Digest::parse(c).map_err(|e| at.fail(format!("--checksum: {e}"))))
            .transpose()?;
        let data = fetcher
            .fetch_bytes(url, MAX_URL_BYTES)
            .map_err(|e| at.fail(e))?;
        if let Some(expected) = expected {
            let actual = Sha256Digest::of(&data);
            if actual != expected {
                return Err(at.fail(format!(
                    "{}: checksum mismatch: expected {expected}, got {actual}",
                    redact(url)
                )));
            }
        }
        Ok(data)
    }
}

/// What a RUN's `--mount`s need during the command.
#[derive(Default)]
struct PreparedMounts {
    read_only: Vec<BindMount>,
    writable: Vec<BindMount>,
    tmpfs: Vec<TmpfsMount>,
    env: Vec<(String, String)>,
    /// Copies and secret files, removed after the command.
    temps: Vec<TempPath>,
    /// Images bind-mounted from, kept until the command ends.
    images: Vec<Finished>,
    /// Held `sharing=locked` cache locks.
    locks: Vec<std::fs::File>,
}

/// An exclusive lock beside a cache mount directory, held while its file
/// lives.
fn lock_file(dir: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.with_extension("lock"))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(file)
}

/// `source=` of a cache mount: a directory inside the cache, created if
/// missing. Symlinks an earlier RUN left in the cache resolve inside it, so
/// the mount never shows a host path (CVE-2024-23651).
fn cache_subdir(dir: &Path, sub: &str) -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStrExt;
    let root = Root::open(dir).map_err(|e| e.to_string())?;
    let rel = context_rel(sub).map_err(|e| e.to_string())?;
    let resolved = copy::resolve_in_root(&root, &rel).map_err(|e| e.to_string())?;
    if !resolved.is_root() {
        root.mkdir_all(&resolved, 0o755)
            .map_err(|e| e.to_string())?;
    }
    Ok(dir.join(std::ffi::OsStr::from_bytes(resolved.as_bytes())))
}

/// A source path in the context or a stage (`/`, `.` and `` are the root).
fn context_rel(src: &str) -> Result<RelPath, crate::rootfs::safe::PathError> {
    RelPath::from_container_path(src.as_bytes()).or_else(|e| match e {
        crate::rootfs::safe::PathError::Empty => Ok(RelPath::root()),
        e => Err(e),
    })
}

/// RUN `--mount` values with the stage's ARGs and ENV substituted, as
/// BuildKit does before parsing them.
fn expand_mounts(
    instruction: &Instruction,
    lookup: EnvLookup<'_>,
    escape: char,
) -> Result<Instruction, String> {
    let mut out = instruction.clone();
    if let Instruction::Run { mounts, .. } = &mut out {
        for m in mounts.iter_mut() {
            *m = expand_word(m, lookup, escape).map_err(|e| format!("--mount={m}: {e}"))?;
        }
    }
    Ok(out)
}

/// Adds a cached step outcome to the image; false when the entry cannot be
/// used (a blob gone or corrupt), and the step must run.
fn reuse(
    state: &mut StageState<'_>,
    cache: &StepCache,
    entry: &StepEntry,
    history: History,
) -> bool {
    let Some(layer) = &entry.layer else {
        state.image.add_empty_history(history);
        return true;
    };
    let (Ok(digest), Ok(diff_id)) = (
        Sha256Digest::parse(&layer.digest),
        Sha256Digest::parse(&layer.diff_id),
    ) else {
        return false;
    };
    let blob = cache.blob(&layer.digest);
    let added =
        state
            .image
            .add_cached_layer(&blob, digest, diff_id, layer.uncompressed_size, history);
    if added.is_err() {
        // A corrupt blob: drop it so the fresh run stores a good one.
        let _ = std::fs::remove_file(&blob);
    }
    added.is_ok()
}

fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// The file name ADD gives a downloaded URL: the last path segment.
fn url_file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    after_host
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("index.html")
        .to_string()
}

/// Whether a context file is a tar archive (plain or gz/xz/zst), which ADD
/// unpacks; returns its compression.
/// How many bytes an ADD'ed archive may decompress to.
fn add_decompression_cap(compression: Compression, file: &std::fs::File) -> std::io::Result<u64> {
    if compression == Compression::None {
        return Ok(u64::MAX);
    }
    let compressed = file.metadata()?.len();
    Ok(compressed
        .saturating_mul(ADD_MAX_EXPANSION)
        .max(ADD_MIN_CAP))
}

fn tar_archive(root: &Root, path: &RelPath) -> std::io::Result<Option<Compression>> {
    let file = root
        .open_read(path)
        .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))?;
    let mut head = Vec::new();
    file.take(512).read_to_end(&mut head)?;
    let compression = Compression::from_magic(&head);
    let mut block = Vec::new();
    if compression == Compression::None {
        block = head;
    } else {
        let file = root
            .open_read(path)
            .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))?;
        let reader = decompress::decoder(compression, std::io::BufReader::new(file), 512)?;
        // A decoding error means it is not a compressed tar: copy it as is.
        let _ = reader.take(512).read_to_end(&mut block);
    }
    let is_tar = block.len() >= 263 && &block[257..262] == b"ustar";
    Ok(is_tar.then_some(compression))
}

/// WORKDIR and relative COPY destinations: `rel` against `base`, cleaned.
fn join_container_path(base: &str, rel: &str) -> String {
    let joined = if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if rel.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

fn make_workdir(state: &mut StageState<'_>, dir: &str, at: &StepAt) -> Result<(), BuildError> {
    let rel = RelPath::from_container_path(dir.as_bytes()).map_err(|e| at.fail(e))?;
    if rel.is_root() || state.root.is_dir(&rel) {
        return Ok(());
    }
    state.root.mkdir_all(&rel, 0o755).map_err(|e| at.fail(e))?;
    // BuildKit gives a new WORKDIR to the current USER.
    if let Some(user) = state
        .image
        .config()
        .config
        .user
        .clone()
        .filter(|u| !u.is_empty())
    {
        if rustix::process::geteuid().is_root() {
            let (uid, gid, _) = lookup_user(state.root.path(), &user).map_err(|e| at.fail(e))?;
            state
                .root
                .set_owner(&rel, uid, gid)
                .map_err(|e| at.fail(e))?;
        }
    }
    Ok(())
}

fn shell_or_exec(state: &StageState<'_>, cmd: &ShellOrExec) -> Vec<String> {
    match cmd {
        ShellOrExec::Exec(v) => v.clone(),
        ShellOrExec::Shell(s) => {
            let mut v = state.shell();
            v.push(s.clone());
            v
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// EXPOSE `80`, `53/udp`, `8000-8002/tcp` → config keys `80/tcp` ...
fn exposed_ports(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol in {spec:?}"));
    }
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid port {spec:?}"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(ports)?, parse(ports)?),
    };
    if hi < lo || hi - lo > 10_000 {
        return Err(format!("invalid port range {spec:?}"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Instructions that only edit the image config.
fn apply_metadata(
    state: &mut StageState<'_>,
    instruction: &Instruction,
    at: &StepAt,
) -> Result<(), BuildError> {
    match instruction {
        Instruction::Cmd(cmd) => {
            let v = shell_or_exec(state, cmd);
            state.config().cmd = Some(v);
            state.cmd_set = true;
        }
        Instruction::Entrypoint(cmd) => {
            let v = shell_or_exec(state, cmd);
            state.config().entrypoint = Some(v);
            if !state.cmd_set {
                state.config().cmd = None;
            }
        }
        Instruction::Env(pairs) => {
            for (k, v) in pairs {
                state.set_env(k, v);
            }
        }
        Instruction::Label(pairs) => {
            for (k, v) in pairs {
                state.config().labels.insert(k.clone(), v.clone());
            }
        }
        Instruction::Maintainer(m) => state.image.config_mut().author = Some(m.clone()),
        Instruction::Expose(ports) => {
            for p in ports {
                for key in exposed_ports(p).map_err(|e| at.fail(e))? {
                    state.config().exposed_ports.insert(key, oci::Empty {});
                }
            }
        }
        Instruction::Volume(vols) => {
            for v in vols {
                if v.is_empty() {
                    return Err(at.fail("VOLUME specified can not be an empty string"));
                }
                state.config().volumes.insert(v.clone(), oci::Empty {});
            }
        }
        Instruction::StopSignal(s) => state.config().stop_signal = Some(s.clone()),
        Instruction::User(u) => state.config().user = Some(u.clone()),
        Instruction::Shell(v) => state.config().shell = v.clone(),
        Instruction::OnBuild { expression, .. } => state.config().on_build.push(expression.clone()),
        Instruction::Healthcheck(Healthcheck::None) => {
            state.config().healthcheck = Some(oci::Healthcheck {
                test: vec!["NONE".into()],
                ..Default::default()
            });
        }
        Instruction::Healthcheck(Healthcheck::Cmd {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }) => {
            let test = match test {
                ShellOrExec::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                ShellOrExec::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.iter().cloned())
                    .collect(),
            };
            state.config().healthcheck = Some(oci::Healthcheck {
                test,
                interval: Some(nanos(interval.unwrap_or(Duration::from_secs(30)))),
                timeout: Some(nanos(timeout.unwrap_or(Duration::from_secs(30)))),
                start_period: start_period.map(nanos),
                start_interval: start_interval.map(nanos),
                retries: Some(i64::from(retries.unwrap_or(3))),
            });
        }
        other => return Err(at.fail(format!("{} cannot be used here", other.keyword()))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_join_and_clean() {
        assert_eq!(join_container_path("/", "app"), "/app");
        assert_eq!(join_container_path("/app", "src/../lib"), "/app/lib");
        assert_eq!(join_container_path("/app", "/x/"), "/x/");
        assert_eq!(join_container_path("/a", "../../.."), "/");
    }

    #[test]
    fn ports_are_normalised() {
        assert_eq!(exposed_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(exposed_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(exposed_ports("8000-8002").unwrap().len(), 3);
        assert!(exposed_ports("x").is_err());
        assert!(exposed_ports("80/foo").is_err());
    }

    #[test]
    fn url_names() {
        assert_eq!(url_file_name("https://u:p@h.example/a/b.tar?x=1"), "b.tar");
        assert_eq!(url_file_name("https://h.example/"), "index.html");
    }

    #[test]
    fn apply_steps_adds_layers_on_top_of_a_base() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        let ctx = tmp.path().join("ctx");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("f"), b"from context").unwrap();
        let mut image = ImageBuilder::new_in(
            tmp.path(),
            ImageConfig::new("amd64", "linux"),
            LayerCompression::Gzip,
        )
        .unwrap();
        image
            .add_layer_from_dir(&rootfs, &Default::default(), History::default())
            .unwrap();
        let opts = BuildOptions::new(tmp.path().to_path_buf());
        let silent = crate::report::Silent;
        let text = "ENV A=b\nCOPY f /etc/f\nLABEL x=$A\n";
        apply_steps(&mut image, &rootfs, text, &ctx, &opts, &silent).unwrap();
        assert_eq!(image.layers().len(), 2);
        assert_eq!(image.config().config.env, ["A=b"]);
        assert_eq!(
            image.config().config.labels.get("x").map(String::as_str),
            Some("b")
        );
        assert_eq!(
            std::fs::read(rootfs.join("etc/f")).unwrap(),
            b"from context"
        );
        let history: Vec<_> = image
            .config()
            .history
            .iter()
            .map(|h| h.empty_layer)
            .collect();
        assert_eq!(history, [false, true, false, true]);

        // ENTRYPOINT drops an inherited CMD, but not one set in the same stage.
        image.config_mut().config.cmd = Some(vec!["inherited".into()]);
        apply_steps(
            &mut image,
            &rootfs,
            "ENTRYPOINT [\"/e\"]\n",
            &ctx,
            &opts,
            &silent,
        )
        .unwrap();
        assert_eq!(image.config().config.cmd, None);
        let text = "CMD [\"c\"]\nENTRYPOINT /e\nHEALTHCHECK NONE\n";
        apply_steps(&mut image, &rootfs, text, &ctx, &opts, &silent).unwrap();
        let config = &image.config().config;
        assert_eq!(config.cmd.as_deref(), Some(&["c".to_string()][..]));
        assert_eq!(
            config.entrypoint.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".into(), "/e".into()][..])
        );
        assert_eq!(config.healthcheck.as_ref().unwrap().test, ["NONE"]);

        let err = apply_steps(
            &mut image,
            &rootfs,
            "ENV A=b\nFROM x\n",
            &ctx,
            &opts,
            &silent,
        )
        .unwrap_err();
        assert!(matches!(err, BuildError::FromInRecipe(2)), "{err}");
        let err = apply_steps(
            &mut image,
            &rootfs,
            "ENV A=b\nCOPY missing /x\n",
            &ctx,
            &opts,
            &silent,
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
