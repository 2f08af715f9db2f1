//! `rootstrap save`: an image of the local store written out whole (an OCI
//! layout, or the same layout as one tar) or one platform's image as a
//! docker archive, through the writers a build's outputs use.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::{empty_index, familiar, io_err, ref_name, stored, ImageStore, StoreError, StoredImage};
use crate::image::archive::{
    docker_manifest_json, write_layout_tar, BlobBytes, LayoutTar, TarBlob,
};
use crate::image::oci::{self, Descriptor, Index};
use crate::image::{ImageError, ImageReference, ImageSource, OpenedImage, Output, Sha256Digest};

/// What [`ImageStore::save`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedImage {
    /// The stored image.
    pub image: StoredImage,
    /// What the output's index.json names: the stored digest, or for a
    /// docker-archive the one image's manifest.
    pub digest: String,
    /// The platform a docker-archive took from a multi-platform image.
    pub platform: Option<String>,
    /// A docker-archive with zstd layers, which old engines cannot load.
    pub zstd_layers: bool,
}

impl ImageStore {
    /// Writes the stored image `name` (`NAME[:TAG]`) to `output`, made
    /// beside it and moved into place when complete, every blob checked
    /// against its digest on the way:
    /// - `oci:DIR`, `oci-archive:FILE`: the whole image (a multi-platform
    ///   image as its image index with every platform) under its tag as
    ///   `org.opencontainers.image.ref.name`, as a build's output names it;
    ///   blobs are copied (never linked: the layout must not share files
    ///   with the store);
    /// - `docker-archive:FILE`: one image, as `docker load` reads it
    ///   (tagged `NAME:TAG`): `platform`'s, else this machine's, from a
    ///   multi-platform image; a single image when it is for `platform`.
    pub fn save(
        &self,
        name: &str,
        output: &Output,
        platform: Option<&oci::Platform>,
    ) -> Result<SavedImage, StoreError> {
        let wanted = familiar(name)?;
        let _lock = self.lock()?;
        let index = self.read_index()?;
        let desc = index
            .manifests
            .iter()
            .find(|d| ref_name(d) == Some(&wanted))
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        let image = stored(desc).ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        let whole = |what: &str| match platform {
            Some(p) => Err(StoreError::PlatformOfWhole {
                output: format!("{what}:{}", output.path().display()),
                platform: p.to_string(),
            }),
            None => Ok(()),
        };
        match output {
            Output::OciDir(dir) => {
                whole("oci")?;
                self.save_layout(desc, &image, dir)?;
            }
            Output::OciArchive(file) => {
                whole("oci-archive")?;
                self.save_layout_tar(desc, &image, file)?;
            }
            Output::DockerArchive(file) => {
                return self.save_docker_archive(&wanted, image, file, platform);
            }
            Output::RootfsTar(path) => {
                return Err(StoreError::SaveOutput(format!("tar:{}", path.display())))
            }
        }
        Ok(SavedImage {
            digest: image.digest.clone(),
            platform: None,
            zstd_layers: false,
            image,
        })
    }

    /// `save` to an OCI layout directory.
    fn save_layout(
        &self,
        desc: &Descriptor,
        image: &StoredImage,
        target: &Path,
    ) -> Result<(), StoreError> {
        let draft = crate::image::layout::LayoutDraft::begin(target)?;
        for hex in self.image_blobs(desc)? {
            let digest = Sha256Digest::parse(&format!("sha256:{hex}")).map_err(ImageError::from)?;
            let from = self.blob_path(&hex);
            let mut file =
                File::open(&from).map_err(io_err(format!("reading {}", from.display())))?;
            let dest = draft.blob_dir.join(&hex);
            let mut out =
                File::create(&dest).map_err(io_err(format!("creating {}", dest.display())))?;
            super::copy_checked(&mut file, &mut out, &digest, &from.display().to_string())?;
        }
        draft.finish(&saved_index_json(desc, &image.tag)?, target)?;
        Ok(())
    }

    /// `save` to an oci-archive: the layout [`save_layout`](Self::save_layout)
    /// writes, as one tar.
    fn save_layout_tar(
        &self,
        desc: &Descriptor,
        image: &StoredImage,
        target: &Path,
    ) -> Result<(), StoreError> {
        let blobs: Vec<(String, PathBuf)> = self
            .image_blobs(desc)?
            .iter()
            .map(|hex| (format!("sha256:{hex}"), self.blob_path(hex)))
            .collect();
        let layout = LayoutTar {
            blobs: blobs
                .iter()
                .map(|(digest, path)| TarBlob {
                    digest,
                    bytes: BlobBytes::File(path),
                    verify: true,
                })
                .collect(),
            docker_manifest: None,
            index_json: saved_index_json(desc, &image.tag)?,
        };
        Ok(write_layout_tar(target, &layout)?)
    }

    /// `save` to a docker-archive: one platform's image, picked from the
    /// store's index entry as `run` and `inspect` pick it.
    fn save_docker_archive(
        &self,
        wanted: &str,
        image: StoredImage,
        target: &Path,
        platform: Option<&oci::Platform>,
    ) -> Result<SavedImage, StoreError> {
        let source = ImageSource::OciDir(self.dir.clone());
        let opened = match platform {
            Some(p) => OpenedImage::open_platform(&source, Some(wanted), p),
            None => OpenedImage::open(&source, Some(wanted)),
        }
        .map_err(|source| StoreError::Open {
            image: wanted.to_owned(),
            source,
        })?;
        let config = &opened.config;
        let has = oci::Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
        };
        // An image index was checked for the platform when it was read; a
        // single image is what it is.
        if let (Some(p), None) = (platform, &opened.index) {
            let variant_differs =
                p.variant.is_some() && has.variant.is_some() && p.variant != has.variant;
            if p.os != has.os || p.architecture != has.architecture || variant_differs {
                return Err(StoreError::SinglePlatform {
                    image: wanted.to_owned(),
                    has: has.to_string(),
                    wanted: p.to_string(),
                });
            }
        }
        let manifest_digest = opened
            .manifest_digest
            .ok_or_else(|| StoreError::NoManifest(wanted.to_owned()))?;
        let mut layer_digests = Vec::new();
        let mut zstd_layers = false;
        for layer in &opened.layers {
            let digest = layer
                .digest
                .ok_or_else(|| StoreError::NoManifest(wanted.to_owned()))?;
            layer_digests.push(digest.to_string());
            zstd_layers |= layer.media_type.as_deref() == Some(oci::MEDIA_TYPE_LAYER_ZSTD);
        }
        let config_digest = opened.config_digest.to_string();
        let manifest = manifest_digest.to_string();
        // The layers, then the config and the manifest, as a build's
        // archive orders them.
        let mut members = layer_digests.clone();
        members.push(config_digest.clone());
        members.push(manifest.clone());
        let paths: Vec<PathBuf> = members.iter().map(|d| self.blob_path(d)).collect();
        let media_type = opened
            .manifest
            .as_ref()
            .and_then(|m| m.media_type.clone())
            .unwrap_or_else(|| oci::MEDIA_TYPE_MANIFEST.to_owned());
        let manifest_size = fs::metadata(self.blob_path(&manifest))
            .map_err(io_err(format!("reading manifest {manifest}")))?
            .len();
        let manifest_desc = Descriptor::new(&media_type, manifest_digest, manifest_size);
        let reference = ImageReference::parse(wanted)?;
        let layers: Vec<&str> = layer_digests.iter().map(String::as_str).collect();
        write_layout_tar(
            target,
            &LayoutTar {
                blobs: members
                    .iter()
                    .zip(&paths)
                    .map(|(digest, path)| TarBlob {
                        digest,
                        bytes: BlobBytes::File(path),
                        verify: true,
                    })
                    .collect(),
                docker_manifest: Some(docker_manifest_json(
                    &config_digest,
                    &layers,
                    Some(&reference),
                )?),
                index_json: crate::image::layout::image_index_json(
                    &manifest_desc,
                    &has,
                    Some(&reference),
                    true,
                )?,
            },
        )?;
        Ok(SavedImage {
            image,
            digest: manifest,
            platform: opened.index.is_some().then(|| has.to_string()),
            zstd_layers,
        })
    }

    /// The hex digests of every blob the image `desc` names (a
    /// multi-platform image's index and each platform's), sorted, so an
    /// archive of them is the same bytes each time.
    fn image_blobs(&self, desc: &Descriptor) -> Result<Vec<String>, StoreError> {
        let mut blobs = HashSet::new();
        self.keep_image(desc, true, &mut blobs)?;
        let mut blobs: Vec<String> = blobs.into_iter().collect();
        blobs.sort();
        Ok(blobs)
    }
}

/// index.json of a saved image: its store entry under its tag alone.
fn saved_index_json(desc: &Descriptor, tag: &str) -> Result<Vec<u8>, StoreError> {
    let mut entry = Descriptor::new(
        &desc.media_type,
        Sha256Digest::parse(&desc.digest).map_err(ImageError::from)?,
        desc.size,
    );
    entry
        .annotations
        .insert(oci::ANNOTATION_REF_NAME.into(), tag.to_owned());
    Ok(oci::canonical_json(&Index {
        manifests: vec![entry],
        ..empty_index()
    })?)
}
