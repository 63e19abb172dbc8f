//! Lua scripting as Redis 7 embeds it: Lua 5.1 (`mlua`, vendored) with Redis's sandbox, the
//! `redis` API, the libraries (`cjson`, `cmsgpack`, `bit`, `struct`) and Redis's reply
//! conversions both ways (`convert.rs`).
//!
//! This module knows Lua and replies, not commands: a script's `redis.call` sends its
//! arguments to whoever runs the script ([`Call`], answered by `command/eval.rs` on the
//! client's connection task through kura's ordinary command path) and blocks its thread
//! until the reply comes back. A script runs on tokio's blocking pool, never on a runtime
//! worker, in a Lua state taken from a pool ([`Engine::take_vm`]); each state keeps the
//! functions it compiled, by SHA1.

mod convert;
pub mod functions;
mod libs;
mod lua_struct;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

pub use convert::{lua_to_reply, reply_to_lua};
pub use functions::{Flags, FunctionInfo, Library, Registry};

use crate::resp::Reply;

/// The Redis version scripts see (`redis.REDIS_VERSION`).
pub const REDIS_VERSION: &str = "7.0.15";
const REDIS_VERSION_NUM: f64 = 0x07000f as f64;

/// How much memory one Lua state may use (its compiled scripts included).
pub const MEMORY_LIMIT: usize = 256 << 20;

/// How often (in Lua instructions) a running script checks the time and SCRIPT KILL.
const HOOK_EVERY: u32 = 100_000;

/// SHA1 of `data` as 40 lowercase hex digits (what EVALSHA names a script by).
pub fn sha1hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// A script's body, its SHA1 and what its shebang line says.
#[derive(Debug)]
pub struct Script {
    pub sha: String,
    pub body: Bytes,
    /// `#!lua flags=no-writes`: runs as EVAL_RO would.
    pub no_writes: bool,
    /// It has a shebang (Redis then checks its flags: EVAL_RO refuses one without
    /// `no-writes`, a cluster one with `no-cluster`).
    pub shebang: bool,
    /// `#!lua flags=no-cluster`.
    pub no_cluster: bool,
    /// Where the code starts (after a shebang line).
    code_start: usize,
}

impl Script {
    /// Parses a body's shebang line as Redis 7 does.
    ///
    /// # Errors
    /// Redis's texts for an unknown engine or flag.
    pub fn new(body: Bytes) -> Result<Script, String> {
        let sha = sha1hex(&body);
        let (mut no_writes, mut no_cluster) = (false, false);
        let mut code_start = 0;
        let shebang = body.starts_with(b"#!");
        if shebang {
            let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
            let line = String::from_utf8_lossy(&body[..end]).into_owned();
            let mut parts = line[2..].split(' ').filter(|p| !p.is_empty());
            if parts.next() != Some("lua") {
                return Err(format!("ERR Unexpected engine in script shebang: {line}"));
            }
            for part in parts {
                let Some(flags) = part.strip_prefix("flags=") else {
                    return Err(format!("ERR Unknown lua shebang option: {part}"));
                };
                for flag in flags.split(',').filter(|f| !f.is_empty()) {
                    match flag {
                        "no-writes" => no_writes = true,
                        "no-cluster" => no_cluster = true,
                        "allow-oom" | "allow-stale" | "allow-cross-slot-keys" => {}
                        other => return Err(format!("ERR Unexpected flag in script shebang: {other}")),
                    }
                }
            }
            code_start = end;
        }
        Ok(Script { sha, body, no_writes, shebang, no_cluster, code_start })
    }

    fn code(&self) -> &[u8] {
        &self.body[self.code_start..]
    }
}

/// A `redis.call` from a running script: its arguments, and where its reply goes.
pub struct Call {
    pub args: Vec<Bytes>,
    pub reply: oneshot::Sender<Reply>,
}

/// A script being run: what SCRIPT KILL and the busy check look at.
pub struct Running {
    started: Instant,
    /// The function it runs (FCALL), or `None` for a script (EVAL).
    function: Option<String>,
    /// The command that runs it (FUNCTION STATS shows it).
    command: Vec<Bytes>,
    threshold_ms: u64,
    /// It holds the node's gate (a node alone): past the threshold other clients get BUSY.
    exclusive: bool,
    kill: AtomicBool,
    /// It ran a write command (SCRIPT KILL refuses then: UNKILLABLE).
    pub wrote: AtomicBool,
    finished: AtomicBool,
    busy: Arc<watch::Sender<bool>>,
}

impl Running {
    /// Called by the Lua hook: whether the script must stop; marks the node busy once the
    /// script has run past the threshold.
    fn check(&self) -> bool {
        if self.exclusive && self.threshold_ms > 0 && self.started.elapsed().as_millis() as u64 >= self.threshold_ms {
            self.busy.send_if_modified(|b| !std::mem::replace(b, true));
        }
        self.kill.load(Ordering::Acquire)
    }

    pub fn killed(&self) -> bool {
        self.kill.load(Ordering::Acquire)
    }

    /// It ran a write command.
    pub fn note_write(&self) {
        self.wrote.store(true, Ordering::Release);
    }

    /// Its caller stopped waiting: stop it at its next check.
    pub fn kill_quietly(&self) {
        if !self.finished.load(Ordering::Acquire) {
            self.kill.store(true, Ordering::Release);
        }
    }

    /// It returned.
    pub fn done(&self) {
        self.finished.store(true, Ordering::Release);
    }
}

/// What SCRIPT KILL (or FUNCTION KILL) found.
#[derive(Debug, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    NotBusy,
    Unkillable,
    /// Only runs of the other kind (a function for SCRIPT KILL, a script for FUNCTION KILL):
    /// Redis answers BUSY with the command that would kill it.
    OtherKind,
}

/// The BUSY text while a script runs past the threshold.
pub const BUSY_SCRIPT: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// The BUSY text while a function runs past the threshold.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// What FUNCTION STATS shows of a function running.
pub struct RunningFunction {
    pub name: String,
    pub command: Vec<Bytes>,
    pub duration_ms: u64,
}

/// How long a library's code may run while it registers its functions (Redis's
/// `LOAD_TIMEOUT_MS`).
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// Put where the hook finds it while a library loads.
struct Loading {
    deadline: Instant,
}

/// The state a run puts where the Lua callbacks find it.
struct RunCtx {
    calls: mpsc::UnboundedSender<Call>,
    resp: AtomicU8,
    running: Arc<Running>,
}

/// One Lua state with the sandbox and the functions it compiled.
pub struct Vm {
    lua: Lua,
    backing: Table,
    runner: Function,
    function_runner: Function,
    loader: Function,
    functions: HashMap<String, Function>,
    /// The libraries it loaded (by the SHA1 of their code): their functions by name.
    libraries: HashMap<String, HashMap<String, Function>>,
    generation: u64,
}

/// The node's scripting: the cache of script bodies by SHA1, the pool of Lua states, the
/// running scripts and the busy state.
pub struct Engine {
    scripts: Mutex<HashMap<String, Arc<Script>>>,
    vms: Mutex<Vec<Vm>>,
    /// SCRIPT FLUSH moves it on: states of an older generation are dropped, not reused.
    generation: AtomicU64,
    running: Mutex<Vec<Arc<Running>>>,
    /// True while a script holding the node's gate has run past the threshold.
    busy: Arc<watch::Sender<bool>>,
    /// Scripts holding the gate now (the gate path looks at `busy` only then).
    exclusive_running: AtomicU64,
    /// `busy-reply-threshold` (`lua-time-limit`), in ms.
    pub busy_threshold_ms: AtomicU64,
    /// The script mark (`ScriptMarks::scripts_flushed`) the cache was last emptied under.
    scripts_mark: AtomicU64,
    /// The libraries as this node last read them, and the function mark they were read
    /// under (`command/functions.rs` reads them again when the cluster's mark moves).
    registry: Mutex<Option<(u64, Arc<Registry>)>>,
    /// Libraries compiled so far, by the SHA1 of their code (what they register).
    compiled: Mutex<HashMap<String, Arc<Library>>>,
    /// Scripts of this node's clients running at other nodes now (forwarded to their first
    /// key's decider): where, by a number of this node's.
    remote: Mutex<Vec<(u64, String)>>,
    next_remote: AtomicU64,
}

/// A script of this node's client running at another node: listed while this lives.
pub struct RemoteRun<'a> {
    engine: &'a Engine,
    id: u64,
}

impl Drop for RemoteRun<'_> {
    fn drop(&mut self) {
        self.engine.remote.lock().retain(|(id, _)| *id != self.id);
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            scripts: Mutex::new(HashMap::new()),
            vms: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            running: Mutex::new(Vec::new()),
            busy: Arc::new(watch::channel(false).0),
            exclusive_running: AtomicU64::new(0),
            busy_threshold_ms: AtomicU64::new(5000),
            scripts_mark: AtomicU64::new(0),
            registry: Mutex::new(None),
            compiled: Mutex::new(HashMap::new()),
            remote: Mutex::new(Vec::new()),
            next_remote: AtomicU64::new(0),
        }
    }
}

/// The SCRIPT KILL text a killed script's caller sees.
const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";

impl Engine {
    /// The script cached under `sha`.
    pub fn get(&self, sha: &str) -> Option<Arc<Script>> {
        self.scripts.lock().get(sha).cloned()
    }

    /// Caches a script (SCRIPT LOAD, EVAL, a body read from the cluster).
    pub fn insert(&self, script: Arc<Script>) {
        self.scripts.lock().insert(script.sha.clone(), script);
    }

    /// SCRIPT FLUSH: forgets every cached script and every compiled function.
    pub fn flush(&self) {
        self.scripts.lock().clear();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.vms.lock().clear();
    }

    /// Empties the script cache if the cluster's script mark moved past the one it was last
    /// emptied under (a SCRIPT FLUSH through another node).
    pub fn observe_scripts_mark(&self, mark: u64) {
        if self.scripts_mark.fetch_max(mark, Ordering::AcqRel) < mark {
            self.flush();
        }
    }

    /// The libraries as last read, if read under function mark `mark`.
    pub fn registry(&self, mark: u64) -> Option<Arc<Registry>> {
        match &*self.registry.lock() {
            Some((m, r)) if *m == mark => Some(r.clone()),
            _ => None,
        }
    }

    /// Keeps the libraries read under function mark `mark` (a read under an older mark does
    /// not replace one under a newer).
    pub fn set_registry(&self, mark: u64, registry: Arc<Registry>) {
        let mut slot = self.registry.lock();
        if slot.as_ref().is_none_or(|(m, _)| *m <= mark) {
            *slot = Some((mark, registry));
        }
    }

    /// Forgets the libraries read (this node changed them: the next FCALL reads them again),
    /// and the Lua states that loaded them when `drop_loaded` (a library was replaced or
    /// removed: the states would keep its old functions in memory).
    pub fn forget_registry(&self, drop_loaded: bool) {
        *self.registry.lock() = None;
        if drop_loaded {
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.vms.lock().clear();
            self.compiled.lock().clear();
        }
    }

    /// The library compiled earlier from this code (by its SHA1), if it has this name.
    pub fn compiled(&self, sha: &str, name: &str) -> Option<Arc<Library>> {
        self.compiled.lock().get(sha).filter(|lib| lib.name == name).cloned()
    }

    /// Remembers a library compiled (what it registers), by the SHA1 of its code.
    pub fn remember(&self, lib: Arc<Library>) {
        let mut compiled = self.compiled.lock();
        if compiled.len() >= 4096 {
            compiled.clear();
        }
        compiled.insert(lib.sha.clone(), lib);
    }

    /// Compiles a script in a state of the pool (SCRIPT LOAD checks the body this way).
    ///
    /// # Errors
    /// Redis's "Error compiling script" text.
    pub fn check_compiles(&self, script: &Script) -> Result<(), String> {
        let mut vm = self.take_vm().map_err(|e| format!("ERR {e}"))?;
        let result = vm.function(script).map(|_| ());
        self.give_back(vm);
        result
    }

    /// A Lua state from the pool, or a new one.
    ///
    /// # Errors
    /// When a new state cannot be built (out of memory).
    pub fn take_vm(&self) -> mlua::Result<Vm> {
        let generation = self.generation.load(Ordering::Acquire);
        while let Some(vm) = self.vms.lock().pop() {
            if vm.generation == generation {
                return Ok(vm);
            }
        }
        Vm::new(generation)
    }

    /// Returns a state to the pool (at most 16 are kept).
    pub fn give_back(&self, vm: Vm) {
        if vm.generation == self.generation.load(Ordering::Acquire) {
            let mut vms = self.vms.lock();
            if vms.len() < 16 {
                vms.push(vm);
            }
        }
    }

    /// Registers a script about to run. `exclusive`: it holds the node's gate; `function`:
    /// the function it runs (FCALL); `command`: the request that runs it.
    pub fn start(&self, exclusive: bool, function: Option<String>, command: Vec<Bytes>) -> Arc<Running> {
        let running = Arc::new(Running {
            started: Instant::now(),
            function,
            command,
            threshold_ms: self.busy_threshold_ms.load(Ordering::Relaxed),
            exclusive,
            kill: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            busy: self.busy.clone(),
        });
        if exclusive {
            self.exclusive_running.fetch_add(1, Ordering::AcqRel);
        }
        self.running.lock().push(running.clone());
        running
    }

    /// The script ended.
    pub fn finish(&self, running: &Arc<Running>) {
        self.running.lock().retain(|r| !Arc::ptr_eq(r, running));
        if running.exclusive && self.exclusive_running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.busy.send_if_modified(|b| std::mem::replace(b, false));
        }
    }

    /// SCRIPT KILL (`functions` false) or FUNCTION KILL (true): stops the running scripts
    /// (or functions) of this node, unless one of them wrote.
    pub fn kill(&self, functions: bool) -> KillOutcome {
        let running = self.running.lock();
        if running.is_empty() {
            return KillOutcome::NotBusy;
        }
        if running.iter().any(|r| r.wrote.load(Ordering::Acquire)) {
            return KillOutcome::Unkillable;
        }
        let mut kind = running.iter().filter(|r| r.function.is_some() == functions).peekable();
        if kind.peek().is_none() {
            return KillOutcome::OtherKind;
        }
        kind.for_each(|r| r.kill.store(true, Ordering::Release));
        KillOutcome::Killed
    }

    /// Lists a script of this node's client sent to `node` to run, while the guard lives.
    pub fn forwarding(&self, node: String) -> RemoteRun<'_> {
        let id = self.next_remote.fetch_add(1, Ordering::Relaxed);
        self.remote.lock().push((id, node));
        RemoteRun { engine: self, id }
    }

    /// The nodes running scripts of this node's clients now.
    pub fn forwarded_to(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.remote.lock().iter().map(|(_, n)| n.clone()).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// A function running on this node (FUNCTION STATS), the longest running first.
    pub fn running_function(&self) -> Option<RunningFunction> {
        let running = self.running.lock();
        running.iter().find(|r| r.function.is_some()).map(|r| RunningFunction {
            name: r.function.clone().unwrap_or_default(),
            command: r.command.clone(),
            duration_ms: r.started.elapsed().as_millis() as u64,
        })
    }

    /// Whether a script (EVAL, not a function) holding the node's gate is running.
    pub fn exclusive_script_running(&self) -> bool {
        self.running.lock().iter().any(|r| r.exclusive && r.function.is_none())
    }

    /// The BUSY text for what holds the node's gate now.
    pub fn busy_text(&self) -> &'static str {
        if self.running.lock().iter().any(|r| r.exclusive && r.function.is_some()) {
            BUSY_FUNCTION
        } else {
            BUSY_SCRIPT
        }
    }

    /// Turns true while a script holding the gate runs past the threshold.
    pub fn busy(&self) -> watch::Receiver<bool> {
        self.busy.subscribe()
    }
}

impl Vm {
    fn new(generation: u64) -> mlua::Result<Vm> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
        // SAFETY: `debug` is needed by the error handler and is removed from the globals
        // before any script runs (prelude.lua), as Redis removes it.
        let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::default()) };
        lua.set_memory_limit(MEMORY_LIMIT)?;
        let raw = lua.create_table()?;
        register(&lua, &raw)?;
        lua.globals().raw_set("__kura", raw)?;
        let (backing, runner, function_runner, loader): (Table, Function, Function, Function) =
            lua.load(include_str!("prelude.lua")).set_name("=kura").call(())?;
        lua.set_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), |lua, _| {
            if let Some(loading) = lua.app_data_ref::<Loading>() {
                if Instant::now() > loading.deadline {
                    return Err(raise_table("ERR FUNCTION LOAD timeout"));
                }
            }
            match lua.app_data_ref::<RunCtx>() {
                Some(ctx) if ctx.running.check() => Err(mlua::Error::runtime("killed")),
                _ => Ok(VmState::Continue),
            }
        });
        Ok(Vm {
            lua,
            backing,
            runner,
            function_runner,
            loader,
            functions: HashMap::new(),
            libraries: HashMap::new(),
            generation,
        })
    }

    /// Compiles a library's body and runs it in the load environment: the functions it
    /// registers, in order.
    ///
    /// # Errors
    /// Redis's `Error compiling function: ...` / `Error registering functions: ...`.
    fn load_library(&mut self, body: &[u8]) -> Result<Vec<(FunctionInfo, Function)>, String> {
        let chunk = self.lua.load(body).set_name("@user_function").into_function().map_err(|e| {
            let text = match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            };
            format!("Error compiling function: {text}")
        })?;
        self.lua.set_app_data(Loading { deadline: Instant::now() + LOAD_TIMEOUT });
        let result = self.loader.call::<(bool, Value)>(chunk);
        self.lua.remove_app_data::<Loading>();
        let (ok, value) = result.map_err(|e| format!("Error registering functions: ERR {e}"))?;
        let list = match (ok, value) {
            (true, Value::Table(list)) => list,
            (_, Value::String(text)) => return Err(format!("Error registering functions: {}", text.to_string_lossy())),
            _ => return Err("Error registering functions: ERR the library did not load".into()),
        };
        let mut out = Vec::new();
        for entry in list.sequence_values::<Table>() {
            let entry = entry.map_err(|e| e.to_string())?;
            let name: String = entry.raw_get("name").map_err(|e| e.to_string())?;
            let description: Option<mlua::String> = entry.raw_get("desc").map_err(|e| e.to_string())?;
            let flag_names: Table = entry.raw_get("flags").map_err(|e| e.to_string())?;
            let mut flags = Flags::default();
            for f in flag_names.sequence_values::<mlua::String>() {
                let f = f.map_err(|e| e.to_string())?;
                flags = flags.with(Flags::named(&f.as_bytes()).unwrap_or_default());
            }
            let f: Function = entry.raw_get("fn").map_err(|e| e.to_string())?;
            let description = description.map(|d| Bytes::copy_from_slice(&d.as_bytes()));
            out.push((FunctionInfo { name, description, flags }, f));
        }
        Ok(out)
    }

    /// Compiles a library whose shebang was checked (`meta`): runs its code in this state so
    /// that it registers its functions (kept here: a later FCALL finds them loaded).
    ///
    /// # Errors
    /// Redis's texts (without `ERR`) when it does not compile, fails, or registers nothing.
    pub fn compile_library(&mut self, meta: &functions::Meta, code: Bytes) -> Result<Arc<Library>, String> {
        let sha = sha1hex(&code);
        let registered = self.load_library(&code[meta.body_start..])?;
        if registered.is_empty() {
            return Err("No functions registered".into());
        }
        let infos: Vec<FunctionInfo> = registered.iter().map(|(info, _)| info.clone()).collect();
        self.libraries.insert(sha.clone(), registered.into_iter().map(|(i, f)| (i.name, f)).collect());
        Ok(Arc::new(Library { name: meta.name.clone(), code, sha, body_start: meta.body_start, functions: infos }))
    }

    /// Runs function `name` of library `lib` (loading the library in this state first if it
    /// has not yet) with its keys and arguments.
    pub fn run_function(
        &mut self,
        lib: &Library,
        name: &str,
        keys: &[Bytes],
        args: &[Bytes],
        calls: mpsc::UnboundedSender<Call>,
        running: Arc<Running>,
    ) -> Result<Reply, String> {
        if !self.libraries.contains_key(&lib.sha) {
            let loaded = self.load_library(lib.body()).map_err(|e| format!("ERR {e}"))?;
            self.libraries.insert(lib.sha.clone(), loaded.into_iter().map(|(i, f)| (i.name, f)).collect());
        }
        let f = self.libraries.get(&lib.sha).and_then(|fs| fs.get(name)).cloned();
        let f = f.ok_or_else(|| "ERR Function not found".to_owned())?;
        let ctx = RunCtx { calls, resp: AtomicU8::new(2), running };
        self.lua.set_app_data(ctx);
        let prepared = self.array(keys).and_then(|k| Ok((k, self.array(args)?))).and_then(|(k, a)| {
            self.backing.raw_set("KEYS", Value::Nil)?;
            self.backing.raw_set("ARGV", Value::Nil)?;
            Ok((k, a))
        });
        let reply = match prepared {
            Ok((k, a)) => self.finish(name, self.function_runner.call::<MultiValue>((f, k, a))),
            Err(e) => Reply::Error(format!("ERR Error running script {name}, {e}")),
        };
        self.lua.remove_app_data::<RunCtx>();
        self.clear_globals();
        Ok(reply)
    }

    /// The compiled function of `script`, compiling it the first time.
    fn function(&mut self, script: &Script) -> Result<Function, String> {
        if let Some(f) = self.functions.get(&script.sha) {
            return Ok(f.clone());
        }
        let f = self.lua.load(script.code()).set_name("@user_script").into_function().map_err(|e| {
            let text = match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            };
            format!("ERR Error compiling script (new function): {text}")
        })?;
        self.functions.insert(script.sha.clone(), f.clone());
        Ok(f)
    }

    /// Runs `script` with its KEYS and ARGV. Every `redis.call` goes to `calls` and waits for
    /// its reply. Returns the script's reply, converted as Redis converts it.
    pub fn run(
        &mut self,
        script: &Script,
        keys: &[Bytes],
        argv: &[Bytes],
        calls: mpsc::UnboundedSender<Call>,
        running: Arc<Running>,
    ) -> Result<Reply, String> {
        let f = self.function(script)?;
        let ctx = RunCtx { calls, resp: AtomicU8::new(2), running };
        self.lua.set_app_data(ctx);
        let reply = self.call(&f, &script.sha, keys, argv);
        self.lua.remove_app_data::<RunCtx>();
        self.clear_globals();
        Ok(reply)
    }

    /// What a script leaves in the globals table (rawset) goes with it.
    fn clear_globals(&self) {
        let left: Vec<Value> =
            self.lua.globals().pairs::<Value, Value>().filter_map(Result::ok).map(|(k, _)| k).collect();
        for k in left {
            let _ = self.lua.globals().raw_set(k, Value::Nil);
        }
    }

    fn array(&self, items: &[Bytes]) -> mlua::Result<Table> {
        let t = self.lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.iter().enumerate() {
            t.raw_set(i + 1, self.lua.create_string(item)?)?;
        }
        Ok(t)
    }

    fn call(&self, f: &Function, sha: &str, keys: &[Bytes], argv: &[Bytes]) -> Reply {
        let prepared = self
            .array(keys)
            .and_then(|k| self.backing.raw_set("KEYS", k))
            .and_then(|_| self.array(argv))
            .and_then(|a| self.backing.raw_set("ARGV", a));
        if let Err(e) = prepared {
            return Reply::Error(format!("ERR Error running script {sha}, {e}"));
        }
        self.finish(sha, self.runner.call::<MultiValue>(f.clone()))
    }

    /// The reply of a run (`name`: the script's SHA1 or the function's name, for errors).
    fn finish(&self, sha: &str, outcome: mlua::Result<MultiValue>) -> Reply {
        let resp = || self.lua.app_data_ref::<RunCtx>().map_or(2, |c| c.resp.load(Ordering::Relaxed));
        match outcome {
            Ok(values) => {
                let mut values = values.into_iter();
                let ok = matches!(values.next(), Some(Value::Boolean(true)));
                let value = values.next().unwrap_or(Value::Nil);
                if ok {
                    return lua_to_reply(&value, resp());
                }
                script_error(&value, sha)
            }
            Err(e) => {
                let text = match e {
                    mlua::Error::MemoryError(m) => m,
                    other => other.to_string(),
                };
                let text: String = text.chars().take(100).collect();
                Reply::Error(format!("ERR Error running script {sha}, {text}").replace(['\r', '\n'], " "))
            }
        }
    }
}

/// The error reply of a script that failed: the error's text, then where it happened.
fn script_error(value: &Value, sha: &str) -> Reply {
    let Value::Table(t) = value else {
        let msg = match value {
            Value::String(s) => s.to_string_lossy(),
            _ => "execution failure".to_owned(),
        };
        let msg: String = msg.chars().take(100).collect();
        return Reply::Error(format!("ERR Error running script {sha}, {msg}").replace(['\r', '\n'], " "));
    };
    let field = |name: &str| -> Option<String> {
        match t.raw_get::<Value>(name).ok()? {
            Value::String(s) => Some(s.to_string_lossy()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Number(n) => Some(format!("{n}")),
            _ => None,
        }
    };
    let mut text = field("err").unwrap_or_default();
    if let (Some(source), Some(line)) = (field("source"), field("line")) {
        text.push_str(&format!(" script: {sha}, on {source}:{line}."));
    }
    Reply::RawError(Bytes::from(text))
}

/// Redis's error table from an error text (`luaPushErrorBuff`): `-CODE msg` keeps its code,
/// a text without a leading `-` gets `ERR`; trailing CR and LF are trimmed.
pub fn error_text(raw: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = match raw.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&b| b == b' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", raw),
    };
    let mut msg = msg;
    while let Some((&last, rest)) = msg.split_last() {
        if last == b'\r' || last == b'\n' {
            msg = rest;
        } else {
            break;
        }
    }
    while let Some((&first, rest)) = msg.split_first() {
        if first == b'\r' || first == b'\n' {
            msg = rest;
        } else {
            break;
        }
    }
    let mut out = code.to_vec();
    out.push(b' ');
    out.extend_from_slice(msg);
    out
}

/// An `{err = text}` table.
fn error_table(lua: &Lua, text: &[u8]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(text)?)?;
    Ok(t)
}

/// An error a Rust function of the sandbox raises: a text (as `luaL_error` raises it, with
/// the caller's position), or an error table `{err = text}` (redis.call's). Lua sees it as
/// mlua's error userdata; `errmsg` (the prelude's handler and pcall) turns it back.
#[derive(Debug)]
enum Raised {
    Text(String),
    Table(Vec<u8>),
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Raised::Text(t) => f.write_str(t),
            Raised::Table(t) => f.write_str(&String::from_utf8_lossy(t)),
        }
    }
}

impl std::error::Error for Raised {}

/// `luaL_where(L, 1)`: the calling line's position, `user_script:3: `.
fn caller_position(lua: &Lua) -> String {
    lua.inspect_stack(1)
        .map(|d| {
            let line = d.curr_line();
            let src = d.source().short_src.map(|s| s.into_owned()).unwrap_or_default();
            if line > 0 {
                format!("{src}:{line}: ")
            } else {
                String::new()
            }
        })
        .unwrap_or_default()
}

fn raise_text(lua: &Lua, msg: &str) -> mlua::Error {
    mlua::Error::external(Raised::Text(format!("{}{msg}", caller_position(lua))))
}

fn raise_table(text: &str) -> mlua::Error {
    mlua::Error::external(Raised::Table(text.as_bytes().to_vec()))
}

/// A Rust function of the sandbox whose failure is raised at its caller's line, as
/// `luaL_error` raises it.
fn lifted<F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, MultiValue) -> Result<Vec<Value>, String> + Send + 'static,
{
    lua.create_function(move |lua, args: MultiValue| match f(lua, args) {
        Ok(values) => Ok(MultiValue::from_vec(values)),
        Err(msg) => Err(raise_text(lua, &msg)),
    })
}

/// Redis's `redisLrand48` state (one per process, as Redis's): never reseeded per script, so
/// a node alone draws the same sequence as a Redis server started at the same time.
static RAND: Mutex<u64> = Mutex::new(0x1234_ABCD_330E);

fn lrand48() -> i32 {
    let mut x = RAND.lock();
    *x = (x.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    (*x >> 17) as i32
}

/// `luaL_checkint`: a number (or a string that reads as one), truncated.
pub(crate) fn check_int(args: &MultiValue, i: usize, fname: &str) -> Result<i64, String> {
    check_number(args, i, fname).map(|n| n as i64)
}

/// `luaL_checknumber`.
pub(crate) fn check_number(args: &MultiValue, i: usize, fname: &str) -> Result<f64, String> {
    match args.get(i) {
        Some(Value::Number(n)) => Ok(*n),
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::String(s)) if lua_str_number(&s.as_bytes()).is_some() => {
            Ok(lua_str_number(&s.as_bytes()).unwrap_or(0.0))
        }
        other => Err(format!(
            "bad argument #{} to '{fname}' (number expected, got {})",
            i + 1,
            other.map_or("no value", |v| if matches!(v, Value::Nil) { "nil" } else { v.type_name() })
        )),
    }
}

/// A string read as Lua 5.1 reads a number (`lua_str2number` with hex).
fn lua_str_number(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    t.parse::<f64>().ok()
}

/// Puts the raw functions the prelude builds the sandbox from into `raw`.
fn register(lua: &Lua, raw: &Table) -> mlua::Result<()> {
    raw.set("version", REDIS_VERSION)?;
    raw.set("version_num", REDIS_VERSION_NUM)?;
    raw.set("null", Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())))?;
    raw.set(
        "call",
        lua.create_function(|lua, args: MultiValue| match redis_call(lua, args)? {
            (true, Value::Table(t)) => {
                let text = match t.raw_get::<Value>("err")? {
                    Value::String(s) => s.to_string_lossy(),
                    _ => String::new(),
                };
                Err(raise_table(&text))
            }
            (_, value) => Ok(value),
        })?,
    )?;
    raw.set("pcall", lua.create_function(|lua, args: MultiValue| Ok(redis_call(lua, args)?.1))?)?;
    raw.set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_table("ERR wrong number of arguments"));
            }
            let bytes = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => convert::format_number(*n).into_bytes(),
                Value::Integer(n) => convert::format_number(*n as f64).into_bytes(),
                _ => Vec::new(),
            };
            lua.create_string(sha1hex(&bytes))
        })?,
    )?;
    raw.set("error_table", lua.create_function(|lua, s: mlua::String| error_table(lua, &error_text(&s.as_bytes())))?)?;
    raw.set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            if args.len() < 2 {
                return Err(raise_table("ERR redis.log() requires two arguments or more."));
            }
            let level = match args.front() {
                Some(Value::Number(n)) => *n as i64,
                Some(Value::Integer(n)) => *n,
                Some(Value::String(s)) if lua_str_number(&s.as_bytes()).is_some() => {
                    lua_str_number(&s.as_bytes()).unwrap_or(0.0) as i64
                }
                _ => return Err(raise_table("ERR First argument must be a number (log level).")),
            };
            if !(0..=3).contains(&level) {
                return Err(raise_table("ERR Invalid debug level."));
            }
            let text: Vec<String> = args
                .iter()
                .skip(1)
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.to_string_lossy()),
                    Value::Number(n) => Some(convert::format_number(*n)),
                    Value::Integer(n) => Some(convert::format_number(*n as f64)),
                    _ => None,
                })
                .collect();
            let text = text.join(" ");
            match level {
                3 => tracing::warn!(target: "script", "{text}"),
                2 => tracing::info!(target: "script", "{text}"),
                _ => tracing::debug!(target: "script", "{text}"),
            }
            Ok(())
        })?,
    )?;
    raw.set(
        "setresp",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_table("ERR redis.setresp() requires one argument."));
            }
            let v = check_number(&args, 0, "setresp").unwrap_or(0.0) as i64;
            if v != 2 && v != 3 {
                return Err(raise_table("ERR RESP version must be 2 or 3."));
            }
            if let Some(ctx) = lua.app_data_ref::<RunCtx>() {
                ctx.resp.store(v as u8, Ordering::Relaxed);
            }
            Ok(())
        })?,
    )?;
    raw.set(
        "set_repl",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise_table("ERR redis.set_repl() requires two arguments."));
            }
            let flags = check_number(&args, 0, "set_repl").unwrap_or(0.0) as i64;
            if flags & !3 != 0 {
                return Err(raise_table(
                    "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            Ok(())
        })?,
    )?;
    raw.set(
        "errmsg",
        lua.create_function(|lua, v: Value| {
            let killed = lua.app_data_ref::<RunCtx>().is_some_and(|c| c.running.killed());
            if killed {
                return Ok(Value::Table(error_table(lua, KILLED.as_bytes())?));
            }
            let Value::Error(e) = &v else { return Ok(v) };
            match e.chain().find_map(|c| c.downcast_ref::<Raised>()) {
                Some(Raised::Table(text)) => Ok(Value::Table(error_table(lua, text)?)),
                Some(Raised::Text(text)) => Ok(Value::String(lua.create_string(text)?)),
                None => {
                    let text = match e.as_ref() {
                        mlua::Error::CallbackError { cause, .. } => cause.to_string(),
                        other => other.to_string(),
                    };
                    Ok(Value::String(lua.create_string(text)?))
                }
            }
        })?,
    )?;
    raw.set(
        "random",
        lifted(lua, |_, args| {
            let r = f64::from(lrand48() % i32::MAX) / f64::from(i32::MAX);
            let v = match args.len() {
                0 => r,
                1 => {
                    let u = check_int(&args, 0, "random")?;
                    if u < 1 {
                        return Err("bad argument #1 to 'random' (interval is empty)".into());
                    }
                    (r * u as f64).floor() + 1.0
                }
                2 => {
                    let l = check_int(&args, 0, "random")?;
                    let u = check_int(&args, 1, "random")?;
                    if l > u {
                        return Err("bad argument #2 to 'random' (interval is empty)".into());
                    }
                    (r * (u - l + 1) as f64).floor() + l as f64
                }
                _ => return Err("wrong number of arguments".into()),
            };
            Ok(vec![Value::Number(v)])
        })?,
    )?;
    raw.set(
        "randomseed",
        lifted(lua, |_, args| {
            let seed = check_int(&args, 0, "randomseed")? as i32;
            *RAND.lock() = ((seed as u32 as u64) << 16) | 0x330E;
            Ok(vec![])
        })?,
    )?;
    libs::register(lua, raw)
}

/// `redis.call` / `redis.pcall`: `(failed, value)`, the value an error table when it failed.
fn redis_call(lua: &Lua, args: MultiValue) -> mlua::Result<(bool, Value)> {
    let fail =
        |text: &str| -> mlua::Result<(bool, Value)> { Ok((true, Value::Table(error_table(lua, text.as_bytes())?))) };
    if args.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Number(n) => argv.push(crate::resp::format_double(*n)),
            Value::Integer(n) => argv.push(crate::resp::format_double(*n as f64)),
            _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    let (sender, resp) = match lua.app_data_ref::<RunCtx>() {
        Some(ctx) => {
            if ctx.running.killed() {
                return fail(KILLED);
            }
            (ctx.calls.clone(), ctx.resp.load(Ordering::Relaxed))
        }
        None => return fail("ERR redis.call/pcall can only be called inside a script invocation"),
    };
    let (tx, rx) = oneshot::channel();
    if sender.send(Call { args: argv, reply: tx }).is_err() {
        return fail("ERR the script's client is gone");
    }
    let reply = rx.blocking_recv().unwrap_or_else(|_| Reply::Error("ERR the script's client is gone".into()));
    let failed = matches!(reply, Reply::Error(_) | Reply::RawError(_));
    Ok((failed, reply_to_lua(lua, &reply, resp)?))
}
