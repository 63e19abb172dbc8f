//! Frames: a 4-byte big-endian length, then the postcard encoding of one message. A message
//! larger than the frame limit (`--max-frame-bytes`: one set of millions of members) travels as
//! several frames in a row: each but the last has the top bit of its length set, and the
//! receiver joins them before it decodes, so no frame is larger than the limit and the message
//! is merged whole (a part of a set merged alone would be unsound: its clock covers members it
//! does not carry, and the merge would drop them). The frames of one message are written
//! together, so they are never interleaved with another message's.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::max_frame;

/// The top bit of a frame's length: more frames of the same message follow.
const MORE: u32 = 1 << 31;
/// The largest message (all of its frames) a node accepts.
pub const MAX_MESSAGE: usize = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    /// The message decoded from a prefix of the bytes: a form this build does not know (a
    /// newer peer's) is refused, never misread as the form it extends.
    #[error("a message with {0} bytes after its end")]
    Trailing(usize),
}

/// The frame of `msg`, length prefix included; the frames, when it is larger than the limit.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, postcard::Error> {
    encode_limited(msg, max_frame())
}

pub(crate) fn encode_limited<T: Serialize>(msg: &T, limit: usize) -> Result<Vec<u8>, postcard::Error> {
    let mut out = postcard::to_extend(msg, vec![0u8; 4])?;
    let len = out.len() - 4;
    if len <= limit {
        out[..4].copy_from_slice(&(len as u32).to_be_bytes());
        return Ok(out);
    }
    let payload = &out[4..];
    let mut split = Vec::with_capacity(len + 4 * len.div_ceil(limit));
    let mut pieces = payload.chunks(limit).peekable();
    while let Some(piece) = pieces.next() {
        let more = if pieces.peek().is_some() { MORE } else { 0 };
        split.extend_from_slice(&(piece.len() as u32 | more).to_be_bytes());
        split.extend_from_slice(piece);
    }
    Ok(split)
}

/// Reads one message (its frames) and decodes it.
pub async fn read<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    read_limited(r, max_frame(), MAX_MESSAGE).await
}

/// [`read`] of a message of at most `message` bytes in frames of at most `frame` (the
/// handshake's are tiny: a stranger cannot make a node hold much before it proves anything).
/// The buffer grows with the bytes that arrive, not with the length a header claims.
pub async fn read_limited<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
    frame: usize,
    message: usize,
) -> Result<T, FrameError> {
    let mut buf = Vec::new();
    loop {
        let header = r.read_u32().await?;
        let len = (header & !MORE) as usize;
        if len > frame {
            return Err(FrameError::TooLarge(len));
        }
        if buf.len() + len > message {
            return Err(FrameError::TooLarge(buf.len() + len));
        }
        // In steps of at most GROW bytes, each reserved exactly: the buffer ends the size of
        // the message, and grows only as fast as its bytes arrive.
        let mut left = len;
        while left > 0 {
            let step = left.min(GROW);
            buf.reserve_exact(step);
            let at = buf.len();
            buf.resize(at + step, 0);
            r.read_exact(&mut buf[at..]).await?;
            left -= step;
        }
        if header & MORE == 0 {
            let (msg, rest) = postcard::take_from_bytes(&buf)?;
            return if rest.is_empty() { Ok(msg) } else { Err(FrameError::Trailing(rest.len())) };
        }
    }
}

/// The step a frame's buffer grows by while its bytes arrive.
const GROW: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn roundtrip_and_limits() {
        let bytes = encode(&(7u64, "hello".to_string())).unwrap();
        let mut cur = std::io::Cursor::new(bytes);
        let back: (u64, String) = read(&mut cur).await.unwrap();
        assert_eq!(back, (7, "hello".into()));
        let mut huge = std::io::Cursor::new(u32::MAX.to_be_bytes().to_vec());
        assert!(matches!(read::<_, u64>(&mut huge).await, Err(FrameError::TooLarge(_))));
        // A message over the limit goes as frames no larger than it, joined on reading.
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let bytes = encode_limited(&big, 1000).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let header = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
            assert!((header & !MORE) as usize <= 1000);
            at += 4 + (header & !MORE) as usize;
        }
        assert!(bytes.len() > 10 * 1004);
        let mut cur = std::io::Cursor::new(bytes);
        let back: Vec<u8> = read(&mut cur).await.unwrap();
        assert_eq!(back, big);
        let mut garbage = std::io::Cursor::new(vec![0, 0, 0, 1, 0xff]);
        assert!(matches!(read::<_, String>(&mut garbage).await, Err(FrameError::Decode(_))));
        // A message that extends the one expected (a newer peer's form) is refused whole.
        let longer = encode(&(7u64, "hello".to_string(), 1u8)).unwrap();
        let mut cur = std::io::Cursor::new(longer);
        assert!(matches!(read::<_, (u64, String)>(&mut cur).await, Err(FrameError::Trailing(1))));
    }
}
