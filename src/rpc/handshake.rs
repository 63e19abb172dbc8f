//! The peer handshake. Both sides prove they hold the cluster key without sending it:
//!
//! 1. client -> server `Hello { protocol, cluster, node, nonce_c }`
//! 2. server -> client `Welcome { protocol, cluster, node, nonce_s, proof_s }` (or `Refused`),
//!    `proof_s = HMAC(key, "server" | node_s | nonce_c | nonce_s)`
//! 3. client -> server `Proof { proof_c }`, `proof_c = HMAC(key, "client" | node_c | nonce_s | nonce_c)`
//! 4. server -> client `Ready` (or `Refused`)
//!
//! The key is derived from `--cluster-secret` (or, without one, from the cluster name, which
//! then only keeps clusters apart, and any node id can be claimed). Fresh nonces on both sides
//! defeat replay; the node ids in the proofs make each side's id part of what it proves.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::frame;

/// Bumped when peers of different versions cannot talk. 2: typed values in writes, forwards
/// with deadlines, flush marks in the cluster state, counter and HyperLogLog operations.
/// 3: sets and hashes (values and operations). 4: patches. 5 (issue 20): counters with entries
/// and a clock, the reader's flush cutoff in `ReadUnlessSame`, every message names its sender's
/// cluster, messages split over frames. 6: siblings carry the resets of what they overwrote and
/// the flush cutoff their writer had applied; every message carries its sender's deadline.
/// 7 (issue 21): lists and sorted sets (values and operations); plain reads by digest.
/// 8 (issue 22): pub/sub (`Publish`, `PubsubQuery`). 9: blocked clients' key watches
/// (`Watch`, `Touched`). 10: streams (`Value::Stream`, `Rmw::Stream`, the stream fields of
/// `Outcome`). 11: script marks in the cluster state (SCRIPT FLUSH and FUNCTION changes reach
/// every node), scripts and transactions run at their first key's decider (`Script`,
/// `Transaction`, `ScriptKill`, `Modify`'s `from_script`, `RemoteError::Busy`). 12 (issue
/// 24): the handshake's proofs cover the prover's node id. 13 (issue 24, point 5):
/// `RemoteError::DiskRefused`, a write refused unapplied by a node whose disk is in trouble.
/// 14, the first tagged version (kura 0.1.0, issue 24 point 7): the handshake names the
/// oldest version each side speaks, and a frame its message does not read to the end is
/// refused. 15 (issue 23): `Request::Batch`, several replication and read requests in one
/// message (sent only to a peer that agreed on 15; a 14 gets them one by one).
pub const PROTOCOL_VERSION: u16 = 15;

/// The oldest protocol this build speaks. Two nodes talk at the older of their two versions
/// when each speaks it, so builds one version step apart interoperate during a rolling
/// upgrade: a build that adds or changes a message bumps [`PROTOCOL_VERSION`], keeps this
/// one behind it, and sends the new form only over connections whose agreed version
/// ([`client`] and [`server`] return it) has it. `docs/upgrades.md` has the rules.
pub const OLDEST_PROTOCOL: u16 = 14;

/// The version two nodes talk at: the older of their versions, when both still speak it.
/// `mine` and `theirs` are (newest, oldest) pairs.
pub fn agree(mine: (u16, u16), theirs: (u16, u16)) -> Option<u16> {
    let v = mine.0.min(theirs.0);
    (v >= mine.1 && v >= theirs.1).then_some(v)
}

/// Who this node is to its peers, and the key that proves it belongs.
pub struct Identity {
    pub node_id: String,
    pub cluster: String,
    key: [u8; 32],
    /// The newest and the oldest protocol this node speaks (the constants; tests vary them).
    protocols: (u16, u16),
}

impl Identity {
    pub fn new(node_id: &str, cluster: &str, secret: Option<&str>) -> Identity {
        use sha2::Digest;
        let mut h = Sha256::new();
        h.update(b"kura-peer-key-v1\0");
        h.update(cluster.as_bytes());
        h.update(b"\0");
        h.update(secret.unwrap_or("").as_bytes());
        Identity {
            node_id: node_id.to_owned(),
            cluster: cluster.to_owned(),
            key: h.finalize().into(),
            protocols: (PROTOCOL_VERSION, OLDEST_PROTOCOL),
        }
    }

    /// This identity speaking protocols `oldest..=newest` (a build of another version, in tests).
    pub fn speaking(self, newest: u16, oldest: u16) -> Identity {
        Identity { protocols: (newest, oldest), ..self }
    }

    /// The MAC a node proves it holds the key with, over its role, its node id (so the id it
    /// claims is proved too) and both nonces.
    fn mac(&self, role: &[u8], node: &str, first: &[u8; 16], second: &[u8; 16]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(role);
        mac.update(&(node.len() as u32).to_be_bytes());
        mac.update(node.as_bytes());
        mac.update(first);
        mac.update(second);
        mac
    }

    fn proof(&self, role: &[u8], first: &[u8; 16], second: &[u8; 16]) -> [u8; 32] {
        self.mac(role, &self.node_id, first, second).finalize().into_bytes().into()
    }

    /// Whether `proof` is `node`'s, made with the key.
    fn verify(&self, role: &[u8], node: &str, first: &[u8; 16], second: &[u8; 16], proof: &[u8; 32]) -> bool {
        self.mac(role, node, first, second).verify_slice(proof).is_ok()
    }
}

#[derive(Serialize, Deserialize)]
enum Msg {
    Hello { protocol: u16, oldest: u16, cluster: String, node: String, nonce: [u8; 16] },
    Welcome { protocol: u16, oldest: u16, cluster: String, node: String, nonce: [u8; 16], proof: [u8; 32] },
    Proof { proof: [u8; 32] },
    Ready,
    Refused { reason: String },
}

fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    crate::random::fill(&mut n);
    n
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Transport(String),
    #[error("peer is of cluster {theirs:?}, this node of {mine:?}")]
    OtherCluster { mine: String, theirs: String },
    #[error(
        "node {me:?} speaks peer protocols {}..={} and node {peer:?} {}..={}: upgrade a cluster one version at a time",
        mine.1, mine.0, theirs.1, theirs.0
    )]
    Version { me: String, mine: (u16, u16), peer: String, theirs: (u16, u16) },
    #[error("peer does not hold the cluster secret")]
    WrongSecret,
    #[error("refused: {0}")]
    Refused(String),
    #[error("unexpected handshake message")]
    Unexpected,
}

type Result<T> = std::result::Result<T, HandshakeError>;

async fn send<S: AsyncWrite + Unpin>(s: &mut S, m: &Msg) -> Result<()> {
    let bytes = frame::encode(m).map_err(|e| HandshakeError::Transport(e.to_string()))?;
    s.write_all(&bytes).await.map_err(|e| HandshakeError::Transport(e.to_string()))?;
    s.flush().await.map_err(|e| HandshakeError::Transport(e.to_string()))
}

/// The largest handshake message: ids, a cluster name, nonces and a proof, or a refusal.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

async fn recv<S: AsyncRead + Unpin>(s: &mut S) -> Result<Msg> {
    frame::read_limited(s, MAX_HANDSHAKE_FRAME, MAX_HANDSHAKE_FRAME)
        .await
        .map_err(|e| HandshakeError::Transport(e.to_string()))
}

/// Whether a peer of `cluster` speaking `theirs` may talk to `me`, and at which version.
fn admit(me: &Identity, cluster: &str, peer: &str, theirs: (u16, u16)) -> Result<u16> {
    if cluster != me.cluster {
        return Err(HandshakeError::OtherCluster { mine: me.cluster.clone(), theirs: cluster.to_owned() });
    }
    agree(me.protocols, theirs).ok_or_else(|| HandshakeError::Version {
        me: me.node_id.clone(),
        mine: me.protocols,
        peer: peer.to_owned(),
        theirs,
    })
}

/// The client's side. Returns the peer's node id and the protocol version the two agreed on.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, me: &Identity) -> Result<(String, u16)> {
    let nonce_c = nonce();
    let hello = Msg::Hello {
        protocol: me.protocols.0,
        oldest: me.protocols.1,
        cluster: me.cluster.clone(),
        node: me.node_id.clone(),
        nonce: nonce_c,
    };
    send(s, &hello).await?;
    let (node, nonce_s, agreed) = match recv(s).await? {
        Msg::Welcome { protocol, oldest, cluster, node, nonce, proof } => {
            let agreed = admit(me, &cluster, &node, (protocol, oldest))?;
            if !me.verify(b"server", &node, &nonce_c, &nonce, &proof) {
                return Err(HandshakeError::WrongSecret);
            }
            (node, nonce, agreed)
        }
        Msg::Refused { reason } => return Err(HandshakeError::Refused(reason)),
        _ => return Err(HandshakeError::Unexpected),
    };
    send(s, &Msg::Proof { proof: me.proof(b"client", &nonce_s, &nonce_c) }).await?;
    match recv(s).await? {
        Msg::Ready => Ok((node, agreed)),
        Msg::Refused { reason } => Err(HandshakeError::Refused(reason)),
        _ => Err(HandshakeError::Unexpected),
    }
}

/// The server's side. Returns the peer's node id and the protocol version the two agreed on.
pub async fn server<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, me: &Identity) -> Result<(String, u16)> {
    let (node, nonce_c, agreed) = match recv(s).await? {
        Msg::Hello { protocol, oldest, cluster, node, nonce } => match admit(me, &cluster, &node, (protocol, oldest)) {
            Ok(agreed) => (node, nonce, agreed),
            Err(e) => {
                let _ = send(s, &Msg::Refused { reason: e.to_string() }).await;
                return Err(e);
            }
        },
        _ => return Err(HandshakeError::Unexpected),
    };
    let nonce_s = nonce();
    let welcome = Msg::Welcome {
        protocol: me.protocols.0,
        oldest: me.protocols.1,
        cluster: me.cluster.clone(),
        node: me.node_id.clone(),
        nonce: nonce_s,
        proof: me.proof(b"server", &nonce_c, &nonce_s),
    };
    send(s, &welcome).await?;
    match recv(s).await? {
        Msg::Proof { proof } if me.verify(b"client", &node, &nonce_s, &nonce_c, &proof) => {
            send(s, &Msg::Ready).await?;
            Ok((node, agreed))
        }
        Msg::Proof { .. } => {
            let _ = send(s, &Msg::Refused { reason: "wrong cluster secret".into() }).await;
            Err(HandshakeError::WrongSecret)
        }
        _ => Err(HandshakeError::Unexpected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(a: Identity, b: Identity) -> (Result<(String, u16)>, Result<(String, u16)>) {
        let (mut x, mut y) = tokio::io::duplex(4096);
        tokio::join!(async move { client(&mut x, &a).await }, async move { server(&mut y, &b).await })
    }

    #[tokio::test]
    async fn same_secret_shakes_hands_other_secrets_do_not() {
        let (c, s) = pair(Identity::new("a", "kura", Some("s")), Identity::new("b", "kura", Some("s"))).await;
        assert_eq!(
            (c.unwrap(), s.unwrap()),
            (("b".to_string(), PROTOCOL_VERSION), ("a".to_string(), PROTOCOL_VERSION))
        );
        let (c, s) = pair(Identity::new("a", "kura", Some("x")), Identity::new("b", "kura", Some("s"))).await;
        assert!(c.is_err() && s.is_err());
        let (c, s) = pair(Identity::new("a", "kura", None), Identity::new("b", "kura", Some("s"))).await;
        assert!(c.is_err() && s.is_err());
        let (c, s) = pair(Identity::new("a", "other", None), Identity::new("b", "kura", None)).await;
        assert!(c.is_err() && s.is_err());
    }

    /// A proof is of the id it was made with: a node id changed on the way (a relay that does
    /// not hold the key) makes it fail.
    #[test]
    fn a_proof_covers_the_provers_node_id() {
        let b = Identity::new("b", "kura", Some("s"));
        let (n1, n2) = (nonce(), nonce());
        let proof = b.proof(b"server", &n1, &n2);
        let a = Identity::new("a", "kura", Some("s"));
        assert!(a.verify(b"server", "b", &n1, &n2, &proof));
        assert!(!a.verify(b"server", "c", &n1, &n2, &proof));
        assert!(!a.verify(b"client", "b", &n1, &n2, &proof), "roles differ");
    }

    /// Builds one version step apart talk at the older one; two steps apart, or a build that
    /// no longer speaks the other's version, are refused on both sides with an error naming
    /// both ranges, never misread.
    #[tokio::test]
    async fn builds_one_version_apart_talk_at_the_older_one() {
        let node = |id: &str, newest, oldest| Identity::new(id, "kura", Some("s")).speaking(newest, oldest);
        let (c, s) = pair(node("a", 15, 14), node("b", 14, 14)).await;
        assert_eq!((c.unwrap().1, s.unwrap().1), (14, 14));
        let (c, s) = pair(node("a", 14, 14), node("b", 15, 14)).await;
        assert_eq!((c.unwrap().1, s.unwrap().1), (14, 14));
        let (c, s) = pair(node("a", 16, 15), node("b", 14, 14)).await;
        let (c, s) = (c.unwrap_err().to_string(), s.unwrap_err().to_string());
        let says =
            r#"node "b" speaks peer protocols 14..=14 and node "a" 15..=16: upgrade a cluster one version at a time"#;
        assert_eq!(s, says);
        assert_eq!(c, format!("refused: {says}"));
        assert_eq!(agree((14, 14), (14, 14)), Some(14));
        assert_eq!(agree((15, 14), (15, 15)), Some(15));
        assert_eq!(agree((15, 15), (14, 13)), None);
    }
}
