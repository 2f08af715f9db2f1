//! What can go wrong in a Dockerfile build. A failing step is a
//! [`DockerfileError::Step`] naming the step, its line and instruction, with
//! the [`StepError`] that caused it as its source.

use crate::distro::platform::PlatformError;
use crate::dockerfile::copy::CopyError;
use crate::dockerfile::{ExpandError, ParseError, ParseErrorKind};
use crate::fetch::{CacheError, FetchError};
use crate::image::registry::RegistryError;
use crate::image::store::StoreError;
use crate::image::ImageError;
use crate::rootfs::emulation::EmulationError;
use crate::rootfs::extract::ExtractError;
use crate::rootfs::safe::{FsError, PathError};
use crate::rootfs::sandbox::{ExitStatus, SandboxError};
use crate::verify::digest::OciDigestError;

use super::RecipeBaseError;

#[derive(Debug, thiserror::Error)]
pub enum DockerfileError {
    #[error("Dockerfile line {}: {}", .0.line, .0.kind)]
    Parse(#[from] ParseError),
    #[error("step #{step} (line {line}) `{instruction}`: {source}")]
    Step {
        step: usize,
        line: usize,
        instruction: String,
        #[source]
        source: Box<StepError>,
    },
    #[error("step #{step} (line {line}) `{instruction}` failed: {status}")]
    RunFailed {
        step: usize,
        line: usize,
        instruction: String,
        status: ExitStatus,
    },
    #[error("target stage {0:?} not found")]
    UnknownTarget(String),
    #[error("the Dockerfile has no stage (no FROM)")]
    NoStage,
    #[error("a recipe's Dockerfile is applied on top of the recipe's image and must not contain FROM (line {0})")]
    FromInRecipe(usize),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Fs {
        path: String,
        #[source]
        source: Box<FsError>,
    },
    #[error("{path}: {source}")]
    Dockerignore {
        path: String,
        #[source]
        source: Box<ParseError>,
    },
}

/// Why a step failed. Wrapped errors keep their source; the messages of
/// [`StepError::Rejected`] name what in the Dockerfile cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Mount(#[from] ParseErrorKind),
    #[error(transparent)]
    Expand(#[from] ExpandError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Digest(#[from] OciDigestError),
    /// RUN in a stage of a platform this machine cannot run.
    #[error(transparent)]
    Emulation(#[from] EmulationError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// Bringing a stage's rootfs up to date failed.
    #[error(transparent)]
    Stage(Box<DockerfileError>),
    #[error("building recipe {base}: {source}")]
    Recipe {
        base: String,
        #[source]
        source: RecipeBaseError,
    },
    #[error(
        "{source}; FROM takes an image built here with -t, HOST[:PORT]/NAME[:TAG], a recipe \
         (recipe:NAME or a .toml file), oci:DIR, oci-archive:FILE, docker-archive:FILE, an earlier stage \
         or scratch"
    )]
    BaseName {
        #[source]
        source: ImageError,
    },
    #[error("{base}: refused by --require-signed-by: {source}")]
    Unsigned {
        base: String,
        #[source]
        source: crate::sign::SignError,
    },
    #[error(
        "{base} is not in the local image store (see `rootstrap images`), and pulling it \
         from its registry failed: {source}"
    )]
    Pull {
        base: String,
        #[source]
        source: RegistryError,
    },
    /// What the step was doing (`--mount=…`, `secret "id"`, ...) when
    /// `source` happened.
    #[error("{context}: {source}")]
    Within {
        context: String,
        #[source]
        source: Box<StepError>,
    },
    /// Something the Dockerfile asks for that cannot be done (an
    /// unsupported flag, a missing secret, a checksum mismatch, ...).
    #[error("{0}")]
    Rejected(String),
}

impl StepError {
    pub fn within(context: impl Into<String>, source: impl Into<StepError>) -> StepError {
        StepError::Within {
            context: context.into(),
            source: Box::new(source.into()),
        }
    }
}

impl From<DockerfileError> for StepError {
    fn from(e: DockerfileError) -> Self {
        StepError::Stage(Box::new(e))
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> Self {
        StepError::Rejected(message.to_owned())
    }
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError::Rejected(message)
    }
}

/// An EXPOSE value that is not a port, a port range or `PORT/PROTO`.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("invalid protocol in {0:?}")]
    Protocol(String),
    #[error("invalid port {0:?}")]
    Port(String),
    #[error("invalid port range {0:?}")]
    Range(String),
}
