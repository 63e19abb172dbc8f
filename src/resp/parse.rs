//! Requests: RESP arrays of bulk strings (what every client sends, in RESP2 and RESP3 alike)
//! and inline commands (`PING\r\n` typed into telnet, redis-benchmark's PING_INLINE).
//!
//! A connection's [`Parser`] keeps the state of a request that has not fully arrived between
//! reads, as Redis keeps `qb_pos`, `multibulklen` and `bulklen` beside its `querybuf`: how far
//! the request was checked, how many arguments are still to come and where those that came
//! are. A read only looks at the bytes it added, so a request costs its length however many
//! pieces it arrives in (re-scanning it from its start on every read was quadratic). Nothing is
//! copied before the request is complete: its bytes stay in the connection's buffer, and the
//! arguments are then slices of one frozen buffer. Absurd lengths (a 512 MiB bulk header, more
//! than 10 arguments or a 16 KiB bulk before AUTH, as Redis 7) are refused at their header,
//! before any buffer grows toward them.

use bytes::{Buf, Bytes, BytesMut};

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

/// Redis 7's bounds for a client that has not authenticated (`processMultibulkBuffer`): more
/// arguments, or a longer bulk, is a protocol error and the connection closes.
pub const UNAUTHENTICATED_MAX_ARGS: i64 = 10;
pub const UNAUTHENTICATED_MAX_BULK: i64 = 16384;

/// Redis's bounds that come before the ones above: a count above `INT_MAX` and a bulk above
/// its default `proto-max-bulk-len` (512 MiB) are "invalid", authenticated or not. kura's own
/// (smaller) limits are checked after the authentication ones, so an unauthenticated client
/// gets Redis's error at Redis's defaults.
const REDIS_MAX_ARGS: i64 = i32::MAX as i64;
const REDIS_MAX_BULK: i64 = 512 << 20;

/// Longest length header (`*N` or `$N` and its CRLF) that is not already wrong.
const MAX_HEADER: usize = 32;

/// A request that cannot be framed. The connection answers `-ERR Protocol error: ...` and
/// closes, as Redis does: after a framing error the byte stream has no trustworthy boundary.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn perr(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// One connection's request parser: the state of the request in progress (see the module).
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    /// Offset in the buffer up to which the request in progress has been checked.
    pos: usize,
    state: State,
    /// Bytes looked at so far (tests check that it stays proportional to the bytes received).
    scanned: u64,
}

#[derive(Debug)]
enum State {
    /// Between requests.
    Idle,
    /// An inline command whose line end has not arrived (`pos` is where the search goes on).
    Inline,
    /// An array of `count` arguments: `args` holds (offset, length) of those that arrived,
    /// `bulk` the length of the one whose header was read (its body starts at `pos`).
    Array { count: usize, args: Vec<(usize, usize)>, bulk: Option<usize> },
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser { limits, pos: 0, state: State::Idle, scanned: 0 }
    }

    /// Bytes looked at so far.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Takes the next complete command off `buf`: `Ok(None)` when more bytes are needed (the
    /// caller appends them to `buf` and calls again; nothing else may take bytes off `buf`).
    /// Empty commands (a blank inline line, `*0`) are skipped. `authenticated`: whether
    /// Redis's limits for unauthenticated clients are lifted.
    ///
    /// # Errors
    /// A frame that is malformed or over the limits.
    pub fn next_command(
        &mut self,
        buf: &mut BytesMut,
        authenticated: bool,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if let State::Idle = self.state {
                let Some(&first) = buf.first() else { return Ok(None) };
                self.pos = 0;
                if first == b'*' {
                    let Some((count, at)) = self.read_len(buf, 1, "multibulk")? else { return Ok(None) };
                    if count > REDIS_MAX_ARGS {
                        return Err(perr("invalid multibulk length"));
                    }
                    if count > UNAUTHENTICATED_MAX_ARGS && !authenticated {
                        return Err(perr("unauthenticated multibulk length"));
                    }
                    if count > self.limits.max_args as i64 {
                        return Err(perr("invalid multibulk length"));
                    }
                    if count <= 0 {
                        // `*0` or a negative count: skipped, as Redis does.
                        buf.advance(at);
                        continue;
                    }
                    let count = count as usize;
                    // As Redis, no more room up front than 1024 arguments: the count is a claim.
                    self.state = State::Array { count, args: Vec::with_capacity(count.min(1024)), bulk: None };
                    self.pos = at;
                } else {
                    self.state = State::Inline;
                }
            }
            let args = match self.state {
                State::Idle => continue,
                State::Inline => match self.inline(buf)? {
                    Some(args) => args,
                    None => return Ok(None),
                },
                State::Array { .. } => match self.array(buf, authenticated)? {
                    Some(args) => args,
                    None => return Ok(None),
                },
            };
            self.state = State::Idle;
            if !args.is_empty() {
                return Ok(Some(args));
            }
        }
    }

    /// Reads a `\r\n`-terminated decimal after a type byte at `at`: (value, next offset).
    fn read_len(&mut self, buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
        let rest = buf.get(at..).unwrap_or_default();
        let window = &rest[..rest.len().min(MAX_HEADER)];
        let nl = window.iter().position(|&b| b == b'\n');
        // The type byte before `at` and the line up to its end.
        self.scanned += 1 + nl.map_or(window.len(), |nl| nl + 1) as u64;
        let Some(nl) = nl else {
            return if rest.len() >= MAX_HEADER { Err(perr(format!("invalid {what} length"))) } else { Ok(None) };
        };
        let line = rest[..nl].strip_suffix(b"\r").ok_or_else(|| perr(format!("invalid {what} length")))?;
        let text = std::str::from_utf8(line).map_err(|_| perr(format!("invalid {what} length")))?;
        let n: i64 = text.parse().map_err(|_| perr(format!("invalid {what} length")))?;
        Ok(Some((n, at + nl + 1)))
    }

    /// Goes on with the array in progress from `pos`: its arguments once all have arrived.
    fn array(&mut self, buf: &mut BytesMut, authenticated: bool) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            let State::Array { count, args, bulk } = &self.state else { return Ok(None) };
            if args.len() == *count {
                break;
            }
            let (count, bulk) = (*count, *bulk);
            let len = match bulk {
                Some(len) => len,
                None => {
                    let Some(&kind) = buf.get(self.pos) else { return Ok(None) };
                    if kind != b'$' {
                        return Err(perr(format!("expected '$', got '{}'", char::from(kind).escape_default())));
                    }
                    let Some((n, body)) = self.read_len(buf, self.pos + 1, "bulk")? else { return Ok(None) };
                    if !(0..=REDIS_MAX_BULK.max(self.limits.max_request_bytes as i64)).contains(&n) {
                        return Err(perr("invalid bulk length"));
                    }
                    if n > UNAUTHENTICATED_MAX_BULK && !authenticated {
                        return Err(perr("unauthenticated bulk length"));
                    }
                    if n as usize > self.limits.max_request_bytes {
                        return Err(perr("invalid bulk length"));
                    }
                    // The whole request, headers included, within the limit (64 bytes of
                    // headers per argument allowed for).
                    if body + n as usize + 2 > self.limits.max_request_bytes + 64 * (count + 1) {
                        return Err(perr("request is too large"));
                    }
                    self.pos = body;
                    if let State::Array { bulk, .. } = &mut self.state {
                        *bulk = Some(n as usize);
                    }
                    n as usize
                }
            };
            let end = self.pos + len + 2;
            if buf.len() < end {
                return Ok(None);
            }
            self.scanned += len as u64 + 2;
            if &buf[end - 2..end] != b"\r\n" {
                return Err(perr("bulk string is not terminated by CRLF"));
            }
            if let State::Array { args, bulk, .. } = &mut self.state {
                args.push((self.pos, len));
                *bulk = None;
            }
            self.pos = end;
        }
        let State::Array { args, .. } = std::mem::replace(&mut self.state, State::Idle) else { return Ok(None) };
        // One buffer for the whole request; its arguments are slices of it (no copy).
        let frame = buf.split_to(self.pos).freeze();
        self.pos = 0;
        Ok(Some(args.into_iter().map(|(at, len)| frame.slice(at..at + len)).collect()))
    }

    /// An inline command: one line, arguments split on spaces, with Redis's quoting rules.
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let from = self.pos;
        let found = buf[from..].iter().position(|&b| b == b'\n');
        self.scanned += found.map_or(buf.len() - from, |nl| nl + 1) as u64;
        let Some(nl) = found.map(|nl| from + nl) else {
            self.pos = buf.len();
            return if buf.len() > self.limits.max_inline_bytes {
                Err(perr("too big inline request"))
            } else {
                Ok(None)
            };
        };
        if nl > self.limits.max_inline_bytes {
            return Err(perr("too big inline request"));
        }
        self.pos = 0;
        let line = buf.split_to(nl + 1);
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        split_args(line).map(Some)
    }
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

    fn parse_as(input: &[u8], authenticated: bool) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut parser = Parser::new(Limits::default());
        let mut out = Vec::new();
        while let Some(cmd) = parser.next_command(&mut buf, authenticated)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        parse_as(input, true)
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
        let mut parser = Parser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$5\r\nab"[..]);
        assert_eq!(parser.next_command(&mut buf, true), Ok(None));
        buf.extend_from_slice(b"cde\r\n");
        assert_eq!(parser.next_command(&mut buf, true).unwrap().unwrap().len(), 2);
        assert!(buf.is_empty());
    }

    /// Fed one byte at a time, a pipeline gives the same commands as fed whole.
    #[test]
    fn any_split_gives_the_same_commands() {
        let input: &[u8] =
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*0\r\nECHO 'a b'\r\n*1\r\n$4\r\nPING\r\n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let whole = parse_all(input).unwrap();
        assert_eq!(whole.len(), 4);
        let mut parser = Parser::new(Limits::default());
        let (mut buf, mut pieces) = (BytesMut::new(), Vec::new());
        for &b in input {
            buf.extend_from_slice(&[b]);
            while let Some(cmd) = parser.next_command(&mut buf, true).unwrap() {
                pieces.push(cmd);
            }
        }
        assert_eq!(pieces, whole);
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
        assert!(parse_all(&[b'*'; 100]).is_err(), "a header with no end");
        assert!(parse_all(&[b'A'; 100 << 10]).is_err(), "an inline line with no end");
        // No arguments: skipped, as Redis does.
        assert_eq!(parse_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap().len(), 1);
    }

    /// Redis 7's limits before AUTH, in its order of checks: a count above INT_MAX or a bulk
    /// above 512 MiB is invalid first, then the unauthenticated limits, then kura's own.
    #[test]
    fn unauthenticated_limits_are_redis_7s() {
        let err = |input: &[u8], authenticated| parse_as(input, authenticated).unwrap_err().to_string();
        let unauth_mbulk = "Protocol error: unauthenticated multibulk length";
        let unauth_bulk = "Protocol error: unauthenticated bulk length";
        assert_eq!(err(b"*11\r\n", false), unauth_mbulk);
        assert_eq!(err(b"*100000\r\n", false), unauth_mbulk);
        assert_eq!(err(b"*2000000\r\n", false), unauth_mbulk);
        assert_eq!(err(b"*2000000\r\n", true), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*3000000000\r\n", false), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*1\r\n$16385\r\n", false), unauth_bulk);
        assert_eq!(err(b"*1\r\n$104857600\r\n", false), unauth_bulk);
        assert_eq!(err(b"*1\r\n$104857600\r\n", true), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$600000000\r\n", false), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$-1\r\n", false), "Protocol error: invalid bulk length");
        // At the limits: waits for the rest.
        assert_eq!(parse_as(b"*10\r\n$16384\r\n", false), Ok(vec![]));
        assert_eq!(parse_as(b"*100000\r\n$104857\r\n", true), Ok(vec![]));
        // Inline commands have only their line limit, as in Redis.
        assert_eq!(parse_as(b"AUTH a b c d e f g h i j k l\r\n", false).unwrap()[0].len(), 13);
    }

    /// A request of a million arguments arriving in pieces of 5 bytes is looked at about once:
    /// the bytes scanned stay within twice the bytes received (re-scanning the partial array
    /// from its start on every read looked at about 7 MB x 1.4 million reads / 2).
    #[test]
    fn parsing_is_linear_in_the_bytes_received() {
        let n = 1_000_000;
        let mut input = format!("*{}\r\n", n + 1).into_bytes();
        input.extend_from_slice(b"$5\r\nRPUSH\r\n");
        for _ in 0..n {
            input.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut parser = Parser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = None;
        for piece in input.chunks(5) {
            buf.extend_from_slice(piece);
            if let Some(cmd) = parser.next_command(&mut buf, true).unwrap() {
                got = Some(cmd);
            }
        }
        let cmd = got.expect("the whole request");
        assert_eq!(cmd.len(), n + 1);
        assert!(cmd[1..].iter().all(|a| a == "x"));
        let scanned = parser.scanned();
        println!("{} bytes received in pieces of 5, {scanned} scanned", input.len());
        assert!(scanned >= input.len() as u64, "every byte is looked at");
        assert!(scanned <= 2 * input.len() as u64, "{scanned} bytes scanned for {} received", input.len());
    }
}
