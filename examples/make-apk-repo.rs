//! Writes the Alpine fixture repository the integration tests use (real
//! signed v2 packages around the host's static busybox, a signed
//! APKINDEX.tar.gz) plus its public key, for scripts/e2e-alpine.sh:
//!
//!     cargo run --example make-apk-repo -- OUTDIR
//!     # OUTDIR/v3.20/main/<arch>/*.apk + APKINDEX.tar.gz, OUTDIR/keys/*.rsa.pub
//!
//! Serve OUTDIR as the mirror and pass `--keys OUTDIR/keys`. The fixture's
//! apk-tools package has no apk binary: the image runs /bin/sh (busybox),
//! not apk.

#[path = "../tests/common/apkrepo.rs"]
mod apkrepo;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: make-apk-repo OUTDIR");
        return ExitCode::from(2);
    };
    let Some(busybox) = apkrepo::host_static_busybox() else {
        eprintln!("make-apk-repo: no static busybox on this host (install busybox-static)");
        return ExitCode::from(2);
    };
    let arch = std::env::var("APK_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.to_owned());
    let release = std::env::var("APK_RELEASE").unwrap_or_else(|_| "v3.20".to_owned());
    match apkrepo::write_minirootfs_repo(out.as_ref(), &release, "main", &arch, &busybox) {
        Ok(repo) => {
            println!("repository: {}", repo.arch_dir.display());
            println!("keys: {}", repo.keys_dir.display());
            for p in &repo.packages {
                println!("  {}", p.spec.file_name());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "make-apk-repo: {}: {e}",
                std::path::Path::new(&out).display()
            );
            ExitCode::FAILURE
        }
    }
}
