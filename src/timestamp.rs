//! RFC 3161 timestamps: ask a time-stamp authority (TSA) to stamp bytes, and
//! check a stamp one returned.
//!
//! [`request`] sends a TimeStampReq (the SHA-256 imprint of the bytes, a
//! random 64-bit nonce, certReq) over plain HTTP/1.1 and returns the whole
//! TimeStampResp as DER, the file `openssl ts -verify -in X.tsr` reads.
//!
//! [`verify`] checks a stored response, or a bare token, against the bytes it
//! covers and the certificates of a [`Trust`] file:
//! - the TSA granted it (status 0 or 1); the token is CMS SignedData with one
//!   signer and an id-ct-TSTInfo content of version 1;
//! - the imprint is the SHA-256, SHA-384 or SHA-512 of the bytes;
//! - the signed attributes: content-type id-ct-TSTInfo, message-digest equal
//!   to the digest of the TSTInfo, an ESS signing-certificate (v2, or v1 with
//!   SHA-1) that names the signer's certificate;
//! - the signature over the signed attributes, as the token carries them
//!   (never re-encoded), with the signer's key: ECDSA P-256 or RSA PKCS#1
//!   v1.5 (2048 to 8192 bits), with SHA-256, SHA-384 or SHA-512;
//! - the signer's certificate, found by the signer identifier in the token
//!   (or in the trust file when the token carries none), has a critical
//!   extendedKeyUsage of timeStamping alone;
//! - a chain from it to a certificate of the trust file: each certificate
//!   signed by the next, intermediates taken from the token and marked CA in
//!   basicConstraints, every certificate valid at genTime. A root that only
//!   the token carries is never trusted.
//!
//! Not verified: revocation (no CRL or OCSP is fetched, so a TSA key revoked
//! after a compromise still verifies), the TSA policy OID (any policy is
//! accepted), the `tsa` name in the TSTInfo (a hint), keyUsage, path length
//! and name constraints, the accuracy (genTime is taken as exact), ESS
//! issuerSerial. The nonce is checked by [`request`] only: a stored token's
//! verifier does not know it. Validity is judged at the token's own genTime,
//! as RFC 3161 verifiers do.
//!
//! genTime is parsed here, with its fractional seconds: der's
//! `GeneralizedTime` follows RFC 5280, which forbids fractions, so the
//! x509-tsp crate (built on it) refuses tokens of TSAs that give them.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{Any, AnyRef, BitString, Int, ObjectIdentifier as Oid, OctetString, Uint};
use der::{Decode, DecodePem, Encode, Reader, Sequence, SliceReader, Tag, TagNumber, Tagged};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::Digest;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};

use crate::error::{Error, Result};

/// How long a TSA may take to accept the connection, and then to answer.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from a TSA (a token with its chain is a few KiB).
const MAX_REPLY: usize = 1 << 20;
/// The most certificates a chain from the TSA to a trusted CA may have.
const MAX_CHAIN: usize = 6;
/// The media types of RFC 3161 section 3.4.
const QUERY_TYPE: &str = "application/timestamp-query";
const REPLY_TYPE: &str = "application/timestamp-reply";

/// Why an `https://` TSA URL is refused.
const HTTPS_REFUSED: &str = "decom speaks only plain http:// to a time-stamp authority: \
     RFC 3161 tokens are signed, so plain http is what TSAs offer; use the TSA's http:// URL";
/// The reason [`verify`] gives when the token stamps other bytes.
const OTHER_BYTES: &str = "the timestamp covers other bytes than the file it stamps";
/// The reason a signature check gives when the signature is wrong.
const NO_MATCH: &str = "does not match what it signs (the token was altered)";

const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERT: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.12");
const ID_SIGNING_CERT_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const ID_KP_TIME_STAMPING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.8");
const ID_CE_SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
const ID_CE_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
const ID_CE_EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");

/// The signature algorithms checked: the key they need and the hash they
/// name (none: the signer's digest algorithm, as CMS allows).
const SIGNATURE_ALGORITHMS: [(Oid, KeyKind, Option<Hash>); 8] = [
    (
        Oid::new_unwrap("1.2.840.10045.4.3.2"),
        KeyKind::Ec,
        Some(Hash::Sha256),
    ),
    (
        Oid::new_unwrap("1.2.840.10045.4.3.3"),
        KeyKind::Ec,
        Some(Hash::Sha384),
    ),
    (
        Oid::new_unwrap("1.2.840.10045.4.3.4"),
        KeyKind::Ec,
        Some(Hash::Sha512),
    ),
    (
        Oid::new_unwrap("1.2.840.113549.1.1.11"),
        KeyKind::Rsa,
        Some(Hash::Sha256),
    ),
    (
        Oid::new_unwrap("1.2.840.113549.1.1.12"),
        KeyKind::Rsa,
        Some(Hash::Sha384),
    ),
    (
        Oid::new_unwrap("1.2.840.113549.1.1.13"),
        KeyKind::Rsa,
        Some(Hash::Sha512),
    ),
    (RSA_ENCRYPTION, KeyKind::Rsa, None),
    (ID_EC_PUBLIC_KEY, KeyKind::Ec, None),
];

/// PKIStatus names (RFC 3161 2.4.2), by value.
const STATUS_NAMES: [&str; 6] = [
    "granted",
    "grantedWithMods",
    "rejection",
    "waiting",
    "revocationWarning",
    "revocationNotification",
];

/// PKIFailureInfo bits (RFC 3161 2.4.2) and their names.
const FAILURE_BITS: [(usize, &str); 8] = [
    (0, "badAlg"),
    (2, "badRequest"),
    (5, "badDataFormat"),
    (14, "timeNotAvailable"),
    (15, "unacceptedPolicy"),
    (16, "unacceptedExtension"),
    (17, "addInfoNotAvailable"),
    (25, "systemFailure"),
];

// ---- RFC 3161 and ESS structures ---------------------------------------

/// MessageImprint: the hash of the stamped bytes.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// TimeStampReq (RFC 3161 2.4.1), without extensions.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    req_policy: Option<Oid>,
    #[asn1(optional = "true")]
    nonce: Option<Uint>,
    #[asn1(default = "Default::default")]
    cert_req: bool,
}

/// PKIStatusInfo (RFC 3161 2.4.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct PkiStatusInfo {
    status: u8,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// TimeStampResp (RFC 3161 2.4.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

/// TSTInfo (RFC 3161 2.4.2). genTime, accuracy and tsa are kept raw.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TstInfo {
    version: u8,
    policy: Oid,
    message_imprint: MessageImprint,
    serial_number: Int,
    /// A GeneralizedTime with fractional seconds, read by [`parse_gen_time`].
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Any>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<Any>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// ESSCertIDv2 (RFC 5035); ESSCertID (RFC 2634) decodes into it too, as it
/// is the same without the hash algorithm. issuerSerial is not checked.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertId {
    /// Absent: SHA-256 (v2), or SHA-1 (v1).
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// SigningCertificateV2 (RFC 5035) and SigningCertificate (RFC 2634).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

// ---- hashes and keys -----------------------------------------------------

/// The hashes accepted in imprints, digests and signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    const ALL: [Hash; 3] = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

    /// The algorithm's OID (RFC 5754).
    fn oid(self) -> Oid {
        match self {
            Hash::Sha256 => Oid::new_unwrap("2.16.840.1.101.3.4.2.1"),
            Hash::Sha384 => Oid::new_unwrap("2.16.840.1.101.3.4.2.2"),
            Hash::Sha512 => Oid::new_unwrap("2.16.840.1.101.3.4.2.3"),
        }
    }

    /// The hash an OID names, if it is one of [`Hash::ALL`].
    fn from_oid(oid: &Oid) -> Option<Hash> {
        Hash::ALL.into_iter().find(|h| h.oid() == *oid)
    }

    /// The digest of `data`.
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The DigestInfo prefix PKCS#1 v1.5 signs before the digest (RFC 8017
    /// 9.2, note 1).
    fn digest_info(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// The kinds of public key whose signatures are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Ec,
    Rsa,
}

// ---- requesting a timestamp ------------------------------------------------

/// Ask the TSA at `url` (`http://host[:port]/path`) to stamp `covered`, and
/// return its whole TimeStampResp (DER). The answer is checked before it is
/// returned: HTTP 200 with the timestamp-reply type, the request granted, the
/// imprint and the nonce those of this request. Its signature is not:
/// [`verify`] does that against a trust file.
pub fn request(url: &str, covered: &[u8]) -> Result<Vec<u8>> {
    let endpoint = Endpoint::parse(url)?;
    let nonce = rand::random::<u64>() | 1;
    let query = query(covered, nonce)
        .map_err(|e| Error::input(format!("{url}: cannot encode the timestamp request: {e}")))?;
    let raw = endpoint.post(&query).map_err(|e| Error::io(url, e))?;
    let reply = http_body(&raw).map_err(|m| Error::input(format!("{url}: {m}")))?;
    check_reply(&reply, covered, nonce).map_err(|m| Error::input(format!("{url}: {m}")))?;
    Ok(reply)
}

/// Stamp the signature file `sig` at the TSA `url` and write the answer
/// beside it ([`crate::sign::tsr_path`]). Returns the path written.
pub fn stamp_file(sig: &Path, url: &str) -> Result<std::path::PathBuf> {
    let bytes = std::fs::read(sig).map_err(|e| Error::io(sig, e))?;
    let reply = request(url, &bytes)?;
    let out = crate::sign::tsr_path(sig);
    crate::util::write_atomic(&out, &reply)?;
    Ok(out)
}

/// The DER TimeStampReq for `covered`: SHA-256 imprint, `nonce`, certReq.
fn query(covered: &[u8], nonce: u64) -> std::result::Result<Vec<u8>, der::Error> {
    TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            // NULL parameters, as openssl writes them.
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: Hash::Sha256.oid(),
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(Hash::Sha256.digest(covered))?,
        },
        req_policy: None,
        nonce: Some(Uint::new(&nonce.to_be_bytes())?),
        cert_req: true,
    }
    .to_der()
}

/// A TSA's answer belongs to the request: granted, the same imprint and nonce.
fn check_reply(reply: &[u8], covered: &[u8], nonce: u64) -> Result<(), String> {
    let token = open(reply)?;
    let imprint = &token.tst.message_imprint;
    if imprint.hash_algorithm.oid != Hash::Sha256.oid()
        || imprint.hashed_message.as_bytes() != Hash::Sha256.digest(covered)
    {
        return Err("the TSA stamped other bytes than decom sent".into());
    }
    let theirs = token.tst.nonce.as_ref().map(|n| unsigned(n.as_bytes()));
    if theirs != Some(unsigned(&nonce.to_be_bytes())) {
        return Err(
            "the TSA answered with another nonce than decom sent (a stale or mixed-up answer)"
                .into(),
        );
    }
    Ok(())
}

/// A big-endian unsigned number without its leading zero bytes.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Where a TSA listens: an `http://host[:port]/path` URL taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    host: String,
    port: u16,
    /// `host[:port]` as the URL writes it, for the Host header.
    authority: String,
    /// The path and query.
    target: String,
}

impl Endpoint {
    /// Parse a TSA URL: plain `http://` only, no user info.
    fn parse(url: &str) -> Result<Endpoint> {
        let bad = |why: &str| Error::input(format!("{url}: {why}"));
        let scheme = |s: &str| {
            url.get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        };
        if scheme("https://") {
            return Err(bad(HTTPS_REFUSED));
        }
        if !scheme("http://") {
            return Err(bad("not an http:// URL of a time-stamp authority"));
        }
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("the URL holds a space or a control character"));
        }
        let rest = &url["http://".len()..];
        let rest = rest.split('#').next().unwrap_or(rest);
        let (authority, target) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(bad("a user name or password in a TSA URL is not supported"));
        }
        let (host, port) = split_port(authority).ok_or_else(|| bad("no valid host and port"))?;
        let target = match target.starts_with('/') {
            true => target.to_string(),
            false => format!("/{target}"),
        };
        Ok(Endpoint {
            host,
            port,
            authority: authority.to_string(),
            target,
        })
    }

    /// POST `body` as a timestamp query and read the raw answer, within
    /// [`TIMEOUT`] to connect and [`TIMEOUT`] to answer.
    fn post(&self, body: &[u8]) -> io::Result<Vec<u8>> {
        let mut stream = self.connect()?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: decom/{}\r\nContent-Type: {QUERY_TYPE}\r\n\
             Accept: {REPLY_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.target,
            self.authority,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        read_answer(&mut stream, Instant::now() + TIMEOUT)
    }

    /// Connect to the first of the host's addresses that accepts.
    fn connect(&self) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, TIMEOUT) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address")))
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; port 80 when absent.
fn split_port(authority: &str) -> Option<(String, u16)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => 80,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-_:".contains(c);
    (!host.is_empty() && host.chars().all(ok)).then(|| (host.to_string(), port))
}

/// Read an HTTP answer until the server closes, or until it is complete by
/// its Content-Length or chunks, by `deadline`, at most [`MAX_REPLY`] bytes.
fn read_answer(stream: &mut TcpStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete answer within {} s", TIMEOUT.as_secs()),
        )
    };
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(raw);
        }
        if raw.len() + n > MAX_REPLY {
            let msg = format!("the answer is larger than {} KiB", MAX_REPLY / 1024);
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        raw.extend_from_slice(&buf[..n]);
        if complete(&raw) {
            return Ok(raw);
        }
    }
}

/// The head of an HTTP answer: what decom reads of it.
#[derive(Debug)]
struct Head {
    code: u16,
    /// The status line, for messages.
    status: String,
    /// The media type, lower case, without parameters.
    content_type: String,
    length: Option<usize>,
    chunked: bool,
    /// Where the body starts.
    end: usize,
}

/// The head of the final answer in `raw` (interim 1xx answers skipped), or
/// None while it is incomplete.
fn parse_head(raw: &[u8]) -> Result<Option<Head>, String> {
    let mut start = 0;
    loop {
        let Some(len) = find(&raw[start..], b"\r\n\r\n") else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&raw[start..start + len]);
        let mut lines = text.split("\r\n");
        let status: String = lines
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(120)
            .collect();
        let code = status
            .strip_prefix("HTTP/1.")
            .and_then(|s| s.split(' ').nth(1))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("the TSA did not answer in HTTP/1.x: {status:?}"))?;
        start += len + 4;
        if (100..200).contains(&code) {
            continue;
        }
        let mut head = Head {
            code,
            status,
            content_type: String::new(),
            length: None,
            chunked: false,
            end: start,
        };
        for line in lines {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.trim().to_ascii_lowercase();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-type" => {
                    head.content_type = value.split(';').next().unwrap_or("").trim().to_string()
                }
                "content-length" => {
                    head.length = Some(
                        value
                            .parse()
                            .map_err(|_| format!("the TSA sent a bad Content-Length {value:?}"))?,
                    )
                }
                "transfer-encoding" => head.chunked = value.contains("chunked"),
                _ => {}
            }
        }
        return Ok(Some(head));
    }
}

/// Whether `raw` holds a whole answer by its Content-Length or chunks, or
/// a head that is not HTTP (no need to wait for more).
fn complete(raw: &[u8]) -> bool {
    match parse_head(raw) {
        Ok(Some(head)) if head.chunked => dechunk(&raw[head.end..]).is_ok(),
        Ok(Some(head)) => head.length.is_some_and(|n| raw.len() - head.end >= n),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// The body of a raw HTTP answer, which must be 200 and a timestamp reply.
fn http_body(raw: &[u8]) -> Result<Vec<u8>, String> {
    let head =
        parse_head(raw)?.ok_or("the TSA closed the connection before a complete HTTP answer")?;
    if head.code != 200 {
        return Err(format!("the TSA answered {}", head.status));
    }
    // The draft's name, which some old TSAs still send, is accepted too.
    if head.content_type != REPLY_TYPE && head.content_type != "application/timestamp-response" {
        return Err(format!(
            "the TSA answered with Content-Type {:?}, not {REPLY_TYPE}",
            head.content_type
        ));
    }
    let rest = &raw[head.end..];
    match (head.chunked, head.length) {
        (true, _) => dechunk(rest),
        (false, Some(n)) => Ok(rest
            .get(..n)
            .ok_or("the TSA's answer is shorter than its Content-Length")?
            .to_vec()),
        (false, None) => Ok(rest.to_vec()),
    }
}

/// The body of a chunked transfer (RFC 9112 7.1); trailers are ignored.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "the TSA's chunked answer is incomplete or malformed".to_string();
    let mut body = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").ok_or_else(bad)?;
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| bad())?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad())?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or_else(bad)?);
        rest = rest
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or_else(bad)?;
    }
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---- trust -------------------------------------------------------------------

/// The certificates a timestamp's TSA must chain to: root or intermediate
/// CAs, or the TSA's own certificate to pin it.
#[derive(Debug, Clone)]
pub struct Trust {
    certs: Vec<Certificate>,
}

impl Trust {
    /// Read the PEM certificates of `path` (text between them is ignored).
    /// A file without a certificate is an input error.
    pub fn load(path: &Path) -> Result<Trust> {
        let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let certs =
            parse_pem(&pem).map_err(|m| Error::input(format!("{}: {m}", path.display())))?;
        Ok(Trust { certs })
    }

    /// The subjects of the certificates, RFC 4514 style.
    pub fn subjects(&self) -> Vec<String> {
        self.certs
            .iter()
            .map(|c| c.tbs_certificate.subject.to_string())
            .collect()
    }
}

/// Every `CERTIFICATE` block of a PEM file; at least one.
fn parse_pem(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut certs = Vec::new();
    let mut rest = pem;
    while let Some(start) = find(rest, BEGIN) {
        let len = find(&rest[start..], END).ok_or_else(|| {
            format!(
                "certificate {} has no END CERTIFICATE line",
                certs.len() + 1
            )
        })? + END.len();
        let cert = Certificate::from_pem(&rest[start..start + len]).map_err(|e| {
            format!(
                "certificate {} is not a valid X.509 certificate: {e}",
                certs.len() + 1
            )
        })?;
        certs.push(cert);
        rest = &rest[start + len..];
    }
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into());
    }
    Ok(certs)
}

// ---- verifying a timestamp ---------------------------------------------------

/// What a verified timestamp says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// genTime: when the TSA stamped, in UTC, fractions of a second kept.
    pub time: OffsetDateTime,
    /// The subject of the TSA's certificate (RFC 4514 style); from the
    /// token's `tsa` name in [`stamp_time`] when the token carries no
    /// certificate.
    pub tsa: String,
    /// The token's serial number, in hex.
    pub serial: String,
}

/// Verify a TimeStampResp (or a bare TimeStampToken) over `covered` against
/// the certificates of `trust`; the module documentation says what is and is
/// not checked. The error is a one-line reason.
pub fn verify(tsr: &[u8], covered: &[u8], trust: &Trust) -> Result<Stamp, String> {
    let token = open(tsr)?;
    check_imprint(&token.tst, covered)?;
    let (si, hash) = signer_info(&token)?;
    let signer = token
        .certs
        .iter()
        .chain(&trust.certs)
        .find(|c| signer_matches(&si.sid, c))
        .ok_or(
            "the TSA certificate is neither in the token nor in the trusted certificates file",
        )?;
    check_signature(
        &signer.tbs_certificate.subject_public_key_info,
        &si.signature_algorithm.oid,
        Some(hash),
        &token.signed_attrs,
        si.signature.as_bytes(),
    )
    .map_err(|e| format!("the timestamp's signature {e}"))?;
    check_ess(si, signer)?;
    check_tsa_certificate(signer, token.time)?;
    check_chain(signer, &token.certs, trust, token.time)?;
    Ok(stamp(&token, Some(signer)))
}

/// What a TimeStampResp (or bare token) says, without checking it: for
/// showing a stamp. Only the structure is checked; [`verify`] checks the rest.
pub fn stamp_time(tsr: &[u8]) -> Result<Stamp, String> {
    let token = open(tsr)?;
    let signer = token
        .signed
        .signer_infos
        .0
        .iter()
        .next()
        .and_then(|si| token.certs.iter().find(|c| signer_matches(&si.sid, c)));
    Ok(stamp(&token, signer))
}

/// The [`Stamp`] of a token, naming `signer` or else the token's `tsa`.
fn stamp(token: &Token, signer: Option<&Certificate>) -> Stamp {
    let tsa = match signer {
        Some(cert) => cert.tbs_certificate.subject.to_string(),
        None => match token
            .tst
            .tsa
            .as_ref()
            .map(|a| a.to_der().and_then(|d| GeneralName::from_der(&d)))
        {
            Some(Ok(GeneralName::DirectoryName(name))) => name.to_string(),
            Some(Ok(GeneralName::DnsName(name))) => name.to_string(),
            Some(Ok(GeneralName::UniformResourceIdentifier(uri))) => uri.to_string(),
            _ => "(the token names no TSA)".to_string(),
        },
    };
    let serial = token.tst.serial_number.as_bytes();
    let first = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    Stamp {
        time: token.time,
        tsa,
        serial: hex::encode(&serial[first..]),
    }
}

/// A timestamp token taken apart: what the checks read.
struct Token {
    signed: SignedData,
    /// The signed attributes as the token carries them, tagged as the SET OF
    /// that is signed (RFC 5652 5.4).
    signed_attrs: Vec<u8>,
    /// The TSTInfo as the token carries it: the message-digest covers it.
    tst_der: Vec<u8>,
    tst: TstInfo,
    /// genTime.
    time: OffsetDateTime,
    /// The certificates the token carries.
    certs: Vec<Certificate>,
}

/// Take a TimeStampResp or a bare token apart: SignedData, one signer,
/// TSTInfo of version 1, genTime.
fn open(tsr: &[u8]) -> Result<Token, String> {
    let info = token_info(tsr)?;
    if info.content_type != ID_SIGNED_DATA {
        return Err("the timestamp token is not CMS SignedData".into());
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("the timestamp token is not valid CMS SignedData: {e}"))?;
    let encap = &signed.encap_content_info;
    let content = encap
        .econtent
        .as_ref()
        .filter(|c| c.tag() == Tag::OctetString);
    let tst_der = match (encap.econtent_type == ID_CT_TST_INFO, content) {
        (true, Some(c)) => c.value().to_vec(),
        _ => return Err("the timestamp token does not hold a TSTInfo".into()),
    };
    let tst = TstInfo::from_der(&tst_der)
        .map_err(|e| format!("the timestamp's TSTInfo is not valid: {e}"))?;
    if tst.version != 1 {
        return Err(format!(
            "the timestamp's TSTInfo has version {}, not 1",
            tst.version
        ));
    }
    let time = parse_gen_time(&tst.gen_time)?;
    let signed_attrs = raw_signed_attrs(&info.content)?;
    let certs = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(cert) => Some(cert.clone()),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    Ok(Token {
        signed,
        signed_attrs,
        tst_der,
        tst,
        time,
        certs,
    })
}

/// The token of a TimeStampResp the TSA granted, or `tsr` as a bare token.
fn token_info(tsr: &[u8]) -> Result<ContentInfo, String> {
    match TimeStampResp::from_der(tsr) {
        Ok(resp) => {
            granted(&resp.status)?;
            resp.time_stamp_token
                .ok_or_else(|| "the TSA granted the timestamp but sent no token".to_string())
        }
        Err(e) => ContentInfo::from_der(tsr).map_err(|_| {
            format!("not an RFC 3161 timestamp (neither a TimeStampResp nor a token): {e}")
        }),
    }
}

/// Status 0 (granted) or 1 (granted with modifications), or why not.
fn granted(status: &PkiStatusInfo) -> Result<(), String> {
    if status.status <= 1 {
        return Ok(());
    }
    let name = STATUS_NAMES
        .get(usize::from(status.status))
        .unwrap_or(&"unknown");
    let mut why = format!(
        "the TSA did not grant the timestamp: status {} ({name})",
        status.status
    );
    if let Some(bits) = &status.fail_info {
        let set: Vec<bool> = bits.bits().collect();
        for (bit, name) in FAILURE_BITS {
            if set.get(bit) == Some(&true) {
                why.push_str(&format!(", {name}"));
            }
        }
    }
    for text in status.status_string.iter().flatten() {
        let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        why.push_str(&format!(": {text}"));
    }
    Err(why)
}

/// The signed attributes exactly as the token carries them, re-tagged as a
/// SET OF: decoding sorts a SET OF, so re-encoding the decoded attributes
/// could differ from the bytes the TSA signed.
fn raw_signed_attrs(signed_data: &Any) -> Result<Vec<u8>, String> {
    let bad = |e: der::Error| format!("the timestamp token's SignedData is not valid: {e}");
    let fields = elements(signed_data.value()).map_err(bad)?;
    let infos = fields
        .last()
        .filter(|f| f.tag() == Tag::Set)
        .ok_or("the timestamp token has no signer")?;
    let infos = elements(infos.value()).map_err(bad)?;
    let [info] = infos.as_slice() else {
        return Err(format!(
            "the timestamp token has {} signers, not one",
            infos.len()
        ));
    };
    let attrs_tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N0,
    };
    // version, sid, digestAlgorithm, then [0] signedAttrs.
    let fields = elements(info.value()).map_err(bad)?;
    let attrs = fields
        .get(3)
        .filter(|f| f.tag() == attrs_tag)
        .ok_or("the timestamp token has no signed attributes")?;
    AnyRef::new(Tag::Set, attrs.value())
        .and_then(|a| a.to_der())
        .map_err(bad)
}

/// The DER elements of a constructed value's contents.
fn elements(bytes: &[u8]) -> der::Result<Vec<AnyRef<'_>>> {
    let mut reader = SliceReader::new(bytes)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(AnyRef::decode(&mut reader)?);
    }
    Ok(out)
}

/// genTime (RFC 3161 2.4.2): `YYYYMMDDhhmmss[.f]Z`, the fraction without
/// trailing zeros, up to nanoseconds.
fn parse_gen_time(any: &Any) -> Result<OffsetDateTime, String> {
    let s = any.value();
    let bad = || {
        format!(
            "the timestamp's genTime {:?} is not a valid GeneralizedTime",
            String::from_utf8_lossy(s)
        )
    };
    if any.tag() != Tag::GeneralizedTime {
        return Err(bad());
    }
    let number = |d: &[u8]| {
        d.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = |frac: &[u8]| match frac {
        [] => Some(0),
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) && digits.last() != Some(&b'0') => {
            Some(number(digits)? * 10u32.pow(9 - digits.len() as u32))
        }
        _ => None,
    };
    let parse = || {
        let (whole, frac) = s.strip_suffix(b"Z")?.split_at_checked(14)?;
        let field = |r: Range<usize>| number(&whole[r]);
        let month = time::Month::try_from(u8::try_from(field(4..6)?).ok()?).ok()?;
        let date =
            time::Date::from_calendar_date(field(0..4)? as i32, month, field(6..8)? as u8).ok()?;
        let t = time::Time::from_hms_nano(
            field(8..10)? as u8,
            field(10..12)? as u8,
            field(12..14)? as u8,
            nanos(frac)?,
        )
        .ok()?;
        Some(date.with_time(t).assume_utc())
    };
    parse().ok_or_else(bad)
}

/// The imprint is a hash of `covered`.
fn check_imprint(tst: &TstInfo, covered: &[u8]) -> Result<(), String> {
    let alg = &tst.message_imprint.hash_algorithm.oid;
    let hash = Hash::from_oid(alg).ok_or_else(|| {
        format!("the timestamp's imprint uses the hash {alg}, not SHA-256, SHA-384 or SHA-512")
    })?;
    if tst.message_imprint.hashed_message.as_bytes() != hash.digest(covered) {
        return Err(OTHER_BYTES.into());
    }
    Ok(())
}

/// The one SignerInfo and its digest, with the content-type and
/// message-digest attributes that bind it to the TSTInfo.
fn signer_info(token: &Token) -> Result<(&SignerInfo, Hash), String> {
    let [si] = token.signed.signer_infos.0.as_slice() else {
        return Err("the timestamp token must have exactly one signer".into());
    };
    let alg = &si.digest_alg.oid;
    let hash = Hash::from_oid(alg).ok_or_else(|| {
        format!("the timestamp's signer uses the digest {alg}, not SHA-256, SHA-384 or SHA-512")
    })?;
    let content_type: Oid = attribute(si, ID_CONTENT_TYPE)?
        .decode_as()
        .map_err(|e| format!("the timestamp's content-type attribute is not valid: {e}"))?;
    if content_type != ID_CT_TST_INFO {
        return Err("the timestamp's signed content-type is not id-ct-TSTInfo".into());
    }
    let digest: OctetString = attribute(si, ID_MESSAGE_DIGEST)?
        .decode_as()
        .map_err(|e| format!("the timestamp's message-digest attribute is not valid: {e}"))?;
    if digest.as_bytes() != hash.digest(&token.tst_der) {
        return Err("the timestamp's signed message-digest does not match its TSTInfo (the token was altered)".into());
    }
    Ok((si, hash))
}

/// The value of the signed attribute `oid`, which must appear once with one value.
fn attribute(si: &SignerInfo, oid: Oid) -> Result<&Any, String> {
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or("the timestamp token has no signed attributes")?;
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let once = || format!("the timestamp's signed attribute {oid} must appear once with one value");
    match (found.next(), found.next()) {
        (None, _) => Err(format!("the timestamp token has no signed attribute {oid}")),
        (Some(a), None) => match a.values.as_slice() {
            [value] => Ok(value),
            _ => Err(once()),
        },
        _ => Err(once()),
    }
}

/// The certificate `sid` names.
fn signer_matches(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == cert.tbs_certificate.issuer
                && ias.serial_number == cert.tbs_certificate.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(skid) => extension(cert, ID_CE_SUBJECT_KEY_ID)
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|k| k.as_bytes() == skid.0.as_bytes()),
    }
}

/// The ESS signing-certificate attribute (v2, else v1) names `signer`, so
/// the signer cannot be swapped for another certificate of the same key.
fn check_ess(si: &SignerInfo, signer: &Certificate) -> Result<(), String> {
    let cert = signer
        .to_der()
        .map_err(|e| format!("the TSA certificate cannot be encoded: {e}"))?;
    let (value, default) = match attribute(si, ID_SIGNING_CERT_V2) {
        Ok(v2) => (v2, None),
        Err(_) => (
            attribute(si, ID_SIGNING_CERT)
                .map_err(|_| "the timestamp has no ESS signing-certificate attribute naming the TSA certificate")?,
            Some(sha1::Sha1::digest(&cert).to_vec()),
        ),
    };
    let sc: SigningCertificate = value.decode_as().map_err(|e| {
        format!("the timestamp's ESS signing-certificate attribute is not valid: {e}")
    })?;
    let first = sc
        .certs
        .first()
        .ok_or("the timestamp's ESS signing-certificate attribute is empty")?;
    let expected = match (&first.hash_algorithm, default) {
        (None, Some(sha1)) => sha1,
        (None, None) => Hash::Sha256.digest(&cert),
        (Some(alg), _) => Hash::from_oid(&alg.oid)
            .ok_or_else(|| {
                format!(
                    "the timestamp's ESS certificate hash {} is not supported",
                    alg.oid
                )
            })?
            .digest(&cert),
    };
    if first.cert_hash.as_bytes() != expected {
        return Err("the timestamp's ESS signing-certificate attribute names another certificate than the signer's".into());
    }
    Ok(())
}

/// The signer's certificate is a TSA's: extendedKeyUsage critical and
/// timeStamping alone (RFC 3161 2.3), valid at genTime.
fn check_tsa_certificate(signer: &Certificate, at: OffsetDateTime) -> Result<(), String> {
    let subject = &signer.tbs_certificate.subject;
    let ext = extension(signer, ID_CE_EXT_KEY_USAGE).ok_or_else(|| {
        format!("the TSA certificate {subject} has no extendedKeyUsage timeStamping")
    })?;
    let usages = ExtendedKeyUsage::from_der(ext.extn_value.as_bytes()).map_err(|e| {
        format!("the TSA certificate {subject} has an invalid extendedKeyUsage: {e}")
    })?;
    if usages.0 != [ID_KP_TIME_STAMPING] {
        return Err(format!(
            "the TSA certificate {subject}'s extendedKeyUsage is not timeStamping alone"
        ));
    }
    if !ext.critical {
        return Err(format!(
            "the TSA certificate {subject}'s extendedKeyUsage is not marked critical"
        ));
    }
    valid_at(signer, at)
}

/// `signer` chains to a certificate of `trust`: through CA certificates the
/// token carries, each link's signature checked, every certificate valid at
/// `at`. A certificate only the token carries is never an anchor.
fn check_chain(
    signer: &Certificate,
    carried: &[Certificate],
    trust: &Trust,
    at: OffsetDateTime,
) -> Result<(), String> {
    let mut cert = signer;
    for _ in 0..MAX_CHAIN {
        if trust.certs.contains(cert) {
            return Ok(());
        }
        if let Some(anchor) = trust.certs.iter().find(|a| issued_by(cert, a)) {
            return valid_at(anchor, at);
        }
        cert = carried
            .iter()
            .find(|c| *c != cert && is_ca(c) && issued_by(cert, c))
            .ok_or("the TSA certificate does not chain to a trusted CA")?;
        valid_at(cert, at)?;
    }
    Err(format!(
        "the TSA certificate chain is longer than {MAX_CHAIN} certificates"
    ))
}

/// `issuer` issued `cert`: names match and `issuer`'s key verifies the signature.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    let tbs = &cert.tbs_certificate;
    tbs.issuer == issuer.tbs_certificate.subject
        && tbs.signature == cert.signature_algorithm
        && tbs
            .to_der()
            .ok()
            .zip(cert.signature.as_bytes())
            .is_some_and(|(der, sig)| {
                let key = &issuer.tbs_certificate.subject_public_key_info;
                check_signature(key, &cert.signature_algorithm.oid, None, &der, sig).is_ok()
            })
}

/// basicConstraints says CA.
fn is_ca(cert: &Certificate) -> bool {
    extension(cert, ID_CE_BASIC_CONSTRAINTS)
        .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|bc| bc.ca)
}

/// The extension `oid` of `cert`.
fn extension(cert: &Certificate, oid: Oid) -> Option<&x509_cert::ext::Extension> {
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
}

/// `cert` was valid at `at`.
fn valid_at(cert: &Certificate, at: OffsetDateTime) -> Result<(), String> {
    let validity = &cert.tbs_certificate.validity;
    let instant = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs())
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    };
    let subject = &cert.tbs_certificate.subject;
    let (Some(from), Some(until)) = (instant(validity.not_before), instant(validity.not_after))
    else {
        return Err(format!(
            "the certificate {subject} has a validity decom cannot read"
        ));
    };
    if at < from || at > until {
        return Err(format!(
            "the certificate {subject} was not valid at the timestamp's time {} (valid {} to {})",
            rfc3339(at),
            rfc3339(from),
            rfc3339(until)
        ));
    }
    Ok(())
}

/// A time as RFC 3339, for messages.
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Check `sig` over `msg` with the key of `spki` under the signature
/// algorithm `alg`; `digest` is the hash when `alg` names none (CMS's
/// rsaEncryption). The error completes "the … signature …".
fn check_signature(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &Oid,
    digest: Option<Hash>,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let (kind, hash) = SIGNATURE_ALGORITHMS
        .iter()
        .find(|(oid, _, _)| oid == alg)
        .map(|(_, kind, hash)| (*kind, hash.or(digest)))
        .ok_or_else(|| format!("uses the algorithm {alg}, which decom does not check"))?;
    let hash = hash.ok_or_else(|| format!("uses {alg} without naming a hash"))?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or("names a key that cannot be read")?;
    let prehash = hash.digest(msg);
    match kind {
        KeyKind::Ec if spki.algorithm.oid == ID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<Oid>().ok());
            if curve != Some(SECP256R1) {
                return Err(
                    "is made with an EC key not on P-256, which decom does not check".into(),
                );
            }
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map_err(|_| "names an invalid P-256 key")?;
            let sig = p256::ecdsa::Signature::from_der(sig)
                .map_err(|_| "is not a valid ECDSA signature")?;
            key.verify_prehash(&prehash, &sig)
                .map_err(|_| NO_MATCH.to_string())
        }
        KeyKind::Rsa if spki.algorithm.oid == RSA_ENCRYPTION => check_rsa(key, hash, &prehash, sig),
        _ => Err(format!(
            "uses {alg}, which does not fit the key ({})",
            spki.algorithm.oid
        )),
    }
}

/// An RSA PKCS#1 v1.5 signature over `prehash` (the `hash` digest), with
/// a key of 2048 to 8192 bits. rsa 0.9 is given the digest of decom's sha2.
fn check_rsa(key: &[u8], hash: Hash, prehash: &[u8], sig: &[u8]) -> Result<(), String> {
    use rsa::traits::PublicKeyParts;
    let parts = rsa::pkcs1::RsaPublicKey::from_der(key)
        .map_err(|_| "names an RSA key that cannot be read")?;
    let n = rsa::BigUint::from_bytes_be(parts.modulus.as_bytes());
    let e = rsa::BigUint::from_bytes_be(parts.public_exponent.as_bytes());
    let key = rsa::RsaPublicKey::new_with_max_size(n, e, 8192)
        .map_err(|e| format!("names an unusable RSA key: {e}"))?;
    if key.size() < 256 {
        return Err("is made with an RSA key shorter than 2048 bits".into());
    }
    let scheme = rsa::Pkcs1v15Sign {
        hash_len: Some(prehash.len()),
        prefix: hash.digest_info().into(),
    };
    key.verify(scheme, prehash, sig)
        .map_err(|_| NO_MATCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::net::TcpListener;

    /// The bytes both fixture tokens stamp.
    const COVERED: &[u8] = b"an armored SSH signature, as stored\n";

    // Fixtures made once with openssl 3.0: two PKIs valid for 100 years
    // (2026-12-06 to 2126-11-12; the checks use genTime, not the clock, so
    // they hold past that too), each a root CA that issued a TSA certificate
    // (extendedKeyUsage critical timeStamping), with `ts.cnf` as
    // scripts/tsa.sh writes it; `openssl ts -query -data covered -sha256
    // -cert -out q.tsq` (-sha384 for RSA) and `openssl ts -reply -config
    // ts.cnf -queryfile q.tsq -out r.tsr`, then base64.
    //
    // EC: P-256, genTime with milliseconds, SHA-256 imprint and digest.
    const EC_TSR: &str = "
MIIF2jADAgEAMIIF0QYJKoZIhvcNAQcCoIIFwjCCBb4CAQMxDzANBglghkgBZQMEAgEFADCBvgYL
KoZIhvcNAQkQAQSgga4EgaswgagCAQEGCysGAQQBho0fmFkBMDEwDQYJYIZIAWUDBAIBBQAEICjO
tQlVRm4Ehwf+TEItn0/bhW7aoYfuw/1HLzccDSKLAgIxYhgTMjAyNjEyMDYxNTUzMjEuMjUyWjAD
AgEBAggR/GKA3LqcJ6A7pDkwNzEUMBIGA1UECgwLZGVjb20gdGVzdHMxHzAdBgNVBAMMFmRlY29t
IGZpeHR1cmUgVFNBIChlYymgggONMIIB2zCCAYKgAwIBAgICIAIwCgYIKoZIzj0EAwIwOzEUMBIG
A1UECgwLZGVjb20gdGVzdHMxIzAhBgNVBAMMGmRlY29tIGZpeHR1cmUgcm9vdCBDQSAoZWMpMCAX
DTI2MTIwNjE1NTMyMVoYDzIxMjYxMTEyMTU1MzIxWjA3MRQwEgYDVQQKDAtkZWNvbSB0ZXN0czEf
MB0GA1UEAwwWZGVjb20gZml4dHVyZSBUU0EgKGVjKTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA
BBERU4YPlOX82ZSpjG7cDqr9Yy5tbYluXZbLBVqSTSYbMFN18GJbx2b4z/dEIgkSAZWpomYgaRcS
7MNdYvE9enOjeDB2MAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgbAMBYGA1UdJQEB/wQMMAoG
CCsGAQUFBwMIMB0GA1UdDgQWBBSTtCQllXumTU/94TPQxEH5CDDbxjAfBgNVHSMEGDAWgBTghGMh
hCGTo6W1DS5VJ5YLt6swFDAKBggqhkjOPQQDAgNHADBEAiAtHf3FzCTEkWuxXQVIPvS2a8nY1Nsz
s6Fn+jgxA2u2TgIgMN+yh49SFetsV9DGqNahdR1E2JDa86xLLSvrCW6lsJ8wggGqMIIBUKADAgEC
AgIQATAKBggqhkjOPQQDAjA7MRQwEgYDVQQKDAtkZWNvbSB0ZXN0czEjMCEGA1UEAwwaZGVjb20g
Zml4dHVyZSByb290IENBIChlYykwIBcNMjYxMjA2MTU1MzIxWhgPMjEyNjExMTIxNTUzMjFaMDsx
FDASBgNVBAoMC2RlY29tIHRlc3RzMSMwIQYDVQQDDBpkZWNvbSBmaXh0dXJlIHJvb3QgQ0EgKGVj
KTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABI01Kf4m1AK03evnLKKZHBWY9kqK42bs6/U3M2qo
s02d2yOf0+5n4WtHRobMyW3e69nYm+61iBrErwtM7QVvgWGjQjBAMA8GA1UdEwEB/wQFMAMBAf8w
DgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBTghGMhhCGTo6W1DS5VJ5YLt6swFDAKBggqhkjOPQQD
AgNIADBFAiAlYPIZI6cuFkHQ7kVvOjkr1m/9Ta5CtxqVg+q4lVilLAIhAMMQwJY1ccHLRnwmmnL+
SjNoXPFMMPlcTyVJa9soMJJcMYIBVDCCAVACAQEwQTA7MRQwEgYDVQQKDAtkZWNvbSB0ZXN0czEj
MCEGA1UEAwwaZGVjb20gZml4dHVyZSByb290IENBIChlYykCAiACMA0GCWCGSAFlAwQCAQUAoIGk
MBoGCSqGSIb3DQEJAzENBgsqhkiG9w0BCRABBDAcBgkqhkiG9w0BCQUxDxcNMjYxMjA2MTU1MzIx
WjAvBgkqhkiG9w0BCQQxIgQgBiDyMF3Oto6gBdayMIeddW1QRHunN+FRb5lplMD8ClkwNwYLKoZI
hvcNAQkQAi8xKDAmMCQwIgQgQ2FXO1jiwSFfioC92u9fQQCtjhReMjc3/ozRyDUZq8cwCgYIKoZI
zj0EAwIERjBEAiAiTPJDOKt0k4hMKGbXE18fLCRnxXo10Uc1SN+DrJAOagIgcj+IhA/iIP/DI5cS
TbogBeTVgECEPLmKsgSpWp2xQC0=";
    const EC_CA: &str = "
-----BEGIN CERTIFICATE-----
MIIBqjCCAVCgAwIBAgICEAEwCgYIKoZIzj0EAwIwOzEUMBIGA1UECgwLZGVjb20g
dGVzdHMxIzAhBgNVBAMMGmRlY29tIGZpeHR1cmUgcm9vdCBDQSAoZWMpMCAXDTI2
MTIwNjE1NTMyMVoYDzIxMjYxMTEyMTU1MzIxWjA7MRQwEgYDVQQKDAtkZWNvbSB0
ZXN0czEjMCEGA1UEAwwaZGVjb20gZml4dHVyZSByb290IENBIChlYykwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAASNNSn+JtQCtN3r5yyimRwVmPZKiuNm7Ov1NzNq
qLNNndsjn9PuZ+FrR0aGzMlt3uvZ2JvutYgaxK8LTO0Fb4Fho0IwQDAPBgNVHRMB
Af8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQU4IRjIYQhk6OltQ0u
VSeWC7erMBQwCgYIKoZIzj0EAwIDSAAwRQIgJWDyGSOnLhZB0O5Fbzo5K9Zv/U2u
QrcalYPquJVYpSwCIQDDEMCWNXHBy0Z8Jppy/kozaFzxTDD5XE8lSWvbKDCSXA==
-----END CERTIFICATE-----";
    /// The genTime EC_TSR carries, as its bytes.
    const EC_GEN_TIME: &[u8] = b"20261206155321.252Z";
    // RSA 2048, whole seconds, SHA-384 imprint, SHA-512 digest, the signer's
    // signature algorithm rsaEncryption (so the digest names the hash).
    const RSA_TSR: &str = "
MIIJ5TADAgEAMIIJ3AYJKoZIhvcNAQcCoIIJzTCCCckCAQMxDzANBglghkgBZQMEAgMFADCBzAYL
KoZIhvcNAQkQAQSggbwEgbkwgbYCAQEGCysGAQQBho0fmFkBMEEwDQYJYIZIAWUDBAICBQAEMC1T
xIb2tDcHgAL32QUznD+y2kXtvbF10m2LnYweA67AGx6Y5QGHg7Mx/VeVsYMSawICMWIYDzIwMjYx
MjA2MTU1MzIyWjADAgEBAgkAtQpKf2URRtWgPKQ6MDgxFDASBgNVBAoMC2RlY29tIHRlc3RzMSAw
HgYDVQQDDBdkZWNvbSBmaXh0dXJlIFRTQSAocnNhKaCCBqowggNqMIICUqADAgECAgIgAjANBgkq
hkiG9w0BAQsFADA8MRQwEgYDVQQKDAtkZWNvbSB0ZXN0czEkMCIGA1UEAwwbZGVjb20gZml4dHVy
ZSByb290IENBIChyc2EpMCAXDTI2MTIwNjE1NTMyMloYDzIxMjYxMTEyMTU1MzIyWjA4MRQwEgYD
VQQKDAtkZWNvbSB0ZXN0czEgMB4GA1UEAwwXZGVjb20gZml4dHVyZSBUU0EgKHJzYSkwggEiMA0G
CSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQC299oa2FVFu5J5bvj7lGn5/TIVSoJahPqh3x0WAZ+/
KyfO452Ua1DuZta2jyAjpB+YM3g4P1O3dpCWqBSCW9h6w/Ll2KZDku9i+qUrLnijTy3A9q72M2zw
gBUOzE3uYZJjgvf0CxBDx9Ouzsh4Y8ZS9PPG2Fj8ESge04gggQJs260uAv7Z9wVPs9su1BKzI1g9
UCcRuj9ijXXaKH8ZRm51YJUIMuFaPXCEqdVFgcbCvV1AE4rS8erKJAyjXFGuM05TGJ7iehTVgU6v
iFgejhaG+i6Mur5FJT6M3VwU7oBwSsQOAvweTwxT421beOn4YuNcKcwyIqoYk7M4R+UH4Lj/AgMB
AAGjeDB2MAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgbAMBYGA1UdJQEB/wQMMAoGCCsGAQUF
BwMIMB0GA1UdDgQWBBSE0fXQ2qtHIyIfLUYmbfbAd7LafTAfBgNVHSMEGDAWgBT9LZ12XApbnAnS
AgHiIqWsp875ATANBgkqhkiG9w0BAQsFAAOCAQEAVhcA1pwBlS0A7IgqADjUc78tmlJqlcAszWyZ
a0sSnYcVC/O9IhC7j3ddAO/2q4s95fDien+me/mYMSf+cDwTLxRqRsX4aYxnPKOxVqXospk1wQHp
wA6VGQpPUixSsTqLWcOFhtSuPjNgNAKR9op35wVGfyWqLNe7y7LS1cun+DLq/6r1y2eC9jYQ9eyE
HP+MjWrT9sev8BYpQf5yA2Os1eXo+kvPXlcigNK+ZJ5WcDOXTDW5rk6pi9UU/9WxqPRMMkvlTDOR
RX5kUbD4PAFZR3jmNOyP3QZS3w7nA3TBVGuWZaE/UvYa7ZcvfDql1AD2HbrAKLR+hEmLGJBAidTU
oDCCAzgwggIgoAMCAQICAhABMA0GCSqGSIb3DQEBCwUAMDwxFDASBgNVBAoMC2RlY29tIHRlc3Rz
MSQwIgYDVQQDDBtkZWNvbSBmaXh0dXJlIHJvb3QgQ0EgKHJzYSkwIBcNMjYxMjA2MTU1MzIyWhgP
MjEyNjExMTIxNTUzMjJaMDwxFDASBgNVBAoMC2RlY29tIHRlc3RzMSQwIgYDVQQDDBtkZWNvbSBm
aXh0dXJlIHJvb3QgQ0EgKHJzYSkwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDSVs0F
45CYV+pJ96BkLhSUhWYVKhKwT+m9dAStpQ0bkMR3P28QUhtgjHWnFRz27ao9p2EdI0pkZRseIy+Z
K08YZRIpytaN5rt+df2Ke2ZfMKj4gzwMg0qYyUTscVuO/LT69YDjkace5Li8EXqt1Fj7QfClFmTT
OICR126o6I0BTq29S5Eltq8/XNxeGP04IAM/l1sXd7+PsY/EEZ6yogIg3lIAYTPcWj6TI3HKMxNw
1YN/zJLAoMjQpfjq28+c/tgiD3mIHWae6bB6l795dAQ3i2T6Cu6EtFY7nhFu8SABF4snCr3UcZl3
wJFQtu1YdFwfEGoAGBXi++77fhbzRqGDAgMBAAGjQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0P
AQH/BAQDAgEGMB0GA1UdDgQWBBT9LZ12XApbnAnSAgHiIqWsp875ATANBgkqhkiG9w0BAQsFAAOC
AQEAGRwieH3+shlHIhkh1Mch5V3L+L7w+6Rbba2Ig6f6Rm2hvy5DIhysn6fxGEEBPCDZ+09QYTDj
dSlGyrKDSt6RfQY9ygthgIbrvVl4WKAP6VZ737RjZZMnkyXq6bT+N0b47OxVfo9iyL0eYwC8+TrY
NuD6RW1eo/uJaKCJLnelHgfiSzI3kvmMWqExEnGDY/6JnNO1g1bHmNbQFMhILucxRFwXFV6Q11eC
L7EqHXG0j8X1cnbJWCmmyPKbMOuyZmu2xE0WqUfIm6MZiHjR7DwR7j3/liLW0AuyXftijbWCwiKn
eZQesuQtormy1VcsqbAk04t05tONKX8NsBFQL34LeTGCAjQwggIwAgEBMEIwPDEUMBIGA1UECgwL
ZGVjb20gdGVzdHMxJDAiBgNVBAMMG2RlY29tIGZpeHR1cmUgcm9vdCBDQSAocnNhKQICIAIwDQYJ
YIZIAWUDBAIDBQCggcQwGgYJKoZIhvcNAQkDMQ0GCyqGSIb3DQEJEAEEMBwGCSqGSIb3DQEJBTEP
Fw0yNjEyMDYxNTUzMjJaMDcGCyqGSIb3DQEJEAIvMSgwJjAkMCIEILReSCJiJspUjeyw8FNj7kF7
9bRw7aaV0o4yce0ODJ48ME8GCSqGSIb3DQEJBDFCBED+tepF1FmrU4qduniOn9qPVLoARfxpiLMc
N/ddorCPTypH8kVEDb/WPxnqYzyJXp848Z+X5SBtlxB7+vNprkqxMA0GCSqGSIb3DQEBAQUABIIB
ACL33tZf6dSCQDCgjxOA2RugG1hg7Dn/67QP/Bbxz6qvj1U1ipKF/HVjZ2Xy9BDCfVYtcbnwsbRq
SPIVcuNiZFbmxbqW3jLUwkCy8/U+K98wHHGFO6KbcpT4vvc7AiLCrRHcsWOL6EW/XbzjniIAlYOq
ET4+0KbVzNhVolFSbpcaB5U3QlXDlL+hRJUItWsgo2M2RtzYPiyS4BU4lCuU+T1HzvqYUzZ7LWNW
ZIBv2k+UQ7DSuoZlQAmzMXN/cHDzP1TvHz9TJB+ngtxplIS1qmXTgGYWdrIyBRHDdqJc4grNDBWp
+nkuYJhdgZuDIIhWdVd5H4OMskvyFhU1OyV5HOM=";
    const RSA_CA: &str = "
-----BEGIN CERTIFICATE-----
MIIDODCCAiCgAwIBAgICEAEwDQYJKoZIhvcNAQELBQAwPDEUMBIGA1UECgwLZGVj
b20gdGVzdHMxJDAiBgNVBAMMG2RlY29tIGZpeHR1cmUgcm9vdCBDQSAocnNhKTAg
Fw0yNjEyMDYxNTUzMjJaGA8yMTI2MTExMjE1NTMyMlowPDEUMBIGA1UECgwLZGVj
b20gdGVzdHMxJDAiBgNVBAMMG2RlY29tIGZpeHR1cmUgcm9vdCBDQSAocnNhKTCC
ASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBANJWzQXjkJhX6kn3oGQuFJSF
ZhUqErBP6b10BK2lDRuQxHc/bxBSG2CMdacVHPbtqj2nYR0jSmRlGx4jL5krTxhl
EinK1o3mu351/Yp7Zl8wqPiDPAyDSpjJROxxW478tPr1gOORpx7kuLwReq3UWPtB
8KUWZNM4gJHXbqjojQFOrb1LkSW2rz9c3F4Y/TggAz+XWxd3v4+xj8QRnrKiAiDe
UgBhM9xaPpMjccozE3DVg3/MksCgyNCl+Orbz5z+2CIPeYgdZp7psHqXv3l0BDeL
ZPoK7oS0VjueEW7xIAEXiycKvdRxmXfAkVC27Vh0XB8QagAYFeL77vt+FvNGoYMC
AwEAAaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0O
BBYEFP0tnXZcClucCdICAeIipaynzvkBMA0GCSqGSIb3DQEBCwUAA4IBAQAZHCJ4
ff6yGUciGSHUxyHlXcv4vvD7pFttrYiDp/pGbaG/LkMiHKyfp/EYQQE8INn7T1Bh
MON1KUbKsoNK3pF9Bj3KC2GAhuu9WXhYoA/pVnvftGNlkyeTJerptP43Rvjs7FV+
j2LIvR5jALz5Otg24PpFbV6j+4looIkud6UeB+JLMjeS+YxaoTEScYNj/omc07WD
VseY1tAUyEgu5zFEXBcVXpDXV4IvsSodcbSPxfVydslYKabI8psw67Jma7bETRap
R8iboxmIeNHsPBHuPf+WItbQC7Jd+2KNtYLCIqd5lB6y5C2iubLVVyypsCTTi3Tm
040pfw2wEVAvfgt5
-----END CERTIFICATE-----";

    fn der(b64: &str) -> Vec<u8> {
        let text: String = b64.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("fixture base64")
    }

    fn trust(pem: &str) -> Trust {
        Trust {
            certs: parse_pem(pem.as_bytes()).expect("fixture CA"),
        }
    }

    /// The token of a response, alone (what `openssl ts -reply -token_out` writes).
    fn bare_token(tsr: &[u8]) -> Vec<u8> {
        let resp = TimeStampResp::from_der(tsr).expect("fixture response");
        resp.time_stamp_token
            .expect("token")
            .to_der()
            .expect("encode")
    }

    #[test]
    fn ec_token_verifies_with_its_milliseconds() {
        let stamp = verify(&der(EC_TSR), COVERED, &trust(EC_CA)).expect("verifies");
        assert_eq!(
            stamp.time,
            time::macros::datetime!(2026-12-06 15:53:21.252 UTC)
        );
        assert_eq!(stamp.tsa, "CN=decom fixture TSA (ec),O=decom tests");
        assert_eq!(stamp.serial, "3162");
        assert_eq!(stamp_time(&der(EC_TSR)), Ok(stamp));
    }

    #[test]
    fn rsa_token_verifies_with_sha384_imprint_and_whole_seconds() {
        let stamp = verify(&der(RSA_TSR), COVERED, &trust(RSA_CA)).expect("verifies");
        assert_eq!(stamp.time, time::macros::datetime!(2026-12-06 15:53:22 UTC));
        assert_eq!(stamp.tsa, "CN=decom fixture TSA (rsa),O=decom tests");
    }

    #[test]
    fn a_bare_token_verifies_too() {
        for (tsr, ca) in [(EC_TSR, EC_CA), (RSA_TSR, RSA_CA)] {
            assert!(verify(&bare_token(&der(tsr)), COVERED, &trust(ca)).is_ok());
        }
    }

    #[test]
    fn other_bytes_fail() {
        for (tsr, ca) in [(EC_TSR, EC_CA), (RSA_TSR, RSA_CA)] {
            let err = verify(
                &der(tsr),
                b"an armored SSH signature, as stored!",
                &trust(ca),
            );
            assert_eq!(err, Err(OTHER_BYTES.to_string()));
        }
    }

    #[test]
    fn a_flipped_signature_byte_fails() {
        for (tsr, ca) in [(EC_TSR, EC_CA), (RSA_TSR, RSA_CA)] {
            let mut bad = der(tsr);
            let n = bad.len();
            bad[n - 5] ^= 1; // inside the signature, the token's last field
            let err = verify(&bad, COVERED, &trust(ca)).expect_err("altered");
            assert!(err.starts_with("the timestamp's signature"), "{err}");
        }
    }

    #[test]
    fn an_altered_tst_info_fails() {
        let mut bad = der(EC_TSR);
        let at = find(&bad, EC_GEN_TIME).expect("genTime in the fixture");
        bad[at + 3] = b'7'; // 2026 -> 2027
        let err = verify(&bad, COVERED, &trust(EC_CA)).expect_err("altered");
        assert!(err.contains("message-digest does not match"), "{err}");
    }

    #[test]
    fn another_ca_is_not_trusted_even_if_the_token_carries_its_root() {
        for (tsr, other) in [(EC_TSR, RSA_CA), (RSA_TSR, EC_CA)] {
            let token = open(&der(tsr)).expect("fixture");
            assert!(
                token
                    .certs
                    .iter()
                    .any(|c| c.tbs_certificate.subject == c.tbs_certificate.issuer)
            );
            let err = verify(&der(tsr), COVERED, &trust(other));
            assert_eq!(
                err,
                Err("the TSA certificate does not chain to a trusted CA".to_string())
            );
        }
    }

    #[test]
    fn a_pinned_tsa_certificate_is_trusted() {
        let token = open(&der(EC_TSR)).expect("fixture");
        let tsa = token
            .certs
            .iter()
            .find(|c| !is_ca(c))
            .expect("TSA certificate")
            .clone();
        assert!(verify(&der(EC_TSR), COVERED, &Trust { certs: vec![tsa] }).is_ok());
    }

    #[test]
    fn a_token_without_certificates_needs_the_tsa_certificate_in_the_file() {
        let token = open(&der(RSA_TSR)).expect("fixture");
        let mut signed = token.signed.clone();
        signed.certificates = None; // outside the signed attributes: still valid
        let bare = ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&signed).expect("encode"),
        };
        let bare = bare.to_der().expect("encode");
        let err = verify(&bare, COVERED, &trust(RSA_CA)).expect_err("no signer certificate");
        assert!(err.contains("neither in the token nor"), "{err}");
        let mut certs = trust(RSA_CA).certs;
        certs.extend(token.certs.iter().filter(|c| !is_ca(c)).cloned());
        assert!(verify(&bare, COVERED, &Trust { certs }).is_ok());
    }

    #[test]
    fn a_refusal_says_why() {
        let resp = TimeStampResp {
            status: PkiStatusInfo {
                status: 2,
                status_string: Some(vec!["unsupported\nhash".to_string()]),
                fail_info: Some(BitString::new(7, [0x80]).expect("bits")),
            },
            time_stamp_token: None,
        };
        let err = verify(&resp.to_der().expect("encode"), COVERED, &trust(EC_CA));
        let want =
            "the TSA did not grant the timestamp: status 2 (rejection), badAlg: unsupportedhash";
        assert_eq!(err, Err(want.to_string()));
        assert!(verify(b"\x30\x03\x02\x01\x00", COVERED, &trust(EC_CA)).is_err());
        assert!(stamp_time(b"not DER").is_err());
    }

    #[test]
    fn gen_time_keeps_fractions_and_refuses_what_der_forbids() {
        let at =
            |s: &str| parse_gen_time(&Any::new(Tag::GeneralizedTime, s.as_bytes()).expect("any"));
        let t = |s: &str| {
            time::PrimitiveDateTime::parse(
                s,
                &time::format_description::well_known::Iso8601::DEFAULT,
            )
            .expect("test time")
            .assume_utc()
        };
        assert_eq!(at("20261206155321Z"), Ok(t("2026-12-06T15:53:21")));
        assert_eq!(at("20261206155321.5Z"), Ok(t("2026-12-06T15:53:21.5")));
        assert_eq!(
            at("20261206155321.123456789Z"),
            Ok(t("2026-12-06T15:53:21.123456789"))
        );
        for bad in [
            "20261206155321.50Z",
            "20261206155321.Z",
            "20261206155321",
            "2026120615532Z",
            "20261306155321Z",
            "20261206155321.1234567891Z",
            "20261206155321+0100",
            "2026120615532aZ",
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
        let utc = Any::new(Tag::UtcTime, &b"261206155321Z"[..]).expect("any");
        assert!(parse_gen_time(&utc).is_err());
    }

    #[test]
    fn trust_files() {
        let two = format!("# comment\n{EC_CA}\nsome text\n{RSA_CA}");
        let certs = parse_pem(two.as_bytes()).expect("two CAs");
        assert_eq!(certs.len(), 2);
        assert!(parse_pem(b"").is_err());
        assert!(
            parse_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
        assert!(parse_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        let missing = Trust::load(Path::new("/nonexistent/tsa-ca.pem")).expect_err("missing");
        assert!(matches!(missing, Error::Io { .. }));
        let empty = Trust::load(Path::new("/dev/null")).expect_err("empty");
        assert!(
            matches!(&empty, Error::Input(m) if m.starts_with("/dev/null: no PEM certificate")),
            "{empty}"
        );
        assert_eq!(
            trust(EC_CA).subjects(),
            ["CN=decom fixture root CA (ec),O=decom tests"]
        );
    }

    #[test]
    fn tsa_urls() {
        let ep = |host: &str, port, authority: &str, target: &str| Endpoint {
            host: host.into(),
            port,
            authority: authority.into(),
            target: target.into(),
        };
        assert_eq!(
            Endpoint::parse("http://tsa.example.org").ok(),
            Some(ep("tsa.example.org", 80, "tsa.example.org", "/"))
        );
        assert_eq!(
            Endpoint::parse("HTTP://127.0.0.1:8080/tsa?x=1#f").ok(),
            Some(ep("127.0.0.1", 8080, "127.0.0.1:8080", "/tsa?x=1"))
        );
        assert_eq!(
            Endpoint::parse("http://[::1]:318").ok(),
            Some(ep("::1", 318, "[::1]:318", "/"))
        );
        assert_eq!(
            Endpoint::parse("http://h?q").ok(),
            Some(ep("h", 80, "h", "/?q"))
        );
        let https = Endpoint::parse("https://freetsa.org/tsr").expect_err("https");
        assert_eq!(
            https.to_string(),
            format!("https://freetsa.org/tsr: {HTTPS_REFUSED}")
        );
        for bad in [
            "ftp://h/",
            "h/tsa",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://u:p@h/",
            "http://h/a b",
            "http://h/\r\nX: y",
            "http://::1/",
            "http://[::1]x/",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::Input(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn http_answers() {
        let ok = |extra: &str, body: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: Application/Timestamp-Reply; x=y\r\n{extra}\r\n{body}"
            )
        };
        assert_eq!(
            http_body(ok("Content-Length: 3\r\n", "abcdef").as_bytes()),
            Ok(b"abc".to_vec())
        );
        assert!(complete(ok("Content-Length: 3\r\n", "abc").as_bytes()));
        assert!(!complete(ok("Content-Length: 3\r\n", "ab").as_bytes()));
        assert!(http_body(ok("Content-Length: 3\r\n", "ab").as_bytes()).is_err());
        let chunked = ok(
            "Transfer-Encoding: chunked\r\n",
            "2;ext\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        );
        assert!(complete(chunked.as_bytes()));
        assert_eq!(http_body(chunked.as_bytes()), Ok(b"abc".to_vec()));
        assert!(http_body(ok("Transfer-Encoding: chunked\r\n", "5\r\nab").as_bytes()).is_err());
        assert_eq!(http_body(ok("", "abc").as_bytes()), Ok(b"abc".to_vec()));
        let continued = format!(
            "HTTP/1.1 100 Continue\r\n\r\n{}",
            ok("Content-Length: 1\r\n", "a")
        );
        assert_eq!(http_body(continued.as_bytes()), Ok(b"a".to_vec()));
        let refused = b"HTTP/1.1 415 Unsupported Media Type\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            http_body(refused),
            Err("the TSA answered HTTP/1.1 415 Unsupported Media Type".into())
        );
        let html = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>";
        assert!(http_body(html).is_err_and(|e| e.contains("text/html")));
        assert!(http_body(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(http_body(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    /// A one-shot HTTP server on loopback: it answers `answer` to the first
    /// request and hands back the request's body.
    fn serve_once(answer: Vec<u8>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/tsa", listener.local_addr().expect("address"));
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).expect("read");
                assert!(n > 0, "the client closed early");
                raw.extend_from_slice(&buf[..n]);
                let Some(end) = find(&raw, b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                assert!(
                    head.contains("content-type: application/timestamp-query"),
                    "{head}"
                );
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("Content-Length");
                if raw.len() >= end + 4 + len {
                    stream.write_all(&answer).expect("write");
                    return raw[end + 4..end + 4 + len].to_vec();
                }
            }
        });
        (url, server)
    }

    #[test]
    fn request_sends_a_query_and_refuses_an_answer_with_another_nonce() {
        let token = der(EC_TSR);
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: {}\r\n\r\n",
            token.len()
        )
        .into_bytes();
        answer.extend_from_slice(&token);
        let (url, server) = serve_once(answer);
        let err = request(&url, COVERED).expect_err("the fixture's nonce is not this request's");
        assert_eq!(
            err.to_string(),
            format!(
                "{url}: the TSA answered with another nonce than decom sent (a stale or mixed-up answer)"
            )
        );
        let query =
            TimeStampReq::from_der(&server.join().expect("server")).expect("a TimeStampReq");
        assert_eq!(query.version, 1);
        assert!(query.cert_req);
        assert!(
            query
                .nonce
                .is_some_and(|n| !n.as_bytes().is_empty() && n.as_bytes().len() <= 8)
        );
        assert_eq!(query.message_imprint.hash_algorithm.oid, Hash::Sha256.oid());
        assert_eq!(
            query.message_imprint.hashed_message.as_bytes(),
            Hash::Sha256.digest(COVERED)
        );
    }

    #[test]
    fn request_reads_chunks_and_refuses_other_bytes_and_errors() {
        let token = der(EC_TSR);
        let (first, second) = token.split_at(100);
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in [first, second] {
            answer.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            answer.extend_from_slice(part);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        let (url, server) = serve_once(answer);
        let err = request(&url, b"other bytes").expect_err("other imprint");
        assert_eq!(
            err.to_string(),
            format!("{url}: the TSA stamped other bytes than decom sent")
        );
        server.join().expect("server");

        let (url, server) =
            serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        let err = request(&url, COVERED).expect_err("404");
        assert_eq!(
            err.to_string(),
            format!("{url}: the TSA answered HTTP/1.1 404 Not Found")
        );
        server.join().expect("server");
    }
}
