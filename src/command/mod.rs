//! Commands: one file per command, each with a `run` that parses its arguments (rejecting
//! extras), calls the coordinator and builds the reply. This module holds the command table
//! (which COMMAND reports), dispatch with Redis's exact arity and unknown-command errors, and
//! the one mapping from internal errors to RESP errors.

mod admin;
mod append;
mod auth;
pub mod blocking;
mod client;
mod cluster;
mod collection;
// The COMMAND command, in its own file like every other command.
mod bits;
#[allow(clippy::module_inception)]
mod command;
mod config;
pub use config::ENCODINGS;
mod db;
mod ddel;
mod del;
mod dget;
mod dput;
mod dump;
mod echo;
mod eval;
mod exists;
mod expire;
mod flush;
mod functions;
mod geo;
mod get;
mod getdel;
mod getex;
mod getrange;
mod getset;
mod hashes;
mod hello;
mod incr;
mod info;
mod keyspace;
mod kura;
mod lists;
mod memory;
mod mget;
mod mset;
mod multi;
mod multikey;
mod object;
mod pf;
mod ping;
mod pipeline;
mod pubsub;
mod quit;
mod scan;
mod select;
mod set;
mod setex;
mod setnx;
mod setrange;
mod sets;
mod streams;
mod strlen;
mod table;
mod ttl;
mod zsets;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use metrics::Counter;

use crate::clients::Client;
pub use eval::{forwarded_kill, forwarded_script};
pub use info::KeyspaceWalk;
pub use multi::forwarded_transaction;
pub use pipeline::{run_pipeline, MAX_BATCH};
use table::concurrent_keys;
pub use table::{Cmd, Spec, SPECS};

use crate::coordinator::{CoordError, WriteContext};
use crate::node::Node;
use crate::pubsub::Kind;
use crate::resp::{Protocol, Reply};
use crate::storage::{DiskTrouble, StorageError};
use crate::version::ContextError;

/// The state of one client connection that commands read and change.
#[derive(Debug)]
pub struct Session {
    /// What the rest of the node sees of this connection (CLIENT LIST, KILL, MONITOR).
    pub client: Arc<Client>,
    pub protocol: Protocol,
    pub authenticated: bool,
    /// Set by QUIT: the connection closes after this reply.
    pub quit: bool,
    /// Between MULTI and EXEC: the queued requests, and whether one was refused (EXECABORT).
    pub multi: Option<Queued>,
    /// WATCHed keys and the digest of the version each had then.
    pub watched: Vec<(Bytes, u64)>,
    /// Inside EXEC: the queued requests run without waiting for the node's gate.
    pub in_exec: bool,
    /// Inside a script: its `redis.call`s run without waiting for the node's gate.
    pub in_script: bool,
    /// The database SELECT chose.
    pub db: u32,
    /// Its subscriptions and the queue of their messages, from its first subscription on.
    pub pubsub: Option<crate::pubsub::Subscriber>,
    /// Bytes of messages moved to the output and not yet written to the socket (they count
    /// against the output buffer limit until they are).
    unwritten: usize,
    /// Said it is a Redis Cluster client's (CLUSTER, READONLY, READWRITE, ASKING): it is
    /// answered `-MOVED` for keys this node does not replicate (`cluster.rs`).
    pub cluster_client: bool,
}

impl Session {
    /// A new connection's session (unauthenticated when a password is required).
    pub fn new(client: Arc<Client>, authenticated: bool) -> Session {
        Session {
            client,
            protocol: Protocol::Resp2,
            authenticated,
            quit: false,
            multi: None,
            watched: Vec::new(),
            in_exec: false,
            in_script: false,
            db: 0,
            pubsub: None,
            unwritten: 0,
            cluster_client: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.client.id
    }

    /// Whether it has subscriptions (or had: their messages may still be queued).
    pub fn has_mailbox(&self) -> bool {
        self.pubsub.is_some()
    }

    /// Moves the messages its subscriptions queued to `out`, in order; they count against
    /// the output buffer limit until [`Session::written`].
    pub fn drain_messages(&mut self, out: &mut bytes::BytesMut) {
        for m in self.take_messages() {
            m.encode(self.protocol, out);
        }
    }

    /// The messages its subscriptions queued, as pushes (see [`Session::drain_messages`]).
    pub(crate) fn take_messages(&mut self) -> Vec<Reply> {
        let Some(sub) = &self.pubsub else { return Vec::new() };
        let (messages, bytes) = sub.mailbox().take();
        self.unwritten += bytes;
        messages.iter().map(crate::pubsub::Delivery::to_reply).collect()
    }

    /// The output (with the messages drained into it) was written to the socket.
    pub fn written(&mut self) {
        if let Some(sub) = &self.pubsub {
            sub.mailbox().written(std::mem::take(&mut self.unwritten));
        }
    }
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
    /// A write refused while the disk is in trouble (`MISCONF`).
    #[error(transparent)]
    Disk(DiskTrouble),
}

/// Redis 7's refusal of a write while it cannot persist (`MISCONF Errors writing to the AOF
/// file: ...`), with this node's reason.
fn misconf(trouble: &DiskTrouble) -> String {
    format!(
        "MISCONF Errors writing to the disk: {trouble}. Commands that may modify the data set are disabled. \
         Please check the node's log for details."
    )
}

impl CommandError {
    pub fn to_reply(&self) -> Reply {
        let text = match self {
            CommandError::NoAuth => format!("NOAUTH {self}"),
            CommandError::WrongPass => format!("WRONGPASS {self}"),
            CommandError::Coded(s) => s.clone(),
            CommandError::Disk(trouble)
            | CommandError::Coordinator(CoordError::Storage(
                StorageError::Refused(trouble) | StorageError::WriteFailed(trouble),
            )) => misconf(trouble),
            CommandError::Coordinator(CoordError::Context(e)) => format!("ERR invalid context: {e}"),
            CommandError::Coordinator(CoordError::Rmw(
                e @ (crate::rmw::RmwError::NotHll | crate::rmw::RmwError::WrongType),
            )) => format!("WRONGTYPE {e}"),
            CommandError::Coordinator(CoordError::Rmw(crate::rmw::RmwError::Coded(text))) => text.clone(),
            CommandError::Coordinator(CoordError::Rmw(e)) => format!("ERR {e}"),
            CommandError::Coordinator(CoordError::Busy) => crate::script::BUSY_SCRIPT.to_owned(),
            CommandError::Coordinator(CoordError::NoQuorum { op, needed, got }) => {
                let landed = if *op == "write" { " (the write may have landed on fewer replicas)" } else { "" };
                format!("NOQUORUM {op} needed {needed} replicas, {got} answered{landed}")
            }
            CommandError::Coordinator(e @ CoordError::Unanswered { .. }) => {
                format!("NOQUORUM {e}: it may have been applied")
            }
            CommandError::Coordinator(e @ (CoordError::ScriptUnanswered { .. } | CoordError::Cancelled)) => {
                format!("NOQUORUM {e}")
            }
            CommandError::Coordinator(e) => format!("ERR {e}"),
            _ => format!("ERR {self}"),
        };
        Reply::Error(text)
    }
}

pub type CmdResult = Result<Reply, CommandError>;

/// Per-command metric handles, registered once so the hot path does no lookups.
pub struct CommandMetrics {
    calls: Vec<Counter>,
    errors: Vec<Counter>,
    duration: &'static crate::metrics::CommandLatencies,
    /// Whether a command is foreground work for admission control: on keys, not blocking.
    foreground: Vec<bool>,
    unknown: Counter,
}

impl CommandMetrics {
    pub fn register() -> CommandMetrics {
        use crate::metrics as m;
        let by = |name: &'static str| SPECS.iter().map(move |s| (name, s.name));
        CommandMetrics {
            calls: by(m::COMMANDS_TOTAL).map(|(n, c)| metrics::counter!(n, "command" => c)).collect(),
            errors: by(m::COMMAND_ERRORS_TOTAL).map(|(n, c)| metrics::counter!(n, "command" => c)).collect(),
            duration: m::command_latencies(|| SPECS.iter().map(|s| s.name).collect()),
            foreground: table::ALL.iter().map(|c| c.spec().first_key > 0 && !c.blocks()).collect(),
            unknown: metrics::counter!(m::COMMAND_ERRORS_TOTAL, "command" => "unknown"),
        }
    }
}

/// What a command may do to its connection's state.
enum Conn<'a> {
    /// Connection commands (HELLO, AUTH, CLIENT, QUIT, ...) change it.
    Mut(&'a mut Session),
    /// Data commands only need to know whether it is authenticated (and whether it is a
    /// cluster client's, for the redirection).
    Shared { authenticated: bool, cluster_client: bool },
}

/// The metrics of requests other nodes forwarded here to run (scripts, transactions).
fn forwarded_metrics() -> &'static CommandMetrics {
    static METRICS: std::sync::OnceLock<CommandMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(CommandMetrics::register)
}

/// Runs one request (`args[0]` is the command name) and returns its reply.
async fn execute(node: &Node, session: &mut Session, metrics: &CommandMetrics, args: &[Bytes]) -> Reply {
    execute_in(node, Conn::Mut(session), metrics, args).await
}

/// Runs a request for which [`concurrent_keys`] is `Some`, alongside others of its pipeline.
async fn execute_shared(node: &Node, session: &Session, metrics: &CommandMetrics, args: &[Bytes]) -> Reply {
    let conn = Conn::Shared { authenticated: session.authenticated, cluster_client: session.cluster_client };
    execute_in(node, conn, metrics, args).await
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
        refuse(&mut conn);
        node.clients.note_error("ERR");
        return Reply::RawError(unknown_command(args));
    };
    let i = cmd as usize;
    let spec = cmd.spec();
    if let Conn::Mut(session) = &conn {
        let sub = args.get(1).filter(|_| cmd.has_subcommands());
        session.client.touch(spec.name, sub.map(|s| &s[..]));
    }
    let n = args.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        // Rejected before it ran: an error, not a call (as Redis's `rejected_calls`).
        metrics.errors[i].increment(1);
        node.clients.note_error("ERR");
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
    if let Err(error) = cmd.check_subcommand(args) {
        metrics.errors[i].increment(1);
        node.clients.note_error("ERR");
        refuse(&mut conn);
        return error.to_reply();
    }
    // A RESP2 connection with subscriptions runs only what Redis allows there (after the
    // arity check, as Redis's processCommand; refused inside MULTI too, failing the EXEC; not
    // checked again for what EXEC runs).
    if let Conn::Mut(session) = &mut conn {
        if !cmd.allowed_subscribed() && !session.in_exec && pubsub::subscribed_mode(session) {
            metrics.errors[i].increment(1);
            node.clients.note_error("ERR");
            let name = match args.get(1).filter(|_| cmd.has_subcommands()) {
                Some(sub) => format!("{}|{}", spec.name, String::from_utf8_lossy(sub).to_lowercase()),
                None => spec.name.to_owned(),
            };
            let error = format!(
                "Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            );
            if cmd == Cmd::Exec {
                session.multi = None;
                session.watched.clear();
                return Reply::Error(format!("EXECABORT Transaction discarded because of: {error}"));
            }
            refuse(&mut conn);
            return Reply::Error(format!("ERR {error}"));
        }
    }
    // A cluster client's request for a key this node does not replicate is redirected to the
    // key's node (Redis Cluster's check comes before MULTI queues it too); not inside EXEC or
    // a script, whose keys were placed when they began.
    let redirect = match &conn {
        Conn::Mut(s) => s.cluster_client && s.db == 0 && !s.in_exec && !s.in_script,
        Conn::Shared { cluster_client, .. } => *cluster_client,
    };
    if redirect {
        let first = table::key_positions(spec, args).into_iter().next().and_then(|at| args.get(at));
        if let Some(to) = first.and_then(|key| cluster::moved(node, key)) {
            metrics.errors[i].increment(1);
            node.clients.note_error("MOVED");
            refuse(&mut conn);
            return Reply::Error(format!("MOVED {to}"));
        }
    }
    // While the disk is in trouble a write is refused before it runs (Redis's MISCONF, after
    // the arity check; refused inside MULTI too, failing the EXEC); reads and admin commands run.
    if let Some(trouble) = disk_refuses(node, &conn, cmd) {
        metrics.errors[i].increment(1);
        node.clients.note_error("MISCONF");
        let trouble = node.coordinator.storage().health().refuse(trouble);
        if cmd == Cmd::Exec {
            if let Conn::Mut(session) = &mut conn {
                session.multi = None;
                session.watched.clear();
            }
            return Reply::Error(format!("EXECABORT Transaction discarded because of: {}", misconf(&trouble)));
        }
        refuse(&mut conn);
        return CommandError::Disk(trouble).to_reply();
    }
    if let Conn::Mut(session) = &mut conn {
        if session.multi.is_some() && !cmd.runs_in_multi() {
            if !session.authenticated && !spec.no_auth {
                refuse(&mut conn);
                return CommandError::NoAuth.to_reply();
            }
            // Redis refuses a command flagged `no-multi` (SHUTDOWN) instead of queueing it.
            if spec.flags.contains(&"no_multi") {
                metrics.errors[i].increment(1);
                node.clients.note_error("ERR");
                refuse(&mut conn);
                return CommandError::Other("Command not allowed inside a transaction".into()).to_reply();
            }
            if let Some(q) = session.multi.as_mut() {
                q.requests.push(args.to_vec());
            }
            return Reply::Simple("QUEUED");
        }
    }
    // On a node alone, EXEC runs isolated: every other request waits at the gate meanwhile.
    // A script holding the gate past `busy-reply-threshold` makes the others BUSY (but those
    // Redis lets through: `allow_busy`, which touch no key, and SCRIPT KILL). A blocking
    // command takes the gate for each of its tries itself (`blocking.rs`).
    let in_exec = matches!(&conn, Conn::Mut(s) if s.in_exec || s.in_script);
    let passes_busy = (spec.flags.contains(&"allow_busy") && cmd != Cmd::Watch)
        || (cmd == Cmd::Script && args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"kill")))
        || (cmd == Cmd::Function
            && args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"kill") || s.eq_ignore_ascii_case(b"stats")));
    let gate = if in_exec || cmd == Cmd::Exec || passes_busy || cmd.blocks() {
        Ok(Gate::Open)
    } else if cmd.exclusive() && node.alone() {
        gate_or_busy(node, node.exec_gate.write()).await.map(Gate::Exclusive)
    } else {
        gate_or_busy(node, node.exec_gate.read()).await.map(Gate::Shared)
    };
    let _gate = match gate {
        Ok(gate) => gate,
        Err(busy) => {
            metrics.errors[i].increment(1);
            node.clients.note_error("BUSY");
            refuse(&mut conn);
            return busy;
        }
    };
    // Keys of another database than 0 are stored under its prefix (see `db.rs`).
    let as_sent = args;
    let mapped;
    let args = match &conn {
        Conn::Mut(session) if session.db != 0 => {
            mapped = db::map_keys(session.db, spec, args);
            &mapped[..]
        }
        _ => args,
    };
    let client = match &conn {
        Conn::Mut(session) => Some(session.client.clone()),
        Conn::Shared { .. } => None,
    };
    // In a cluster, a command Redis runs atomically over several keys runs at its first key's
    // deciding owner, holding its keys (`multi::place_one`).
    let placed = if cmd.exclusive() && !in_exec {
        let (db, resp3) = match &conn {
            Conn::Mut(s) => (s.db, s.protocol == Protocol::Resp3),
            Conn::Shared { .. } => (0, false),
        };
        multi::place_one(node, db, resp3, as_sent).await
    } else {
        None
    };
    let started = Instant::now();
    let result = match placed {
        None => dispatch(cmd, node, conn, args, metrics).await,
        Some(Ok(eval::Placed::Elsewhere(reply))) => Ok(reply),
        Some(Ok(eval::Placed::Here(held))) => {
            let result = crate::coordinator::scripts::in_script(dispatch(cmd, node, conn, args, metrics)).await;
            drop(held);
            result
        }
        Some(Err(e)) => Err(e),
    };
    let elapsed = started.elapsed();
    metrics.calls[i].increment(1);
    metrics.duration.record(i, elapsed);
    if metrics.foreground[i] {
        node.coordinator.replica().admission().record(started + elapsed, elapsed);
    }
    let micros = elapsed.as_micros() as u64;
    if node.slowlog.is_slow(micros) && cmd != Cmd::Exec {
        let (addr, name) = match client {
            Some(c) => (c.addr.to_string(), c.name().unwrap_or_default()),
            None => (String::new(), String::new()),
        };
        node.slowlog.record(micros, as_sent, addr, name);
    }
    match result {
        Ok(reply) => reply,
        Err(e) => {
            metrics.errors[i].increment(1);
            let reply = e.to_reply();
            if let Reply::Error(text) = &reply {
                node.clients.note_error(text);
            }
            reply
        }
    }
}

/// The disk's trouble when it refuses `cmd` now: a command flagged `write`, or an EXEC whose
/// queue holds one (Redis's rule). A client that has not authenticated hears NOAUTH instead.
fn disk_refuses(node: &Node, conn: &Conn<'_>, cmd: Cmd) -> Option<DiskTrouble> {
    let trouble = node.coordinator.storage().health().trouble()?;
    let (authenticated, queued) = match conn {
        Conn::Mut(session) => (session.authenticated, session.multi.as_ref()),
        Conn::Shared { authenticated, .. } => (*authenticated, None),
    };
    let writes = |c: Cmd| c.spec().flags.contains(&"write");
    let queued_write = || {
        queued.is_some_and(|q| {
            q.requests.iter().any(|args| args.first().and_then(|n| Cmd::lookup(n)).is_some_and(writes))
        })
    };
    (authenticated && (writes(cmd) || (cmd == Cmd::Exec && queued_write()))).then_some(trouble)
}

/// Whether a request is a blocking command (its connection is watched while it waits).
pub fn blocks(args: &[Bytes]) -> bool {
    args.first().and_then(|name| Cmd::lookup(name)).is_some_and(Cmd::blocks)
}

/// Takes the gate, or answers BUSY when a script holding it runs past the threshold.
///
/// The fast path is a gate that is free now. A request that has to wait always watches the
/// busy flag too: an EVAL or FCALL takes the gate before it registers as running (it reads
/// the libraries first), so a request that found no script running and then waited on the
/// gate without watching would wait as long as the script runs.
async fn gate_or_busy<G>(node: &Node, acquire: impl std::future::Future<Output = G>) -> Result<G, Reply> {
    use futures::FutureExt;
    tokio::pin!(acquire);
    if let Some(g) = (&mut acquire).now_or_never() {
        return Ok(g);
    }
    let mut busy = node.scripts.busy();
    tokio::select! {
        biased;
        g = acquire => Ok(g),
        Ok(_) = busy.wait_for(|b| *b) => Err(Reply::Error(node.scripts.busy_text().into())),
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
        Conn::Shared { authenticated, .. } => *authenticated,
    };
    if !authenticated && !cmd.spec().no_auth {
        return Err(CommandError::NoAuth);
    }
    let session = match conn {
        Conn::Mut(session) => Some(session),
        Conn::Shared { .. } => None,
    };
    let session = match session {
        Some(session) if cmd == Cmd::Ping && pubsub::subscribed_mode(session) => return pubsub::ping(args),
        session => session,
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
        Cmd::Reset => admin::reset(node, session),
        Cmd::Slowlog => admin::slowlog(node, args),
        Cmd::Cluster => cluster::run(node, session, args).await,
        Cmd::Readonly | Cmd::Readwrite | Cmd::Asking => cluster::declare(session),
        Cmd::Flushall => flush::run(node, None, args).await,
        Cmd::Hello => hello::run(node, session, args),
        Cmd::Auth => auth::run(node, session, args),
        Cmd::Client => client::run(node, session, args),
        Cmd::Command => command::run(args),
        Cmd::Config => config::run(node, args),
        Cmd::Shutdown => admin::shutdown(node, session, args),
        // Redis: a client inside EXEC may not block or stream (CLIENT_DENY_BLOCKING).
        Cmd::Monitor if session.in_exec => {
            Err(CommandError::Other("MONITOR isn't allowed for DENY BLOCKING client".into()))
        }
        Cmd::Monitor => {
            session.client.set_monitor();
            Ok(Reply::ok())
        }
        Cmd::Info => info::run(node, args).await,
        Cmd::Xread => streams::xread(node, session, args).await,
        Cmd::Xreadgroup => streams::xreadgroup(node, session, args).await,
        blocking if blocking.blocks() => blocking::run(node, session, blocking, args).await,
        Cmd::Kura => kura::run(node, args).await,
        Cmd::Multi => multi::multi(session),
        Cmd::Exec => multi::exec(node, session, metrics).await,
        Cmd::Discard => multi::discard(session),
        Cmd::Watch => multi::watch(node, session, args).await,
        Cmd::Unwatch => multi::unwatch(session),
        Cmd::Eval => eval::eval(node, session, metrics, args, false, false).await,
        Cmd::Evalsha => eval::eval(node, session, metrics, args, true, false).await,
        Cmd::EvalRo => eval::eval(node, session, metrics, args, false, true).await,
        Cmd::EvalshaRo => eval::eval(node, session, metrics, args, true, true).await,
        Cmd::Script => eval::script(node, args).await,
        Cmd::Fcall => functions::fcall(node, session, metrics, args, false).await,
        Cmd::FcallRo => functions::fcall(node, session, metrics, args, true).await,
        Cmd::Function => functions::function(node, args).await,
        Cmd::Subscribe => pubsub::subscribe(node, session, args, Kind::Channel),
        Cmd::Psubscribe => pubsub::subscribe(node, session, args, Kind::Pattern),
        Cmd::Ssubscribe => pubsub::subscribe(node, session, args, Kind::Shard),
        Cmd::Unsubscribe => pubsub::unsubscribe(session, args, Kind::Channel),
        Cmd::Punsubscribe => pubsub::unsubscribe(session, args, Kind::Pattern),
        Cmd::Sunsubscribe => pubsub::unsubscribe(session, args, Kind::Shard),
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
        Cmd::Pfadd => pf::pfadd(node, args).await,
        Cmd::Pfcount => pf::pfcount(node, args).await,
        Cmd::Pfmerge => pf::pfmerge(node, args).await,
        Cmd::Incr => incr::incr(node, args).await,
        Cmd::Decr => incr::decr(node, args).await,
        Cmd::Incrby => incr::incrby(node, args).await,
        Cmd::Decrby => incr::decrby(node, args).await,
        Cmd::Incrbyfloat => incr::incrbyfloat(node, args).await,
        Cmd::Sadd => sets::sadd(node, args).await,
        Cmd::Srem => sets::srem(node, args).await,
        Cmd::Smembers => sets::smembers(node, args).await,
        Cmd::Sismember => sets::sismember(node, args).await,
        Cmd::Smismember => sets::smismember(node, args).await,
        Cmd::Scard => sets::scard(node, args).await,
        Cmd::Srandmember => sets::srandmember(node, args).await,
        Cmd::Spop => sets::spop(node, args).await,
        Cmd::Smove => sets::smove(node, args).await,
        Cmd::Sinter => sets::algebra(node, args, sets::Algebra::Inter).await,
        Cmd::Sunion => sets::algebra(node, args, sets::Algebra::Union).await,
        Cmd::Sdiff => sets::algebra(node, args, sets::Algebra::Diff).await,
        Cmd::Sinterstore => sets::store(node, args, sets::Algebra::Inter).await,
        Cmd::Sunionstore => sets::store(node, args, sets::Algebra::Union).await,
        Cmd::Sdiffstore => sets::store(node, args, sets::Algebra::Diff).await,
        Cmd::Sintercard => sets::sintercard(node, args).await,
        Cmd::Sscan => sets::sscan(node, args).await,
        Cmd::Hset => hashes::hset(node, args).await,
        Cmd::Hmset => hashes::hmset(node, args).await,
        Cmd::Hsetnx => hashes::hsetnx(node, args).await,
        Cmd::Hget => hashes::hget(node, args).await,
        Cmd::Hmget => hashes::hmget(node, args).await,
        Cmd::Hgetall => hashes::hgetall(node, args).await,
        Cmd::Hdel => hashes::hdel(node, args).await,
        Cmd::Hlen => hashes::hlen(node, args).await,
        Cmd::Hexists => hashes::hexists(node, args).await,
        Cmd::Hkeys => hashes::hkeys(node, args).await,
        Cmd::Hvals => hashes::hvals(node, args).await,
        Cmd::Hstrlen => hashes::hstrlen(node, args).await,
        Cmd::Hincrby => hashes::hincrby(node, args).await,
        Cmd::Hincrbyfloat => hashes::hincrbyfloat(node, args).await,
        Cmd::Hrandfield => hashes::hrandfield(node, args).await,
        Cmd::Hscan => hashes::hscan(node, args).await,
        Cmd::Lpush => lists::push(node, args, true, false).await,
        Cmd::Rpush => lists::push(node, args, false, false).await,
        Cmd::Lpushx => lists::push(node, args, true, true).await,
        Cmd::Rpushx => lists::push(node, args, false, true).await,
        Cmd::Lpop => lists::pop(node, args, true).await,
        Cmd::Rpop => lists::pop(node, args, false).await,
        Cmd::Llen => lists::llen(node, args).await,
        Cmd::Lrange => lists::lrange(node, args).await,
        Cmd::Lindex => lists::lindex(node, args).await,
        Cmd::Lset => lists::lset(node, args).await,
        Cmd::Linsert => lists::linsert(node, args).await,
        Cmd::Lrem => lists::lrem(node, args).await,
        Cmd::Ltrim => lists::ltrim(node, args).await,
        Cmd::Lpos => lists::lpos(node, args).await,
        Cmd::Lmove => lists::lmove(node, args).await,
        Cmd::Rpoplpush => lists::rpoplpush(node, args).await,
        Cmd::Lmpop => lists::lmpop(node, args).await,
        Cmd::Zadd => zsets::zadd(node, args).await,
        Cmd::Zincrby => zsets::zincrby(node, args).await,
        Cmd::Zrem => zsets::zrem(node, args).await,
        Cmd::Zcard => zsets::zcard(node, args).await,
        Cmd::Zscore => zsets::zscore(node, args).await,
        Cmd::Zmscore => zsets::zmscore(node, args).await,
        Cmd::Zrank => zsets::zrank(node, args, false).await,
        Cmd::Zrevrank => zsets::zrank(node, args, true).await,
        Cmd::Zcount => zsets::zcount(node, args).await,
        Cmd::Zlexcount => zsets::zlexcount(node, args).await,
        Cmd::Zrange => zsets::zrange(node, args, zsets::By2::Modern, false).await,
        Cmd::Zrevrange => zsets::zrange(node, args, zsets::By2::Rank, true).await,
        Cmd::Zrangebyscore => zsets::zrange(node, args, zsets::By2::Score, false).await,
        Cmd::Zrevrangebyscore => zsets::zrange(node, args, zsets::By2::Score, true).await,
        Cmd::Zrangebylex => zsets::zrange(node, args, zsets::By2::Lex, false).await,
        Cmd::Zrevrangebylex => zsets::zrange(node, args, zsets::By2::Lex, true).await,
        Cmd::Zrangestore => zsets::zrangestore(node, args).await,
        Cmd::Zremrangebyrank => zsets::zremrange(node, args, zsets::By2::Rank).await,
        Cmd::Zremrangebyscore => zsets::zremrange(node, args, zsets::By2::Score).await,
        Cmd::Zremrangebylex => zsets::zremrange(node, args, zsets::By2::Lex).await,
        Cmd::Zpopmin => zsets::zpop(node, args, false).await,
        Cmd::Zpopmax => zsets::zpop(node, args, true).await,
        Cmd::Zmpop => zsets::zmpop(node, args).await,
        Cmd::Xadd => streams::xadd(node, args).await,
        Cmd::Xrange => streams::xrange(node, args, false).await,
        Cmd::Xrevrange => streams::xrange(node, args, true).await,
        Cmd::Xlen => streams::xlen(node, args).await,
        Cmd::Xdel => streams::xdel(node, args).await,
        Cmd::Xtrim => streams::xtrim(node, args).await,
        Cmd::Xsetid => streams::xsetid(node, args).await,
        Cmd::Xgroup => streams::xgroup(node, args).await,
        Cmd::Xack => streams::xack(node, args).await,
        Cmd::Xpending => streams::xpending(node, args).await,
        Cmd::Xclaim => streams::xclaim(node, args).await,
        Cmd::Xautoclaim => streams::xautoclaim(node, args).await,
        Cmd::Xinfo => streams::xinfo(node, args).await,
        Cmd::Zrandmember => zsets::zrandmember(node, args).await,
        Cmd::Zscan => zsets::zscan(node, args).await,
        Cmd::Zunion => zsets::algebra(node, args, zsets::Algebra::Union).await,
        Cmd::Zinter => zsets::algebra(node, args, zsets::Algebra::Inter).await,
        Cmd::Zdiff => zsets::algebra(node, args, zsets::Algebra::Diff).await,
        Cmd::Zunionstore => zsets::store(node, args, zsets::Algebra::Union).await,
        Cmd::Zinterstore => zsets::store(node, args, zsets::Algebra::Inter).await,
        Cmd::Zdiffstore => zsets::store(node, args, zsets::Algebra::Diff).await,
        Cmd::Zintercard => zsets::zintercard(node, args).await,
        Cmd::Geoadd => geo::geoadd(node, args).await,
        Cmd::Geopos => geo::geopos(node, args).await,
        Cmd::Geodist => geo::geodist(node, args).await,
        Cmd::Geohash => geo::geohash(node, args).await,
        Cmd::Geosearch => geo::search(node, args, geo::Kind::Search).await,
        Cmd::Geosearchstore => geo::search(node, args, geo::Kind::SearchStore).await,
        Cmd::Georadius => geo::search(node, args, geo::Kind::Radius).await,
        Cmd::GeoradiusRo => geo::search(node, args, geo::Kind::RadiusRo).await,
        Cmd::Georadiusbymember => geo::search(node, args, geo::Kind::ByMember).await,
        Cmd::GeoradiusbymemberRo => geo::search(node, args, geo::Kind::ByMemberRo).await,
        Cmd::Getex => getex::run(node, args).await,
        Cmd::Getset => getset::run(node, args).await,
        Cmd::Append => append::run(node, args).await,
        Cmd::Setrange => setrange::run(node, args).await,
        Cmd::Setbit => bits::setbit(node, args).await,
        Cmd::Getbit => bits::getbit(node, args).await,
        Cmd::Bitcount => bits::bitcount(node, args).await,
        Cmd::Bitpos => bits::bitpos(node, args).await,
        Cmd::Bitop => bits::bitop(node, args).await,
        Cmd::Bitfield => bits::bitfield(node, args, false).await,
        Cmd::BitfieldRo => bits::bitfield(node, args, true).await,
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
        Cmd::Latency => admin::latency(args),
        Cmd::Memory => memory::run(node, args).await,
        Cmd::Object => object::run(node, args).await,
        Cmd::Dump => dump::dump(node, args).await,
        Cmd::Restore => dump::restore(node, args).await,
        Cmd::Dget => dget::run(node, args).await,
        Cmd::Dput => dput::run(node, args).await,
        Cmd::Ddel => ddel::run(node, args).await,
        Cmd::Ping => ping::run(args),
        Cmd::Echo => echo::run(args),
        Cmd::Pubsub => pubsub::pubsub(node, args).await,
        // A pipeline's PUBLISHes may run as a wave (`pipeline::publish_wave`).
        Cmd::Publish => pubsub::publish(node, args, false).await,
        Cmd::Spublish => pubsub::publish(node, args, true).await,
        other => Err(CommandError::Other(format!("'{}' cannot run inside a pipeline wave", other.spec().name))),
    }
}

/// Redis's text: `unknown command 'foo', with args beginning with: 'a' 'b' `, with the
/// client's bytes as sent, clipped as Redis's `printf` clips them: the name to 128 bytes, the
/// arguments to 128 bytes in all, each also at its first NUL byte.
fn unknown_command(args: &[Bytes]) -> Bytes {
    let clip = |b: &[u8], max: usize| -> Vec<u8> { b.iter().copied().take(max).take_while(|&c| c != 0).collect() };
    let mut listed: Vec<u8> = Vec::new();
    for a in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        listed.push(b'\'');
        listed.extend(clip(a, room));
        listed.extend_from_slice(b"' ");
    }
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend(clip(&args[0], 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend(listed);
    Bytes::from(msg)
}

/// Parses a decimal integer argument as Redis does (`string2ll`: no `+`, no leading zeros,
/// no spaces).
pub(crate) fn parse_i64(arg: &[u8]) -> Result<i64, CommandError> {
    crate::rmw::redis_i64(arg).ok_or(CommandError::NotInteger)
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

/// Runs a read-modify-write of `key` (see `Coordinator::modify`) and reports its keyspace
/// events, which follow from the operation and what it did (`notify::Effect`). Commands whose
/// events are not those of their operations (RENAME, LMOVE, the STORE commands ...) call the
/// coordinator and report theirs themselves.
pub(crate) async fn modify(node: &Node, key: &[u8], op: crate::rmw::Rmw) -> Result<crate::rmw::Outcome, CommandError> {
    let effect = crate::notify::Effect::of(&op);
    let outcome = node.coordinator.modify(key, op).await?;
    node.notify.effects(key, effect, &outcome);
    Ok(outcome)
}

/// A STORE command's result written at `dst` (replacing what was there; an empty result
/// deletes it), and its keyspace event: `event` of `class` when it stored members, `del` when
/// an empty result deleted a key, as Redis reports them.
pub(crate) async fn store_result(
    node: &Node,
    dst: &[u8],
    value: crate::rmw::Copied,
    members: usize,
    class: crate::notify::Class,
    event: &'static str,
) -> Result<(), CommandError> {
    let op = crate::rmw::Rmw::Store { value, expires_ms: None, nx: false };
    let outcome = node.coordinator.modify(dst, op).await?;
    if let Some((class, event)) = crate::notify::stored(event, class, members, outcome.applied) {
        node.notify.report(class, event, dst);
    }
    Ok(())
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

/// The string a key holds (what GET answers), or nothing when it is missing.
///
/// # Errors
/// WRONGTYPE when it holds a set or a hash.
pub(crate) fn string_value(set: &crate::version::SiblingSet) -> Result<Option<Bytes>, CommandError> {
    match set.resolve(crate::coordinator::now_ms()) {
        None => Ok(None),
        Some(r) if !r.value.is_string() => Err(CoordError::Rmw(crate::rmw::RmwError::WrongType).into()),
        Some(r) => Ok(Some(r.value.bytes().into_owned())),
    }
}

/// Records how many siblings a read saw.
pub(crate) fn record_siblings(n: usize) {
    crate::metrics::siblings().record(n as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_text_matches_redis() {
        let args = [Bytes::from("FOO"), Bytes::from("a"), Bytes::from("b")];
        assert_eq!(&unknown_command(&args)[..], b"ERR unknown command 'FOO', with args beginning with: 'a' 'b' ");
    }
}
