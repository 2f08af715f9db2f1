//! Trust anchors shipped with rootstrap (the files under keys/, embedded in
//! the binary so an installed `rootstrap` needs no data directory), and the
//! lookup of a recipe's `keys` entries.
//!
//! A recipe key entry is either a path relative to the recipe's directory
//! (an organisation's own key) or the name of a shipped key or key directory
//! (`debian/debian-archive-trixie-stable.pgp`, `alpine`). A file next to the
//! recipe wins, so a user can always override what is shipped.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key {name:?} (from recipe {recipe}): neither a file next to the recipe nor a key shipped with rootstrap (see `keys/README.md`)")]
    NotFound { name: String, recipe: PathBuf },
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One trust anchor: where it came from (for messages) and its bytes.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// Shipped-key name or file path, as the user would recognise it.
    pub origin: String,
    /// File name, which for Alpine keys is the key's identity.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

macro_rules! shipped {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/", $path)) as &[u8])),*]
    };
}

/// Every shipped key, by its path under keys/.
pub static SHIPPED: &[(&str, &[u8])] = shipped![
    "alpine/alpine-devel@lists.alpinelinux.org-4a6a0840.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-5243ef4b.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-524d27bb.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-5261cecb.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-58199dcc.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-58cbb476.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-58e4f17d.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-60ac2099.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-61666e3f.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-616a9724.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-616abc23.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-616ac3bc.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-616adfeb.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub",
    "alpine/alpine-devel@lists.alpinelinux.org-616db30d.rsa.pub",
    "debian/debian-archive-bookworm-automatic.pgp",
    "debian/debian-archive-bookworm-security-automatic.pgp",
    "debian/debian-archive-bookworm-stable.pgp",
    "debian/debian-archive-trixie-automatic.pgp",
    "debian/debian-archive-trixie-security-automatic.pgp",
    "debian/debian-archive-trixie-stable.pgp",
    "ubuntu/ubuntu-archive-keyring.gpg",
];

/// Resolves the recipe's key entries into key files, in order.
pub fn load_keys(
    recipe_dir: &Path,
    recipe_path: &Path,
    names: &[String],
) -> Result<Vec<KeyFile>, KeyError> {
    let mut out = Vec::new();
    for name in names {
        let local = recipe_dir.join(name);
        if local.is_file() {
            out.push(read_local(&local)?);
            continue;
        }
        if local.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&local)
                .map_err(|source| KeyError::Read {
                    path: local.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            for p in entries {
                out.push(read_local(&p)?);
            }
            continue;
        }
        let prefix = format!("{}/", name.trim_end_matches('/'));
        let matched: Vec<_> = SHIPPED
            .iter()
            .filter(|(path, _)| *path == name || path.starts_with(&prefix))
            .collect();
        if matched.is_empty() {
            return Err(KeyError::NotFound {
                name: name.clone(),
                recipe: recipe_path.to_owned(),
            });
        }
        out.extend(matched.into_iter().map(|(path, bytes)| KeyFile {
            origin: format!("shipped:{path}"),
            file_name: path.rsplit('/').next().unwrap_or(path).to_owned(),
            bytes: bytes.to_vec(),
        }));
    }
    Ok(out)
}

fn read_local(path: &Path) -> Result<KeyFile, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(KeyFile {
        origin: path.display().to_string(),
        file_name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_matches_keys_dir() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys");
        let mut on_disk = 0;
        for sub in ["debian", "ubuntu", "alpine"] {
            on_disk += std::fs::read_dir(dir.join(sub)).unwrap().count();
        }
        assert_eq!(
            on_disk,
            SHIPPED.len(),
            "keys/ and keys.rs disagree: regenerate the table"
        );
    }

    #[test]
    fn resolves_files_dirs_and_reports_missing() {
        let none = Path::new("/nonexistent-recipe-dir");
        let recipe = Path::new("r.toml");
        let one = load_keys(
            none,
            recipe,
            &["debian/debian-archive-trixie-stable.pgp".into()],
        )
        .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].file_name, "debian-archive-trixie-stable.pgp");
        let alpine = load_keys(none, recipe, &["alpine".into()]).unwrap();
        assert!(alpine.len() >= 16);
        assert!(alpine.iter().all(|k| k.file_name.ends_with(".rsa.pub")));
        let err = load_keys(none, recipe, &["debian/nope.pgp".into()]).unwrap_err();
        assert!(err.to_string().contains("debian/nope.pgp"));

        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("own.asc"), b"local").unwrap();
        let local = load_keys(tmp.path(), recipe, &["own.asc".into()]).unwrap();
        assert_eq!(local[0].bytes, b"local");
    }
}
