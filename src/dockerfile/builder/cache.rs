//! The step cache as a build uses it: a step's key (the image config, the
//! instruction, what it reads), reusing a recorded layer, and running a
//! file-changing step between two snapshots to record a new one. The
//! store itself is [`crate::dockerfile::step_cache`].

use super::copy_add::is_url;
use super::*;
use std::path::Path;

use crate::dockerfile::copy::{self};
use crate::dockerfile::mounts::MountType;
use crate::dockerfile::snapshot::{diff, snapshot, write_diff};
use crate::dockerfile::step_cache::{digest_sources, step_key, CachedLayer, StepEntry};
use crate::dockerfile::{parse_mount, CopySpec, Instruction};
use crate::image::oci::{self, History};
use crate::image::Sha256Digest;

use crate::dockerfile::step_cache::StepCache;

impl Runner<'_> {
    /// The step-cache key of a file-changing step, or `None` when there is
    /// no cache or the step cannot be cached (`extra` is `None`: its inputs
    /// are not known before it runs). `extra` digests what the step reads
    /// besides the image: copied files, the source stage.
    pub(super) fn cache_key(
        &self,
        state: &StageState<'_>,
        instruction: &Instruction,
        extra: Option<String>,
    ) -> Result<Option<String>, DockerfileError> {
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
    pub(super) fn copy_inputs(
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
    pub(super) fn run_inputs(&mut self, instruction: &Instruction, at: &StepAt) -> Option<String> {
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
    pub(super) fn other_image_inputs(&mut self, name: &str, at: &StepAt) -> Option<String> {
        let config = match self.stage_index(name) {
            Some(i) => self.done[i].as_ref()?.image.final_config(),
            None => {
                let target = self.target.clone();
                let (source, pick) = self.image_source(name, &target, at).ok()?;
                super::base::open_for_platform(&source, pick.as_deref(), &target)
                    .ok()?
                    .config
            }
        };
        let bytes = oci::canonical_json(&config).ok()?;
        Some(format!("from:{}", Sha256Digest::of(&bytes)))
    }

    /// Runs a file-changing step between two snapshots and records the
    /// difference as a layer (or an empty history entry if nothing changed).
    /// With a cache `key`, a recorded outcome is reused instead, and a fresh
    /// one is recorded.
    pub(super) fn with_layer(
        &mut self,
        state: &mut StageState<'_>,
        at: &StepAt,
        created_by: String,
        key: Option<String>,
        step: impl FnOnce(&mut Self, &mut StageState<'_>) -> Result<(), DockerfileError>,
    ) -> Result<(), DockerfileError> {
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
        .map_err(|e| at.fail(StepError::within("applying cached layers", e)))?;
        let dir = state.root.path().to_path_buf();
        let before =
            snapshot(&dir).map_err(|e| at.fail(StepError::within("scanning the rootfs", e)))?;
        step(self, state)?;
        let after =
            snapshot(&dir).map_err(|e| at.fail(StepError::within("scanning the rootfs", e)))?;
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
    pub(super) fn remember(&self, key: Option<&str>, entry: StepEntry, blob: Option<&Path>) {
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
}

/// Adds a cached step outcome to the image; false when the entry cannot be
/// used (a blob gone or corrupt), and the step must run.
pub(super) fn reuse(
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
