//! Multi-platform images: one OCI image index over one manifest per
//! platform, written as an OCI layout whose `index.json` names the index
//! (as BuildKit's `type=oci` output does), so a reader picks its platform
//! and a registry push sends every manifest, then the index under the tag.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::layout::{digest_hex, link_or_copy, write_file, LayoutDraft, DEFAULT_REF_NAME};
use super::oci::{self, canonical_json, Descriptor, Index};
use super::{ImageBuilder, ImageError, ImageReference, Sha256Digest};

/// What [`write_index_layout`] wrote.
#[derive(Debug, Clone)]
pub struct WrittenIndex {
    pub path: PathBuf,
    /// The image index's digest: what a tag pushed from it resolves to.
    pub index_digest: Sha256Digest,
    /// Each platform's manifest, in the index's order.
    pub manifests: Vec<Descriptor>,
}

/// An image index's bytes, its manifests, and the configs' and manifests'
/// blobs as (digest, bytes).
struct IndexBlobs {
    index: Vec<u8>,
    manifests: Vec<Descriptor>,
    blobs: Vec<(String, Vec<u8>)>,
}

/// The image index over `images` (one per platform, in the order given).
fn index_of(images: &[&ImageBuilder]) -> Result<IndexBlobs, ImageError> {
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    let mut platforms = BTreeSet::new();
    for image in images {
        let meta = image.metadata_blobs()?;
        let platform = &meta.platform;
        let name = platform.to_string();
        if !platforms.insert(name.clone()) {
            return Err(ImageError::Invalid {
                location: "image index".into(),
                reason: format!("two images for the platform {name}"),
            });
        }
        let mut desc = meta.manifest_desc.clone();
        desc.platform = Some(meta.platform.clone());
        blobs.push((meta.config_desc.digest.clone(), meta.config));
        blobs.push((meta.manifest_desc.digest.clone(), meta.manifest));
        manifests.push(desc);
    }
    let index = canonical_json(&Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.into()),
        manifests: manifests.clone(),
        annotations: BTreeMap::new(),
    })?;
    Ok(IndexBlobs {
        index,
        manifests,
        blobs,
    })
}

/// Writes `images` as one multi-platform image to the OCI layout `target`
/// (made beside it and renamed into place). `reference` names it in
/// index.json.
pub fn write_index_layout(
    images: &[&ImageBuilder],
    target: &Path,
    reference: Option<&ImageReference>,
) -> Result<WrittenIndex, ImageError> {
    let IndexBlobs {
        index,
        manifests,
        blobs,
    } = index_of(images)?;
    let index_digest = Sha256Digest::of(&index);
    let draft = LayoutDraft::begin(target)?;
    let blob_dir = &draft.blob_dir;
    for image in images {
        for layer in image.layers() {
            let dest = blob_dir.join(digest_hex(&layer.descriptor.digest));
            if !dest.exists() {
                link_or_copy(layer.path(), &dest)?;
            }
        }
    }
    for (digest, bytes) in &blobs {
        write_file(&blob_dir.join(digest_hex(digest)), bytes)?;
    }
    write_file(&blob_dir.join(index_digest.to_hex()), &index)?;
    let mut desc = Descriptor::new(oci::MEDIA_TYPE_INDEX, index_digest, index.len() as u64);
    let tag = reference.map_or(DEFAULT_REF_NAME, |r| r.tag.as_str());
    desc.annotations
        .insert(oci::ANNOTATION_REF_NAME.into(), tag.to_owned());
    let index_json = canonical_json(&Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.into()),
        manifests: vec![desc],
        annotations: BTreeMap::new(),
    })?;
    draft.finish(&index_json, target)?;
    Ok(WrittenIndex {
        path: target.to_owned(),
        index_digest,
        manifests,
    })
}
