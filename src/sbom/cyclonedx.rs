//! CycloneDX 1.5 JSON. The image is the metadata component (`type:
//! container`); every installed package is a `library` component whose
//! `bom-ref` is its purl.

use serde_json::{json, Map, Value};

use super::{ChecksumAlgorithm, Sbom, SbomPackage};

const IMAGE_REF: &str = "image";

fn algorithm(a: ChecksumAlgorithm) -> &'static str {
    match a {
        ChecksumAlgorithm::Sha1 => "SHA-1",
        ChecksumAlgorithm::Sha256 => "SHA-256",
    }
}

fn property(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

fn component(p: &SbomPackage) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("library"));
    m.insert("bom-ref".into(), json!(p.purl));
    if let Some(s) = &p.supplier {
        let mut supplier = json!({"name": s.name});
        if let Some(e) = &s.email {
            supplier["contact"] = json!([{"email": e}]);
        }
        m.insert("supplier".into(), supplier);
    }
    m.insert("name".into(), json!(p.name));
    m.insert("version".into(), json!(p.version));
    if !p.checksums.is_empty() {
        let hashes: Vec<Value> = p
            .checksums
            .iter()
            .map(|c| json!({"alg": algorithm(c.algorithm), "content": c.value}))
            .collect();
        m.insert("hashes".into(), Value::Array(hashes));
    }
    if let Some(l) = &p.license {
        // An expression always: the schema checks `license.id` against its
        // own SPDX list, and a LicenseRef is only valid inside an expression.
        m.insert("licenses".into(), json!([{"expression": l.expression}]));
    }
    m.insert("purl".into(), json!(p.purl));
    let mut props = vec![
        property("rootstrap:package:arch", &p.arch),
        property("rootstrap:package:source-name", &p.source_name),
    ];
    if let Some(v) = &p.source_version {
        props.push(property("rootstrap:package:source-version", v));
    }
    m.insert("properties".into(), Value::Array(props));
    Value::Object(m)
}

/// The CycloneDX 1.5 BOM as JSON.
pub fn to_json(sbom: &Sbom) -> Value {
    let image = &sbom.image;
    let components: Vec<Value> = sbom.packages.iter().map(component).collect();
    let refs: Vec<&str> = sbom.packages.iter().map(|p| p.purl.as_str()).collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", image.uuid("cyclonedx")),
        "version": 1,
        "metadata": {
            "timestamp": image.created,
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "rootstrap",
                    "version": sbom.tool_version,
                }],
            },
            "component": {
                "type": "container",
                "bom-ref": IMAGE_REF,
                "name": image.name,
                "version": image.digest.to_string(),
                "hashes": [{"alg": "SHA-256", "content": image.digest.to_hex()}],
            },
        },
        "components": components,
        "dependencies": [{"ref": IMAGE_REF, "dependsOn": refs}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Sha256Digest;
    use crate::sbom::{Checksum, ImageIdentity, LicenseExpression, Supplier};

    fn sample() -> Sbom {
        Sbom {
            image: ImageIdentity::new(None, Sha256Digest::of(b"m"), Some("2025-05-01T00:00:00Z")),
            tool_version: "0.1.0".into(),
            packages: vec![SbomPackage {
                name: "musl".into(),
                version: "1.2.5-r0".into(),
                arch: "x86_64".into(),
                source_name: "musl".into(),
                source_version: None,
                license: LicenseExpression::from_spdx_like("MIT"),
                purl: "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64".into(),
                checksums: vec![Checksum {
                    algorithm: ChecksumAlgorithm::Sha1,
                    value: "0a".repeat(20),
                }],
                supplier: Supplier::parse("Natanael Copa <ncopa@alpinelinux.org>"),
            }],
        }
    }

    #[test]
    fn bom_fields() {
        let bom = to_json(&sample());
        assert_eq!(bom["specVersion"], "1.5");
        let serial = bom["serialNumber"].as_str().unwrap_or_default();
        assert!(
            serial.starts_with("urn:uuid:") && serial.len() == 45,
            "{serial}"
        );
        assert_eq!(bom["metadata"]["timestamp"], "2025-05-01T00:00:00Z");
        let c = &bom["components"][0];
        assert_eq!(c["bom-ref"], c["purl"]);
        assert_eq!(c["hashes"][0]["alg"], "SHA-1");
        assert_eq!(c["licenses"][0]["expression"], "MIT");
        assert_eq!(
            c["supplier"]["contact"][0]["email"],
            "ncopa@alpinelinux.org"
        );
        assert_eq!(bom["dependencies"][0]["dependsOn"][0], c["purl"]);
    }

    #[test]
    fn serial_number_follows_the_digest() {
        let a = to_json(&sample());
        let mut other = sample();
        other.image.digest = Sha256Digest::of(b"n");
        assert_ne!(a["serialNumber"], to_json(&other)["serialNumber"]);
        assert_eq!(a, to_json(&sample()));
    }
}
