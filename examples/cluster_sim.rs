//! Membership, ring changes and routing of a simulated kura cluster (issue 26):
//!
//!     cargo run --release --example cluster_sim -- --nodes 1000 --partitions 1024 --seed 1
//!
//! Prints the tables of README's "Scale (simulated)". Options: `--nodes N`, `--partitions Q`
//! (a power of two), `--seed S`, `--sizes 10,100,1000` (the gossip and state-size tables),
//! `--joins`, `--leaves`, `--crashes`, `--wave`, `--transfer-limit`, `--partition-mib`.

use kura::scale::{run_all, Config};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let num = |name: &str, default: u64| -> u64 {
        match get(name).map(|v| v.parse::<u64>()) {
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                eprintln!("{name} takes a number");
                std::process::exit(2)
            }
            None => default,
        }
    };
    let nodes = num("--nodes", 1000) as usize;
    let partitions = num("--partitions", 1024) as u32;
    if !partitions.is_power_of_two() || nodes < 4 {
        eprintln!("--partitions must be a power of two and --nodes at least 4");
        std::process::exit(2);
    }
    let mut cfg = Config::issue(nodes, partitions, num("--seed", 1));
    cfg.joins = num("--joins", cfg.joins as u64) as usize;
    cfg.leaves = num("--leaves", cfg.leaves as u64) as usize;
    cfg.crashes = num("--crashes", cfg.crashes as u64) as usize;
    cfg.wave = num("--wave", cfg.wave as u64) as usize;
    cfg.transfer_limit = num("--transfer-limit", cfg.transfer_limit as u64).max(1) as usize;
    cfg.partition_mib = num("--partition-mib", cfg.partition_mib as u64) as f64;
    if let Some(s) = get("--sizes") {
        cfg.sizes = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    let started = std::time::Instant::now();
    let report = run_all(&cfg);
    println!("{}", report.tables(&cfg));
    println!("Wall time: {:.1} s.", started.elapsed().as_secs_f64());
}
