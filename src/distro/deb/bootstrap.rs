//! The Debian/Ubuntu back end, end to end: signed index → package set →
//! verified .debs → unpacked rootfs → stage 2 in the sandbox → normalised.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::apt_state::{self, AptRequest};
use super::dpkgdb::{self, UnpackOptions, UnpackedPackage};
use super::essential_first;
use super::index_choice;
use super::packages::{
    parse_packages, piece_error_in, summarize_detached, BinaryPackage, MultiArch, PackagesError,
    StanzaSummary,
};
use super::release::{IndexCompression, IndexFile, Release, ReleaseError, ReleasePolicy};
use super::release_memory::ReleaseMemory;
use super::resolve::{self, Plan, Request, Universe, Variant};
use super::slim;
use super::stage2::{self, Stage2Package};
use super::version::Version;
use crate::archive::decompress;
use crate::archive::tar::EntryKind;
use crate::cleanup::TempPath;
use crate::fetch::{FetchItem, Fetcher};
use crate::report::Reporter;
use crate::rootfs::extract::Claimed;
use crate::rootfs::merge::{self, MergeError};
use crate::rootfs::safe::{FileKind, RelPath, Root};
use crate::rootfs::sandbox::{self, Network, RunSpec, Sandbox};
use crate::verify::{verify_inrelease, Keyring, Sha256Digest};

/// Decompressed Packages indexes larger than this are refused (trixie's main
/// amd64 index is ~60 MB).
const PACKAGES_LIMIT: u64 = 1 << 30;
/// InRelease files are ~150 KB; anything near this is not an InRelease.
const INRELEASE_LIMIT: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error("{url}: {source}")]
    Signature {
        url: String,
        source: crate::verify::VerifyError,
    },
    #[error("{url}: {source}")]
    Release {
        url: String,
        source: super::release::ReleaseError,
    },
    #[error("{url}: {source}")]
    Packages {
        url: String,
        source: super::packages::PackagesError,
    },
    #[error("{url}: cannot decompress: {source}")]
    Decompress { url: String, source: std::io::Error },
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error("invalid version pin {pin:?} for {package}: {message}")]
    Pin {
        package: String,
        pin: String,
        message: String,
    },
    #[error("the lock does not match the signed index ({} package(s)):\n  {}", problems.len(), problems.join("\n  "))]
    Locked { problems: Vec<String> },
    #[error(transparent)]
    Unpack(#[from] dpkgdb::UnpackError),
    #[error(transparent)]
    Database(#[from] dpkgdb::DpkgDbError),
    #[error("rootfs {path}: {source}")]
    Rootfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rootfs: {0}")]
    Fs(#[from] crate::rootfs::safe::FsError),
    #[error(transparent)]
    Path(#[from] crate::rootfs::safe::PathError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("moving the packages unpacked on the side into the rootfs: {0}")]
    Merge(#[from] MergeError),
    #[error(transparent)]
    AptState(#[from] apt_state::AptStateError),
    #[error("maintainer scripts failed at {step} ({status}); last output:\n{tail}")]
    Stage2 {
        step: String,
        status: String,
        tail: String,
    },
}

/// Where and what to bootstrap.
#[derive(Debug, Clone)]
pub struct DebSource {
    pub mirror: String,
    pub suite: String,
    pub components: Vec<String>,
    pub arch: String,
    pub variant: Variant,
    /// `[packages] install`, with optional version pins.
    pub include: Vec<(String, Option<String>)>,
    /// The snapshot timestamp when `mirror` is a Debian snapshot: its
    /// Release's Valid-Until is then not checked.
    pub snapshot: Option<String>,
}

/// A Packages file a build read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedIndex {
    /// Path relative to `dists/<suite>/`, as the Release lists it.
    pub path: String,
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// A verified Release and the package universe built from its indexes.
pub struct LoadedIndex {
    pub release: Release,
    pub universe: Universe,
    /// InRelease URL and the fingerprint of the key that signed it.
    pub signed_by: String,
    /// The Packages file read for each component (for lockfiles).
    pub index_files: Vec<UsedIndex>,
    /// Digest and size of the InRelease bytes verified, which are also kept
    /// in the download cache under that digest (`rootstrap mirror`).
    pub inrelease: (Sha256Digest, u64),
}

fn now_secs(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Fetches and verifies InRelease, then each component's Packages index
/// (checked against the signed Release), and builds the universe.
///
/// With `memory`, the Release must be no older than the last one accepted
/// from the same URL and have the same identity; it becomes the remembered
/// one, and the kept copy for offline builds, only once the Packages
/// indexes it lists were fetched and verified too.
pub fn load_index(
    fetcher: &Fetcher,
    keyring: &Keyring,
    src: &DebSource,
    now: SystemTime,
    reporter: &dyn Reporter,
    plan_cache: Option<&Path>,
    memory: Option<&ReleaseMemory>,
) -> Result<LoadedIndex, BootstrapError> {
    let dists = format!("{}/dists/{}", src.mirror, src.suite);
    let url = format!("{dists}/InRelease");
    let (bytes, speed) = fetcher.fetch_index_timed(&url, INRELEASE_LIMIT)?;
    // Nothing downloaded (offline, file://): reading is as fast as it gets.
    let link = speed.unwrap_or(f64::INFINITY);
    let verified =
        verify_inrelease(&bytes, keyring, now).map_err(|source| BootstrapError::Signature {
            url: url.clone(),
            source,
        })?;
    let inrelease = remember_in_cache(fetcher, &bytes, reporter);
    let release = Release::parse(&verified.text).map_err(|source| BootstrapError::Release {
        url: url.clone(),
        source,
    })?;
    let mut policy = ReleasePolicy::for_source(now_secs(now), &src.suite, src.snapshot.is_some());
    if let Some(previous) = memory.and_then(|m| m.previous(&url)) {
        policy.previous_date = Some(previous.date);
        policy.previous_identity = Some(previous.identity());
    }
    match release.check(&policy) {
        Ok(()) => {}
        Err(source @ (ReleaseError::Replay { .. } | ReleaseError::Drift { .. }))
            if memory.is_some_and(|m| m.accept_change) =>
        {
            reporter.warn(&format!(
                "{}: {source}; accepted once (--accept-release-change)",
                crate::fetch::redact(&url)
            ));
        }
        Err(source) => {
            return Err(BootstrapError::Release {
                url: url.clone(),
                source,
            })
        }
    }
    reporter.info(&format!(
        "{url}: signed by {}, dated {}",
        verified.signer_fingerprint,
        release
            .date
            .map(crate::image::oci::format_timestamp)
            .unwrap_or_else(|| "(no date)".into())
    ));

    // Which index files this Release names, before fetching any of them.
    let mut wanted = Vec::new();
    for component in &src.components {
        let listed = release
            .packages_indexes(component, &src.arch)
            .map_err(|source| BootstrapError::Release {
                url: url.clone(),
                source,
            })?;
        wanted.push(ComponentIndex::choose(&release, listed, fetcher, link));
    }
    let plans = plan_cache.map(|dir| PlanCache::new(dir, src, &wanted));
    let accepted = |release: &Release| {
        fetcher.keep_index(&url, &bytes);
        if let Some(memory) = memory {
            if let Err(e) = memory.remember(&url, release) {
                reporter.warn(&format!(
                    "cannot remember the Release of {}: {e}",
                    crate::fetch::redact(&url)
                ));
            }
        }
    };
    if let Some(universe) = plans.as_ref().and_then(|c| c.load(src)) {
        reporter.info("package plan reused (same signed indexes and request)");
        accepted(&release);
        return Ok(LoadedIndex {
            universe,
            release,
            signed_by: verified.signer_fingerprint,
            index_files: wanted.iter().map(ComponentIndex::already_read).collect(),
            inrelease,
        });
    }

    let mut indexes = Vec::new();
    let mut index_files = Vec::new();
    for w in &wanted {
        let (used, compression, local) = w.fetch(fetcher, &dists)?;
        let index_url = format!("{dists}/{}", used.path);
        let (text, stanzas) = read_index(&local, compression, &index_url, w.text_size)?;
        reporter.info(&format!("{index_url}: {} packages", stanzas.len()));
        indexes.push((text, stanzas));
        index_files.push(used);
    }
    accepted(&release);
    let loaded = LoadedIndex {
        universe: Universe::from_indexes(indexes, &src.arch),
        release,
        signed_by: verified.signer_fingerprint,
        index_files,
        inrelease,
    };
    if let Some(cache) = &plans {
        if let Ok(plan) = plan_in(&loaded.universe, src) {
            cache.store(&plan);
        }
    }
    Ok(loaded)
}

/// One component's Packages indexes, in the order to try them.
struct ComponentIndex {
    /// Best first (see [`index_choice`]); never empty.
    options: Vec<IndexOption>,
    /// The decoded text's size, when the Release lists it.
    text_size: Option<u64>,
    /// Names the index whatever compression is read: the decoded text's
    /// digest when the Release lists it, else the first option's.
    identity: Sha256Digest,
}

struct IndexOption {
    file: UsedIndex,
    compression: IndexCompression,
    /// In the download cache when the choice was made.
    cached: bool,
}

impl ComponentIndex {
    fn choose(
        release: &Release,
        listed: Vec<(&str, &IndexFile, IndexCompression)>,
        fetcher: &Fetcher,
        link_bytes_per_sec: f64,
    ) -> ComponentIndex {
        let text = text_entry(release, listed[0].0);
        let cached: Vec<bool> = listed
            .iter()
            .map(|(_, file, _)| {
                fetcher
                    .cache()
                    .get_sized(&Sha256Digest(file.sha256), file.size)
                    .is_some()
            })
            .collect();
        let candidates: Vec<index_choice::Candidate> = listed
            .iter()
            .zip(&cached)
            .map(
                |((_, file, compression), &cached)| index_choice::Candidate {
                    compression: *compression,
                    size: file.size,
                    text_size: text.map(|t| t.size),
                    cached,
                },
            )
            .collect();
        let options: Vec<IndexOption> =
            index_choice::order_by_cost(&candidates, link_bytes_per_sec)
                .into_iter()
                .map(|i| IndexOption {
                    file: UsedIndex {
                        path: listed[i].0.to_owned(),
                        size: listed[i].1.size,
                        sha256: Sha256Digest(listed[i].1.sha256),
                    },
                    compression: listed[i].2,
                    cached: cached[i],
                })
                .collect();
        ComponentIndex {
            identity: text.map_or(options[0].file.sha256, |t| Sha256Digest(t.sha256)),
            text_size: text.map(|t| t.size.min(PACKAGES_SIZE_HINT_LIMIT)),
            options,
        }
    }

    /// The file a plan-cache hit stands for: the plan was stored by a build
    /// that read one of these, so it is in the cache (a lock records it, and
    /// `rootstrap mirror` copies it from there); the first choice otherwise.
    fn already_read(&self) -> UsedIndex {
        self.options
            .iter()
            .find(|o| o.cached)
            .unwrap_or(&self.options[0])
            .file
            .clone()
    }

    /// Fetches the first option the mirror has, checked against the
    /// Release; a listed file the mirror lacks falls through to the next.
    fn fetch(
        &self,
        fetcher: &Fetcher,
        dists: &str,
    ) -> Result<(UsedIndex, IndexCompression, PathBuf), BootstrapError> {
        let mut options = self.options.iter().peekable();
        loop {
            let option = options.next().expect("never empty");
            let used = &option.file;
            let url = format!("{dists}/{}", used.path);
            match fetcher.fetch_verified(&url, used.size, &used.sha256) {
                Ok(local) => return Ok((used.clone(), option.compression, local)),
                Err(e) if e.is_missing() && options.peek().is_some() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Keeps a fetched index file in the content-addressed cache, so a lock
/// that records its digest can later be turned into a mirror. Best effort:
/// a full disk only costs that.
fn remember_in_cache(
    fetcher: &Fetcher,
    bytes: &[u8],
    reporter: &dyn Reporter,
) -> (Sha256Digest, u64) {
    let digest = Sha256Digest::of(bytes);
    if fetcher
        .cache()
        .get_sized(&digest, bytes.len() as u64)
        .is_none()
    {
        if let Err(e) = fetcher.cache().insert_bytes(bytes) {
            reporter.warn(&format!("could not keep the InRelease in the cache: {e}"));
        }
    }
    (digest, bytes.len() as u64)
}

/// The packages of a resolved plan, keyed by the signed index digests and
/// the request. A warm build then parses ~80 stanzas instead of the whole
/// 60 MB index. The plan is resolved again from them, and used only if that
/// selects every cached package — the sub-universe must be closed under the
/// request, or the full index is loaded as usual.
struct PlanCache {
    path: PathBuf,
}

impl PlanCache {
    fn new(cache_dir: &Path, src: &DebSource, indexes: &[ComponentIndex]) -> PlanCache {
        let mut parts = vec![
            "plan-v1".to_owned(),
            src.arch.clone(),
            src.variant.to_string(),
        ];
        parts.extend(
            src.include
                .iter()
                .map(|(n, v)| format!("{n}={}", v.as_deref().unwrap_or(""))),
        );
        parts.extend(indexes.iter().map(|i| i.identity.to_hex()));
        let key = crate::layer_cache::key(&parts);
        PlanCache {
            path: cache_dir.join("plans").join(format!("{key}.packages")),
        }
    }

    fn load(&self, src: &DebSource) -> Option<Universe> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let packages = parse_packages(&text).ok()?;
        let count = packages.len();
        let universe = Universe::new(packages, &src.arch);
        let closed = plan_in(&universe, src).is_ok_and(|p| p.packages.len() == count);
        closed.then_some(universe)
    }

    fn store(&self, plan: &Plan<'_>) {
        let text: String = plan.packages.iter().map(|p| p.to_stanza()).collect();
        let Some(dir) = self.path.parent() else {
            return;
        };
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let ok = std::fs::create_dir_all(dir).is_ok()
            && std::fs::write(&tmp, text).is_ok()
            && std::fs::rename(&tmp, &self.path).is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// The Release's entry for the decoded text of the index at `path` (the
/// uncompressed `Packages`, which Debian lists but does not serve): its
/// size lets read_index reserve the text up front instead of growing by
/// doubling (which briefly holds 1.5× the text).
fn text_entry<'r>(release: &'r Release, path: &str) -> Option<&'r IndexFile> {
    let stem = [IndexCompression::Xz, IndexCompression::Gz]
        .iter()
        .find_map(|c| path.strip_suffix(c.extension()))
        .unwrap_or(path);
    release.files.get(stem)
}

/// Largest up-front reservation taken from a Release's size field.
const PACKAGES_SIZE_HINT_LIMIT: u64 = 256 << 20;

/// Decodes an index and checks and summarizes its stanzas at the same
/// time: a thread decompresses (xz is the slow step, ~0.6 s for trixie's
/// 57 MB main index) and hands over pieces cut at stanza boundaries, which
/// are summarized here while the next piece decodes.
fn read_index(
    path: &Path,
    compression: IndexCompression,
    url: &str,
    size_hint: Option<u64>,
) -> Result<(String, Vec<StanzaSummary>), BootstrapError> {
    let kind = match compression {
        IndexCompression::Xz => decompress::Compression::Xz,
        IndexCompression::Gz => decompress::Compression::Gzip,
        IndexCompression::None => decompress::Compression::None,
    };
    let err = |source| BootstrapError::Decompress {
        url: url.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let (pieces, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let mut text = String::with_capacity(size_hint.unwrap_or(0) as usize);
    // (piece start, its summaries), in whatever order the checks finish.
    type Checked = (usize, Result<Vec<StanzaSummary>, PackagesError>);
    let checked: Mutex<Vec<Checked>> = Mutex::new(Vec::new());
    // Pieces handed to the pool and not yet checked: bounded, so a checker
    // slower than the decoder does not hold a second copy of the text.
    let in_flight = (Mutex::new(0usize), std::sync::Condvar::new());
    let (decoded, assembled) = std::thread::scope(|scope| {
        let decoder = scope.spawn(move || decode_in_pieces(kind, file, &pieces));
        // Pieces are checked on the pool while the next ones decode (gzip
        // decodes faster than one core can check), and appended here.
        let assembled: Result<(), BootstrapError> = rayon::in_place_scope(|pool| {
            for piece in &received {
                let piece = String::from_utf8(piece).map_err(|_| {
                    err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the index is not UTF-8",
                    ))
                })?;
                let start = text.len();
                text.push_str(&piece);
                let (count, changed) = &in_flight;
                let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
                while *n >= MAX_PIECES_IN_FLIGHT {
                    n = changed.wait(n).unwrap_or_else(|e| e.into_inner());
                }
                *n += 1;
                drop(n);
                let (checked, in_flight) = (&checked, &in_flight);
                pool.spawn(move |_| {
                    let result = summarize_detached(&piece, start);
                    checked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((start, result));
                    *in_flight.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                    in_flight.1.notify_one();
                });
            }
            Ok(())
        });
        // The decoder stops at its next send once nobody receives.
        drop(received);
        let decoded = decoder
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the index decoder thread panicked")));
        (decoded, assembled)
    });
    // A decoding failure explains a parse failure of the piece it cut short.
    decoded.map_err(err)?;
    assembled?;
    let mut checked = checked.into_inner().unwrap_or_else(|e| e.into_inner());
    checked.sort_unstable_by_key(|(start, _)| *start);
    // Archive stanzas average ~820 bytes.
    let mut stanzas = Vec::with_capacity(text.len() / 800);
    for (start, result) in checked {
        // The first error in file order, as a serial check would report it.
        stanzas.extend(result.map_err(|e| BootstrapError::Packages {
            url: url.to_owned(),
            source: piece_error_in(e, &text, start),
        })?);
    }
    Ok((text, stanzas))
}

/// Most decoded pieces waiting for or in a check at once.
const MAX_PIECES_IN_FLIGHT: usize = 4;

/// Bytes per piece handed from the decoder to the parser.
const INDEX_PIECE: usize = 1 << 20;

/// Decodes `file` into pieces of about [`INDEX_PIECE`] bytes, each ending
/// at a stanza boundary (a blank line), and sends them in order.
fn decode_in_pieces(
    kind: decompress::Compression,
    file: std::fs::File,
    pieces: &std::sync::mpsc::SyncSender<Vec<u8>>,
) -> std::io::Result<()> {
    use std::io::Read;
    // The file came from `fetch_verified` (SHA-256 from the signed Release).
    let mut reader = decompress::decoder_for(
        kind,
        file,
        PACKAGES_LIMIT,
        decompress::Integrity::AlreadyVerified,
    )?;
    let mut buf = Vec::with_capacity(2 * INDEX_PIECE);
    let mut chunk = vec![0u8; 128 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if !buf.is_empty() {
                let _ = pieces.send(buf);
            }
            return Ok(());
        }
        // Search only the new bytes (and the one before them) for a cut.
        let from = buf.len().saturating_sub(1);
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() < INDEX_PIECE {
            continue;
        }
        let Some(at) = buf[from..].windows(2).rposition(|w| w == b"\n\n") else {
            continue;
        };
        let rest = buf.split_off(from + at + 2);
        if pieces.send(std::mem::replace(&mut buf, rest)).is_err() {
            return Ok(());
        }
    }
}

/// Resolves the source's variant and extra packages against the universe.
pub fn plan<'u>(index: &'u LoadedIndex, src: &DebSource) -> Result<Plan<'u>, BootstrapError> {
    plan_in(&index.universe, src)
}

/// The plan of a lock (`build --locked`): exactly the locked packages, in
/// the lock's order, each looked up in the verified index by name, version
/// and architecture and required to have the locked size and SHA-256. Every
/// package that is missing or differs is named in one error.
pub fn plan_from_lock<'u>(
    index: &'u LoadedIndex,
    locked: &[crate::lock::LockedPackage],
) -> Result<Plan<'u>, BootstrapError> {
    let mut packages = Vec::with_capacity(locked.len());
    let mut problems = Vec::new();
    for want in locked {
        let found = index
            .universe
            .versions(&want.name)
            .find(|p| p.arch == want.arch && p.version.to_string() == want.version);
        match found {
            None => problems.push(format!(
                "{} {} ({}): not in the signed index",
                want.name, want.version, want.arch
            )),
            Some(p) if p.sha256 != want.sha256.0 || p.size != want.size => problems.push(format!(
                "{} {} ({}): the index has sha256 {} ({} bytes), the lock {} ({} bytes)",
                want.name,
                want.version,
                want.arch,
                Sha256Digest(p.sha256).to_hex(),
                p.size,
                want.sha256.to_hex(),
                want.size
            )),
            Some(p) => packages.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(BootstrapError::Locked { problems });
    }
    let why = packages
        .iter()
        .map(|p| (p.name.clone(), "lock".to_owned()))
        .collect();
    Ok(Plan { packages, why })
}

/// What to download for the locked packages: their locked path, size and
/// SHA-256, in lock order.
pub fn locked_fetch_items(mirror: &str, locked: &[crate::lock::LockedPackage]) -> Vec<FetchItem> {
    locked
        .iter()
        .map(|p| FetchItem {
            url: p.path.url(mirror),
            size: p.size,
            sha256: p.sha256,
            name: p.name.clone(),
        })
        .collect()
}

fn plan_in<'u>(universe: &'u Universe, src: &DebSource) -> Result<Plan<'u>, BootstrapError> {
    let mut include = Vec::new();
    for (name, pin) in &src.include {
        let pin = match pin {
            Some(p) => Some(p.parse::<Version>().map_err(|e| BootstrapError::Pin {
                package: name.clone(),
                pin: p.clone(),
                message: e.to_string(),
            })?),
            None => None,
        };
        include.push((name.clone(), pin));
    }
    let req = Request {
        variant: src.variant,
        include,
        arch: src.arch.clone(),
    };
    Ok(resolve::resolve(universe, &req)?)
}

/// What to download for the plan: every .deb with the size and SHA-256 the
/// signed Packages index gives it, in plan order.
pub fn fetch_items(mirror: &str, plan: &Plan<'_>) -> Result<Vec<FetchItem>, BootstrapError> {
    Ok(plan
        .packages
        .iter()
        .map(|p| {
            Ok(FetchItem {
                url: crate::fetch::join_mirror(mirror, &p.filename)?,
                size: p.size,
                sha256: Sha256Digest(p.sha256),
                name: p.name.clone(),
            })
        })
        .collect::<Result<Vec<FetchItem>, crate::fetch::FetchError>>()?)
}

/// How [`install`] finishes the rootfs.
pub struct InstallOptions<'a> {
    /// Run maintainer scripts (false for a foreign architecture).
    pub run_scripts: bool,
    pub sandbox: &'a Sandbox,
    /// Clamp for mtimes and /etc/shadow's last-change field.
    pub epoch: i64,
    /// `deb` line for /etc/apt/sources.list (mirror, suite, components).
    pub apt_source: Option<String>,
    /// What the recipe asked for: decides which packages apt would have
    /// marked as automatically installed.
    pub apt_request: AptRequest,
    /// Leave out what the official `-slim` images leave out ([`slim`]).
    pub slim: bool,
}

/// Fetches the planned packages (`items`, in plan order: see [`fetch_items`])
/// and unpacks each into `root_dir` as soon as it is verified, on all cores,
/// then writes the dpkg database, runs stage 2 in the sandbox and normalises
/// the result.
///
/// When stage 2 runs, the Essential set (see [`essential_first`]) is
/// unpacked and configured first, while the other packages are fetched and
/// unpacked into a staging directory next to `root_dir` on one thread; they
/// move in once the first dpkg run is over, and a second run configures
/// them, as mmdebstrap's apt run does after its Essential set.
pub fn install(
    root_dir: &Path,
    plan: &Plan<'_>,
    fetcher: &Fetcher,
    items: &[FetchItem],
    opts: &InstallOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<(), BootstrapError> {
    let root = open_root(root_dir)?;
    let filter = if opts.slim {
        // In place before the first package is unpacked, as debuerreotype's
        // would be for dpkg: the same rules decide what is written here.
        root.mkdir_all(&RelPath::from_archive(b"etc/dpkg/dpkg.cfg.d")?, 0o755)?;
        root.write_file(
            &RelPath::from_archive(slim::DPKG_CFG_PATH.as_bytes())?,
            slim::dpkg_cfg().as_bytes(),
            0o644,
        )?;
        slim::PathFilter::slim()
    } else {
        slim::PathFilter::default()
    };
    let unpacker = Unpacker::new(&plan.packages, fetcher, items, &filter);
    let arch = plan
        .packages
        .first()
        .map(|_| native_arch(plan))
        .unwrap_or_default();
    let in_first = match opts.run_scripts {
        true => essential_first::first_set(&plan.packages),
        false => vec![true; plan.packages.len()],
    };
    let (mut first, mut rest): (Vec<usize>, Vec<usize>) =
        (0..plan.packages.len()).partition(|&i| in_first[i]);
    if first.is_empty() {
        std::mem::swap(&mut first, &mut rest);
    }
    let unpacked_first = unpacker.unpack(&root, &first, Workers::AllCores)?;
    make_man_section_dirs(&root, &unpacked_first)?;
    dpkgdb::write_database(&root, &unpacked_first, &arch)?;
    if let Some(line) = &opts.apt_source {
        root.mkdir_all(&RelPath::from_archive(b"etc/apt")?, 0o755)?;
        root.write_file(
            &RelPath::from_archive(b"etc/apt/sources.list")?,
            format!("{line}\n").as_bytes(),
            0o644,
        )?;
    }
    write_unconfigured_fstab(&root)?;
    let stage2 = |which: &[usize], unpacked: &[UnpackedPackage], activate: &[String]| {
        let pkgs: Vec<&BinaryPackage> = which.iter().map(|&i| plan.packages[i]).collect();
        run_stage2(
            &root,
            &pkgs,
            unpacked,
            activate,
            &arch,
            opts.sandbox,
            reporter,
        )
    };
    if !opts.run_scripts {
        reporter.warn(
            "foreign architecture: maintainer scripts were not run; packages stay 'unpacked'",
        );
    } else if rest.is_empty() {
        reporter.stage("configure (maintainer scripts in the sandbox)");
        stage2(&first, &unpacked_first, &[])?;
    } else {
        reporter.stage(&format!(
            "configure {} Essential-set packages in the sandbox; unpack {} more meanwhile",
            first.len(),
            rest.len()
        ));
        let staging = TempPath::new(sibling(root_dir, "staging"));
        std::fs::create_dir(staging.path()).map_err(|source| BootstrapError::Rootfs {
            path: staging.path().to_owned(),
            source,
        })?;
        let staged = open_root(staging.path())?;
        // Unpacking is left to finish even when the scripts fail: a bad
        // package is reported before a failed script, as when everything
        // was unpacked before stage 2, whichever thread was quicker.
        let (unpacked_rest, configured) = std::thread::scope(|scope| {
            let unpacking = scope.spawn(|| unpacker.unpack(&staged, &rest, Workers::Background));
            let configured = stage2(&first, &unpacked_first, &[]);
            let unpacked = unpacking
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (unpacked, configured)
        });
        let unpacked_rest = unpacked_rest?;
        configured?;
        merge::move_tree(&staged, &root)?;
        drop(staging);
        make_man_section_dirs(&root, &unpacked_rest)?;
        dpkgdb::add_to_database(&root, &unpacked_rest)?;
        let activate = dpkgdb::file_triggers_activated(&unpacked_first, &unpacked_rest);
        reporter.stage(&format!(
            "configure the other {} packages in the sandbox",
            rest.len()
        ));
        stage2(&rest, &unpacked_rest, &activate)?;
    }
    normalise(&root, opts.epoch)?;
    apt_state::write_download_dirs(&root)?;
    apt_state::write_extended_states(&root, &plan.packages, &opts.apt_request, &arch)?;
    Ok(())
}

/// The placeholder /etc/fstab debootstrap and mmdebstrap write before any
/// package is installed; a package that ships one keeps its own.
fn write_unconfigured_fstab(root: &Root) -> Result<(), BootstrapError> {
    let fstab = RelPath::from_archive(b"etc/fstab")?;
    if root.lstat(&fstab)?.is_none() {
        root.mkdir_all(&fstab.parent().expect("etc/fstab has a parent"), 0o755)?;
        root.write_file(&fstab, b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n", 0o644)?;
    }
    Ok(())
}

/// The `/usr/share/man/manN` directories the slim filter left out, made
/// again (empty), as debuerreotype's slimify does: see
/// [`slim::is_man_section_dir`].
fn make_man_section_dirs(root: &Root, unpacked: &[UnpackedPackage]) -> Result<(), BootstrapError> {
    for f in unpacked.iter().flat_map(|p| &p.files) {
        if f.filtered && f.kind == EntryKind::Dir && slim::is_man_section_dir(&f.path.to_absolute())
        {
            root.mkdir_all(&f.path, 0o755)?;
        }
    }
    Ok(())
}

fn open_root(dir: &Path) -> Result<Root, BootstrapError> {
    Root::open(dir).map_err(|source| BootstrapError::Rootfs {
        path: dir.to_owned(),
        source,
    })
}

/// `<dir>-<suffix>`: next to `dir`, so on the same filesystem.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!("-{suffix}"));
    PathBuf::from(name)
}

fn native_arch(plan: &Plan<'_>) -> String {
    plan.packages
        .iter()
        .map(|p| p.arch.as_str())
        .find(|a| *a != "all")
        .unwrap_or("all")
        .to_owned()
}

/// Fetches and unpacks planned packages, and knows across calls which
/// package each path came from.
///
/// A non-directory path shipped by two packages is an error unless one
/// Replaces the other; then the replacing package's copy wins (the replaced
/// one skips it, or the replacer is unpacked once more at the end of the
/// call, in plan order, so the result never depends on which thread
/// finished last), and the path leaves the replaced package's file list, as
/// dpkg does. A replacer and the package it replaces are unpacked in the
/// same call, or the replacer in an earlier one ([`essential_first`]
/// arranges that).
struct Unpacker<'a> {
    pkgs: &'a [&'a BinaryPackage],
    fetcher: &'a Fetcher,
    /// In plan order, one per package.
    items: &'a [FetchItem],
    /// Path → index of the package whose copy is on disk.
    owners: Mutex<HashMap<Vec<u8>, usize>>,
    /// Set by the first failure: what has not started yet is skipped.
    failed: AtomicBool,
    /// dpkg's path-exclude/path-include rules (empty: keep everything).
    filter: &'a slim::PathFilter,
}

impl<'a> Unpacker<'a> {
    fn new(
        pkgs: &'a [&'a BinaryPackage],
        fetcher: &'a Fetcher,
        items: &'a [FetchItem],
        filter: &'a slim::PathFilter,
    ) -> Self {
        Unpacker {
            pkgs,
            fetcher,
            items,
            owners: Mutex::new(HashMap::new()),
            failed: AtomicBool::new(false),
            filter,
        }
    }

    /// A path this package may write: written, or left out by the filter
    /// (dpkg checks ownership first, then the filter).
    fn write_or_filter(&self, path: &RelPath, kind: EntryKind) -> Claimed {
        if !self.filter.is_empty() && self.filter.skips(&path.to_absolute(), kind) {
            Claimed::Filter
        } else {
            Claimed::Write
        }
    }

    /// Fetches the packages `which` (plan indices) and unpacks each into
    /// `root` as soon as it is verified. The result is in the order of
    /// `which`.
    fn unpack(
        &self,
        root: &Root,
        which: &[usize],
        workers: Workers,
    ) -> Result<Vec<UnpackedPackage>, BootstrapError> {
        let pkgs = self.pkgs;
        // (replacer, replaced, path) for every path taken over.
        let taken: Mutex<Vec<(usize, usize, Vec<u8>)>> = Mutex::new(Vec::new());
        // Every file comes from the fetcher, checked against the signed index.
        let opts = UnpackOptions {
            integrity: decompress::Integrity::AlreadyVerified,
            ..UnpackOptions::default()
        };
        let claim_for = |i: usize| {
            let (owners, taken) = (&self.owners, &taken);
            move |path: &RelPath, kind: EntryKind| -> Result<Claimed, String> {
                if kind == EntryKind::Dir {
                    return Ok(self.write_or_filter(path, kind));
                }
                let mut map = owners.lock().unwrap_or_else(|e| e.into_inner());
                let Some(&other) = map.get(path.as_bytes()) else {
                    map.insert(path.as_bytes().to_vec(), i);
                    return Ok(self.write_or_filter(path, kind));
                };
                let mut taken = taken.lock().unwrap_or_else(|e| e.into_inner());
                if replaces(pkgs[i], pkgs[other]) {
                    map.insert(path.as_bytes().to_vec(), i);
                    taken.push((i, other, path.as_bytes().to_vec()));
                    Ok(self.write_or_filter(path, kind))
                } else if replaces(pkgs[other], pkgs[i]) {
                    Ok(Claimed::Skip)
                } else {
                    Err(format!(
                        "trying to overwrite {path}, which is also in package {} (and {} does not Replace it)",
                        pkgs[other].name, pkgs[i].name
                    ))
                }
            }
        };

        // Largest first: the biggest archives take longest to unpack, so
        // starting them first keeps every core busy until the end (ties
        // stay in plan order). `order[k]` is a position in `which`.
        let mut order: Vec<usize> = (0..which.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(self.items[which[k]].size));
        let ordered: Vec<FetchItem> = order
            .iter()
            .map(|&k| self.items[which[k]].clone())
            .collect();

        // Per package, once handed over: its cached file and how unpacking went.
        type Slot = Mutex<Option<(PathBuf, Result<UnpackedPackage, BootstrapError>)>>;
        let slots: Vec<Slot> = which.iter().map(|_| Mutex::new(None)).collect();
        let failed = &self.failed;
        let (ready_tx, ready_rx) = mpsc::channel::<(usize, PathBuf)>();
        let ready_rx = Mutex::new(ready_rx);
        // Downloads run on the fetcher's threads; these workers unpack what
        // they hand over, so downloading and unpacking overlap.
        let fetched = std::thread::scope(|scope| {
            let threads = match workers {
                Workers::AllCores => rayon::current_num_threads().max(1),
                Workers::Background => 1,
            };
            for _ in 0..threads {
                scope.spawn(|| {
                    if workers == Workers::Background {
                        lower_this_threads_priority();
                    }
                    loop {
                        let next = ready_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((k, path)) = next else { return };
                        if failed.load(Ordering::Relaxed) {
                            continue;
                        }
                        let result = dpkgdb::unpack_deb(root, &path, &opts, &claim_for(which[k]))
                            .map_err(BootstrapError::from);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        *slots[k].lock().unwrap_or_else(|e| e.into_inner()) = Some((path, result));
                    }
                });
            }
            let ready_tx = ready_tx;
            let fetched = self.fetcher.fetch_each(&ordered, &|n, path| {
                !failed.load(Ordering::Relaxed) && ready_tx.send((order[n], path)).is_ok()
            });
            drop(ready_tx);
            fetched
        });
        fetched?;

        // An unpack error is the cause; packages skipped after it are not.
        let mut unpacked = Vec::with_capacity(which.len());
        let mut paths = Vec::with_capacity(which.len());
        let mut skipped = None;
        for (slot, &i) in slots.into_iter().zip(which) {
            match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some((path, result)) => {
                    unpacked.push(result?);
                    paths.push(path);
                }
                None => {
                    skipped.get_or_insert(&self.items[i]);
                }
            }
        }
        if let Some(item) = skipped {
            return Err(crate::fetch::FetchError::Cancelled {
                url: crate::fetch::redact(&item.url),
            }
            .into());
        }
        let position = |i: usize| which.iter().position(|&w| w == i);
        let taken = taken.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut again: Vec<usize> = taken.iter().map(|(replacer, _, _)| *replacer).collect();
        again.sort_unstable();
        again.dedup();
        for i in again {
            let owned_by_others = |path: &RelPath, kind: EntryKind| -> Result<Claimed, String> {
                let map = self.owners.lock().unwrap_or_else(|e| e.into_inner());
                Ok(match map.get(path.as_bytes()) {
                    Some(&owner) if owner != i => Claimed::Skip,
                    _ => self.write_or_filter(path, kind),
                })
            };
            if let Some(k) = position(i) {
                unpacked[k] = dpkgdb::unpack_deb(root, &paths[k], &opts, &owned_by_others)?;
            }
        }
        for (_, replaced, path) in &taken {
            debug_assert!(position(*replaced).is_some(), "replaced in an earlier call");
            if let Some(k) = position(*replaced) {
                unpacked[k]
                    .files
                    .retain(|f| f.path.as_bytes() != path.as_slice());
            }
        }
        Ok(unpacked)
    }
}

/// How [`Unpacker::unpack`] spreads its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workers {
    /// One thread per core: nothing else is running.
    AllCores,
    /// One thread at the lowest priority, so the maintainer scripts
    /// running meanwhile (the build's critical path) never wait for it: it
    /// only takes what they leave idle.
    Background,
}

/// Nice 19 for the calling thread (Linux keeps a nice value per thread;
/// threads it starts inherit it). Best effort: at worst it competes.
fn lower_this_threads_priority() {
    let tid = rustix::thread::gettid();
    let _ = rustix::process::setpriority_process(Some(tid), 19);
}

fn replaces(a: &BinaryPackage, b: &BinaryPackage) -> bool {
    a.replaces
        .iter()
        .any(|d| d.alternatives.iter().any(|atom| atom.name == b.name))
}

fn run_stage2(
    root: &Root,
    pkgs: &[&BinaryPackage],
    unpacked: &[UnpackedPackage],
    activate: &[String],
    arch: &str,
    sandbox: &Sandbox,
    reporter: &dyn Reporter,
) -> Result<(), BootstrapError> {
    let order: Vec<Stage2Package> = pkgs
        .iter()
        .zip(unpacked)
        .map(|(p, u)| Stage2Package {
            name: p.name.clone(),
            info_name: if p.multi_arch == MultiArch::Same {
                format!("{}:{}", p.name, p.arch)
            } else {
                p.name.clone()
            },
            arch: p.arch.clone(),
            has_preinst: u.control.get("preinst").is_some(),
        })
        .collect();
    let staging = RelPath::from_archive(stage2::PREINST_STAGING.as_bytes())?;
    for (n, (p, u)) in order.iter().zip(unpacked).enumerate() {
        if p.has_preinst {
            dpkgdb::write_control_dir(root, &staging.join(n.to_string().as_bytes())?, u)?;
        }
    }
    let _policy = sandbox::policy_rc_d_guard(root.path())?;
    let mut spec = RunSpec::new(
        root.path(),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            stage2::script(&order, activate, arch),
        ],
    );
    spec.env = stage2::script_env();
    spec.network = Network::NoneIfIsolated;
    spec.chroot_view = true;
    spec.suppress_sync = true;
    let mut lines = Vec::new();
    let status = sandbox.run(&spec, &mut |line| {
        if !line.text.starts_with(stage2::STEP_MARKER) {
            reporter.command_output(&line.text);
        }
        lines.push(line.text);
    })?;
    if !status.success() {
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        return Err(BootstrapError::Stage2 {
            step: stage2::failed_step(&lines).unwrap_or_else(|| "start-up".into()),
            status: status.to_string(),
            tail,
        });
    }
    Ok(())
}

/// Files installs leave behind that differ on every run (logs, caches,
/// backups, random seeds): removed so builds are reproducible (HOSTILE 44).
const VOLATILE: &[&str] = &[
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",
    "var/cache/ldconfig/aux-cache",
    "var/lib/systemd/catalog/database",
    "var/lib/systemd/random-seed",
    "etc/apt/apt.conf.d/01autoremove-kernels",
    "usr/share/info/dir.old",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid-",
    "etc/subgid-",
    "usr/sbin/policy-rc.d",
];

/// Directories whose matching files are all volatile: (directory, which
/// names). Backups (`*-old`) are written on every database update, apt's
/// binary caches and downloaded lists depend on when they were made.
const VOLATILE_IN: &[(&str, NameFilter)] = &[
    ("var/lib/dpkg", is_old_backup),
    ("var/cache/debconf", is_old_backup),
    ("var/cache/apt", is_apt_binary_cache),
    ("var/lib/apt/lists", is_apt_list),
    ("var/lib/apt/lists/partial", |_| true),
];

type NameFilter = fn(&[u8]) -> bool;

fn is_old_backup(name: &[u8]) -> bool {
    name.ends_with(b"-old")
}

fn is_apt_binary_cache(name: &[u8]) -> bool {
    name.ends_with(b".bin")
}

/// Everything in apt's lists directory but its lock (and `partial/`,
/// emptied separately).
fn is_apt_list(name: &[u8]) -> bool {
    name != b"lock"
}

/// Files that must stay but whose content is per-machine: emptied, as
/// systemd expects an empty machine-id in images ("first boot").
const EMPTIED: &[&str] = &["etc/machine-id", "var/lib/dbus/machine-id"];

/// Normalises what package scripts leave behind (DESIGN: reproducibility).
pub fn normalise(root: &Root, epoch: i64) -> Result<(), BootstrapError> {
    for path in VOLATILE {
        let rel = RelPath::from_archive(path.as_bytes())?;
        if root.lstat(&rel)?.is_some() {
            root.remove(&rel)?;
        }
    }
    for (dir, volatile) in VOLATILE_IN {
        remove_files_in(root, dir, *volatile)?;
    }
    clear_run(root)?;
    for path in EMPTIED {
        let rel = RelPath::from_archive(path.as_bytes())?;
        // A symlink (dbus's usually points at /etc/machine-id) is left alone.
        if root.lstat(&rel)?.is_some_and(|m| m.kind == FileKind::File) {
            root.write_file(&rel, b"", 0o444)?;
        }
    }
    let shadow = RelPath::from_archive(b"etc/shadow")?;
    if let Some(meta) = root.lstat(&shadow)?.filter(|m| m.kind == FileKind::File) {
        let text = String::from_utf8_lossy(&root.read_file(&shadow)?).into_owned();
        let clamped = clamp_shadow(&text, epoch / 86400);
        if clamped != text {
            // Rewritten in place of passwd's: same mode, and its group
            // (`shadow`, which lets unix_chkpwd read it) stays.
            root.write_file(&shadow, clamped.as_bytes(), meta.mode)?;
            root.set_owner(&shadow, meta.uid, meta.gid)?;
            root.set_mode(&shadow, meta.mode)?;
        }
    }
    Ok(())
}

/// Empties /run but for `lock`, as mmdebstrap does: what scripts left
/// there belongs to a running system, but /var/lock links to /run/lock
/// (base-files), so that stays (1777, as base-files makes it).
fn clear_run(root: &Root) -> Result<(), BootstrapError> {
    let run = RelPath::from_archive(b"run")?;
    if !root.lstat(&run)?.is_some_and(|m| m.kind == FileKind::Dir) {
        return Ok(());
    }
    for name in root.read_dir(&run)? {
        if name != b"lock" {
            root.remove_all(&run.join(&name)?)?;
        }
    }
    Ok(())
}

/// Removes the non-directory entries of `dir` whose names match; a missing
/// directory, or one that is a symlink, is left alone.
fn remove_files_in(root: &Root, dir: &str, volatile: NameFilter) -> Result<(), BootstrapError> {
    let rel = RelPath::from_archive(dir.as_bytes())?;
    if !root.lstat(&rel)?.is_some_and(|m| m.kind == FileKind::Dir) {
        return Ok(());
    }
    for name in root.read_dir(&rel)? {
        if !volatile(&name) {
            continue;
        }
        let entry = rel.join(&name)?;
        if root.lstat(&entry)?.is_some_and(|m| m.kind != FileKind::Dir) {
            root.remove(&entry)?;
        }
    }
    Ok(())
}

/// Clamps field 3 (days since the epoch of the last password change) so a
/// rebuild on another day produces the same file.
fn clamp_shadow(text: &str, max_day: i64) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let mut fields: Vec<String> = body.split(':').map(str::to_owned).collect();
        if let Some(day) = fields.get(2).and_then(|d| d.parse::<i64>().ok()) {
            if day > max_day {
                fields[2] = max_day.to_string();
            }
        }
        out.push_str(&fields.join(":"));
        out.push_str(nl);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_index() -> String {
        (0..20000)
            .map(|i| {
                format!(
                    "Package: p{i}\nVersion: 1.{i}\nArchitecture: amd64\nDepends: p{}\n\
                     Description: é{i}\n long text {i}\nFilename: pool/p{i}.deb\nSize: {i}\n\
                     SHA256: {}\n\n",
                    i / 2,
                    "ab".repeat(32)
                )
            })
            .collect()
    }

    #[test]
    fn a_reused_plan_stands_for_the_index_file_in_the_cache() {
        let option = |path: &str, compression, cached| IndexOption {
            file: UsedIndex {
                path: path.into(),
                size: 1,
                sha256: Sha256Digest([0; 32]),
            },
            compression,
            cached,
        };
        // A fast link ranks the .gz first, but only the .xz was ever read.
        let mut index = ComponentIndex {
            options: vec![
                option("main/binary-amd64/Packages.gz", IndexCompression::Gz, false),
                option("main/binary-amd64/Packages.xz", IndexCompression::Xz, true),
            ],
            text_size: None,
            identity: Sha256Digest([0; 32]),
        };
        assert_eq!(index.already_read().path, "main/binary-amd64/Packages.xz");
        index.options[1].cached = false;
        assert_eq!(index.already_read().path, "main/binary-amd64/Packages.gz");
    }

    #[test]
    fn index_decoded_in_pieces_matches_a_whole_parse() {
        use std::io::Write;
        let text = big_index();
        assert!(text.len() > 3 * INDEX_PIECE);
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(text.as_bytes()).unwrap();
        let xz = xz.finish().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let whole = super::super::packages::summarize_packages(&text).unwrap();
        for (name, bytes, compression) in [
            ("Packages.xz", &xz[..], IndexCompression::Xz),
            ("Packages.gz", &gz[..], IndexCompression::Gz),
            ("Packages", text.as_bytes(), IndexCompression::None),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let (decoded, stanzas) = read_index(&path, compression, name, None).unwrap();
            assert!(decoded == text, "{name}");
            assert_eq!(stanzas, whole, "{name}");
        }
        let path = dir.path().join("cut.xz");
        std::fs::write(&path, &xz[..xz.len() / 2]).unwrap();
        let err = read_index(&path, IndexCompression::Xz, "cut.xz", Some(1 << 20)).unwrap_err();
        assert!(matches!(err, BootstrapError::Decompress { .. }), "{err}");
        let broken = text.replace("Package: p16000\nVersion: 1.16000\n", "Package: p16000\n");
        let path = dir.path().join("broken");
        std::fs::write(&path, &broken).unwrap();
        let err = read_index(&path, IndexCompression::None, "broken", None).unwrap_err();
        let expected = super::super::packages::parse_packages(&broken).unwrap_err();
        assert!(
            matches!(&err, BootstrapError::Packages { source, .. } if *source == expected),
            "{err}"
        );
    }

    #[test]
    fn normalise_removes_volatile_files_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let write = |p: &str, data: &[u8]| {
            let rel = RelPath::from_archive(p.as_bytes()).unwrap();
            root.mkdir_all(&rel.parent().unwrap(), 0o755).unwrap();
            root.write_file(&rel, data, 0o644).unwrap();
        };
        let removed = [
            "var/log/dpkg.log",
            "var/log/apt/eipp.log.xz",
            "var/cache/ldconfig/aux-cache",
            "var/lib/dpkg/status-old",
            "var/lib/dpkg/triggers-old",
            "var/cache/debconf/templates.dat-old",
            "var/cache/debconf/passwords.dat-old",
            "var/cache/apt/pkgcache.bin",
            "var/cache/apt/srcpkgcache.bin",
            "var/lib/apt/lists/deb.example_debian_dists_trixie_InRelease",
            "var/lib/apt/lists/partial/x_Packages",
            "var/lib/systemd/random-seed",
            "etc/shadow-",
            "run/mount/utab",
            "run/systemd/deep/state",
        ];
        let kept = [
            "run/lock/x.lock",
            "var/lib/dpkg/status",
            "var/cache/debconf/templates.dat",
            "var/lib/apt/lists/lock",
            "var/cache/apt/archives/lock",
            "etc/passwd",
        ];
        for p in removed.iter().chain(&kept) {
            write(p, b"data\n");
        }
        write("etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        write("etc/shadow", b"root:*:30000:0:99999:7:::\n");
        let shadow = RelPath::from_archive(b"etc/shadow").unwrap();
        // Group `shadow` needs root to set; otherwise our own group stands in.
        let gid = if rustix::process::geteuid().is_root() {
            42
        } else {
            rustix::process::getegid().as_raw()
        };
        let uid = rustix::process::geteuid().as_raw();
        root.set_owner(&shadow, uid, gid).unwrap();
        root.set_mode(&shadow, 0o640).unwrap();
        let dbus = RelPath::from_archive(b"var/lib/dbus/machine-id").unwrap();
        root.mkdir_all(&dbus.parent().unwrap(), 0o755).unwrap();
        root.symlink(b"/etc/machine-id", &dbus).unwrap();

        normalise(&root, 20000 * 86400).unwrap();
        for p in removed {
            assert!(!dir.path().join(p).exists(), "{p} should be gone");
        }
        for p in kept {
            assert!(dir.path().join(p).exists(), "{p} should stay");
        }
        assert!(dir.path().join("var/lib/apt/lists/partial").is_dir());
        assert_eq!(
            std::fs::read(dir.path().join("etc/machine-id")).unwrap(),
            b""
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("var/lib/dbus/machine-id")).unwrap(),
            Path::new("/etc/machine-id")
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("etc/shadow")).unwrap(),
            "root:*:20000:0:99999:7:::\n"
        );
        let meta = std::fs::metadata(dir.path().join("etc/shadow")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (uid, gid, 0o640)
        );
    }

    #[test]
    fn shadow_last_change_is_clamped() {
        let text = "root:*:20000:0:99999:7:::\nnobody:*:10:0:99999:7:::\nbroken\n";
        assert_eq!(
            clamp_shadow(text, 19000),
            "root:*:19000:0:99999:7:::\nnobody:*:10:0:99999:7:::\nbroken\n"
        );
    }
}
