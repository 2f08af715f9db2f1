//! SIGINT and SIGTERM delivered to the real `rootstrap build` (HOSTILE.md
//! item 34, issue 17 item 2): at each phase — index, fetch, unpack, package
//! scripts, pack, a RUN step, write, push — and at random instants. Afterwards nothing
//! may be at the output paths, no temporary tree or staging directory in
//! the work, temp or cache directories, no mount and no process left, and
//! the exit status is 128 + the signal (130, 143), as `cleanup.rs` does.
//!
//! Each phase is held or recognised from the outside, never by a test hook
//! in the binary: the fixture mirror stalls the InRelease or a package
//! (index, fetch), a package's postinst sleeps (scripts), a registry stalls
//! the upload (push), and the stage lines of `--progress plain` plus the
//! files appearing in the work directory tell unpack, pack and write apart.
//! Every wait is bounded and fails saying what it waited for.
//!
//! The signal is sent to the build alone (`kill PID`, as a service manager
//! stops it) or to its process group (as a terminal's Ctrl-C does); the
//! build starts in its own group with SIGINT/SIGTERM at their defaults and
//! nothing blocked, whatever the test runner inherited.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rustix::process::Signal;

use common::debrepo::{sandbox_runtime_packages, DebPackage, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::push_registry::{Action, PushRegistry};
use common::run;

/// Files in the bulk package: enough that unpacking, packing and writing
/// each take a moment that can be caught from the outside.
const BULK_FILES: usize = 3000;
const BULK_FILE_SIZE: usize = 8 * 1024;
/// The postinst of `sleeper` sleeps this long (a number no other process
/// uses, so a leftover is found by its command line).
pub(crate) const SLEEP_MARKER: &str = "47.4711";
/// The line `sleeper`'s postinst prints before it sleeps.
const POSTINST_LINE: &str = "sleeper-postinst-sleeping";
/// The longest any wait in these tests may take.
const WAIT: Duration = Duration::from_secs(120);

/// The shared fixture mirror: the host's busybox and dpkg as packages,
/// `bulk` (many files of incompressible data) and `sleeper` (a postinst
/// that sleeps). Made once; each test gets its own directories.
pub(crate) struct Mirror {
    fx: DebFixture,
    repo: PathBuf,
    pub(crate) bulk_deb: String,
}

pub(crate) fn mirror() -> Option<&'static Mirror> {
    static MIRROR: OnceLock<Option<Mirror>> = OnceLock::new();
    let made = MIRROR.get_or_init(|| {
        let mut packages = sandbox_runtime_packages()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let mut bulk = DebPackage::new("bulk", "1.0").essential();
        for i in 0..BULK_FILES {
            let mut data = vec![0u8; BULK_FILE_SIZE];
            rng.fill(&mut data[..]);
            bulk = bulk.file(&format!("usr/share/bulk/d{}/f{i}", i % 30), 0o644, &data);
        }
        packages.push(bulk);
        packages.push(DebPackage::new("greeter", "1.0").file(
            "usr/share/greeter/hello",
            0o644,
            b"hello\n",
        ));
        packages.push(
            DebPackage::new("sleeper", "1.0")
                .depends("busybox")
                .file("usr/share/sleeper/readme", 0o644, b"sleeps\n")
                .script(
                    "postinst",
                    &format!("#!/bin/sh\necho {POSTINST_LINE}\nsleep {SLEEP_MARKER}\nexit 0\n"),
                ),
        );
        let fx = DebFixture::new();
        let repo = fx.write_repo("repo", &Repo::new("fixture", packages));
        let bulk_deb = std::fs::read_dir(repo.join("pool/main/b/bulk"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .into_owned();
        Some(Mirror {
            fx,
            repo,
            bulk_deb: format!("/pool/main/b/bulk/{bulk_deb}"),
        })
    });
    if made.is_none() {
        // Every test after the first is skipped for the same reason.
        common::skip::skip("needs root and the host's busybox-static and dpkg");
    }
    made.as_ref()
}

/// One build's directories, all under one temporary directory that nothing
/// else uses (the recipe, cache, work, temp and output directories), and
/// its own server of the mirror, whose faults no other test sees.
pub(crate) struct Scene {
    dir: tempfile::TempDir,
    pub(crate) server: TestServer,
}

impl Scene {
    pub(crate) fn new(m: &Mirror, install: &[&str]) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cache", "work", "tmp", "out"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::copy(m.fx.path("archive.asc"), dir.path().join("archive.asc")).unwrap();
        let server = TestServer::serve(&m.repo);
        let list: Vec<String> = install.iter().map(|p| format!("{p:?}")).collect();
        std::fs::write(
            dir.path().join("recipe.toml"),
            format!(
                "{}mirror = \"{}\"\n\n[packages]\ninstall = [{}]\n\n[image]\nname = \"faults/test:1\"\n",
                fixture::debian_source("amd64"),
                server.base_url(),
                list.join(", ")
            ),
        )
        .unwrap();
        Scene { dir, server }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `rootstrap build` to three image outputs, in its own process group,
    /// with the signals it must die of at their defaults.
    pub(crate) fn start(&self) -> Build {
        let outputs = [
            format!("oci:{}", self.path("out/oci").display()),
            format!("docker-archive:{}", self.path("out/image.tar").display()),
            format!("oci-archive:{}", self.path("out/image-oci.tar").display()),
        ];
        self.start_with(&outputs)
    }

    /// [`Scene::start`] with these `--output`s.
    pub(crate) fn start_with(&self, outputs: &[String]) -> Build {
        let mut cmd = run::rootstrap_isolated();
        cmd.arg("build")
            .arg(self.path("recipe.toml"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .arg("--work-dir")
            .arg(self.path("work"))
            .env("TMPDIR", self.path("tmp"))
            .env("SOURCE_DATE_EPOCH", "1700000000");
        for out in outputs {
            cmd.arg("--output").arg(out);
        }
        Build::spawn(cmd)
    }

    /// `rootstrap build -f` of a Dockerfile that copies `size_mib` MiB of
    /// random bytes (incompressible: the layer is that large) onto an
    /// empty base, with these extra arguments and `--output`s.
    pub(crate) fn start_dockerfile(
        &self,
        size_mib: usize,
        extra: &[&str],
        outputs: &[String],
    ) -> Build {
        let ctx = self.path("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        let mut bytes = vec![0u8; size_mib << 20];
        rand::RngCore::fill_bytes(
            &mut rand::rngs::StdRng::seed_from_u64(size_mib as u64),
            &mut bytes,
        );
        std::fs::write(ctx.join("big"), bytes).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY big /big\n").unwrap();
        let mut cmd = run::rootstrap_isolated();
        cmd.arg("build")
            .arg("-f")
            .arg(ctx.join("Dockerfile"))
            .arg(&ctx)
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .arg("--work-dir")
            .arg(self.path("work"))
            .args(extra)
            .env("TMPDIR", self.path("tmp"))
            .env("SOURCE_DATE_EPOCH", "1700000000");
        for out in outputs {
            cmd.arg("--output").arg(out);
        }
        Build::spawn(cmd)
    }

    /// Everything a killed build must not leave.
    fn assert_left_nothing(&self, build: &Build, what: &str) {
        let out = list(&self.path("out"));
        assert!(out.is_empty(), "{what}: output left behind: {out:?}");
        for sub in ["work", "tmp"] {
            let left = list(&self.path(sub));
            assert!(left.is_empty(), "{what}: left in {sub}/: {left:?}");
        }
        // The cache keeps what it verified; a temporary file there (`.tmp-`)
        // is swept by the next build that takes the cache's lock.
        let debris: Vec<PathBuf> = walk(&self.path("cache"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".rootstrap"))
            })
            .collect();
        assert!(debris.is_empty(), "{what}: left in the cache: {debris:?}");
        let shm: Vec<String> = list(Path::new("/dev/shm"))
            .into_iter()
            .filter(|n| n.contains(&format!("-{}-", build.pid)))
            .collect();
        assert!(shm.is_empty(), "{what}: left in /dev/shm: {shm:?}");
        let mounts = mounts_under(self.dir.path());
        assert!(mounts.is_empty(), "{what}: mounts left: {mounts:#?}");
        let mut left = Vec::new();
        let gone = wait_until(Duration::from_secs(5), || {
            left = processes_of(self.dir.path(), &build.marker);
            left.is_empty()
        });
        assert!(
            gone,
            "{what}: processes left 5 s after the build died: {left:#?}"
        );
    }
}

/// A running build whose stderr and stdout are collected as they come.
pub(crate) struct Build {
    child: Child,
    pid: i32,
    /// In the build's environment, so its helpers are found by it.
    pub(crate) marker: String,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl Build {
    pub(crate) fn spawn(mut cmd: Command) -> Build {
        let marker = format!("ROOTSTRAP_FAULT_TEST={:016x}", rand::random::<u64>());
        let (k, v) = marker.split_once('=').unwrap();
        cmd.env(k, v)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // A background job of a non-interactive shell starts with SIGINT
        // ignored, and a test runner may block signals: the build must
        // start as it would from a terminal.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGPIPE] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start rootstrap build");
        let pid = child.id() as i32;
        let collect = |pipe: Box<dyn std::io::Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = Arc::clone(&text);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut t = sink.lock().unwrap();
                    t.push_str(&line);
                    t.push('\n');
                }
            });
            text
        };
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        Build {
            child,
            pid,
            marker,
            stderr,
            stdout,
        }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits (bounded) until the build's stderr holds `needle`.
    pub(crate) fn wait_for_line(&mut self, needle: &str) {
        let mut exited = None;
        let seen = wait_until(WAIT, || {
            if self.stderr().contains(needle) {
                return true;
            }
            exited = self.child.try_wait().unwrap();
            exited.is_some()
        });
        assert!(
            seen && exited.is_none(),
            "waiting for {needle:?} on the build's stderr: {}:\n{}",
            match exited {
                Some(s) => format!("the build ended first ({s})"),
                None if !seen => format!("not seen in {WAIT:?}"),
                None => String::new(),
            },
            self.stderr()
        );
    }

    /// Waits (bounded) until `condition` holds while the build runs.
    fn wait_for(&mut self, what: &str, mut condition: impl FnMut() -> bool) {
        let mut exited = None;
        let seen = wait_until(WAIT, || {
            if condition() {
                return true;
            }
            exited = self.child.try_wait().unwrap();
            exited.is_some()
        });
        assert!(
            seen && exited.is_none(),
            "waiting for {what}: {}:\n{}",
            match exited {
                Some(s) => format!("the build ended first ({s})"),
                None => format!("not seen in {WAIT:?}"),
            },
            self.stderr()
        );
    }

    pub(crate) fn signal(&self, signal: Signal, to: Target) {
        let pid = rustix::process::Pid::from_raw(self.pid).unwrap();
        let sent = match to {
            Target::Process => rustix::process::kill_process(pid, signal),
            Target::Group => rustix::process::kill_process_group(pid, signal),
        };
        sent.unwrap_or_else(|e| panic!("sending {signal:?} to the build: {e}"));
    }

    /// Waits (bounded: a build that ignores the signal fails the test,
    /// and is then killed) for the build to end; returns its exit status.
    pub(crate) fn wait_end(&mut self, after: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > deadline {
                let pid = rustix::process::Pid::from_raw(self.pid).unwrap();
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
                let _ = self.child.wait();
                panic!(
                    "the build was still running 60 s after {after}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    Process,
    Group,
}

/// The deliveries each phase gets: Ctrl-C in a terminal, and `kill PID`.
pub(crate) const DELIVERIES: [(Signal, Target); 2] = [
    (Signal::INT, Target::Group),
    (Signal::TERM, Target::Process),
];

pub(crate) fn expected_code(signal: Signal) -> i32 {
    128 + signal.as_raw()
}

/// Sends `signal` during `phase`, waits for the end and checks the exit
/// status, what the build said and the directories.
fn interrupt(scene: &Scene, mut build: Build, signal: Signal, to: Target, phase: &str) {
    build.signal(signal, to);
    let what = format!("{signal:?} to the build's {to:?} during {phase}");
    let status = build.wait_end(&what);
    let stderr = build.stderr();
    assert_eq!(
        status.code(),
        Some(expected_code(signal)),
        "{what}: exit status {status} (signal {:?}); stderr:\n{stderr}",
        status.signal()
    );
    assert!(
        stderr.contains("interrupted"),
        "{what}: the build did not say it was interrupted:\n{stderr}"
    );
    let stdout = build.stdout();
    assert!(
        !stdout.contains("sha256:"),
        "{what}: an interrupted build reported an image:\n{stdout}"
    );
    scene.assert_left_nothing(&build, &what);
}

pub(crate) fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Lines of this process's mountinfo that name a path under `dir`.
pub(crate) fn mounts_under(dir: &Path) -> Vec<String> {
    let root = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(str::to_owned)
        .collect()
}

/// Every path under `dir`, directories included.
pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// Processes (other than this test binary) whose working directory or root
/// is under `dir`, whose environment carries `marker`, or whose command
/// line is the sleeper's: what a build that died would have left running.
pub(crate) fn processes_of(dir: &Path, marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let proc_dir = entry.path();
        let under =
            |link: &str| std::fs::read_link(proc_dir.join(link)).is_ok_and(|t| t.starts_with(dir));
        let cmdline = std::fs::read(proc_dir.join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let environ = std::fs::read(proc_dir.join("environ")).unwrap_or_default();
        let has_marker = environ
            .split(|&b| b == 0)
            .any(|var| var == marker.as_bytes());
        if under("cwd") || under("root") || has_marker || cmdline.contains(SLEEP_MARKER) {
            // A zombie already reaped by the time we look is no process.
            let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
            if !state.is_empty() {
                found.push(format!("{name}: {cmdline}"));
            }
        }
    }
    found
}

/// The tree the build is making in `work/`, once it exists.
fn tree_in(work: &Path) -> Option<PathBuf> {
    list(work)
        .into_iter()
        .find(|n| n.starts_with(".rootstrap-rootfs-") && !n.ends_with("-staging"))
        .map(|n| work.join(n))
}

#[test]
fn signal_while_the_index_is_fetched() {
    let Some(m) = mirror() else { return };
    let inrelease = "/dists/fixture/InRelease";
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &["bulk"]);
        scene.server.delay(inrelease, Duration::from_secs(30));
        let mut build = scene.start();
        build.wait_for("the InRelease request", || {
            scene.server.requests(inrelease) > 0
        });
        interrupt(&scene, build, signal, to, "the index fetch");
    }
}

#[test]
fn signal_while_packages_are_fetched() {
    let Some(m) = mirror() else { return };
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &["bulk"]);
        scene.server.delay(&m.bulk_deb, Duration::from_secs(30));
        let mut build = scene.start();
        // Packages are fetched while the first ones unpack ("install").
        build.wait_for("the bulk package's request", || {
            scene.server.requests(&m.bulk_deb) > 0
        });
        interrupt(&scene, build, signal, to, "the package fetch");
    }
}

#[test]
fn signal_while_packages_are_unpacked() {
    let Some(m) = mirror() else { return };
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &["bulk"]);
        let mut build = scene.start();
        build.wait_for_line("==> install");
        let work = scene.path("work");
        // Some of bulk's files are out, not all (they are written in order).
        let last = BULK_FILES - 1;
        let (first, last) = (
            "usr/share/bulk/d0/f0".to_owned(),
            format!("usr/share/bulk/d{}/f{last}", last % 30),
        );
        build.wait_for("bulk's first file in the tree", || {
            tree_in(&work).is_some_and(|t| t.join(&first).exists())
        });
        let unpacked_all = tree_in(&work).is_some_and(|t| t.join(&last).exists());
        assert!(
            !unpacked_all && !build.stderr().contains("==> configure"),
            "unpacking was over before the signal:\n{}",
            build.stderr()
        );
        interrupt(&scene, build, signal, to, "unpacking");
    }
}

#[test]
fn signal_while_package_scripts_run() {
    let Some(m) = mirror() else { return };
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &["sleeper"]);
        let mut build = scene.start();
        build.wait_for_line(POSTINST_LINE);
        interrupt(&scene, build, signal, to, "a postinst");
    }
}

/// A RUN step of the recipe's `[build] dockerfile`, sleeping.
#[test]
fn signal_while_a_run_step_runs() {
    let Some(m) = mirror() else { return };
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &["busybox"]);
        let recipe = scene.path("recipe.toml");
        let mut text = std::fs::read_to_string(&recipe).unwrap();
        text.push_str("\n[build]\ndockerfile = \"Dockerfile\"\n");
        std::fs::write(&recipe, text).unwrap();
        // The line the step prints is not the instruction's own text.
        std::fs::write(
            scene.path("Dockerfile"),
            format!("RUN echo run-step-$((40+7)) && sleep {SLEEP_MARKER}\n"),
        )
        .unwrap();
        let mut build = scene.start();
        build.wait_for_line("run-step-47");
        interrupt(&scene, build, signal, to, "a RUN step");
    }
}

#[test]
fn signal_while_the_layer_is_packed() {
    let Some(m) = mirror() else { return };
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &["bulk"]);
        let mut build = scene.start();
        build.wait_for_line("==> pack the layer");
        let phase_over = build.stderr().contains("==> write outputs");
        assert!(!phase_over, "packing was over before the signal");
        interrupt(&scene, build, signal, to, "packing");
    }
}

#[test]
fn signal_while_the_outputs_are_written() {
    let Some(m) = mirror() else { return };
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &["bulk"]);
        let mut build = scene.start();
        build.wait_for_line("==> write outputs");
        let out = scene.path("out");
        // An output being written beside its path.
        build.wait_for("an output being written", || {
            list(&out).iter().any(|n| n.starts_with(".rootstrap-"))
        });
        let written = build.stderr();
        assert!(
            !written.contains("image-oci.tar"),
            "the last output was written before the signal:\n{written}"
        );
        interrupt(&scene, build, signal, to, "writing the outputs");
    }
}

/// `build -f`: the outputs it finished go with the interrupt too.
#[test]
fn signal_while_a_dockerfile_builds_outputs_are_written() {
    let Some(m) = mirror() else { return };
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &[]);
        let outputs = [
            format!("oci:{}", scene.path("out/oci").display()),
            format!("docker-archive:{}", scene.path("out/image.tar").display()),
            format!("oci-archive:{}", scene.path("out/image-oci.tar").display()),
        ];
        let mut build = scene.start_dockerfile(64, &[], &outputs);
        let out = scene.path("out");
        // The first output finished, a later one being written.
        build.wait_for("a finished output and one being written", || {
            let names = list(&out);
            names.iter().any(|n| n == "oci") && names.iter().any(|n| n.starts_with(".rootstrap-"))
        });
        assert!(
            !out.join("image-oci.tar").exists(),
            "the last output was written before the signal"
        );
        interrupt(
            &scene,
            build,
            signal,
            to,
            "writing a Dockerfile build's outputs",
        );
    }
}

/// A `rootfs:` output is a `cp -a` of the tree: the copy must not outlive
/// an interrupt sent to the build alone.
#[test]
fn signal_while_the_tree_is_copied_out() {
    let Some(m) = mirror() else { return };
    for (signal, to) in [
        (Signal::TERM, Target::Process),
        (Signal::INT, Target::Group),
    ] {
        let scene = Scene::new(m, &["bulk"]);
        let mut build =
            scene.start_with(&[format!("rootfs:{}", scene.path("out/rootfs").display())]);
        build.wait_for_line("==> write outputs");
        let out = scene.path("out");
        build.wait_for("the copy of the tree", || {
            list(&out).iter().any(|n| n.starts_with(".rootstrap-out-"))
        });
        interrupt(&scene, build, signal, to, "copying the tree out");
    }
}

#[test]
fn signal_while_the_image_is_pushed() {
    let Some(m) = mirror() else { return };
    // Every upload stalls: the push is held until the signal.
    let registry = PushRegistry::start("127.0.0.1", |r| match r.method.as_str() {
        "POST" => Action::Stall(Duration::from_secs(60)),
        _ => Action::Normal,
    });
    for (signal, to) in DELIVERIES {
        let scene = Scene::new(m, &["bulk"]);
        let before = registry.requests().len();
        // The push alone: local outputs written before it are complete.
        let mut build =
            scene.start_with(&[format!("registry:{}/faults/pushed:1", registry.host())]);
        build.wait_for("the upload request", || {
            registry.requests()[before..]
                .iter()
                .any(|r| r.method == "POST")
        });
        interrupt(&scene, build, signal, to, "the push");
        assert!(
            registry.manifest("1").is_none(),
            "a manifest was pushed by an interrupted build"
        );
    }
}

/// Signals at random instants of whole builds (with package scripts), then
/// one build on the same cache that must succeed.
#[test]
fn signals_at_random_instants() {
    let Some(m) = mirror() else { return };
    let seed = std::env::var("ROOTSTRAP_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("signals_at_random_instants: ROOTSTRAP_FAULT_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // How long an uninterrupted build takes, from a cold cache.
    let timing = Scene::new(m, &["bulk", "busybox"]);
    let started = Instant::now();
    let mut build = timing.start();
    let status = build.wait_end("starting the timing build");
    assert!(status.success(), "the build failed:\n{}", build.stderr());
    let mut full = started.elapsed();

    let deliveries = [
        (Signal::INT, Target::Group),
        (Signal::TERM, Target::Process),
        (Signal::INT, Target::Process),
        (Signal::TERM, Target::Group),
    ];
    // Eight interrupted builds, in at most sixteen: a build that finishes
    // before its instant (the machine got less busy) shortens the range.
    let (mut interrupted, mut rounds) = (0, 0);
    let mut last = None;
    while interrupted < 8 && rounds < 16 {
        rounds += 1;
        let scene = Scene::new(m, &["bulk", "busybox"]);
        let (signal, to) = deliveries[interrupted % deliveries.len()];
        let delay = full.mul_f64(rng.gen_range(0.02..0.95));
        let started = Instant::now();
        let mut build = scene.start();
        std::thread::sleep(delay);
        let what = format!("round {rounds}: {signal:?} to the {to:?} after {delay:?}");
        if build.child.try_wait().unwrap().is_some() {
            // Finished first: a whole build, which is fine.
            full = full.min(started.elapsed());
            continue;
        }
        build.signal(signal, to);
        let status = build.wait_end(&what);
        if status.success() {
            // The signal came as it exited.
            full = full.min(started.elapsed());
            continue;
        }
        assert_eq!(
            status.code(),
            Some(expected_code(signal)),
            "{what}: exit status {status}:\n{}",
            build.stderr()
        );
        scene.assert_left_nothing(&build, &what);
        interrupted += 1;
        last = Some(scene);
    }
    assert!(
        interrupted >= 6,
        "only {interrupted} of {rounds} builds were interrupted (a build takes {full:?})"
    );
    // The cache an interrupted build leaves serves the next one.
    let scene = last.unwrap();
    let mut build = scene.start();
    let status = build.wait_end("a build after the interrupted ones");
    assert!(
        status.success(),
        "a build on the cache of an interrupted one failed:\n{}",
        build.stderr()
    );
}
