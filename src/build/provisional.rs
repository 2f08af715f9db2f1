//! A build's finished outputs, held provisionally until the last one is
//! written: each output is whole once renamed into place, but the build is
//! not. Until [`Provisional::keep`] a failure removes the finished ones
//! (the guards drop), and an interrupt until the command ends
//! (`cleanup::commit`) does too, so the output paths hold all or nothing.
//! The output that fails is left as it was: each is replaced atomically.

use std::path::{Path, PathBuf};

use crate::cleanup::TempPath;
use crate::image::Output;

#[derive(Default)]
pub(crate) struct Provisional {
    paths: Vec<TempPath>,
}

impl Provisional {
    /// A finished output at `path` (a file or a directory).
    pub(crate) fn add(&mut self, path: PathBuf) {
        self.paths.push(TempPath::new(path));
    }

    /// A finished image output and the SBOM files written beside it (an
    /// `oci:` layout carries its SBOMs inside).
    pub(crate) fn add_image(&mut self, output: &Output) {
        self.add_image_path(output.path(), matches!(output, Output::OciDir(_)));
    }

    fn add_image_path(&mut self, path: &Path, sboms_inside: bool) {
        self.add(path.to_owned());
        if !sboms_inside {
            for format in crate::sbom::SbomFormat::ALL {
                self.add(crate::sbom::sidecar_path(path, format));
            }
        }
    }

    /// Every output is written: they stay, unless the command is
    /// interrupted before it ends.
    pub(crate) fn keep(self) {
        for path in self.paths {
            path.keep_unless_interrupted();
        }
    }
}
