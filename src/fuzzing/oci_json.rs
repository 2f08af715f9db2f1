//! OCI manifests, indexes and configs and Docker's `manifest.json` as a
//! registry or archive serves them; what parses is re-serialised the
//! canonical way, and digests and references parsed.
use crate::image::oci::DockerManifestEntry;
use crate::image::oci::{canonical_json, ImageConfig, Index, Manifest};
use crate::image::ImageReference;
use crate::verify::Sha256Digest;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let _ = canonical_json(&m);
        let _ = Sha256Digest::parse(&m.config.digest);
    }
    if let Ok(i) = serde_json::from_slice::<Index>(data) {
        let _ = canonical_json(&i);
        for d in &i.manifests {
            let _ = Sha256Digest::parse(&d.digest);
        }
    }
    if let Ok(c) = serde_json::from_slice::<ImageConfig>(data) {
        let _ = canonical_json(&c);
    }
    let _ = serde_json::from_slice::<Vec<DockerManifestEntry>>(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Sha256Digest::parse(s);
        let _ = ImageReference::parse(s);
    }
}
