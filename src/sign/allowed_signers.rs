//! The OpenSSH `allowed_signers` format (as `ssh-keygen -Y verify` and git
//! read it): `principals [options] keytype base64 [comment]`, one per line,
//! `#` comments. Options: `namespaces="a,b"`, `valid-after="YYYYMMDD[HHMM[SS]][Z]"`,
//! `valid-before=…`. Principals and namespaces are OpenSSH pattern lists
//! (`*`, `?`, `!negation`). `cert-authority` is refused with a clear message:
//! decom signs with plain keys.
//!
//! Written by hand: no maintained crate parses this format.

use crate::error::{Error, Result};
use ssh_key::PublicKey;

#[derive(Debug, Clone)]
pub struct Entry {
    pub line: usize,
    /// The principal pattern list as written (comma-separated).
    pub principals: String,
    pub namespaces: Option<String>,
    /// Unix seconds.
    pub valid_after: Option<i64>,
    pub valid_before: Option<i64>,
    pub key: PublicKey,
}

#[derive(Debug, Clone)]
pub struct AllowedSigners {
    pub entries: Vec<Entry>,
    /// The file's exact text (attached to rendered certificates as a snapshot).
    pub text: String,
    pub origin: String,
}

impl AllowedSigners {
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = crate::util::read_text(path, "allowed signers file", 4 << 20)?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let e = parse_line(line).map_err(|m| Error::input(format!("{origin}:{n}: {m}")))?;
            entries.push(Entry { line: n, ..e });
        }
        Ok(AllowedSigners {
            entries,
            text: text.to_string(),
            origin: origin.to_string(),
        })
    }

    /// Find the line that allows `key` to sign `namespace` (as `principal`,
    /// when given) at time `at` (Unix seconds). The error says precisely
    /// which condition failed.
    pub fn find(
        &self,
        key: &PublicKey,
        principal: Option<&str>,
        namespace: &str,
        at: i64,
    ) -> Result<(&Entry, String), String> {
        let fp = key.fingerprint(ssh_key::HashAlg::Sha256);
        let by_key: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.key.key_data() == key.key_data())
            .collect();
        if by_key.is_empty() {
            return Err(format!(
                "key {fp} is not in the trusted signers file {}",
                self.origin
            ));
        }
        let by_principal: Vec<&Entry> = match principal {
            Some(p) => by_key
                .iter()
                .copied()
                .filter(|e| match_list(p, &e.principals))
                .collect(),
            None => by_key.clone(),
        };
        if by_principal.is_empty() {
            return Err(format!(
                "key {fp} is not allowed for principal {:?} (its lines name {})",
                principal.unwrap_or_default(),
                by_key
                    .iter()
                    .map(|e| format!("{:?}", e.principals))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let by_ns: Vec<&Entry> = by_principal
            .iter()
            .copied()
            .filter(|e| {
                e.namespaces
                    .as_deref()
                    .is_none_or(|n| match_list(namespace, n))
            })
            .collect();
        if by_ns.is_empty() {
            return Err(format!(
                "key {fp} may not sign namespace {namespace:?} (its line allows namespaces={:?}): wrong role",
                by_principal[0].namespaces.clone().unwrap_or_default()
            ));
        }
        let in_window: Vec<&Entry> = by_ns
            .iter()
            .copied()
            .filter(|e| {
                e.valid_after.is_none_or(|t| at >= t) && e.valid_before.is_none_or(|t| at <= t)
            })
            .collect();
        let Some(e) = in_window.first() else {
            let e = by_ns[0];
            let when = time::OffsetDateTime::from_unix_timestamp(at)
                .map(crate::util::rfc3339)
                .unwrap_or_default();
            return Err(format!(
                "key {fp} is outside its validity window at {when} (line {}: valid-after {}, valid-before {})",
                e.line,
                fmt_opt(e.valid_after),
                fmt_opt(e.valid_before)
            ));
        };
        let name = match principal {
            Some(p) => p.to_string(),
            None => first_principal(&e.principals),
        };
        Ok((e, name))
    }
}

fn fmt_opt(t: Option<i64>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(crate::util::rfc3339)
        .unwrap_or_else(|| "none".into())
}

/// The first non-negated principal of a pattern list.
pub fn first_principal(list: &str) -> String {
    list.split(',')
        .find(|p| !p.starts_with('!'))
        .unwrap_or(list)
        .to_string()
}

/// Split off one whitespace-delimited field, honouring double quotes.
fn take_field(s: &str) -> Result<(&str, &str), String> {
    let mut in_quote = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ' ' | '\t' if !in_quote => return Ok((&s[..i], s[i..].trim_start())),
            _ => {}
        }
    }
    if in_quote {
        return Err("unterminated quote".into());
    }
    Ok((s, ""))
}

fn parse_line(line: &str) -> Result<Entry, String> {
    let (principals, rest) = take_field(line)?;
    let principals = principals.trim_matches('"').to_string();
    if principals.is_empty() {
        return Err("empty principals".into());
    }
    if rest.is_empty() {
        return Err("missing key".into());
    }
    let mut entry = Entry {
        line: 0,
        principals,
        namespaces: None,
        valid_after: None,
        valid_before: None,
        key: dummy_key(),
    };
    let key_text = if looks_like_key_type(rest) {
        rest
    } else {
        let (opts, rest) = take_field(rest)?;
        parse_options(opts, &mut entry)?;
        rest
    };
    if key_text.is_empty() {
        return Err("missing key after options".into());
    }
    let mut parts = key_text.split_whitespace();
    let (Some(kt), Some(b64)) = (parts.next(), parts.next()) else {
        return Err("missing key data after the key type".into());
    };
    entry.key = PublicKey::from_openssh(&format!("{kt} {b64}"))
        .map_err(|e| format!("invalid public key: {e}"))?;
    Ok(entry)
}

fn looks_like_key_type(s: &str) -> bool {
    let t = s.split_whitespace().next().unwrap_or("");
    t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-")
}

fn parse_options(opts: &str, e: &mut Entry) -> Result<(), String> {
    // Comma-separated, values in double quotes may contain commas.
    let mut items = Vec::new();
    let (mut start, mut in_quote) = (0, false);
    for (i, c) in opts.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ',' if !in_quote => {
                items.push(&opts[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&opts[start..]);
    for item in items {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => {
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| format!("option {n}: value must be in double quotes"))?;
                (n, Some(v))
            }
            None => (item, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("cert-authority", None) => {
                return Err(
                    "cert-authority lines are not supported by decom: list each signer's own key"
                        .into(),
                );
            }
            ("namespaces", Some(v)) => e.namespaces = Some(v.to_string()),
            ("valid-after", Some(v)) => e.valid_after = Some(parse_time(v)?),
            ("valid-before", Some(v)) => e.valid_before = Some(parse_time(v)?),
            (n, _) => return Err(format!("unknown or malformed option {n:?}")),
        }
    }
    Ok(())
}

/// `YYYYMMDD[Z]`, `YYYYMMDDHHMM[Z]` or `YYYYMMDDHHMMSS[Z]`. Times without
/// `Z` are read as UTC (ssh-keygen reads them in its local time zone; run
/// both with TZ=UTC, or write the `Z`, to get the same answer).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let digits = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .unwrap_or(s);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 8 | 12 | 14) {
        return Err(format!(
            "invalid time {s:?} (expected YYYYMMDD[HHMM[SS]][Z])"
        ));
    }
    let num =
        |r: std::ops::Range<usize>| digits.get(r).map_or(0, |d| d.parse::<u32>().unwrap_or(0));
    let month =
        time::Month::try_from(num(4..6) as u8).map_err(|_| format!("invalid month in {s:?}"))?;
    let date = time::Date::from_calendar_date(num(0..4) as i32, month, num(6..8) as u8)
        .map_err(|e| format!("invalid date {s:?}: {e}"))?;
    let t = time::Time::from_hms(num(8..10) as u8, num(10..12) as u8, num(12..14) as u8)
        .map_err(|e| format!("invalid time {s:?}: {e}"))?;
    Ok(time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp())
}

/// OpenSSH `match_pattern_list`: any negated match fails; otherwise any
/// positive match succeeds.
pub fn match_list(s: &str, list: &str) -> bool {
    let mut matched = false;
    for pat in list.split(',') {
        let (neg, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if wildcard(s.as_bytes(), pat.as_bytes()) {
            if neg {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn wildcard(s: &[u8], p: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(b'*'), _) => wildcard(s, &p[1..]) || (!s.is_empty() && wildcard(&s[1..], p)),
        (Some(b'?'), Some(_)) => wildcard(&s[1..], &p[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&s[1..], &p[1..]),
        _ => false,
    }
}

fn dummy_key() -> PublicKey {
    PublicKey::from(ssh_key::public::Ed25519PublicKey([0u8; 32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDO0VQD9TIdICZLWFWwtf7s8/aENve8twGTEmNV0myh5";

    #[test]
    fn parses_principals_options_and_comments() {
        let text = format!(
            "# trusted signers\n\n\
             alice@example.com,bob@example.com {KEY} a comment\n\
             \"carol@example.com\" namespaces=\"decom-custodian,other\",valid-after=\"20260101\" {KEY}\n\
             dave namespaces=\"decom-operator\",valid-before=\"20301231235959Z\" {KEY}\n"
        );
        let s = AllowedSigners::parse(&text, "t").unwrap();
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.entries[0].principals, "alice@example.com,bob@example.com");
        assert_eq!(s.entries[0].line, 3);
        assert_eq!(s.entries[1].principals, "carol@example.com");
        assert_eq!(
            s.entries[1].namespaces.as_deref(),
            Some("decom-custodian,other")
        );
        assert_eq!(
            s.entries[1].valid_after,
            Some(parse_time("20260101").unwrap())
        );
        assert_eq!(
            s.entries[2].valid_before,
            Some(parse_time("20301231235959").unwrap())
        );
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        for (text, want) in [
            (format!("\n\nalice {KEY}x\n"), "t:3:"),
            ("alice\n".to_string(), "t:1: missing key"),
            (format!("alice namespaces=decom {KEY}\n"), "double quotes"),
            (format!("alice cert-authority {KEY}\n"), "cert-authority"),
            (
                format!("alice valid-after=\"2026\" {KEY}\n"),
                "invalid time",
            ),
            (format!("alice frobnicate=\"x\" {KEY}\n"), "unknown"),
            (format!("alice namespaces=\"x {KEY}\n"), "unterminated"),
        ] {
            let e = AllowedSigners::parse(&text, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn pattern_lists() {
        assert!(match_list("alice@example.com", "*@example.com"));
        assert!(!match_list("alice@example.com", "*@example.com,!alice@*"));
        assert!(match_list("decom-custodian", "decom-*"));
        assert!(!match_list("decom-operator", "decom-custodian"));
        assert!(match_list("a", "b,a?,a"));
    }
}
