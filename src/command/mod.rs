//! Commands: one file per command, each with a `run` that parses its arguments (rejecting
//! extras), calls the coordinator and builds the reply. This module holds the command table
//! (which COMMAND reports), dispatch with Redis's exact arity and unknown-command errors, and
//! the one mapping from internal errors to RESP errors.

mod append;
mod auth;
mod client;
// The COMMAND command, in its own file like every other command.
#[allow(clippy::module_inception)]
mod command;
mod config;
mod db;
mod ddel;
mod del;
mod dget;
mod dput;
mod echo;
mod exists;
mod expire;
mod flush;
mod get;
mod getdel;
mod getex;
mod getrange;
mod getset;
mod glob;
mod hello;
mod info;
mod keyspace;
mod kura;
mod mget;
mod mset;
mod multi;
mod multikey;
mod ping;
mod pipeline;
mod quit;
mod scan;
mod select;
mod set;
mod setex;
mod setnx;
mod setrange;
mod strlen;
mod ttl;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use metrics::{Counter, Histogram};

pub use pipeline::{run_pipeline, MAX_BATCH};

use crate::coordinator::{CoordError, WriteContext};
use crate::node::Node;
use crate::resp::{Protocol, Reply};
use crate::version::ContextError;

/// The state of one client connection that commands read and change.
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub protocol: Protocol,
    pub authenticated: bool,
    pub name: Option<String>,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    /// Set by QUIT: the connection closes after this reply.
    pub quit: bool,
    /// Between MULTI and EXEC: the queued requests, and whether one was refused (EXECABORT).
    pub multi: Option<Queued>,
    /// WATCHed keys and the digest of the version each had then.
    pub watched: Vec<(Bytes, u64)>,
    /// Inside EXEC: the queued requests run without waiting for the node's gate.
    pub in_exec: bool,
    /// The database SELECT chose.
    pub db: u32,
}

/// A transaction being queued.
#[derive(Debug, Default)]
pub struct Queued {
    pub requests: Vec<Vec<Bytes>>,
    pub refused: bool,
}

/// Why a command failed. [`CommandError::to_reply`] is the only place these become RESP.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("syntax error")]
    Syntax,
    #[error("value is not an integer or out of range")]
    NotInteger,
    #[error("invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    #[error("value is too large ({len} bytes, max {max})")]
    ValueTooLarge { len: usize, max: usize },
    #[error("Authentication required.")]
    NoAuth,
    #[error("invalid username-password pair or user is disabled.")]
    WrongPass,
    #[error("unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand { cmd: &'static str, sub: String },
    #[error("invalid context: {0}")]
    Context(#[from] ContextError),
    #[error(transparent)]
    Coordinator(#[from] CoordError),
    /// Any other `-ERR` text.
    #[error("{0}")]
    Other(String),
    /// An error with its own code (`NOPROTO ...`).
    #[error("{0}")]
    Coded(String),
}

impl CommandError {
    pub fn to_reply(&self) -> Reply {
        let text = match self {
            CommandError::NoAuth => format!("NOAUTH {self}"),
            CommandError::WrongPass => format!("WRONGPASS {self}"),
            CommandError::Coded(s) => s.clone(),
            CommandError::Coordinator(CoordError::Context(e)) => format!("ERR invalid context: {e}"),
            CommandError::Coordinator(CoordError::Rmw(e)) => format!("ERR {e}"),
            CommandError::Coordinator(CoordError::NoQuorum { op, needed, got }) => {
                let landed = if *op == "write" { " (the write may have landed on fewer replicas)" } else { "" };
                format!("NOQUORUM {op} needed {needed} replicas, {got} answered{landed}")
            }
            CommandError::Coordinator(e) => format!("ERR {e}"),
            _ => format!("ERR {self}"),
        };
        Reply::Error(text)
    }
}

pub type CmdResult = Result<Reply, CommandError>;

/// What COMMAND reports of a command, in Redis's terms.
pub struct Spec {
    pub name: &'static str,
    /// Exact argument count including the name; negative: at least that many.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
    /// Usable before AUTH when a password is required.
    pub no_auth: bool,
}

macro_rules! commands {
    ($( $variant:ident => $name:literal, $arity:literal, [$($flag:literal),*], ($first:literal, $last:literal, $step:literal), $group:literal, $no_auth:literal, $summary:literal; )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Cmd { $($variant),* }

        pub const SPECS: &[Spec] = &[$(Spec {
            name: $name, arity: $arity, flags: &[$($flag),*], first_key: $first, last_key: $last,
            step: $step, group: $group, summary: $summary, no_auth: $no_auth,
        }),*];

        const ALL: &[Cmd] = &[$(Cmd::$variant),*];
    };
}

commands! {
    Get => "get", 2, ["readonly", "fast"], (1, 1, 1), "string", false, "Returns the newest value of a key (last write wins among siblings).";
    Set => "set", -3, ["write", "denyoom"], (1, 1, 1), "string", false, "Sets the value of a key, superseding every version the coordinator holds.";
    Setex => "setex", 4, ["write", "denyoom"], (1, 1, 1), "string", false, "SET with an expiry in seconds.";
    Psetex => "psetex", 4, ["write", "denyoom"], (1, 1, 1), "string", false, "SET with an expiry in milliseconds.";
    Setnx => "setnx", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "SET if the key is missing; 1 if it was set.";
    Del => "del", -2, ["write"], (1, -1, 1), "keyspace", false, "Deletes keys (writes tombstones).";
    Unlink => "unlink", -2, ["write", "fast"], (1, -1, 1), "keyspace", false, "Deletes keys (as DEL: a tombstone write).";
    Type => "type", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "The type of the key's value: string or none.";
    Touch => "touch", -2, ["readonly", "fast"], (1, -1, 1), "keyspace", false, "Counts the given keys that exist.";
    Expire => "expire", -3, ["write", "fast"], (1, 1, 1), "keyspace", false, "Sets a key's time to live in seconds [NX|XX|GT|LT].";
    Pexpire => "pexpire", -3, ["write", "fast"], (1, 1, 1), "keyspace", false, "Sets a key's time to live in milliseconds [NX|XX|GT|LT].";
    Expireat => "expireat", -3, ["write", "fast"], (1, 1, 1), "keyspace", false, "Sets a key's expiry as a Unix time in seconds [NX|XX|GT|LT].";
    Pexpireat => "pexpireat", -3, ["write", "fast"], (1, 1, 1), "keyspace", false, "Sets a key's expiry as a Unix time in milliseconds [NX|XX|GT|LT].";
    Persist => "persist", 2, ["write", "fast"], (1, 1, 1), "keyspace", false, "Removes a key's expiry.";
    Expiretime => "expiretime", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "A key's expiry as a Unix time in seconds (-1: none, -2: missing).";
    Pexpiretime => "pexpiretime", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "A key's expiry as a Unix time in milliseconds (-1: none, -2: missing).";
    Getdel => "getdel", 2, ["write", "fast"], (1, 1, 1), "string", false, "Returns the value and deletes the key.";
    Getex => "getex", -2, ["write", "fast"], (1, 1, 1), "string", false, "Returns the value and sets or removes its expiry.";
    Getset => "getset", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Sets the value and returns the old one.";
    Append => "append", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Appends to the value; returns the new length.";
    Setrange => "setrange", 4, ["write", "denyoom"], (1, 1, 1), "string", false, "Overwrites part of the value from an offset; returns the new length.";
    Strlen => "strlen", 2, ["readonly", "fast"], (1, 1, 1), "string", false, "The length of the value.";
    Getrange => "getrange", 4, ["readonly"], (1, 1, 1), "string", false, "A substring of the value by byte offsets.";
    Substr => "substr", 4, ["readonly"], (1, 1, 1), "string", false, "GETRANGE's old name.";
    Ttl => "ttl", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "Seconds until the value expires (-1: no expiry, -2: missing).";
    Pttl => "pttl", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "Milliseconds until the value expires (-1: no expiry, -2: missing).";
    Exists => "exists", -2, ["readonly", "fast"], (1, -1, 1), "keyspace", false, "Counts the given keys that exist.";
    Mget => "mget", -2, ["readonly", "fast"], (1, -1, 1), "string", false, "Returns the values of several keys.";
    Mset => "mset", -3, ["write", "denyoom"], (1, -1, 2), "string", false, "Sets several keys (atomic on one node).";
    Msetnx => "msetnx", -3, ["write", "denyoom"], (1, -1, 2), "string", false, "Sets several keys if none exists (atomic on one node).";
    Rename => "rename", 3, ["write"], (1, 2, 1), "keyspace", false, "Renames a key (atomic on one node).";
    Renamenx => "renamenx", 3, ["write", "fast"], (1, 2, 1), "keyspace", false, "Renames a key if the new name is free (atomic on one node).";
    Copy => "copy", -3, ["write", "denyoom"], (1, 2, 1), "keyspace", false, "Copies a key's value and expiry [DB 0] [REPLACE].";
    Time => "time", 1, ["fast"], (0, 0, 0), "server", false, "The server's clock: seconds and microseconds.";
    Dget => "dget", -2, ["readonly"], (1, 1, 1), "kura", false, "Returns a key's context and all its sibling values.";
    Dput => "dput", -4, ["write", "denyoom"], (1, 1, 1), "kura", false, "Writes a value superseding exactly what the context saw; returns the new context.";
    Ddel => "ddel", -3, ["write"], (1, 1, 1), "kura", false, "Deletes what the context saw (writes a tombstone).";
    Ping => "ping", -1, ["fast"], (0, 0, 0), "connection", false, "Returns PONG or the message.";
    Echo => "echo", 2, ["fast"], (0, 0, 0), "connection", false, "Returns the message.";
    Quit => "quit", -1, ["fast"], (0, 0, 0), "connection", true, "Closes the connection.";
    Select => "select", 2, ["fast"], (0, 0, 0), "connection", false, "Selects a database (0 to --databases - 1).";
    Dbsize => "dbsize", 1, ["readonly"], (0, 0, 0), "server", false, "Counts the live keys of the whole cluster.";
    Scan => "scan", -2, ["readonly"], (0, 0, 0), "keyspace", false, "Walks the cluster's keys: cursor [MATCH p] [COUNT n] [TYPE t].";
    Keys => "keys", 2, ["readonly"], (0, 0, 0), "keyspace", false, "Every key matching a glob pattern (walks the whole cluster).";
    Flushdb => "flushdb", -1, ["write"], (0, 0, 0), "server", false, "Deletes every key of the database, in the whole cluster [ASYNC|SYNC].";
    Flushall => "flushall", -1, ["write"], (0, 0, 0), "server", false, "Deletes every key of every database, in the whole cluster [ASYNC|SYNC].";
    Randomkey => "randomkey", 1, ["readonly"], (0, 0, 0), "keyspace", false, "A random key.";
    Hello => "hello", -1, ["fast"], (0, 0, 0), "connection", true, "Handshake: protocol version, authentication, client name.";
    Auth => "auth", -2, ["fast"], (0, 0, 0), "connection", true, "Authenticates the connection.";
    Client => "client", -2, [], (0, 0, 0), "connection", false, "CLIENT ID, SETNAME, GETNAME, INFO, LIST, SETINFO.";
    Command => "command", -1, [], (0, 0, 0), "server", false, "Describes the commands: COUNT, DOCS, INFO, LIST.";
    Config => "config", -2, [], (0, 0, 0), "server", false, "CONFIG GET of the node's settings.";
    Kura => "kura", -2, [], (0, 0, 0), "kura", false, "The cluster as this node sees it, and membership changes: MEMBERS, RING, PREFLIST, LOCAL, HINTS, TRANSFERS, JOIN, LEAVE, REMOVE.";
    Info => "info", -1, [], (0, 0, 0), "server", false, "Server information and statistics.";
    Multi => "multi", 1, ["fast"], (0, 0, 0), "transactions", false, "Starts a transaction: later commands are queued.";
    Exec => "exec", 1, [], (0, 0, 0), "transactions", false, "Runs the queued commands (isolated on one node; nil if a WATCHed key changed).";
    Discard => "discard", 1, ["fast"], (0, 0, 0), "transactions", false, "Drops the queued commands.";
    Watch => "watch", -2, ["fast"], (1, -1, 1), "transactions", false, "EXEC will abort if one of these keys changes first.";
    Unwatch => "unwatch", 1, ["fast"], (0, 0, 0), "transactions", false, "Forgets the WATCHed keys.";
}

impl Cmd {
    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    /// Looks a command up by name, case-insensitively, without allocating.
    pub fn lookup(name: &[u8]) -> Option<Cmd> {
        ALL.iter().copied().find(|c| c.spec().name.as_bytes().eq_ignore_ascii_case(name))
    }
}

/// Per-command metric handles, registered once so the hot path does no lookups.
pub struct CommandMetrics {
    calls: Vec<Counter>,
    errors: Vec<Counter>,
    duration: Vec<Histogram>,
    unknown: Counter,
}

impl CommandMetrics {
    pub fn register() -> CommandMetrics {
        use crate::metrics as m;
        let by = |name: &'static str| SPECS.iter().map(move |s| (name, s.name));
        CommandMetrics {
            calls: by(m::COMMANDS_TOTAL).map(|(n, c)| metrics::counter!(n, "command" => c)).collect(),
            errors: by(m::COMMAND_ERRORS_TOTAL).map(|(n, c)| metrics::counter!(n, "command" => c)).collect(),
            duration: by(m::COMMAND_DURATION).map(|(n, c)| metrics::histogram!(n, "command" => c)).collect(),
            unknown: metrics::counter!(m::COMMAND_ERRORS_TOTAL, "command" => "unknown"),
        }
    }
}

/// What a command may do to its connection's state.
enum Conn<'a> {
    /// Connection commands (HELLO, AUTH, CLIENT, QUIT, ...) change it.
    Mut(&'a mut Session),
    /// Data commands only need to know whether it is authenticated.
    Shared { authenticated: bool },
}

impl Cmd {
    /// Whether the command touches nothing of its connection but keys: such commands of one
    /// pipeline may run at once when their keys differ.
    fn is_data(self) -> bool {
        !matches!(
            self,
            Cmd::Quit
                | Cmd::Select
                | Cmd::Dbsize
                | Cmd::Scan
                | Cmd::Keys
                | Cmd::Randomkey
                | Cmd::Copy
                | Cmd::Flushdb
                | Cmd::Flushall
                | Cmd::Hello
                | Cmd::Auth
                | Cmd::Client
                | Cmd::Command
                | Cmd::Config
                | Cmd::Info
                | Cmd::Kura
                | Cmd::Multi
                | Cmd::Exec
                | Cmd::Discard
                | Cmd::Watch
                | Cmd::Unwatch
        )
    }

    /// Whether the command must run alone on a node alone (Redis runs it atomically over
    /// several keys): it then holds the node's gate exclusively, like EXEC.
    fn exclusive(self) -> bool {
        matches!(self, Cmd::Mset | Cmd::Msetnx | Cmd::Rename | Cmd::Renamenx | Cmd::Copy | Cmd::Flushdb | Cmd::Flushall)
    }

    /// Whether the command runs at once inside MULTI instead of being queued.
    fn runs_in_multi(self) -> bool {
        matches!(self, Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Watch | Cmd::Quit)
    }
}

/// The keys of a request that may run concurrently with others of its pipeline (`None` for
/// a command that must run alone, in order: one that changes the connection or reads the
/// whole node). Unknown commands and wrong arities only produce an error reply, so they may.
fn concurrent_keys(args: &[Bytes]) -> Option<Vec<&[u8]>> {
    let Some(cmd) = Cmd::lookup(&args[0]) else { return Some(Vec::new()) };
    if !cmd.is_data() {
        return None;
    }
    let spec = cmd.spec();
    if spec.first_key <= 0 {
        return Some(Vec::new());
    }
    let last =
        if spec.last_key < 0 { args.len() as i32 + spec.last_key } else { spec.last_key.min(args.len() as i32 - 1) };
    let step = spec.step.max(1) as usize;
    Some(
        (spec.first_key as usize..=last.max(0) as usize)
            .step_by(step)
            .filter_map(|i| args.get(i).map(|a| &a[..]))
            .collect(),
    )
}

/// Runs one request (`args[0]` is the command name) and returns its reply.
async fn execute(node: &Node, session: &mut Session, metrics: &CommandMetrics, args: &[Bytes]) -> Reply {
    execute_in(node, Conn::Mut(session), metrics, args).await
}

/// Runs a request for which [`concurrent_keys`] is `Some`, alongside others of its pipeline.
async fn execute_shared(node: &Node, authenticated: bool, metrics: &CommandMetrics, args: &[Bytes]) -> Reply {
    execute_in(node, Conn::Shared { authenticated }, metrics, args).await
}

async fn execute_in(node: &Node, mut conn: Conn<'_>, metrics: &CommandMetrics, args: &[Bytes]) -> Reply {
    node.total_commands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A request refused inside MULTI makes the EXEC fail (EXECABORT), as in Redis.
    let refuse = |conn: &mut Conn<'_>| {
        if let Conn::Mut(Session { multi: Some(q), .. }) = conn {
            q.refused = true;
        }
    };
    let Some(cmd) = Cmd::lookup(&args[0]) else {
        metrics.unknown.increment(1);
        node.error_replies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        refuse(&mut conn);
        return Reply::Error(unknown_command(args));
    };
    let i = cmd as usize;
    let spec = cmd.spec();
    let n = args.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        // Rejected before it ran: an error, not a call (as Redis's `rejected_calls`).
        metrics.errors[i].increment(1);
        node.error_replies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let error = CommandError::WrongArity(spec.name.to_owned());
        if cmd == Cmd::Exec {
            // A refused EXEC ends any transaction (Redis's execCommandAbort, even outside one).
            if let Conn::Mut(session) = &mut conn {
                session.multi = None;
                session.watched.clear();
            }
            return Reply::Error(format!("EXECABORT Transaction discarded because of: {error}"));
        }
        refuse(&mut conn);
        return error.to_reply();
    }
    if let Conn::Mut(session) = &mut conn {
        if session.multi.is_some() && !cmd.runs_in_multi() {
            if !session.authenticated && !spec.no_auth {
                refuse(&mut conn);
                return CommandError::NoAuth.to_reply();
            }
            if let Some(q) = session.multi.as_mut() {
                q.requests.push(args.to_vec());
            }
            return Reply::Simple("QUEUED");
        }
    }
    // On a node alone, EXEC runs isolated: every other request waits at the gate meanwhile.
    let in_exec = matches!(&conn, Conn::Mut(s) if s.in_exec);
    let _gate = if in_exec || cmd == Cmd::Exec {
        Gate::Open
    } else if cmd.exclusive() && node.alone() {
        Gate::Exclusive(node.exec_gate.write().await)
    } else {
        Gate::Shared(node.exec_gate.read().await)
    };
    // Keys of another database than 0 are stored under its prefix (see `db.rs`).
    let mapped;
    let args = match &conn {
        Conn::Mut(session) if session.db != 0 && spec.first_key > 0 => {
            mapped = db::map_keys(session.db, spec, args);
            &mapped[..]
        }
        _ => args,
    };
    let started = Instant::now();
    let result = dispatch(cmd, node, conn, args, metrics).await;
    metrics.calls[i].increment(1);
    metrics.duration[i].record(started.elapsed().as_secs_f64());
    match result {
        Ok(reply) => reply,
        Err(e) => {
            metrics.errors[i].increment(1);
            node.error_replies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            e.to_reply()
        }
    }
}

/// What a request holds of the node's gate while it runs (see `multi.rs`).
enum Gate<'a> {
    /// Inside EXEC (which holds it) or EXEC itself (which takes it).
    Open,
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'a, ()>),
}

/// Runs a command whose arity was checked.
async fn dispatch(cmd: Cmd, node: &Node, conn: Conn<'_>, args: &[Bytes], metrics: &CommandMetrics) -> CmdResult {
    let authenticated = match &conn {
        Conn::Mut(session) => session.authenticated,
        Conn::Shared { authenticated } => *authenticated,
    };
    if !authenticated && !cmd.spec().no_auth {
        return Err(CommandError::NoAuth);
    }
    let session = match conn {
        Conn::Mut(session) => Some(session),
        Conn::Shared { .. } => None,
    };
    let Some(session) = session.filter(|_| !cmd.is_data()) else {
        return dispatch_data(cmd, node, args).await;
    };
    match cmd {
        Cmd::Quit => quit::run(session),
        Cmd::Select => select::run(node, session, args),
        Cmd::Dbsize => scan::dbsize(node, session.db).await,
        Cmd::Scan => scan::scan(node, session.db, args).await,
        Cmd::Keys => scan::keys(node, session.db, args).await,
        Cmd::Randomkey => scan::randomkey(node, session.db).await,
        Cmd::Copy => multikey::copy(node, session.db, args).await,
        Cmd::Flushdb => flush::run(node, Some(session.db), args).await,
        Cmd::Flushall => flush::run(node, None, args).await,
        Cmd::Hello => hello::run(node, session, args),
        Cmd::Auth => auth::run(node, session, args),
        Cmd::Client => client::run(node, session, args),
        Cmd::Command => command::run(args),
        Cmd::Config => config::run(node, args),
        Cmd::Info => info::run(node, args),
        Cmd::Kura => kura::run(node, args).await,
        Cmd::Multi => multi::multi(session),
        Cmd::Exec => multi::exec(node, session, metrics).await,
        Cmd::Discard => multi::discard(session),
        Cmd::Watch => multi::watch(node, session, args).await,
        Cmd::Unwatch => multi::unwatch(session),
        data => dispatch_data(data, node, args).await,
    }
}

/// Runs a data command (see [`Cmd::is_data`]).
async fn dispatch_data(cmd: Cmd, node: &Node, args: &[Bytes]) -> CmdResult {
    match cmd {
        Cmd::Get => get::run(node, args).await,
        Cmd::Set => set::run(node, args).await,
        Cmd::Setex => setex::run(node, args, 1000, "setex").await,
        Cmd::Psetex => setex::run(node, args, 1, "psetex").await,
        Cmd::Setnx => setnx::run(node, args).await,
        Cmd::Del | Cmd::Unlink => del::run(node, args).await,
        Cmd::Type => keyspace::type_of(node, args).await,
        Cmd::Touch => keyspace::touch(node, args).await,
        Cmd::Expire => expire::run(node, args, expire::EXPIRE).await,
        Cmd::Pexpire => expire::run(node, args, expire::PEXPIRE).await,
        Cmd::Expireat => expire::run(node, args, expire::EXPIREAT).await,
        Cmd::Pexpireat => expire::run(node, args, expire::PEXPIREAT).await,
        Cmd::Persist => expire::persist(node, args).await,
        Cmd::Expiretime => expire::time(node, args, 1000).await,
        Cmd::Pexpiretime => expire::time(node, args, 1).await,
        Cmd::Getdel => getdel::run(node, args).await,
        Cmd::Getex => getex::run(node, args).await,
        Cmd::Getset => getset::run(node, args).await,
        Cmd::Append => append::run(node, args).await,
        Cmd::Setrange => setrange::run(node, args).await,
        Cmd::Strlen => strlen::run(node, args).await,
        Cmd::Getrange | Cmd::Substr => getrange::run(node, args).await,
        Cmd::Exists => exists::run(node, args).await,
        Cmd::Ttl => ttl::run(node, args, ttl::Unit::Seconds).await,
        Cmd::Pttl => ttl::run(node, args, ttl::Unit::Millis).await,
        Cmd::Mget => mget::run(node, args).await,
        Cmd::Mset => mset::run(node, args).await,
        Cmd::Msetnx => multikey::msetnx(node, args).await,
        Cmd::Rename => multikey::rename(node, args, false).await,
        Cmd::Renamenx => multikey::rename(node, args, true).await,
        Cmd::Time => multikey::time(),
        Cmd::Dget => dget::run(node, args).await,
        Cmd::Dput => dput::run(node, args).await,
        Cmd::Ddel => ddel::run(node, args).await,
        Cmd::Ping => ping::run(args),
        Cmd::Echo => echo::run(args),
        other => Err(CommandError::Other(format!("'{}' cannot run inside a pipeline wave", other.spec().name))),
    }
}

/// Redis's text: `unknown command 'foo', with args beginning with: 'a' 'b' `.
fn unknown_command(args: &[Bytes]) -> String {
    let clip = |b: &Bytes| {
        let s = String::from_utf8_lossy(b);
        s.chars().take(128).collect::<String>()
    };
    let mut msg = format!("ERR unknown command '{}', with args beginning with: ", clip(&args[0]));
    for a in &args[1..] {
        if msg.len() > 256 {
            break;
        }
        msg.push_str(&format!("'{}' ", clip(a)));
    }
    msg
}

/// Parses a decimal integer argument as Redis does.
pub(crate) fn parse_i64(arg: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(arg).ok().and_then(|s| s.parse().ok()).ok_or(CommandError::NotInteger)
}

/// The value of a write, refused if over `--max-value-bytes`. It is copied out of the request:
/// a slice would pin the connection's whole read buffer for as long as the value is cached
/// (and make every later read on that connection allocate a new buffer).
pub(crate) fn value_to_store(node: &Node, value: &Bytes) -> Result<Bytes, CommandError> {
    let max = node.config.max_value_bytes;
    if value.len() > max {
        return Err(CommandError::ValueTooLarge { len: value.len(), max });
    }
    Ok(Bytes::copy_from_slice(value))
}

/// Parses trailing `NAME value` quorum options (`R 2`, `W 3`) starting at `args[from]`.
pub(crate) fn quorum_option(args: &[Bytes], from: usize, name: &str) -> Result<Option<usize>, CommandError> {
    match &args[from..] {
        [] => Ok(None),
        [opt, value] if opt.eq_ignore_ascii_case(name.as_bytes()) => {
            let v = parse_i64(value)?;
            usize::try_from(v).map(Some).map_err(|_| CommandError::NotInteger)
        }
        _ => Err(CommandError::Syntax),
    }
}

/// Writes a tombstone over what `context` covers; used by DEL and DDEL.
pub(crate) async fn delete(
    node: &Node,
    key: &[u8],
    context: WriteContext,
    w: Option<usize>,
) -> Result<(), CommandError> {
    let tombstone = crate::coordinator::Write { value: None, expires_ms: None };
    node.coordinator.put(key, context, tombstone, w).await?;
    Ok(())
}

/// Records how many siblings a read saw.
pub(crate) fn record_siblings(n: usize) {
    static HISTOGRAM: std::sync::OnceLock<Histogram> = std::sync::OnceLock::new();
    HISTOGRAM.get_or_init(|| metrics::histogram!(crate::metrics::SIBLINGS_PER_READ)).record(n as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_lookup_agree() {
        assert_eq!(SPECS.len(), ALL.len());
        for &c in ALL {
            assert_eq!(Cmd::lookup(c.spec().name.to_uppercase().as_bytes()), Some(c));
        }
        assert_eq!(Cmd::lookup(b"nope"), None);
    }

    #[test]
    fn unknown_command_text_matches_redis() {
        let args = [Bytes::from("FOO"), Bytes::from("a"), Bytes::from("b")];
        assert_eq!(unknown_command(&args), "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ");
    }
}
