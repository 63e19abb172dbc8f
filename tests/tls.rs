//! TLS (issue 24, point 3) on real processes, with certificates made by `openssl` for each
//! test: `redis-cli --tls` and redis-py `ssl=True` through a node's `--tls-port` (client
//! certificates required by default, as Redis's `tls-auth-clients yes`); a 3-node cluster
//! with `--tls-cluster yes` forms and replicates, and a node with a certificate from another
//! CA cannot join it; certificates reload on SIGHUP and on `CONFIG SET tls-cert-file`.

use crate::harness;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{members, metric, wait_until, Cluster, Node};

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("running openssl (install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA in `dir`: `<name>.crt` and `<name>.key`.
fn ca(dir: &Path, name: &str) -> PathBuf {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    dir.join(crt)
}

/// A certificate signed by the CA `ca` (made by [`ca`]) for `cn`, valid for 127.0.0.1 to
/// 127.0.0.9 and localhost, for servers and clients: (`<name>.crt`, `<name>.key`).
fn cert(dir: &Path, ca: &str, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (crt, key, csr, ext) =
        (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    let ips: Vec<String> = (1..10).map(|i| format!("IP:127.0.0.{i}")).collect();
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName={},DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
            ips.join(",")
        ),
    )
    .expect("extensions file");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(crt), dir.join(key))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `redis-cli --tls` against `port` with `tls` (its CA and maybe a client certificate).
fn cli_tls(port: u16, tls: &[&str], args: &[&str]) -> (bool, String) {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"])
        .args(tls)
        .args(args)
        .output()
        .expect("running redis-cli (install redis-tools)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_owned())
}

#[test]
fn redis_cli_and_redis_py_write_through_the_tls_port() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path();
    let ca_crt = ca(dir, "ca");
    let (server_crt, server_key) = cert(dir, "ca", "server", "kura");
    let (client_crt, client_key) = cert(dir, "ca", "client", "app");
    ca(dir, "other");
    let (stranger_crt, stranger_key) = cert(dir, "other", "stranger", "app");
    let port = harness::free_port(Ipv4Addr::LOCALHOST);
    let node = Node::start(
        Ipv4Addr::LOCALHOST,
        &[
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            s(&server_crt),
            "--tls-key-file",
            s(&server_key),
            "--tls-ca-cert-file",
            s(&ca_crt),
        ],
    );
    let with_cert = ["--cacert", s(&ca_crt), "--cert", s(&client_crt), "--key", s(&client_key)];
    assert_eq!(cli_tls(port, &with_cert, &["set", "greeting", "hello"]), (true, "OK".to_owned()));
    assert_eq!(cli_tls(port, &with_cert, &["get", "greeting"]), (true, "hello".to_owned()));
    // The same data through the plain port.
    assert_eq!(node.cli_out(&["get", "greeting"]), "hello");
    // tls-auth-clients yes: no certificate, or one from another CA, is refused.
    let (_, text) = cli_tls(port, &["--cacert", s(&ca_crt)], &["ping"]);
    assert_ne!(text, "PONG", "a client without a certificate was served");
    let stranger = ["--cacert", s(&ca_crt), "--cert", s(&stranger_crt), "--key", s(&stranger_key)];
    let (_, text) = cli_tls(port, &stranger, &["ping"]);
    assert_ne!(text, "PONG", "a client with another CA's certificate was served");
    // A client speaking plaintext to the TLS port gets nothing, and the node stays up.
    let (_, text) = {
        let out = node.cli(&["-p", &port.to_string(), "ping"]);
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    assert_ne!(text, "PONG");
    assert_eq!(node.cli_out(&["ping"]), "PONG");
    let failures = metric(&node.metrics(), "kura_tls_handshake_failures_total").unwrap_or(0.0);
    assert!(failures >= 3.0, "handshake failures counted: {failures}");
    // redis-py with ssl=True.
    let script = format!(
        "import redis\nr = redis.Redis(host='127.0.0.1', port={port}, ssl=True, ssl_ca_certs='{}', \
         ssl_certfile='{}', ssl_keyfile='{}')\nr.set('py', 'yes')\nprint(r.get('greeting').decode(), r.get('py').decode())\n",
        s(&ca_crt),
        s(&client_crt),
        s(&client_key)
    );
    let out = Command::new("python3").args(["-c", &script]).output().expect("running python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello yes",
        "redis-py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.cli_out(&["get", "py"]), "yes");
    assert_eq!(node.cli_out(&["config", "get", "tls-port"]), format!("tls-port\n{port}"));
}

#[test]
fn tls_auth_clients_no_serves_clients_without_a_certificate() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path();
    let ca_crt = ca(dir, "ca");
    let (server_crt, server_key) = cert(dir, "ca", "server", "kura");
    let port = harness::free_port(Ipv4Addr::LOCALHOST);
    let _node = Node::start(
        Ipv4Addr::LOCALHOST,
        &[
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            s(&server_crt),
            "--tls-key-file",
            s(&server_key),
            "--tls-auth-clients",
            "no",
        ],
    );
    assert_eq!(cli_tls(port, &["--cacert", s(&ca_crt)], &["set", "k", "v"]), (true, "OK".to_owned()));
    // The client checks the server: a CA that did not sign it fails.
    let other = ca(dir, "other");
    let (_, text) = cli_tls(port, &["--cacert", s(&other)], &["get", "k"]);
    assert_ne!(text, "v");
}

#[test]
fn a_tls_cluster_forms_replicates_and_refuses_a_peer_of_another_ca() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path();
    let ca_crt = ca(dir, "ca");
    let (crt, key) = cert(dir, "ca", "peer", "kura-peer");
    let tls = [
        "--tls-cluster",
        "yes",
        "--tls-cert-file",
        s(&crt),
        "--tls-key-file",
        s(&key),
        "--tls-ca-cert-file",
        s(&ca_crt),
    ];
    // Forming at all means every peer connection shook hands over mutual TLS.
    let cluster = Cluster::start(3, &tls);
    assert_eq!(cluster.nodes[0].cli_out(&["set", "shared", "over-tls"]), "OK");
    for node in &cluster.nodes {
        wait_until("every replica holds the key", Duration::from_secs(30), || {
            (harness::local(node, "shared") == ["over-tls"]).then_some(())
        });
    }
    assert_eq!(cluster.nodes[2].cli_out(&["get", "shared"]), "over-tls");
    // A node whose certificate comes from another CA cannot connect to any of them.
    let other_ca = ca(dir, "other");
    let (other_crt, other_key) = cert(dir, "other", "intruder", "kura-peer");
    let seed = cluster.nodes[0].cluster_addr().to_string();
    let intruder = Node::start(
        Ipv4Addr::new(127, 0, 0, 4),
        &[
            "--node-id",
            "intruder",
            "--seed",
            &seed,
            "--tls-cluster",
            "yes",
            "--tls-cert-file",
            s(&other_crt),
            "--tls-key-file",
            s(&other_key),
            "--tls-ca-cert-file",
            s(&other_ca),
        ],
    );
    wait_until("the seed refuses the intruder's TLS", Duration::from_secs(30), || {
        (metric(&cluster.nodes[0].metrics(), "kura_peer_errors_total{kind=\"tls\"}").unwrap_or(0.0) >= 1.0)
            .then_some(())
    });
    for node in &cluster.nodes {
        assert!(members(node).iter().all(|m| m["id"] != "intruder"), "the intruder became a member");
    }
    // A node without TLS is refused too (the intruder stopped: only it can be refused now).
    drop(intruder);
    let refused = |node: &Node| metric(&node.metrics(), "kura_peer_errors_total{kind=\"tls\"}").unwrap_or(0.0);
    let before = refused(&cluster.nodes[0]);
    let plain = Node::start(Ipv4Addr::new(127, 0, 0, 5), &["--node-id", "plain", "--seed", &seed]);
    wait_until("the seed refuses a plaintext peer", Duration::from_secs(30), || {
        (refused(&cluster.nodes[0]) > before).then_some(())
    });
    for node in &cluster.nodes {
        assert!(members(node).iter().all(|m| m["id"] != "intruder" && m["id"] != "plain"));
    }
    drop(plain);
}

/// The subject of the certificate the TLS port at `port` presents now.
fn served_subject(port: u16, ca: &Path, client: &(PathBuf, PathBuf)) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-CAfile", s(ca), "-cert", s(&client.0), "-key"])
        .arg(s(&client.1))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find(|l| l.starts_with("subject=")).unwrap_or_default().to_owned()
}

#[test]
fn certificates_reload_on_sighup_and_config_set() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path();
    let ca_crt = ca(dir, "ca");
    let (crt, key) = cert(dir, "ca", "server", "first");
    let client = cert(dir, "ca", "client", "app");
    let port = harness::free_port(Ipv4Addr::LOCALHOST);
    let node = Node::start(
        Ipv4Addr::LOCALHOST,
        &[
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            s(&crt),
            "--tls-key-file",
            s(&key),
            "--tls-ca-cert-file",
            s(&ca_crt),
        ],
    );
    assert!(served_subject(port, &ca_crt, &client).contains("first"), "{}", served_subject(port, &ca_crt, &client));
    // Renewed in place, then SIGHUP.
    cert(dir, "ca", "server", "second");
    let pid = node.pid().expect("a running node");
    assert!(Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill").success());
    wait_until("the renewed certificate is served", Duration::from_secs(30), || {
        served_subject(port, &ca_crt, &client).contains("second").then_some(())
    });
    assert_eq!(node.cli_out(&["ping"]), "PONG", "SIGHUP must not stop the node");
    // New files through CONFIG SET: used at once.
    let (crt3, key3) = cert(dir, "ca", "third", "third");
    assert_eq!(node.cli_out(&["config", "set", "tls-cert-file", s(&crt3), "tls-key-file", s(&key3)]), "OK");
    assert!(served_subject(port, &ca_crt, &client).contains("third"));
    assert_eq!(node.cli_out(&["config", "get", "tls-cert-file"]), format!("tls-cert-file\n{}", s(&crt3)));
    // A file that cannot be read changes nothing.
    let refused = node.cli_out(&["config", "set", "tls-cert-file", "/nonexistent/cert.pem"]);
    assert!(refused.starts_with("ERR CONFIG SET failed"), "{refused}");
    assert!(served_subject(port, &ca_crt, &client).contains("third"));
    assert_eq!(node.cli_out(&["config", "get", "tls-cert-file"]), format!("tls-cert-file\n{}", s(&crt3)));
}
