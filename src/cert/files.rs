//! The files of one run, named in one place: execute writes the journal and
//! the certificate into a folder, the signatures sit beside the certificate
//! (`certificate.json.operator.sig`, `certificate.json.custodian.sig`), and
//! verify, render and archive find them again from the certificate's path.

use crate::sign::{self, Role};
use std::path::{Path, PathBuf};

pub const JOURNAL: &str = "journal.jsonl";
pub const CERTIFICATE: &str = "certificate.json";

/// Where a run's evidence lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    journal: PathBuf,
    certificate: PathBuf,
}

impl RunFiles {
    /// The files execute writes into `dir`.
    pub fn in_dir(dir: &Path) -> RunFiles {
        RunFiles {
            journal: dir.join(JOURNAL),
            certificate: dir.join(CERTIFICATE),
        }
    }

    /// The files one host's run of a fleet plan writes into `dir`
    /// (`journal.HOST.jsonl`, `certificate.HOST.json`), so that hosts
    /// sharing a folder never share a journal.
    pub fn for_host(dir: &Path, host: &str) -> RunFiles {
        RunFiles {
            journal: dir.join(format!("journal.{host}.jsonl")),
            certificate: dir.join(format!("certificate.{host}.json")),
        }
    }

    /// The files of the run that produced the certificate at `path` (under
    /// whatever name it has now): the journal sits in the same folder,
    /// named after the host for a host's part (`certificate.HOST.json`
    /// beside `journal.HOST.jsonl`), else `journal.jsonl`.
    pub fn of_certificate(path: &Path) -> RunFiles {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let host = name
            .as_deref()
            .and_then(|n| n.strip_prefix("certificate."))
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|h| !h.is_empty());
        // A certificate renamed to certificate.X.json keeps journal.jsonl.
        let journal = host
            .map(|h| folder_of(path).join(format!("journal.{h}.jsonl")))
            .filter(|j| j.exists())
            .unwrap_or_else(|| folder_of(path).join(JOURNAL));
        RunFiles {
            journal,
            certificate: path.to_path_buf(),
        }
    }

    pub fn journal(&self) -> &Path {
        &self.journal
    }

    pub fn certificate(&self) -> &Path {
        &self.certificate
    }

    /// The detached signature of the certificate in `role`.
    pub fn signature(&self, role: Role) -> PathBuf {
        sign::sig_path(&self.certificate, role)
    }

    /// Whether `execute --resume` may continue this run: its journal must
    /// exist (a resume never starts a fresh run), and a run that finished
    /// complete with its certificate written is done (resuming it would
    /// only replace evidence). Refusals touch nothing.
    pub fn check_resume(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        if self.journal.symlink_metadata().is_err() {
            return Err(Error::refused(format!(
                "--resume: there is no journal at {} to continue; start the run without --resume",
                self.journal.display()
            )));
        }
        let mut complete = false;
        crate::journal::scan(&self.journal, |r| {
            if let crate::journal::Event::RunFinished { complete: c } = r.event {
                complete = c;
            }
        })?;
        if complete && self.certificate.symlink_metadata().is_ok() {
            return Err(Error::refused(format!(
                "--resume: the run is complete; its certificate is {} (verify it, or co-sign it with decom cosign)",
                self.certificate.display()
            )));
        }
        Ok(())
    }

    /// Before a run writes its certificate: a certificate written earlier
    /// (an incomplete or pending run resumed) and its signatures are kept
    /// under the next free name, `certificate.superseded-N.json` beside
    /// the new one, never replaced or removed. Returns that name.
    pub fn keep_earlier(&self) -> std::io::Result<Option<PathBuf>> {
        if self.certificate.symlink_metadata().is_err() {
            return Ok(None);
        }
        let name = self
            .certificate
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_suffix(".json").unwrap_or(&name);
        let folder = self.folder().to_path_buf();
        for n in 1u32.. {
            let to = folder.join(format!("{stem}.superseded-{n}.json"));
            if to.symlink_metadata().is_ok() {
                continue;
            }
            let moves = [
                (self.certificate.clone(), to.clone()),
                (
                    self.signature(Role::Operator),
                    sign::sig_path(&to, Role::Operator),
                ),
                (
                    self.signature(Role::Custodian),
                    sign::sig_path(&to, Role::Custodian),
                ),
                (
                    sign::tsr_path(&self.signature(Role::Operator)),
                    sign::tsr_path(&sign::sig_path(&to, Role::Operator)),
                ),
                (
                    sign::tsr_path(&self.signature(Role::Custodian)),
                    sign::tsr_path(&sign::sig_path(&to, Role::Custodian)),
                ),
            ];
            for (from, to) in moves {
                if from.symlink_metadata().is_ok() {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &from,
                        rustix::fs::CWD,
                        &to,
                        rustix::fs::RenameFlags::NOREPLACE,
                    )?;
                }
            }
            return Ok(Some(to));
        }
        unreachable!("some superseded-N name is free")
    }

    /// The folder holding the certificate (`.` for a bare file name).
    pub fn folder(&self) -> &Path {
        folder_of(&self.certificate)
    }
}

fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_certificate_wherever_it_is() {
        let f = RunFiles::in_dir(Path::new("/out"));
        assert_eq!(f.journal(), Path::new("/out/journal.jsonl"));
        assert_eq!(
            f.signature(Role::Operator),
            Path::new("/out/certificate.json.operator.sig")
        );
        let g = RunFiles::of_certificate(Path::new("fleet-cert.json"));
        assert_eq!(g.folder(), Path::new("."));
        assert_eq!(g.journal(), Path::new("./journal.jsonl"));
        assert_eq!(
            g.signature(Role::Custodian),
            Path::new("fleet-cert.json.custodian.sig")
        );
    }

    #[test]
    fn a_hosts_part_finds_its_own_journal_and_a_renamed_certificate_the_usual_one() {
        let dir = tempfile::tempdir().unwrap();
        let part = RunFiles::for_host(dir.path(), "node1");
        assert_eq!(
            part.certificate(),
            dir.path().join("certificate.node1.json")
        );
        std::fs::write(part.journal(), b"").unwrap();
        assert_eq!(
            RunFiles::of_certificate(part.certificate()).journal(),
            dir.path().join("journal.node1.jsonl")
        );
        assert_eq!(
            RunFiles::of_certificate(&dir.path().join("certificate.2025.json")).journal(),
            dir.path().join("journal.jsonl")
        );
    }
}
