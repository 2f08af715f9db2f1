//! Stages: which ones the target needs, the ARGs every stage sees, bringing
//! a stage's rootfs up to date with its layers, ONBUILD triggers.

use super::*;
use std::collections::HashMap;
use std::path::Path;

use crate::distro::platform::Platform;
use crate::dockerfile::{parse, parse_instructions, parse_mount, Command, Instruction, Stages};
use crate::image::oci::{self};
use crate::image::{unpack_layers, ImageBuilder, ImageSource, OpenedImage, Output};
use crate::rootfs::image_sink::RootSink;
use crate::rootfs::safe::Root;

impl Runner<'_> {
    /// ONBUILD triggers of the base run first, then are dropped from the
    /// config (they fire once, in the direct child).
    pub(super) fn trigger_onbuild(
        &mut self,
        state: &mut StageState<'_>,
    ) -> Result<(), DockerfileError> {
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
}

/// Which stages up to `target` the target depends on (through FROM or
/// `COPY --from`), as BuildKit skips the others. A reference that still
/// holds a `$` (a stage ARG) conservatively needs every earlier stage.
pub(super) fn needed_stages(
    stages: &Stages,
    target: usize,
    global: &HashMap<String, String>,
) -> Vec<bool> {
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

pub(super) fn declares(command: &Command, name: &str) -> bool {
    matches!(&command.instruction, Instruction::Arg(pairs) if pairs.iter().any(|(k, _)| k == name))
}

pub(super) fn stage_from_line(stage: &crate::dockerfile::Stage, base: &str) -> String {
    match &stage.name {
        Some(n) => format!("FROM {base} AS {n}"),
        None => format!("FROM {base}"),
    }
}

/// The platform this machine runs natively (BuildKit's BUILDPLATFORM).
pub fn host_platform() -> Platform {
    let (arch, variant) = oci::oci_arch(std::env::consts::ARCH);
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant: variant.map(str::to_owned),
    }
}

/// BuildKit's automatic platform ARGs (usable in FROM, and in a stage once
/// declared with a bare `ARG NAME`): TARGET* name the platform being built,
/// BUILD* the machine building it, whatever the stage's own platform.
pub(super) fn predefined_args(target: &Platform) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for (prefix, platform) in [("TARGET", target), ("BUILD", &host_platform())] {
        // As BuildKit normalises it: arm64's only variant is left out.
        let mut platform = platform.clone();
        if platform.architecture == "arm64" && platform.variant.as_deref() == Some("v8") {
            platform.variant = None;
        }
        m.insert(format!("{prefix}PLATFORM"), platform.to_string());
        m.insert(format!("{prefix}OS"), platform.os.clone());
        m.insert(format!("{prefix}ARCH"), platform.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            platform.variant.clone().unwrap_or_default(),
        );
    }
    m
}

/// Applies the layers of `image` that `root` does not hold yet (`applied`
/// onwards), through the same whiteout-aware unpacker as a base image.
pub(super) fn materialize(
    work_dir: &Path,
    image: &ImageBuilder,
    root: &Root,
    applied: &mut usize,
) -> Result<(), DockerfileError> {
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
