//! Base resolution: what `FROM` (and `--from=`) names — scratch, an earlier
//! stage, the local image store, a recipe, a transport path or a registry.

use super::*;
use std::path::{Path, PathBuf};

use crate::cleanup::TempPath;
use crate::distro::platform::Platform;
use crate::image::oci::{self, ImageConfig};
use crate::image::{ImageBuilder, ImageReference, ImageSource, OpenedImage, Output};

impl Runner<'_> {
    pub(super) fn new_rootfs(&self, at: &StepAt) -> Result<TempPath, DockerfileError> {
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
    pub(super) fn image_source(
        &self,
        base: &str,
        platform: &Platform,
        at: &StepAt,
    ) -> Result<(ImageSource, Option<String>), DockerfileError> {
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
            let dir = build_recipe(&recipe, platform).map_err(|source| {
                at.fail(StepError::Recipe {
                    base: base.to_owned(),
                    source,
                })
            })?;
            return Ok((ImageSource::OciDir(dir), None));
        }
        // Anything else is a registry reference, Docker Hub when no host is
        // named (`debian:bookworm` = docker.io/library/debian:bookworm).
        let mut reference = ImageReference::parse(base)
            .map_err(|source| at.fail(StepError::BaseName { source }))?;
        if reference.registry.is_none() {
            reference.registry = Some("docker.io".into());
            if !reference.repository.contains('/') {
                reference.repository = format!("library/{}", reference.repository);
            }
        }
        self.pull(base, &reference, platform, at)
    }

    /// `FROM host[:port]/name:tag`: pulled once per build into the work dir.
    pub(super) fn pull(
        &self,
        base: &str,
        reference: &ImageReference,
        platform: &Platform,
        at: &StepAt,
    ) -> Result<(ImageSource, Option<String>), DockerfileError> {
        // One pull per reference and platform: a cross stage and a target
        // stage may name the same image.
        let pull_key = format!("{base} {platform}");
        if let Some(dir) = self.pulled.borrow().get(&pull_key) {
            return Ok((ImageSource::OciDir(dir.path().join("oci")), None));
        }
        let tmp = self.temp_dir(".rootstrap-pull-", at)?;
        let dest = tmp.path().join("oci");
        self.reporter.stage(&format!("pull {base}"));
        // Verified, then pulled by the digest verified, so the tag cannot
        // move to another image in between.
        let mut pulled = reference.clone();
        if let Some(key) = &self.opts.require_signed_by {
            let target = crate::sign::Target {
                reference: reference.clone(),
                digest: None,
            };
            let verified = crate::sign::remote::verify(
                &target,
                key,
                false,
                &crate::image::registry::PushOptions::default(),
            )
            .map_err(|source| {
                at.fail(StepError::Unsigned {
                    base: base.to_owned(),
                    source,
                })
            })?;
            self.reporter
                .info(&format!("{}: signature verified", verified.image));
            pulled.tag = verified.digest.to_string();
        }
        crate::image::registry::pull(
            &pulled,
            (&platform.architecture, &platform.os),
            &crate::image::registry::PushOptions::default(),
            &dest,
            self.reporter,
        )
        .map_err(|source| {
            at.fail(StepError::Pull {
                base: base.to_owned(),
                source,
            })
        })?;
        self.pulled.borrow_mut().insert(pull_key, tmp);
        Ok((ImageSource::OciDir(dest), None))
    }

    pub(super) fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .stages
            .iter()
            .take(self.done.len())
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|&i| i < self.done.len()))
    }

    /// A stage's platform: its `FROM --platform`, else that of the stage
    /// it starts from, else the build's target.
    pub(super) fn stage_platform(
        &self,
        base: &str,
        given: Option<&str>,
        at: &StepAt,
    ) -> Result<Platform, DockerfileError> {
        if let Some(text) = given {
            return Platform::parse(text).map_err(|e| at.fail(e));
        }
        Ok(self
            .stage_index(base)
            .and_then(|i| self.done[i].as_ref())
            .map(|f| f.platform.clone())
            .unwrap_or_else(|| self.target.clone()))
    }

    /// The image and rootfs a stage starts from, for `platform`: the image
    /// of that platform from a multi-platform base.
    pub(super) fn open_base(
        &mut self,
        base: &str,
        platform: &Platform,
        at: &StepAt,
    ) -> Result<Finished, DockerfileError> {
        let rootfs = self.new_rootfs(at)?;
        if base.eq_ignore_ascii_case("scratch") {
            let mut config = ImageConfig::new(&platform.architecture, &platform.os);
            config.variant = platform.variant.clone();
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
                platform: platform.clone(),
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
            None => (self.image_source(base, platform, at)?, None),
        };
        let opened =
            open_for_platform(&source.0, source.1.as_deref(), platform).map_err(|e| at.fail(e))?;
        let image = ImageBuilder::from_image(&self.opts.work_dir, &opened, self.opts.compression)?;
        // The files are unpacked when a step first needs them, so a build
        // whose steps all come from the cache never unpacks the base.
        Ok(Finished {
            image,
            rootfs,
            applied: 0,
            platform: platform.clone(),
        })
    }
}

/// `platform`'s image from an image index; a single image whatever its
/// platform (BuildKit, too, takes a single-platform base as it is).
pub(super) fn open_for_platform(
    source: &ImageSource,
    name: Option<&str>,
    platform: &Platform,
) -> Result<OpenedImage, crate::image::ImageError> {
    if matches!(source, ImageSource::DockerArchive(_)) {
        return OpenedImage::open(source, name);
    }
    let wanted = oci::Platform {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
    };
    OpenedImage::open_platform(source, name, &wanted)
}
