//! The opaque context of DGET/DPUT: a version vector in printable form.
//!
//! Layout before base64url (no padding): `[format = 1] [postcard(VersionVector)] [tag: 8 bytes]`,
//! where the tag is a truncated HMAC-SHA256 of the first two parts under the cluster's
//! [`ContextKey`]. The tag is the checksum the design asks for and more: a context that was
//! corrupted, or forged by a client to claim history it never read (which would silently
//! discard siblings), fails to decode and is answered with `-ERR`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::VersionVector;

const FORMAT: u8 = 1;
const TAG_LEN: usize = 8;
/// No honest context is anywhere near this long; bounds the work a hostile one can cause.
const MAX_ENCODED_LEN: usize = 64 * 1024;

/// Why a context was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("context is not valid base64url")]
    NotBase64,
    #[error("context is too long")]
    TooLong,
    #[error("context has an unknown format")]
    UnknownFormat,
    #[error("context checksum mismatch (corrupt or forged)")]
    BadChecksum,
    #[error("context is malformed")]
    Malformed,
}

/// The secret that signs contexts. Every node of a cluster must use the same key.
#[derive(Clone)]
pub struct ContextKey([u8; 32]);

impl ContextKey {
    pub fn new(bytes: [u8; 32]) -> ContextKey {
        ContextKey(bytes)
    }

    /// A key derived from a passphrase (e.g. the cluster secret or cluster name).
    pub fn derive(material: &[u8]) -> ContextKey {
        use sha2::Digest;
        let mut h = Sha256::new();
        h.update(b"kura-context-key-v1");
        h.update(material);
        ContextKey(h.finalize().into())
    }

    pub(crate) fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(data);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

impl std::fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextKey(..)")
    }
}

/// Encoding and decoding of contexts.
pub struct Context;

impl Context {
    /// The printable form of `vv`.
    pub fn encode(vv: &VersionVector, key: &ContextKey) -> String {
        let mut raw = vec![FORMAT];
        raw.extend(postcard::to_stdvec(vv).expect("serialising to a Vec cannot fail"));
        let tag = key.tag(&raw);
        raw.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses a client's context. The empty string is the empty context (no causal history).
    ///
    /// # Errors
    /// [`ContextError`] when the text is not a context this cluster issued.
    pub fn decode(text: &[u8], key: &ContextKey) -> Result<VersionVector, ContextError> {
        if text.is_empty() {
            return Ok(VersionVector::default());
        }
        if text.len() > MAX_ENCODED_LEN {
            return Err(ContextError::TooLong);
        }
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| ContextError::NotBase64)?;
        if raw.len() < 1 + TAG_LEN {
            return Err(ContextError::Malformed);
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_LEN);
        if body[0] != FORMAT {
            return Err(ContextError::UnknownFormat);
        }
        if key.tag(body) != tag {
            return Err(ContextError::BadChecksum);
        }
        let vv: VersionVector = postcard::from_bytes(&body[1..]).map_err(|_| ContextError::Malformed)?;
        // Re-normalise: a signed context is ours, but never trust ordering invariants blindly.
        Ok(VersionVector::from_entries(vv.entries().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Actor;

    fn key() -> ContextKey {
        ContextKey::derive(b"test")
    }

    #[test]
    fn roundtrip_is_printable() {
        let vv = VersionVector::from_entries(vec![(Actor(u64::MAX), 3), (Actor(7), 1)]);
        let text = Context::encode(&vv, &key());
        assert!(text.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(Context::decode(text.as_bytes(), &key()), Ok(vv));
        let empty = Context::encode(&VersionVector::default(), &key());
        assert_eq!(Context::decode(empty.as_bytes(), &key()), Ok(VersionVector::default()));
        assert_eq!(Context::decode(b"", &key()), Ok(VersionVector::default()));
    }

    #[test]
    fn corrupt_forged_and_foreign_contexts_are_refused() {
        let vv = VersionVector::from_entries(vec![(Actor(1), 2)]);
        let text = Context::encode(&vv, &key());
        // Flip one character in the middle.
        let mut bad = text.clone().into_bytes();
        let mid = bad.len() / 2;
        bad[mid] = if bad[mid] == b'A' { b'B' } else { b'A' };
        assert!(Context::decode(&bad, &key()).is_err());
        // Another cluster's key.
        assert_eq!(Context::decode(text.as_bytes(), &ContextKey::derive(b"other")), Err(ContextError::BadChecksum));
        // A hand-made body claiming more history, with a made-up tag.
        let mut forged = vec![FORMAT];
        forged.extend(postcard::to_stdvec(&VersionVector::from_entries(vec![(Actor(1), 1000)])).unwrap());
        forged.extend_from_slice(&[0u8; TAG_LEN]);
        let forged = URL_SAFE_NO_PAD.encode(forged);
        assert_eq!(Context::decode(forged.as_bytes(), &key()), Err(ContextError::BadChecksum));
        assert_eq!(Context::decode(b"!!not base64!!", &key()), Err(ContextError::NotBase64));
        assert_eq!(Context::decode(b"AA", &key()), Err(ContextError::Malformed));
    }
}
