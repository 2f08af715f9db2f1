//! Where SBOMs go: next to oci-archive, docker-archive and tar outputs
//! (`<output>.spdx.json`, `<output>.cdx.json`), and into OCI layouts as
//! artifacts whose `subject` is the image manifest.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::{ImageIdentity, Sbom, SbomFormat};
use crate::image::compress::auto_decoder;
use crate::image::layout::{persist, temp_file_beside};
use crate::image::output::BuildOutput;
use crate::image::{
    attach_artifact, Artifact, ImageBuilder, ImageError, OpenedImage, Output, Sha256Digest,
};

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("writing SBOM {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image output {output}: build recorded no manifest digest {digest:?}")]
    Digest { output: PathBuf, digest: String },
    #[error("reading the packages of {image}")]
    Packages {
        image: String,
        #[source]
        source: ImageError,
    },
}

/// `<output>` + `.spdx.json` / `.cdx.json`.
pub fn sidecar_path(output: &Path, format: SbomFormat) -> PathBuf {
    let mut name = OsString::from(output.as_os_str());
    name.push(format.file_suffix());
    PathBuf::from(name)
}

/// Writes `bytes` to `path` atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SbomError> {
    let tmp = temp_file_beside(path)?;
    std::fs::write(tmp.path(), bytes).map_err(|source| SbomError::Write {
        path: path.to_owned(),
        source,
    })?;
    persist(tmp, path)?;
    Ok(())
}

/// Adds both SBOMs of `sbom` to the OCI layout `dir` as artifacts referring
/// to the image manifest `sbom.image.digest`.
pub fn attach_to_oci_layout(dir: &Path, sbom: &Sbom) -> Result<(), SbomError> {
    for format in SbomFormat::ALL {
        let data = format.render(sbom);
        let title = format!("sbom{}", format.file_suffix());
        let annotations: BTreeMap<String, String> = [
            (
                "org.opencontainers.image.created".to_owned(),
                sbom.image.created.clone(),
            ),
            ("org.rootstrap.sbom".to_owned(), format.label().to_owned()),
        ]
        .into();
        attach_artifact(
            dir,
            sbom.image.digest,
            &Artifact {
                artifact_type: format.media_type(),
                data: &data,
                title: &title,
                annotations,
            },
        )?;
    }
    Ok(())
}

/// The `format` document attached to `image` (as an artifact referring to
/// it), if the layout holds one: the SBOM the build wrote, which also
/// carries what only the build knew (the `.deb` checksums).
pub fn attached(image: &OpenedImage, format: SbomFormat) -> Result<Option<Vec<u8>>, SbomError> {
    let Some(artifact) = image
        .referrers
        .iter()
        .find(|d| d.artifact_type.as_deref() == Some(format.media_type()))
    else {
        return Ok(None);
    };
    let digest = Sha256Digest::parse(&artifact.digest).map_err(ImageError::from)?;
    let manifest = image.read_blob(&digest)?;
    let manifest: crate::image::oci::Manifest =
        serde_json::from_slice(&manifest).map_err(|source| ImageError::Json {
            what: format!("artifact manifest {digest}"),
            source,
        })?;
    let Some(document) = manifest
        .layers
        .iter()
        .find(|l| l.media_type == format.media_type())
    else {
        return Ok(None);
    };
    let document = Sha256Digest::parse(&document.digest).map_err(ImageError::from)?;
    Ok(Some(image.read_blob(&document)?))
}

/// The SBOM `rootstrap sbom` shows for `image` (named `name` in messages):
/// the document the build attached, else one derived from the image's
/// package databases.
pub fn image_sbom(
    image: &OpenedImage,
    format: SbomFormat,
    name: &str,
) -> Result<Vec<u8>, SbomError> {
    if let Some(bytes) = attached(image, format)? {
        return Ok(bytes);
    }
    let inventory =
        crate::image::packages::package_inventory(image).map_err(|source| SbomError::Packages {
            image: name.to_owned(),
            source,
        })?;
    let model = Sbom::from_inventory(
        &inventory,
        ImageIdentity::of_image(image),
        &Default::default(),
    );
    Ok(format.render(&model))
}

/// After a build: the SBOMs of the image `builder` holds, for each image
/// output (`outputs` as `write_outputs` returns them, with their manifest
/// digests). `deb_sha256` gives the `.deb` checksums the plan knows (may be
/// empty). `known` is the inventory of the image's finished rootfs when the
/// caller had the tree; without it the layers are read. Returns the files
/// written or extended.
pub fn write_build_sboms(
    builder: &ImageBuilder,
    outputs: &[(BuildOutput, Option<String>)],
    reference: Option<&str>,
    deb_sha256: &BTreeMap<String, [u8; 32]>,
    known: Option<&crate::image::packages::PackageInventory>,
) -> Result<Vec<PathBuf>, SbomError> {
    let images: Vec<(&Output, &Option<String>)> = outputs
        .iter()
        .filter_map(|(o, d)| match o {
            BuildOutput::Image(out) => Some((out, d)),
            BuildOutput::RootfsDir(_) => None,
        })
        .collect();
    if images.is_empty() {
        return Ok(Vec::new());
    }
    // The inventory of the finished tree, when the build had one, says the
    // same as the layers and is much cheaper to get.
    let collected;
    let inventory = match known {
        Some(known) => known,
        None => {
            collected = inventory_of_layers(builder)?;
            &collected
        }
    };
    let mut written = Vec::new();
    for (out, digest) in images {
        let digest = digest
            .as_deref()
            .and_then(|d| Sha256Digest::parse(d).ok())
            .ok_or_else(|| SbomError::Digest {
                output: out.path().to_owned(),
                digest: digest.clone().unwrap_or_default(),
            })?;
        let identity = ImageIdentity::new(reference, digest, builder.config().created.as_deref());
        let sbom = Sbom::from_inventory(inventory, identity, deb_sha256);
        match out {
            Output::OciDir(dir) => {
                attach_to_oci_layout(dir, &sbom)?;
                written.push(dir.clone());
            }
            Output::OciArchive(path) | Output::DockerArchive(path) | Output::RootfsTar(path) => {
                for format in SbomFormat::ALL {
                    let target = sidecar_path(path, format);
                    write_file(&target, &format.render(&sbom))?;
                    written.push(target);
                }
            }
        }
    }
    Ok(written)
}

/// What a multi-platform build knows of one platform's image besides its
/// layers (see [`write_build_sboms`]).
#[derive(Default)]
pub struct PlatformFacts<'a> {
    pub deb_sha256: BTreeMap<String, [u8; 32]>,
    pub inventory: Option<&'a crate::image::packages::PackageInventory>,
}

/// After a multi-platform build: each platform's SBOMs attached to the
/// image index layout `index` (one image per platform, in the index's
/// order), their `subject` that platform's manifest, so a reader or a push
/// takes each platform's own. `facts` (by position, may be shorter) gives
/// what the build knew; without it the layers are read.
pub fn write_index_sboms(
    images: &[&ImageBuilder],
    index: &crate::image::multi::WrittenIndex,
    reference: Option<&str>,
    facts: &[PlatformFacts<'_>],
) -> Result<(), SbomError> {
    for (i, (builder, manifest)) in images.iter().zip(&index.manifests).enumerate() {
        let digest = Sha256Digest::parse(&manifest.digest).map_err(ImageError::from)?;
        let fact = facts.get(i);
        let collected;
        let inventory = match fact.and_then(|f| f.inventory) {
            Some(known) => known,
            None => {
                collected = inventory_of_layers(builder)?;
                &collected
            }
        };
        let identity = ImageIdentity::new(reference, digest, builder.config().created.as_deref());
        let no_checksums = BTreeMap::new();
        let deb_sha256 = fact.map_or(&no_checksums, |f| &f.deb_sha256);
        let sbom = Sbom::from_inventory(inventory, identity, deb_sha256);
        attach_to_oci_layout(&index.path, &sbom)?;
    }
    Ok(())
}

/// The package inventory read from the layers `builder` holds.
fn inventory_of_layers(
    builder: &ImageBuilder,
) -> Result<crate::image::packages::PackageInventory, SbomError> {
    let layers = builder.layers().iter().map(|l| {
        let f = std::fs::File::open(l.path()).map_err(ImageError::io(format!(
            "opening layer {}",
            l.path().display()
        )))?;
        auto_decoder(BufReader::with_capacity(256 * 1024, f))
            .map_err(ImageError::io(format!(
                "reading layer {}",
                l.path().display()
            )))
            .map(|r| -> Box<dyn Read> { r })
    });
    Ok(crate::image::packages::collect_inventory(layers)?)
}
