//! Where a built image goes besides the outputs the build writes itself:
//! `registry:REF` outputs (pushed after the build) and `-t NAME:TAG` (the
//! local image store). Both read one OCI layout that the build writes into
//! a staging directory, removed when the [`Publication`] is dropped.
//!
//! Every line a user sees on stdout (`registry:REF  DIGEST`, `NAME:TAG
//! DIGEST`) is written to the caller's writer as each step finishes, so a
//! failed push still leaves the lines of the steps before it.

use std::io::Write;
use std::path::Path;

use crate::cleanup::TempPath;
use crate::image::registry::{self, PushOptions, RegistryError};
use crate::image::store::{ImageStore, StoreError, StoredImage};
use crate::image::{
    ImageBuilder, ImageError, ImageReference, ImageSource, OpenedImage, Sha256Digest,
};
use crate::report::Reporter;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{spec}: name the registry host, e.g. registry:localhost:5000/{reference}")]
    NoRegistryHost { spec: String, reference: String },
    #[error("storing {reference}")]
    Store {
        reference: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("pushing to {reference}")]
    Push {
        reference: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("signing {reference}")]
    Sign {
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("writing the result")]
    Output(#[source] std::io::Error),
}

/// Signs an image just pushed: given the staged layout, the reference and
/// the digest pushed; returns the lines to print (what it wrote where).
#[derive(Clone)]
pub struct Signer(pub std::sync::Arc<SignFn>);

pub type SignFn = dyn Fn(
        &Path,
        &ImageReference,
        Sha256Digest,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>>
    + Send
    + Sync;

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

/// A build's `--output` specs split into the ones the build writes and the
/// registry pushes, its `-t` tags, and the staging layout they read.
pub struct Publication {
    /// `--output` specs other than `registry:REF`, for the build to write.
    pub local: Vec<String>,
    /// The REF of each `registry:REF` output.
    pub pushes: Vec<String>,
    pub tags: Vec<ImageReference>,
    staging: Option<TempPath>,
    signer: Option<Signer>,
}

impl Publication {
    /// Checks every `registry:REF` and `-t` tag before anything is built.
    /// `stage_for_tags`: the store reads the staged layout too (a recipe
    /// build), rather than the in-memory image (a Dockerfile build).
    pub fn plan(
        outputs: &[String],
        tags: &[String],
        work_dir: Option<&Path>,
        stage_for_tags: bool,
    ) -> Result<Publication, PublishError> {
        let (local, pushes) = split_registry_outputs(outputs)?;
        let tags = tags
            .iter()
            .map(|t| ImageReference::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let staged = !pushes.is_empty() || (stage_for_tags && !tags.is_empty());
        let staging = staged.then(|| {
            let parent = work_dir.map_or_else(std::env::temp_dir, Path::to_owned);
            TempPath::new(parent.join(format!(".rootstrap-push-{}", std::process::id())))
        });
        Ok(Publication {
            local,
            pushes,
            tags,
            staging,
            signer: None,
        })
    }

    /// Signs every image pushed, right after its push.
    pub fn sign_pushes_with(&mut self, signer: Signer) {
        self.signer = Some(signer);
    }

    /// The OCI layout directory the build must also write, if any.
    pub fn staging_dir(&self) -> Option<&Path> {
        self.staging.as_ref().map(TempPath::path)
    }

    /// Whether `path` is the staging layout (an output the user did not ask
    /// for, so not reported).
    pub fn is_staging(&self, path: &Path) -> bool {
        self.staging_dir() == Some(path)
    }

    /// Stores the staged layout under every tag.
    pub fn store_staged(
        &self,
        store: &ImageStore,
        out: &mut dyn Write,
    ) -> Result<(), PublishError> {
        let Some(layout) = self.staging_dir().filter(|_| !self.tags.is_empty()) else {
            return Ok(());
        };
        let index = registry::layout_index(layout, None).map_err(|source| PublishError::Push {
            reference: layout.display().to_string(),
            source: Box::new(source),
        })?;
        if index.is_some() {
            // A multi-platform build: the store keeps the image index.
            return self.store_each(out, |reference| store.put_index_layout(layout, reference));
        }
        let image = OpenedImage::open(&ImageSource::OciDir(layout.to_owned()), None)?;
        self.store_each(out, |reference| store.put_opened(&image, reference))
    }

    /// Stores `image` under every tag.
    pub fn store_built(
        &self,
        store: &ImageStore,
        image: &ImageBuilder,
        out: &mut dyn Write,
    ) -> Result<(), PublishError> {
        self.store_each(out, |reference| store.put(image, reference))
    }

    fn store_each(
        &self,
        out: &mut dyn Write,
        put: impl Fn(&ImageReference) -> Result<StoredImage, StoreError>,
    ) -> Result<(), PublishError> {
        for reference in &self.tags {
            let stored = put(reference).map_err(|source| PublishError::Store {
                reference: reference.familiar(),
                source: Box::new(source),
            })?;
            writeln!(out, "{}  {}", stored.reference(), stored.digest)
                .map_err(PublishError::Output)?;
        }
        Ok(())
    }

    /// Pushes the staged layout to every `registry:REF`.
    pub fn push(&self, reporter: &dyn Reporter, out: &mut dyn Write) -> Result<(), PublishError> {
        let Some(layout) = self.staging_dir().filter(|_| !self.pushes.is_empty()) else {
            return Ok(());
        };
        // A multi-platform build staged an image index: every platform's
        // manifest goes, then the index under the tag.
        let index = registry::layout_index(layout, None).map_err(|source| PublishError::Push {
            reference: layout.display().to_string(),
            source: Box::new(source),
        })?;
        let image = match &index {
            Some(_) => None,
            None => Some(OpenedImage::open(
                &ImageSource::OciDir(layout.to_owned()),
                None,
            )?),
        };
        for reference in &self.pushes {
            let parsed = ImageReference::parse(reference)?;
            let opts = PushOptions::default();
            let pushed = match (&index, &image) {
                (Some((bytes, index)), _) => {
                    registry::push_index(layout, None, &parsed, bytes, index, &opts, reporter)
                }
                (None, Some(image)) => registry::push(image, &parsed, &opts, reporter),
                (None, None) => unreachable!("an image is opened when there is no index"),
            };
            let report = pushed.map_err(|source| PublishError::Push {
                reference: reference.clone(),
                source: Box::new(source),
            })?;
            writeln!(out, "registry:{reference}  {}", report.manifest_digest)
                .map_err(PublishError::Output)?;
            if let Some(signer) = &self.signer {
                let lines =
                    (signer.0)(layout, &parsed, report.manifest_digest).map_err(|source| {
                        PublishError::Sign {
                            reference: reference.clone(),
                            source,
                        }
                    })?;
                for line in lines {
                    writeln!(out, "{line}").map_err(PublishError::Output)?;
                }
            }
        }
        Ok(())
    }
}

/// Separates `registry:REF` outputs (pushed after the build) from the
/// outputs the build writes itself; each REF is checked before building.
fn split_registry_outputs(specs: &[String]) -> Result<(Vec<String>, Vec<String>), PublishError> {
    let mut local = Vec::new();
    let mut pushes = Vec::new();
    for spec in specs {
        match spec.strip_prefix("registry:") {
            Some(reference) => {
                let parsed = ImageReference::parse(reference)?;
                if parsed.registry.is_none() {
                    return Err(PublishError::NoRegistryHost {
                        spec: spec.clone(),
                        reference: reference.to_owned(),
                    });
                }
                pushes.push(reference.to_owned());
            }
            None => local.push(spec.clone()),
        }
    }
    Ok((local, pushes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_outputs_are_split_and_checked() {
        let specs = ["oci:out".to_string(), "registry:localhost:5000/a:1".into()];
        let p = Publication::plan(&specs, &[], None, false).unwrap();
        assert_eq!(p.local, ["oci:out"]);
        assert_eq!(p.pushes, ["localhost:5000/a:1"]);
        assert!(p.staging_dir().is_some());

        let err = Publication::plan(&["registry:a:1".into()], &[], None, false)
            .err()
            .unwrap();
        assert!(matches!(err, PublishError::NoRegistryHost { .. }), "{err}");

        // Tags stage a layout only when the store reads it.
        let tags = ["app:1".to_string()];
        let p = Publication::plan(&specs[..1], &tags, None, false).unwrap();
        assert!(p.staging_dir().is_none());
        let p = Publication::plan(&specs[..1], &tags, None, true).unwrap();
        assert!(p.staging_dir().is_some());
    }
}
