//! `rootstrap run`: what `docker run --rm` does, without a daemon — unpack
//! the image into a temporary root (through the safe rootfs API), then run
//! the command in the sandbox with the image's env, user and workdir.

use std::path::PathBuf;

use crate::cleanup::TempPath;
use crate::image::{unpack_layers, ImageError, ImageSource, OpenedImage};
use crate::rootfs::image_sink::RootSink;
use crate::rootfs::safe::Root;
use crate::rootfs::sandbox::{
    self, ExitStatus, Network, RunSpec, Sandbox, SandboxError, StdinMode,
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("cannot create a temporary root in {path}: {source}")]
    Temp {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the image has no Entrypoint or Cmd and no command was given")]
    NoCommand,
    #[error("invalid environment assignment {0:?}: expected KEY=VALUE")]
    Env(String),
    #[error(transparent)]
    Emulation(#[from] crate::rootfs::emulation::EmulationError),
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub no_network: bool,
    pub sandbox_helper: Option<PathBuf>,
    /// `--platform`: the image to take from a multi-platform image
    /// (default: this machine's).
    pub platform: Option<crate::image::oci::Platform>,
}

/// Unpacks `image` and runs the command; returns its exit status.
pub fn run(image: &str, opts: &RunOptions) -> Result<ExitStatus, RunError> {
    run_image(&ImageSource::parse(image)?, None, opts)
}

/// [`run`] for an image already located (`name` selects it in a layout
/// holding several, as the local store does).
pub fn run_image(
    source: &ImageSource,
    name: Option<&str>,
    opts: &RunOptions,
) -> Result<ExitStatus, RunError> {
    let opened = match &opts.platform {
        Some(platform) => OpenedImage::open_platform(source, name, platform)?,
        None => OpenedImage::open(source, name)?,
    };
    // A foreign image's programs need an interpreter; say so before
    // unpacking rather than fail with ENOEXEC.
    crate::rootfs::emulation::check(&opened.config.architecture)?;
    let tmp_parent = std::env::temp_dir();
    let dir = TempPath::new(tmp_parent.join(format!(".rootstrap-run-{}", std::process::id())));
    std::fs::create_dir(dir.path()).map_err(|source| RunError::Temp {
        path: tmp_parent.clone(),
        source,
    })?;
    let root = Root::open(dir.path()).map_err(|source| RunError::Temp {
        path: dir.path().to_owned(),
        source,
    })?;
    unpack_layers(&opened, &mut RootSink::new(&root))?;

    let cfg = &opened.config.config;
    let argv = match (&cfg.entrypoint, opts.command.is_empty()) {
        (Some(ep), false) => ep.iter().chain(&opts.command).cloned().collect(),
        (Some(ep), true) => ep.iter().chain(cfg.cmd.iter().flatten()).cloned().collect(),
        (None, false) => opts.command.clone(),
        (None, true) => cfg.cmd.clone().unwrap_or_default(),
    };
    if argv.is_empty() {
        return Err(RunError::NoCommand);
    }
    let mut env: Vec<(String, String)> = Vec::new();
    for kv in cfg.env.iter().chain(&opts.env) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| RunError::Env(kv.clone()))?;
        env.retain(|(existing, _)| existing != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    let mut spec = RunSpec::new(dir.path(), argv);
    spec.env = env;
    spec.cwd = opts
        .workdir
        .clone()
        .or_else(|| cfg.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if let Some(user) = opts
        .user
        .as_ref()
        .or(cfg.user.as_ref())
        .filter(|u| !u.is_empty())
    {
        let ids = sandbox::lookup_user(dir.path(), user)?;
        spec.user = Some(ids);
    }
    spec.network = if opts.no_network {
        Network::None
    } else {
        Network::Host
    };
    spec.stdin = StdinMode::Inherit;
    let sandbox = match &opts.sandbox_helper {
        Some(p) => Sandbox::with_helper(p),
        None => Sandbox::new(),
    };
    // A foreign image's programs: the emulated CPU that runs them fastest.
    let emulated_cpu = crate::rootfs::emulation::qemu_cpu::setting(&opened.config.architecture);
    Ok(sandbox.with_default_env(emulated_cpu).run_inherit(&spec)?)
}
