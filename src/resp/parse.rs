//! Requests: RESP arrays of bulk strings (what every client sends, in RESP2 and RESP3 alike)
//! and inline commands (`PING\r\n` typed into telnet, redis-benchmark's PING_INLINE).
//!
//! A cheap scan of the frame headers runs before the allocating decode: it says "need more
//! bytes" without decoding, and it refuses absurd lengths (a 512 MiB bulk header) before any
//! buffer grows toward them.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2;

/// Bounds on one request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest bulk string and largest whole request, in bytes.
    pub max_request_bytes: usize,
    /// Most arguments in one request.
    pub max_args: usize,
    /// Longest inline command line.
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_request_bytes: 64 << 20, max_args: 1 << 20, max_inline_bytes: 64 << 10 }
    }
}

/// A request that cannot be framed. The connection answers `-ERR Protocol error: ...` and
/// closes, as Redis does: after a framing error the byte stream has no trustworthy boundary.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn perr(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// Takes the next complete command off `buf`: `Ok(None)` when more bytes are needed. Empty
/// commands (a blank inline line, `*0`) are skipped.
///
/// # Errors
/// A frame that is malformed or over the limits.
pub fn next_command(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else { return Ok(None) };
        let args = if first == b'*' {
            match scan_array(buf, limits)? {
                Scan::Incomplete => return Ok(None),
                Scan::Complete => decode_array(buf)?,
                Scan::Empty(header) => {
                    // `*0` or a negative count: skipped, as Redis does.
                    let _ = buf.split_to(header);
                    continue;
                }
            }
        } else {
            match inline(buf, limits)? {
                Some(args) => args,
                None => return Ok(None),
            }
        };
        if !args.is_empty() {
            return Ok(Some(args));
        }
    }
}

enum Scan {
    Incomplete,
    Complete,
    /// No arguments (`*0`, `*-1`): the header is this many bytes.
    Empty(usize),
}

/// Reads a `\r\n`-terminated decimal after a type byte at `at`. Returns (value, next offset).
fn read_len(buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = &buf[at..];
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        return if rest.len() > 32 { Err(perr(format!("invalid {what} length"))) } else { Ok(None) };
    };
    let line = rest[..nl].strip_suffix(b"\r").ok_or_else(|| perr(format!("invalid {what} length")))?;
    let text = std::str::from_utf8(line).map_err(|_| perr(format!("invalid {what} length")))?;
    let n: i64 = text.parse().map_err(|_| perr(format!("invalid {what} length")))?;
    Ok(Some((n, at + nl + 1)))
}

/// Walks the headers of `*N` + N bulk strings without copying anything.
fn scan_array(buf: &[u8], limits: &Limits) -> Result<Scan, ProtocolError> {
    let Some((count, mut at)) = read_len(buf, 1, "multibulk")? else { return Ok(Scan::Incomplete) };
    if count > limits.max_args as i64 {
        return Err(perr("invalid multibulk length"));
    }
    if count <= 0 {
        return Ok(Scan::Empty(at));
    }
    for _ in 0..count.max(0) {
        let Some(&kind) = buf.get(at) else { return Ok(Scan::Incomplete) };
        if kind != b'$' {
            return Err(perr(format!("expected '$', got '{}'", char::from(kind).escape_default())));
        }
        let Some((len, body)) = read_len(buf, at + 1, "bulk")? else { return Ok(Scan::Incomplete) };
        if len < 0 || len as usize > limits.max_request_bytes {
            return Err(perr("invalid bulk length"));
        }
        at = body + len as usize + 2;
        if at > limits.max_request_bytes + 64 * (count as usize + 1) {
            return Err(perr("request is too large"));
        }
        if at > buf.len() {
            return Ok(Scan::Incomplete);
        }
        if &buf[at - 2..at] != b"\r\n" {
            return Err(perr("bulk string is not terminated by CRLF"));
        }
    }
    Ok(Scan::Complete)
}

/// Decodes one complete array off `buf` with the crate's zero-copy decoder.
fn decode_array(buf: &mut BytesMut) -> Result<Vec<Bytes>, ProtocolError> {
    use resp2::types::BytesFrame as F;
    // The scan checked every header, so the decoder does not fail here; if it ever does, the
    // client gets Redis's words, not the decoder's.
    let (frame, _, _) = resp2::decode::decode_bytes_mut(buf)
        .map_err(|e| {
            tracing::debug!("request decoding failed after its scan: {e}");
            perr("invalid multibulk length")
        })?
        .ok_or_else(|| perr("invalid multibulk length"))?;
    match frame {
        F::Array(items) => items
            .into_iter()
            .map(|f| match f {
                F::BulkString(b) | F::SimpleString(b) => Ok(b),
                _ => Err(perr("invalid bulk length")),
            })
            .collect(),
        F::Null => Ok(Vec::new()),
        _ => Err(perr("invalid multibulk length")),
    }
}

/// An inline command: one line, arguments split on spaces, with Redis's quoting rules.
fn inline(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.max_inline_bytes { Err(perr("too big inline request")) } else { Ok(None) };
    };
    if nl > limits.max_inline_bytes {
        return Err(perr("too big inline request"));
    }
    let line = buf.split_to(nl + 1);
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    split_args(line).map(Some)
}

/// Splits an inline line like Redis's `sdssplitargs`: spaces separate, `"..."` takes `\n`,
/// `\t`, `\\`, `\"`, `\xHH` escapes, `'...'` takes `\'`; a closing quote must end the argument.
fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut arg = Vec::new();
        match line[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    let Some(&c) = line.get(i) else { return Err(perr("unbalanced quotes in request")) };
                    if c == q {
                        i += 1;
                        if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return Err(perr("unbalanced quotes in request"));
                        }
                        break;
                    }
                    if c == b'\\' && i + 1 < line.len() {
                        let e = line[i + 1];
                        let hex = |b: u8| (b as char).to_digit(16);
                        if q == b'"' && e == b'x' && i + 3 < line.len() {
                            if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                                arg.push((h * 16 + l) as u8);
                                i += 4;
                                continue;
                            }
                        }
                        let decoded = match (q, e) {
                            (b'"', b'n') => Some(b'\n'),
                            (b'"', b'r') => Some(b'\r'),
                            (b'"', b't') => Some(b'\t'),
                            (b'"', b'b') => Some(0x08),
                            (b'"', b'a') => Some(0x07),
                            (b'"', other) => Some(other),
                            (_, b'\'') => Some(b'\''),
                            _ => None,
                        };
                        if let Some(d) = decoded {
                            arg.push(d);
                            i += 2;
                            continue;
                        }
                    }
                    arg.push(c);
                    i += 1;
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(arg));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = next_command(&mut buf, &Limits::default())? {
            out.push(cmd);
        }
        Ok(out)
    }

    #[test]
    fn pipelined_arrays_and_inline() {
        let cmds =
            parse_all(b"*1\r\n$4\r\nPING\r\nPING\r\n\r\nSET k \"a b\\x41\"\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
        assert_eq!(cmds.len(), 4);
        assert_eq!(cmds[2], vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("a bA")]);
        assert_eq!(cmds[3][1], Bytes::from("k"));
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$5\r\nab"[..]);
        assert_eq!(next_command(&mut buf, &Limits::default()), Ok(None));
        buf.extend_from_slice(b"cde\r\n");
        assert_eq!(next_command(&mut buf, &Limits::default()).unwrap().unwrap().len(), 2);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_frames_are_protocol_errors() {
        let huge = parse_all(b"*2\r\n$3\r\nSET\r\n$536870912\r\n").unwrap_err();
        assert_eq!(huge.to_string(), "Protocol error: invalid bulk length");
        assert!(parse_all(b"*x\r\n").is_err());
        assert!(parse_all(b"*1\r\n:5\r\n").is_err());
        assert!(parse_all(b"*1\r\n$3\r\nabcde\r\n").is_err());
        assert!(parse_all(b"SET k \"unterminated\r\n").is_err());
        assert!(parse_all(b"*99999999999\r\n").is_err());
        // No arguments: skipped, as Redis does.
        assert_eq!(parse_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap().len(), 1);
    }
}
