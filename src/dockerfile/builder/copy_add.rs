//! COPY and ADD: sources from the context, a stage or an image; ADD's URLs
//! (with `--checksum`) and local tar archives, unpacked by the hostile-safe
//! extractor.

use super::*;
use std::io::Read;

use crate::archive::decompress::{self, Compression};
use crate::dockerfile::copy::{self, CopyError, CopyOptions};
use crate::dockerfile::{CopySpec, DockerIgnore};
use crate::fetch::{redact, Cache, ClientConfig, Fetcher};
use crate::image::Sha256Digest;
use crate::rootfs::extract::{extract_tar, ExtractOptions};
use crate::rootfs::safe::{FileKind, RelPath, Root};
use crate::rootfs::sandbox::lookup_user;

impl Runner<'_> {
    /// COPY (`add` = None) and ADD (`add` = Some((checksum, unpack))).
    pub(super) fn copy(
        &mut self,
        state: &mut StageState<'_>,
        spec: &CopySpec,
        from: Option<&str>,
        add: Option<(Option<&str>, Option<bool>)>,
        at: &StepAt,
    ) -> Result<(), DockerfileError> {
        let owner = match spec.chown.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => {
                let (uid, gid, _) = lookup_user(state.root.path(), c).map_err(|e| at.fail(e))?;
                (uid, gid)
            }
            None => (0, 0),
        };
        let chmod = match spec.chmod.as_deref() {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| at.fail(format!("invalid --chmod={m}: expected octal")))?,
            ),
            None => None,
        };
        // A temporary root for `--from=<image>`; kept alive while copying.
        let mut other_image: Option<Finished> = None;
        let other_root;
        let (source, ignore): (&Root, Option<&DockerIgnore>) = match from {
            None => (&self.ctx.root, self.ctx.ignore.as_ref()),
            Some(name) => {
                let work_dir = &self.opts.work_dir;
                let bring_up_to_date = |f: &mut Finished| {
                    let root = Root::open(f.rootfs.path()).map_err(|e| at.fail(e))?;
                    materialize(work_dir, &f.image, &root, &mut f.applied)
                        .map_err(|e| at.fail(StepError::within(format!("--from={name}"), e)))?;
                    Ok::<_, DockerfileError>(f.rootfs.path().to_path_buf())
                };
                let dir = match self.stage_index(name) {
                    Some(i) => match self.done.get_mut(i) {
                        Some(Some(f)) => bring_up_to_date(f)?,
                        _ => return Err(at.fail("stage not available")),
                    },
                    None => {
                        let mut f = self.open_base(name, &self.target.clone(), at)?;
                        let p = bring_up_to_date(&mut f)?;
                        other_image = Some(f);
                        p
                    }
                };
                other_root = Root::open(&dir).map_err(|e| at.fail(e))?;
                (&other_root, None)
            }
        };
        let workdir = state.workdir();
        let dst_text = join_container_path(&workdir, &spec.dst);
        let dst =
            RelPath::from_container_path(dst_text.as_bytes()).unwrap_or_else(|_| RelPath::root());
        let count = spec.srcs.len() + spec.inline.len();
        let dst_is_dir = spec.dst.ends_with('/')
            || spec.dst.ends_with("/.")
            || spec.dst == "."
            || count > 1
            || state.root.is_dir(&dst);
        let epoch = self.opts.source_date_epoch;
        let opts = CopyOptions {
            owner: Some(owner),
            chmod,
            epoch,
            ignore,
        };
        let mut paths = Vec::new();
        for src in &spec.srcs {
            if add.is_some() && is_url(src) {
                continue;
            }
            let found = copy::expand_source(source, src, ignore).map_err(|e| at.fail(e))?;
            if found.len() > 1 && !dst_is_dir {
                return Err(at.fail("several sources need a destination directory ending in /"));
            }
            paths.extend(found);
        }
        if let Some(ignore) = ignore {
            if let Some(p) = paths.iter().find(|p| {
                !p.is_root() && ignore.is_excluded(&String::from_utf8_lossy(p.as_bytes()))
            }) {
                return Err(at.fail(format!("{p}: excluded by .dockerignore")));
            }
        }
        let into = |name: &[u8]| -> Result<RelPath, DockerfileError> {
            if dst_is_dir {
                dst.join(name).map_err(|e| at.fail(e))
            } else {
                Ok(dst.clone())
            }
        };
        for src in &spec.srcs {
            if let (Some((checksum, _)), true) = (add, is_url(src)) {
                let data = self.fetch_url(src, checksum, at)?;
                let name = url_file_name(src);
                let target = into(name.as_bytes())?;
                let mtime = epoch.unwrap_or(0);
                copy::write_data(
                    state.root,
                    &target,
                    &data,
                    chmod.unwrap_or(0o600),
                    mtime,
                    &opts,
                )
                .map_err(|e| at.fail(e))?;
            }
        }
        for inline in &spec.inline {
            let target = into(inline.name.as_bytes())?;
            copy::write_data(
                state.root,
                &target,
                inline.data.as_bytes(),
                chmod.unwrap_or(0o644),
                epoch.unwrap_or(0),
                &opts,
            )
            .map_err(|e| at.fail(e))?;
        }
        for path in &paths {
            let meta = source.lstat(path).map_err(|e| at.fail(e))?;
            let kind = meta.map(|m| m.kind);
            if kind == Some(FileKind::File) && add.is_some_and(|(_, unpack)| unpack != Some(false))
            {
                if let Some(compression) = tar_archive(source, path).map_err(|e| at.fail(e))? {
                    // An archive always unpacks into the destination directory.
                    self.extract_into(state, source, path, compression, &dst, at)?;
                    continue;
                }
            }
            let target = if kind == Some(FileKind::Dir) {
                dst.clone()
            } else {
                into(path.file_name())?
            };
            copy::copy_path(source, path, state.root, &target, &opts).map_err(|e| at.fail(e))?;
        }
        drop(other_image);
        Ok(())
    }

    /// ADD of a local tar: extracted by the hostile-safe extractor into a
    /// fresh directory, then merged into the destination (owners kept).
    pub(super) fn extract_into(
        &self,
        state: &mut StageState<'_>,
        source: &Root,
        path: &RelPath,
        compression: Compression,
        dst: &RelPath,
        at: &StepAt,
    ) -> Result<(), DockerfileError> {
        let file = source.open_read(path).map_err(|e| at.fail(e))?;
        let cap = add_decompression_cap(compression, &file).map_err(|e| at.fail(e))?;
        let reader = decompress::decoder(compression, std::io::BufReader::new(file), cap)
            .map_err(|e| at.fail(e))?;
        let mut xopts = ExtractOptions::new(String::from_utf8_lossy(path.as_bytes()).into_owned());
        xopts.mtime_clamp = self.opts.source_date_epoch;
        if dst.is_root() {
            // The classic `ADD rootfs.tar.gz /`: straight into the root,
            // keeping hard links.
            extract_tar(state.root, reader, &xopts, &|_, _| Ok(())).map_err(|e| at.fail(e))?;
            return Ok(());
        }
        let tmp = self.temp_dir(".rootstrap-add-", at)?;
        let tmp_root = Root::open(tmp.path()).map_err(|e| at.fail(e))?;
        extract_tar(&tmp_root, reader, &xopts, &|_, _| Ok(())).map_err(|e| at.fail(e))?;
        let opts = CopyOptions {
            owner: None,
            chmod: None,
            epoch: self.opts.source_date_epoch,
            ignore: None,
        };
        state.root.mkdir_all(dst, 0o755).map_err(|e| at.fail(e))?;
        copy::copy_path(&tmp_root, &RelPath::root(), state.root, dst, &opts)
            .map_err(|e: CopyError| at.fail(e))
    }

    pub(super) fn fetch_url(
        &mut self,
        url: &str,
        checksum: Option<&str>,
        at: &StepAt,
    ) -> Result<Vec<u8>, DockerfileError> {
        if self.fetcher.is_none() {
            let dir = self.temp_dir(".rootstrap-fetch-", at)?;
            let cache = Cache::open(dir.path()).map_err(|e| at.fail(e))?;
            let fetcher = Fetcher::new(
                ClientConfig::default().with_env_proxies(),
                cache,
                crate::report::silent(),
                false,
            )
            .map_err(|e| at.fail(e))?;
            self.fetcher = Some((fetcher, dir));
        }
        let Some((fetcher, _)) = &self.fetcher else {
            return Err(at.fail("no HTTP client"));
        };
        let expected = checksum
            .map(|c| {
                Sha256Digest::parse(c).map_err(|e| at.fail(StepError::within("--checksum", e)))
            })
            .transpose()?;
        let data = fetcher
            .fetch_bytes(url, MAX_URL_BYTES)
            .map_err(|e| at.fail(e))?;
        if let Some(expected) = expected {
            let actual = Sha256Digest::of(&data);
            if actual != expected {
                return Err(at.fail(format!(
                    "{}: checksum mismatch: expected {expected}, got {actual}",
                    redact(url)
                )));
            }
        }
        Ok(data)
    }
}

/// Largest file `ADD <url>` downloads.
pub(super) const MAX_URL_BYTES: u64 = 1 << 30;

/// `ADD` of a compressed tar stops once the tar it decompresses to grows
/// past this many times the compressed size (and past the floor below):
/// real archives stay far below it, a decompression bomb (HOSTILE 14,
/// CVE-2017-14992) runs into it after a bounded amount of work and disk.
pub(super) const ADD_MAX_EXPANSION: u64 = 100;

pub(super) const ADD_MIN_CAP: u64 = 256 << 20;

pub(super) fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// The file name ADD gives a downloaded URL: the last path segment.
pub(super) fn url_file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    after_host
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("index.html")
        .to_string()
}

/// Whether a context file is a tar archive (plain or gz/xz/zst), which ADD
/// unpacks; returns its compression.
/// How many bytes an ADD'ed archive may decompress to.
pub(super) fn add_decompression_cap(
    compression: Compression,
    file: &std::fs::File,
) -> std::io::Result<u64> {
    if compression == Compression::None {
        return Ok(u64::MAX);
    }
    let compressed = file.metadata()?.len();
    Ok(compressed
        .saturating_mul(ADD_MAX_EXPANSION)
        .max(ADD_MIN_CAP))
}

pub(super) fn tar_archive(root: &Root, path: &RelPath) -> Result<Option<Compression>, StepError> {
    let file = root.open_read(path)?;
    let mut head = Vec::new();
    file.take(512).read_to_end(&mut head)?;
    let compression = Compression::from_magic(&head);
    let mut block = Vec::new();
    if compression == Compression::None {
        block = head;
    } else {
        let file = root.open_read(path)?;
        let reader = decompress::decoder(compression, std::io::BufReader::new(file), 512)?;
        // A decoding error means it is not a compressed tar: copy it as is.
        let _ = reader.take(512).read_to_end(&mut block);
    }
    let is_tar = block.len() >= 263 && &block[257..262] == b"ustar";
    Ok(is_tar.then_some(compression))
}
