//! What `rootstrap inspect` adds to the image module's report: the package
//! list, read from the package database inside the layers (dpkg's status
//! file or apk's installed db), without unpacking the image.

use std::io::Read;

use serde::Serialize;

use crate::distro::deb::control;
use crate::image::tar::EntryKind;
use crate::image::{ImageError, OpenedImage, TarReader};

/// The package databases we know, by path inside the image.
const DPKG_STATUS: &str = "var/lib/dpkg/status";
const APK_INSTALLED: &str = "lib/apk/db/installed";
/// A status file larger than this is not a status file.
const DB_LIMIT: u64 = 256 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
}

/// Packages recorded in the image's package database (from the last layer
/// that writes it), sorted by name. Empty when there is none.
pub fn installed_packages(image: &OpenedImage) -> Result<Vec<InstalledPackage>, ImageError> {
    let mut found: Option<(bool, Vec<u8>)> = None;
    for i in 0..image.layers.len() {
        let mut tar = TarReader::new(image.open_layer(i)?);
        while let Some(h) = tar.next_entry()? {
            let path = h.path.to_string_lossy();
            let path = path.trim_start_matches("./");
            let is_dpkg = path == DPKG_STATUS;
            if (is_dpkg || path == APK_INSTALLED) && h.kind == EntryKind::File {
                let mut bytes = Vec::new();
                tar.data()
                    .take(DB_LIMIT)
                    .read_to_end(&mut bytes)
                    .map_err(ImageError::io(path.to_owned()))?;
                found = Some((is_dpkg, bytes));
            }
        }
    }
    let Some((is_dpkg, bytes)) = found else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut pkgs = if is_dpkg {
        parse_dpkg_status(&text)
    } else {
        parse_apk_installed(&text)
    };
    pkgs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pkgs)
}

fn parse_dpkg_status(text: &str) -> Vec<InstalledPackage> {
    control::paragraphs(text)
        .flatten()
        .filter(|p| {
            p.get("Status")
                .is_some_and(|s| s.ends_with(" installed") || s.ends_with(" unpacked"))
        })
        .filter_map(|p| {
            Some(InstalledPackage {
                name: p.get("Package")?.to_owned(),
                version: p.get("Version")?.to_owned(),
                arch: p.get("Architecture").unwrap_or("").to_owned(),
            })
        })
        .collect()
}

fn parse_apk_installed(text: &str) -> Vec<InstalledPackage> {
    text.split("\n\n")
        .filter_map(|record| {
            let field = |k: &str| {
                record
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(str::to_owned)
            };
            Some(InstalledPackage {
                name: field("P:")?,
                version: field("V:")?,
                arch: field("A:").unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_databases() {
        let status =
            "Package: b\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 2\n\n";
        assert_eq!(
            parse_dpkg_status(status),
            [InstalledPackage {
                name: "b".into(),
                version: "1".into(),
                arch: "amd64".into()
            }]
        );
        let apk =
            "C:Q1x=\nP:musl\nV:1.2.5-r0\nA:x86_64\n\nC:Q1y=\nP:busybox\nV:1.36.1-r29\nA:x86_64\n\n";
        let names: Vec<_> = parse_apk_installed(apk)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["musl", "busybox"]);
    }
}
