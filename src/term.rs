//! The command line's [`Reporter`]: progress bars on a terminal, plain
//! timestamped lines otherwise (CI logs, pipes).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rootstrap::report::Reporter;

use crate::cli::ProgressMode;

pub struct TermReporter {
    start: Instant,
    quiet: bool,
    bars: Option<Bars>,
    plain_downloads: Mutex<PlainDownloads>,
    next_id: AtomicU64,
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    active: Mutex<HashMap<u64, (u64, Option<u64>)>>,
}

#[derive(Default)]
struct PlainDownloads {
    count: u64,
    bytes: u64,
}

impl TermReporter {
    pub fn new(mode: ProgressMode, quiet: bool) -> TermReporter {
        let tty = std::io::stderr().is_terminal();
        let bars = match mode {
            ProgressMode::Bars => true,
            ProgressMode::Plain => false,
            ProgressMode::Auto => tty,
        } && !quiet;
        TermReporter {
            start: Instant::now(),
            quiet,
            bars: bars.then(|| {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                let total = multi.add(ProgressBar::new(0));
                total.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>10} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("static template"),
                );
                total.set_prefix("download");
                Bars {
                    multi,
                    total,
                    active: Mutex::new(HashMap::new()),
                }
            }),
            plain_downloads: Mutex::new(PlainDownloads::default()),
            next_id: AtomicU64::new(1),
        }
    }

    fn line(&self, text: &str) {
        let stamp = format!("[{:>6.1}s]", self.start.elapsed().as_secs_f64());
        match &self.bars {
            // Routed through the bars so they don't tear.
            Some(b) => b.multi.suspend(|| eprintln!("{stamp} {text}")),
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{stamp} {text}");
            }
        }
    }

    /// Clears the bars and prints the download summary of plain mode.
    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            b.total.finish_and_clear();
        }
        self.flush_plain_downloads();
    }

    fn flush_plain_downloads(&self) {
        let mut d = self.plain_downloads.lock().expect("poisoned");
        if d.count > 0 && !self.quiet {
            let (count, bytes) = (d.count, d.bytes);
            *d = PlainDownloads::default();
            drop(d);
            self.line(&format!(
                "  downloaded {count} files, {:.1} MB",
                bytes as f64 / 1e6
            ));
        }
    }
}

impl Reporter for TermReporter {
    fn stage(&self, name: &str) {
        self.flush_plain_downloads();
        if !self.quiet {
            self.line(&format!("==> {name}"));
        }
    }

    fn info(&self, msg: &str) {
        if !self.quiet {
            self.line(msg);
        }
    }

    fn warn(&self, msg: &str) {
        self.line(&format!("warning: {msg}"));
    }

    fn download_start(&self, _name: &str, total: Option<u64>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.bars {
            if let Some(t) = total {
                b.total.inc_length(t);
            }
            b.active.lock().expect("poisoned").insert(id, (0, total));
        }
        id
    }

    fn download_progress(&self, id: u64, bytes: u64) {
        if let Some(b) = &self.bars {
            b.total.inc(bytes);
            if let Some(entry) = b.active.lock().expect("poisoned").get_mut(&id) {
                entry.0 += bytes;
            }
        } else {
            self.plain_downloads.lock().expect("poisoned").bytes += bytes;
        }
    }

    fn download_done(&self, id: u64) {
        if let Some(b) = &self.bars {
            b.active.lock().expect("poisoned").remove(&id);
        } else {
            self.plain_downloads.lock().expect("poisoned").count += 1;
        }
    }

    fn command_output(&self, line: &str) {
        if !self.quiet {
            self.line(&format!("  | {line}"));
        }
    }
}
