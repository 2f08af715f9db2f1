//! One chunk of raw deflate for the parallel gzip writer: libdeflate, made
//! joinable.
//!
//! libdeflate compresses a whole buffer at once, better and faster than
//! zlib's streaming search (on the trixie slim layer, 1 MiB chunks at its
//! level 6 give 29.3 MB against `gzip -6`'s 29.80 at about a quarter of the
//! CPU; zlib-rs's level 6, which hashes 4 bytes and misses the 3-byte
//! matches, gave 30.78 MB). It has no flush: every chunk it makes ends with a
//! block marked final. To concatenate the chunks into one deflate stream (one
//! gzip member, which every reader takes), a non-last chunk is walked block
//! by block with an inflater (zlib-rs's `Z_BLOCK` mode, as zlib's `gzjoin`
//! does) to find where its final block's header and its end sit; the final
//! bit is cleared and an empty stored block appended, which leaves the
//! stream byte-aligned exactly as a zlib sync flush does.

use std::ffi::c_int;

use libdeflater::{CompressionLvl, Compressor};
use libz_rs_sys as z;

/// Raw-deflates one chunk at libdeflate `level`; unless `last`, the result
/// ends on a byte boundary with no final block, ready for the next chunk's
/// bytes. The bytes depend only on the arguments.
pub(super) fn deflate_chunk(data: &[u8], level: u32, last: bool) -> Result<Vec<u8>, String> {
    let lvl = CompressionLvl::new(level as i32)
        .map_err(|e| format!("libdeflate level {level}: {e:?}"))?;
    let mut compressor = Compressor::new(lvl);
    let mut out = vec![0u8; compressor.deflate_compress_bound(data.len())];
    let n = compressor
        .deflate_compress(data, &mut out)
        .map_err(|e| format!("libdeflate: {e:?}"))?;
    out.truncate(n);
    if !last {
        make_joinable(&mut out)?;
    }
    Ok(out)
}

/// Bit offsets in a raw deflate stream: its final block's header, and the
/// end of that block (just after its end-of-block code).
struct FinalBlock {
    header_bit: u64,
    end_bit: u64,
}

/// Clears the final bit and appends an empty stored block (three zero
/// header bits, padding, LEN 0, NLEN 0xffff).
fn make_joinable(stream: &mut Vec<u8>) -> Result<(), String> {
    let fin = find_final_block(stream)?;
    let byte = |bit: u64| (bit / 8) as usize;
    if stream
        .get(byte(fin.header_bit))
        .map(|b| b >> (fin.header_bit % 8) & 1)
        != Some(1)
        || fin.end_bit.div_ceil(8) as usize != stream.len()
    {
        return Err(format!(
            "deflate block walk disagrees with the stream (final block at bit {}, end at bit {}, {} bytes)",
            fin.header_bit,
            fin.end_bit,
            stream.len()
        ));
    }
    stream[byte(fin.header_bit)] &= !(1u8 << (fin.header_bit % 8));
    // Padding after the end-of-block code must be zero: it becomes the
    // stored block's header.
    if fin.end_bit % 8 != 0 {
        let last = stream.len() - 1;
        stream[last] &= (1u8 << (fin.end_bit % 8)) - 1;
    }
    stream.resize((fin.end_bit + 3).div_ceil(8) as usize, 0);
    stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
    Ok(())
}

/// Inflates `stream` one block at a time (output discarded) to find its
/// final block.
fn find_final_block(stream: &[u8]) -> Result<FinalBlock, String> {
    let mut inflater = RawInflate::new()?;
    let mut scratch = vec![0u8; 256 * 1024];
    let avail_in = u32::try_from(stream.len()).map_err(|_| "chunk too large".to_owned())?;
    let strm = &mut *inflater.strm;
    strm.next_in = stream.as_ptr();
    strm.avail_in = avail_in;
    let mut header_bit = 0u64;
    loop {
        strm.next_out = scratch.as_mut_ptr();
        strm.avail_out = scratch.len() as u32;
        // SAFETY: next_in/avail_in describe `stream`, next_out/avail_out
        // `scratch`; both outlive the call.
        let rc = unsafe { z::inflate(strm, z::Z_BLOCK) };
        if rc != z::Z_OK {
            return Err(format!("walking the deflate blocks failed ({rc})"));
        }
        // data_type: bits still buffered (low 6), +64 when the block just
        // finished was marked final, +128 when stopped before a block
        // header (zlib's `inflate` documentation; zlib-rs buffers up to 63
        // bits where zlib keeps at most 7).
        let state = strm.data_type;
        if state & 128 == 0 {
            continue; // out of output space mid-block
        }
        // `total_in` is a C `unsigned long`: 32 bits on some targets.
        #[allow(clippy::useless_conversion)]
        let bit = u64::from(strm.total_in) * 8 - (state & 63) as u64;
        if state & 64 != 0 {
            return Ok(FinalBlock {
                header_bit,
                end_bit: bit,
            });
        }
        header_bit = bit;
    }
}

/// A raw (no header) inflate stream on zlib-rs's C interface, which has
/// `Z_BLOCK`; boxed because zlib's state points back at its `z_stream`.
struct RawInflate {
    strm: Box<z::z_stream>,
}

impl RawInflate {
    fn new() -> Result<Self, String> {
        // SAFETY: an all-zero z_stream is the documented state before init
        // (no allocator given: zlib-rs uses its own).
        let mut strm: Box<z::z_stream> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: a valid, boxed (never moved) z_stream; version and size
        // are those of the library linked.
        let rc = unsafe {
            z::inflateInit2_(
                &mut *strm,
                -15,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if rc != z::Z_OK {
            return Err(format!("inflateInit2 failed ({rc})"));
        }
        Ok(RawInflate { strm })
    }
}

impl Drop for RawInflate {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, ended only here.
        unsafe { z::inflateEnd(&mut *self.strm) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate_all(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(stream)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn joined_chunks_are_one_deflate_stream() {
        // Text, runs and noise, so libdeflate picks dynamic, static and
        // stored blocks and ends at every bit offset somewhere.
        let mut x = 1u32;
        let pieces: Vec<Vec<u8>> = (0..40)
            .map(|i| {
                (0..(i * 997 % 70_000))
                    .map(|j| {
                        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        match i % 4 {
                            0 => b"usr/lib/x86_64-linux-gnu/"[j % 25],
                            1 => 0,
                            2 => (x >> 24) as u8,
                            _ => (j % 7) as u8 + b'a',
                        }
                    })
                    .collect()
            })
            .collect();
        let mut joined = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let last = i == pieces.len() - 1;
            let chunk = deflate_chunk(piece, 6, last).unwrap();
            if !last {
                assert_eq!(&chunk[chunk.len() - 4..], &[0, 0, 0xff, 0xff]);
            }
            joined.extend_from_slice(&chunk);
        }
        assert_eq!(inflate_all(&joined), pieces.concat());
    }
}
