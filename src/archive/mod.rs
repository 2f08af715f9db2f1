//! Archive formats read from untrusted input: tar (in .deb, .apk and ADD),
//! ar (the .deb wrapper) and the compressions around them.

pub mod ar;
pub mod decompress;
pub mod tar;

use std::io::{self, Read};

/// Reads the next bytes of a member's data, no more than the `remaining`
/// it has (counted down); `Ok(0)` once none remain. Input ending before the
/// member does is an `UnexpectedEof` error saying `truncated()`.
pub(crate) fn read_member_data(
    inner: &mut impl Read,
    remaining: &mut u64,
    buf: &mut [u8],
    truncated: impl FnOnce() -> String,
) -> io::Result<usize> {
    if *remaining == 0 || buf.is_empty() {
        return Ok(0);
    }
    let want = buf
        .len()
        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
    let n = inner.read(&mut buf[..want])?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, truncated()));
    }
    *remaining -= n as u64;
    Ok(n)
}
