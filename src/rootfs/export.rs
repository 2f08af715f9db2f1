//! `rootfs:DIR` from an image: its layers applied in order (whiteouts
//! honoured) into a new directory, as BuildKit's `--output type=local`
//! exports a build's final tree. The tree is assembled beside the target
//! and renamed into place only when complete.

use std::path::{Path, PathBuf};

use crate::cleanup::TempPath;
use crate::image::{unpack_layers, ImageError, OpenedImage};
use crate::rootfs::image_sink::RootSink;
use crate::rootfs::safe::Root;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("rootfs output {path}: refusing to replace an existing directory or file")]
    Exists { path: PathBuf },
    #[error("rootfs output {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rootfs output {path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: ImageError,
    },
}

/// Writes the merged tree of `image` to `to`, which must not exist.
pub fn export_rootfs(image: &OpenedImage, to: &Path) -> Result<(), ExportError> {
    let io = |source| ExportError::Io {
        path: to.to_owned(),
        source,
    };
    if to.symlink_metadata().is_ok() {
        return Err(ExportError::Exists {
            path: to.to_owned(),
        });
    }
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = crate::cleanup::creating(|| {
        let dir = tempfile::Builder::new()
            .prefix(".rootstrap-rootfs-")
            .tempdir_in(parent)?;
        Ok(TempPath::new(dir.keep()))
    })
    .map_err(io)?;
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(io)?;
    let root = Root::open(tmp.path()).map_err(io)?;
    unpack_layers(image, &mut RootSink::new(&root)).map_err(|source| ExportError::Image {
        path: to.to_owned(),
        source,
    })?;
    drop(root);
    std::fs::rename(tmp.path(), to).map_err(io)?;
    tmp.persist();
    Ok(())
}
