//! A lean HTTP/1.1 client for load generation: one keep-alive connection, one request at a
//! time, request bytes formatted before the run, and just enough response parsing (status
//! line, `Content-Length`, `Connection: close`) to know where each answer ends.
//!
//! Why not reqwest/hyper: the load generator shares the machine's two cores with the API
//! and PostgreSQL, so its CPU per request is taken from the system under test. Writing
//! prepared bytes and scanning for `\r\n\r\n` costs a few microseconds per request.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A response head larger than this is refused: ours are a few hundred bytes, and a bound
/// keeps a misbehaving server from growing the buffer without end.
const MAX_HEAD: usize = 64 * 1024;
/// Spare capacity made available before each read; a whole answer fits in one read.
const READ_CHUNK: usize = 16 * 1024;

/// The bytes of one request, with `Host` and (for a body) `Content-Length` added.
pub fn request_bytes(
    method: &str,
    path: &str,
    host: SocketAddr,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// What the head of a response says about the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: usize,
    /// The server will close the connection after this response.
    close: bool,
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet consumed; the last response stays here until the next send.
    buffer: Vec<u8>,
    /// Where the last response ends in `buffer`.
    consumed: usize,
    /// The last response's body in `buffer`.
    body: Range<usize>,
    closed: bool,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        // A request is one write, but one larger than a segment is split, and Nagle would
        // hold its tail back until the server's (delayed) ACK: milliseconds of fake latency.
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
            consumed: 0,
            body: 0..0,
            closed: false,
        })
    }

    /// Sends one request and reads its response; returns the status.
    ///
    /// An error leaves the connection in an unknown state: drop it and connect again.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<u16> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server closed this connection (Connection: close)",
            ));
        }
        // Nothing is pipelined, so this is normally everything in the buffer.
        self.buffer.drain(..self.consumed);
        self.consumed = 0;
        self.stream.write_all(request).await?;
        self.read_response().await
    }

    /// The body of the last response.
    pub fn body(&self) -> &[u8] {
        self.buffer.get(self.body.clone()).unwrap_or_default()
    }

    /// The server announced `Connection: close` (or spoke HTTP/1.0): connect again.
    pub fn closed_by_server(&self) -> bool {
        self.closed
    }

    async fn read_response(&mut self) -> io::Result<u16> {
        let mut scanned = 0;
        let head_end = loop {
            // Resume the search a little before the old end: the marker may straddle reads.
            if let Some(at) = find(&self.buffer[scanned..], b"\r\n\r\n") {
                break scanned + at + 4;
            }
            scanned = self.buffer.len().saturating_sub(3);
            if self.buffer.len() > MAX_HEAD {
                return Err(invalid("response head too large"));
            }
            self.fill().await?;
        };
        let head = parse_head(&self.buffer[..head_end])?;
        let end = head_end + head.content_length;
        while self.buffer.len() < end {
            self.fill().await?;
        }
        self.consumed = end;
        self.body = head_end..end;
        self.closed = head.close;
        Ok(head.status)
    }

    async fn fill(&mut self) -> io::Result<()> {
        self.buffer.reserve(READ_CHUNK);
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection mid-response",
            ));
        }
        Ok(())
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Parses a response head (status line and headers, ending in `\r\n\r\n`).
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.trim_ascii_end());
    let status_line = lines.next().unwrap_or_default();
    // "HTTP/1.1 201 Created"
    let version = status_line
        .get(..8)
        .ok_or_else(|| invalid("no status line"))?;
    let status = status_line
        .get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|_| version.starts_with(b"HTTP/1."))
        .ok_or_else(|| invalid("malformed status line"))?;
    let mut close = version == b"HTTP/1.0";
    let mut content_length = None;
    for line in lines.filter(|line| !line.is_empty()) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(invalid("malformed header line"));
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| invalid("malformed Content-Length"))?;
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The API answers with Content-Length; supporting chunked bodies would only be
            // code that never runs.
            return Err(invalid("chunked responses are not supported"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    let content_length = match content_length {
        Some(length) => length,
        // These never have a body.
        None if status == 204 || status == 304 || (100..200).contains(&status) => 0,
        None => return Err(invalid("response without Content-Length")),
    };
    Ok(Head {
        status,
        content_length,
        close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_created_answer() {
        let head = parse_head(
            b"HTTP/1.1 201 Created\r\ncontent-length: 42\r\ncontent-type: application/json\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                status: 201,
                content_length: 42,
                close: false
            }
        );
    }

    #[test]
    fn notices_connection_close_and_http_1_0() {
        let head = parse_head(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert!(head.close);
        assert_eq!(head.status, 503);
        assert!(
            parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap()
                .close
        );
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert_eq!(
            parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
                .unwrap()
                .content_length,
            0
        );
    }

    #[test]
    fn formats_a_request() {
        let bytes = request_bytes(
            "POST",
            "/x",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            &[("Content-Type", "application/json")],
            b"{}",
        );
        assert_eq!(
            bytes,
            b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[tokio::test]
    async fn reads_answers_split_across_reads_on_one_connection() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 256];
            for body in ["first", "second"] {
                let _ = socket.read(&mut request).await.unwrap();
                let answer = format!(
                    "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let (a, b) = answer.as_bytes().split_at(20);
                socket.write_all(a).await.unwrap();
                socket.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                socket.write_all(b).await.unwrap();
            }
        });
        let mut connection = Connection::connect(addr).await.unwrap();
        let request = request_bytes("GET", "/", addr, &[], b"");
        assert_eq!(connection.send(&request).await.unwrap(), 201);
        assert_eq!(connection.body(), b"first");
        assert_eq!(connection.send(&request).await.unwrap(), 201);
        assert_eq!(connection.body(), b"second");
        server.await.unwrap();
    }
}
