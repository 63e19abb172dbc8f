//! This node's client connections as `CLIENT LIST/INFO/KILL`, `INFO clients/errorstats`,
//! `MONITOR` and the idle timeout (`CONFIG SET timeout`) see them. Each connection owns its
//! [`Session`](crate::command::Session); what others may read of it (name, database, last
//! command, transaction) is mirrored into its [`Client`] handle with relaxed atomics, so the
//! request path takes no lock for it. The registry's lock is taken when a connection opens or
//! closes and by the admin commands that list or kill.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{broadcast, Notify};

/// One connection, as the rest of the node sees it.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    /// The socket's file descriptor (-1 where there is none).
    pub fd: i64,
    pub connected: Instant,
    name: Mutex<Option<String>>,
    /// `CLIENT SETINFO lib-name / lib-ver`.
    lib: Mutex<(String, String)>,
    db: AtomicU64,
    resp: AtomicU8,
    /// Milliseconds after `connected` of the last command.
    last_ms: AtomicU64,
    /// The last command's name as CLIENT LIST shows it (`get`, `client|list`).
    cmd: Mutex<Cow<'static, str>>,
    /// Requests queued in MULTI, or -1 outside a transaction.
    multi: AtomicI64,
    monitor: AtomicBool,
    /// Subscriptions: channels, patterns, shard channels (CLIENT LIST's sub, psub, ssub).
    subs: [AtomicU64; 3],
    /// CLIENT KILL: the connection runs no command after it and closes when it next waits
    /// for input (`killed` is set before `kill` is notified).
    kill: Notify,
    killed: AtomicBool,
    /// Ends a blocking command's wait early (CLIENT UNBLOCK, a closed connection); the
    /// counter makes every interruption a change.
    interrupt: tokio::sync::watch::Sender<(u64, Interrupt)>,
    /// In a blocking command's wait (CLIENT LIST's flag `b`, CLIENT UNBLOCK).
    blocked: AtomicBool,
    /// Bytes received and not yet run (CLIENT LIST's `qbuf`: a request still arriving).
    qbuf: AtomicU64,
    /// Bytes of replies the socket has not taken yet (CLIENT LIST's `omem`).
    omem: AtomicU64,
}

/// Why a blocked command stops waiting before its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// CLIENT UNBLOCK (TIMEOUT): answer as if the timeout passed.
    Timeout,
    /// CLIENT UNBLOCK ERROR: answer `-UNBLOCKED`.
    Error,
    /// The connection closed (or was killed): pop nothing, nobody reads the answer.
    Gone,
}

/// A client is in a blocking wait while this lives.
pub struct BlockedGuard<'a>(&'a Client);

impl Drop for BlockedGuard<'_> {
    fn drop(&mut self) {
        self.0.blocked.store(false, Ordering::Release);
    }
}

impl Client {
    pub fn name(&self) -> Option<String> {
        self.name.lock().clone()
    }

    pub fn set_name(&self, name: Option<String>) {
        *self.name.lock() = name;
    }

    pub fn set_lib(&self, attr_is_name: bool, value: String) {
        let mut lib = self.lib.lock();
        if attr_is_name {
            lib.0 = value;
        } else {
            lib.1 = value;
        }
    }

    pub fn set_db(&self, db: u32) {
        self.db.store(u64::from(db), Ordering::Relaxed);
    }

    pub fn set_resp(&self, resp: u8) {
        self.resp.store(resp, Ordering::Relaxed);
    }

    pub fn set_multi(&self, queued: Option<usize>) {
        self.multi.store(queued.map_or(-1, |n| n as i64), Ordering::Relaxed);
    }

    pub fn set_monitor(&self) {
        self.monitor.store(true, Ordering::Relaxed);
    }

    pub fn set_subscriptions(&self, counts: [usize; 3]) {
        for (slot, n) in self.subs.iter().zip(counts) {
            slot.store(n as u64, Ordering::Relaxed);
        }
    }

    /// Whether the connection has a subscription (Redis's `CLIENT_PUBSUB`).
    pub fn is_pubsub(&self) -> bool {
        self.subs.iter().any(|n| n.load(Ordering::Relaxed) > 0)
    }

    /// Closes the connection: it runs no command after and closes when it next waits (for
    /// input, or for its socket to take a write).
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_one();
    }

    /// MONITOR was sent: the connection streams every request the node receives.
    pub fn is_monitor(&self) -> bool {
        self.monitor.load(Ordering::Relaxed)
    }

    /// A command arrived: `name`, and the subcommand of a container command (`client|list`).
    pub fn touch(&self, name: &'static str, sub: Option<&[u8]>) {
        self.last_ms.store(self.connected.elapsed().as_millis() as u64, Ordering::Relaxed);
        let mut cmd = self.cmd.lock();
        match sub {
            None if *cmd != name => *cmd = Cow::Borrowed(name),
            None => {}
            Some(sub) => *cmd = Cow::Owned(format!("{name}|{}", String::from_utf8_lossy(sub).to_lowercase())),
        }
    }

    /// The interruptions of a blocking wait from now on.
    pub fn interrupts(&self) -> tokio::sync::watch::Receiver<(u64, Interrupt)> {
        self.interrupt.subscribe()
    }

    /// Ends this client's blocking wait, if it is in one: whether it was.
    pub fn interrupt(&self, why: Interrupt) -> bool {
        let blocked = self.is_blocked();
        if blocked || why == Interrupt::Gone {
            self.interrupt.send_modify(|(n, w)| {
                *n += 1;
                *w = why;
            });
        }
        blocked
    }

    /// Marks the client blocked until the guard is dropped.
    pub fn blocked(&self) -> BlockedGuard<'_> {
        self.blocked.store(true, Ordering::Release);
        BlockedGuard(self)
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Acquire)
    }

    /// The connection holds `bytes` of requests received and not yet run.
    pub fn set_query_buffer(&self, bytes: usize) {
        self.qbuf.store(bytes as u64, Ordering::Relaxed);
    }

    /// The connection waits for its socket to take `bytes` of replies (0: it waits for none).
    pub fn set_pending_output(&self, bytes: usize) {
        self.omem.store(bytes as u64, Ordering::Relaxed);
    }

    /// Resolves when CLIENT KILL picked this connection.
    pub async fn killed(&self) {
        if !self.is_killed() {
            self.kill.notified().await;
        }
    }

    /// Whether CLIENT KILL picked this connection (it must run no further command).
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    fn idle(&self) -> Duration {
        self.connected.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Its line of CLIENT LIST, with Redis 7.2's fields (`qbuf` and `omem` as above, `tot-mem`
    /// their sum; fields kura does not account are 0).
    pub fn describe(&self) -> String {
        let multi = self.multi.load(Ordering::Relaxed);
        let monitor = self.monitor.load(Ordering::Relaxed);
        let sub = |i: usize| self.subs[i].load(Ordering::Relaxed);
        // Redis's letters in its order: O (monitor), P (pub/sub), x (in MULTI), b (blocked);
        // N: none.
        let mut flags = String::new();
        for (on, letter) in [(monitor, 'O'), (self.is_pubsub(), 'P'), (multi >= 0, 'x'), (self.is_blocked(), 'b')] {
            if on {
                flags.push(letter);
            }
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let (lib_name, lib_ver) = self.lib.lock().clone();
        let (qbuf, omem) = (self.qbuf.load(Ordering::Relaxed), self.omem.load(Ordering::Relaxed));
        // `w`: replies wait for the socket, as Redis shows a client with a write handler.
        let events = if omem > 0 { "rw" } else { "r" };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db={} sub={} psub={} ssub={} \
             multi={multi} qbuf={qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={omem} \
             tot-mem={} events={events} cmd={} user=default redir=-1 resp={} lib-name={lib_name} lib-ver={lib_ver}\n",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name().unwrap_or_default(),
            self.connected.elapsed().as_secs(),
            self.idle().as_secs(),
            self.db.load(Ordering::Relaxed),
            sub(0),
            sub(1),
            sub(2),
            qbuf + omem,
            self.cmd.lock(),
            self.resp.load(Ordering::Relaxed),
        )
    }
}

/// A monitoring connection's feed.
pub struct Subscription {
    pub lines: broadcast::Receiver<Bytes>,
    clients: Arc<Clients>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.clients.monitoring.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Redis's client types (CLIENT LIST TYPE, CLIENT KILL TYPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientType {
    Normal,
    Pubsub,
    /// `master`, `replica` (`slave`): there are none here.
    Replication,
}

impl Client {
    /// Its type: pubsub while it has a subscription, else normal (a MONITOR too, as in Redis).
    pub fn client_type(&self) -> ClientType {
        if self.is_pubsub() {
            ClientType::Pubsub
        } else {
            ClientType::Normal
        }
    }
}

/// Which connections `CLIENT KILL` closes: every given filter must match.
#[derive(Debug, Default)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    /// Only users called `default` exist.
    pub user: Option<String>,
    /// `normal`, `pubsub`, `master`, `replica`: only the first two exist here.
    pub kind: Option<ClientType>,
    /// The connection that asks, unless it is named by `skip_me: false`.
    pub skip: Option<u64>,
}

impl KillFilter {
    fn matches(&self, c: &Client) -> bool {
        self.id.is_none_or(|id| id == c.id)
            && self.addr.as_deref().is_none_or(|a| a == c.addr.to_string())
            && self.laddr.as_deref().is_none_or(|a| a == c.laddr.to_string())
            && self.user.as_deref().is_none_or(|u| u == "default")
            && self.kind.is_none_or(|k| k == c.client_type())
            && self.skip != Some(c.id)
    }
}

pub struct Clients {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Client>>>,
    /// MONITOR's feed: one line per request, to every monitoring connection.
    monitors: broadcast::Sender<Bytes>,
    /// Monitoring connections (read on every request: an atomic, not the channel's lock).
    monitoring: AtomicU64,
    /// `CONFIG SET timeout`: seconds a connection may stay idle (0: forever).
    idle_timeout: AtomicU64,
    /// Error replies by their first word (INFO errorstats).
    errors: Mutex<BTreeMap<String, u64>>,
    /// Reads of a key that found it or not (GET, MGET): INFO's keyspace_hits/misses.
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    /// Bytes read from and written to client connections.
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// The last sample of `total_commands_processed` INFO took, for its ops per second.
    ops_sample: Mutex<Option<(Instant, u64, u64)>>,
    /// `client-output-buffer-limit` by class; the hard limits of normal and pubsub are
    /// enforced (the replies a connection's socket has not taken; a subscriber's queue of
    /// messages), kept apart for the connections and publishers that read them.
    output_limits: Mutex<[OutputLimit; 3]>,
    normal_hard_limit: AtomicU64,
    pubsub_hard_limit: AtomicU64,
}

/// One class of `client-output-buffer-limit`: hard bytes, soft bytes, soft seconds.
pub type OutputLimit = (u64, u64, u64);

/// The defaults for the classes normal, replica and pubsub: Redis's, but for normal clients,
/// which Redis leaves unbounded (`0 0 0`) and kura bounds at 256 MiB (Redis's replica limit).
/// A connection never has more than [`crate::server::FLUSH_AT`] bytes of replies waiting
/// and one reply (in a cluster, one wave of at most 32 replies run at once): the limit closes a connection whose single reply (an EXEC's,
/// a KEYS over a big keyspace) passes it, as Redis would at the same setting.
pub const OUTPUT_LIMITS: [OutputLimit; 3] = [(256 << 20, 0, 0), (256 << 20, 64 << 20, 60), (32 << 20, 8 << 20, 60)];

/// `client-output-buffer-limit` as Redis prints it.
pub fn format_output_limits(limits: [OutputLimit; 3]) -> String {
    let [(nh, ns, nt), (rh, rs, rt), (ph, ps, pt)] = limits;
    format!("normal {nh} {ns} {nt} slave {rh} {rs} {rt} pubsub {ph} {ps} {pt}")
}

/// Redis's `memtoull`: digits and an optional unit (`b`, `k`/`kb`, `m`/`mb`, `g`/`gb`: the
/// short ones by 1000, the `b` ones by 1024), case-insensitive.
pub(crate) fn memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let unit: u64 = match &lower[at..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    lower[..at].parse::<u64>().ok()?.checked_mul(unit)
}

/// `client-output-buffer-limit <class> <hard> <soft> <soft seconds> ...` over `limits`, with
/// Redis's errors (CONFIG SET and `--client-output-buffer-limit`).
///
/// # Errors
/// Redis's text for a wrong word count, class or number.
pub fn parse_output_limits(value: &str, mut limits: [OutputLimit; 3]) -> Result<[OutputLimit; 3], &'static str> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.");
    }
    for class in words.chunks(4) {
        let i = match class[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => return Err("Invalid client class specified in buffer limit configuration."),
        };
        let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let hard = memory(class[1]).ok_or(bad)?;
        let soft = memory(class[2]).ok_or(bad)?;
        let secs = class[3].parse::<u64>().map_err(|_| bad)?;
        limits[i] = (hard, soft, secs);
    }
    Ok(limits)
}

impl Clients {
    pub fn new(idle_timeout_secs: u64) -> Clients {
        Clients {
            next_id: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
            monitors: broadcast::channel(4096).0,
            monitoring: AtomicU64::new(0),
            idle_timeout: AtomicU64::new(idle_timeout_secs),
            errors: Mutex::new(BTreeMap::new()),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            ops_sample: Mutex::new(None),
            output_limits: Mutex::new(OUTPUT_LIMITS),
            normal_hard_limit: AtomicU64::new(OUTPUT_LIMITS[0].0),
            pubsub_hard_limit: AtomicU64::new(OUTPUT_LIMITS[2].0),
        }
    }

    /// `client-output-buffer-limit` for normal, replica and pubsub connections.
    pub fn output_limits(&self) -> [OutputLimit; 3] {
        *self.output_limits.lock()
    }

    pub fn set_output_limits(&self, limits: [OutputLimit; 3]) {
        *self.output_limits.lock() = limits;
        self.normal_hard_limit.store(limits[0].0, Ordering::Relaxed);
        self.pubsub_hard_limit.store(limits[2].0, Ordering::Relaxed);
    }

    /// The bytes of replies a connection of `class` may have waiting for its socket before it
    /// is closed (0: no limit).
    pub fn output_limit(&self, class: ClientType) -> usize {
        let limit = match class {
            ClientType::Normal => &self.normal_hard_limit,
            ClientType::Pubsub => &self.pubsub_hard_limit,
            ClientType::Replication => return 0,
        };
        usize::try_from(limit.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// The bytes of messages a subscriber may have queued before it is closed (0: no limit).
    pub fn pubsub_limit(&self) -> usize {
        usize::try_from(self.pubsub_hard_limit.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Registers a new connection.
    pub fn connect(&self, addr: SocketAddr, laddr: SocketAddr, fd: i64) -> Arc<Client> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client = Arc::new(Client {
            id,
            addr,
            laddr,
            fd,
            connected: Instant::now(),
            name: Mutex::new(None),
            lib: Mutex::new(Default::default()),
            db: AtomicU64::new(0),
            resp: AtomicU8::new(2),
            last_ms: AtomicU64::new(0),
            cmd: Mutex::new(Cow::Borrowed("NULL")),
            multi: AtomicI64::new(-1),
            monitor: AtomicBool::new(false),
            subs: Default::default(),
            kill: Notify::new(),
            killed: AtomicBool::new(false),
            interrupt: tokio::sync::watch::channel((0, Interrupt::Timeout)).0,
            blocked: AtomicBool::new(false),
            qbuf: AtomicU64::new(0),
            omem: AtomicU64::new(0),
        });
        self.open.lock().insert(id, client.clone());
        client
    }

    pub fn disconnect(&self, id: u64) {
        self.open.lock().remove(&id);
    }

    /// Open connections by id.
    pub fn list(&self) -> Vec<Arc<Client>> {
        let mut v: Vec<_> = self.open.lock().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    pub fn count(&self) -> usize {
        self.open.lock().len()
    }

    /// Closes every connection `filter` matches (each when it next waits for input, after
    /// the reply it is writing). Returns how many.
    pub fn kill(&self, filter: &KillFilter) -> usize {
        let open = self.open.lock();
        let mut n = 0;
        for c in open.values().filter(|c| filter.matches(c)) {
            c.kill();
            c.interrupt(Interrupt::Gone);
            n += 1;
        }
        n
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        match self.idle_timeout.load(Ordering::Relaxed) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        }
    }

    pub fn set_idle_timeout(&self, secs: u64) {
        self.idle_timeout.store(secs, Ordering::Relaxed);
    }

    /// A new MONITOR subscription (counted until it is dropped).
    pub fn monitor(self: &Arc<Self>) -> Subscription {
        self.monitoring.fetch_add(1, Ordering::Relaxed);
        Subscription { lines: self.monitors.subscribe(), clients: self.clone() }
    }

    /// Whether anyone is monitoring (then [`Clients::feed`] is worth its formatting).
    pub fn monitored(&self) -> bool {
        self.monitoring.load(Ordering::Relaxed) > 0
    }

    /// Sends a request to the monitors, as Redis prints it:
    /// `+1339518083.107412 [0 127.0.0.1:60866] "set" "k" "v"`.
    pub fn feed(&self, db: u32, addr: SocketAddr, args: &[Bytes]) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut line = format!("+{}.{:06} [{db} {addr}]", now.as_secs(), now.subsec_micros());
        for a in args {
            line.push(' ');
            quote(a, &mut line);
        }
        line.push_str("\r\n");
        let _ = self.monitors.send(Bytes::from(line));
    }

    /// Counts an error reply by its code (the first word: `ERR`, `WRONGTYPE` ...).
    pub fn note_error(&self, text: &str) {
        let code = text.split(' ').next().unwrap_or("ERR");
        *self.errors.lock().entry(code.to_owned()).or_default() += 1;
    }

    pub fn error_stats(&self) -> Vec<(String, u64)> {
        self.errors.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Counts a read of a key as a hit or a miss; gives `found` back.
    pub fn lookup<T>(&self, found: Option<T>) -> Option<T> {
        let counter = if found.is_some() { &self.keyspace_hits } else { &self.keyspace_misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Commands per second since the previous call (at least 100 ms ago), given the total
    /// now: what `redis-cli --stat`, which asks every second, shows as a rate.
    pub fn ops_per_sec(&self, total: u64) -> u64 {
        let mut sample = self.ops_sample.lock();
        let now = Instant::now();
        match *sample {
            Some((at, _, rate)) if now.duration_since(at) < Duration::from_millis(100) => rate,
            Some((at, before, _)) => {
                let rate = (total.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64()) as u64;
                *sample = Some((now, total, rate));
                rate
            }
            None => {
                *sample = Some((now, total, 0));
                0
            }
        }
    }

    pub fn reset_error_stats(&self) {
        self.errors.lock().clear();
    }
}

/// `bytes` quoted as Redis's `sdscatrepr`: printable ASCII as is, `"` and `\` escaped, the
/// usual control characters by name, anything else as `\xHH`.
fn quote(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_redis() {
        let mut s = String::new();
        quote(b"a \"b\"\\\n\x01\xff", &mut s);
        assert_eq!(s, r#""a \"b\"\\\n\x01\xff""#);
    }

    #[test]
    fn output_limits_parse_as_redis() {
        let limits = OUTPUT_LIMITS;
        assert_eq!(
            format_output_limits(limits),
            "normal 268435456 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        let set = parse_output_limits("pubsub 1mb 2K 0", limits).unwrap();
        assert_eq!(set[2], (1 << 20, 2000, 0));
        assert_eq!(set[0], limits[0]);
        assert_eq!(parse_output_limits("replica 2gb 1 5", limits).unwrap()[1], (2 << 30, 1, 5));
        assert_eq!(parse_output_limits("normal 0 0 0", limits).unwrap()[0], (0, 0, 0));
        assert!(parse_output_limits("pubsub 1mb 0", limits).unwrap_err().starts_with("Wrong number"));
        assert!(parse_output_limits("master 1 1 1", limits).unwrap_err().starts_with("Invalid client class"));
        assert!(parse_output_limits("pubsub 1xb 0 0", limits).unwrap_err().starts_with("Error in hard"));
        assert!(parse_output_limits("pubsub -1 0 0", limits).unwrap_err().starts_with("Error in hard"));
    }

    #[test]
    fn kill_filters_and_skipme() {
        let clients = Clients::new(0);
        let a = clients.connect("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:6379".parse().unwrap(), 7);
        let b = clients.connect("127.0.0.1:2000".parse().unwrap(), "127.0.0.1:6379".parse().unwrap(), 8);
        assert_eq!(clients.kill(&KillFilter { addr: Some("127.0.0.1:3000".into()), ..Default::default() }), 0);
        assert_eq!(clients.kill(&KillFilter { user: Some("nobody".into()), ..Default::default() }), 0);
        assert_eq!(clients.kill(&KillFilter { skip: Some(a.id), ..Default::default() }), 1);
        assert_eq!(clients.kill(&KillFilter { id: Some(b.id), ..Default::default() }), 1);
        assert_eq!(clients.kill(&KillFilter { laddr: Some("127.0.0.1:6379".into()), ..Default::default() }), 2);
        assert!(a.describe().starts_with(&format!("id={} addr=127.0.0.1:1000 laddr=127.0.0.1:6379 fd=7 ", a.id)));
    }
}
