//! What the process tests share: starting a `tessera serve` child and learning its address,
//! and one HTTP/1.1 request over a fresh connection to it, read to the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Runs `command serve --listen listen` with stdout piped and waits for the line that names
/// the address it bound: the child and that address (`host:port`).
pub fn start_serve(mut command: Command, listen: &str, stderr: Stdio) -> (Child, String) {
    let mut child = command
        .args(["serve", "--listen", listen])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("tessera starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("tessera prints its address");
    let addr = line
        .trim()
        .strip_prefix("tessera listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, addr)
}

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
