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
use std::path::{Path, PathBuf};

use super::{
    parse, parse_dockerignore, parse_instructions, Command, DockerIgnore, Instruction, RunCommand,
    Stages,
};
use crate::cleanup::TempPath;
use crate::distro::platform::Platform;
use crate::fetch::{redact, Fetcher};
use crate::image::oci::{self, History};
use crate::image::{ImageBuilder, LayerCompression};
use crate::report::Reporter;
use crate::rootfs::safe::{RelPath, Root};
use crate::rootfs::sandbox::Sandbox;

pub use super::step_cache::StepCache;

mod base;
mod cache;
mod copy_add;
mod error;
mod metadata;
mod run;
mod stages;

pub use error::{DockerfileError, PortError, StepError};
use metadata::*;
use run::*;
pub use stages::host_platform;
use stages::*;

/// Builds the base image of a `FROM some-recipe.toml` stage for the
/// stage's platform and returns the OCI layout directory it was written to.
/// Supplied by the caller so this module knows nothing about distributions.
pub type RecipeBase<'a> = &'a (dyn Fn(&Path, &Platform) -> Result<PathBuf, RecipeBaseError> + Sync);

/// Why the caller could not build a recipe base (its message is shown in
/// the FROM step's error).
pub type RecipeBaseError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
pub struct DockerfileBuildOptions<'a> {
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
    pub store: Option<crate::image::store::ImageStore>,
    /// Where `RUN --mount=type=cache` directories persist between builds
    /// (`None`: a directory that lives as long as the build).
    pub mount_cache_dir: Option<PathBuf>,
    /// `--secret id=…`: what `RUN --mount=type=secret,id=…` exposes.
    pub secrets: HashMap<String, Vec<u8>>,
    /// `--platform`: the platform built (BuildKit's TARGETPLATFORM), which
    /// a stage without `FROM --platform` takes; `None`: this machine's.
    pub platform: Option<Platform>,
    /// `--require-signed-by`: a base pulled from a registry must carry a
    /// valid signature by this key (images in the local store are the
    /// user's own builds and are not checked).
    pub require_signed_by: Option<p256::ecdsa::VerifyingKey>,
}

impl DockerfileBuildOptions<'_> {
    pub fn new(work_dir: PathBuf) -> Self {
        DockerfileBuildOptions {
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
            platform: None,
            require_signed_by: None,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DockerfileError {
    let context = context.into();
    move |source| DockerfileError::Io { context, source }
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
    pub fn materialize(&mut self) -> Result<&Path, DockerfileError> {
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
    /// The platform the stage is for (its config's architecture).
    platform: Platform,
}

/// Parses `text` and builds it with `context` as the build context.
pub fn build(
    text: &str,
    context: &Path,
    opts: &DockerfileBuildOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<Built, DockerfileError> {
    let file = parse(text)?;
    let stages = parse_instructions(&file)?;
    if stages.stages.is_empty() {
        return Err(DockerfileError::NoStage);
    }
    let target = match &opts.target {
        Some(t) => stages
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .or_else(|| t.parse::<usize>().ok().filter(|&i| i < stages.stages.len()))
            .ok_or_else(|| DockerfileError::UnknownTarget(t.clone()))?,
        None => stages.stages.len() - 1,
    };
    let ctx = Context::open(context)?;
    let target_platform = opts.platform.clone().unwrap_or_else(host_platform);
    let global = stages.global_arg_values(&opts.build_args, &predefined_args(&target_platform))?;
    let mut run = Runner::new(opts, reporter, &ctx, &stages, &global);
    let needed = needed_stages(&stages, target, &global);
    for (index, stage) in stages.stages.iter().enumerate().take(target + 1) {
        if !needed[index] {
            run.done.push(None);
            continue;
        }
        run.step += 1;
        let (base, platform) = stages.expand_base(stage, &global)?;
        reporter.info(&format!("#{} {}", run.step, stage_from_line(stage, &base)));
        let at = StepAt {
            step: run.step,
            line: stage.start_line,
            text: format!("FROM {base}"),
        };
        let platform = run.stage_platform(&base, platform.as_deref(), &at)?;
        let mut finished = run.open_base(&base, &platform, &at)?;
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
        return Err(DockerfileError::NoStage);
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
    opts: &DockerfileBuildOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<(), DockerfileError> {
    // The parser only accepts instructions inside a stage: give it one, and
    // shift line numbers back so messages name the user's lines.
    let file = parse(&format!("FROM scratch\n{dockerfile}")).map_err(|mut e| {
        e.line = e.line.saturating_sub(1);
        e.end_line = e.end_line.saturating_sub(1);
        e
    })?;
    let mut stages = parse_instructions(&file)?;
    if let Some(extra) = stages.stages.get(1) {
        return Err(DockerfileError::FromInRecipe(extra.start_line - 1));
    }
    for command in stages.stages.iter_mut().flat_map(|s| s.commands.iter_mut()) {
        command.start_line -= 1;
        command.end_line -= 1;
    }
    let ctx = Context::open(context)?;
    let target_platform = opts.platform.clone().unwrap_or_else(host_platform);
    let global = stages.global_arg_values(&opts.build_args, &predefined_args(&target_platform))?;
    let mut run = Runner::new(opts, reporter, &ctx, &stages, &global);
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
) -> Result<(), DockerfileError> {
    let base = recipe.path.parent().unwrap_or(Path::new("."));
    let file = base.join(dockerfile);
    let text =
        std::fs::read_to_string(&file).map_err(io_err(format!("reading {}", file.display())))?;
    let context = match recipe.build.as_ref().and_then(|b| b.context.as_ref()) {
        Some(c) => base.join(c),
        None => file.parent().unwrap_or(base).to_path_buf(),
    };
    let mut opts = DockerfileBuildOptions::new(work_dir.to_path_buf());
    opts.source_date_epoch = Some(epoch);
    opts.sandbox = sandbox.clone();
    opts.cache = cache;
    opts.compression = image.compression();
    // TARGET* name the recipe image's platform (`--platform` or its arch).
    let config = image.config();
    opts.platform = Some(Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
    });
    apply_steps(image, rootfs, &text, &context, &opts, reporter)
}

/// The build context: a root (so symlinks in it resolve inside it) and its
/// `.dockerignore`.
struct Context {
    dir: PathBuf,
    root: Root,
    ignore: Option<DockerIgnore>,
}

impl Context {
    fn open(dir: &Path) -> Result<Context, DockerfileError> {
        let root = Root::open(dir).map_err(io_err(format!(
            "opening the build context {}",
            dir.display()
        )))?;
        let name = RelPath::from_archive(b".dockerignore").expect("a plain file name");
        let path = || format!("{}/.dockerignore", dir.display());
        let ignore = match root.read_file(&name) {
            Ok(text) => Some(parse_dockerignore(&String::from_utf8_lossy(&text)).map_err(
                |source| DockerfileError::Dockerignore {
                    path: path(),
                    source: Box::new(source),
                },
            )?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(DockerfileError::Fs {
                    path: path(),
                    source: Box::new(source),
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
    fn fail(&self, source: impl Into<StepError>) -> DockerfileError {
        DockerfileError::Step {
            step: self.step,
            line: self.line,
            instruction: self.text.clone(),
            source: Box::new(source.into()),
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
    opts: &'a DockerfileBuildOptions<'a>,
    reporter: &'a dyn Reporter,
    ctx: &'a Context,
    stages: &'a Stages,
    global: &'a HashMap<String, String>,
    /// The platform built: that of stages without `FROM --platform` and of
    /// images named by `COPY --from` (as BuildKit's implicit stages).
    target: Platform,
    done: Vec<Option<Finished>>,
    step: usize,
    fetcher: Option<(Fetcher, TempPath)>,
    /// Per-build directory for cache mounts when there is no cache dir.
    scratch: Option<TempPath>,
    /// Images pulled from registries in this build, by FROM reference, so
    /// the cache key and the stage read the same pull.
    pulled: std::cell::RefCell<HashMap<String, TempPath>>,
}

impl<'a> Runner<'a> {
    fn new(
        opts: &'a DockerfileBuildOptions<'a>,
        reporter: &'a dyn Reporter,
        ctx: &'a Context,
        stages: &'a Stages,
        global: &'a HashMap<String, String>,
    ) -> Self {
        Runner {
            opts,
            reporter,
            ctx,
            stages,
            global,
            target: opts.platform.clone().unwrap_or_else(host_platform),
            done: Vec::new(),
            step: 0,
            fetcher: None,
            scratch: None,
            pulled: Default::default(),
        }
    }

    fn history(&self, created_by: String) -> History {
        History {
            created: self.opts.source_date_epoch.map(oci::format_timestamp),
            created_by: Some(created_by),
            comment: Some("rootstrap".into()),
            ..History::default()
        }
    }

    /// A directory under the work dir that also vanishes on Ctrl-C.
    fn temp_dir(&self, prefix: &str, at: &StepAt) -> Result<TempPath, DockerfileError> {
        crate::cleanup::creating(|| {
            let dir = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(&self.opts.work_dir)?;
            Ok(TempPath::new(dir.keep()))
        })
        .map_err(|e: std::io::Error| {
            at.fail(format!(
                "creating a directory in {}: {e}",
                self.opts.work_dir.display()
            ))
        })
    }

    fn execute(
        &mut self,
        state: &mut StageState<'_>,
        command: &Command,
    ) -> Result<(), DockerfileError> {
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
}

#[cfg(test)]
mod tests {
    use super::copy_add::url_file_name;
    use super::*;
    use crate::image::oci::ImageConfig;

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
    fn platform_args_name_the_target_and_this_machine() {
        let target = Platform::parse("linux/arm/v7").unwrap();
        let args = predefined_args(&target);
        assert_eq!(args["TARGETPLATFORM"], "linux/arm/v7");
        assert_eq!(args["TARGETOS"], "linux");
        assert_eq!(args["TARGETARCH"], "arm");
        assert_eq!(args["TARGETVARIANT"], "v7");
        let host = host_platform();
        assert_eq!(args["BUILDARCH"], host.architecture);
        assert_eq!(args["BUILDOS"], "linux");
        // arm64's one variant is left out, as BuildKit normalises it.
        let args = predefined_args(&Platform::parse("linux/arm64/v8").unwrap());
        assert_eq!(args["TARGETPLATFORM"], "linux/arm64");
        assert_eq!(args["TARGETVARIANT"], "");
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
        let opts = DockerfileBuildOptions::new(tmp.path().to_path_buf());
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
        assert!(matches!(err, DockerfileError::FromInRecipe(2)), "{err}");
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
