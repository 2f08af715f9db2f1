//! Instructions that only edit the image config (CMD, ENV, LABEL, EXPOSE,
//! HEALTHCHECK, ...) and WORKDIR.

use super::*;
use std::time::Duration;

use crate::dockerfile::{Healthcheck, Instruction, ShellOrExec};
use crate::image::oci::{self};
use crate::rootfs::safe::RelPath;
use crate::rootfs::sandbox::lookup_user;

/// WORKDIR and relative COPY destinations: `rel` against `base`, cleaned.
pub(super) fn join_container_path(base: &str, rel: &str) -> String {
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

pub(super) fn make_workdir(
    state: &mut StageState<'_>,
    dir: &str,
    at: &StepAt,
) -> Result<(), DockerfileError> {
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

pub(super) fn shell_or_exec(state: &StageState<'_>, cmd: &ShellOrExec) -> Vec<String> {
    match cmd {
        ShellOrExec::Exec(v) => v.clone(),
        ShellOrExec::Shell(s) => {
            let mut v = state.shell();
            v.push(s.clone());
            v
        }
    }
}

pub(super) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// EXPOSE `80`, `53/udp`, `8000-8002/tcp` → config keys `80/tcp` ...
pub(super) fn exposed_ports(spec: &str) -> Result<Vec<String>, PortError> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(PortError::Protocol(spec.to_owned()));
    }
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| PortError::Port(spec.to_owned()))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(ports)?, parse(ports)?),
    };
    if hi < lo || hi - lo > 10_000 {
        return Err(PortError::Range(spec.to_owned()));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Instructions that only edit the image config.
pub(super) fn apply_metadata(
    state: &mut StageState<'_>,
    instruction: &Instruction,
    at: &StepAt,
) -> Result<(), DockerfileError> {
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
