//! Output discipline: data on stdout (JSON Lines with `--json`), messages and
//! progress on stderr; bars only when stderr is a terminal; `-q` silences
//! everything but errors. No colours are used, so NO_COLOR holds trivially.

use super::Global;
use crate::error::{Error, Result};
use crate::progress::{Phase, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

/// One line on stderr. A closed or failing stderr (`decom … 2>&1 | head`)
/// is an ordinary condition, never a panic: the line is dropped and the
/// work goes on to its safe point, its journal and its certificate.
fn to_stderr(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

pub struct Printer {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    tty: bool,
}

impl Printer {
    pub fn new(g: &Global) -> Self {
        Printer {
            json: g.json,
            quiet: g.quiet,
            verbose: g.verbose,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// A line for people, on stderr.
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            to_stderr(format_args!("{msg}"));
        }
    }

    pub fn warn(&self, msg: &str) {
        if !self.quiet {
            to_stderr(format_args!("warning: {msg}"));
        }
    }

    pub fn error(&self, e: &Error) {
        let msg = e.to_string().replace('\n', " ");
        to_stderr(format_args!("error: {msg}"));
    }

    /// Data for pipes, on stdout.
    pub fn data(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }

    /// One JSON Lines record on stdout.
    pub fn record(&self, r: &super::records::Record<'_>) {
        // Through a `Value`, whose map keeps keys in alphabetical order.
        let value = serde_json::to_value(r).expect("records serialize");
        self.data(&value.to_string());
    }

    pub fn progress(&self) -> CliProgress {
        CliProgress {
            bar: Mutex::new(None),
            tty: self.tty && !self.quiet,
            quiet: self.quiet,
            verbose: self.verbose,
            items_shown: Default::default(),
        }
    }

    /// Refuse early when a confirmation will be needed but cannot be asked.
    pub fn can_ask(&self, yes: bool) -> Result<()> {
        if yes || (std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            Ok(())
        } else {
            Err(Error::refused(
                "no terminal to ask for confirmation; refusing without --yes",
            ))
        }
    }

    /// Ask before signing or destroying. `--yes` skips the question; without
    /// a terminal to ask, refuse.
    pub fn confirm(&self, question: &str, yes: bool) -> Result<()> {
        if yes {
            return Ok(());
        }
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(Error::refused(format!(
                "{question} — no terminal to ask; refusing without --yes"
            )));
        }
        let _ = write!(std::io::stderr(), "{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Error::io("<stdin>", e))?;
        if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            Ok(())
        } else {
            Err(Error::refused("not confirmed; nothing was done"))
        }
    }

    /// Ask for a key's passphrase on the terminal (None without a terminal).
    /// The passphrase of an encrypted key: from the environment
    /// (automation), else asked on the terminal.
    pub fn ask_passphrase(&self, path: &std::path::Path) -> Result<Option<String>> {
        if let Some(pass) = super::env::key_passphrase() {
            return Ok(Some(pass));
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::input(format!(
                "key {} is passphrase-protected: set {} or run on a terminal",
                path.display(),
                super::env::KEY_PASSPHRASE
            )));
        }
        rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
            .map(Some)
            .map_err(|e| Error::io("<terminal>", e))
    }
}

/// Progress on stderr: an indicatif bar on a terminal, log lines otherwise.
pub struct CliProgress {
    bar: Mutex<Option<ProgressBar>>,
    tty: bool,
    quiet: bool,
    verbose: bool,
    /// Whether the current phase reports each item without `-v`.
    items_shown: std::sync::atomic::AtomicBool,
}

impl Progress for CliProgress {
    fn start(&self, phase: Phase<'_>, items: u64, bytes: u64) {
        // Each item gets a line only with `-v`: a run over thousands of
        // files says what it does, not every name (the journal and the
        // certificate hold those).
        let shown = self.verbose;
        self.items_shown.store(shown, Ordering::Relaxed);
        if self.tty {
            let bar = if bytes > 0 {
                let b = ProgressBar::new(bytes);
                b.set_style(
                    ProgressStyle::with_template("{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                b
            } else {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{prefix:>12} {spinner} {pos} {msg}")
                        .expect("valid template"),
                );
                b
            };
            bar.set_prefix(phase.verb());
            bar.set_message(format!("{items} item(s)"));
            *self.bar.lock().unwrap() = Some(bar);
        } else if !self.quiet && shown {
            if items == 0 && bytes == 0 {
                // Counts not known in advance (a walk): the phase alone.
                to_stderr(format_args!("{phase}"));
            } else {
                to_stderr(format_args!(
                    "{phase}: {items} item(s), {}",
                    crate::util::human_bytes(bytes)
                ));
            }
        }
    }

    fn bytes(&self, n: u64) {
        if let Some(b) = self.bar.lock().unwrap().as_ref() {
            b.inc(n);
        }
    }

    fn item(&self, line: &str) {
        let shown = self.items_shown.load(Ordering::Relaxed);
        if let Some(b) = self.bar.lock().unwrap().as_ref() {
            if b.length().is_none() {
                b.inc(1);
            }
            if shown {
                b.println(line);
            }
            return;
        }
        if !self.quiet && shown {
            to_stderr(format_args!("{line}"));
        }
    }

    fn warn(&self, line: &str) {
        if self.quiet {
            return;
        }
        match self.bar.lock().unwrap().as_ref() {
            Some(b) => b.println(format!("warning: {line}")),
            None => to_stderr(format_args!("warning: {line}")),
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish_and_clear();
        }
    }
}
