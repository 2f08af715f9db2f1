//! RUN: the command line, its environment and user, and its `--mount`s
//! (cache, tmpfs, bind, secret) turned into what the sandbox mounts.

use super::*;
use std::path::{Path, PathBuf};

use crate::cleanup::TempPath;
use crate::dockerfile::copy::{self, CopyOptions};
use crate::dockerfile::mounts::{CacheSharing, Mount, MountType};
use crate::dockerfile::{expand_word, parse_mount, EnvLookup, Instruction, RunCommand};
use crate::image::Sha256Digest;
use crate::rootfs::safe::{RelPath, Root};
use crate::rootfs::sandbox::{lookup_user, BindMount, Network, RunSpec, TmpfsMount};

impl Runner<'_> {
    pub(super) fn run(
        &mut self,
        state: &mut StageState<'_>,
        instruction: &Instruction,
        at: &StepAt,
    ) -> Result<(), DockerfileError> {
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
        // A foreign stage's programs run through binfmt_misc; without an
        // interpreter usable in the chroot, stop before running anything.
        let arch = &state.image.config().architecture;
        crate::rootfs::emulation::check(arch).map_err(|e| at.fail(foreign_run_error(arch, e)))?;
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
        // A foreign stage's programs: the emulated CPU that runs them fastest.
        let sandbox = self
            .opts
            .sandbox
            .clone()
            .with_default_env(crate::rootfs::emulation::qemu_cpu::setting(arch));
        let result = sandbox.run(&spec, &mut |line| {
            reporter.command_output(&format!("#{step} {}", line.text));
        });
        drop(prepared);
        if let Some(rel) = script_path {
            state.root.remove(&rel).map_err(|e| at.fail(e))?;
        }
        let status = result.map_err(|e| at.fail(e))?;
        if !status.success() {
            return Err(DockerfileError::RunFailed {
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
    pub(super) fn prepare_mounts(
        &mut self,
        state: &StageState<'_>,
        mounts: &[String],
        at: &StepAt,
    ) -> Result<PreparedMounts, DockerfileError> {
        let mut prepared = PreparedMounts::default();
        let workdir = state.workdir();
        for raw in mounts {
            let fail = |e: StepError| at.fail(StepError::within(format!("--mount={raw}"), e));
            let m = parse_mount(raw).map_err(|e| fail(e.into()))?;
            let target = m
                .target
                .as_deref()
                .map(|t| join_container_path(&workdir, t));
            let need_target = || {
                target
                    .clone()
                    .ok_or_else(|| fail("a target is required".into()))
            };
            match m.kind {
                MountType::Cache => {
                    let target = need_target()?;
                    if m.from.is_some() {
                        return Err(fail("cache mounts seeded from= are not supported".into()));
                    }
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self.cache_mount_dir(&id, &m, at)?;
                    if matches!(
                        m.sharing,
                        Some(CacheSharing::Locked | CacheSharing::Private)
                    ) {
                        prepared
                            .locks
                            .push(lock_file(&dir).map_err(|e| fail(e.into()))?);
                    }
                    let source = match m.source.as_deref() {
                        Some(sub) => cache_subdir(&dir, sub).map_err(fail)?,
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
                MountType::Ssh => return Err(fail("ssh mounts are not supported".into())),
            }
        }
        Ok(prepared)
    }

    /// The persistent directory of a cache mount, created on first use with
    /// the mount's mode and owner.
    pub(super) fn cache_mount_dir(
        &mut self,
        id: &str,
        m: &Mount,
        at: &StepAt,
    ) -> Result<PathBuf, DockerfileError> {
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
        let fail = |e: std::io::Error| {
            at.fail(StepError::within(
                format!("cache mount {id:?} in {}", base.display()),
                e,
            ))
        };
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
    pub(super) fn bind_source(
        &mut self,
        m: &Mount,
        prepared: &mut PreparedMounts,
        at: &StepAt,
    ) -> Result<PathBuf, DockerfileError> {
        let src = m.source.as_deref().unwrap_or("/");
        let fail =
            |e: StepError| at.fail(StepError::within(format!("bind mount source {src:?}"), e));
        let (root_dir, ignore) = match m.from.as_deref() {
            None => (self.ctx.dir.clone(), self.ctx.ignore.clone()),
            Some(name) => {
                let work_dir = self.opts.work_dir.clone();
                let mut finished = match self.stage_index(name) {
                    Some(i) => self.done.get_mut(i).and_then(Option::take),
                    None => Some(self.open_base(name, &self.target.clone(), at)?),
                };
                let Some(f) = finished.as_mut() else {
                    return Err(fail(format!("stage {name} is not available").into()));
                };
                let root = Root::open(f.rootfs.path()).map_err(|e| fail(e.into()))?;
                materialize(&work_dir, &f.image, &root, &mut f.applied)
                    .map_err(|e| fail(e.into()))?;
                let dir = f.rootfs.path().to_path_buf();
                // A stage goes back where it was; an image lives as long as the run.
                match self.stage_index(name) {
                    Some(i) => self.done[i] = finished,
                    None => prepared.images.extend(finished),
                }
                (dir, None)
            }
        };
        let root_dir = std::fs::canonicalize(&root_dir).map_err(|e| fail(e.into()))?;
        let root = Root::open(&root_dir).map_err(|e| fail(e.into()))?;
        let rel = context_rel(src).map_err(|e| fail(e.into()))?;
        let resolved = copy::resolve_in_root(&root, &rel).map_err(|e| fail(e.into()))?;
        if root.lstat(&resolved).map_err(|e| fail(e.into()))?.is_none() {
            return Err(fail("not found".into()));
        }
        if m.read_only && ignore.is_none() {
            use std::os::unix::ffi::OsStrExt;
            return Ok(root_dir.join(std::ffi::OsStr::from_bytes(resolved.as_bytes())));
        }
        let tmp = self.temp_dir(".rootstrap-bind-", at)?;
        let copy_root = Root::open(tmp.path()).map_err(|e| fail(e.into()))?;
        let data = RelPath::from_archive(b"data").map_err(|e| fail(e.into()))?;
        let opts = CopyOptions {
            owner: None,
            chmod: None,
            epoch: None,
            ignore: ignore.as_ref(),
        };
        copy::copy_path(&root, &resolved, &copy_root, &data, &opts).map_err(|e| fail(e.into()))?;
        let path = tmp.path().join("data");
        prepared.temps.push(tmp);
        Ok(path)
    }

    /// `type=secret`: the `--secret` value as a read-only file at the target
    /// (default /run/secrets/<id>) and/or an environment variable.
    pub(super) fn mount_secret(
        &mut self,
        m: &Mount,
        target: Option<String>,
        prepared: &mut PreparedMounts,
        at: &StepAt,
    ) -> Result<(), DockerfileError> {
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
        let fail = |e: std::io::Error| at.fail(StepError::within(format!("secret {id:?}"), e));
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
}

/// What a RUN's `--mount`s need during the command.
#[derive(Default)]
pub(super) struct PreparedMounts {
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
pub(super) fn lock_file(dir: &Path) -> std::io::Result<std::fs::File> {
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
pub(super) fn cache_subdir(dir: &Path, sub: &str) -> Result<PathBuf, StepError> {
    use std::os::unix::ffi::OsStrExt;
    let root = Root::open(dir)?;
    let rel = context_rel(sub)?;
    let resolved = copy::resolve_in_root(&root, &rel)?;
    if !resolved.is_root() {
        root.mkdir_all(&resolved, 0o755)?;
    }
    Ok(dir.join(std::ffi::OsStr::from_bytes(resolved.as_bytes())))
}

/// A source path in the context or a stage (`/`, `.` and `` are the root).
pub(super) fn context_rel(src: &str) -> Result<RelPath, crate::rootfs::safe::PathError> {
    RelPath::from_container_path(src.as_bytes()).or_else(|e| match e {
        crate::rootfs::safe::PathError::Empty => Ok(RelPath::root()),
        e => Err(e),
    })
}

/// RUN `--mount` values with the stage's ARGs and ENV substituted, as
/// BuildKit does before parsing them.
pub(super) fn expand_mounts(
    instruction: &Instruction,
    lookup: EnvLookup<'_>,
    escape: char,
) -> Result<Instruction, StepError> {
    let mut out = instruction.clone();
    if let Instruction::Run { mounts, .. } = &mut out {
        for m in mounts.iter_mut() {
            *m = expand_word(m, lookup, escape)
                .map_err(|e| StepError::within(format!("--mount={m}"), e))?;
        }
    }
    Ok(out)
}

/// The emulation check's error in RUN's words: there is no skipping a RUN
/// (the recipe builds' `--skip-foreign-scripts` does not apply).
fn foreign_run_error(arch: &str, e: crate::rootfs::emulation::EmulationError) -> StepError {
    use crate::rootfs::emulation::EmulationError;
    match e {
        EmulationError::Unavailable { host, reason, .. } => StepError::Rejected(format!(
            "RUN in a {arch} stage cannot run on this {host} machine: {reason}; install \
             qemu-user-static (which registers interpreters with the fix-binary flag)"
        )),
        other => StepError::within(format!("RUN in a {arch} stage"), other),
    }
}
