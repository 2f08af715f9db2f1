//! A seccomp filter that makes the sync family of system calls succeed
//! without doing anything, as `systemd-nspawn --suppress-sync=yes` and
//! eatmydata do. The tree a sandboxed command writes to is a build
//! artifact: it is packed into a layer when the command ends, or thrown
//! away if the build fails, so nothing in it has to survive a crash, and
//! dpkg's hundreds of fsyncs per `--configure` are pure waiting.
//!
//! Only the system calls whose whole job is durability are filtered;
//! every other call, and every call of a foreign ABI (x32, ia32), runs as
//! usual.
//!
//! The program is a handful of BPF instructions built from libc's
//! constants, so it is written here rather than pulled in through a
//! filter-compiler crate (seccompiler, libseccomp) for one fixed rule set;
//! the unit test below runs it the way the kernel does.

/// `seccomp_data.arch` of the native ABI, or `None` where no filter is
/// defined (the command then runs with real syncs).
const fn native_audit_arch() -> Option<u32> {
    if cfg!(target_arch = "x86_64") {
        Some(0xC000_003E) // AUDIT_ARCH_X86_64
    } else if cfg!(target_arch = "aarch64") {
        Some(0xC000_00B7) // AUDIT_ARCH_AARCH64
    } else {
        None
    }
}

/// The calls answered with success.
const SYNC_CALLS: [libc::c_long; 5] = [
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_sync,
    libc::SYS_syncfs,
    libc::SYS_sync_file_range,
];

/// Offsets into `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump_if_equal(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// The BPF program, or `None` on architectures without one.
pub(super) fn program() -> Option<Vec<libc::sock_filter>> {
    let arch = native_audit_arch()?;
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let n = SYNC_CALLS.len() as u8;
    let mut prog = vec![
        statement(load, OFFSET_ARCH),
        // Another ABI: skip the number checks, straight to "allow".
        jump_if_equal(arch, 0, n + 1),
        statement(load, OFFSET_NR),
    ];
    for (i, nr) in SYNC_CALLS.iter().enumerate() {
        // Matched: jump over the remaining checks and the "allow" to the
        // "succeed without doing it" return.
        let to_success = n - i as u8;
        prog.push(jump_if_equal(*nr as u32, to_success, 0));
    }
    prog.push(statement(ret, libc::SECCOMP_RET_ALLOW));
    prog.push(statement(ret, libc::SECCOMP_RET_ERRNO)); // errno 0: success
    Some(prog)
}

/// Installs the filter on the calling thread (inherited by everything it
/// executes). Needs CAP_SYS_ADMIN, which the sandbox's root still has: no
/// `no_new_privs`, so set-uid programs in the root keep working.
pub(super) fn install() -> Result<(), String> {
    let Some(prog) = program() else {
        return Ok(());
    };
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(format!(
            "installing the sync-suppressing seccomp filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel does, for one (arch, nr).
    fn verdict(prog: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            let code = u32::from(ins.code);
            if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS {
                acc = if ins.k == OFFSET_ARCH { arch } else { nr };
                pc += 1;
            } else if code == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K {
                pc += 1 + usize::from(if acc == ins.k { ins.jt } else { ins.jf });
            } else if code == libc::BPF_RET | libc::BPF_K {
                return ins.k;
            } else {
                panic!("unexpected instruction {code:#x}");
            }
        }
    }

    #[test]
    fn sync_calls_succeed_and_everything_else_is_allowed() {
        let Some(prog) = program() else {
            eprintln!("SKIP: no filter on this architecture");
            return;
        };
        let arch = native_audit_arch().unwrap();
        for nr in SYNC_CALLS {
            assert_eq!(verdict(&prog, arch, nr as u32), libc::SECCOMP_RET_ERRNO);
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_msync,
        ] {
            assert_eq!(verdict(&prog, arch, nr as u32), libc::SECCOMP_RET_ALLOW);
        }
        // Another ABI's fsync number is left alone.
        assert_eq!(
            verdict(&prog, 0x4000_0003, libc::SYS_fsync as u32),
            libc::SECCOMP_RET_ALLOW
        );
    }
}
