//! TLS (rustls, ring provider) for clients and for peers, with Redis's options: a client
//! listener on `--tls-port` with `--tls-cert-file`/`--tls-key-file`, client certificates
//! checked against `--tls-ca-cert-file` as `--tls-auth-clients` says (Redis's default: yes);
//! and with `--tls-cluster yes` the peer port speaks mutual TLS against the same CA: a peer
//! without a certificate from it cannot connect, and a node connects only to peers with one.
//!
//! One [`Tls`] owns the files' paths and the configurations built from them; connections take
//! the current configuration when they start, and [`Tls::reload`] (SIGHUP, `CONFIG SET
//! tls-...`) builds new ones from the files, so a renewed certificate serves new connections
//! while open ones keep theirs. A reload that fails keeps the old configuration.
//!
//! Peers are reached by address, so a peer's certificate is checked for its chain to the CA,
//! not for a name (as Redis's cluster bus does); the peer handshake then proves the node id.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Redis's `tls-auth-clients`: whether a client must present a certificate from the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthClients {
    Yes,
    No,
    Optional,
}

impl AuthClients {
    /// Redis's spellings: `yes`, `no`, `optional`.
    pub fn parse(text: &str) -> Option<AuthClients> {
        match text.to_ascii_lowercase().as_str() {
            "yes" => Some(AuthClients::Yes),
            "no" => Some(AuthClients::No),
            "optional" => Some(AuthClients::Optional),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthClients::Yes => "yes",
            AuthClients::No => "no",
            AuthClients::Optional => "optional",
        }
    }
}

/// Where the certificates are, and what is asked of clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub auth_clients: AuthClients,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no private key")]
    NoKey { path: PathBuf },
    #[error("tls-ca-cert-file is needed to check client or peer certificates")]
    NoCa,
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid CA certificates: {0}")]
    Verifier(String),
}

/// The configurations built from one reading of the files.
struct Configs {
    clients: Arc<ServerConfig>,
    /// `None` unless `--tls-cluster yes`.
    peers: Option<(Arc<ServerConfig>, Arc<ClientConfig>)>,
}

/// The node's TLS state: the files and the configurations of the last successful reading.
pub struct Tls {
    files: Mutex<TlsFiles>,
    cluster: bool,
    configs: ArcSwap<Configs>,
}

impl Tls {
    /// Reads the files and builds the configurations; `cluster`: peers use mutual TLS.
    ///
    /// # Errors
    /// A file that cannot be read or holds no certificate or key, or a CA needed and missing.
    pub fn new(files: TlsFiles, cluster: bool) -> Result<Tls, TlsError> {
        let configs = build(&files, cluster)?;
        Ok(Tls { files: Mutex::new(files), cluster, configs: ArcSwap::from_pointee(configs) })
    }

    /// Whether the peer port speaks TLS.
    pub fn cluster(&self) -> bool {
        self.cluster
    }

    /// The files now in use.
    pub fn files(&self) -> TlsFiles {
        self.files.lock().clone()
    }

    /// Reads `files` (the current ones when `None`) and uses them for new connections; a
    /// failure changes nothing.
    ///
    /// # Errors
    /// As [`Tls::new`].
    pub fn reload(&self, files: Option<TlsFiles>) -> Result<(), TlsError> {
        let mut current = self.files.lock();
        let files = files.unwrap_or_else(|| current.clone());
        let configs = build(&files, self.cluster)?;
        self.configs.store(Arc::new(configs));
        *current = files;
        Ok(())
    }

    /// Accepts a client's TLS connection with the current configuration.
    pub fn client_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.configs.load().clients.clone())
    }

    /// Accepts a peer's mutual TLS connection; `None` unless `--tls-cluster yes`.
    pub fn peer_acceptor(&self) -> Option<TlsAcceptor> {
        self.configs.load().peers.as_ref().map(|(server, _)| TlsAcceptor::from(server.clone()))
    }

    /// Connects to a peer with this node's certificate; `None` unless `--tls-cluster yes`.
    pub fn peer_connector(&self) -> Option<TlsConnector> {
        self.configs.load().peers.as_ref().map(|(_, client)| TlsConnector::from(client.clone()))
    }
}

/// The name a peer is reached by: its address (certificates are not checked for it).
pub fn peer_name(ip: IpAddr) -> ServerName<'static> {
    ServerName::IpAddress(ip.into())
}

/// ring's provider: aws-lc-rs (rustls's default, with post-quantum key exchange) builds a C
/// library with its own toolchain needs; ring's classical suites are what Redis's OpenSSL
/// offers too.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn build(files: &TlsFiles, cluster: bool) -> Result<Configs, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let roots = match &files.ca {
        Some(path) => Some(Arc::new(read_roots(path)?)),
        None => None,
    };
    let verifier = match (files.auth_clients, &roots) {
        (AuthClients::No, _) => None,
        (_, None) => return Err(TlsError::NoCa),
        (auth, Some(roots)) => {
            let builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider());
            let builder = if auth == AuthClients::Optional { builder.allow_unauthenticated() } else { builder };
            Some(builder.build().map_err(|e| TlsError::Verifier(e.to_string()))?)
        }
    };
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let clients = match verifier {
        Some(v) => builder.with_client_cert_verifier(v).with_single_cert(certs.clone(), key.clone_key())?,
        None => builder.with_no_client_auth().with_single_cert(certs.clone(), key.clone_key())?,
    };
    let peers = if cluster {
        let roots = roots.ok_or(TlsError::NoCa)?;
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(certs.clone(), key.clone_key())?;
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
            .with_client_auth_cert(certs, key)?;
        Some((Arc::new(server), Arc::new(client)))
    } else {
        None
    };
    Ok(Configs { clients: Arc::new(clients), peers })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = rustls_pemfile::certs(&mut &bytes[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read { path: path.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    rustls_pemfile::private_key(&mut &bytes[..])
        .map_err(|source| TlsError::Read { path: path.to_owned(), source })?
        .ok_or_else(|| TlsError::NoKey { path: path.to_owned() })
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Verifier(format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// A peer's certificate must chain to the CA; its names are not checked (peers are reached by
/// address, and the handshake inside proves the node id).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
