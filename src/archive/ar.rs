//! Streaming reader for the `ar` archives that wrap Debian packages.
//!
//! Only the common (System V / GNU) format as written by dpkg-deb is
//! accepted: the `!<arch>\n` magic, 60-byte member headers with a decimal
//! size and the `` `\n `` terminator, data padded to an even length. Member
//! names longer than 16 bytes (GNU `//` tables, BSD `#1/`) never occur in a
//! .deb and are refused (apt CVE-2020-3810 is about lax header parsing).

use std::io::{self, Read};

const MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LEN: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum ArError {
    #[error("not an ar archive (bad magic)")]
    BadMagic,
    #[error("ar member #{index}: {msg}")]
    BadHeader { index: usize, msg: String },
    #[error("ar member #{index} ({name}): archive truncated")]
    Truncated { index: usize, name: String },
    #[error("ar archive: {0}")]
    Io(#[from] io::Error),
}

/// Header of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMember {
    /// Member name with the GNU trailing `/` and padding removed.
    pub name: String,
    pub size: u64,
    /// Position among members, from 0.
    pub index: usize,
}

pub struct ArReader<R> {
    inner: R,
    remaining: u64,
    pad: u64,
    index: usize,
    started: bool,
    current: String,
}

impl<R: Read> Read for ArReader<R> {
    /// Reads the data of the current member (empty before the first
    /// `next_member` and at the member's end).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        super::read_member_data(&mut self.inner, &mut self.remaining, buf, || {
            format!("ar member {}: archive truncated", self.current)
        })
    }
}

impl<R: Read> ArReader<R> {
    pub fn new(inner: R) -> Self {
        ArReader {
            inner,
            remaining: 0,
            pad: 0,
            index: 0,
            started: false,
            current: String::new(),
        }
    }

    fn truncated(&self) -> ArError {
        ArError::Truncated {
            index: self.index,
            name: self.current.clone(),
        }
    }

    fn skip_rest(&mut self) -> Result<(), ArError> {
        let n = self.remaining + self.pad;
        self.remaining = 0;
        self.pad = 0;
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        if copied != n {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// The unread rest of the current member as an owned reader, for a
    /// member streamed to the end (a .deb's data.tar is the last one read).
    pub fn into_member_reader(self) -> io::Take<R> {
        let remaining = self.remaining;
        self.inner.take(remaining)
    }

    /// Advances to the next member, skipping whatever is left of the current
    /// one; its data is then read from `self`. `None` at a clean end.
    pub fn next_member(&mut self) -> Result<Option<ArMember>, ArError> {
        if !self.started {
            let mut magic = [0u8; 8];
            self.inner
                .read_exact(&mut magic)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => ArError::BadMagic,
                    _ => ArError::Io(e),
                })?;
            if &magic != MAGIC {
                return Err(ArError::BadMagic);
            }
            self.started = true;
        } else {
            self.skip_rest()?;
            self.index += 1;
        }
        let mut header = [0u8; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            match self.inner.read(&mut header[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(ArError::BadHeader {
                        index: self.index,
                        msg: "truncated member header".into(),
                    })
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let member = parse_header(&header, self.index).map_err(|msg| ArError::BadHeader {
            index: self.index,
            msg,
        })?;
        self.current = member.name.clone();
        self.remaining = member.size;
        self.pad = member.size % 2;
        Ok(Some(member))
    }
}

fn parse_header(h: &[u8; HEADER_LEN], index: usize) -> Result<ArMember, String> {
    if &h[58..60] != b"`\n" {
        return Err("bad header terminator".into());
    }
    let name_field = &h[0..16];
    let name = std::str::from_utf8(name_field)
        .map_err(|_| "member name is not ASCII".to_string())?
        .trim_end_matches(' ');
    let name = name.strip_suffix('/').unwrap_or(name);
    if name.is_empty()
        || name.starts_with('/')
        || name.starts_with("#1/")
        || !name.bytes().all(|c| c.is_ascii_graphic())
    {
        return Err(format!("unsupported member name {name:?}"));
    }
    // Timestamp, owner, group and mode are decimal/octal text, unused here,
    // but they must at least be printable so a header is recognisable.
    if !h[16..58].iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        return Err(format!("member {name:?}: header fields are not text"));
    }
    let size_text = std::str::from_utf8(&h[48..58])
        .map_err(|_| "size is not text".to_string())?
        .trim_end_matches(' ');
    if size_text.is_empty() || !size_text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "member {name:?}: size {size_text:?} is not decimal"
        ));
    }
    let size = size_text
        .parse::<u64>()
        .map_err(|_| format!("member {name:?}: size overflows"))?;
    Ok(ArMember {
        name: name.to_string(),
        size,
        index,
    })
}

#[cfg(test)]
pub(crate) mod testutil {
    pub fn member_header(name: &str, size: usize) -> Vec<u8> {
        format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
            0, 0, 0, "100644"
        )
        .into_bytes()
    }

    pub fn build(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            out.extend(member_header(name, data.len()));
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn reads_members_in_order_skipping_unread_data() {
        let ar = build(&[("debian-binary", b"2.0\n"), ("odd", b"abc"), ("last", b"z")]);
        let mut r = ArReader::new(&ar[..]);
        let first = r.next_member().unwrap().unwrap();
        assert_eq!(first.name, "debian-binary");
        assert_eq!(first.size, 4);
        let odd = r.next_member().unwrap().unwrap();
        assert_eq!(odd.name, "odd");
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abc");
        let last = r.next_member().unwrap().unwrap();
        assert_eq!(last.name, "last");
        assert_eq!(last.index, 2);
        assert!(r.next_member().unwrap().is_none());
    }

    #[test]
    fn rejects_bad_magic_terminator_and_size() {
        assert!(matches!(
            ArReader::new(&b"!<arcx>\n"[..]).next_member(),
            Err(ArError::BadMagic)
        ));
        let mut ar = build(&[("a", b"x")]);
        ar[8 + 58] = b'x';
        assert!(ArReader::new(&ar[..]).next_member().is_err());
        let mut ar = b"!<arch>\n".to_vec();
        ar.extend(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                "a", 0, 0, 0, "100644", "12x"
            )
            .bytes(),
        );
        let e = ArReader::new(&ar[..]).next_member().err().unwrap();
        assert!(e.to_string().contains("not decimal"), "{e}");
    }

    #[test]
    fn truncated_member_is_an_error() {
        let mut ar = build(&[("a", b"xxxxxxxx")]);
        ar.truncate(ar.len() - 3);
        let mut r = ArReader::new(&ar[..]);
        r.next_member().unwrap().unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
