//! The JSON API's batch format (`POST /batch/storage/v1`): up to 100
//! calls as `multipart/mixed` parts of `application/http`, each answered
//! in a part carrying `Content-ID: <response-ID>`. Written by hand: no
//! crate does this codec, and it is 150 lines.

/// One call of a batch: method, origin-form path with query, and its ID.
pub struct Call {
    pub id: String,
    pub method: &'static str,
    pub target: String,
}

/// One answer of a batch: the call's ID, HTTP status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: Option<String>,
    pub status: u16,
    pub body: String,
}

/// The request body for `calls`, with `boundary`.
pub fn body(calls: &[Call], boundary: &str) -> String {
    let mut out = String::new();
    for c in calls {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{}>\r\n\r\n{} {} HTTP/1.1\r\n\r\n",
            c.id, c.method, c.target
        ));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// The boundary a `multipart/mixed` Content-Type names.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The answers in a batch response body. A part that is not an HTTP
/// answer is an error: the batch's fate is then unknown.
pub fn parse(body: &str, boundary: &str) -> Result<Vec<Answer>, String> {
    let delim = format!("--{boundary}");
    let mut answers = Vec::new();
    let mut parts = body.split(delim.as_str());
    parts.next(); // the preamble
    for part in parts {
        if part.starts_with("--") {
            break;
        }
        let part = part.trim_start_matches(['\r', '\n']);
        let (head, inner) = split_head(part).ok_or("a batch part without headers")?;
        let id = header(head, "content-id").map(|v| {
            let v = v.trim_start_matches('<').trim_end_matches('>');
            v.strip_prefix("response-").unwrap_or(v).to_string()
        });
        let (status_head, inner_body) =
            split_head(inner).ok_or("a batch part without an answer")?;
        let status_line = status_head.lines().next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|_| status_line.starts_with("HTTP/"))
            .ok_or_else(|| format!("a batch part answers {status_line:?}"))?;
        answers.push(Answer {
            id,
            status,
            body: inner_body.trim_end_matches(['\r', '\n']).to_string(),
        });
    }
    Ok(answers)
}

/// Headers and the rest, split at the first blank line.
fn split_head(s: &str) -> Option<(&str, &str)> {
    if let Some(i) = s.find("\r\n\r\n") {
        return Some((&s[..i], &s[i + 4..]));
    }
    s.find("\n\n").map(|i| (&s[..i], &s[i + 2..]))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub use crate::util::percent_encode as encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_written_with_ids_and_read_back_by_them() {
        let calls = vec![Call {
            id: "d+0".into(),
            method: "DELETE",
            target: "/storage/v1/b/b/o/fd%2Fa?generation=1".into(),
        }];
        let b = body(&calls, "xyz");
        assert!(b.starts_with("--xyz\r\nContent-Type: application/http\r\n"));
        assert!(b.contains(
            "Content-ID: <d+0>\r\n\r\nDELETE /storage/v1/b/b/o/fd%2Fa?generation=1 HTTP/1.1\r\n"
        ));
        assert!(b.ends_with("--xyz--\r\n"));
        // As fake-gcs-server answers (LF or CRLF, ids prefixed "response-").
        let answer = "--fc\r\nContent-Id: <response-d+0>\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n\r\n--fc\r\nContent-Type: application/http\r\nContent-Id: <response-d+1>\r\n\r\nHTTP/1.1 412 Precondition Failed\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":412}}\r\n--fc--\r\n";
        let got = parse(answer, "fc").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id.as_deref(), Some("d+0"));
        assert_eq!(got[0].status, 204);
        assert_eq!(got[1].id.as_deref(), Some("d+1"));
        assert_eq!(got[1].status, 412);
        assert_eq!(got[1].body, "{\"error\":{\"code\":412}}");
        assert!(parse("--fc\r\nX: y\r\n\r\nnot http\r\n\r\n--fc--", "fc").is_err());
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/mixed; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            boundary_of("multipart/mixed;boundary=fc").as_deref(),
            Some("fc")
        );
        assert_eq!(boundary_of("application/json"), None);
    }

    #[test]
    fn names_are_encoded_whole() {
        assert_eq!(encode("fd/a b#1?.bin"), "fd%2Fa%20b%231%3F.bin");
        assert_eq!(encode("ü"), "%C3%BC");
    }
}
