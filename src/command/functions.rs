//! Functions: `FCALL`, `FCALL_RO` and `FUNCTION LOAD|LIST|DELETE|FLUSH|DUMP|RESTORE|STATS|
//! KILL|HELP`, as Redis 7.
//!
//! The libraries are cluster state, as scripts are: their code is stored in a hash under a
//! reserved key ([`crate::keyspace::FUNCTIONS`], library name -> code), replicated like any
//! key, so a library loaded through one node is found through every node, also one that
//! joins later. Each node keeps the libraries it read (`script::Registry`, compiled) together
//! with the cluster's *function mark* at the time it read them (`flushes::ScriptMarks`, in
//! the cluster state). FUNCTION DELETE, FLUSH, LOAD REPLACE and RESTORE (with FLUSH or REPLACE)
//! change the stored hash and then move the mark, answering once every member holds it (as a
//! flush does, NOQUORUM after 10 s otherwise): a node whose mark moved reads the hash again
//! before its next FCALL, so a deleted or replaced function stops running everywhere. A new
//! library needs no mark: a node that does not know a function reads the hash again before it
//! answers `Function not found`. FUNCTION LIST, DUMP and STATS always read the hash.
//!
//! A function runs as a script does (`eval::run`: the blocking pool, `redis.call` through the
//! ordinary command path), in a Lua state of the node's pool that loads the library the
//! first time it runs one of its functions.

use std::sync::Arc;

use bytes::Bytes;

use super::eval::{self, Job};
use super::{dispatch_data, Cmd, CmdResult, CommandError, CommandMetrics, Session};
use crate::node::Node;
use crate::resp::Reply;
use crate::script::functions::{self, Meta, BAD_NAME};
use crate::script::{Flags, Library, Registry};

fn functions_key() -> Bytes {
    Bytes::from_static(crate::keyspace::FUNCTIONS)
}

fn err(text: impl Into<String>) -> CommandError {
    CommandError::Other(text.into())
}

/// The stored libraries: (name, code) pairs of the cluster's hash.
async fn stored(node: &Node) -> Result<Vec<(Bytes, Bytes)>, CommandError> {
    let args = [Bytes::from_static(b"hgetall"), functions_key()];
    let pairs = match dispatch_data(Cmd::Hgetall, node, &args).await? {
        Reply::Map(pairs) => pairs,
        _ => Vec::new(),
    };
    Ok(pairs
        .into_iter()
        .filter_map(|pair| match pair {
            (Reply::Bulk(name), Reply::Bulk(code)) => Some((name, code)),
            _ => None,
        })
        .collect())
}

/// Compiles a library (its shebang checked) on the blocking pool: its code runs there.
async fn compile(node: &Node, meta: Meta, code: Bytes) -> Result<Arc<Library>, String> {
    let sha = crate::script::sha1hex(&code);
    if let Some(lib) = node.scripts.compiled(&sha, &meta.name) {
        return Ok(lib);
    }
    let mut vm = node.scripts.take_vm().map_err(|e| e.to_string())?;
    let done = tokio::task::spawn_blocking(move || {
        let lib = vm.compile_library(&meta, code);
        (vm, lib)
    })
    .await;
    let (vm, lib) = done.map_err(|e| format!("the compiling thread failed: {e}"))?;
    node.scripts.give_back(vm);
    if let Ok(lib) = &lib {
        node.scripts.remember(lib.clone());
    }
    lib
}

/// A library's shebang, checked as Redis checks it before it compiles the code: the metadata,
/// the name, the engine.
fn checked_meta(code: &[u8]) -> Result<Meta, String> {
    let meta = functions::parse_meta(code)?;
    if !functions::valid_name(meta.name.as_bytes()) {
        return Err(BAD_NAME.into());
    }
    if !meta.engine.eq_ignore_ascii_case("lua") {
        return Err(format!("Engine '{}' not found", meta.engine));
    }
    Ok(meta)
}

/// Reads the stored libraries and compiles them (those compiled before are reused). A stored
/// library that no longer loads, or whose functions another library has (two nodes loaded
/// them at once), is left out with a warning.
async fn read(node: &Node) -> Result<Arc<Registry>, CommandError> {
    let mark = eval::marks(node).functions_changed;
    let mut libraries = Vec::new();
    for (name, code) in stored(node).await? {
        let meta = match checked_meta(&code) {
            Ok(meta) if meta.name.as_bytes() == &name[..] => meta,
            _ => {
                tracing::warn!(library = %String::from_utf8_lossy(&name), "a stored library's shebang does not name it");
                continue;
            }
        };
        match compile(node, meta, code).await {
            Ok(lib) => libraries.push(lib),
            Err(e) => tracing::warn!(library = %String::from_utf8_lossy(&name), "a stored library does not load: {e}"),
        }
    }
    let (registry, left_out) = Registry::build(libraries);
    for name in left_out {
        tracing::warn!(library = %name, "a stored library's functions collide with another library's: left out");
    }
    let registry = Arc::new(registry);
    node.scripts.set_registry(mark, registry.clone());
    Ok(registry)
}

/// The libraries as this node knows them: read again when the cluster's function mark moved
/// since it last read them.
async fn current(node: &Node) -> Result<Arc<Registry>, CommandError> {
    match node.scripts.registry(eval::marks(node).functions_changed) {
        Some(registry) => Ok(registry),
        None => read(node).await,
    }
}

/// FCALL / FCALL_RO function numkeys [key ...] [arg ...].
pub async fn fcall(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    args: &[Bytes],
    read_only: bool,
) -> CmdResult {
    fcall_placed(node, session, metrics, args, read_only, false).await
}

/// FCALL run here or at the deciding owner of its first key (`forwarded`: it was sent here
/// to run; see `eval::place`).
pub(super) async fn fcall_placed(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    args: &[Bytes],
    read_only: bool,
    forwarded: bool,
) -> CmdResult {
    let mut registry = current(node).await?;
    if registry.function(&args[1]).is_none() {
        // Loaded through another node since this one read the libraries.
        registry = read(node).await?;
    }
    let (library, info) = registry.function(&args[1]).ok_or_else(|| err("Function not found"))?;
    let numkeys = super::parse_i64(&args[2]).map_err(|_| err("Bad number of keys provided"))?;
    if numkeys > (args.len() - 3) as i64 {
        return Err(err("Number of keys can't be greater than number of args"));
    }
    if numkeys < 0 {
        return Err(err("Number of keys can't be negative"));
    }
    let no_writes = info.flags.has(Flags::NO_WRITES);
    eval::check_flags(node, info.flags.has(Flags::NO_CLUSTER), no_writes, read_only)?;
    let split = 3 + numkeys as usize;
    let (keys, argv) = (args[3..split].to_vec(), args[split..].to_vec());
    let request = || crate::peer::Request::Script { db: session.db, args: args.to_vec() };
    let _held = match eval::place(node, session.db, &keys, request, forwarded).await? {
        eval::Placed::Elsewhere(reply) => return Ok(reply),
        eval::Placed::Here(held) => held,
    };
    let job = Job::Function { library: library.clone(), name: info.name.clone() };
    let run = eval::run(node, session, metrics, job, keys, argv, read_only || no_writes, args.to_vec());
    crate::coordinator::scripts::in_script(run).await.map_err(CommandError::Coded)
}

const HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

/// Redis's answer to a subcommand given too many arguments.
fn syntax(sub: &str) -> CommandError {
    err(format!("unknown subcommand or wrong number of arguments for '{sub}'. Try FUNCTION HELP."))
}

/// FUNCTION's subcommands (the subcommand and its arity were checked).
pub async fn function(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "load" => load(node, args).await,
        "list" => list(node, args).await,
        "delete" => delete(node, &args[2]).await,
        "flush" => flush(node, args).await,
        "dump" => {
            let registry = read(node).await?;
            let payload = crate::rdb::dump_functions(registry.libraries().map(|l| &l.code[..]));
            Ok(Reply::Bulk(Bytes::from(payload)))
        }
        "restore" => restore(node, args).await,
        "stats" => stats(node).await,
        "kill" => eval::kill(node, true).await,
        _ => Ok(Reply::Array(HELP.iter().map(|l| Reply::Simple(l)).collect())),
    }
}

/// Stores libraries' codes in the cluster's hash.
async fn store(node: &Node, libraries: &[Arc<Library>]) -> Result<(), CommandError> {
    if libraries.is_empty() {
        return Ok(());
    }
    let mut args = vec![Bytes::from_static(b"hset"), functions_key()];
    for lib in libraries {
        args.push(Bytes::from(lib.name.clone()));
        args.push(lib.code.clone());
    }
    dispatch_data(Cmd::Hset, node, &args).await.map(|_| ())
}

/// After a change to the stored libraries: this node reads them again at its next FCALL; a
/// change that removed or replaced one moves the function mark, answered once every member
/// holds it.
async fn changed(node: &Node, removed: bool) -> Result<(), CommandError> {
    node.scripts.forget_registry(removed);
    if removed {
        eval::marked(node.coordinator.cluster().mark_scripts(true).await)?;
    }
    Ok(())
}

/// FUNCTION LOAD [REPLACE] code.
async fn load(node: &Node, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut at = 2;
    while at < args.len() - 1 {
        let arg = &args[at];
        at += 1;
        if arg.eq_ignore_ascii_case(b"replace") {
            replace = true;
            continue;
        }
        return Err(err(format!("Unknown option given: {}", String::from_utf8_lossy(arg))));
    }
    let code = args[at].clone();
    let registry = read(node).await?;
    let meta = checked_meta(&code).map_err(err)?;
    let existed = registry.library(&meta.name).is_some();
    if existed && !replace {
        return Err(err(format!("Library '{}' already exists", meta.name)));
    }
    let lib = compile(node, meta, code).await.map_err(err)?;
    registry.check(&lib, replace, true).map_err(err)?;
    store(node, std::slice::from_ref(&lib)).await?;
    changed(node, existed).await?;
    Ok(Reply::Bulk(Bytes::from(lib.name.clone())))
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE].
async fn list(node: &Node, args: &[Bytes]) -> CmdResult {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        if !with_code && arg.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
        } else if pattern.is_none() && arg.eq_ignore_ascii_case(b"libraryname") {
            if i >= args.len() - 1 {
                return Err(err("library name argument was not given"));
            }
            i += 1;
            pattern = Some(crate::glob::Pattern::new(&args[i].to_ascii_lowercase()));
        } else {
            return Err(err(format!("Unknown argument {}", String::from_utf8_lossy(arg))));
        }
        i += 1;
    }
    let registry = read(node).await?;
    let bulk = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let libraries = registry
        .libraries()
        .filter(|lib| pattern.as_ref().is_none_or(|p| p.matches(lib.name.to_ascii_lowercase().as_bytes())))
        .map(|lib| {
            let functions = lib
                .functions
                .iter()
                .map(|f| {
                    Reply::Map(vec![
                        (bulk("name"), bulk(&f.name)),
                        (bulk("description"), f.description.clone().map_or(Reply::Nil, Reply::Bulk)),
                        (bulk("flags"), Reply::Set(f.flags.names().map(Reply::Simple).collect())),
                    ])
                })
                .collect();
            let mut fields = vec![
                (bulk("library_name"), bulk(&lib.name)),
                (bulk("engine"), bulk("LUA")),
                (bulk("functions"), Reply::Array(functions)),
            ];
            if with_code {
                fields.push((bulk("library_code"), Reply::Bulk(lib.code.clone())));
            }
            Reply::Map(fields)
        })
        .collect();
    Ok(Reply::Array(libraries))
}

/// FUNCTION DELETE library.
async fn delete(node: &Node, name: &[u8]) -> CmdResult {
    let registry = read(node).await?;
    let name = String::from_utf8_lossy(name);
    if registry.library(&name).is_none() {
        return Err(err("Library not found"));
    }
    let args = [Bytes::from_static(b"hdel"), functions_key(), Bytes::copy_from_slice(name.as_bytes())];
    dispatch_data(Cmd::Hdel, node, &args).await?;
    changed(node, true).await?;
    Ok(Reply::ok())
}

/// FUNCTION FLUSH [ASYNC|SYNC].
async fn flush(node: &Node, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => {}
        3 if args[2].eq_ignore_ascii_case(b"sync") || args[2].eq_ignore_ascii_case(b"async") => {}
        3 => return Err(err("FUNCTION FLUSH only supports SYNC|ASYNC option")),
        _ => return Err(syntax("flush")),
    }
    dispatch_data(Cmd::Del, node, &[Bytes::from_static(b"del"), functions_key()]).await?;
    changed(node, true).await?;
    Ok(Reply::ok())
}

/// The most decompressed code a FUNCTION RESTORE payload may hold.
const RESTORE_BUDGET: usize = 512 << 20;

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE].
async fn restore(node: &Node, args: &[Bytes]) -> CmdResult {
    #[derive(PartialEq)]
    enum Policy {
        Flush,
        Append,
        Replace,
    }
    if args.len() > 4 {
        return Err(syntax("restore"));
    }
    let policy = match args.get(3) {
        None => Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"append") => Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"replace") => Policy::Replace,
        Some(p) if p.eq_ignore_ascii_case(b"flush") => Policy::Flush,
        Some(_) => return Err(err("Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")),
    };
    let codes = crate::rdb::restore_functions(&args[2], RESTORE_BUDGET).map_err(|e| err(e.to_string()))?;
    // The payload's libraries, as Redis loads them into a context of their own first.
    let mut restored = Registry::default();
    let mut libraries = Vec::with_capacity(codes.len());
    for code in codes {
        let meta = checked_meta(&code).map_err(err)?;
        if restored.library(&meta.name).is_some() {
            return Err(err(format!("Library '{}' already exists", meta.name)));
        }
        let lib = compile(node, meta, code).await.map_err(err)?;
        restored.check(&lib, false, true).map_err(err)?;
        restored.insert(lib.clone());
        libraries.push(lib);
    }
    let current = read(node).await?;
    let mut replaced = false;
    if policy != Policy::Flush {
        for lib in &libraries {
            replaced |= current.library(&lib.name).is_some();
            current.check(lib, policy == Policy::Replace, false).map_err(err)?;
        }
    }
    if policy == Policy::Flush {
        dispatch_data(Cmd::Del, node, &[Bytes::from_static(b"del"), functions_key()]).await?;
        replaced = current.libraries().next().is_some();
    }
    store(node, &libraries).await?;
    changed(node, replaced).await?;
    Ok(Reply::ok())
}

/// FUNCTION STATS: the function running on this node (if any) and the libraries' counts.
async fn stats(node: &Node) -> CmdResult {
    if node.alone() && node.scripts.exclusive_script_running() {
        return Err(CommandError::Coded(crate::script::BUSY_SCRIPT.into()));
    }
    let registry = read(node).await?;
    let bulk = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let running = match node.scripts.running_function() {
        None => Reply::Nil,
        Some(r) => Reply::Map(vec![
            (bulk("name"), bulk(&r.name)),
            (bulk("command"), Reply::Array(r.command.into_iter().map(Reply::Bulk).collect())),
            (bulk("duration_ms"), Reply::Int(r.duration_ms as i64)),
        ]),
    };
    let functions: usize = registry.libraries().map(|l| l.functions.len()).sum();
    let lua = Reply::Map(vec![
        (bulk("libraries_count"), Reply::Int(registry.libraries().count() as i64)),
        (bulk("functions_count"), Reply::Int(functions as i64)),
    ]);
    Ok(Reply::Map(vec![(bulk("running_script"), running), (bulk("engines"), Reply::Map(vec![(bulk("LUA"), lua)]))]))
}
