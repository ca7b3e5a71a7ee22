//! What the process tests share: one HTTP/1.1 request over a fresh connection to a
//! `tessera serve` child, read to the end.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One request on a fresh connection: status, head, body; `None` if nothing answered.
/// `extra_headers` are complete lines, each ending in CRLF.
pub fn raw_request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
    extra_headers: &str,
) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head.to_owned(), body.to_owned()))
}
