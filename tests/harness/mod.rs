//! Test harness: real `kura` processes on 127.0.0.x with free ports, real faults (`kill -9`,
//! restart on the same data dir, iptables partitions), and polling with a deadline instead of
//! sleeps. Shared by `tests/` and `compat/` (`tests/suite.rs` includes it once as `harness`).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test run.
pub const KURA: &str = env!("CARGO_BIN_EXE_kura");

/// How long a node gets to start answering.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50)); // poll interval, bounded by the deadline
    }
}

/// A port that was free on `ip` a moment ago, from below the kernel's ephemeral range when
/// there is room: a port the kernel hands out (to a bind of port 0, or as the source port of
/// any outgoing connection of any test) could be taken before the node binds it (a joining
/// node once failed with "Address already in use"); one from below is taken only by another
/// test's pick (`Node::start` retries then).
///
/// Never the same port twice in this process: every test runs in this one binary, and a node
/// restarted on its own ports (`kill -9`, then the same command line) found its peer port
/// taken by another test's new node, which had picked it while the first was down (nemesis,
/// seed 14141890146494089960: "cluster-listen on 127.0.0.2:18754: Address already in use").
pub fn free_port(ip: Ipv4Addr) -> u16 {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<BTreeSet<(Ipv4Addr, u16)>> = std::sync::Mutex::new(BTreeSet::new());
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    if ephemeral > 11_000 {
        for _ in 0..1000 {
            let port = rand::thread_rng().gen_range(10_000..ephemeral);
            if !given.contains(&(ip, port)) && TcpListener::bind((ip, port)).is_ok() {
                given.insert((ip, port));
                return port;
            }
        }
    }
    loop {
        let port = TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        if given.insert((ip, port)) {
            return port;
        }
    }
}

#[test]
fn free_ports_are_never_given_twice() {
    // 3,000 picks among some 22,000 ports would repeat one about 200 times if picks forgot
    // what they gave (while the listener of each is dropped at once, as a killed node's is).
    let ip = Ipv4Addr::new(127, 0, 0, 99);
    let picked: Vec<u16> = (0..3000).map(|_| free_port(ip)).collect();
    let distinct: BTreeSet<u16> = picked.iter().copied().collect();
    assert_eq!(distinct.len(), picked.len());
}

/// Every test on real processes is one binary, so any two may run side by side on the 2 cores:
/// a test that asserts how long something takes holds [`timed`], and the heaviest tests (many
/// nodes under faults, load generators) hold [`heavy`], so that none of those runs beside it.
/// A test takes one of them first and never the other, so no two can wait on each other.
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held by a test that times requests (and by no other test at the same time).
pub fn timed() -> std::sync::RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(|e| e.into_inner())
}

/// Held by a heavy test: no [`timed`] test runs beside it.
pub fn heavy() -> std::sync::RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(|e| e.into_inner())
}

/// One kura process and everything needed to restart it the same way.
pub struct Node {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub cluster_port: u16,
    pub metrics_port: u16,
    pub dir: PathBuf,
    /// The kura binary it runs: this build's, or another (the rolling-upgrade test).
    pub binary: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Node {
    /// Starts a node on `ip` with a fresh data dir and free ports; `extra` are more flags.
    pub fn start(ip: Ipv4Addr, extra: &[&str]) -> Node {
        Node::start_binary(Path::new(KURA), ip, extra)
    }

    /// [`Node::start`] of the kura at `binary`.
    pub fn start_binary(binary: &Path, ip: Ipv4Addr, extra: &[&str]) -> Node {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let dir = tmp.path().join("data");
        let mut node = Node::new(ip, dir, extra);
        node.binary = binary.to_path_buf();
        node._tmp = Some(tmp);
        // A port found free can be taken by another test before the node binds it: retry
        // with new ports (only on a first start; a restart must keep its addresses).
        for _ in 0..3 {
            match node.try_spawn() {
                Ok(()) => return node,
                Err(log) if log.contains("in use") => {
                    node.port = free_port(ip);
                    node.cluster_port = free_port(ip);
                    node.metrics_port = free_port(ip);
                }
                Err(log) => panic!("node {} did not start:\n{log}", node.addr()),
            }
        }
        panic!("node on {ip} found no free ports")
    }

    /// A node not yet started, with free ports, over `dir`.
    pub fn new(ip: Ipv4Addr, dir: PathBuf, extra: &[&str]) -> Node {
        let log = dir.with_extension("log");
        Node {
            ip,
            port: free_port(ip),
            cluster_port: free_port(ip),
            metrics_port: free_port(ip),
            dir,
            binary: PathBuf::from(KURA),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            log,
            _tmp: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }

    pub fn cluster_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.cluster_port))
    }

    pub fn url(&self) -> String {
        format!("redis://{}:{}/", self.ip, self.port)
    }

    /// The command line this node runs with.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "server".into(),
            "--listen".into(),
            self.addr().to_string(),
            "--cluster-listen".into(),
            self.cluster_addr().to_string(),
            "--metrics-listen".into(),
            SocketAddr::from((self.ip, self.metrics_port)).to_string(),
            "--data-dir".into(),
            self.dir.display().to_string(),
        ];
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Replaces the extra flags for the next start.
    pub fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
    }

    /// Starts the process and waits until it answers PING.
    pub fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("node {} did not start:\n{log}", self.addr());
        }
    }

    /// Starts the process and waits until it answers PING; if it exits first, returns the
    /// tail of its log.
    pub fn try_spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "node {} is already running", self.addr());
        std::fs::create_dir_all(self.dir.parent().unwrap_or(Path::new("."))).expect("data dir parent");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(&self.binary)
            .args(self.args())
            .env("KURA_LOG", "info,kura=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawning kura");
        self.child = Some(child);
        let addr = self.addr();
        wait_until(&format!("node {addr} to answer PING"), START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Some(Err(format!("exited with {status}:\n{}", self.log_tail(30))));
            }
            ping(addr).then_some(Ok(()))
        })
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let status = c.wait().expect("waiting for kura");
            assert!(status.success(), "kura exited with {status} on SIGTERM:\n{}", self.log_tail(30));
        }
    }

    /// Starts again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Waits for the process to exit by itself (SHUTDOWN) and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let addr = self.addr();
        let status = wait_until(&format!("node {addr} to exit"), START_TIMEOUT, || {
            self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
        });
        self.child = None;
        status
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process's resident memory now and at its peak (VmRSS, VmHWM), in bytes.
    pub fn memory(&self) -> (u64, u64) {
        memory(self.pid().expect("a running node"))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// A RESP2 connection through the `redis` crate.
    pub fn conn(&self) -> redis::Connection {
        self.client("").get_connection().expect("connecting to kura")
    }

    /// A RESP3 connection through the `redis` crate.
    pub fn conn3(&self) -> redis::Connection {
        self.client("?protocol=resp3").get_connection().expect("connecting to kura with RESP3")
    }

    pub fn client(&self, query: &str) -> redis::Client {
        redis::Client::open(format!("{}{}", self.url(), query)).expect("a client")
    }

    /// Runs `redis-cli` against this node (one-shot) and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("redis-cli")
            .args(["-h", &self.ip.to_string(), "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("running redis-cli (install redis-tools)")
    }

    /// stdout of a one-shot `redis-cli`, trimmed.
    pub fn cli_out(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.cli(args).stdout).trim_end().to_string()
    }

    /// A raw TCP connection for byte-exact exchanges.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("raw connection");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s
    }

    /// The Prometheus exposition from `--metrics-listen`.
    pub fn metrics(&self) -> String {
        http_get(SocketAddr::from((self.ip, self.metrics_port)), "/metrics")
    }

    /// The last `n` lines of this node's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of node {} ---\n{}", self.addr(), self.log_tail(40));
        }
        self.kill9();
    }
}

/// Whether something at `addr` answers a RESP PING (`+PONG`, or `-NOAUTH` with a password).
pub fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH"))
}

/// Resident memory of process `pid` now and at its peak (VmRSS, VmHWM of /proc/PID/status),
/// in bytes.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |name: &str| -> u64 {
        let line =
            status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"));
        let kb: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().expect("a size in kB");
        kb * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A plain HTTP/1.0 GET; returns the body.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("http connection");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("http request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("http response");
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// Sends `request` bytes and reads one line-terminated reply (enough for simple replies).
pub fn raw_line(s: &mut TcpStream, request: &[u8]) -> String {
    s.write_all(request).expect("raw write");
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("raw read");
    line
}

/// Reads until the peer closes (or the read timeout), returning what arrived.
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// `redis::Value` as text, for readable assertions.
pub fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Okay => "OK".into(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Nil => "(nil)".into(),
        redis::Value::VerbatimString { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}

/// `redis::Value` flattened to words: arrays joined by spaces, nil as `nil`, errors as
/// `-CODE details` (blocking and stream replies in one line).
pub fn flat(v: &redis::Value) -> String {
    match v {
        redis::Value::Nil => "nil".into(),
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::Array(items) => items.iter().map(flat).collect::<Vec<_>>().join(" "),
        redis::Value::Int(n) => n.to_string(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::ServerError(e) => format!("-{} {}", e.code(), e.details().unwrap_or_default()),
        other => format!("{other:?}"),
    }
}

/// The node's `blocked_clients` (INFO clients).
pub fn blocked_clients(node: &Node) -> usize {
    match query(node, &["INFO", "clients"]) {
        Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b)
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0),
        other => panic!("INFO: {other:?}"),
    }
}

/// A DGET reply: the context and the sorted sibling values.
pub fn dget(con: &mut redis::Connection, key: &str) -> (String, Vec<String>) {
    let v: redis::Value = redis::cmd("DGET").arg(key).query(con).expect("DGET");
    parse_dget(&v)
}

pub fn parse_dget(v: &redis::Value) -> (String, Vec<String>) {
    let redis::Value::Array(parts) = v else { panic!("DGET reply is not an array: {v:?}") };
    assert_eq!(parts.len(), 2, "DGET reply has two parts: {v:?}");
    let redis::Value::Array(values) = &parts[1] else { panic!("DGET values are not an array: {v:?}") };
    let mut values: Vec<String> = values.iter().map(text).collect();
    values.sort();
    (text(&parts[0]), values)
}

/// A DPUT; returns the new context.
pub fn dput(con: &mut redis::Connection, key: &str, context: &str, value: &str) -> String {
    redis::cmd("DPUT").arg(key).arg(context).arg(value).query(con).expect("DPUT")
}

/// The error text a command got, or a panic if it succeeded.
pub fn err_of(r: redis::RedisResult<redis::Value>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let code = e.code().unwrap_or("");
            let detail = e.detail().unwrap_or("");
            format!("{code} {detail}").trim().to_string()
        }
    }
}

/// Reads one value of a Prometheus series (first match of `series` as a line prefix).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit_once(' ')).and_then(|(_, v)| v.parse().ok())
}

/// Sends a command (name and arguments as strings) and returns its reply; panics on an error.
pub fn q(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// Encodes a command as a RESP array of bulk strings.
pub fn resp_cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Several kura nodes on 127.0.0.1, 127.0.0.2, ...: the first founds the cluster, the others
/// join through it as their seed.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `n` nodes with `extra` flags each and waits until they agree on one ring.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_binary(Path::new(KURA), n, extra)
    }

    /// [`Cluster::start`] of the kura at `binary`.
    pub fn start_binary(binary: &Path, n: usize, extra: &[&str]) -> Cluster {
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        for i in 0..n {
            let ip = Ipv4Addr::new(127, 0, 0, 1 + i as u8);
            let id = format!("node{}", i + 1);
            let mut args: Vec<String> = vec!["--node-id".into(), id];
            if let Some(first) = nodes.first() {
                args.extend(["--seed".into(), first.cluster_addr().to_string()]);
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            nodes.push(Node::start_binary(binary, ip, &args));
        }
        let cluster = Cluster { nodes };
        cluster.wait_converged(Duration::from_secs(60));
        cluster
    }

    /// Starts `n` nodes that each name all the others with `--seed` (the README's recipe: the
    /// smallest address founds the cluster, and any node, the founder included, can lose its
    /// disk and rejoin with the same command line). Waits until they agree on one ring.
    pub fn start_seeded(n: usize, extra: &[&str], dir: &Path) -> Cluster {
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node::new(Ipv4Addr::new(127, 0, 0, 1 + i as u8), dir.join(format!("n{}", i + 1)), &[]))
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|x| x.cluster_addr().to_string()).collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            let id = format!("node{}", i + 1);
            let mut args: Vec<&str> = vec!["--node-id", &id];
            for (j, a) in addrs.iter().enumerate() {
                if j != i {
                    args.extend(["--seed", a.as_str()]);
                }
            }
            args.extend_from_slice(extra);
            node.set_extra(&args);
        }
        for node in &mut nodes {
            node.spawn();
        }
        let cluster = Cluster { nodes };
        cluster.wait_converged(Duration::from_secs(60));
        cluster
    }

    /// Starts one more node (on the next address) that joins through the first node.
    pub fn add(&mut self, extra: &[&str]) -> usize {
        let i = self.nodes.len();
        let ip = Ipv4Addr::new(127, 0, 0, 1 + i as u8);
        let id = format!("node{}", i + 1);
        let seed = self.nodes[0].cluster_addr().to_string();
        let mut args: Vec<&str> = vec!["--node-id", &id, "--seed", &seed];
        args.extend_from_slice(extra);
        self.nodes.push(Node::start(ip, &args));
        i
    }

    /// Waits until every node lists every node as valid and up, with the same ring and no
    /// transition under way.
    pub fn wait_converged(&self, timeout: Duration) {
        wait_until("the cluster to converge", timeout, || {
            converged(&self.nodes.iter().collect::<Vec<_>>()).then_some(())
        });
    }

    /// The node whose cluster address is `addr`.
    pub fn by_cluster_addr(&self, addr: &str) -> &Node {
        self.nodes.iter().find(|n| n.cluster_addr().to_string() == addr).expect("a node with that address")
    }

    /// Indexes of the nodes of `key`'s preference list, as node `via` sees it.
    pub fn preflist(&self, via: usize, key: &str) -> Vec<usize> {
        preflist(&self.nodes[via], key)
            .iter()
            .map(|a| self.nodes.iter().position(|n| n.cluster_addr().to_string() == *a).expect("known address"))
            .collect()
    }
}

/// Whether `nodes` all list exactly each other as valid and up, with one settled ring.
pub fn converged(nodes: &[&Node]) -> bool {
    let mut rings = Vec::new();
    for node in nodes {
        let ms = members(node);
        if ms.len() != nodes.len() || !ms.iter().all(|m| m["status"] == "valid" && m["reachable"] == "up") {
            return false;
        }
        let r = ring_rows(node);
        let listed = |addr: &String| ms.iter().any(|m| &m["addr"] == addr);
        if r.iter().any(|row| row.len() > 3 || !listed(&row[1])) {
            return false;
        }
        rings.push(r);
    }
    rings.windows(2).all(|w| w[0] == w[1])
}

fn flat_map(v: &redis::Value) -> std::collections::HashMap<String, String> {
    let redis::Value::Array(items) = v else { panic!("not an array: {v:?}") };
    items.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect()
}

/// Whether `observer` sees the node with cluster address `addr` as `state` (up/down).
pub fn sees(observer: &Node, addr: &str, state: &str) -> bool {
    members(observer).iter().any(|m| m["addr"] == addr && m["reachable"] == state)
}

/// KURA MEMBERS as field maps (none from a node that is down or stops answering meanwhile).
pub fn members(node: &Node) -> Vec<std::collections::HashMap<String, String>> {
    let Ok(mut con) = node.client("").get_connection() else { return Vec::new() };
    let Ok(v) = redis::cmd("KURA").arg("MEMBERS").query::<redis::Value>(&mut con) else { return Vec::new() };
    let redis::Value::Array(ms) = v else { panic!("KURA MEMBERS is not an array") };
    ms.iter().map(flat_map).collect()
}

/// KURA RING rows as text: index, owner address, owner id, and the next owner's address
/// during a transition.
pub fn ring_rows(node: &Node) -> Vec<Vec<String>> {
    let mut con = node.conn();
    let v: redis::Value = redis::cmd("KURA").arg("RING").query(&mut con).expect("KURA RING");
    let redis::Value::Array(rows) = v else { panic!("KURA RING is not an array") };
    rows.iter()
        .map(|r| {
            let redis::Value::Array(cols) = r else { panic!("ring row") };
            cols.iter().map(text).collect()
        })
        .collect()
}

/// KURA RING as (partition, owner address).
pub fn ring(node: &Node) -> Vec<(i64, String)> {
    ring_rows(node).into_iter().map(|r| (r[0].parse().expect("partition index"), r[1].clone())).collect()
}

/// KURA PREFLIST: cluster addresses.
pub fn preflist(node: &Node, key: &str) -> Vec<String> {
    let mut con = node.conn();
    let v: redis::Value = redis::cmd("KURA").arg("PREFLIST").arg(key).query(&mut con).expect("KURA PREFLIST");
    let redis::Value::Array(addrs) = v else { panic!("KURA PREFLIST is not an array") };
    addrs.iter().map(text).collect()
}

/// KURA LOCAL: this node's own sorted values of `key`.
pub fn local(node: &Node, key: &str) -> Vec<String> {
    let mut con = node.conn();
    let v: redis::Value = redis::cmd("KURA").arg("LOCAL").arg(key).query(&mut con).expect("KURA LOCAL");
    parse_dget(&v).1
}

/// A network partition between two nodes' peer traffic: iptables rules that drop every packet
/// of a connection between their cluster ports, both ways. Port-qualified, so tests that run
/// at the same time on the same addresses are not affected. Removed on drop (also on panic).
pub struct Cut {
    rules: Vec<Vec<String>>,
}

impl Cut {
    pub fn between(a: &Node, b: &Node) -> Cut {
        let mut rules = Vec::new();
        for (x, y) in [(a, b), (b, a)] {
            for (dir, port) in [("--dport", y.cluster_port), ("--sport", x.cluster_port)] {
                rules.push(vec![
                    "-p".into(),
                    "tcp".into(),
                    "-s".into(),
                    x.ip.to_string(),
                    "-d".into(),
                    y.ip.to_string(),
                    dir.into(),
                    port.to_string(),
                    "-j".into(),
                    "DROP".into(),
                ]);
            }
        }
        for r in &rules {
            let status = Command::new("iptables").args(["-w", "-I", "INPUT"]).args(r).status().expect("iptables");
            assert!(status.success(), "iptables -I INPUT {r:?} failed (root and the iptables package are needed)");
        }
        Cut { rules }
    }

    /// Cuts every node of `left` from every node of `right`.
    pub fn sides(left: &[&Node], right: &[&Node]) -> Vec<Cut> {
        left.iter().flat_map(|a| right.iter().map(move |b| Cut::between(a, b))).collect()
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for r in &self.rules {
            let _ = Command::new("iptables").args(["-w", "-D", "INPUT"]).args(r).status();
        }
    }
}

/// A small file system of its own (a tmpfs) mounted on a fresh temporary directory, for a data
/// dir whose disk a test fills to the brim and frees again (design.md section 8: a full disk).
/// Unmounted on drop, also on panic: drop it after the node that uses it (declare it first).
/// Mounting needs root, as CI has: without it the test fails, it does not pass silently.
pub struct SmallDisk {
    /// The mount point: give it to the node as its data dir (`Node::new`; its log goes beside
    /// it, outside the small disk).
    pub path: PathBuf,
    filler: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `32m`).
    pub fn mount(size: &str) -> SmallDisk {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let path = tmp.path().join("disk");
        std::fs::create_dir(&path).expect("the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs on {} failed (this test needs root, as CI has): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let filler = tmp.path().join("disk").join("filler");
        SmallDisk { path, filler, _tmp: tmp }
    }

    /// Fills the disk to the brim with a file of zeros (written in 1 MiB pieces, then in
    /// 4 KiB ones, until the file system says it is full).
    pub fn fill(&self) {
        let mut f = std::fs::File::create(&self.filler).expect("the filler file");
        for piece in [1 << 20, 4096] {
            let zeros = vec![0u8; piece];
            loop {
                match f.write_all(&zeros) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling {}: {e}", self.filler.display()),
                }
            }
        }
    }

    /// Removes the filler: the disk has room again.
    pub fn free(&self) {
        std::fs::remove_file(&self.filler).expect("removing the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process that did not die yet): detach it now, freed once unused.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Waits until every node of `left` sees every node of `right` down and the other way round
/// (after a [`Cut::sides`]: the failure detectors noticed the partition).
pub fn wait_split(left: &[&Node], right: &[&Node]) {
    let sees_down =
        |a: &[&Node], b: &[&Node]| a.iter().all(|x| b.iter().all(|y| sees(x, &y.cluster_addr().to_string(), "down")));
    wait_until("each side to see the other down", Duration::from_secs(15), || {
        (sees_down(left, right) && sees_down(right, left)).then_some(())
    });
}

/// redis-server (the reference) on a free port of 127.0.0.1, no persistence, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// With more options (`--requirepass x` ...).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port(Ipv4Addr::LOCALHOST);
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server) must be installed");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        wait_until("redis-server answering", Duration::from_secs(10), || ping(addr).then_some(()));
        RedisServer { child, port, _dir: dir }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to `node` with a 20 s read timeout (a connect interrupted by a signal is
/// made again).
fn connect(node: &Node) -> std::io::Result<TcpStream> {
    let addr = SocketAddr::new(node.ip.into(), node.port);
    let stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(stream)
}

/// Runs one command on a fresh connection to `node` (20 s read timeout): for clusters, where
/// a node may have died or restarted since the last command. A system call interrupted by a
/// signal is made again: a socket with a read timeout gets EINTR from Linux even without a
/// signal handler when the process is stopped and continued, and redis-rs reported that as
/// the command's failure (seen once here: `SET` answered `Interrupted system call`).
pub fn query(node: &Node, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let stream = connect(node)?;
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    (&stream).write_all(&resp_cmd(&argv))?;
    redis::Parser::new().parse_value(Restarting(&stream))?.extract_error()
}

/// As [`query`], in database `db` (a SELECT first, on the same connection).
pub fn query_db(node: &Node, db: u32, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let stream = connect(node)?;
    let db = db.to_string();
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    // One request at a time: a parser may read ahead of the reply it parses.
    (&stream).write_all(&resp_cmd(&[b"SELECT", db.as_bytes()]))?;
    redis::Parser::new().parse_value(Restarting(&stream))?.extract_error()?;
    (&stream).write_all(&resp_cmd(&argv))?;
    redis::Parser::new().parse_value(Restarting(&stream))?.extract_error()
}

/// A socket whose reads interrupted by a signal are made again.
struct Restarting<'a>(&'a TcpStream);

impl Read for Restarting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match (&mut &*self.0).read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}
