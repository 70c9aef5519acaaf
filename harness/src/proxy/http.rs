//! Just enough HTTP/1.1 to shape and fault a registry conversation: request and response heads,
//! and how long a body is.

use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Largest head accepted; registries send a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// A request or response head: the first line and the header fields in order.
#[derive(Debug, Clone)]
pub struct Head {
    /// `GET /v2/ HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub line: String,
    /// Header fields as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Reads a head; `None` at a clean end of stream before its first byte.
    pub async fn read<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Option<Head>> {
        let mut line = Vec::new();
        let mut total = 0;
        let mut first: Option<String> = None;
        let mut headers = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).await?;
            total += n;
            if n == 0 {
                if first.is_none() && total == 0 {
                    return Ok(None);
                }
                return Err(invalid("end of stream inside an HTTP head"));
            }
            if total > MAX_HEAD {
                return Err(invalid("HTTP head too large"));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            match &first {
                None if text.is_empty() => continue, // tolerated between pipelined messages
                None => first = Some(text.to_owned()),
                Some(_) if text.is_empty() => break,
                Some(_) => {
                    let (name, value) = text
                        .split_once(':')
                        .ok_or_else(|| invalid("HTTP header line without a colon"))?;
                    headers.push((name.trim().to_owned(), value.trim().to_owned()));
                }
            }
        }
        Ok(Some(Head {
            line: first.unwrap_or_default(),
            headers,
        }))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Sets `name` to `value`, replacing earlier fields of that name.
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// The request method (first word of a request line).
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }

    /// The request target (second word of a request line).
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// The status code of a response line; 0 if it has none.
    pub fn status(&self) -> u16 {
        self.line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// `Content-Length`, when present and valid.
    pub fn content_length(&self) -> Option<u64> {
        self.get("content-length")?.parse().ok()
    }

    /// Whether the body is sent with chunked transfer coding.
    pub fn chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The head as bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        out.push_str(&self.line);
        out.push_str("\r\n");
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Exactly this many bytes.
    Length(u64),
    /// At the server's end of stream (including chunked bodies, whose framing is passed on
    /// untouched and which the server ends by closing, as the proxy asks it to).
    UntilClose {
        /// The client can tell where the body ends (chunked), so its connection stays open.
        framed: bool,
    },
}

impl Body {
    /// The body of `response` to a request with `method` (RFC 9112 §6.3).
    pub fn of(method: &str, response: &Head) -> Body {
        let status = response.status();
        if method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&status)
            || status == 204
            || status == 304
        {
            Body::Length(0)
        } else if response.chunked() {
            Body::UntilClose { framed: true }
        } else if let Some(length) = response.content_length() {
            Body::Length(length)
        } else {
            Body::UntilClose { framed: false }
        }
    }
}

/// A complete small response the proxy makes up itself.
pub fn canned(status: u16, reason: &str, retry_after: Option<Duration>) -> Vec<u8> {
    let body = format!("{{\"errors\":[{{\"code\":\"HOIST_PROXY\",\"message\":\"{reason}\"}}]}}");
    let mut head = Head {
        line: format!("HTTP/1.1 {status} {reason}"),
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Content-Length".to_owned(), body.len().to_string()),
        ],
    };
    if let Some(after) = retry_after {
        head.set("Retry-After", &after.as_secs().to_string());
    }
    let mut bytes = head.to_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

fn invalid(message: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_head_and_its_body_length() {
        let wire = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\ncontent-range: bytes 0-9/20\r\n\r\nrest";
        let mut reader = &wire[..];
        let head = Head::read(&mut reader).await.unwrap().unwrap();
        assert_eq!(head.status(), 206);
        assert_eq!(head.get("Content-Range"), Some("bytes 0-9/20"));
        assert_eq!(Body::of("GET", &head), Body::Length(10));
        assert_eq!(Body::of("HEAD", &head), Body::Length(0));
        assert_eq!(reader, b"rest");
        assert!(Head::read(&mut &b""[..]).await.unwrap().is_none());
        assert!(
            Head::read(&mut &b"GET / HTTP/1.1\r\nHost"[..])
                .await
                .is_err()
        );
    }
}
