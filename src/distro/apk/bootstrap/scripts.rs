//! Package scripts and triggers, batched into sandbox runs in apk's order.

use super::*;

/// Single-quotes a word for /bin/sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Does an apk trigger glob (`*` and `?` wildcards) match a directory?
fn glob_matches(glob: &[u8], path: &[u8]) -> bool {
    match (glob.first(), path.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_matches(&glob[1..], path) || (!path.is_empty() && glob_matches(glob, &path[1..]))
        }
        (Some(b'?'), Some(_)) => glob_matches(&glob[1..], &path[1..]),
        (Some(g), Some(p)) if g == p => glob_matches(&glob[1..], &path[1..]),
        _ => false,
    }
}

/// One script run: staged file name, argument list, label for messages.
struct Step {
    file: String,
    args: Vec<String>,
    label: String,
    content: Vec<u8>,
}

impl Step {
    /// The program its `#!` line names; /bin/sh without one.
    fn interpreter(&self) -> String {
        self.content
            .strip_prefix(b"#!")
            .and_then(|rest| rest.split(|&b| b == b'\n').next())
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .and_then(|line| line.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "/bin/sh".to_owned())
    }
}

/// The shell script that runs every step in order, marking each on stdout.
fn script_for(steps: &[Step]) -> String {
    let mut s = String::from("set -e\ncd /\n");
    for st in steps {
        s.push_str(&format!(
            "echo {}\n",
            quote(&format!("{STEP_MARKER} {}", st.label))
        ));
        s.push_str(&quote(&format!("/{EXEC_DIR}/{}", st.file)));
        for a in &st.args {
            s.push(' ');
            s.push_str(&quote(a));
        }
        s.push('\n');
    }
    s.push_str(&format!("echo '{STEP_MARKER} done'\n"));
    s
}

/// Runs package scripts in apk's order while packages are installed:
/// `before_files` (`.pre-install`) and `after_files` (`.post-install`) per
/// package, `.trigger`s at the end. Scripts that run between the same two
/// extractions (one package's `.post-install`, the next one's
/// `.pre-install`) share one sandbox start.
///
/// A script whose interpreter (`#!` line, and the `/bin/sh` that runs the
/// batch) is not in the rootfs yet cannot run; apk tries it anyway, fails,
/// marks the package `f:s` (broken script) and goes on. We do the same
/// without the failed exec: warn, mark `f:s`, go on, so `apk fix` in the
/// image runs it later. With real Alpine this does not happen, since every
/// package with a script depends on /bin/sh.
pub(super) struct ScriptRunner<'a> {
    pub(super) root: &'a Root,
    pub(super) root_dir: &'a Path,
    pub(super) sandbox: &'a Sandbox,
    pub(super) reporter: &'a dyn Reporter,
    pub(super) enabled: bool,
    /// Steps to run at the next flush, with the plan index of their package.
    pending: Vec<(usize, Step)>,
    /// One shell in the sandbox, started at the first batch that has one
    /// (see `run_steps`), runs every later batch: one sandbox start instead
    /// of one per batch.
    shell: ShellState,
    /// Plan indexes of packages whose scripts did not run.
    pub(super) broken: BTreeSet<usize>,
    pub(super) report: InstallReport,
}

impl<'a> ScriptRunner<'a> {
    pub(super) fn new(
        root: &'a Root,
        root_dir: &'a Path,
        sandbox: &'a Sandbox,
        reporter: &'a dyn Reporter,
        enabled: bool,
    ) -> Self {
        ScriptRunner {
            root,
            root_dir,
            sandbox,
            reporter,
            enabled,
            pending: Vec::new(),
            shell: ShellState::NotStarted,
            broken: BTreeSet::new(),
            report: InstallReport {
                scripts_skipped: !enabled,
                ..InstallReport::default()
            },
        }
    }

    fn step(pkg: &ApkPackage, script: &str, content: &[u8], args: Vec<String>) -> Step {
        Step {
            file: format!("{}-{}{}", pkg.name, pkg.version, script),
            args,
            label: format!("{} {script}", pkg.id()),
            content: content.to_vec(),
        }
    }

    fn not_run(&mut self, i: usize, pkg: &ApkPackage) {
        if self.broken.insert(i) {
            self.report.scripts_not_run.push(pkg.id());
        }
    }

    /// `.pre-install` runs before any file of the package is in place.
    pub(super) fn before_files(
        &mut self,
        i: usize,
        pkg: &ApkPackage,
        apk: &VerifiedApk,
    ) -> Result<(), ApkBootstrapError> {
        let has_scripts = [".pre-install", ".post-install"]
            .iter()
            .any(|s| apk.scripts.contains_key(*s));
        if !self.enabled {
            if has_scripts {
                self.not_run(i, pkg);
            }
            return Ok(());
        }
        if let Some(content) = apk.scripts.get(".pre-install") {
            let step = Self::step(pkg, ".pre-install", content, vec![pkg.version.clone()]);
            self.pending.push((i, step));
        }
        // The previous package's .post-install and this .pre-install both
        // belong between the two packages' files: one sandbox start.
        self.flush()
    }

    pub(super) fn after_files(&mut self, i: usize, pkg: &ApkPackage, apk: &VerifiedApk) {
        if !self.enabled {
            return;
        }
        if let Some(content) = apk.scripts.get(".post-install") {
            let step = Self::step(pkg, ".post-install", content, vec![pkg.version.clone()]);
            self.pending.push((i, step));
        }
    }

    /// Each `.trigger` whose globs match a directory the transaction
    /// touched, with those directories as arguments.
    pub(super) fn queue_triggers(
        &mut self,
        plan: &[&ApkPackage],
        apks: &[&VerifiedApk],
        records: &[InstalledPackage],
    ) {
        if !self.enabled {
            return;
        }
        let touched: BTreeSet<String> = records
            .iter()
            .flat_map(|r| r.dirs.iter().map(|d| format!("/{}", d.path)))
            .collect();
        for (i, (pkg, apk)) in plan.iter().zip(apks).enumerate() {
            let Some(content) = apk.scripts.get(".trigger") else {
                continue;
            };
            let globs = trigger_globs(apk);
            let matched: Vec<String> = touched
                .iter()
                .filter(|d| {
                    globs
                        .iter()
                        .any(|g| glob_matches(g.as_bytes(), d.as_bytes()))
                })
                .cloned()
                .collect();
            if !matched.is_empty() {
                self.pending
                    .push((i, Self::step(pkg, ".trigger", content, matched)));
            }
        }
    }

    /// The interpreter a script needs (its `#!` line; /bin/sh without one)
    /// that the rootfs does not have yet.
    fn missing_interpreter(&self, step: &Step) -> Result<Option<String>, ApkBootstrapError> {
        let interp = step.interpreter();
        Ok((!self.has_file(&interp)?).then_some(interp))
    }

    /// Runs the pending steps (one sandbox start when /bin/sh exists).
    pub(super) fn flush(&mut self) -> Result<(), ApkBootstrapError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut steps = Vec::new();
        for (i, step) in pending {
            if let Some(missing) = self.missing_interpreter(&step)? {
                self.reporter.warn(&format!(
                    "{}: not run, {missing} is not installed yet; the package is marked \
                     as having a broken script (f:s), as apk does, so `apk fix` runs it",
                    step.label
                ));
                let id = step.label.split(' ').next().unwrap_or_default().to_owned();
                if self.broken.insert(i) {
                    self.report.scripts_not_run.push(id);
                }
                continue;
            }
            if step.file.ends_with(".trigger") {
                self.report.triggers_run += 1;
            } else {
                self.report.scripts_run += 1;
            }
            steps.push(step);
        }
        if steps.is_empty() {
            return Ok(());
        }
        let exec = rel(EXEC_DIR)?;
        self.root.mkdir_all(&exec, 0o755)?;
        for st in &steps {
            self.root
                .write_file(&exec.join(st.file.as_bytes())?, &st.content, 0o755)?;
        }
        let result = self.run_steps(&steps);
        // apk leaves lib/apk/exec in place, empty.
        for st in &steps {
            self.root.remove_all(&exec.join(st.file.as_bytes())?)?;
        }
        result
    }

    /// With a /bin/sh in the rootfs, a shell runs the steps (the session's
    /// shell, when the sandbox can keep one open); before it exists, each
    /// script is executed directly, as apk execs it, except that when every
    /// one of them is a `#!/bin/busybox sh` script (busybox's own
    /// `.post-install`, which runs before busybox-binsh has installed
    /// /bin/sh), `/bin/busybox sh` can start the session and exec them.
    fn run_steps(&mut self, steps: &[Step]) -> Result<(), ApkBootstrapError> {
        let has_sh = self.has_file("/bin/sh")?;
        let shell: Option<&[&str]> = if has_sh {
            Some(&["/bin/sh"])
        } else if self.has_file(BUSYBOX)? && steps.iter().all(|st| st.interpreter() == BUSYBOX) {
            Some(&[BUSYBOX, "sh"])
        } else {
            None
        };
        if let Some(argv) = shell {
            let reporter = self.reporter;
            if let Some(session) = self.shell(argv)? {
                return run_in_shell(session, steps, reporter);
            }
        }
        if has_sh {
            let argv = vec!["/bin/sh".into(), "-c".into(), script_for(steps)];
            return run_in_sandbox(self.root_dir, argv, None, self.sandbox, self.reporter);
        }
        for st in steps {
            let mut argv = vec![format!("/{EXEC_DIR}/{}", st.file)];
            argv.extend(st.args.iter().cloned());
            run_in_sandbox(
                self.root_dir,
                argv,
                Some(&st.label),
                self.sandbox,
                self.reporter,
            )?;
        }
        Ok(())
    }

    /// The session's shell, started with `argv` on first use; None where
    /// the sandbox cannot keep one open.
    fn shell(&mut self, argv: &[&str]) -> Result<Option<&mut Session>, ApkBootstrapError> {
        if matches!(self.shell, ShellState::NotStarted) {
            let argv = argv.iter().map(|a| a.to_string()).collect();
            let spec = script_spec(self.root_dir, argv);
            self.shell = match self.sandbox.session(&spec)? {
                Some(session) => ShellState::Open(Box::new(session)),
                None => ShellState::Unavailable,
            };
        }
        Ok(match &mut self.shell {
            ShellState::Open(session) => Some(session),
            _ => None,
        })
    }

    /// Ends the session's shell, once every script has run; any error it
    /// reports now fails the install.
    pub(super) fn close(&mut self) -> Result<(), ApkBootstrapError> {
        let ShellState::Open(session) = std::mem::replace(&mut self.shell, ShellState::Unavailable)
        else {
            return Ok(());
        };
        let reporter = self.reporter;
        let mut lines = Vec::new();
        let status = session.finish(&mut |line| {
            reporter.command_output(&line.text);
            lines.push(line.text);
        })?;
        if !status.success() {
            let step = Some("the scripts' shell, at its end");
            return Err(scripts_failed(step, status.to_string(), &lines));
        }
        Ok(())
    }

    /// Does `path` resolve, inside the rootfs, to a regular file?
    fn has_file(&self, path: &str) -> Result<bool, ApkBootstrapError> {
        Ok(match RelPath::from_container_path(path.as_bytes()) {
            Ok(p) => self
                .root
                .stat(&p)?
                .is_some_and(|m| m.kind == FileKind::File),
            Err(_) => false,
        })
    }
}

enum ShellState {
    NotStarted,
    Open(Box<Session>),
    /// The sandbox cannot keep a shell open here (or it was closed): each
    /// batch gets its own sandbox run.
    Unavailable,
}

/// busybox, whose `sh` applet runs the scripts before /bin/sh exists.
const BUSYBOX: &str = "/bin/busybox";

/// Prefix of the line the session's shell prints after each batch, with
/// the batch's exit status.
const BATCH_END: &str = "rootstrap-batch-end:";

/// Runs one batch of steps in the session's shell: in a subshell, with
/// `set -e` as a batch run alone has, stdin from /dev/null (the shell's own
/// is the session's input) and stderr into stdout, so the batch's output
/// all comes before the end marker that follows it. The marker carries a
/// per-batch token a script cannot guess.
fn run_in_shell(
    shell: &mut Session,
    steps: &[Step],
    reporter: &dyn Reporter,
) -> Result<(), ApkBootstrapError> {
    let token = hex::encode(rand::random::<[u8; 16]>());
    let end = format!("{BATCH_END} {token} ");
    let input = format!(
        "(\n{}) </dev/null 2>&1\necho \"{end}$?\"\n",
        script_for(steps)
    );
    let mut lines: Vec<String> = Vec::new();
    let sent = shell.send(input.as_bytes());
    loop {
        let Some(line) = shell.next_line() else {
            // The shell is gone: whatever it said is the error.
            sent?;
            return Err(scripts_failed(
                None,
                "the scripts' shell ended".into(),
                &lines,
            ));
        };
        if let Some(code) = line.text.strip_prefix(&end) {
            let code: i32 = code.trim().parse().unwrap_or(-1);
            if code != 0 {
                let status = sandbox::ExitStatus::Exited(code);
                return Err(scripts_failed(None, status.to_string(), &lines));
            }
            return Ok(());
        }
        if !line.text.starts_with(STEP_MARKER) {
            reporter.command_output(&line.text);
        }
        lines.push(line.text);
    }
}

/// The sandbox run of package scripts: apk's environment, no network, the
/// chroot view, syncs skipped.
fn script_spec(root_dir: &Path, argv: Vec<String>) -> RunSpec {
    let mut spec = RunSpec::new(root_dir, argv);
    spec.suppress_sync = true;
    spec.env = vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOME".into(), "/root".into()),
        ("LANG".into(), "C".into()),
    ];
    spec.network = Network::NoneIfIsolated;
    spec.chroot_view = true;
    spec
}

/// Runs `argv` in the rootfs; a failure names `step` (or, for a batch
/// script, the last step marker it printed).
fn run_in_sandbox(
    root_dir: &Path,
    argv: Vec<String>,
    step: Option<&str>,
    sandbox: &Sandbox,
    reporter: &dyn Reporter,
) -> Result<(), ApkBootstrapError> {
    let spec = script_spec(root_dir, argv);
    let mut lines = Vec::new();
    let status = sandbox.run(&spec, &mut |line| {
        if !line.text.starts_with(STEP_MARKER) {
            reporter.command_output(&line.text);
        }
        lines.push(line.text);
    })?;
    if !status.success() {
        return Err(scripts_failed(step, status.to_string(), &lines));
    }
    Ok(())
}

/// A failed script run: `step` names it, or else the last step marker in
/// its output does; the error keeps the output's last 30 lines.
fn scripts_failed(step: Option<&str>, status: String, lines: &[String]) -> ApkBootstrapError {
    let step = step.map(str::to_owned).unwrap_or_else(|| {
        lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(STEP_MARKER))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "start-up".into())
    });
    ApkBootstrapError::Scripts {
        step,
        status,
        tail: lines[lines.len().saturating_sub(30)..].join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_fnmatch() {
        assert!(glob_matches(b"/bin", b"/bin"));
        assert!(!glob_matches(b"/bin", b"/sbin"));
        assert!(glob_matches(
            b"/usr/share/fonts/*",
            b"/usr/share/fonts/misc"
        ));
        assert!(!glob_matches(b"/usr/share/fonts/*", b"/usr/share"));
        assert!(glob_matches(b"/lib/modules/?", b"/lib/modules/6"));
    }

    #[test]
    fn script_quotes_and_orders_steps() {
        let steps = vec![
            Step {
                file: "a-1.pre-install".into(),
                args: vec!["1".into()],
                label: "a-1 .pre-install".into(),
                content: Vec::new(),
            },
            Step {
                file: "b-2.trigger".into(),
                args: vec!["/bin".into(), "/x y".into()],
                label: "b-2 .trigger".into(),
                content: Vec::new(),
            },
        ];
        let s = script_for(&steps);
        let a = s.find("'/lib/apk/exec/a-1.pre-install' '1'").unwrap();
        let b = s.find("'/lib/apk/exec/b-2.trigger' '/bin' '/x y'").unwrap();
        assert!(a < b);
        assert!(s.starts_with("set -e\n"));
    }
}
