//! The command line of design.md section 4: every flag also reads `KURA_<NAME>` from the
//! environment, and `--config FILE` reads a TOML file with the same names (command line and
//! environment win over the file).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::storage::FsyncPolicy;

#[derive(Parser, Debug)]
#[command(
    name = "kura",
    version,
    about = "A Dynamo-style, always-writable key-value store that speaks the Redis protocol."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `kura` alone runs a server with these options.
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node (the default).
    Server(ServerArgs),
}

/// Options of `kura server`. Unset options come from `--config`, then the defaults.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerArgs {
    /// RESP address for clients [default: 127.0.0.1:6379]
    #[arg(long, env = "KURA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address for peer connections; outgoing peer connections bind to its IP [default: 127.0.0.1:7379]
    #[arg(long, env = "KURA_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,
    /// Prometheus /metrics address [default: 127.0.0.1:9379]
    #[arg(long, env = "KURA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Where data, hints and ring state live [default: ./kura-data]
    #[arg(long, env = "KURA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// This node's id [default: generated once and kept in the data dir]
    #[arg(long, env = "KURA_NODE_ID")]
    pub node_id: Option<String>,
    /// Cluster address of a member to join through (repeatable)
    #[arg(long = "seed", env = "KURA_SEED", value_delimiter = ',')]
    #[serde(default)]
    pub seed: Vec<SocketAddr>,
    /// Replicas per key [default: 3]
    #[arg(long, env = "KURA_N")]
    pub n: Option<usize>,
    /// Replies a read waits for [default: 2]
    #[arg(long, env = "KURA_R")]
    pub r: Option<usize>,
    /// Acknowledgements a write waits for [default: 2]
    #[arg(long, env = "KURA_W")]
    pub w: Option<usize>,
    /// Ring size Q, a power of two, fixed when the cluster is created [default: 64]
    #[arg(long, env = "KURA_PARTITIONS")]
    pub partitions: Option<u32>,
    /// How keys are placed on the ring, fixed when the cluster is created: md5 (the paper's
    /// ring) or slots (Redis Cluster's slots: cluster clients route in one hop). A joining node
    /// takes its cluster's; a restart keeps its data dir's [default: md5]
    #[arg(long, env = "KURA_PLACEMENT", value_enum)]
    pub placement: Option<crate::ring::Placement>,
    /// Seconds between anti-entropy exchanges [default: 60]
    #[arg(long, env = "KURA_AAE_INTERVAL")]
    pub aae_interval: Option<u64>,
    /// Stores with more keys than this (estimated) build anti-entropy's leaves in the
    /// background after the node serves, not before [default: 100000]
    #[arg(long, env = "KURA_AAE_WALK_AT_OPEN_KEYS")]
    pub aae_walk_at_open_keys: Option<usize>,
    /// Largest value a write accepts, in bytes [default: 16777216]
    #[arg(long, env = "KURA_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<usize>,
    /// Most siblings a write with a context may leave a key with; past it the write is
    /// refused until a client merges them (Riak's max_siblings) [default: 100]
    #[arg(long, env = "KURA_MAX_SIBLINGS")]
    pub max_siblings: Option<usize>,
    /// Most members or fields one reply lists (SMEMBERS, HGETALL, SINTER ...; SSCAN and HSCAN
    /// page) [default: 1000000]
    #[arg(long, env = "KURA_MAX_REPLY_MEMBERS")]
    pub max_reply_members: Option<usize>,
    /// Largest request (all arguments of one command), in bytes [default: 64 MiB]
    #[arg(long, env = "KURA_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Milliseconds a request waits for its R or W replicas (and any peer request) [default: 2000]
    #[arg(long, env = "KURA_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Milliseconds a replica (or a node a write is forwarded to) may stay silent within a
    /// request before a stand-in takes its place (paper 4.6) [default: 500]
    #[arg(long, env = "KURA_SLOPPY_AFTER_MS")]
    pub sloppy_after_ms: Option<u64>,
    /// Largest frame of the peer protocol, in bytes (at least 65536; give every node the same):
    /// a transfer batch is a quarter of it at most, and a message larger than it (one huge set)
    /// travels as several frames [default: 268435456]
    #[arg(long, env = "KURA_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Partition transfers this node sends at once [default: 2]
    #[arg(long, env = "KURA_TRANSFER_LIMIT")]
    pub transfer_limit: Option<usize>,
    /// Bytes per second one partition transfer may send; 0 is no limit [default: 0]
    #[arg(long, env = "KURA_TRANSFER_RATE")]
    pub transfer_rate: Option<u64>,
    /// Foreground p99 latency, in milliseconds, above which background work (transfers,
    /// anti-entropy, hint delivery, reaping) waits before each batch (paper 6.5); 0 never
    /// waits [default: 10]
    #[arg(long, env = "KURA_BACKGROUND_P99_MS")]
    pub background_p99_ms: Option<u64>,
    /// Milliseconds a key whose every sibling is deleted or expired is kept before it is
    /// reaped (once every replica and stand-in agrees); never less than the request timeout,
    /// so a copy sent before the delete has arrived or expired [default: 10000]
    #[arg(long, env = "KURA_REAP_GRACE_MS")]
    pub reap_grace_ms: Option<u64>,
    /// Worker threads of the runtime [default: one per core]
    #[arg(long, env = "KURA_THREADS")]
    pub threads: Option<usize>,
    /// Databases SELECT can choose, 0 to N-1 [default: 16]
    #[arg(long, env = "KURA_DATABASES")]
    pub databases: Option<u32>,
    /// Most client connections at once [default: 10000]
    #[arg(long, env = "KURA_MAXCLIENTS")]
    pub maxclients: Option<usize>,
    /// Redis's `client-output-buffer-limit`: `<class> <hard> <soft> <seconds>` for any of the
    /// classes normal, replica, pubsub. The hard limits of normal and pubsub connections close
    /// one whose replies waiting for its socket pass them; 0 is no limit
    /// [default: "normal 256mb 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60"]
    #[arg(long, env = "KURA_CLIENT_OUTPUT_BUFFER_LIMIT")]
    pub client_output_buffer_limit: Option<String>,
    /// Seconds a client connection may stay idle before it is closed, 0 for never (Redis's
    /// `timeout`) [default: 0]
    #[arg(long, env = "KURA_TIMEOUT")]
    pub timeout: Option<u64>,
    /// When the journal is fsynced [default: everysec]
    #[arg(long, env = "KURA_FSYNC", value_enum)]
    pub fsync: Option<FsyncPolicy>,
    /// Free space kept on the data dir's file system: below it writes are refused (MISCONF)
    /// until a quarter more is free; bytes or Redis's units (`256mb`), 0 to not check, `auto`
    /// for the smaller of 256mb and 5% of the file system [default: auto]
    #[arg(long, env = "KURA_MIN_FREE_DISK")]
    pub min_free_disk: Option<String>,
    /// Password clients must give with AUTH or HELLO
    #[arg(long, env = "KURA_REQUIREPASS")]
    pub requirepass: Option<String>,
    /// Shared secret of the cluster's peers (and of its contexts)
    #[arg(long, env = "KURA_CLUSTER_SECRET")]
    pub cluster_secret: Option<String>,
    /// Allow a cluster address that is not loopback without --cluster-secret: anyone who
    /// reaches the peer port can then read and write every key
    #[arg(long, env = "KURA_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    pub insecure: Option<bool>,
    /// Port of a TLS listener for clients, on the address of --listen (Redis's `tls-port`)
    #[arg(long, env = "KURA_TLS_PORT")]
    pub tls_port: Option<u16>,
    /// PEM certificate (chain) this node presents to clients and, with --tls-cluster, peers
    #[arg(long, env = "KURA_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file
    #[arg(long, env = "KURA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates that client and peer certificates must chain to
    #[arg(long, env = "KURA_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Whether TLS clients must present a certificate from the CA: yes, no or optional
    /// [default: yes]
    #[arg(long, env = "KURA_TLS_AUTH_CLIENTS")]
    pub tls_auth_clients: Option<String>,
    /// yes: peers speak mutual TLS against --tls-ca-cert-file [default: no]
    #[arg(long, env = "KURA_TLS_CLUSTER")]
    pub tls_cluster: Option<String>,
    /// Zone of this node; preference lists span zones when they can
    #[arg(long, env = "KURA_ZONE")]
    pub zone: Option<String>,
    /// TOML file with the same option names
    #[arg(long, env = "KURA_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// The resolved configuration of a node.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub cluster_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub node_id: Option<String>,
    pub seeds: Vec<SocketAddr>,
    pub n: usize,
    pub r: usize,
    pub w: usize,
    pub partitions: u32,
    pub placement: crate::ring::Placement,
    pub aae_interval_secs: u64,
    pub aae_walk_at_open_keys: usize,
    pub max_value_bytes: usize,
    pub max_siblings: usize,
    pub max_request_bytes: usize,
    pub max_reply_members: usize,
    pub maxclients: usize,
    pub output_limits: [crate::clients::OutputLimit; 3],
    pub timeout: u64,
    pub databases: u32,
    pub threads: usize,
    pub request_timeout_ms: u64,
    pub sloppy_after_ms: u64,
    pub max_frame_bytes: usize,
    pub transfer_limit: usize,
    pub transfer_rate: u64,
    pub background_p99_ms: u64,
    pub reap_grace_ms: u64,
    pub fsync: FsyncPolicy,
    /// Bytes kept free on the data dir's file system (`None`: the storage's default).
    pub min_free_disk: Option<u64>,
    pub requirepass: Option<String>,
    pub cluster_secret: Option<String>,
    pub insecure: bool,
    pub zone: Option<String>,
    /// The client TLS listener (on the IP of `listen`).
    pub tls_listen: Option<SocketAddr>,
    /// Certificates, when TLS is used for clients or peers.
    pub tls: Option<crate::tls::TlsFiles>,
    pub tls_cluster: bool,
}

/// The longest node id (it travels in every handshake, whose frames are small).
const MAX_NODE_ID: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Resolves command line (with environment) over the config file over the defaults.
    ///
    /// # Errors
    /// An unreadable or invalid file, or inconsistent values (R or W above N, ...).
    pub fn resolve(args: ServerArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                toml::from_str::<ServerArgs>(&text)
                    .map_err(|source| ConfigError::Parse { path: path.clone(), source })?
            }
            None => ServerArgs::default(),
        };
        Config::resolve_over(args, file)
    }

    /// [`Config::resolve`] over the options `file` read from the config file.
    ///
    /// # Errors
    /// Inconsistent values (R or W above N, ...).
    pub fn resolve_over(args: ServerArgs, file: ServerArgs) -> Result<Config, ConfigError> {
        macro_rules! pick {
            ($f:ident, $default:expr) => {
                args.$f.clone().or(file.$f.clone()).unwrap_or_else(|| $default)
            };
        }
        let addr = |s: &str| s.parse::<SocketAddr>().expect("valid default address");
        let listen = pick!(listen, addr("127.0.0.1:6379"));
        let tls_port = args.tls_port.or(file.tls_port);
        let tls_cluster = match args.tls_cluster.as_ref().or(file.tls_cluster.as_ref()) {
            None => false,
            Some(text) => yes_no(text).ok_or_else(|| ConfigError::Invalid("tls-cluster must be yes or no".into()))?,
        };
        let auth_clients = match args.tls_auth_clients.as_ref().or(file.tls_auth_clients.as_ref()) {
            None => crate::tls::AuthClients::Yes,
            Some(text) => crate::tls::AuthClients::parse(text)
                .ok_or_else(|| ConfigError::Invalid("tls-auth-clients must be yes, no or optional".into()))?,
        };
        let tls = match (
            args.tls_cert_file.clone().or(file.tls_cert_file.clone()),
            args.tls_key_file.clone().or(file.tls_key_file.clone()),
        ) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert,
                key,
                ca: args.tls_ca_cert_file.clone().or(file.tls_ca_cert_file.clone()),
                auth_clients,
            }),
            (None, None) if tls_port.is_none() && !tls_cluster => None,
            _ => return Err(ConfigError::Invalid("TLS needs both --tls-cert-file and --tls-key-file".into())),
        };
        let c = Config {
            listen,
            cluster_listen: pick!(cluster_listen, addr("127.0.0.1:7379")),
            metrics_listen: pick!(metrics_listen, addr("127.0.0.1:9379")),
            data_dir: pick!(data_dir, PathBuf::from("./kura-data")),
            node_id: args.node_id.clone().or(file.node_id.clone()),
            seeds: if args.seed.is_empty() { file.seed.clone() } else { args.seed.clone() },
            n: pick!(n, 3),
            r: pick!(r, 2),
            w: pick!(w, 2),
            partitions: pick!(partitions, 64),
            placement: pick!(placement, crate::ring::Placement::Md5),
            aae_interval_secs: pick!(aae_interval, 60),
            aae_walk_at_open_keys: pick!(aae_walk_at_open_keys, 100_000),
            // 16 MiB: applications that cache values of a few MB (and Redis's own tests, with
            // 4 MB strings) work, where Riak warns at 5 MB and refuses at 50 MB. A key's
            // siblings stay within a peer frame whatever this is (`replica::max_sibling_bytes`).
            max_value_bytes: pick!(max_value_bytes, 16 << 20),
            max_siblings: pick!(max_siblings, crate::replica::MAX_SIBLINGS),
            max_request_bytes: pick!(max_request_bytes, 64 << 20),
            max_reply_members: pick!(max_reply_members, 1_000_000),
            maxclients: pick!(maxclients, 10_000),
            output_limits: match args.client_output_buffer_limit.as_ref().or(file.client_output_buffer_limit.as_ref()) {
                Some(text) => crate::clients::parse_output_limits(text, crate::clients::OUTPUT_LIMITS)
                    .map_err(|why| ConfigError::Invalid(format!("client-output-buffer-limit: {why}")))?,
                None => crate::clients::OUTPUT_LIMITS,
            },
            timeout: pick!(timeout, 0),
            databases: pick!(databases, 16),
            request_timeout_ms: pick!(request_timeout_ms, 2000),
            sloppy_after_ms: pick!(sloppy_after_ms, 500),
            max_frame_bytes: pick!(max_frame_bytes, crate::rpc::MAX_FRAME),
            transfer_limit: pick!(transfer_limit, 2),
            transfer_rate: pick!(transfer_rate, 0),
            background_p99_ms: pick!(background_p99_ms, 10),
            // A copy of the key sent before its delete arrives within the request timeout or
            // is refused (`Request::expires`): reaping waits at least that long.
            reap_grace_ms: pick!(reap_grace_ms, 10_000).max(pick!(request_timeout_ms, 2000)),
            threads: pick!(threads, std::thread::available_parallelism().map_or(1, |n| n.get())),
            fsync: pick!(fsync, FsyncPolicy::Everysec),
            min_free_disk: match args.min_free_disk.as_ref().or(file.min_free_disk.as_ref()) {
                None => None,
                Some(text) if text.eq_ignore_ascii_case("auto") => None,
                Some(text) => Some(crate::clients::memory(text).ok_or_else(|| {
                    ConfigError::Invalid(format!("min-free-disk: {text:?} is not a size (bytes, 256mb, auto)"))
                })?),
            },
            requirepass: args.requirepass.clone().or(file.requirepass.clone()),
            cluster_secret: args.cluster_secret.clone().or(file.cluster_secret.clone()),
            insecure: pick!(insecure, false),
            zone: args.zone.clone().or(file.zone.clone()),
            tls_listen: tls_port.map(|port| SocketAddr::new(listen.ip(), port)),
            tls,
            tls_cluster,
        };
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.n == 0 || self.r == 0 || self.w == 0 {
            return bad("n, r and w must be at least 1");
        }
        if self.r > self.n || self.w > self.n {
            return bad("r and w must not exceed n");
        }
        if !self.partitions.is_power_of_two() {
            return bad("partitions must be a power of two");
        }
        if self.placement == crate::ring::Placement::Slots && self.partitions > u32::from(crate::ring::SLOTS_COUNT) {
            return bad("with --placement slots, partitions must be at most 16384 (a partition is a range of slots)");
        }
        if self.max_value_bytes == 0 || self.max_request_bytes < self.max_value_bytes {
            return bad("max-value-bytes must be positive and at most max-request-bytes");
        }
        if self.max_siblings == 0 {
            return bad("max-siblings must be at least 1");
        }
        if self.databases == 0 {
            return bad("databases must be at least 1");
        }
        // A bound of 0 would make every SSCAN page empty and never advance.
        if self.max_reply_members == 0 {
            return bad("max-reply-members must be at least 1");
        }
        if self.maxclients == 0 {
            return bad("maxclients must be at least 1");
        }
        if !(crate::rpc::MIN_FRAME..=crate::rpc::MAX_FRAME).contains(&self.max_frame_bytes) {
            return bad("max-frame-bytes must be between 65536 and 268435456");
        }
        if self.transfer_limit == 0 {
            return bad("transfer-limit must be at least 1");
        }
        if self.sloppy_after_ms == 0 || self.sloppy_after_ms >= self.request_timeout_ms {
            return bad("sloppy-after-ms must be positive and below request-timeout-ms");
        }
        if self.threads == 0 {
            return bad("threads must be at least 1");
        }
        if self.node_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_NODE_ID) {
            return bad("node-id must be 1 to 256 bytes");
        }
        // Secure by default (CockroachDB's rule): the peer port answers reads and writes of
        // every key, so off this machine it needs the cluster secret, or a word that says not.
        if !self.cluster_listen.ip().is_loopback()
            && self.cluster_secret.is_none()
            && !self.tls_cluster
            && !self.insecure
        {
            return Err(ConfigError::Invalid(format!(
                "the cluster address {} is not a loopback address, and anyone who reaches it could read and \
                 write every key: give every node the same --cluster-secret, or --tls-cluster yes with \
                 certificates from one CA, or --insecure to run without either",
                self.cluster_listen
            )));
        }
        if let Some(tls) = &self.tls {
            let needs_ca =
                self.tls_cluster || (self.tls_listen.is_some() && tls.auth_clients != crate::tls::AuthClients::No);
            if needs_ca && tls.ca.is_none() {
                return bad("--tls-ca-cert-file is needed to check client certificates (or --tls-auth-clients no) and peer certificates (--tls-cluster yes)");
            }
        }
        Ok(())
    }
}

/// Redis's booleans: `yes` or `no`.
fn yes_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_fills_what_the_command_line_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kura.toml");
        std::fs::write(&path, "listen = \"127.0.0.2:7000\"\nn = 5\nr = 3\nfsync = \"always\"\n").unwrap();
        let cli = Cli::try_parse_from(["kura", "server", "--config", path.to_str().unwrap(), "--n", "4"]).unwrap();
        let Some(Command::Server(args)) = cli.command else { panic!("server subcommand") };
        let c = Config::resolve(args).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.2:7000");
        assert_eq!((c.n, c.r, c.w), (4, 3, 2));
        assert_eq!(c.fsync, FsyncPolicy::Always);
        assert!(Config::resolve(ServerArgs { r: Some(4), ..Default::default() }).is_err());
        assert!(Config::resolve(ServerArgs { max_reply_members: Some(0), ..Default::default() }).is_err());
        let limits = |text: &str| {
            Config::resolve(ServerArgs { client_output_buffer_limit: Some(text.into()), ..Default::default() })
                .map(|c| c.output_limits)
        };
        assert_eq!(limits("normal 1mb 0 0").unwrap()[0], (1 << 20, 0, 0));
        assert_eq!(limits("pubsub 0 0 0").unwrap()[0], crate::clients::OUTPUT_LIMITS[0]);
        assert!(limits("normal 1mb 0").is_err());
        let min_free = |text: &str| {
            Config::resolve(ServerArgs { min_free_disk: Some(text.into()), ..Default::default() })
                .map(|c| c.min_free_disk)
        };
        assert_eq!(min_free("auto").unwrap(), None);
        assert_eq!(min_free("0").unwrap(), Some(0));
        assert_eq!(min_free("64mb").unwrap(), Some(64 << 20));
        assert!(min_free("lots").is_err());
    }

    #[test]
    fn a_cluster_address_off_loopback_needs_a_secret_or_insecure() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["kura", "server"], args].concat()).unwrap();
            let Some(Command::Server(args)) = cli.command else { panic!("server subcommand") };
            Config::resolve(args)
        };
        assert!(parse(&[]).is_ok(), "the default, 127.0.0.1");
        assert!(parse(&["--cluster-listen", "127.0.0.7:7000"]).is_ok());
        let refused = parse(&["--cluster-listen", "0.0.0.0:7000"]).unwrap_err().to_string();
        assert!(refused.contains("--cluster-secret") && refused.contains("--insecure"), "{refused}");
        assert!(parse(&["--cluster-listen", "10.1.2.3:7000"]).is_err());
        assert!(parse(&["--cluster-listen", "0.0.0.0:7000", "--cluster-secret", "s"]).is_ok());
        assert!(parse(&["--cluster-listen", "0.0.0.0:7000", "--insecure"]).is_ok());
        assert!(parse(&["--cluster-listen", "0.0.0.0:7000", "--insecure", "false"]).is_err());
        assert!(parse(&["--node-id", &"x".repeat(300)]).is_err(), "ids must fit the handshake's frames");
        // Peer TLS secures the peer port as well as a secret does; it needs a CA.
        let tls = ["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"];
        let ca = ["--tls-ca-cert-file", "ca.pem"];
        assert!(parse(&[&["--cluster-listen", "0.0.0.0:7000", "--tls-cluster", "yes"][..], &tls, &ca].concat()).is_ok());
        assert!(parse(&[&["--cluster-listen", "0.0.0.0:7000", "--tls-cluster", "yes"][..], &tls].concat()).is_err());
        assert!(parse(&[&["--cluster-listen", "0.0.0.0:7000", "--tls-cluster", "no"][..], &tls, &ca].concat()).is_err());
        assert!(parse(&["--tls-cluster", "maybe"]).is_err());
    }

    #[test]
    fn the_tls_port_needs_a_certificate_and_a_ca_to_check_clients() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["kura", "server"], args].concat()).unwrap();
            let Some(Command::Server(args)) = cli.command else { panic!("server subcommand") };
            Config::resolve(args)
        };
        assert!(parse(&["--tls-port", "6380"]).is_err(), "no certificate");
        assert!(parse(&["--tls-port", "6380", "--tls-cert-file", "c.pem"]).is_err(), "no key");
        let tls = ["--tls-port", "6380", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"];
        assert!(parse(&tls).is_err(), "tls-auth-clients yes without a CA");
        assert!(parse(&[&tls[..], &["--tls-auth-clients", "no"]].concat()).is_ok());
        assert!(parse(&[&tls[..], &["--tls-auth-clients", "sometimes"]].concat()).is_err());
        let c = parse(&[&tls[..], &["--tls-ca-cert-file", "ca.pem", "--listen", "127.0.0.3:7000"]].concat()).unwrap();
        assert_eq!(c.tls_listen, Some("127.0.0.3:6380".parse().unwrap()));
        assert_eq!(c.tls.map(|t| t.auth_clients), Some(crate::tls::AuthClients::Yes));
    }
}
