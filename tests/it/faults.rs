//! A flaky S3 endpoint: a loopback HTTP proxy in front of moto that answers
//! a chosen fraction of requests with 503 SlowDown or 500 InternalError,
//! resets the connection before forwarding, or forwards the request and then
//! resets instead of relaying the answer (the request happened, the client
//! never learns it did), and delays others. decom must finish through 20 %
//! faults by retrying, and at 100 % end incomplete (exit 1) without claiming
//! anything it could not prove.

use crate::common::*;
use crate::s3::{S3Env, endpoint};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// What the proxy did, per kind.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub slow: AtomicU64,
    pub status_503: AtomicU64,
    pub status_500: AtomicU64,
    pub reset_before: AtomicU64,
    pub reset_after: AtomicU64,
    /// HEAD requests on objects seen (any answer; path-style, so the path
    /// has a bucket and a key), not HeadBucket.
    pub heads: AtomicU64,
    /// Requests being handled right now, and the most at once.
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
}

impl Stats {
    fn faults(&self) -> u64 {
        [
            &self.status_503,
            &self.status_500,
            &self.reset_before,
            &self.reset_after,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} requests: {} forwarded ({} slow), 503 {}, 500 {}, reset before {}, reset after forwarding {}",
            g(&self.requests),
            g(&self.forwarded),
            g(&self.slow),
            g(&self.status_503),
            g(&self.status_500),
            g(&self.reset_before),
            g(&self.reset_after)
        )
    }
}

pub struct FaultProxy {
    pub url: String,
    /// Faulted requests per thousand.
    fail_permille: Arc<AtomicU32>,
    pub stats: Arc<Stats>,
}

/// Called with each forwarded request's first line and the server's answer,
/// before the client sees it; returns the answer to relay. A test can change
/// the store "behind" an answer the client is about to trust, or the answer.
pub type Hook = Arc<dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync>;

impl FaultProxy {
    pub fn start(upstream: &str, fail_permille: u32) -> FaultProxy {
        Self::start_with_hook(upstream, fail_permille, Arc::new(|_, resp| resp))
    }

    pub fn start_with_hook(upstream: &str, fail_permille: u32, hook: Hook) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("moto speaks plain HTTP")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fail = Arc::new(AtomicU32::new(fail_permille));
        let stats = Arc::new(Stats::default());
        let (f, s) = (fail.clone(), stats.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (f, s, up, h) = (f.clone(), s.clone(), upstream.clone(), hook.clone());
                std::thread::spawn(move || serve(conn, &up, &f, &s, &h));
            }
        });
        FaultProxy {
            url,
            fail_permille: fail,
            stats,
        }
    }

    /// Set the fault rate and start counting afresh.
    pub fn set_fail_permille(&self, p: u32) {
        self.fail_permille.store(p, Ordering::Relaxed);
        let s = &self.stats;
        for c in [
            &s.requests,
            &s.forwarded,
            &s.slow,
            &s.status_503,
            &s.status_500,
            &s.reset_before,
            &s.reset_after,
            &s.heads,
            &s.max_in_flight,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// One request: its head (request line and headers) and body.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let end = line == b"\r\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        !text.contains("transfer-encoding: chunked"),
        "the proxy only relays Content-Length bodies"
    );
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Replace any Connection header with `Connection: close`.
fn close_after(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
        if i == 0 {
            out.push_str("Connection: close\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Close with RST instead of FIN (SO_LINGER 0).
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

fn status(code: u16, reason: &str, err: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{err}</Code><Message>injected by the test proxy</Message></Error>"
    );
    Reply::Send(
        format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn forward(head: &[u8], body: &[u8], upstream: &str) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    up.write_all(&close_after(head)).ok()?;
    up.write_all(body).ok()?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut out = close_after(&resp[..split]);
    out.extend_from_slice(&resp[split..]);
    Some(out)
}

/// What the proxy answers a request with.
enum Reply {
    Send(Vec<u8>),
    Reset,
}

fn serve(conn: TcpStream, upstream: &str, fail: &AtomicU32, stats: &Stats, hook: &Hook) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let Some((head, body)) = read_request(&mut reader) else {
        return;
    };
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let request_line =
        String::from_utf8_lossy(head.split(|b| *b == b'\r').next().unwrap_or(&[])).to_string();
    if let Some(path) = request_line.strip_prefix("HEAD /")
        && path
            .split(['?', ' '])
            .next()
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(_, key)| !key.is_empty())
    {
        stats.heads.fetch_add(1, Ordering::Relaxed);
    }
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let reply = handle(&head, &body, upstream, fail, stats, hook);
    // Out of flight before the client can see the answer and send the next.
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    match reply {
        Reply::Send(bytes) => {
            let mut conn = conn;
            let _ = conn.write_all(&bytes);
        }
        Reply::Reset => reset(conn),
    }
}

fn handle(
    head: &[u8],
    body: &[u8],
    upstream: &str,
    fail: &AtomicU32,
    stats: &Stats,
    hook: &Hook,
) -> Reply {
    let roll: u32 = rand_u32() % 1000;
    if roll < fail.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(u64::from(rand_u32() % 50)));
        return match rand_u32() % 4 {
            0 => {
                stats.status_503.fetch_add(1, Ordering::Relaxed);
                status(503, "Slow Down", "SlowDown")
            }
            1 => {
                stats.status_500.fetch_add(1, Ordering::Relaxed);
                status(500, "Internal Server Error", "InternalError")
            }
            2 => {
                stats.reset_before.fetch_add(1, Ordering::Relaxed);
                Reply::Reset
            }
            _ => {
                stats.reset_after.fetch_add(1, Ordering::Relaxed);
                let _ = forward(head, body, upstream);
                Reply::Reset
            }
        };
    }
    // One in ten of the rest answers late.
    if rand_u32() % 10 == 0 {
        stats.slow.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
    }
    stats.forwarded.fetch_add(1, Ordering::Relaxed);
    match forward(head, body, upstream) {
        Some(resp) => {
            let line = String::from_utf8_lossy(head);
            Reply::Send(hook(line.lines().next().unwrap_or_default(), resp))
        }
        None => Reply::Reset,
    }
}

/// A whole S3 error answer, as a store would send it.
pub fn error_answer(status: u16, reason: &str, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Rewrite the body of an HTTP answer (Content-Length follows).
pub fn rewrite_body(resp: Vec<u8>, f: impl Fn(&str) -> String) -> Vec<u8> {
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = f(&String::from_utf8_lossy(&resp[split..]));
    let head = String::from_utf8_lossy(&resp[..split]);
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(&format!("Content-Length: {}", body.len()));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// A plain, unsigned PUT straight to the server (moto does not check
/// signatures), for hooks that change the store behind decom's back.
pub fn raw_put(upstream: &str, bucket: &str, key: &str, body: &[u8]) {
    let host = upstream
        .strip_prefix("http://")
        .unwrap()
        .trim_end_matches('/');
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT /{bucket}/{key} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

fn rand_u32() -> u32 {
    let b = random_bytes(4);
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A bucket with `keys` keys of three versions each, one delete marker and
/// one unfinished upload, traced and approved through `proxy`.
fn flaky_bucket(proxy: &FaultProxy, keys: usize) -> S3Env {
    let s = S3Env::new();
    s.create_bucket(true, false);
    for i in 0..keys {
        for _ in 0..3 {
            s.put(&format!("m/shard-{i:03}.bin"), &random_bytes(100));
        }
    }
    s.delete("m/shard-000.bin");
    s.unfinished_upload("m/big.bin");
    s.manifest("m/", "");
    proxy.set_fail_permille(0);
    s.trace_via(&proxy.url).ok();
    s.approve().ok();
    s
}

#[test]
fn s3_faults_at_20_percent_are_retried_and_the_purge_completes() {
    let proxy = FaultProxy::start(&endpoint(), 200);
    let s = flaky_bucket(&proxy, 40);
    proxy.set_fail_permille(200);
    let r = s.execute();
    let stats = proxy.stats.line();
    assert_eq!(r.code, 0, "{stats}\n{}", r.stderr);
    assert!(
        proxy.stats.faults() >= 3,
        "the proxy must actually have injected faults: {stats}"
    );
    assert!(s.versions("m/").is_empty(), "{:?}", s.versions("m/"));
    assert_eq!(s.uploads("m/"), 0);
    let c = s.env.cert_json();
    assert_eq!(c["status"], "complete", "{stats}");
    let arts = c["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 40 * 3 + 2);
    assert!(arts.iter().all(|a| a["outcome"] == "disposed"));
    eprintln!("20 % faults: {stats}");
}

#[test]
fn s3_faults_at_100_percent_end_incomplete_without_a_false_disposed() {
    let proxy = FaultProxy::start(&endpoint(), 0);
    let s = flaky_bucket(&proxy, 5);
    let before = s.versions("m/");
    proxy.set_fail_permille(1000);
    let r = s.execute();
    let stats = proxy.stats.line();
    assert_eq!(r.code, 1, "{stats}\n{}", r.stderr);
    assert_eq!(proxy.stats.forwarded.load(Ordering::Relaxed), 0, "{stats}");
    assert!(
        proxy.stats.faults() >= u64::from(decom::store::s3::MAX_ATTEMPTS),
        "at least one request went through every retry: {stats}"
    );
    let c = s.env.cert_json();
    assert_eq!(c["status"], "incomplete");
    let arts = c["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 5 * 3 + 2);
    // Requests that were forwarded before the reset may have deleted
    // versions; the certificate must still not claim any disposal it did
    // not prove.
    for a in arts {
        assert_eq!(a["outcome"], "failed", "{a}");
    }
    eprintln!(
        "100 % faults: {stats}; {} of {} versions still listed",
        s.versions("m/").len(),
        before.len()
    );

    // The endpoint recovers: resume picks up every failed artifact.
    proxy.set_fail_permille(0);
    let r = s.resume();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(s.versions("m/").is_empty());
    assert_eq!(s.uploads("m/"), 0);
    assert_eq!(s.env.cert_json()["status"], "complete");
}

/// `[s3] concurrency` in the manifest and `--s3-concurrency` bound the
/// requests decom has in flight, in trace and in execute.
#[test]
fn s3_concurrency_bounds_the_requests_in_flight() {
    let proxy = FaultProxy::start(&endpoint(), 0);
    let in_flight = || proxy.stats.max_in_flight.load(Ordering::SeqCst);
    let bucket = || {
        let s = S3Env::new();
        s.create_bucket(true, false);
        for i in 0..30 {
            s.put(&format!("m/shard-{i:03}.bin"), &random_bytes(100));
            s.put(&format!("m/shard-{i:03}.bin"), &random_bytes(100));
        }
        s
    };

    // One at a time, from the manifest: trace, and execute through the plan.
    let one = bucket();
    one.manifest("m/", "[s3]\nconcurrency = 1\n");
    proxy.set_fail_permille(0);
    one.trace_via(&proxy.url).ok();
    assert_eq!(in_flight(), 1, "trace: {}", proxy.stats.line());
    one.approve().ok();
    proxy.set_fail_permille(0);
    one.execute().ok();
    assert_eq!(in_flight(), 1, "execute: {}", proxy.stats.line());
    assert!(one.versions("m/").is_empty());

    // Six from the flag: more than one at once, never more than six.
    let six = bucket();
    six.manifest("m/", "");
    six.trace_via(&proxy.url).ok();
    six.approve().ok();
    proxy.set_fail_permille(0);
    six.execute_with(&["--s3-concurrency", "6"]).ok();
    let n = in_flight();
    assert!(
        (2..=6).contains(&n),
        "{n} in flight: {}",
        proxy.stats.line()
    );
    assert!(six.versions("m/").is_empty());
    assert_eq!(six.env.cert_json()["status"], "complete");
}
