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

/// Who made (or may make) a signature: the principal the trusted signers
/// file names, and the key's SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub principal: String,
    pub key_fingerprint: String,
}

/// `FILE.custodian.sig` / `FILE.operator.sig`.
pub fn sig_path(file: &Path, role: Role) -> PathBuf {
    PathBuf::from(format!("{}.{}.sig", file.display(), role.name()))
}

/// `FILE.ROLE.sig.tsr`: the RFC 3161 timestamp over a signature file
/// (`crate::timestamp`), beside it.
pub fn tsr_path(sig: &Path) -> PathBuf {
    PathBuf::from(format!("{}.tsr", sig.display()))
}

/// Sign the exact bytes of `file` and write the detached signature beside it.
pub fn sign_file(file: &Path, bytes: &[u8], key: &SigningKey, role: Role) -> Result<PathBuf> {
    use ssh_key::sha2::{Digest, Sha256};
    sign_file_digest(file, &Sha256::digest(bytes), key, role)
}

/// [`sign_file`] for a file given by the SHA-256 of its bytes (computed as
/// it was written).
pub fn sign_file_digest(
    file: &Path,
    sha256: &[u8],
    key: &SigningKey,
    role: Role,
) -> Result<PathBuf> {
    let armored = key.sign_digest(role.namespace(), sha256)?;
    let out = sig_path(file, role);
    // A timestamp of the signature this one replaces would stamp other bytes.
    let stale = tsr_path(&out);
    match std::fs::remove_file(&stale) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&stale, e)),
        _ => {}
    }
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
) -> Result<Signer> {
    signers
        .find(key.public(), Some(principal), role.namespace(), at)
        .map_err(|m| Error::refused(format!("{} {principal:?}: {m}", role.name())))?;
    Ok(Signer {
        principal: principal.to_string(),
        key_fingerprint: key.fingerprint(),
    })
}

/// The cryptographic half of verification, which needs nothing but the
/// bytes: the signature is canonically encoded, made in `role`'s namespace,
/// and matches `bytes` under the key it carries. Returns that key. Callers
/// check this before they parse the signed file, so a changed byte is
/// reported as a bad signature whether or not the file still parses.
pub fn check_signature(
    bytes: &[u8],
    armored: &[u8],
    role: Role,
) -> Result<ssh_key::PublicKey, String> {
    let sig = parse_signature(armored, role)?;
    let public = ssh_key::PublicKey::from(sig.public_key().clone());
    public.verify(role.namespace(), bytes, &sig).map_err(|_| {
        "signature does not match the file: the file or the signature was altered".to_string()
    })?;
    Ok(public)
}

/// [`check_signature`] for a file read in pieces and never held whole (a
/// fleet plan for a thousand hosts): SSHSIG signs a hash of the message, so
/// the hash is computed as the file streams by and the signed data is
/// assembled as `ssh-keygen` does (PROTOCOL.sshsig: "SSHSIG", namespace,
/// reserved, hash algorithm, hash). Returns the key and the file's SHA-256.
pub fn check_file_signature(
    path: &Path,
    limit: u64,
    armored: &[u8],
    role: Role,
) -> Result<(ssh_key::PublicKey, String), String> {
    use signature::Verifier;
    use ssh_key::sha2::{Digest, Sha256, Sha512};
    use std::io::Read;
    let sig = parse_signature(armored, role)?;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SHA-512 only for a signature made with it (ssh-keygen's choice;
    // decom signs with SHA-256): the file's SHA-256 is needed either way.
    let mut sha256 = Sha256::new();
    let mut sha512 = (sig.hash_alg() == HashAlg::Sha512).then(Sha512::new);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(format!("{}: larger than {limit} bytes", path.display()));
        }
        sha256.update(&buf[..n]);
        if let Some(h) = &mut sha512 {
            h.update(&buf[..n]);
        }
    }
    let file_sha256 = sha256.finalize();
    let hash: Vec<u8> = match sig.hash_alg() {
        HashAlg::Sha256 => file_sha256.to_vec(),
        HashAlg::Sha512 => sha512.map(|h| h.finalize().to_vec()).unwrap_or_default(),
        other => return Err(format!("unsupported signature hash {other:?}")),
    };
    let signed = signed_data(role.namespace(), sig.reserved(), sig.hash_alg(), &hash);
    sig.public_key()
        .verify(&signed, sig.signature())
        .map_err(|_| {
            "signature does not match the file: the file or the signature was altered".to_string()
        })?;
    Ok((
        ssh_key::PublicKey::from(sig.public_key().clone()),
        hex::encode(file_sha256),
    ))
}

/// What an SSHSIG signature covers, assembled as `ssh-keygen` does
/// (PROTOCOL.sshsig: "SSHSIG", namespace, reserved, hash algorithm, and the
/// hash of the message): the one copy, for signing and for checking.
pub(crate) fn signed_data(namespace: &str, reserved: &[u8], alg: HashAlg, hash: &[u8]) -> Vec<u8> {
    let mut signed = b"SSHSIG".to_vec();
    for field in [
        namespace.as_bytes(),
        reserved,
        alg.as_str().as_bytes(),
        hash,
    ] {
        signed.extend_from_slice(&(field.len() as u32).to_be_bytes());
        signed.extend_from_slice(field);
    }
    signed
}

/// An armored SSHSIG in its canonical encoding, for `role`'s namespace.
fn parse_signature(armored: &[u8], role: Role) -> Result<SshSig, String> {
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
    Ok(sig)
}

/// Verify a detached signature over `bytes` for `role` at time `at`
/// (Unix seconds): [`check_signature`], then the trusted signers file must
/// allow the key in that role then. With `principal`, the signer must be
/// that principal.
pub fn verify_bytes(
    bytes: &[u8],
    armored: &[u8],
    signers: &AllowedSigners,
    role: Role,
    principal: Option<&str>,
    at: i64,
) -> Result<Signer, String> {
    let public = check_signature(bytes, armored, role)?;
    let (_, name) = signers.find(&public, principal, role.namespace(), at)?;
    Ok(Signer {
        principal: name,
        key_fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// Read `FILE.role.sig` (bounded, like every input).
pub fn read_sig(file: &Path, role: Role) -> Result<Vec<u8>, String> {
    let sp = sig_path(file, role);
    crate::util::read_input(&sp, "signature", MAX_SIG).map_err(|e| e.to_string())
}

/// An armored Ed25519 SSHSIG is about 300 bytes; anything near this is not one.
const MAX_SIG: u64 = 64 << 10;

/// Verify `file`'s detached signature for `role` (reads `FILE.role.sig`).
pub fn verify_file(
    file: &Path,
    bytes: &[u8],
    signers: &AllowedSigners,
    role: Role,
    principal: Option<&str>,
    at: i64,
) -> Result<Signer, String> {
    let armored = read_sig(file, role)?;
    verify_bytes(bytes, &armored, signers, role, principal, at)
        .map_err(|m| format!("{}: {m}", sig_path(file, role).display()))
}

/// [`verify_file`] for a file too large to hold ([`check_file_signature`]):
/// returns the signer and the file's SHA-256.
pub fn verify_file_streamed(
    file: &Path,
    limit: u64,
    signers: &AllowedSigners,
    role: Role,
    principal: Option<&str>,
    at: i64,
) -> Result<(Signer, String), String> {
    let armored = read_sig(file, role)?;
    let (public, sha256) = check_file_signature(file, limit, &armored, role)
        .map_err(|m| format!("{}: {m}", sig_path(file, role).display()))?;
    let (_, name) = signers
        .find(&public, principal, role.namespace(), at)
        .map_err(|m| format!("{}: {m}", sig_path(file, role).display()))?;
    Ok((
        Signer {
            principal: name,
            key_fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        },
        sha256,
    ))
}

/// The two-person rule, the one copy of it: the operator is neither an
/// approving (or co-signing) custodian's principal nor key.
pub fn two_person(operator: &Signer, custodians: &[Signer]) -> Result<(), String> {
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
