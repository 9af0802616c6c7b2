//! A minimal ssh-agent client (draft-miller-ssh-agent): list identities and
//! sign. Two messages of a stable protocol; written by hand to avoid a
//! dependency for ~60 lines.

use crate::error::{Error, Result};
use ssh_key::{PublicKey, Signature};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn get_u32(buf: &mut &[u8]) -> Option<u32> {
    let (head, rest) = buf.split_at_checked(4)?;
    *buf = rest;
    Some(u32::from_be_bytes(head.try_into().ok()?))
}

fn get_string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = get_u32(buf)? as usize;
    let (s, rest) = buf.split_at_checked(n)?;
    *buf = rest;
    Some(s)
}

fn request(socket: &Path, msg: &[u8]) -> Result<Vec<u8>> {
    let err = |e: std::io::Error| Error::input(format!("ssh-agent at {}: {e}", socket.display()));
    let mut s = UnixStream::connect(socket).map_err(err)?;
    let mut framed = (msg.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed).map_err(err)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(err)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > 256 * 1024 {
        return Err(Error::input("ssh-agent sent an oversized answer"));
    }
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).map_err(err)?;
    Ok(body)
}

fn blob(key: &PublicKey) -> Result<Vec<u8>> {
    key.to_bytes()
        .map_err(|e| Error::input(format!("cannot encode public key: {e}")))
}

/// Check that the agent holds the private half of `key`.
pub fn has_identity(socket: &Path, key: &PublicKey) -> Result<()> {
    let want = blob(key)?;
    let answer = request(socket, &[REQUEST_IDENTITIES])?;
    let bad = || Error::input("ssh-agent sent a malformed identities answer");
    let mut b = &answer[..];
    let (&t, rest) = b.split_first().ok_or_else(bad)?;
    b = rest;
    if t != IDENTITIES_ANSWER {
        return Err(Error::input("ssh-agent refused to list identities"));
    }
    let count = get_u32(&mut b).ok_or_else(bad)?;
    for _ in 0..count {
        let k = get_string(&mut b).ok_or_else(bad)?;
        let _comment = get_string(&mut b).ok_or_else(bad)?;
        if k == want {
            return Ok(());
        }
    }
    Err(Error::input(format!(
        "ssh-agent does not hold the private key of {}",
        key.fingerprint(ssh_key::HashAlg::Sha256)
    )))
}

/// Ask the agent to sign `data` with `key`.
pub fn sign(socket: &Path, key: &PublicKey, data: &[u8]) -> Result<Signature> {
    let mut msg = vec![SIGN_REQUEST];
    put_string(&mut msg, &blob(key)?);
    put_string(&mut msg, data);
    msg.extend_from_slice(&0u32.to_be_bytes());
    let answer = request(socket, &msg)?;
    match answer.split_first() {
        Some((&SIGN_RESPONSE, mut rest)) => {
            let sig = get_string(&mut rest)
                .ok_or_else(|| Error::input("ssh-agent sent a malformed signature"))?;
            Signature::try_from(sig).map_err(|e| Error::input(format!("ssh-agent signature: {e}")))
        }
        Some((&FAILURE, _)) => Err(Error::refused(
            "ssh-agent refused to sign (key not loaded, or confirmation denied)",
        )),
        _ => Err(Error::input("ssh-agent sent an unexpected answer")),
    }
}
