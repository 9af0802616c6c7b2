//! Signing keys: an OpenSSH Ed25519 private key file (passphrase-protected or
//! not), or a `.pub` file whose private half is held by a running ssh-agent.

use crate::error::{Error, Result};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::{Path, PathBuf};

pub enum SigningKey {
    Local(Box<PrivateKey>),
    Agent { socket: PathBuf, public: PublicKey },
}

impl SigningKey {
    /// Load a key. `ask` is called for the passphrase of an encrypted key
    /// (the CLI takes it from the environment or prompts on a terminal);
    /// `None` means there is no way to get one.
    pub fn load(path: &Path, ask: &dyn Fn(&Path) -> Result<Option<String>>) -> Result<Self> {
        let text = crate::util::read_text(path, "key", 1 << 20)?;
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let key = PrivateKey::from_openssh(&text).map_err(|e| {
                Error::input(format!(
                    "key {}: not a valid OpenSSH private key: {e}",
                    path.display()
                ))
            })?;
            let key = if key.is_encrypted() {
                let pass = ask(path)?.ok_or_else(|| {
                    Error::input(format!(
                        "key {} is passphrase-protected and no passphrase was given",
                        path.display()
                    ))
                })?;
                key.decrypt(pass.as_bytes()).map_err(|_| {
                    Error::input(format!("key {}: wrong passphrase", path.display()))
                })?
            } else {
                key
            };
            if key.algorithm() != Algorithm::Ed25519 {
                return Err(Error::input(format!(
                    "key {}: {} keys are not supported from files; use an Ed25519 key (or hold the key in ssh-agent)",
                    path.display(),
                    key.algorithm()
                )));
            }
            return Ok(SigningKey::Local(Box::new(key)));
        }
        if text.contains("PRIVATE KEY-----") {
            return Err(Error::input(format!(
                "key {}: only OpenSSH-format private keys are supported (ssh-keygen -p -f KEY converts PEM keys)",
                path.display()
            )));
        }
        let public = PublicKey::from_openssh(text.trim()).map_err(|e| {
            Error::input(format!(
                "key {}: neither an OpenSSH private key nor a public key: {e}",
                path.display()
            ))
        })?;
        if public.algorithm() != Algorithm::Ed25519 {
            return Err(Error::input(format!(
                "key {}: only Ed25519 keys are supported",
                path.display()
            )));
        }
        let socket = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from).ok_or_else(|| {
            Error::input(format!(
                "key {} is a public key: its private half must be in a running ssh-agent, but SSH_AUTH_SOCK is not set",
                path.display()
            ))
        })?;
        super::agent::has_identity(&socket, &public)?;
        Ok(SigningKey::Agent { socket, public })
    }

    pub fn public(&self) -> &PublicKey {
        match self {
            SigningKey::Local(k) => k.public_key(),
            SigningKey::Agent { public, .. } => public,
        }
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.public().fingerprint(HashAlg::Sha256).to_string()
    }

    /// An SSHSIG over `msg` in `namespace`, hashed with SHA-256: one of
    /// the two hashes SSHSIG allows (`ssh-keygen -Y sign` picks SHA-512,
    /// `ssh-keygen -Y verify` checks both), and the one with hardware
    /// support on x86 and ARM: a plan or certificate of a million versions
    /// hashes about three times faster.
    pub fn sign(&self, namespace: &str, msg: &[u8]) -> Result<String> {
        use ssh_key::sha2::{Digest, Sha256};
        self.sign_digest(namespace, &Sha256::digest(msg))
    }

    /// [`SigningKey::sign`] for a message given by its SHA-256 (SSHSIG signs
    /// a hash of the message, so a file can be signed as it is written,
    /// never held whole).
    pub fn sign_digest(&self, namespace: &str, sha256: &[u8]) -> Result<String> {
        let data = super::signed_data(namespace, b"", HashAlg::Sha256, sha256);
        let (public, raw) = match self {
            SigningKey::Local(k) => {
                let raw = signature::Signer::try_sign(k.as_ref(), &data)
                    .map_err(|e| Error::refused(format!("signing failed: {e}")))?;
                (k.public_key(), raw)
            }
            SigningKey::Agent { socket, public } => {
                (public, super::agent::sign(socket, public, &data)?)
            }
        };
        let sig = SshSig::new(public.key_data().clone(), namespace, HashAlg::Sha256, raw)
            .map_err(|e| Error::refused(format!("signature unusable: {e}")))?;
        sig.to_pem(LineEnding::LF)
            .map_err(|e| Error::refused(format!("cannot encode signature: {e}")))
    }
}

/// Generate a new Ed25519 key pair at `path` and `path.pub` (private file
/// mode 0600), encrypted with `passphrase` when given. Refuses to overwrite.
pub fn generate(path: &Path, comment: &str, passphrase: Option<&str>) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    for p in [path, pub_path.as_path()] {
        if p.symlink_metadata().is_ok() {
            return Err(Error::refused(format!(
                "{}: already exists; refusing to overwrite a key",
                p.display()
            )));
        }
    }
    let mut rng = rand::rngs::OsRng;
    let mut key = PrivateKey::random(&mut rng, Algorithm::Ed25519)
        .map_err(|e| Error::refused(format!("key generation failed: {e}")))?;
    key.set_comment(comment);
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::refused(e.to_string()))?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let key = match passphrase {
        Some(p) => key
            .encrypt(&mut rng, p)
            .map_err(|e| Error::refused(format!("key encryption failed: {e}")))?,
        None => key,
    };
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::refused(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(pem.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))?;
    crate::util::write_new(&pub_path, format!("{public}\n").as_bytes())?;
    Ok(fingerprint)
}
