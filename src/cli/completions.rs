//! `decom completions SHELL` and `decom man`: shell completions and the
//! man page, generated from the same clap definition the binary parses with.

use super::{Cli, Printer, exit};
use crate::error::{Error, Result};
use clap::{Args, CommandFactory};
use std::io::Write;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {}

pub fn completions(a: &CompletionsArgs, _p: &Printer) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "decom", &mut out);
    write_stdout(&out)
}

/// The man page (roff) of decom and every subcommand, one after another,
/// for `decom man > decom.1`.
pub fn man(_a: &ManArgs, _p: &Printer) -> Result<u8> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    render(&cmd, &mut out)?;
    write_stdout(&out)
}

fn render(cmd: &clap::Command, out: &mut Vec<u8>) -> Result<()> {
    page(cmd.clone(), cmd.get_name().to_string(), out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let title = format!("{}-{}", cmd.get_name(), sub.get_name());
        page(sub.clone(), title, out)?;
    }
    Ok(())
}

fn page(cmd: clap::Command, title: String, out: &mut Vec<u8>) -> Result<()> {
    clap_mangen::Man::new(cmd)
        .title(title)
        .render(out)
        .map_err(|e| Error::io("<man page>", e))
}

fn write_stdout(bytes: &[u8]) -> Result<u8> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("<stdout>", e))?;
    Ok(exit::OK)
}
