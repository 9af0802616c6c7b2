//! `decom execute`: check the approval, the operator's role and the
//! two-person rule (by building an [`Approved`] plan), destroy what the plan
//! lists, then write and sign the certificate. Every check happens before
//! anything is touched; every failure after that exits 1.

use super::records::Record;
use super::{KeyArgs, Printer, exit};
use crate::cert::{Certificate, RunFiles, Status};
use crate::dispose;
use crate::error::{Error, Result};
use crate::manifest::Person;
use crate::plan::Approved;
use crate::sign::{self, AllowedSigners, Role, SigningKey};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[derive(Args, Debug)]
pub struct ExecuteArgs {
    /// The approved plan (PLAN.custodian.sig must sit beside it).
    pub plan: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Trusted signers (OpenSSH allowed_signers with namespaces= roles).
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: PathBuf,
    /// Folder for the journal and certificate (default: beside the plan).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run from its journal.
    #[arg(long)]
    pub resume: bool,
    /// S3 requests in flight at once, of every kind: listings, DeleteObjects
    /// batches of 1000 keys, the HEADs of the absence proof (default: the
    /// plan's [s3] concurrency, else 8).
    #[arg(long, value_name = "N")]
    pub s3_concurrency: Option<usize>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub person: PersonArgs,
    #[command(flatten)]
    pub tsa: super::TsaArg,
}

/// Which host of a fleet plan this run is (`decom plan merge`).
#[derive(Args, Debug, Default)]
pub struct HostArgs {
    /// Dispose of this host's locations of a fleet plan, and write its part
    /// certificate (certificate.HOST.json) for `decom collect`. Must be this
    /// machine's hostname unless --override-hostname.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// With --host: also purge the plan's S3 locations (on one run only).
    #[arg(long, requires = "host")]
    pub s3: bool,
    /// With --host: this machine is NAME although its hostname differs
    /// (a container, a renamed node).
    #[arg(long, requires = "host")]
    pub override_hostname: bool,
}

impl HostArgs {
    pub fn choice(&self) -> crate::plan::fleet::HostChoice {
        crate::plan::fleet::HostChoice {
            host: self.host.clone(),
            s3: self.s3,
            override_hostname: self.override_hostname,
            ..crate::plan::fleet::HostChoice::this_machine()
        }
    }
}

/// Who performs the disposal, for the certificate (NIST SP 800-88 App. G):
/// flags win over the details file, which wins over the manifest's `[operator]`.
#[derive(Args, Debug, Default)]
pub struct PersonArgs {
    /// A TOML file with name, title, organisation, location and contact.
    #[arg(long, value_name = "FILE")]
    pub operator_details: Option<PathBuf>,
    #[arg(long, value_name = "NAME")]
    pub operator_name: Option<String>,
    #[arg(long, value_name = "TITLE")]
    pub operator_title: Option<String>,
    #[arg(long, value_name = "ORG")]
    pub operator_organisation: Option<String>,
    #[arg(long, value_name = "PLACE")]
    pub operator_location: Option<String>,
    #[arg(long, value_name = "CONTACT")]
    pub operator_contact: Option<String>,
}

impl PersonArgs {
    fn details(&self, manifest: Option<&Person>) -> Result<Person> {
        let file = match &self.operator_details {
            Some(p) => Person::load(p)?,
            None => Person::default(),
        };
        let flags = Person {
            name: self.operator_name.clone(),
            title: self.operator_title.clone(),
            organisation: self.operator_organisation.clone(),
            location: self.operator_location.clone(),
            contact: self.operator_contact.clone(),
        };
        Ok(manifest
            .cloned()
            .unwrap_or_default()
            .overlay(&file)
            .overlay(&flags))
    }
}

/// What a successful execute produced (the demo uses it).
pub struct Executed {
    pub certificate: PathBuf,
    pub status: Status,
}

pub fn run(a: &ExecuteArgs, p: &Printer) -> Result<u8> {
    let done = execute(a, p)?;
    Ok(
        if matches!(done.status, Status::Complete | Status::NothingFound) {
            exit::OK
        } else {
            exit::INCOMPLETE
        },
    )
}

pub fn execute(a: &ExecuteArgs, p: &Printer) -> Result<Executed> {
    // 1. The approval over the exact plan bytes, the operator, the two-person
    //    rule, the locations: `Approved` is the only way to reach dispose.
    let signers = AllowedSigners::load(&a.allowed_signers)?;
    let key = SigningKey::load(&a.key.key, &|path| p.ask_passphrase(path))?;
    let approved = Approved::verify(
        &a.plan,
        &signers,
        &key,
        &a.key.principal,
        sign::now_unix(),
        &a.host.choice(),
    )?;
    let plan = approved.plan();
    let operator_details = a.person.details(plan.manifest.operator.as_ref())?;
    let s3 = crate::store::s3::Run::of(plan, a.s3_concurrency)?;
    let faults = super::env::faults()?;
    p.can_ask(a.yes)?;

    let out_dir = match &a.out {
        Some(d) => d.clone(),
        None => a
            .plan
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    crate::util::check_dir(&out_dir, "--out")?;
    let files = match approved.part() {
        Some(part) => RunFiles::for_host(&out_dir, &part.host),
        None => RunFiles::in_dir(&out_dir),
    };

    preflight(a, plan, &files, &out_dir)?;

    // 2. Confirmation.
    if !p.json {
        for l in super::show::plan_lines(plan) {
            p.info(&l);
        }
        for c in approved.approvals() {
            p.info(&format!(
                "approved by custodian {} ({})",
                c.principal, c.key_fingerprint
            ));
        }
    }
    p.confirm(
        &format!(
            "Destroy {} artifact(s) ({}) as operator {:?}? This cannot be undone.",
            plan.totals.artifacts,
            crate::util::human_bytes(plan.totals.bytes),
            approved.operator().principal
        ),
        a.yes,
    )?;
    crate::util::ensure_dir(&out_dir, "--out")?;

    // 3. Destroy.
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
    }
    let progress = p.progress();
    let cert = dispose::execute(dispose::Request {
        approved: &approved,
        operator_details,
        files: &files,
        resume: a.resume,
        s3,
        faults,
        cancel: &cancel,
        progress: &progress,
    })?;

    // 4. Certificate, signed as operator; a stale co-signature goes. Things
    //    have been destroyed by now: a failure here is exit 1, not 2.
    let cert_path = files.certificate().to_path_buf();
    let sig = write_certificate(&files, &cert, &key).map_err(Error::after_destruction)?;
    a.tsa
        .stamp(&sig, None, p)
        .map_err(Error::after_destruction)?;
    tell(p, &cert, &cert_path, &sig, files.journal());
    Ok(Executed {
        certificate: cert_path,
        status: cert.status,
    })
}

/// What execute wrote, and what comes next.
fn tell<A: crate::cert::Artifacts>(
    p: &Printer,
    cert: &Certificate<A>,
    cert_path: &Path,
    sig: &Path,
    journal_path: &Path,
) {
    if p.json {
        p.record(&Record::Executed {
            path: cert_path,
            signature: sig,
            journal: journal_path,
            status: cert.status,
            totals: &cert.totals,
        });
    } else {
        for l in super::show::cert_lines(cert) {
            p.info(&l);
        }
        p.info(&format!(
            "wrote {} and {} (journal {})",
            cert_path.display(),
            sig.display(),
            journal_path.display()
        ));
        if cert.status == Status::NothingFound {
            p.warn("NOTHING FOUND: the approved plan listed no artifact; the certificate says so, not \"complete\"");
        }
        if matches!(cert.status, Status::Complete | Status::NothingFound) {
            p.info(&format!(
                "next: the custodian co-signs it (decom cosign {} …)",
                cert_path.display()
            ));
        } else if cert.status == Status::Pending {
            p.warn("disposal PENDING: S3 Lifecycle is emptying the delegated folder(s); run execute --resume again later (days) to check and complete the certificate");
        } else {
            p.warn("disposal INCOMPLETE: see the artifacts above; fix the cause and run again with --resume");
        }
    }
}

/// What must hold before anything is touched, besides the approval: a
/// resume has a run to continue, TMPDIR can hold the certificate's
/// temporary file, and the plan lists none of this run's own inputs and
/// outputs.
fn preflight(
    a: &ExecuteArgs,
    plan: &crate::plan::Plan,
    files: &RunFiles,
    out_dir: &Path,
) -> Result<()> {
    if a.resume {
        files.check_resume()?;
    }
    // The certificate is built through a temporary file: a TMPDIR that
    // cannot hold one must stop the run here, not after destruction.
    tempfile::tempfile().map_err(|e| {
        Error::refused(format!(
            "cannot create a temporary file in {} ({e}); set TMPDIR to a writable folder",
            std::env::temp_dir().display()
        ))
    })?;
    let approval = sign::sig_path(&a.plan, Role::Custodian);
    let (op_sig, co_sig) = (
        files.signature(Role::Operator),
        files.signature(Role::Custodian),
    );
    dispose::check_own_files(
        plan,
        &[
            &a.plan,
            &approval,
            &a.allowed_signers,
            &a.key.key,
            files.journal(),
            files.certificate(),
            &op_sig,
            &co_sig,
        ],
        out_dir,
    )?;
    Ok(())
}

/// Write the certificate and sign it as operator; a certificate written
/// earlier, and its signatures, are kept under a superseded name first
/// (evidence is never replaced or removed). Returns the signature's path.
pub(super) fn write_certificate<A: serde::Serialize>(
    files: &RunFiles,
    cert: &Certificate<A>,
    key: &SigningKey,
) -> Result<PathBuf> {
    files
        .keep_earlier()
        .map_err(|e| Error::io(files.certificate(), e))?;
    // Serialized straight into the file and hashed on the way: a
    // certificate of a million artifacts is never held as bytes.
    let sha256 = crate::util::write_atomic_with(files.certificate(), |w| {
        // The buffer sits outside the hash: the serializer writes small
        // pieces, the hash sees whole blocks.
        let mut h = std::io::BufWriter::with_capacity(
            1 << 20,
            crate::hash::Hashing::<_, sha2::Sha256>::with_digest(w),
        );
        cert.write_json(&mut h)?;
        let (mut w, sha256) = h.into_inner().map_err(|e| e.into_error())?.finish();
        std::io::Write::flush(&mut w)?;
        Ok(sha256)
    })?;
    sign::sign_file_digest(files.certificate(), &sha256, key, Role::Operator)
}
