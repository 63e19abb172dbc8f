//! redis-cli against a real kura node: one-shot commands, `--pipe` mass insertion, RESP3, and
//! an interactive session in a real terminal (tmux), as a person would type it.

use crate::harness;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::{resp_cmd, wait_until, Node};

#[test]
fn one_shot_commands() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    assert_eq!(node.cli_out(&["PING"]), "PONG");
    assert_eq!(node.cli_out(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(node.cli_out(&["GET", "greeting"]), "hello world");
    assert_eq!(node.cli_out(&["GET", "missing"]), "");
    assert_eq!(node.cli_out(&["EXISTS", "greeting", "missing"]), "1");
    assert_eq!(node.cli_out(&["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(node.cli_out(&["MGET", "a", "missing", "b"]), "1\n\n2");
    assert_eq!(node.cli_out(&["DEL", "a", "b"]), "2");
    assert_eq!(node.cli_out(&["DBSIZE"]), "1");
    // A sibling merge, as the README shows it.
    let ctx1 = node.cli_out(&["DPUT", "cart", "", "milk"]);
    let ctx2 = node.cli_out(&["DPUT", "cart", "", "eggs"]);
    assert_ne!(ctx1, ctx2);
    let dget = node.cli_out(&["DGET", "cart"]);
    let lines: Vec<&str> = dget.lines().collect();
    assert_eq!(lines.len(), 3, "context and two siblings: {dget}");
    let mut values = lines[1..].to_vec();
    values.sort();
    assert_eq!(values, vec!["eggs", "milk"]);
    let merged = node.cli_out(&["DPUT", "cart", lines[0], "eggs,milk"]);
    assert!(!merged.is_empty());
    assert_eq!(node.cli_out(&["DGET", "cart"]).lines().skip(1).collect::<Vec<_>>(), vec!["eggs,milk"]);
    // Errors are printed as redis-cli prints Redis's.
    assert_eq!(node.cli_out(&["GET"]), "ERR wrong number of arguments for 'get' command");
    assert_eq!(node.cli_out(&["NOSUCH", "x"]), "ERR unknown command 'NOSUCH', with args beginning with: 'x'");
    assert!(node.cli_out(&["DPUT", "cart", "garbage", "x"]).starts_with("ERR invalid context"));
    // RESP3 through redis-cli.
    assert_eq!(node.cli_out(&["-3", "GET", "greeting"]), "hello world");
    assert!(node.cli_out(&["INFO", "server"]).contains("redis_version:"));
    assert!(node.cli_out(&["--no-raw", "COMMAND", "COUNT"]).starts_with("(integer) "));
}

#[test]
fn pipe_mass_insertion() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let mut input = Vec::new();
    for i in 0..5000 {
        input.extend(resp_cmd(&[b"SET", format!("mass:{i}").as_bytes(), format!("value {i}").as_bytes()]));
    }
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &node.port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli --pipe");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("errors: 0, replies: 5000"), "{report}");
    assert_eq!(node.cli_out(&["DBSIZE"]), "5000");
    assert_eq!(node.cli_out(&["GET", "mass:4999"]), "value 4999");
}

/// Runs redis-cli interactively inside a tmux pane of its own server socket.
struct Terminal {
    socket: String,
    prompt: String,
}

impl Terminal {
    fn open(port: u16) -> Terminal {
        let socket = format!("kura-test-{}-{port}", std::process::id());
        let status = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-s", "cli", "-x", "200", "-y", "60"])
            .arg(format!("redis-cli -p {port}"))
            .status()
            .expect("tmux (install tmux)");
        assert!(status.success());
        Terminal { socket, prompt: format!("127.0.0.1:{port}>") }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-t", "cli"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn send(&self, line: &str) {
        let status = Command::new("tmux").args(["-L", &self.socket, "send-keys", "-t", "cli", line, "Enter"]).status();
        assert!(status.unwrap().success());
    }

    fn alive(&self) -> bool {
        let status = Command::new("tmux").args(["-L", &self.socket, "has-session", "-t", "cli"]).output();
        status.is_ok_and(|o| o.status.success())
    }

    /// Types a line and waits until its answer shows `expect` and redis-cli prompts again.
    /// Only what follows this line counts: an earlier answer with the same text does not, and
    /// a line typed before the prompt is back would be dropped (linenoise flushes pending input
    /// when it enters raw mode).
    fn type_line(&self, line: &str, expect: &str) {
        let echoed = format!("{} {line}", self.prompt);
        let before = self.screen().matches(&echoed).count();
        self.send(line);
        wait_until(&format!("{expect:?} after typing {line:?}"), Duration::from_secs(10), || {
            let screen = self.screen();
            if screen.matches(&echoed).count() <= before {
                return None;
            }
            let (_, answer) = screen.rsplit_once(&echoed)?;
            let (answer, _) = answer.split_once(&self.prompt)?;
            answer.contains(expect).then_some(())
        });
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- terminal ---\n{}", self.screen());
        }
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

#[test]
fn interactive_session() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let term = Terminal::open(node.port);
    wait_until("the redis-cli prompt", Duration::from_secs(10), || term.screen().contains(&term.prompt).then_some(()));
    term.type_line("set fruit apple", "OK");
    term.type_line("get fruit", "\"apple\"");
    // A context is base64url of a versioned form: it starts with the version byte, 1.
    term.type_line("dput basket \"\" pear", "\"AQ");
    term.type_line("dbsize", "(integer) 2");
    term.type_line("get", "(error) ERR wrong number of arguments for 'get' command");
    term.type_line("hello 3", "proto");
    term.type_line("get fruit", "\"apple\"");
    term.send("quit");
    wait_until("redis-cli to exit on quit", Duration::from_secs(10), || (!term.alive()).then_some(()));
}

/// `redis-cli --scan`, `--bigkeys` and `--memkeys` (SCAN, TYPE, STRLEN, MEMORY USAGE) and
/// `-n 1` run clean.
#[test]
fn keyspace_tools() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    for i in 0..50 {
        node.cli_out(&["SET", &format!("user:{i}"), &"x".repeat(i + 1)]);
    }
    node.cli_out(&["SET", "other", "y"]);
    let mut scanned: Vec<String> =
        node.cli_out(&["--scan", "--pattern", "user:*"]).lines().map(str::to_owned).collect();
    scanned.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("user:{i}")).collect();
    expected.sort();
    assert_eq!(scanned, expected);
    let big = node.cli_out(&["--bigkeys"]);
    assert!(big.contains("Biggest string found '\"user:49\"' has 50 bytes"), "{big}");
    assert!(big.contains("51 strings with"), "{big}");
    let mem = node.cli_out(&["--memkeys"]);
    assert!(mem.contains("51 strings with"), "{mem}");
    assert!(!mem.contains("51 strings with 0 bytes"), "MEMORY USAGE answered: {mem}");
    assert_eq!(node.cli_out(&["-n", "1", "SET", "elsewhere", "1"]), "OK");
    assert_eq!(node.cli_out(&["-n", "1", "DBSIZE"]), "1");
    assert_eq!(node.cli_out(&["DBSIZE"]), "51");
}

/// `redis-cli --stat` shows real numbers: keys (INFO keyspace), memory, clients, blocked
/// clients, requests and connections, one row a second.
#[test]
fn stat_mode_shows_real_numbers() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    for i in 0..7 {
        node.cli_out(&["SET", &format!("k{i}"), "v"]);
    }
    // Line-buffered, so the rows written before the timeout ends it reach the pipe.
    let out = Command::new("timeout")
        .args([
            "3",
            "stdbuf",
            "-oL",
            "redis-cli",
            "-h",
            "127.0.0.1",
            "-p",
            &node.port.to_string(),
            "--stat",
            "-i",
            "0.5",
        ])
        .output()
        .expect("running redis-cli --stat");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keys") && text.contains("requests"), "{text}");
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next().is_some_and(|w| w.parse::<u64>().is_ok()))
        .unwrap_or_else(|| panic!("a data row in {text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // keys, mem, clients, blocked, requests (+delta), connections
    assert_eq!(cols[0], "7", "{text}");
    assert!(cols[1].ends_with('M') || cols[1].ends_with('K'), "{text}");
    assert_eq!((cols[2], cols[3]), ("1", "0"), "{text}");
    assert!(cols[4].parse::<u64>().unwrap() >= 7, "{text}");
}
