//! Signatures: OpenSSH SSHSIG over the exact bytes of a file, as detached
//! armored `.sig` files beside it, so `ssh-keygen -Y verify` checks them
//! without decom. Roles are namespaces bound by the trusted signers file:
//! custodians sign `decom-custodian` (plan approvals, certificate
//! co-signatures), operators sign `decom-operator` (certificates).
//!
//! Verification never re-serializes anything: it reads bytes and checks them.

pub mod agent;
pub mod allowed_signers;
pub mod key;

use crate::cert::Party;
use crate::error::{Error, Result};
pub use allowed_signers::AllowedSigners;
pub use key::SigningKey;
use ssh_key::{HashAlg, SshSig};
use std::path::{Path, PathBuf};

pub const CUSTODIAN: &str = "decom-custodian";
pub const OPERATOR: &str = "decom-operator";

/// The role a signature plays; it picks the namespace and the file suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Custodian,
    Operator,
}

impl Role {
    pub fn namespace(self) -> &'static str {
        match self {
            Role::Custodian => CUSTODIAN,
            Role::Operator => OPERATOR,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Role::Custodian => "custodian",
            Role::Operator => "operator",
        }
    }
}

/// `FILE.custodian.sig` / `FILE.operator.sig`.
pub fn sig_path(file: &Path, role: Role) -> PathBuf {
    PathBuf::from(format!("{}.{}.sig", file.display(), role.name()))
}

/// Sign the exact bytes of `file` and write the detached signature beside it.
pub fn sign_file(file: &Path, bytes: &[u8], key: &SigningKey, role: Role) -> Result<PathBuf> {
    let armored = key.sign(role.namespace(), bytes)?;
    let out = sig_path(file, role);
    crate::util::write_atomic(&out, armored.as_bytes())?;
    Ok(out)
}

/// Check that `principal` with `key` may sign in `role` at time `at`.
pub fn check_allowed(
    signers: &AllowedSigners,
    key: &SigningKey,
    principal: &str,
    role: Role,
    at: i64,
) -> Result<Party> {
    signers
        .find(key.public(), Some(principal), role.namespace(), at)
        .map_err(|m| Error::refused(format!("{} {principal:?}: {m}", role.name())))?;
    Ok(Party {
        principal: principal.to_string(),
        key_fingerprint: key.fingerprint(),
        details: Default::default(),
    })
}

/// Verify a detached signature over `bytes` for `role` at time `at`
/// (Unix seconds). With `principal`, the signer must be that principal.
pub fn verify_bytes(
    bytes: &[u8],
    armored: &[u8],
    signers: &AllowedSigners,
    role: Role,
    principal: Option<&str>,
    at: i64,
) -> Result<Party, String> {
    let sig = SshSig::from_pem(armored).map_err(|e| format!("not a valid SSH signature: {e}"))?;
    // Only the canonical encoding counts: a flipped padding bit or trailing
    // junk that the decoder would tolerate is still an altered signature.
    let canonical = sig
        .to_pem(ssh_key::LineEnding::LF)
        .map_err(|e| format!("not a valid SSH signature: {e}"))?;
    if armor_body(canonical.as_bytes()) != armor_body(armored) {
        return Err("the signature file is not canonically encoded (altered)".to_string());
    }
    if sig.namespace() != role.namespace() {
        return Err(format!(
            "signed for namespace {:?}, but a {} signature must use {:?}",
            sig.namespace(),
            role.name(),
            role.namespace()
        ));
    }
    let public = ssh_key::PublicKey::from(sig.public_key().clone());
    public.verify(role.namespace(), bytes, &sig).map_err(|_| {
        "signature does not match the file: the file or the signature was altered".to_string()
    })?;
    let (_, name) = signers.find(&public, principal, role.namespace(), at)?;
    Ok(Party {
        principal: name,
        key_fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        details: Default::default(),
    })
}

/// Verify `file`'s detached signature for `role` (reads `FILE.role.sig`).
pub fn verify_file(
    file: &Path,
    bytes: &[u8],
    signers: &AllowedSigners,
    role: Role,
    principal: Option<&str>,
    at: i64,
) -> Result<Party, String> {
    let sp = sig_path(file, role);
    let armored = std::fs::read(&sp).map_err(|e| format!("{}: {e}", sp.display()))?;
    verify_bytes(bytes, &armored, signers, role, principal, at)
        .map_err(|m| format!("{}: {m}", sp.display()))
}

/// The two-person rule: the operator is neither an approving custodian's
/// principal nor key.
pub fn two_person(operator: &Party, custodians: &[Party]) -> Result<(), String> {
    for c in custodians {
        if c.key_fingerprint == operator.key_fingerprint {
            return Err(format!(
                "two-person rule: the operator key {} also approved as custodian {:?}; operator and custodian must be different people with different keys",
                operator.key_fingerprint, c.principal
            ));
        }
        if c.principal == operator.principal {
            return Err(format!(
                "two-person rule: principal {:?} is both operator and custodian",
                operator.principal
            ));
        }
    }
    Ok(())
}

/// Unix seconds of an RFC 3339 time.
pub fn unix(t: &str) -> Result<i64> {
    Ok(crate::util::parse_rfc3339(t)?.unix_timestamp())
}

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `YYYYMMDDHHMMSSZ` for ssh-keygen's `-Overify-time=`.
pub fn ssh_time(t: &str) -> String {
    t.chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect::<String>()
        + "Z"
}

/// The base64 body of an armored signature, without the BEGIN/END lines and whitespace.
fn armor_body(armored: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(armored);
    text.lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect()
}
