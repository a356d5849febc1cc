//! HTTP/1.1 framing of the monitoring endpoints, shared by both runtimes so
//! they read requests and write responses the same way: the request head is
//! parsed with `httparse` (no hand-written parser), bounded in size and in
//! header count; responses are complete (`Content-Length`,
//! `Connection: close`) because every monitoring connection carries one
//! request. Pure functions over byte buffers: the runtimes own the sockets.

/// Largest request head accepted (request line plus headers). A monitoring
/// GET is a few hundred bytes; anything near this is not a scraper.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most headers accepted in one request.
pub const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Method as sent (`GET`).
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string without the `?` (empty when none).
    pub query: String,
    /// Headers, names lower-cased, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// Bytes of the buffer the head used (up to and including the blank line).
    pub len: usize,
}

impl Head {
    /// Whether this is a WebSocket upgrade request (`Upgrade: websocket`,
    /// token compared case-insensitively): those go to the WebSocket
    /// handshake, everything else on the client port is plain HTTP.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n == "upgrade"
                && v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        })
    }
}

/// Why a request head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than [`MAX_HEAD_BYTES`] or has more than
    /// [`MAX_HEADERS`] headers (HTTP 431).
    TooLarge,
    /// Not an HTTP/1.x request head (HTTP 400), with httparse's reason.
    Invalid(String),
}

impl HeadError {
    /// The status a runtime answers with before closing.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge => 431,
            HeadError::Invalid(_) => 400,
        }
    }

    /// A one-line description for the response body and the logs.
    pub fn message(&self) -> String {
        match self {
            HeadError::TooLarge => {
                format!("request head larger than {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers")
            }
            HeadError::Invalid(why) => format!("malformed HTTP request: {why}"),
        }
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete (read more), `Ok(Some(head))` once the blank line arrived.
/// A buffer that reached [`MAX_HEAD_BYTES`] without a complete head is
/// [`HeadError::TooLarge`], so a runtime never buffers more than that.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Invalid(e.to_string())),
    };
    let len = match status {
        httparse::Status::Complete(len) if len <= MAX_HEAD_BYTES => len,
        httparse::Status::Complete(_) => return Err(HeadError::TooLarge),
        httparse::Status::Partial if buf.len() >= MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge)
        }
        httparse::Status::Partial => return Ok(None),
    };
    // A complete parse always fills method and path.
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok(Some(Head {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        len,
    }))
}

/// The reason phrase of the statuses the monitoring endpoints use.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A complete HTTP/1.1 response: status line, `Content-Type`,
/// `Content-Length`, `Connection: close`, the extra `headers` (names and
/// values with CR or LF are skipped, so a header can never split the
/// response), a blank line and the body.
pub fn encode_response(
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let clean = |s: &str| !s.contains(['\r', '\n']);
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    if clean(content_type) && !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    head.push_str("Connection: close\r\n");
    for (name, value) in headers {
        if clean(name) && clean(value) && !name.is_empty() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The response a runtime sends on its own when it cannot hand a request to
/// the node (bad head, too slow): `{"status":"error","message":...}`.
pub fn error_response(status: u16, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"status": "error", "message": message}).to_string();
    encode_response(status, "application/json", &[], body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_head_with_query_and_headers() {
        let raw =
            b"GET /discovery/lag?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\nrest";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/discovery/lag");
        assert_eq!(h.query, "x=1");
        assert_eq!(h.len, raw.len() - 4);
        assert_eq!(
            h.headers,
            vec![
                ("host".to_string(), "a".to_string()),
                ("authorization".to_string(), "Bearer t".to_string())
            ]
        );
        assert!(!h.is_websocket_upgrade());
    }

    #[test]
    fn partial_then_too_large() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD_BYTES, b'a');
        assert_eq!(parse_head(&big), Err(HeadError::TooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many), Err(HeadError::TooLarge));
    }

    #[test]
    fn garbage_is_invalid() {
        let e = parse_head(b"\x16\x03\x01 binary\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().starts_with("malformed HTTP request"));
    }

    #[test]
    fn upgrade_detection() {
        let raw =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n";
        assert!(parse_head(raw).unwrap().unwrap().is_websocket_upgrade());
    }

    #[test]
    fn response_framing() {
        let r = encode_response(
            404,
            "application/json",
            &[
                ("Access-Control-Allow-Origin".into(), "*".into()),
                ("X-Evil".into(), "a\r\nSet-Cookie: x".into()),
            ],
            b"{}",
        );
        let text = String::from_utf8(r).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
             Connection: close\r\nAccess-Control-Allow-Origin: *\r\n\r\n{}"
        );
        let e = String::from_utf8(error_response(431, "too big")).unwrap();
        assert!(e.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let body: serde_json::Value =
            serde_json::from_str(e.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status": "error", "message": "too big"})
        );
    }
}
