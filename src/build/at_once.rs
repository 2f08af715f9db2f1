//! The platforms of one build (a recipe's or a Dockerfile's) or lock, done at
//! once: one thread each, their lines prefixed with the platform. A native
//! platform's build needs the CPU only briefly, an emulated one's dpkg runs
//! on one core for much longer, so when both are built the native ones run
//! at a lower priority: when both want the CPU the emulated one, the
//! longest, gets it, and the native ones fill the core emulation leaves
//! idle (without it, their unpacking and packing competed with the emulated
//! platform's native unpacking and the index took longer than the builds
//! in sequence; BENCHMARKS.md, "Foreign platforms").

use crate::distro::platform::Platform;
use crate::report::SharedReporter;
use crate::rootfs::emulation::{self, Emulation};

/// What the jobs of [`for_platforms`] do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// Build: the platforms' own programs run (emulated when foreign).
    Build,
    /// Lock: only indexes are read and solved, natively for every platform.
    Lock,
}

/// Runs `job` for each platform on its own thread, with a reporter that
/// prefixes its lines with the platform; the results in `platforms`' order.
/// A panic in a job is resumed here.
pub(crate) fn for_platforms<T: Send, E: Send>(
    work: Work,
    platforms: &[Platform],
    reporter: &SharedReporter,
    job: impl Fn(&Platform, SharedReporter) -> Result<T, E> + Sync,
) -> Vec<Result<T, E>> {
    let verb = match work {
        Work::Build => "build",
        Work::Lock => "lock",
    };
    reporter.stage(&format!("{verb} {} platforms at once", platforms.len()));
    let emulated_too = work == Work::Build && platforms.iter().any(|p| !runs_natively(p));
    // The shared worker pool starts here, at this thread's priority, not
    // in a platform thread that may lower its own.
    rayon::current_num_threads();
    std::thread::scope(|scope| {
        let running: Vec<_> = platforms
            .iter()
            .map(|platform| {
                let reporter = crate::report::prefixed(reporter, &format!("[{platform}]"));
                let lower = emulated_too && runs_natively(platform);
                let job = &job;
                scope.spawn(move || {
                    if lower {
                        yield_to_emulated_platforms();
                    }
                    job(platform, reporter)
                })
            })
            .collect();
        running
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Whether this machine's CPU runs `platform`'s programs itself.
fn runs_natively(platform: &Platform) -> bool {
    emulation::check(&platform.architecture) == Ok(Emulation::Native)
}

/// Lowers the calling thread's CPU priority (nice +10; the threads and
/// processes it starts inherit it).
fn yield_to_emulated_platforms() {
    // SAFETY: setpriority with integer arguments; `0` is the calling thread.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
}
