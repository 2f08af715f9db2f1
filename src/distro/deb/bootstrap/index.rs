//! Stage 1: the signed InRelease, then each component's Packages index
//! (checked against it, decoded in pieces), into the package universe;
//! the plan cache that lets a warm build skip the parse.
use super::*;

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
        let key = crate::image::layer_cache::key(&parts);
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
        let whole = crate::distro::deb::packages::summarize_packages(&text).unwrap();
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
        let expected = crate::distro::deb::packages::parse_packages(&broken).unwrap_err();
        assert!(
            matches!(&err, BootstrapError::Packages { source, .. } if *source == expected),
            "{err}"
        );
    }
}
