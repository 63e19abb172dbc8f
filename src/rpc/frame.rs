//! Frames: a 4-byte big-endian length, then the postcard encoding of one message.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::max_frame;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
}

/// The frame of `msg`, length prefix included.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, postcard::Error> {
    let mut out = postcard::to_extend(msg, vec![0u8; 4])?;
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Reads one frame and decodes it.
pub async fn read<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    let len = r.read_u32().await? as usize;
    if len > max_frame() {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(postcard::from_bytes(&buf)?)
}

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
        let mut garbage = std::io::Cursor::new(vec![0, 0, 0, 1, 0xff]);
        assert!(matches!(read::<_, String>(&mut garbage).await, Err(FrameError::Decode(_))));
    }
}
