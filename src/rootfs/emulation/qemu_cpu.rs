//! The CPU model qemu-user emulates for arm64 programs.
//!
//! qemu-user's default arm64 CPU (`max`) implements pointer authentication
//! with the architected QARMA5 cipher, computed in software at every
//! signed return address. Debian (trixie on) and Alpine build arm64 code
//! with `-mbranch-protection=standard`, so every function call pays it: an
//! arm64 perl loop ran 11.5 s under Debian's qemu 7.2 by default and 0.35 s
//! with `max,pauth=off` (BENCHMARKS.md, "Foreign platforms"). The compilers
//! emit the hint-space instructions only (PACIASP, AUTIASP), which a CPU
//! without pointer authentication executes as no-ops, as the many arm64
//! machines without it (Cortex-A72, Neoverse N1) do; so the scripts run as
//! they run on such hardware. A user's own `QEMU_CPU` is passed through
//! unchanged instead.
//!
//! An older qemu that lacks the `pauth` property would refuse to start, so
//! the setting is first tried on a minimal arm64 program (built here, run
//! once per process through the same binfmt_misc entry).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{check, Emulation};

/// The variable qemu-user reads its CPU model from.
pub const QEMU_CPU: &str = "QEMU_CPU";

/// The model rootstrap asks for: everything `max` has but pointer
/// authentication.
pub const FAST_ARM64_CPU: &str = "max,pauth=off";

/// The `QEMU_CPU` setting for `target`'s programs, to put in the
/// environment of the package scripts and `RUN` steps that run through
/// qemu-user: the caller's own `QEMU_CPU` if set, else [`FAST_ARM64_CPU`]
/// for arm64 when the registered interpreter accepts it; `None` otherwise
/// (native, another architecture, or a qemu without the property).
pub fn setting(target: &str) -> Option<(String, String)> {
    if !matches!(check(target), Ok(Emulation::Interpreter { .. })) {
        return None;
    }
    if let Some(own) = std::env::var_os(QEMU_CPU) {
        return Some((QEMU_CPU.to_owned(), own.to_string_lossy().into_owned()));
    }
    if target != "arm64" {
        return None;
    }
    static ACCEPTED: OnceLock<bool> = OnceLock::new();
    ACCEPTED
        .get_or_init(|| runs_with(FAST_ARM64_CPU))
        .then(|| (QEMU_CPU.to_owned(), FAST_ARM64_CPU.to_owned()))
}

/// Whether the minimal arm64 program exits 0 when run with `QEMU_CPU=cpu`.
/// Run from memory (a memfd), so no directory needs to allow execution.
fn runs_with(cpu: &str) -> bool {
    let Ok(fd) = rustix::fs::memfd_create(c"rootstrap-qemu-probe", rustix::fs::MemfdFlags::CLOEXEC)
    else {
        return false;
    };
    let mut file = std::fs::File::from(fd);
    if file.write_all(&exit_zero_arm64_elf()).is_err() {
        return false;
    }
    // The child resolves the path before its close-on-exec descriptors go.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    Command::new(path)
        .env_clear()
        .env(QEMU_CPU, cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A static arm64 ELF executable whose whole program is `exit(0)`: the
/// ELF header, one loadable segment, three instructions.
fn exit_zero_arm64_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const EHDR: u16 = 64;
    const PHDR: u16 = 56;
    let code: [u32; 3] = [
        0xd280_0000, // mov x0, #0
        0xd280_0ba8, // mov x8, #93 (exit)
        0xd400_0001, // svc #0
    ];
    let size = u64::from(EHDR + PHDR) + 4 * code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&183u16.to_le_bytes()); // e_machine: EM_AARCH64
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + u64::from(EHDR + PHDR)).to_le_bytes()); // e_entry
    elf.extend_from_slice(&u64::from(EHDR).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [EHDR, PHDR, 1, 0, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&size.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&size.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1_0000u64.to_le_bytes()); // p_align
    for insn in code {
        elf.extend_from_slice(&insn.to_le_bytes());
    }
    elf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_is_an_arm64_executable_the_binfmt_entry_matches() {
        let elf = exit_zero_arm64_elf();
        assert_eq!(elf.len(), 64 + 56 + 12);
        // The magic and mask Debian's qemu-user-static registers.
        let entry = super::super::parse_entry(
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
        );
        assert!(entry.matches(&elf));
        // The entry point is the first instruction, inside the segment.
        let entry_point = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        assert_eq!(entry_point, 0x40_0000 + 120);
        assert_eq!(&elf[120..124], &0xd280_0000u32.to_le_bytes());
    }

    /// Runs the probe for real where an arm64 interpreter is registered.
    #[test]
    fn the_probe_runs_where_arm64_programs_run() {
        if !matches!(check("arm64"), Ok(Emulation::Interpreter { .. })) {
            eprintln!("SKIP: no binfmt_misc interpreter for arm64 here");
            return;
        }
        assert!(
            runs_with("max"),
            "the exit(0) program did not exit 0 under qemu"
        );
        assert!(
            !runs_with("no-such-cpu-model"),
            "a CPU model qemu does not know was accepted: the probe proves nothing"
        );
    }
}
