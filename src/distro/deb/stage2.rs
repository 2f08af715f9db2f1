//! Stage 2 of a Debian bootstrap: the packages are already unpacked (by us,
//! in parallel) and recorded as `install ok unpacked`; what is left is what
//! only the target's own tools may do — run each `preinst install`, then let
//! the target's dpkg configure everything (`postinst configure`, in its own
//! dependency order) inside the sandbox.
//!
//! dpkg is called by its full path: a busybox `sh` built with
//! "prefer applets" would otherwise run its own `dpkg` applet.
//!
//! One sandbox run does it all, driven by a shell script generated here, so
//! the sandbox start-up cost is paid once. The script marks each step on
//! stdout so a failure can be attributed to the package and script at fault.

/// Marker prefix written before each step; parsed back by [`failed_step`].
pub const STEP_MARKER: &str = "rootstrap-step:";

/// Where each package's control members wait for its preinst, one
/// directory per package numbered by its place in the stage-2 order. Each
/// moves to `var/lib/dpkg/tmp.ci` while its preinst runs, as under dpkg:
/// debconf takes the package's name from `tmp.ci/control` there, and
/// records it as the owner of the questions the preinst registers.
pub const PREINST_STAGING: &str = "var/lib/dpkg/rootstrap-ci";

/// The package whose preinst creates /etc/passwd and /etc/group.
const PASSWD_PACKAGE: &str = "base-passwd";

/// One package as stage 2 needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage2Package {
    pub name: String,
    /// `pkg` or `pkg:arch` (Multi-Arch: same), the name dpkg's info files use.
    pub info_name: String,
    pub arch: String,
    pub has_preinst: bool,
}

/// The environment dpkg gives maintainer scripts, plus what keeps them
/// non-interactive.
pub fn script_env() -> Vec<(String, String)> {
    [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
        ("LC_ALL", "C"),
        ("LANGUAGE", "C"),
        ("LANG", "C"),
        ("HOME", "/root"),
        ("TERM", "dumb"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Builds the stage-2 script: preinsts in `order`, then the file triggers
/// in `activate` (see [`super::dpkgdb::file_triggers_activated`]), then
/// `dpkg --configure -a`, then pending triggers.
pub fn script(order: &[Stage2Package], activate: &[String], native_arch: &str) -> String {
    let mut s = String::from(
        "set -e\n\
         DPKG_RUNNING_VERSION=$(/usr/bin/dpkg-query --showformat='${Version}' --show dpkg)\n\
         export DPKG_RUNNING_VERSION DPKG_ADMINDIR=/var/lib/dpkg DPKG_ROOT=\n",
    );
    // base-passwd's preinst writes /etc/passwd and /etc/group. It runs
    // first, as debootstrap installs base-passwd before anything else:
    // other preinsts need root's entry (libc6's loads debconf, which looks
    // up root's home with getpwuid).
    let (passwd_first, others): (Vec<_>, Vec<_>) = order
        .iter()
        .enumerate()
        .filter(|(_, p)| p.has_preinst)
        .partition(|(_, p)| p.name == PASSWD_PACKAGE);
    // Each process spawned here is emulated on a foreign platform (a few
    // tenths of a second each under qemu-user), so each preinst costs two
    // `mv`s (its members in, then back out of the way), and one `rm` clears
    // tmp.ci before and the staging area after all of them.
    let with_preinst: Vec<_> = passwd_first.into_iter().chain(others).collect();
    if !with_preinst.is_empty() {
        s.push_str("rm -rf /var/lib/dpkg/tmp.ci\n");
    }
    for (n, p) in &with_preinst {
        let (name, arch) = (quote(&p.name), quote(&p.arch));
        s.push_str(&format!(
            "echo '{STEP_MARKER} preinst {}'\n\
             mv /{PREINST_STAGING}/{n} /var/lib/dpkg/tmp.ci\n\
             DPKG_MAINTSCRIPT_PACKAGE={name} DPKG_MAINTSCRIPT_ARCH={arch} DPKG_MAINTSCRIPT_NAME=preinst \
             /var/lib/dpkg/tmp.ci/preinst install\n\
             mv /var/lib/dpkg/tmp.ci /{PREINST_STAGING}/{n}.done\n",
            p.info_name
        ));
    }
    if !with_preinst.is_empty() {
        s.push_str(&format!("rm -rf /{PREINST_STAGING}\n"));
    }
    for path in activate {
        s.push_str(&format!(
            "echo {}\n/usr/bin/dpkg-trigger --no-await {}\n",
            quote(&format!("{STEP_MARKER} dpkg-trigger {path}")),
            quote(path)
        ));
    }
    s.push_str(&format!("echo '{STEP_MARKER} dpkg --configure'\n"));
    s.push_str("/usr/bin/dpkg --force-confdef --force-confold --configure -a\n");
    s.push_str(&format!("echo '{STEP_MARKER} triggers'\n"));
    s.push_str("/usr/bin/dpkg --triggers-only -a\n");
    s.push_str(&format!(
        "echo '{STEP_MARKER} done'\n\
         # the native architecture dpkg recorded must be the one we asked for\n\
         test \"$(/usr/bin/dpkg --print-architecture)\" = {}\n",
        quote(native_arch)
    ));
    s
}

/// The step that was running when the script stopped, from its output.
pub fn failed_step(output: &[String]) -> Option<String> {
    output
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix(STEP_MARKER))
        .map(|s| s.trim().to_owned())
}

/// Single-quotes a word for /bin/sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, preinst: bool) -> Stage2Package {
        Stage2Package {
            name: name.into(),
            info_name: name.into(),
            arch: "amd64".into(),
            has_preinst: preinst,
        }
    }

    #[test]
    fn preinsts_run_in_order_before_configure() {
        let s = script(
            &[
                pkg("base-passwd", true),
                pkg("no-scripts", false),
                pkg("dash", true),
            ],
            &[],
            "amd64",
        );
        let bp = s
            .find("mv /var/lib/dpkg/rootstrap-ci/0 /var/lib/dpkg/tmp.ci")
            .unwrap();
        let dash = s
            .find("mv /var/lib/dpkg/rootstrap-ci/2 /var/lib/dpkg/tmp.ci")
            .unwrap();
        let run = s.rfind("/var/lib/dpkg/tmp.ci/preinst install").unwrap();
        let conf = s.find("--configure -a").unwrap();
        assert!(bp < dash && dash < run && run < conf);
        assert!(s.contains("DPKG_MAINTSCRIPT_PACKAGE='dash'"));
        assert!(!s.contains("rootstrap-ci/1 "));
        // Emulated spawns: two mv per preinst, one rm before and one after.
        assert_eq!(s.matches("\nmv ").count(), 4, "{s}");
        assert_eq!(s.matches("rm -rf ").count(), 2, "{s}");
        assert!(s.find("rm -rf /var/lib/dpkg/rootstrap-ci").unwrap() < conf);
    }

    #[test]
    fn base_passwds_preinst_runs_before_every_other() {
        let s = script(
            &[
                pkg("libc6", true),
                pkg("base-files", false),
                pkg("base-passwd", true),
                pkg("dash", true),
            ],
            &[],
            "amd64",
        );
        let at = |what: &str| s.find(what).unwrap_or_else(|| panic!("{what} in\n{s}"));
        let passwd = at("DPKG_MAINTSCRIPT_PACKAGE='base-passwd'");
        let libc = at("DPKG_MAINTSCRIPT_PACKAGE='libc6'");
        let dash = at("DPKG_MAINTSCRIPT_PACKAGE='dash'");
        assert!(passwd < libc && libc < dash);
        // Each still takes its own control members.
        assert!(at("mv /var/lib/dpkg/rootstrap-ci/2 ") < passwd);
        assert!(passwd < at("mv /var/lib/dpkg/rootstrap-ci/0 "));
    }

    #[test]
    fn file_triggers_are_activated_before_configure() {
        let s = script(
            &[pkg("zsh", true)],
            &["/usr/share/debianutils/shells.d".into()],
            "amd64",
        );
        let pre = s.find("DPKG_MAINTSCRIPT_PACKAGE='zsh'").unwrap();
        let trig = s
            .find("/usr/bin/dpkg-trigger --no-await '/usr/share/debianutils/shells.d'")
            .unwrap();
        let conf = s.find("--configure -a").unwrap();
        assert!(pre < trig && trig < conf);
    }

    #[test]
    fn names_are_quoted() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        let s = script(&[pkg("x';rm -rf /;'", true)], &[], "amd64");
        assert!(s.contains(r"DPKG_MAINTSCRIPT_PACKAGE='x'\'';rm -rf /;'\'''"));
    }

    #[test]
    fn failed_step_is_the_last_marker() {
        let out: Vec<String> = [
            "noise",
            "rootstrap-step: preinst a",
            "x",
            "rootstrap-step: preinst b",
            "error",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(failed_step(&out).as_deref(), Some("preinst b"));
        assert_eq!(failed_step(&[]), None);
    }
}
