//! Which of a Release's Packages indexes to read: the one that gives the
//! parsed index soonest, download plus decode.
//!
//! apt always prefers `.xz` (smallest). But xz decodes at ~135 MB/s of text
//! on one core and gzip at ~400 MB/s: for trixie's 57 MB main index that is
//! 0.42 s against 0.14 s, while the `.gz` is only 3.7 MB larger. Over a link
//! faster than ~13 MB/s the `.gz` is ready first; over a slower one the
//! `.xz`. The link speed is estimated from the InRelease download just
//! made (from its first bytes on, so latency does not count), which still
//! underestimates it (TCP slow start): the choice leans towards the
//! smaller file.

use super::release::IndexCompression;

/// Text bytes per second one core decodes, measured on trixie's main
/// index (liblzma 5.8, zlib-rs). Only their ratio to the link speed
/// matters, so rough values are enough.
const XZ_DECODE_BYTES_PER_SEC: f64 = 135e6;
const GZ_DECODE_BYTES_PER_SEC: f64 = 400e6;

/// One index file the Release lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub compression: IndexCompression,
    /// Download size (the Release's size field).
    pub size: u64,
    /// Size of the decoded text, when the Release lists it.
    pub text_size: Option<u64>,
    /// Already in the download cache: nothing to download.
    pub cached: bool,
}

/// Indexes into `candidates`, best first: by estimated download-plus-decode
/// time at `link_bytes_per_sec`. Uncompressed files come last whenever a
/// compressed one is listed: Debian lists `Packages` in its Release but
/// does not serve it. The rest stay available as fallbacks, in order, for
/// a mirror that lacks a listed file.
pub fn order_by_cost(candidates: &[Candidate], link_bytes_per_sec: f64) -> Vec<usize> {
    let any_compressed = candidates
        .iter()
        .any(|c| c.compression != IndexCompression::None);
    let cost = |c: &Candidate| {
        if any_compressed && c.compression == IndexCompression::None {
            return f64::INFINITY;
        }
        let download = if c.cached {
            0.0
        } else {
            c.size as f64 / link_bytes_per_sec.max(1.0)
        };
        // Without the text size, assume Debian's typical ratios.
        let text = c.text_size.unwrap_or(match c.compression {
            IndexCompression::Xz => c.size.saturating_mul(6),
            IndexCompression::Gz => c.size.saturating_mul(4),
            IndexCompression::None => c.size,
        }) as f64;
        let decode = match c.compression {
            IndexCompression::Xz => text / XZ_DECODE_BYTES_PER_SEC,
            IndexCompression::Gz => text / GZ_DECODE_BYTES_PER_SEC,
            IndexCompression::None => 0.0,
        };
        download + decode
    };
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    // Stable: equal costs keep the Release order (xz, gz, plain).
    order.sort_by(|&a, &b| cost(&candidates[a]).total_cmp(&cost(&candidates[b])));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// trixie's main/binary-amd64 indexes, as its Release lists them.
    fn trixie() -> Vec<Candidate> {
        let text = Some(56_634_892);
        vec![
            Candidate {
                compression: IndexCompression::Xz,
                size: 9_679_304,
                text_size: text,
                cached: false,
            },
            Candidate {
                compression: IndexCompression::Gz,
                size: 13_335_627,
                text_size: text,
                cached: false,
            },
            Candidate {
                compression: IndexCompression::None,
                size: 56_634_892,
                text_size: text,
                cached: false,
            },
        ]
    }

    #[test]
    fn a_fast_link_reads_the_gzip_index() {
        // 100 MB/s: 0.13 + 0.14 s for .gz against 0.10 + 0.42 s for .xz.
        assert_eq!(order_by_cost(&trixie(), 100e6), [1, 0, 2]);
    }

    #[test]
    fn a_slow_link_reads_the_xz_index() {
        // 5 MB/s: 2.7 s for .gz against 2.4 s for .xz.
        assert_eq!(order_by_cost(&trixie(), 5e6), [0, 1, 2]);
    }

    #[test]
    fn a_cached_index_costs_only_its_decoding() {
        let mut c = trixie();
        c[0].cached = true;
        // 0.42 s to decode the cached .xz against 2.7 + 0.14 s for the .gz.
        assert_eq!(order_by_cost(&c, 5e6)[0], 0);
        // But at 100 MB/s the .gz downloads and decodes in 0.27 s.
        assert_eq!(order_by_cost(&c, 100e6)[0], 1);
        c[0].cached = false;
        c[1].cached = true;
        assert_eq!(order_by_cost(&c, 1e6)[0], 1);
    }

    #[test]
    fn uncompressed_is_read_only_when_nothing_else_is_listed() {
        // Even over a link where plain text would be quickest.
        assert_eq!(order_by_cost(&trixie(), 10e9).last(), Some(&2));
        // Nothing downloaded (offline, file://): decoding speed decides.
        assert_eq!(order_by_cost(&trixie(), f64::INFINITY), [1, 0, 2]);
        let plain = [trixie()[2]];
        assert_eq!(order_by_cost(&plain, 1e6), [0]);
    }
}
