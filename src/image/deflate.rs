//! One chunk of raw deflate for the parallel gzip writer, with zlib's match
//! search on zlib-rs.
//!
//! zlib-rs (a port of zlib-ng) hashes 4 bytes at every level but 9, so it
//! never finds the 3-byte matches zlib and GNU gzip use; at its level 6 the
//! trixie slim layer came out 3.3 % larger than `gzip -6` (30.78 against
//! 29.80 MB), and its level 7 and 8 were still 2 % larger. Its level 9 hashes
//! 3 bytes (a rolling hash, chosen for chains longer than 1024), and
//! `deflateTune` then sets the search limits of the level asked for from
//! zlib's own table: the lazy-matching `deflate_slow` of zlib with 3-byte
//! matches. flate2 does not expose `deflateTune`, so this goes through
//! zlib-rs's C interface (`libz-rs-sys`, the same code as flate2's backend).

use std::ffi::c_int;

use libz_rs_sys as z;

/// zlib's `configuration_table` (deflate.c) for levels 4–8: good_length,
/// max_lazy, nice_length, max_chain. Levels 1–3 keep zlib-rs's own faster
/// strategies, 9 is zlib-rs's level 9 (the same search as zlib's, longer
/// chains).
fn zlib_search(level: u32) -> Option<[c_int; 4]> {
    match level {
        4 => Some([4, 4, 16, 16]),
        5 => Some([8, 16, 32, 32]),
        6 => Some([8, 16, 128, 128]),
        7 => Some([8, 32, 128, 256]),
        8 => Some([32, 128, 258, 1024]),
        _ => None,
    }
}

/// A raw deflate stream (no zlib or gzip framing, 32 KiB window). Boxed:
/// zlib's state points back at its `z_stream`, which must not move.
struct RawDeflate {
    strm: Box<z::z_stream>,
}

impl RawDeflate {
    fn new(level: u32) -> Result<Self, String> {
        let level = level.clamp(1, 9);
        let (init_level, tune) = match zlib_search(level) {
            // Level 9 selects the 3-byte hash and deflate_slow; the tune
            // then narrows the search to the level asked for.
            Some(tune) => (9, Some(tune)),
            None => (level as c_int, None),
        };
        // SAFETY: an all-zero z_stream is the documented "before init"
        // state (no allocator given: zlib-rs uses its own).
        let mut strm: Box<z::z_stream> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `strm` is a valid, boxed (so never moved) z_stream; the
        // version and size are those of the library we link.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                init_level,
                z::Z_DEFLATED,
                -15,
                8,
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if rc != z::Z_OK {
            return Err(format!("deflateInit2 failed ({rc})"));
        }
        let mut stream = RawDeflate { strm };
        if let Some([good, lazy, nice, chain]) = tune {
            // SAFETY: the stream was initialized above.
            let rc = unsafe { z::deflateTune(&mut *stream.strm, good, lazy, nice, chain) };
            if rc != z::Z_OK {
                return Err(format!("deflateTune failed ({rc})"));
            }
        }
        Ok(stream)
    }

    fn set_dictionary(&mut self, dict: &[u8]) -> Result<(), String> {
        let len = u32::try_from(dict.len()).map_err(|_| "dictionary too long".to_owned())?;
        // SAFETY: initialized stream; zlib reads `len` bytes of `dict`.
        let rc = unsafe { z::deflateSetDictionary(&mut *self.strm, dict.as_ptr(), len) };
        if rc != z::Z_OK {
            return Err(format!("deflateSetDictionary failed ({rc})"));
        }
        Ok(())
    }

    /// Compresses all of `data`, ending with a sync flush (byte-aligned, so
    /// the next chunk's bits can follow) or, when `last`, the final block.
    fn compress_all(&mut self, data: &[u8], last: bool) -> Result<Vec<u8>, String> {
        let flush = if last { z::Z_FINISH } else { z::Z_SYNC_FLUSH };
        // deflateBound-sized for the common case; grown if ever short.
        let mut out: Vec<u8> = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
        let mut consumed = 0usize;
        loop {
            let in_len = u32::try_from(data.len() - consumed).unwrap_or(u32::MAX);
            let room = u32::try_from(out.capacity() - out.len()).unwrap_or(u32::MAX);
            // SAFETY: next_in/avail_in describe the unread part of `data`,
            // next_out/avail_out the spare capacity of `out`; both outlive
            // the call, and zlib writes at most `avail_out` bytes.
            let (rc, read, written) = unsafe {
                self.strm.next_in = data.as_ptr().add(consumed);
                self.strm.avail_in = in_len;
                self.strm.next_out = out.as_mut_ptr().add(out.len());
                self.strm.avail_out = room;
                let rc = z::deflate(&mut *self.strm, flush);
                (
                    rc,
                    (in_len - self.strm.avail_in) as usize,
                    (room - self.strm.avail_out) as usize,
                )
            };
            // SAFETY: zlib initialized the `written` bytes after `out.len()`.
            unsafe { out.set_len(out.len() + written) };
            consumed += read;
            self.strm.next_in = std::ptr::null();
            self.strm.next_out = std::ptr::null_mut();
            match rc {
                z::Z_STREAM_END => return Ok(out),
                // Not last: done once all input is in and zlib had room left
                // (a full output buffer may hide pending flush bytes).
                z::Z_OK | z::Z_BUF_ERROR
                    if !last && consumed == data.len() && out.len() < out.capacity() =>
                {
                    return Ok(out)
                }
                z::Z_OK | z::Z_BUF_ERROR => out.reserve(out.capacity().max(4096)),
                rc => return Err(format!("deflate failed ({rc})")),
            }
        }
    }
}

impl Drop for RawDeflate {
    fn drop(&mut self) {
        // SAFETY: initialized in `new` and ended only here.
        unsafe { z::deflateEnd(&mut *self.strm) };
    }
}

/// Raw-deflates one chunk at `level` (zlib's meaning), primed with `dict`
/// (the previous chunk's last 32 KiB), ending in a sync flush unless `last`.
/// A fresh stream per chunk: the bytes depend only on these arguments.
pub(super) fn deflate_chunk(
    data: &[u8],
    dict: &[u8],
    level: u32,
    last: bool,
) -> Result<Vec<u8>, String> {
    let mut stream = RawDeflate::new(level)?;
    if !dict.is_empty() {
        stream.set_dictionary(dict)?;
    }
    stream.compress_all(data, last)
}
