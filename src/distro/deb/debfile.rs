//! Reading a `.deb`: `debian-binary`, `control.tar[.gz|.xz|.zst]`,
//! `data.tar[.gz|.xz|.zst]`, in that order (deb(5); apt CVE-2020-3810).
//!
//! The archive is streamed once: the control member is read into memory
//! (capped at 64 MiB, as apt does), then the data member is handed out as a
//! decompressing reader, capped, for [`crate::rootfs::extract`] to consume.
//! Members whose names start with `_` may appear between the known ones and
//! are skipped, as dpkg-deb does; anything else is an error.

use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::archive::ar::{ArError, ArReader};
use crate::archive::decompress::{self, Compression};
use crate::archive::tar::{EntryKind, TarError, TarReader};
use crate::distro::deb::control::{self, ControlError};

/// Cap on the decompressed control member (apt's limit).
pub const CONTROL_LIMIT: u64 = 64 << 20;
/// Cap on the compressed data member.
pub const DATA_MEMBER_LIMIT: u64 = 16 << 30;
/// Members starting with `_` skipped before giving up.
const MAX_EXTRA_MEMBERS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("{deb}: {source}")]
    Ar {
        deb: String,
        #[source]
        source: ArError,
    },
    #[error("{deb}: {msg}")]
    Format { deb: String, msg: String },
    #[error("{deb}: control.tar: {source}")]
    ControlTar {
        deb: String,
        #[source]
        source: TarError,
    },
    #[error("{deb}: control file: {source}")]
    Control {
        deb: String,
        #[source]
        source: ControlError,
    },
    #[error("{deb}: {what}: {source}")]
    Io {
        deb: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The control member's files, by name (`control`, `md5sums`, `conffiles`,
/// `preinst`, `postinst`, `prerm`, `postrm`, `config`, `triggers`, `shlibs`,
/// `symbols`, `templates`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ControlFiles {
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// The `control` file as text.
    pub fn control_text(&self) -> Option<&str> {
        self.get("control")
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Conffile paths (absolute, as written in `conffiles`), without the
    /// `remove-on-upgrade` flag lines' flags.
    pub fn conffiles(&self) -> Vec<String> {
        let Some(raw) = self.get("conffiles") else {
            return Vec::new();
        };
        String::from_utf8_lossy(raw)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                // dpkg ≥ 1.20.1: "remove-on-upgrade /path" marks obsolete ones.
                let mut words = l.split_whitespace();
                let first = words.next()?;
                if first.starts_with('/') {
                    Some(first.to_string())
                } else if first == "remove-on-upgrade" {
                    None
                } else {
                    words.next().map(str::to_string)
                }
            })
            .collect()
    }
}

/// An opened .deb positioned at its data member.
pub struct DebFile<R: Read> {
    /// Name used in messages (file name or package).
    pub name: String,
    /// The control member's files; `control` is checked to be one paragraph.
    pub control: ControlFiles,
    data_compression: Compression,
    ar: ArReader<R>,
}

impl<R: Read> DebFile<R> {
    /// Reads `debian-binary` and the control member, stopping at the start
    /// of the data member.
    pub fn read(reader: R, name: &str) -> Result<DebFile<R>, DebError> {
        let mut ar = ArReader::new(reader);
        let ar_err = |source| DebError::Ar {
            deb: name.to_string(),
            source,
        };
        let format = |msg: String| DebError::Format {
            deb: name.to_string(),
            msg,
        };
        let first = ar
            .next_member()
            .map_err(ar_err)?
            .ok_or_else(|| format("empty ar archive".into()))?;
        if first.name != "debian-binary" {
            return Err(format(format!(
                "first member is {:?}, not debian-binary",
                first.name
            )));
        }
        if first.size > 64 {
            return Err(format("debian-binary is too large".into()));
        }
        let mut version = Vec::new();
        ar.read_to_end(&mut version).map_err(|e| DebError::Io {
            deb: name.to_string(),
            what: "debian-binary",
            source: e,
        })?;
        check_version(&version).map_err(format)?;

        let control_member = next_known(&mut ar, name, "control.tar")?;
        if control_member.1 > CONTROL_LIMIT {
            return Err(format(format!(
                "{} is larger than {CONTROL_LIMIT} bytes",
                control_member.0
            )));
        }
        let control = read_control(&mut ar, &control_member.0, name)?;
        let text = control
            .control_text()
            .ok_or_else(|| format("control.tar has no UTF-8 control file".into()))?;
        control::single_paragraph(text).map_err(|source| DebError::Control {
            deb: name.to_string(),
            source,
        })?;

        let (data_name, data_size) = next_known(&mut ar, name, "data.tar")?;
        if data_size > DATA_MEMBER_LIMIT {
            return Err(format(format!(
                "{data_name} is larger than {DATA_MEMBER_LIMIT} bytes"
            )));
        }
        Ok(DebFile {
            name: name.to_string(),
            control,
            data_compression: Compression::from_name(&data_name),
            ar,
        })
    }

    /// The decompressed data tar, failing once more than `limit` bytes come
    /// out (HOSTILE 14).
    pub fn into_data<'a>(
        self,
        limit: u64,
        integrity: decompress::Integrity,
    ) -> Result<Box<dyn Read + 'a>, DebError>
    where
        R: 'a,
    {
        let name = self.name.clone();
        let member = self.ar.into_member_reader();
        decompress::decoder_for(self.data_compression, member, limit, integrity).map_err(|e| {
            DebError::Io {
                deb: name,
                what: "data.tar",
                source: e,
            }
        })
    }
}

fn check_version(v: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(v).map_err(|_| "debian-binary is not text".to_string())?;
    let line = text
        .strip_suffix('\n')
        .ok_or_else(|| "debian-binary does not end with a newline".to_string())?;
    let major = line.split('.').next().unwrap_or("");
    if major != "2" || !line.contains('.') {
        return Err(format!("unsupported .deb format version {line:?}"));
    }
    Ok(())
}

/// Skips `_`-prefixed members, then expects `<stem>` or `<stem>.{gz,xz,zst}`.
fn next_known<R: Read>(
    ar: &mut ArReader<R>,
    deb: &str,
    stem: &str,
) -> Result<(String, u64), DebError> {
    for _ in 0..=MAX_EXTRA_MEMBERS {
        let member = ar
            .next_member()
            .map_err(|source| DebError::Ar {
                deb: deb.to_string(),
                source,
            })?
            .ok_or_else(|| DebError::Format {
                deb: deb.to_string(),
                msg: format!("missing {stem} member"),
            })?;
        if member.name.starts_with('_') {
            continue;
        }
        let ok = [
            stem.to_string(),
            format!("{stem}.gz"),
            format!("{stem}.xz"),
            format!("{stem}.zst"),
        ];
        if ok.contains(&member.name) {
            return Ok((member.name, member.size));
        }
        return Err(DebError::Format {
            deb: deb.to_string(),
            msg: format!(
                "unexpected member {:?} (expected {stem}[.gz|.xz|.zst])",
                member.name
            ),
        });
    }
    Err(DebError::Format {
        deb: deb.to_string(),
        msg: "too many extra members".into(),
    })
}

fn read_control<R: Read>(
    ar: &mut ArReader<R>,
    member: &str,
    deb: &str,
) -> Result<ControlFiles, DebError> {
    let io_err = |source| DebError::Io {
        deb: deb.to_string(),
        what: "control.tar",
        source,
    };
    let decoder =
        decompress::decoder(Compression::from_name(member), ar, CONTROL_LIMIT).map_err(io_err)?;
    let mut tar = TarReader::new(decoder);
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    while let Some(mut entry) = tar.next_entry().map_err(|source| DebError::ControlTar {
        deb: deb.to_string(),
        source,
    })? {
        if entry.header.kind != EntryKind::File {
            continue;
        }
        let path = entry.header.path.clone();
        let name = path.strip_prefix(b"./").unwrap_or(&path);
        if name.is_empty() || name.contains(&b'/') {
            continue;
        }
        let Ok(name) = String::from_utf8(name.to_vec()) else {
            continue;
        };
        total += entry.header.size;
        if total > CONTROL_LIMIT {
            return Err(DebError::Format {
                deb: deb.to_string(),
                msg: format!("control files exceed {CONTROL_LIMIT} bytes"),
            });
        }
        let mut data = Vec::with_capacity(usize::try_from(entry.header.size).unwrap_or(0));
        entry.read_to_end(&mut data).map_err(io_err)?;
        files.insert(name, data);
    }
    Ok(ControlFiles { files })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ar::testutil::build;
    use crate::archive::tar::testutil::*;

    fn control_tar() -> Vec<u8> {
        let mut t = Vec::new();
        push(
            &mut t,
            &RawEntry {
                name: b"./",
                typeflag: b'5',
                ..Default::default()
            },
        );
        push(
            &mut t,
            &RawEntry {
                name: b"./control",
                data: b"Package: p\nVersion: 1\nArchitecture: all\n",
                ..Default::default()
            },
        );
        push(
            &mut t,
            &RawEntry {
                name: b"./conffiles",
                data: b"/etc/a\nremove-on-upgrade /etc/old\n",
                ..Default::default()
            },
        );
        push(
            &mut t,
            &RawEntry {
                name: b"./postinst",
                data: b"#!/bin/sh\n",
                mode: 0o755,
                ..Default::default()
            },
        );
        finish(&mut t);
        t
    }

    fn data_tar() -> Vec<u8> {
        let mut t = Vec::new();
        push(
            &mut t,
            &RawEntry {
                name: b"./etc/a",
                data: b"conf",
                ..Default::default()
            },
        );
        finish(&mut t);
        t
    }

    #[test]
    fn reads_members_in_order() {
        let deb = build(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &control_tar()),
            ("_extra", b"x"),
            ("data.tar", &data_tar()),
        ]);
        let d = DebFile::read(std::io::Cursor::new(deb), "p.deb").unwrap();
        assert_eq!(d.control.conffiles(), ["/etc/a"]);
        assert_eq!(d.control.get("postinst").unwrap(), b"#!/bin/sh\n");
        let mut data = Vec::new();
        d.into_data(1 << 20, decompress::Integrity::Check)
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(data, data_tar());
    }

    #[test]
    fn rejects_wrong_order_and_versions() {
        // HOSTILE 13.
        let c = control_tar();
        let d = data_tar();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                build(&[
                    ("control.tar", &c),
                    ("debian-binary", b"2.0\n"),
                    ("data.tar", &d),
                ]),
                "not debian-binary",
            ),
            (
                build(&[
                    ("debian-binary", b"2.0\n"),
                    ("data.tar", &d),
                    ("control.tar", &c),
                ]),
                "unexpected member",
            ),
            (
                build(&[
                    ("debian-binary", b"3.0\n"),
                    ("control.tar", &c),
                    ("data.tar", &d),
                ]),
                "unsupported",
            ),
            (
                build(&[
                    ("debian-binary", b"2.0\n"),
                    ("control.tar", &c),
                    ("data.tar.bz2", &d),
                ]),
                "unexpected member",
            ),
            (
                build(&[("debian-binary", b"2.0\n"), ("control.tar", &c)]),
                "missing data.tar",
            ),
            (b"!<arch>\nnot a header".to_vec(), "truncated member header"),
        ];
        for (deb, needle) in cases {
            let err = DebFile::read(std::io::Cursor::new(deb), "bad.deb")
                .err()
                .expect(needle);
            let msg = err.to_string();
            assert!(
                msg.contains(needle) && msg.contains("bad.deb"),
                "{msg} lacks {needle}"
            );
        }
    }
}
