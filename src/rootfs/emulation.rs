//! Running a foreign architecture's programs (package scripts, `RUN`)
//! through binfmt_misc and qemu-user.
//!
//! The kernel runs a foreign ELF file through the interpreter registered
//! for its header. Inside the build's chroot the interpreter's own path
//! does not exist, so only an entry with the fix-binary flag (`F`: the
//! kernel opens the interpreter when it is registered) works there; Debian's
//! `qemu-user-static` registers its entries with it. Entries are matched by
//! their magic and mask against the target's ELF header, as the kernel
//! does, so any registration (qemu-user-static, binfmt-support,
//! systemd-binfmt, a container's `tonistiigi/binfmt`) is found.

pub mod qemu_cpu;

use std::path::{Path, PathBuf};

/// Where the kernel exposes its binfmt_misc entries.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// How a target's programs run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    /// The CPU runs them.
    Native,
    /// Through the registered interpreter (binfmt_misc entry name, path).
    Interpreter { entry: String, path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulationError {
    #[error("{target} programs (package scripts, RUN) cannot run on this {host} machine: {reason}; install qemu-user-static (which registers interpreters with the fix-binary flag), or pass --skip-foreign-scripts to build without running them (the image is then labelled org.rootstrap.scripts=not-run)")]
    Unavailable {
        target: String,
        host: String,
        reason: String,
    },
    #[error("rootstrap does not know the ELF machine of architecture {0:?}")]
    UnknownArch(String),
}

/// ELF class, byte order and machine of an OCI architecture.
fn elf_identity(oci_arch: &str) -> Option<(u8, u8, u16)> {
    const LE: u8 = 1;
    const BE: u8 = 2;
    Some(match oci_arch {
        "amd64" => (2, LE, 62),
        "386" => (1, LE, 3),
        "arm64" => (2, LE, 183),
        "arm" => (1, LE, 40),
        "ppc64le" => (2, LE, 21),
        "s390x" => (2, BE, 22),
        "riscv64" => (2, LE, 243),
        _ => return None,
    })
}

/// The first 20 bytes of an executable of that architecture (ET_EXEC).
fn sample_header(oci_arch: &str) -> Option<[u8; 20]> {
    let (class, data, machine) = elf_identity(oci_arch)?;
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class;
    h[5] = data;
    h[6] = 1;
    let (e_type, e_machine) = if data == 1 {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    } else {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    };
    h[16..18].copy_from_slice(&e_type);
    h[18..20].copy_from_slice(&e_machine);
    Some(h)
}

/// The OCI architecture this process runs as.
pub fn host_arch() -> &'static str {
    crate::image::oci::oci_arch(std::env::consts::ARCH).0
}

/// Whether this CPU runs `target`'s programs itself (x86-64 runs i386).
fn runs_natively(host: &str, target: &str) -> bool {
    host == target || (host == "amd64" && target == "386")
}

/// One binfmt_misc entry, as its file under [`BINFMT_DIR`] describes it.
#[derive(Debug, Default)]
struct Entry {
    enabled: bool,
    interpreter: PathBuf,
    flags: String,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

fn parse_entry(text: &str) -> Entry {
    let mut e = Entry::default();
    for line in text.lines() {
        let line = line.trim();
        if line == "enabled" {
            e.enabled = true;
        } else if let Some(v) = line.strip_prefix("interpreter ") {
            e.interpreter = PathBuf::from(v);
        } else if let Some(v) = line.strip_prefix("flags:") {
            e.flags = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("offset ") {
            e.offset = v.trim().parse().unwrap_or(usize::MAX);
        } else if let Some(v) = line.strip_prefix("magic ") {
            e.magic = hex::decode(v.trim()).unwrap_or_default();
        } else if let Some(v) = line.strip_prefix("mask ") {
            e.mask = hex::decode(v.trim()).unwrap_or_default();
        }
    }
    e
}

impl Entry {
    /// Whether the kernel would pick this entry for `header`.
    fn matches(&self, header: &[u8]) -> bool {
        if self.magic.is_empty() || self.offset.saturating_add(self.magic.len()) > header.len() {
            return false;
        }
        self.magic.iter().enumerate().all(|(i, m)| {
            let mask = self.mask.get(i).copied().unwrap_or(0xff);
            header[self.offset + i] & mask == m & mask
        })
    }
}

/// How `target` (an OCI architecture) runs on this machine, reading the
/// registrations under `binfmt_dir`.
pub fn check_in(binfmt_dir: &Path, target: &str) -> Result<Emulation, EmulationError> {
    let host = host_arch();
    if runs_natively(host, target) {
        return Ok(Emulation::Native);
    }
    let header = sample_header(target).ok_or_else(|| EmulationError::UnknownArch(target.into()))?;
    let unavailable = |reason: String| EmulationError::Unavailable {
        target: target.to_owned(),
        host: host.to_owned(),
        reason,
    };
    let status = std::fs::read_to_string(binfmt_dir.join("status")).map_err(|_| {
        unavailable(format!(
            "binfmt_misc is not mounted at {} (mount -t binfmt_misc binfmt_misc {0})",
            binfmt_dir.display()
        ))
    })?;
    if status.trim() != "enabled" {
        return Err(unavailable("binfmt_misc is disabled".into()));
    }
    let mut names: Vec<String> = std::fs::read_dir(binfmt_dir)
        .map_err(|e| unavailable(format!("cannot read {}: {e}", binfmt_dir.display())))?
        .filter_map(|d| d.ok())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "register" && n != "status")
        .collect();
    names.sort();
    let mut without_f = None;
    for name in names {
        let Ok(text) = std::fs::read_to_string(binfmt_dir.join(&name)) else {
            continue;
        };
        let entry = parse_entry(&text);
        if !entry.enabled || !entry.matches(&header) {
            continue;
        }
        if entry.flags.contains('F') {
            return Ok(Emulation::Interpreter {
                entry: name,
                path: entry.interpreter,
            });
        }
        without_f.get_or_insert(name);
    }
    Err(unavailable(match without_f {
        Some(name) => format!(
            "the binfmt_misc entry {name} is registered without the fix-binary (F) flag, so its interpreter cannot be found inside the build's chroot"
        ),
        None => "no binfmt_misc interpreter is registered for it".to_owned(),
    }))
}

/// [`check_in`] on this machine's binfmt_misc.
pub fn check(target: &str) -> Result<Emulation, EmulationError> {
    check_in(Path::new(BINFMT_DIR), target)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn binfmt(entries: &[(&str, &str)], status: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(s) = status {
            std::fs::write(dir.path().join("status"), s).unwrap();
            std::fs::write(dir.path().join("register"), "").unwrap();
        }
        for (name, text) in entries {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_registered_fix_binary_interpreter_is_found_by_its_magic() {
        if host_arch() != "amd64" {
            eprintln!("SKIP: the sample entries are for an amd64 host");
            return;
        }
        let d = binfmt(&[("whatever-name", QEMU_AARCH64)], Some("enabled\n"));
        assert_eq!(
            check_in(d.path(), "arm64").unwrap(),
            Emulation::Interpreter {
                entry: "whatever-name".into(),
                path: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".into()
            }
        );
        assert_eq!(check_in(d.path(), "amd64").unwrap(), Emulation::Native);
        assert_eq!(check_in(d.path(), "386").unwrap(), Emulation::Native);
        let err = check_in(d.path(), "s390x").unwrap_err().to_string();
        assert!(
            err.contains("no binfmt_misc interpreter") && err.contains("qemu-user-static"),
            "{err}"
        );
    }

    #[test]
    fn what_is_missing_is_said() {
        if host_arch() != "amd64" {
            eprintln!("SKIP: the sample entries are for an amd64 host");
            return;
        }
        let no_f = QEMU_AARCH64.replace("flags: POF", "flags: P");
        let d = binfmt(&[("qemu-aarch64", &no_f)], Some("enabled\n"));
        let err = check_in(d.path(), "arm64").unwrap_err().to_string();
        assert!(
            err.contains("qemu-aarch64") && err.contains("fix-binary"),
            "{err}"
        );

        let disabled = QEMU_AARCH64.replace("enabled\n", "disabled\n");
        let d = binfmt(&[("qemu-aarch64", &disabled)], Some("enabled\n"));
        assert!(check_in(d.path(), "arm64").is_err());

        let d = binfmt(&[], None);
        let err = check_in(d.path(), "arm64").unwrap_err().to_string();
        assert!(
            err.contains("not mounted") && err.contains("--skip-foreign-scripts"),
            "{err}"
        );
        assert!(matches!(
            check_in(d.path(), "mips64"),
            Err(EmulationError::UnknownArch(_))
        ));
    }
}
