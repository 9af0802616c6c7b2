//! The command line: clap definitions, one file per command, and the only
//! place that talks to the terminal (stdout for data, stderr for messages and
//! progress). Arguments are resolved and checked before anything is touched.

mod approve;
mod archive;
mod completions;
mod cosign;
mod demo;
mod env;
mod execute;
mod fleet;
mod hash;
mod keygen;
mod output;
mod records;
mod render;
mod show;
mod trace;
mod verify;

use clap::{Args, Parser, Subcommand};
pub use output::Printer;
use std::path::PathBuf;

use crate::error::Error;
pub use crate::exit_code as exit;

#[derive(Parser, Debug)]
#[command(
    name = "decom",
    version,
    about = "Secure end of life for AI models: trace every copy, have the Data Custodian approve, destroy with verification, and certify.",
    after_help = "Lifecycle: trace → approve (custodian) → execute (operator) → cosign (custodian) → verify.\nExit codes: 0 ok, 1 incomplete or verification failed, 2 usage or input error (nothing touched), 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail (every file traced).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Machine-readable JSON Lines on stdout (each line has a "type").
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Make an Ed25519 signing key pair (OpenSSH format).
    Keygen(keygen::KeygenArgs),
    /// Find every artifact the manifest describes and write a plan (changes nothing).
    Trace(trace::TraceArgs),
    /// Summarise a plan or certificate for review.
    Show(show::ShowArgs),
    /// Custodian: approve (sign) a plan after reviewing it.
    Approve(approve::ApproveArgs),
    /// Operator: destroy what an approved plan lists, then issue the certificate.
    Execute(execute::ExecuteArgs),
    /// Fleet plans: `plan merge` joins the plans of several hosts into one.
    Plan(fleet::PlanArgs),
    /// Operator: check every host's part certificate and sign the fleet certificate.
    Collect(fleet::CollectArgs),
    /// Custodian: co-sign a certificate after checking it.
    Cosign(cosign::CosignArgs),
    /// Check a certificate's signatures, roles and consistency.
    Verify(verify::VerifyArgs),
    /// Render a certificate as a PDF/A-3b document or an HTML page for people.
    Render(render::RenderArgs),
    /// Store the evidence bundle write-once (S3 Object Lock or a hash-chained folder).
    Archive(archive::ArchiveArgs),
    /// Run the whole lifecycle on a sample model in a fresh folder.
    Demo(demo::DemoArgs),
    /// SHA-256 of files, as sha256sum prints it (for a manifest's sha256sums).
    Hash(hash::HashArgs),
    /// Shell completions (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(completions::CompletionsArgs),
    /// The man page (roff) on stdout: `decom man > decom.1`.
    Man(completions::ManArgs),
}

/// Parse arguments, run, and turn the result into an exit code.
pub fn run() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return std::process::ExitCode::from(code);
        }
    };
    let printer = Printer::new(&cli.global);
    let code = match dispatch(cli.command, &printer) {
        Ok(code) => code,
        Err(e) => {
            printer.error(&e);
            exit_code(&e)
        }
    };
    std::process::ExitCode::from(code)
}

/// The exit code an error stands for (README "Exit codes"). Only errors
/// raised before anything was touched may say 2.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Input(_) | Error::Refused(_) | Error::Io { .. } => exit::USAGE,
        Error::Verification(_) | Error::AfterDestruction { .. } => exit::INCOMPLETE,
        Error::Interrupted => exit::INTERRUPTED,
    }
}

fn dispatch(cmd: Command, p: &Printer) -> crate::Result<u8> {
    match cmd {
        Command::Keygen(a) => keygen::run(&a, p),
        Command::Trace(a) => trace::run(&a, p),
        Command::Show(a) => show::run(&a, p),
        Command::Approve(a) => approve::run(&a, p),
        Command::Execute(a) => execute::run(&a, p),
        Command::Plan(a) => fleet::plan(&a, p),
        Command::Collect(a) => fleet::collect(&a, p),
        Command::Cosign(a) => cosign::run(&a, p),
        Command::Verify(a) => verify::run(&a, p),
        Command::Render(a) => render::run(&a, p),
        Command::Archive(a) => archive::run(&a, p),
        Command::Demo(a) => demo::run(&a, p),
        Command::Hash(a) => hash::run(&a, p),
        Command::Completions(a) => completions::completions(&a, p),
        Command::Man(a) => completions::man(&a, p),
    }
}

/// Key and principal, shared by the signing commands.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// OpenSSH Ed25519 private key, or a .pub whose private half is in ssh-agent.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Your principal, as written in the trusted signers file.
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: String,
}

/// An RFC 3161 timestamp over the signature a command writes.
#[derive(Args, Debug, Clone, Default)]
pub struct TsaArg {
    /// Also have the signature timestamped by this RFC 3161 time-stamp
    /// authority (http://…); the token goes beside it as SIG.tsr.
    #[arg(long, value_name = "URL", env = "DECOM_TSA")]
    pub tsa: Option<String>,
}

/// A signature file and its timestamp as they were before a command
/// replaced them, to put back if the new signature gets no timestamp.
pub struct Earlier {
    sig: Option<Vec<u8>>,
    tsr: Option<Vec<u8>>,
}

impl TsaArg {
    /// What `sig` and its timestamp hold now, when a TSA was given.
    pub fn before_signing(&self, sig: &std::path::Path) -> Option<Earlier> {
        self.tsa.as_ref()?;
        Some(Earlier {
            sig: std::fs::read(sig).ok(),
            tsr: std::fs::read(crate::sign::tsr_path(sig)).ok(),
        })
    }

    /// Timestamp `sig` when a TSA was given. If the TSA fails and
    /// `earlier` is given, the files are put back as they were (a new
    /// signature removed, an earlier one restored: nothing was signed),
    /// and the error is returned.
    pub fn stamp(
        &self,
        sig: &std::path::Path,
        earlier: Option<Earlier>,
        p: &Printer,
    ) -> crate::error::Result<()> {
        let Some(url) = &self.tsa else { return Ok(()) };
        let e = match crate::timestamp::stamp_file(sig, url) {
            Ok(tsr) => {
                p.info(&format!("timestamped: wrote {}", tsr.display()));
                return Ok(());
            }
            Err(e) => e,
        };
        if let Some(was) = earlier {
            for (path, bytes) in [
                (sig.to_path_buf(), was.sig),
                (crate::sign::tsr_path(sig), was.tsr),
            ] {
                match bytes {
                    Some(b) => crate::util::write_atomic(&path, &b)?,
                    None => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        Err(e)
    }
}

/// How to reach S3 (overrides the manifest's `[s3]` table).
#[derive(Args, Debug, Clone, Default)]
pub struct S3Args {
    #[command(flatten)]
    pub endpoint: S3Endpoint,
    /// Stream and hash object versions that carry no SHA-256 checksum.
    #[arg(long)]
    pub hash_remote: bool,
    /// S3 requests in flight at once (default 8; overrides the manifest's [s3] concurrency).
    #[arg(long, value_name = "N")]
    pub s3_concurrency: Option<usize>,
}

impl S3Args {
    pub fn settings(&self) -> crate::store::s3::Settings {
        crate::store::s3::Settings {
            hash_remote: self.hash_remote,
            concurrency: self.s3_concurrency,
            ..self.endpoint.settings()
        }
    }
}

/// How to reach an S3-compatible store.
#[derive(Args, Debug, Clone, Default)]
pub struct S3Endpoint {
    /// S3-compatible endpoint (MinIO, Ceph, Garage, …); default: AWS_ENDPOINT_URL or AWS.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region (default: the standard AWS region chain, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Path-style addressing (automatic for IP and localhost endpoints).
    #[arg(long)]
    pub path_style: bool,
}

impl S3Endpoint {
    pub fn settings(&self) -> crate::store::s3::Settings {
        crate::store::s3::Settings {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            path_style: self.path_style.then_some(true),

            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
