//! `kura [server] [options]`: starts a node. See `kura --help`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;

use kura::config::{Cli, Command, Config};
use kura::node::Node;

/// mimalloc instead of glibc's malloc: the request paths allocate many small, short-lived
/// buffers from two threads, where glibc's arenas spent a quarter of a cluster node's CPU
/// (`_int_malloc`, `unlink_chunk`, `malloc_consolidate`) and kept memory after a burst.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KURA_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Server(args)) => args,
        None => cli.server,
    };
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kura: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(config.threads).enable_all().build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kura: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(Exit::Stopped) => ExitCode::SUCCESS,
        Ok(Exit::Restart) => {
            // Nothing to wait for: every acknowledged write is in the journal already.
            runtime.shutdown_timeout(Duration::from_secs(1));
            ExitCode::from(kura::storage::EXIT_RESTART)
        }
        Err(e) => {
            eprintln!("kura: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How a node that ran ends.
enum Exit {
    /// Asked to (a signal, SHUTDOWN).
    Stopped,
    /// Its storage engine cannot take writes again in this process (`storage/health.rs`): its
    /// supervisor restarts it on the same data dir.
    Restart,
}

async fn run(config: Config) -> Result<Exit, Box<dyn std::error::Error>> {
    let metrics = kura::metrics::install(config.metrics_listen)
        .map_err(|e| format!("metrics on {}: {e}", config.metrics_listen))?;
    let listener = kura::server::bind(config.listen).map_err(|e| format!("listen on {}: {e}", config.listen))?;
    let tls_listener = match config.tls_listen {
        Some(addr) => Some(kura::server::bind(addr).map_err(|e| format!("tls-port on {addr}: {e}"))?),
        None => None,
    };
    let peer_listener = TcpListener::bind(config.cluster_listen)
        .await
        .map_err(|e| format!("cluster-listen on {}: {e}", config.cluster_listen))?;
    let node = Node::open(config, Some(metrics))?;
    tracing::info!(
        node_id = %node.coordinator.identity().node_id,
        listen = %node.config.listen,
        metrics = %node.config.metrics_listen,
        data_dir = %node.config.data_dir.display(),
        "kura node ready"
    );
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(kura::rpc::serve(
        peer_listener,
        node.peer_identity.clone(),
        node.tls.clone().filter(|t| t.cluster()),
        node.clone(),
        stopped.clone(),
    ));
    node.spawn_background(&stopped);
    tokio::spawn(housekeeping(node.clone(), stopped.clone()));
    if let (Some(listener), Some(tls)) = (tls_listener, node.tls.clone()) {
        tokio::spawn(kura::server::serve(node.clone(), listener, Some(tls), stopped.clone()));
    }
    tokio::spawn(reload_on_sighup(node.tls.clone(), stopped.clone()));
    let server = tokio::spawn(kura::server::serve(node.clone(), listener, None, stopped));
    let mut restart = node.coordinator.storage().health().restart_wanted();
    tokio::select! {
        () = shutdown_signal() => {}
        () = node.shutdown.notified() => {}
        Ok(_) = restart.wait_for(|wanted| *wanted) => {
            // Logged by storage, with the reason; the engine cannot sync any more.
            let _ = stop.send(true);
            return Ok(Exit::Restart);
        }
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    node.coordinator.storage().sync()?;
    Ok(Exit::Stopped)
}

/// Background work: storage gauges, and reaping of keys whose siblings are all deleted or
/// expired (after `--reap-grace-ms`, so a client that just read the tombstone's context can
/// still write with it).
async fn housekeeping(node: Arc<Node>, stop: watch::Receiver<bool>) {
    use kura::metrics as m;
    let mut rounds = kura::rounds::Rounds::every(Duration::from_secs(5), stop);
    while rounds.next().await {
        let st = node.coordinator.storage().stats();
        metrics::gauge!(m::STORAGE_DISK_BYTES).set(st.disk_bytes as f64);
        metrics::gauge!(m::STORAGE_JOURNAL_BYTES).set(st.journal_bytes as f64);
        metrics::gauge!(m::STORAGE_KEYS).set(st.data_keys_approx as f64);
        // Reaping removes records: not while the disk refuses writes.
        if node.coordinator.storage().health().trouble().is_some() {
            continue;
        }
        match node.coordinator.reap_dead(node.config.reap_grace_ms).await {
            Ok(reaped) => metrics::counter!(m::REAPED_KEYS_TOTAL).increment(reaped),
            Err(e) if e.is_disk_refused() => tracing::debug!("reaping failed: {e}"),
            Err(e) => tracing::warn!("reaping failed: {e}"),
        }
    }
}

/// Reads the TLS certificates again on every SIGHUP (new connections use them); without TLS
/// a SIGHUP is ignored, as Redis ignores it.
async fn reload_on_sighup(tls: Option<Arc<kura::tls::Tls>>, mut stop: watch::Receiver<bool>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => match tls.as_ref().map(|tls| tls.reload(None)) {
                Some(Ok(())) => tracing::info!("TLS certificates reloaded"),
                Some(Err(e)) => tracing::warn!("TLS certificates not reloaded, the old ones stay: {e}"),
                None => {}
            },
            _ = stop.changed() => return,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
