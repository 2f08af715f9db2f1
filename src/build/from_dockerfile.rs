//! `rootstrap build -f Dockerfile CONTEXT`: runs the Dockerfile (a `FROM
//! some-recipe.toml` stage is built by [`super::build`]), then writes the
//! outputs, the SBOMs a recipe build also writes, the `-t` tags into the
//! local image store, and pushes the `registry:` outputs.
//!
//! The result lines (`PATH  DIGEST`, `NAME:TAG  DIGEST`, ...) go to the
//! caller's writer as the command prints them: the outputs' once all of
//! them are written (until then a failure removes the finished ones), then
//! each tag and push as it is done.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::provisional::Provisional;
use super::{BuildError, BuildOptions, BuildOutput, SourceOptions};
use crate::cleanup::TempPath;
use crate::distro::platform::Platform;
use crate::dockerfile::builder::{self, DockerfileBuildOptions, DockerfileError, StepCache};
use crate::image::publish::{Publication, PublishError};
use crate::image::store::ImageStore;
use crate::image::{ImageBuilder, ImageError, ImageSource, LayerCompression, OpenedImage, Output};
use crate::recipe;
use crate::report::SharedReporter;

#[derive(Debug, thiserror::Error)]
pub enum FromDockerfileError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("invalid SOURCE_DATE_EPOCH {0:?}: expected a non-negative integer")]
    Epoch(String),
    #[error("--require-signed-by")]
    SigningKey(#[source] crate::sign::SignError),
    #[error(transparent)]
    Output(#[from] BuildError),
    #[error("{0}: refusing to replace an existing directory or file")]
    OutputExists(String),
    #[error("nothing to write: give --output KIND:PATH and/or -t NAME:TAG")]
    NothingToWrite,
    #[error("building {path}")]
    Build {
        path: PathBuf,
        #[source]
        source: DockerfileError,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Export(#[from] crate::rootfs::export::ExportError),
    #[error("writing SBOMs")]
    Sbom(#[source] crate::sbom::SbomError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("writing the result")]
    Print(#[source] std::io::Error),
}

/// A `--secret` that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("--secret {spec}: unexpected {field:?} (id=ID,src=FILE or id=ID,env=VAR)")]
    Field { spec: String, field: String },
    #[error("--secret {spec}: id=ID is required")]
    NoId { spec: String },
    #[error("--secret {spec}: reading {path}")]
    Read {
        spec: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--secret {spec}: environment variable {var} is not set")]
    Env {
        spec: String,
        var: String,
        #[source]
        source: std::env::VarError,
    },
}

/// What `build -f` was asked for, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct DockerfileRequest {
    pub file: PathBuf,
    pub context: PathBuf,
    /// For `FROM some-recipe.toml` stages, and the cache dir.
    pub source: SourceOptions,
    /// `--output KIND:PATH`, `registry:REF` included.
    pub outputs: Vec<String>,
    /// `-t NAME:TAG`.
    pub tags: Vec<String>,
    pub work_dir: Option<PathBuf>,
    /// `--build-arg K=V`, or `K` to take the value from the environment.
    pub build_args: Vec<String>,
    /// `--secret id=ID,src=FILE` or `id=ID,env=VAR`.
    pub secrets: Vec<String>,
    pub target: Option<String>,
    pub squash: bool,
    pub no_cache: bool,
    pub compression: Option<LayerCompression>,
    /// `--slim`, for recipe stages.
    pub slim: bool,
    /// `--skip-foreign-scripts`, for recipe stages.
    pub skip_foreign_scripts: bool,
    /// `--platform A,B`: the platforms to build, one image each; several
    /// make one image index. Empty: `source.platform`, else this machine's.
    pub platforms: Vec<Platform>,
    /// `--require-signed-by PUBKEY`: bases pulled from a registry must be signed by it.
    pub require_signed_by: Option<PathBuf>,
    /// `--sign-key`: signs each image pushed to a `registry:` output.
    pub signer: Option<crate::image::publish::Signer>,
}

/// Runs the request; see the module documentation.
pub fn build_dockerfile(
    req: &DockerfileRequest,
    reporter: SharedReporter,
    out: &mut dyn Write,
) -> Result<(), FromDockerfileError> {
    let file = &req.file;
    let text = std::fs::read_to_string(file).map_err(|source| FromDockerfileError::Read {
        path: file.clone(),
        source,
    })?;
    let mut opts =
        DockerfileBuildOptions::new(req.work_dir.clone().unwrap_or_else(std::env::temp_dir));
    opts.build_args = build_args(&req.build_args);
    opts.target = req.target.clone();
    opts.squash = req.squash;
    opts.compression = req.compression.unwrap_or_default();
    let cache_dir = req
        .source
        .cache_dir
        .clone()
        .unwrap_or_else(super::default_cache_dir);
    if !req.no_cache {
        opts.cache = Some(StepCache::new(&cache_dir));
    }
    let store = ImageStore::new(&cache_dir);
    opts.store = Some(store.clone());
    opts.mount_cache_dir = Some(cache_dir.join("dockerfile-mounts"));
    if let Some(key) = &req.require_signed_by {
        opts.require_signed_by =
            Some(crate::sign::read_public_key(key).map_err(FromDockerfileError::SigningKey)?);
    }
    for spec in &req.secrets {
        let (id, data) = read_secret(spec)?;
        opts.secrets.insert(id, data);
    }
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let parsed = epoch.trim().parse::<i64>().ok().filter(|e| *e >= 0);
        opts.source_date_epoch = Some(parsed.ok_or(FromDockerfileError::Epoch(epoch))?);
    }
    let platforms = match (&req.platforms[..], &req.source.platform) {
        ([], Some(one)) => vec![one.clone()],
        (list, _) => list.to_vec(),
    };
    opts.platform = platforms.first().cloned();
    if platforms.len() > 1 {
        return build_index(req, &text, opts, &platforms, reporter, out);
    }
    let mut publication =
        Publication::plan(&req.outputs, &req.tags, req.work_dir.as_deref(), false)?;
    if let Some(signer) = &req.signer {
        publication.sign_pushes_with(signer.clone());
    }
    let mut outputs = Vec::new();
    if let Some(dir) = publication.staging_dir() {
        outputs.push(Output::OciDir(dir.to_owned()));
    }
    let mut rootfs_dirs = Vec::new();
    for o in &publication.local {
        match super::parse_output(o)? {
            BuildOutput::Image(output) => outputs.push(output),
            BuildOutput::RootfsDir(dir) if dir.symlink_metadata().is_ok() => {
                return Err(FromDockerfileError::OutputExists(o.clone()))
            }
            BuildOutput::RootfsDir(dir) => rootfs_dirs.push(dir),
        }
    }
    if outputs.is_empty() && publication.tags.is_empty() && rootfs_dirs.is_empty() {
        return Err(FromDockerfileError::NothingToWrite);
    }
    let tag = publication.tags.first().cloned();
    let base_dir = recipe_base_dir(&opts.work_dir);
    let from_recipe = |path: &Path, platform: &Platform| {
        build_recipe_base(req, &base_dir, path, platform, reporter.clone())
    };
    opts.recipe_base = Some(&from_recipe);
    let built =
        builder::build(&text, &req.context, &opts, reporter.as_ref()).map_err(|source| {
            FromDockerfileError::Build {
                path: file.clone(),
                source,
            }
        })?;
    if outputs
        .iter()
        .any(|o| matches!(o, Output::DockerArchive(_)))
        && crate::image::archive::has_zstd_layers(&built.image)
    {
        reporter.warn(crate::image::archive::ZSTD_DOCKER_NOTE);
    }
    let mut written_outputs = Vec::new();
    // All or nothing at the output paths: the result lines are printed
    // once every output and SBOM is written.
    let mut provisional = Provisional::default();
    let mut lines = Vec::new();
    for output in &outputs {
        let written =
            built
                .image
                .write(output, tag.as_ref())
                .map_err(|source| BuildError::WriteOutput {
                    path: output.path().to_owned(),
                    source,
                })?;
        if publication.is_staging(output.path()) {
            continue;
        }
        provisional.add_image(output);
        lines.push(format!(
            "{}  {}",
            output.path().display(),
            written.manifest_digest
        ));
        written_outputs.push((
            BuildOutput::Image(output.clone()),
            Some(written.manifest_digest.to_string()),
        ));
    }
    export_rootfs_outputs(&built.image, &rootfs_dirs, &opts.work_dir, |dir| {
        provisional.add(dir.to_owned());
        lines.push(dir.display().to_string());
    })?;
    // The same SBOMs a recipe build writes, from the final image's package db.
    let name = tag.as_ref().map(|t| t.familiar());
    crate::sbom::write_build_sboms(
        &built.image,
        &written_outputs,
        name.as_deref(),
        &Default::default(),
        None,
    )
    .map_err(FromDockerfileError::Sbom)?;
    provisional.keep();
    for line in lines {
        writeln!(out, "{line}").map_err(FromDockerfileError::Print)?;
    }
    publication.store_built(&store, &built.image, out)?;
    publication.push(reporter.as_ref(), out)?;
    Ok(())
}

/// Where `FROM some-recipe.toml` stages are built (removed with it).
fn recipe_base_dir(work_dir: &Path) -> TempPath {
    TempPath::new(work_dir.join(format!(".rootstrap-from-recipe-{}", std::process::id())))
}

/// `FROM some-recipe.toml`: builds the recipe for the stage's `platform`
/// into an OCI dir under `base_dir`. Without `--platform` a stage for this
/// machine builds the recipe as it says (its own `arch`).
fn build_recipe_base(
    req: &DockerfileRequest,
    base_dir: &TempPath,
    path: &Path,
    platform: &Platform,
    reporter: SharedReporter,
) -> Result<PathBuf, builder::RecipeBaseError> {
    let recipe = recipe::find(&path.to_string_lossy())?;
    std::fs::create_dir_all(base_dir.path())?;
    let mut source = req.source.clone();
    let explicit = !req.platforms.is_empty() || req.source.platform.is_some();
    if explicit || *platform != builder::host_platform() {
        source.platform = Some(platform.clone());
    }
    let mut key = Sha256::new();
    key.update(path.as_os_str().as_encoded_bytes());
    key.update(format!("\0{:?}", source.platform).as_bytes());
    let oci_dir = base_dir.path().join(format!("{:x}", key.finalize()));
    if oci_dir.exists() {
        return Ok(oci_dir);
    }
    let build_opts = BuildOptions {
        source,
        outputs: vec![BuildOutput::Image(Output::OciDir(oci_dir.clone()))],
        tags: Vec::new(),
        work_dir: req.work_dir.clone(),
        sandbox_helper: None,
        lock: None,
        no_step_cache: req.no_cache,
        compression: req.compression,
        slim: req.slim,
        skip_foreign_scripts: req.skip_foreign_scripts,
        // One platform: the stage's.
        platforms: Vec::new(),
    };
    super::build(&recipe, &build_opts, reporter)?;
    Ok(oci_dir)
}

/// `build -f --platform A,B`: the Dockerfile built once per platform, the
/// images written as one image index (with each platform's SBOMs) to each
/// `oci:DIR` output, stored under the `-t` names and pushed to the
/// `registry:` outputs. Other outputs are refused before building: an
/// archive or a tree holds one image.
fn build_index(
    req: &DockerfileRequest,
    text: &str,
    opts: DockerfileBuildOptions<'_>,
    platforms: &[Platform],
    reporter: SharedReporter,
    out: &mut dyn Write,
) -> Result<(), FromDockerfileError> {
    let listed = platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // `-t` and `registry:` read the index from a staged layout.
    let mut publication =
        Publication::plan(&req.outputs, &req.tags, req.work_dir.as_deref(), true)?;
    if let Some(signer) = &req.signer {
        publication.sign_pushes_with(signer.clone());
    }
    let mut dirs: Vec<PathBuf> = publication
        .staging_dir()
        .map(Path::to_owned)
        .into_iter()
        .collect();
    for o in &publication.local {
        match super::parse_output(o)? {
            BuildOutput::Image(Output::OciDir(dir)) if dir.symlink_metadata().is_ok() => {
                return Err(FromDockerfileError::OutputExists(o.clone()))
            }
            BuildOutput::Image(Output::OciDir(dir)) => dirs.push(dir),
            other => {
                return Err(BuildError::OnePlatformOutput {
                    output: other.path().to_owned(),
                    platforms: listed.clone(),
                }
                .into())
            }
        }
    }
    if dirs.is_empty() {
        return Err(FromDockerfileError::NothingToWrite);
    }
    let tag = publication.tags.first().cloned();
    let base_dir = recipe_base_dir(&opts.work_dir);
    let from_recipe = |path: &Path, platform: &Platform| {
        build_recipe_base(req, &base_dir, path, platform, reporter.clone())
    };
    // The same options, borrowing the closure above.
    let mut opts: DockerfileBuildOptions<'_> = opts;
    opts.recipe_base = Some(&from_recipe);
    // The platforms are built at once, as a recipe build's are.
    let results = super::at_once::for_platforms(
        super::at_once::Work::Build,
        platforms,
        &reporter,
        |platform, reporter| {
            let mut opts = opts.clone();
            opts.platform = Some(platform.clone());
            let built =
                builder::build(text, &req.context, &opts, reporter.as_ref()).map_err(|source| {
                    FromDockerfileError::Build {
                        path: req.file.clone(),
                        source,
                    }
                })?;
            // Only the image is needed from here on.
            drop(built.rootfs);
            Ok::<_, FromDockerfileError>(built.image)
        },
    );
    let images = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&ImageBuilder> = images.iter().collect();
    let name = tag.as_ref().map(|t| t.familiar());
    // All or nothing at the output paths, as for one platform.
    let mut provisional = Provisional::default();
    let mut lines = Vec::new();
    for dir in &dirs {
        let written = crate::image::multi::write_index_layout(&refs, dir, tag.as_ref()).map_err(
            |source| BuildError::WriteOutput {
                path: dir.clone(),
                source,
            },
        )?;
        let staging = publication.is_staging(dir);
        if !staging {
            provisional.add(dir.clone());
        }
        crate::sbom::write_index_sboms(&refs, &written, name.as_deref(), &[])
            .map_err(FromDockerfileError::Sbom)?;
        if !staging {
            lines.push(format!("{}  {}", dir.display(), written.index_digest));
        }
    }
    provisional.keep();
    for line in lines {
        writeln!(out, "{line}").map_err(FromDockerfileError::Print)?;
    }
    publication.store_staged(&store_of(req), out)?;
    publication.push(reporter.as_ref(), out)?;
    Ok(())
}

/// The local image store of the request's cache directory.
fn store_of(req: &DockerfileRequest) -> ImageStore {
    ImageStore::new(
        &req.source
            .cache_dir
            .clone()
            .unwrap_or_else(super::default_cache_dir),
    )
}

/// `--build-arg K=V`; a bare `K` takes the environment's value, and is
/// dropped when the environment has none (as Docker does).
fn build_args(specs: &[String]) -> HashMap<String, String> {
    let mut args = HashMap::new();
    for kv in specs {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(kv) {
                Ok(v) => (kv.clone(), v),
                Err(_) => continue,
            },
        };
        args.insert(k, v);
    }
    args
}

/// `--secret id=ID,src=FILE` (also `source=`) or `id=ID,env=VAR`; without
/// src or env, the environment variable named like the id, as Docker does.
pub fn read_secret(spec: &str) -> Result<(String, Vec<u8>), SecretError> {
    let (mut id, mut src, mut env) = (None, None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => {
                return Err(SecretError::Field {
                    spec: spec.to_owned(),
                    field: field.to_owned(),
                })
            }
        }
    }
    let id = id.ok_or_else(|| SecretError::NoId {
        spec: spec.to_owned(),
    })?;
    let data = match (src, env) {
        (Some(path), _) => std::fs::read(&path).map_err(|source| SecretError::Read {
            spec: spec.to_owned(),
            path,
            source,
        })?,
        (None, var) => {
            let var = var.unwrap_or_else(|| id.clone());
            std::env::var(&var)
                .map_err(|source| SecretError::Env {
                    spec: spec.to_owned(),
                    var,
                    source,
                })?
                .into_bytes()
        }
    };
    Ok((id, data))
}

/// `rootfs:DIR` outputs of a Dockerfile build: the final image's merged tree.
fn export_rootfs_outputs(
    image: &ImageBuilder,
    dirs: &[PathBuf],
    work_dir: &Path,
    mut exported: impl FnMut(&Path),
) -> Result<(), FromDockerfileError> {
    if dirs.is_empty() {
        return Ok(());
    }
    let layout = TempPath::new(work_dir.join(format!(".rootstrap-export-{}", std::process::id())));
    image.write(&Output::OciDir(layout.path().to_owned()), None)?;
    let opened = OpenedImage::open(&ImageSource::OciDir(layout.path().to_owned()), None)?;
    for dir in dirs {
        crate::rootfs::export::export_rootfs(&opened, dir)?;
        exported(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_into_outputs_and_the_store_and_reports_each() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("f"), b"from the context").unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f /f\nENV A=b\n").unwrap();
        let cache = tmp.path().join("cache");
        let oci = tmp.path().join("oci");
        let request = DockerfileRequest {
            file: ctx.join("Dockerfile"),
            context: ctx.clone(),
            source: SourceOptions {
                cache_dir: Some(cache.clone()),
                ..Default::default()
            },
            outputs: vec![format!("oci:{}", oci.display())],
            tags: vec!["thin/app:1".into()],
            work_dir: Some(tmp.path().to_owned()),
            no_cache: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        build_dockerfile(&request, crate::report::silent(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let digest = lines[0]
            .strip_prefix(&format!("{}  ", oci.display()))
            .unwrap();
        assert_eq!(lines[1], format!("thin/app:1  {digest}"));
        let stored = ImageStore::new(&cache).list().unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (stored[0].name.as_str(), stored[0].tag.as_str()),
            ("thin/app", "1")
        );
        assert_eq!(stored[0].digest, digest);
        // Nothing asked for is refused before anything is built.
        let nothing = DockerfileRequest {
            outputs: Vec::new(),
            tags: Vec::new(),
            ..request
        };
        let err = build_dockerfile(&nothing, crate::report::silent(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, FromDockerfileError::NothingToWrite), "{err}");
    }

    #[test]
    fn secrets_come_from_files_or_the_environment() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("token");
        std::fs::write(&file, b"s3cret").unwrap();
        let spec = format!("id=tok,src={}", file.display());
        assert_eq!(
            read_secret(&spec).unwrap(),
            ("tok".into(), b"s3cret".to_vec())
        );
        assert!(matches!(
            read_secret("id=x,bogus=1"),
            Err(SecretError::Field { .. })
        ));
        assert!(matches!(
            read_secret("src=/x"),
            Err(SecretError::NoId { .. })
        ));
        let err = read_secret("id=ROOTSTRAP_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(matches!(err, SecretError::Env { .. }), "{err}");
    }
}
