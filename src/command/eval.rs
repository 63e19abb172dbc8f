//! Scripts: `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO` and `SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP`.
//!
//! A script runs on tokio's blocking pool in a Lua state of `script::Engine`; each of its
//! `redis.call`s comes back here, to the client's connection task, and runs through the
//! ordinary command path (`execute_in`: the table, arities, WRONGTYPE, the database the
//! script's SELECT chose) as the script's client. On a node alone EVAL holds the node's gate
//! exclusively (as EXEC does: `Cmd::exclusive`), and the calls run inside it (`in_script`),
//! so a script is atomic. In a cluster a script with keys runs at the deciding owner of its
//! first key, holding every key it declares (`place`, `coordinator/scripts.rs`): atomic over
//! keys of one partition (one hash tag), key by key across partitions (docs/differences.md).
//!
//! Scripts are cluster state: SCRIPT LOAD (and an EVAL of a body this node had not cached)
//! writes the body into a hash under a reserved key ([`crate::keyspace::SCRIPTS`], SHA1 ->
//! body), replicated like any key; an EVALSHA of a SHA1 this node has not cached reads it
//! from there before answering NOSCRIPT. SCRIPT FLUSH deletes that key and this node's cache,
//! and moves the cluster's script mark: every node empties its cache when it sees it.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{dispatch_data, execute_in, Cmd, CmdResult, CommandError, CommandMetrics, Conn, Session};
use crate::coordinator::scripts::{in_script, Held, ScriptForward};
use crate::node::Node;
use crate::resp::Reply;
use crate::script::{KillOutcome, Library, Running, Script};

fn noscript() -> CommandError {
    CommandError::Coded("NOSCRIPT No matching script. Please use EVAL.".into())
}

fn scripts_key() -> Bytes {
    Bytes::from_static(crate::keyspace::SCRIPTS)
}

/// Writes a script's body into the cluster's scripts hash.
async fn store(node: &Node, script: &Script) -> Result<(), CommandError> {
    let args = [Bytes::from_static(b"hset"), scripts_key(), Bytes::from(script.sha.clone()), script.body.clone()];
    dispatch_data(Cmd::Hset, node, &args).await.map(|_| ())
}

/// The cluster's script marks as this node knows them.
pub(super) fn marks(node: &Node) -> crate::flushes::ScriptMarks {
    node.coordinator.cluster().view().state.as_ref().map(|s| s.scripting.clone()).unwrap_or_default()
}

/// Empties this node's script cache if a SCRIPT FLUSH through another node came after it.
fn observe_flushes(node: &Node) {
    node.scripts.observe_scripts_mark(marks(node).scripts_flushed);
}

/// The script named `sha` (lowercase): this node's cache, else the cluster's scripts hash.
async fn find(node: &Node, sha: &str) -> Result<Option<Arc<Script>>, CommandError> {
    observe_flushes(node);
    if let Some(s) = node.scripts.get(sha) {
        return Ok(Some(s));
    }
    if sha.len() != 40 {
        return Ok(None);
    }
    let args = [Bytes::from_static(b"hget"), scripts_key(), Bytes::from(sha.to_owned())];
    let Reply::Bulk(body) = dispatch_data(Cmd::Hget, node, &args).await? else { return Ok(None) };
    let Ok(script) = Script::new(body) else { return Ok(None) };
    if script.sha != sha {
        return Ok(None);
    }
    let script = Arc::new(script);
    node.scripts.insert(script.clone());
    Ok(Some(script))
}

/// EVAL / EVALSHA / EVAL_RO / EVALSHA_RO script numkeys [key ...] [arg ...].
pub async fn eval(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    args: &[Bytes],
    by_sha: bool,
    read_only: bool,
) -> CmdResult {
    eval_placed(node, session, metrics, args, by_sha, read_only, false).await
}

/// EVAL and its forms, run here or at the deciding owner of the first key (`forwarded`: it
/// was sent here to run).
async fn eval_placed(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    args: &[Bytes],
    by_sha: bool,
    read_only: bool,
    forwarded: bool,
) -> CmdResult {
    let numkeys = super::parse_i64(&args[2])?;
    if numkeys > (args.len() - 3) as i64 {
        return Err(CommandError::Other("Number of keys can't be greater than number of args".into()));
    }
    if numkeys < 0 {
        return Err(CommandError::Other("Number of keys can't be negative".into()));
    }
    let (script, fresh) = if by_sha {
        let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        (find(node, &sha).await?.ok_or_else(noscript)?, false)
    } else {
        let sha = crate::script::sha1hex(&args[1]);
        observe_flushes(node);
        match node.scripts.get(&sha) {
            Some(s) => (s, false),
            None => (Arc::new(Script::new(args[1].clone()).map_err(CommandError::Coded)?), true),
        }
    };
    // A script with a shebang is checked as Redis checks a function (scriptPrepareForRun).
    if script.shebang {
        check_flags(node, script.no_cluster, script.no_writes, read_only)?;
    }
    let split = 3 + numkeys as usize;
    let (keys, argv) = (args[3..split].to_vec(), args[split..].to_vec());
    let request = || crate::peer::Request::Script { db: session.db, args: args.to_vec() };
    let _held = match place(node, session.db, &keys, request, forwarded).await? {
        Placed::Elsewhere(reply) => return Ok(reply),
        Placed::Here(held) => held,
    };
    let read_only = read_only || script.no_writes;
    let job = Job::Script(script.clone());
    match in_script(run(node, session, metrics, job, keys, argv, read_only, args.to_vec())).await {
        Err(compile) => Err(CommandError::Coded(compile)),
        Ok(reply) => {
            if fresh {
                // Redis caches what EVAL ran; kura's cache is the cluster's.
                node.scripts.insert(script.clone());
                match store(node, &script).await {
                    Err(CommandError::Coordinator(e)) if e.is_disk_refused() => {
                        tracing::debug!("could not store script {}: {e}", script.sha)
                    }
                    Err(e) => tracing::warn!("could not store script {}: {e}", script.sha),
                    Ok(_) => {}
                }
            }
            Ok(reply)
        }
    }
}

/// Where a script runs (`place`).
pub(super) enum Placed<'a> {
    /// Here, holding the keys it declares (in a cluster).
    Here(Option<Held<'a>>),
    /// At another node, which answered this.
    Elsewhere(Reply),
}

/// Where a script (or a transaction) with `keys` (as the client sent them, of database `db`)
/// runs: in a cluster, at the deciding owner of its first key (`coordinator/scripts.rs`),
/// where it holds every key it declares. A script this node decides (or one `forwarded` here)
/// runs here once it holds them (BUSY when another script holds one of them past
/// `busy-reply-threshold`); any other is sent to the decider whole (`request`) and its reply
/// relayed. A script without keys runs where it arrives, holding nothing.
pub(super) async fn place<'a>(
    node: &'a Node,
    db: u32,
    keys: &[Bytes],
    request: impl Fn() -> crate::peer::Request,
    forwarded: bool,
) -> Result<Placed<'a>, CommandError> {
    if keys.is_empty() || node.alone() {
        return Ok(Placed::Here(None));
    }
    let stored: Vec<Bytes> = keys.iter().map(|k| crate::keyspace::internal(db, k)).collect();
    if !forwarded {
        for decider in node.coordinator.deciders(&stored[0]) {
            if node.coordinator.is_me(&decider) {
                break;
            }
            // SCRIPT KILL through this node reaches it there.
            let _tracked = node.scripts.forwarding(decider.clone());
            match node.coordinator.forward_script(&decider, request()).await? {
                ScriptForward::Reply(reply) => return Ok(Placed::Elsewhere(reply.into())),
                ScriptForward::NotSent => {
                    tracing::debug!(node = %decider, "a script never reached its decider: the next runs it");
                }
            }
        }
    }
    let hold = node.coordinator.key_locks().hold(&stored);
    let threshold = node.scripts.busy_threshold_ms.load(std::sync::atomic::Ordering::Relaxed);
    if threshold == 0 {
        return Ok(Placed::Here(Some(hold.await)));
    }
    match tokio::time::timeout(std::time::Duration::from_millis(threshold), hold).await {
        Ok(held) => Ok(Placed::Here(Some(held))),
        Err(_) => Err(CommandError::Coded(crate::script::BUSY_SCRIPT.into())),
    }
}

/// Runs a script another node forwarded here (`Request::Script`): the client's request
/// `args` in its database `db`, as a client of this node for as long as it runs; its reply.
pub async fn forwarded_script(node: &Node, db: u32, args: Vec<Bytes>, from: std::net::SocketAddr) -> Reply {
    let metrics = super::forwarded_metrics();
    if args.len() < 3 {
        return CommandError::Other("a forwarded script needs a script and a number of keys".into()).to_reply();
    }
    let client = node.clients.connect(from, from, -1);
    let mut session = Session::new(client.clone(), true);
    session.db = db;
    let result = match Cmd::lookup(&args[0]) {
        Some(Cmd::Eval) => eval_placed(node, &mut session, metrics, &args, false, false, true).await,
        Some(Cmd::Evalsha) => eval_placed(node, &mut session, metrics, &args, true, false, true).await,
        Some(Cmd::EvalRo) => eval_placed(node, &mut session, metrics, &args, false, true, true).await,
        Some(Cmd::EvalshaRo) => eval_placed(node, &mut session, metrics, &args, true, true, true).await,
        Some(Cmd::Fcall) => super::functions::fcall_placed(node, &mut session, metrics, &args, false, true).await,
        Some(Cmd::FcallRo) => super::functions::fcall_placed(node, &mut session, metrics, &args, true, true).await,
        _ => Err(CommandError::Other("a forwarded request is not a script".into())),
    };
    node.clients.disconnect(client.id);
    result.unwrap_or_else(|e| e.to_reply())
}

/// SCRIPT KILL or FUNCTION KILL another node forwarded here (its client's script runs here).
pub fn forwarded_kill(node: &Node, functions: bool) -> Reply {
    kill_here(node, functions).unwrap_or_else(|e| e.to_reply())
}

/// Redis's checks of a script's flags before it runs: `no-cluster` in a cluster, a script
/// that may write run by a `_RO` command.
pub(super) fn check_flags(node: &Node, no_cluster: bool, no_writes: bool, read_only: bool) -> Result<(), CommandError> {
    if no_cluster && !node.alone() {
        return Err(CommandError::Other("Can not run script on cluster, 'no-cluster' flag is set.".into()));
    }
    if read_only && !no_writes {
        return Err(CommandError::Other("Can not execute a script with write flag using *_ro command.".into()));
    }
    Ok(())
}

/// What a run executes: a script (EVAL) or a library's function (FCALL).
pub(super) enum Job {
    Script(Arc<Script>),
    Function { library: Arc<Library>, name: String },
}

/// Ends a run's registration, also when the connection's task is dropped mid-script (the
/// script is then killed: nobody waits for it).
struct Finish<'a>(&'a Node, Arc<Running>);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.1.kill_quietly();
        self.0.scripts.finish(&self.1);
    }
}

/// Runs a script (or a function) on the blocking pool and its `redis.call`s here. `Err`: it
/// did not compile (or load). `command` is the request that runs it (FUNCTION STATS).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    job: Job,
    keys: Vec<Bytes>,
    argv: Vec<Bytes>,
    read_only: bool,
    command: Vec<Bytes>,
) -> Result<Reply, String> {
    let mut vm = node.scripts.take_vm().map_err(|e| format!("ERR {e}"))?;
    let function = match &job {
        Job::Script(_) => None,
        Job::Function { name, .. } => Some(name.clone()),
    };
    let running = node.scripts.start(node.alone(), function, command);
    let finish = Finish(node, running.clone());
    let (calls, mut requests) = mpsc::unbounded_channel();
    let job = {
        let running = running.clone();
        tokio::task::spawn_blocking(move || {
            let reply = match &job {
                Job::Script(script) => vm.run(script, &keys, &argv, calls, running),
                Job::Function { library, name } => vm.run_function(library, name, &keys, &argv, calls, running),
            };
            (vm, reply)
        })
    };
    tokio::pin!(job);
    let saved_db = session.db;
    session.in_script = true;
    let done = loop {
        tokio::select! {
            Some(call) = requests.recv() => {
                let reply = script_call(node, session, metrics, &call.args, read_only, &running).await;
                let _ = call.reply.send(reply);
            }
            done = &mut job => break done,
        }
    };
    session.in_script = false;
    session.db = saved_db;
    running.done();
    drop(finish);
    match done {
        Ok((vm, reply)) => {
            node.scripts.give_back(vm);
            reply
        }
        Err(e) => Ok(Reply::Error(format!("ERR the script's thread failed: {e}"))),
    }
}

/// Commands Redis refuses from scripts that kura's table does not flag `noscript` (their
/// subcommands carry the flag in Redis).
fn refused_in_scripts(cmd: Cmd) -> bool {
    matches!(
        cmd,
        Cmd::Client
            | Cmd::Config
            | Cmd::Monitor
            | Cmd::Shutdown
            | Cmd::Kura
            | Cmd::Slowlog
            | Cmd::Latency
            | Cmd::Script
            | Cmd::Function
    ) || cmd.spec().flags.contains(&"noscript")
}

/// One `redis.call` of a script, with Redis's checks for scripts first.
async fn script_call(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    args: &[Bytes],
    read_only: bool,
    running: &Running,
) -> Reply {
    let err = |s: &str| Reply::Error(s.to_owned());
    let Some(cmd) = Cmd::lookup(&args[0]) else { return err("ERR Unknown Redis command called from script") };
    let spec = cmd.spec();
    let n = args.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return err("ERR Wrong number of args calling Redis command from script");
    }
    if refused_in_scripts(cmd) {
        return err("ERR This Redis command is not allowed from script");
    }
    if spec.flags.contains(&"write") {
        if read_only {
            return err("ERR Write commands are not allowed from read-only scripts.");
        }
        running.note_write();
    }
    Box::pin(execute_in(node, Conn::Mut(session), metrics, args)).await
}

const HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP (the subcommand and its arity were checked).
pub async fn script(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "load" => {
            observe_flushes(node);
            let script = Script::new(args[2].clone()).map_err(CommandError::Coded)?;
            if node.scripts.get(&script.sha).is_none() {
                node.scripts.check_compiles(&script).map_err(CommandError::Coded)?;
                let script = Arc::new(script);
                store(node, &script).await?;
                node.scripts.insert(script.clone());
                return Ok(Reply::Bulk(Bytes::from(script.sha.clone())));
            }
            Ok(Reply::Bulk(Bytes::from(script.sha)))
        }
        "exists" => {
            let mut out = Vec::with_capacity(args.len() - 2);
            for sha in &args[2..] {
                let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
                out.push(Reply::Int(i64::from(find(node, &sha).await?.is_some())));
            }
            Ok(Reply::Array(out))
        }
        "flush" => {
            let mode_ok = match args.get(2) {
                None => true,
                Some(m) => args.len() == 3 && (m.eq_ignore_ascii_case(b"sync") || m.eq_ignore_ascii_case(b"async")),
            };
            if !mode_ok {
                return Err(CommandError::Other("SCRIPT FLUSH only support SYNC|ASYNC option".into()));
            }
            node.scripts.flush();
            dispatch_data(Cmd::Del, node, &[Bytes::from_static(b"del"), scripts_key()]).await?;
            // Every other node empties its cache once it holds the mark (answered when all do).
            marked(node.coordinator.cluster().mark_scripts(false).await)?;
            Ok(Reply::ok())
        }
        "kill" => kill(node, false).await,
        _ => Ok(Reply::Array(HELP.iter().map(|l| Reply::Simple(l)).collect())),
    }
}

/// A script mark's outcome as a reply: NOQUORUM when a member did not confirm it in time.
pub(super) fn marked(outcome: Result<(), crate::cluster::ClusterError>) -> Result<(), CommandError> {
    match outcome {
        Ok(()) => Ok(()),
        Err(e @ crate::cluster::ClusterError::Unconfirmed { .. }) => Err(CommandError::Coded(format!("NOQUORUM {e}"))),
        Err(e) => Err(crate::coordinator::CoordError::from(e).into()),
    }
}

const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";

/// SCRIPT KILL (`functions` false) and FUNCTION KILL: what runs on this node, else what this
/// node's clients run at other nodes (forwarded there: `place`).
pub(super) async fn kill(node: &Node, functions: bool) -> CmdResult {
    let here = kill_here(node, functions);
    if !matches!(&here, Err(CommandError::Coded(text)) if text == NOTBUSY) {
        return here;
    }
    for decider in node.scripts.forwarded_to() {
        if let Ok(reply) = node.coordinator.kill_script_at(&decider, functions).await {
            let reply = Reply::from(reply);
            if !matches!(&reply, Reply::Error(text) if text == NOTBUSY) {
                return Ok(reply);
            }
        }
    }
    here
}

/// SCRIPT KILL or FUNCTION KILL of what runs on this node.
fn kill_here(node: &Node, functions: bool) -> CmdResult {
    match node.scripts.kill(functions) {
        KillOutcome::Killed => Ok(Reply::ok()),
        KillOutcome::NotBusy => Err(CommandError::Coded(NOTBUSY.into())),
        KillOutcome::Unkillable => Err(CommandError::Coded(
            "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into(),
        )),
        KillOutcome::OtherKind if functions => Err(CommandError::Coded(crate::script::BUSY_SCRIPT.into())),
        KillOutcome::OtherKind => Err(CommandError::Coded(crate::script::BUSY_FUNCTION.into())),
    }
}
