//! SPDX 2.3 JSON. The image is a package (`SPDXRef-Image`) the document
//! describes and that CONTAINS every installed package.

use serde_json::{json, Map, Value};

use super::{ChecksumAlgorithm, Sbom, SbomPackage, Supplier};

const NOASSERTION: &str = "NOASSERTION";

/// Characters outside `[A-Za-z0-9.-]` are not allowed in SPDX identifiers.
fn id_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Unique by position (packages are sorted), readable by name.
fn package_id(index: usize, p: &SbomPackage) -> String {
    format!("SPDXRef-Package-{index}-{}", id_safe(&p.name))
}

fn actor(s: &Supplier) -> String {
    match &s.email {
        Some(e) => format!("Person: {} ({e})", s.name),
        None => format!("Person: {}", s.name),
    }
}

fn algorithm(a: ChecksumAlgorithm) -> &'static str {
    match a {
        ChecksumAlgorithm::Sha1 => "SHA1",
        ChecksumAlgorithm::Sha256 => "SHA256",
    }
}

fn package(index: usize, p: &SbomPackage) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(p.name));
    m.insert("SPDXID".into(), json!(package_id(index, p)));
    m.insert("versionInfo".into(), json!(p.version));
    m.insert(
        "supplier".into(),
        json!(p
            .supplier
            .as_ref()
            .map_or_else(|| NOASSERTION.into(), actor)),
    );
    m.insert("downloadLocation".into(), json!(NOASSERTION));
    m.insert("filesAnalyzed".into(), json!(false));
    if !p.checksums.is_empty() {
        let sums: Vec<Value> = p
            .checksums
            .iter()
            .map(|c| json!({"algorithm": algorithm(c.algorithm), "checksumValue": c.value}))
            .collect();
        m.insert("checksums".into(), Value::Array(sums));
    }
    let source = match &p.source_version {
        Some(v) => format!("{} {v}", p.source_name),
        None => format!("{} {}", p.source_name, p.version),
    };
    m.insert(
        "sourceInfo".into(),
        json!(format!("built package from: {source}")),
    );
    m.insert("licenseConcluded".into(), json!(NOASSERTION));
    m.insert(
        "licenseDeclared".into(),
        json!(p
            .license
            .as_ref()
            .map_or(NOASSERTION, |l| l.expression.as_str())),
    );
    m.insert("copyrightText".into(), json!(NOASSERTION));
    m.insert(
        "externalRefs".into(),
        json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": p.purl,
        }]),
    );
    Value::Object(m)
}

/// `LicenseRef-`s must be defined in the document, once each.
fn extracted_licenses(sbom: &Sbom) -> Vec<Value> {
    let mut refs: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for p in &sbom.packages {
        for (id, text) in p.license.iter().flat_map(|l| l.refs.iter()) {
            let texts = refs.entry(id.as_str()).or_default();
            for t in text.split("; ") {
                if !texts.contains(&t) {
                    texts.push(t);
                }
            }
        }
    }
    refs.into_iter()
        .map(|(id, texts)| {
            json!({
                "licenseId": id,
                "name": texts.join("; "),
                "extractedText": format!(
                    "License named \"{}\" by the distribution's package metadata; its text is in the package's copyright file.",
                    texts.join("\", \"")
                ),
            })
        })
        .collect()
}

/// The SPDX 2.3 document as JSON.
pub fn to_json(sbom: &Sbom) -> Value {
    let image = &sbom.image;
    let digest_hex = image.digest.to_hex();
    let mut image_pkg = json!({
        "name": image.name,
        "SPDXID": "SPDXRef-Image",
        "versionInfo": image.digest.to_string(),
        "supplier": NOASSERTION,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "checksums": [{"algorithm": "SHA256", "checksumValue": digest_hex}],
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    });
    let repo = image.name.split(':').next().unwrap_or(&image.name);
    let short = repo.rsplit('/').next().unwrap_or(repo).to_ascii_lowercase();
    image_pkg["externalRefs"] = json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": super::purl_oci(&short, &image.digest.to_string()),
    }]);
    let mut packages = vec![image_pkg];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (i, p) in sbom.packages.iter().enumerate() {
        packages.push(package(i, p));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": package_id(i, p),
        }));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image.name,
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/rootstrap/{}-{digest_hex}",
            id_safe(&image.name)
        ),
        "creationInfo": {
            "created": image.created,
            "creators": [format!("Tool: rootstrap-{}", sbom.tool_version)],
        },
        "packages": packages,
        "relationships": relationships,
    });
    let extracted = extracted_licenses(sbom);
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(extracted);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Sha256Digest;
    use crate::sbom::{Checksum, ImageIdentity, LicenseExpression};

    fn sample() -> Sbom {
        let pkg = |name: &str, license: Option<&str>| SbomPackage {
            name: name.into(),
            version: "1.0-1".into(),
            arch: "amd64".into(),
            source_name: "src".into(),
            source_version: None,
            license: license
                .map(|l| LicenseExpression::from_debian(&[l.to_string()]).expect("license")),
            purl: format!("pkg:deb/debian/{name}@1.0-1?arch=amd64"),
            checksums: vec![Checksum {
                algorithm: ChecksumAlgorithm::Sha256,
                value: "ab".repeat(32),
            }],
            supplier: Supplier::parse("Ann <ann@example.org>"),
        };
        Sbom {
            image: ImageIdentity::new(
                Some("rootstrap/debian:trixie"),
                Sha256Digest::of(b"manifest"),
                Some("2025-05-01T00:00:00Z"),
            ),
            tool_version: "0.1.0".into(),
            packages: vec![pkg("g++", Some("public-domain")), pkg("libc6", None)],
        }
    }

    #[test]
    fn document_fields() {
        let doc = to_json(&sample());
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "2025-05-01T00:00:00Z");
        let ns = doc["documentNamespace"].as_str().unwrap_or_default();
        assert!(
            ns.ends_with(&Sha256Digest::of(b"manifest").to_hex()),
            "{ns}"
        );
        let pkgs = doc["packages"].as_array().cloned().unwrap_or_default();
        assert_eq!(pkgs.len(), 3);
        assert_eq!(pkgs[1]["SPDXID"], "SPDXRef-Package-0-g--");
        assert_eq!(pkgs[1]["supplier"], "Person: Ann (ann@example.org)");
        assert_eq!(pkgs[1]["licenseDeclared"], "LicenseRef-public-domain");
        assert_eq!(pkgs[2]["licenseDeclared"], "NOASSERTION");
        assert_eq!(pkgs[1]["checksums"][0]["algorithm"], "SHA256");
        assert_eq!(
            pkgs[2]["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libc6@1.0-1?arch=amd64"
        );
        assert_eq!(
            doc["hasExtractedLicensingInfos"][0]["licenseId"],
            "LicenseRef-public-domain"
        );
        assert_eq!(doc["relationships"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn same_model_same_bytes() {
        let a = crate::sbom::SbomFormat::Spdx.render(&sample());
        let b = crate::sbom::SbomFormat::Spdx.render(&sample());
        assert_eq!(a, b);
    }
}
