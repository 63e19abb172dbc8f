//! Measurements of the simulated cluster: state and message sizes, gossip alone, the failure
//! detector on a lossy network, routing during a wave of joins, and a join of 1 TB.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::world::{us, News, RingChange, World};
use super::{Config, RouteSample};
use crate::cluster::{Detector, GOSSIP_EVERY, HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT, SILENCE};
use crate::peer::{PeerRequest, PeerResponse, Request, Response};
use crate::ring::NodeId;

/// State and message sizes at one cluster size.
#[derive(Clone, Debug)]
pub struct Size {
    pub nodes: usize,
    pub state_bytes: usize,
    pub message_bytes: usize,
    pub gossip_bytes_per_s: usize,
    pub heartbeats_per_s: usize,
    pub heartbeat_bytes_per_s: usize,
}

fn request(body: Request) -> PeerRequest {
    PeerRequest {
        ring_version: 1,
        cluster: u64::MAX,
        sender: SocketAddr::from(([10, 0, 0, 1], 7379)),
        deadline_ms: 1_800_000_000_000,
        body,
    }
}

fn len<T: serde::Serialize>(v: &T) -> usize {
    postcard::to_stdvec(v).map_or(0, |b| b.len())
}

/// Sizes in a settled cluster of `nodes` members (the ring of `cfg.partitions`). A node sends
/// one gossip request a second and answers one on average, each carrying the whole state; and
/// a heartbeat (request and answer) to every other member four times a second.
pub fn size(cfg: &Config, nodes: usize) -> Size {
    let w = World::new(cfg.world(false, false, cfg.seed), nodes);
    let state = w.nodes[0].state.clone().expect("a member has a state");
    let message = len(&request(Request::Gossip(Box::new((*state).clone()))));
    let ping =
        len(&request(Request::Ping)) + len(&PeerResponse { ring_version: 1, cluster: u64::MAX, body: Response::Pong });
    let per_s = (1.0 / HEARTBEAT_EVERY.as_secs_f64()) as usize;
    Size {
        nodes,
        state_bytes: state.encode().len(),
        message_bytes: message,
        gossip_bytes_per_s: 2 * message,
        heartbeats_per_s: per_s * (nodes - 1),
        heartbeat_bytes_per_s: per_s * (nodes - 1) * ping,
    }
}

/// Rounds of gossip alone (no pushes, no claimant) until every member knows a member that
/// joined, at one cluster size.
#[derive(Clone, Debug)]
pub struct GossipSpread {
    pub nodes: usize,
    pub rounds: Vec<f64>,
}

pub fn gossip_spread(cfg: &Config, nodes: usize) -> GossipSpread {
    let trials = if nodes > 2000 { 1 } else { cfg.trials };
    let mut rounds = Vec::new();
    for t in 0..trials {
        let mut w = World::new(cfg.world(false, false, cfg.seed ^ ((t as u64 + 1) * 0x9e37)), nodes);
        w.run_until(2_000_000);
        let seed = w.rng.gen_range(0..nodes);
        w.join(seed);
        let limit = w.now + 600_000_000;
        w.run_while_not(limit, |w| w.spreads.iter().all(|s| s.everywhere.is_some()) && !w.spreads.is_empty());
        for s in &w.spreads {
            if let (News::Member(..), Some(e)) = (&s.news, s.everywhere) {
                rounds.push((e - s.made) as f64 / us(GOSSIP_EVERY) as f64);
            }
        }
    }
    GossipSpread { nodes, rounds }
}

/// False "down" marks of the failure detector on a network that loses each message with
/// probability `loss`.
#[derive(Clone, Debug)]
pub struct FalsePositives {
    pub loss: f64,
    pub pairs: usize,
    pub seconds: u64,
    pub downs: u64,
    pub per_pair_hour: f64,
}

/// Every pair of `nodes` nodes for `seconds`: heartbeats every [`HEARTBEAT_EVERY`] from a
/// random phase, each lost (request or answer) with probability `1 - (1 - loss)^2`, a lost one
/// failing at [`HEARTBEAT_TIMEOUT`] and an answered one taking 0.2 to 2 ms; the real detector
/// judges. Pairs are independent, so the rate per pair carries to any cluster size.
pub fn false_positives(cfg: &Config, nodes: usize, loss: f64, seconds: u64) -> FalsePositives {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ (loss * 1e6) as u64);
    let base = tokio::time::Instant::now();
    let every = us(HEARTBEAT_EVERY);
    let mut downs = 0u64;
    let pairs = nodes * (nodes - 1);
    for _ in 0..pairs {
        let mut d = Detector::new(SILENCE);
        let mut outcomes: Vec<(u64, bool)> = Vec::new();
        let mut sent = rng.gen_range(0..every);
        while sent < seconds * 1_000_000 {
            let lost = rng.gen_bool(loss) || rng.gen_bool(loss);
            if lost {
                outcomes.push((sent + us(HEARTBEAT_TIMEOUT), false));
            } else {
                outcomes.push((sent + rng.gen_range(400..4_000), true));
            }
            sent += every;
        }
        outcomes.sort_by_key(|o| o.0);
        for (at, ok) in outcomes {
            let at = base + Duration::from_micros(at);
            if ok {
                d.ok("p", at);
            } else if d.failed("p", at) {
                downs += 1;
            }
        }
    }
    let per_pair_hour = downs as f64 / pairs as f64 / (seconds as f64 / 3600.0);
    FalsePositives { loss, pairs, seconds, downs, per_pair_hour }
}

/// Routes `count` requests now: each to a random running member, which coordinates it with
/// its own ring (its `View`); each replica it asks judges the request with its own ring
/// (`View::refuses_as_stale`, the check `node.rs` makes).
pub fn route(w: &mut World, count: usize, since: u64) -> RouteSample {
    let members = w.running_members();
    let newest = w.newest_ring();
    let mut s = RouteSample { at_s: (w.now - since) as f64 / 1e6, members: members.len(), ..RouteSample::default() };
    for &i in &members {
        let v = w.nodes[i].state.as_ref().map_or(0, |s| s.ring.version);
        if v < newest {
            s.behind += 1;
            s.max_lag_versions = s.max_lag_versions.max(newest - v);
            let lacks = w.ring_made.range(v + 1..).next().map(|(_, &t)| t);
            if let Some(t) = lacks {
                s.max_lag_s = s.max_lag_s.max((w.now - t) as f64 / 1e6);
            }
        }
    }
    if members.is_empty() {
        return s;
    }
    let mut views: BTreeMap<usize, std::sync::Arc<crate::cluster::View>> = BTreeMap::new();
    for _ in 0..count {
        let c = members[w.rng.gen_range(0..members.len())];
        let key = format!("key:{}", w.rng.gen::<u64>()).into_bytes();
        let Some(vc) = w.view_of(c) else { continue };
        let mut targets: Vec<NodeId> = vc.preference_list(&key).to_vec();
        targets.extend(vc.joining_replicas(&key).map(|r| r.to_vec()).unwrap_or_default());
        let mut stale = 0;
        for r in &targets {
            let Some(&ri) = w.index.get(r) else { continue };
            if !w.nodes[ri].alive {
                continue;
            }
            let vr = match views.get(&ri) {
                Some(v) => v.clone(),
                None => match w.view_of(ri) {
                    Some(v) => {
                        views.insert(ri, v.clone());
                        v
                    }
                    None => continue,
                },
            };
            if vr.refuses_as_stale(vc.ring_version(), &key, r) {
                stale += 1;
            }
        }
        s.requests += 1;
        if stale > 0 {
            s.stale_requests += 1;
            s.stale_answers += stale;
            if targets.len() - stale < 2 {
                s.short_of_r += 1;
            }
        }
    }
    s
}

/// How long a join that brings 1 TB to the new node would take.
#[derive(Clone, Debug)]
pub struct OneTb {
    /// Partitions the joiner receives, and transfers in all.
    pub to_joiner: usize,
    pub transfers: usize,
    /// The most transfers one sender runs.
    pub most_from_one: usize,
    pub limit: usize,
    pub stream_mibs: f64,
    /// Seconds if senders are the limit (each runs `limit` streams at the stream rate).
    pub senders_s: f64,
    /// Seconds if the joiner's intake is the limit (the measured rate of a whole join).
    pub receiver_s: f64,
}

impl OneTb {
    pub fn describe(&self) -> String {
        let h = |s: f64| s / 3600.0;
        format!(
            "The measured join moves {} transfers, {} of them to the joiner (so each carries 1 TB / {} = {:.0} GB), at most {} from one sender. With `--transfer-limit {}` and {:.1} MiB/s a stream ({:.1} MiB/s measured by `benches/transfer.py` for a whole join, split over its streams), the senders need {:.1} h; the joiner's intake at the measured {:.1} MiB/s needs {:.1} h. A join of 1 TB takes about **{:.1} h**.",
            self.transfers,
            self.to_joiner,
            self.to_joiner.max(1),
            1e12 / self.to_joiner.max(1) as f64 / 1e9,
            self.most_from_one,
            self.limit,
            self.stream_mibs,
            super::MEASURED_TRANSFER_MIBS,
            h(self.senders_s),
            super::MEASURED_TRANSFER_MIBS,
            h(self.receiver_s),
            h(self.senders_s.max(self.receiver_s))
        )
    }
}

/// From the transfers of the join `c` in `w`.
pub fn one_tb(w: &World, c: &RingChange, cfg: &Config) -> OneTb {
    // The state right after the change: any member at its version (or later) still shows its
    // transfers; read them off the claimant's plan recorded at the change.
    let plan = &c.plan;
    let joiner_id = plan.iter().map(|(_, to, _)| to).max_by_key(|to| plan.iter().filter(|p| &p.1 == *to).count());
    let to_joiner = joiner_id.map_or(0, |j| plan.iter().filter(|p| &p.1 == j).count());
    let mut by_sender: BTreeMap<&NodeId, usize> = BTreeMap::new();
    for (_, _, from) in plan {
        *by_sender.entry(from).or_insert(0) += 1;
    }
    let most = by_sender.values().copied().max().unwrap_or(0);
    let per_transfer = 1e12 / to_joiner.max(1) as f64;
    let rate = super::stream_rate(cfg.transfer_limit);
    let waves = most.div_ceil(cfg.transfer_limit.max(1));
    let _ = w;
    OneTb {
        to_joiner,
        transfers: plan.len(),
        most_from_one: most,
        limit: cfg.transfer_limit,
        stream_mibs: rate / 1048576.0,
        senders_s: waves as f64 * per_transfer / rate,
        receiver_s: 1e12 / (super::MEASURED_TRANSFER_MIBS * 1048576.0),
    }
}
