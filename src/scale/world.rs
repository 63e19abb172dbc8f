//! The simulated cluster: nodes that hold only what membership needs (the cluster state, a
//! failure detector, the transfers they run), a clock, and a network of delayed messages. The
//! node's loops (`cluster/loops.rs`, `cluster/admin.rs`, `handoff/transfer.rs`) are events here
//! that call the same pure steps the node calls: `ClusterState::merge`, `admit`, `leave`,
//! `remove`, `next` (the claimant), `transfer_done`, `pending_transfers`,
//! `transfers_to_start`, and the `Detector`.
//!
//! What is not simulated: storage and data (a transfer is a delay: its bytes over the rate),
//! the `View` every node rebuilds on a change (built once per ring version, for routing only),
//! and heartbeats between two nodes that reach each other on a lossless network (they only
//! refresh the detector's last answer, which is filled in when the pair loses touch).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{Detector, View, CLAIM_EVERY, GOSSIP_EVERY, HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT, SILENCE};
use crate::membership::{ClusterState, Member, Status};
use crate::ring::{NodeId, Transfer};

/// Simulated time in microseconds.
pub type Micros = u64;

pub fn us(d: Duration) -> Micros {
    d.as_micros() as Micros
}

/// How the world runs.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    pub partitions: u32,
    pub n: usize,
    pub seed: u64,
    /// One-way network delay, uniform in this range.
    pub delay: (Micros, Micros),
    /// Bytes of one partition's replica (a transfer moves this much).
    pub partition_bytes: u64,
    /// Bytes a second of one transfer stream.
    pub stream_rate: f64,
    /// `--transfer-limit`: transfers one node sends at once.
    pub transfer_limit: usize,
    /// Whether changes are pushed to every member at once (as `Cluster::change` does); off to
    /// measure gossip alone.
    pub push: bool,
    /// Whether the claimant and transfer loops run.
    pub claims: bool,
}

/// One simulated node.
pub struct SimNode {
    pub id: NodeId,
    pub member: Member,
    pub state: Option<Arc<ClusterState>>,
    pub detector: Detector,
    /// The process runs (not crashed, not gone after its removal).
    pub alive: bool,
    pub running: HashSet<Transfer>,
    /// Offset of its heartbeat rounds.
    pub hb_phase: Micros,
    /// The state its claim and transfer rounds last looked at, and what they found there:
    /// whether it is the claimant, and its pending-transfers key. A state not changed since
    /// gives the same answers (the simulation runs a thousand of these rounds a second).
    seen: Option<Seen>,
}

/// A state a node's claim and transfer rounds looked at, whether the node is the claimant in
/// it, and its pending-transfers key.
/// A ring version's pending transfers, and the nodes that may send them.
type Pending = (Vec<Transfer>, BTreeSet<NodeId>);

type Seen = (Arc<ClusterState>, bool, (u64, u64, usize));

impl SimNode {
    /// Whether the node is a member that should know every change: running, in a cluster,
    /// and not removed in its own eyes.
    pub fn in_cluster(&self) -> bool {
        self.alive
            && self.state.as_ref().is_some_and(|s| s.members.get(&self.id).is_some_and(|m| m.status != Status::Removed))
    }
}

#[derive(Debug)]
enum Ev {
    GossipTick(usize),
    ClaimTick(usize),
    TransferTick(usize),
    /// A state arrives: a gossip request or a push (`answer`: reply with ours), or a reply.
    State {
        to: usize,
        from: usize,
        state: Arc<ClusterState>,
        answer: bool,
    },
    Join {
        seed: usize,
        joiner: usize,
    },
    TransferEnd {
        node: usize,
        t: Transfer,
    },
    TransferDone {
        claimant: usize,
        from: usize,
        t: Transfer,
    },
    HbSend {
        a: usize,
        b: usize,
    },
    HbFail {
        a: usize,
        b: usize,
    },
    Call(Call),
}

/// Something to do at a moment of the schedule.
struct Call(Box<dyn FnOnce(&mut World)>);

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("call")
    }
}

struct Entry {
    at: Micros,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A ring change the claimant made.
#[derive(Clone, Debug)]
pub struct RingChange {
    pub at: Micros,
    pub version: u64,
    /// Members placed by the new ring (joining and valid).
    pub members: usize,
    pub joined: usize,
    pub left: usize,
    /// Partitions whose owner changes.
    pub moved: usize,
    pub transfers: usize,
    /// Partitions per placed member in the future ring: max - min.
    pub spread: usize,
    /// When the ring flipped to its future owners.
    pub flipped: Option<Micros>,
    /// The transfers: (partition, to, from).
    pub plan: Vec<(u32, NodeId, NodeId)>,
}

/// Something every member should learn: a ring version or a member's entry.
#[derive(Clone, Debug)]
pub enum News {
    Ring(u64),
    Member(NodeId, u64),
}

/// When a piece of news was made and when every member had it.
#[derive(Clone, Debug)]
pub struct Spread {
    pub news: News,
    pub made: Micros,
    pub everywhere: Option<Micros>,
}

/// Message counts.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    pub gossip: u64,
    pub push: u64,
    pub replies: u64,
    pub transfer_reports: u64,
    pub heartbeats_to_silent: u64,
    pub dropped: u64,
}

pub struct World {
    pub cfg: WorldConfig,
    pub now: Micros,
    pub rng: StdRng,
    pub nodes: Vec<SimNode>,
    pub index: BTreeMap<NodeId, usize>,
    queue: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    /// Nodes cut off from the rest (and reaching each other).
    pub cut: BTreeSet<usize>,
    /// Heartbeat chains to a peer that does not answer: (from, to).
    chains: BTreeSet<(usize, usize)>,
    /// When each node marked each silent peer down: (peer -> (node -> when)).
    pub marked_down: BTreeMap<usize, BTreeMap<usize, Micros>>,
    pub changes: Vec<RingChange>,
    pub spreads: Vec<Spread>,
    pub traffic: Traffic,
    /// When each ring version was made.
    pub ring_made: BTreeMap<u64, Micros>,
    /// Pending transfers per (ring version, member versions), and the nodes that may send.
    memo: HashMap<(u64, u64, usize), Arc<Pending>>,
    views: BTreeMap<u64, Arc<View>>,
    context_seed: [u8; 32],
    pub base: tokio::time::Instant,
}

fn addr(i: usize, port: u16) -> SocketAddr {
    let i = i as u32 + 1;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], port))
}

impl World {
    /// A cluster of `nodes` members that all know one state: a ring of every member, as the
    /// claimant would leave it once they had joined.
    pub fn new(cfg: WorldConfig, nodes: usize) -> World {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut context_seed = [0u8; 32];
        rng.fill(&mut context_seed);
        let mut w = World {
            now: 0,
            rng,
            nodes: Vec::new(),
            index: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            chains: BTreeSet::new(),
            marked_down: BTreeMap::new(),
            changes: Vec::new(),
            spreads: Vec::new(),
            traffic: Traffic::default(),
            ring_made: BTreeMap::new(),
            memo: HashMap::new(),
            views: BTreeMap::new(),
            context_seed,
            base: tokio::time::Instant::now(),
            cfg,
        };
        let ids: Vec<usize> = (0..nodes).map(|_| w.add_node()).collect();
        let mut members = BTreeMap::new();
        for &i in &ids {
            let mut m = w.nodes[i].member.clone();
            m.status = Status::Valid;
            members.insert(m.id.clone(), m);
        }
        let names: Vec<NodeId> = members.keys().cloned().collect();
        let state = Arc::new(ClusterState {
            members,
            ring: crate::ring::Ring::new(w.cfg.partitions, &names),
            context_seed: w.context_seed,
            flushes: Default::default(),
            scripting: Default::default(),
        });
        w.ring_made.insert(state.ring.version, 0);
        for &i in &ids {
            w.nodes[i].state = Some(state.clone());
            w.start_loops(i);
        }
        w
    }

    /// A new node process (not yet in the cluster): its id is 16 hex digits, as kura draws.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let id = format!("{:016x}", self.rng.gen::<u64>());
        let member = Member {
            id: id.clone(),
            addr: addr(i, 7379),
            client: addr(i, 6379),
            zone: None,
            status: Status::Joining,
            version: 1,
            holds_hints: false,
        };
        let hb_phase = self.rng.gen_range(0..us(HEARTBEAT_EVERY));
        self.nodes.push(SimNode {
            id: id.clone(),
            member,
            state: None,
            detector: Detector::new(SILENCE),
            alive: true,
            running: HashSet::new(),
            hb_phase,
            seen: None,
        });
        self.index.insert(id, i);
        i
    }

    fn start_loops(&mut self, i: usize) {
        let g = self.rng.gen_range(0..us(GOSSIP_EVERY));
        self.at(self.now + g, Ev::GossipTick(i));
        if self.cfg.claims {
            let c = self.rng.gen_range(0..us(CLAIM_EVERY));
            self.at(self.now + c, Ev::ClaimTick(i));
            let t = self.rng.gen_range(0..us(crate::handoff::transfer::EVERY));
            self.at(self.now + t, Ev::TransferTick(i));
        }
    }

    fn at(&mut self, at: Micros, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Entry { at, seq: self.seq, ev }));
    }

    /// Runs `f` at simulated time `at`.
    pub fn call_at(&mut self, at: Micros, f: impl FnOnce(&mut World) + 'static) {
        self.at(at, Ev::Call(Call(Box::new(f))));
    }

    /// Runs events until `until`.
    pub fn run_until(&mut self, until: Micros) {
        while let Some(Reverse(e)) = self.queue.peek() {
            if e.at > until {
                break;
            }
            let Some(Reverse(e)) = self.queue.pop() else { break };
            self.now = e.at;
            self.handle(e.ev);
        }
        self.now = self.now.max(until);
    }

    /// Runs until `done` holds (checked every 100 ms of simulated time) or `limit` passes.
    /// Returns whether it held.
    pub fn run_while_not(&mut self, limit: Micros, done: impl Fn(&World) -> bool) -> bool {
        while self.now < limit {
            if done(self) {
                return true;
            }
            self.run_until(self.now + 100_000);
            self.check_spreads();
        }
        done(self)
    }

    pub fn instant(&self, at: Micros) -> tokio::time::Instant {
        self.base + Duration::from_micros(at)
    }

    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.nodes[a].alive && self.nodes[b].alive && self.cut.contains(&a) == self.cut.contains(&b)
    }

    fn delay(&mut self) -> Micros {
        let (lo, hi) = self.cfg.delay;
        self.rng.gen_range(lo..=hi)
    }

    /// Sends a state from `from` to `to` (dropped if they cannot reach each other).
    fn send_state(&mut self, from: usize, to: usize, state: Arc<ClusterState>, answer: bool) {
        if !self.reachable(from, to) {
            self.traffic.dropped += 1;
            return;
        }
        let d = self.delay();
        self.at(self.now + d, Ev::State { to, from, state, answer });
    }

    /// `Cluster::merge` at node `i`: the same merge; a node without a state adopts one that
    /// names it. A merged state equal to the one merged is shared, so that a merge of two
    /// identical states (most gossip, once a change has spread) is skipped: it changes nothing.
    pub fn merge_at(&mut self, i: usize, other: &Arc<ClusterState>) -> bool {
        let node = &mut self.nodes[i];
        let changed = match &mut node.state {
            Some(s) if Arc::ptr_eq(s, other) => false,
            Some(s) if s.context_seed != other.context_seed => false,
            Some(s) if !s.would_change(other) => false,
            Some(s) => {
                let mut mine = (**s).clone();
                mine.merge(other);
                *s = if mine == **other { other.clone() } else { Arc::new(mine) };
                true
            }
            None if other.members.contains_key(&node.id) => {
                node.state = Some(other.clone());
                true
            }
            None => false,
        };
        if changed {
            self.after_change(i);
        }
        changed
    }

    /// A node that sees itself removed stops (its process ends; it holds nothing).
    fn after_change(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let gone =
            node.state.as_ref().and_then(|s| s.members.get(&node.id)).is_some_and(|m| m.status == Status::Removed);
        if gone && node.alive {
            node.alive = false;
            node.running.clear();
        }
    }

    /// Installs a state this node made and, as `Cluster::change` does, pushes it to every
    /// other member it sees up.
    fn install_and_push(&mut self, i: usize, state: ClusterState) {
        let state = Arc::new(state);
        self.nodes[i].state = Some(state.clone());
        self.after_change(i);
        if !self.cfg.push {
            return;
        }
        let me = self.nodes[i].id.clone();
        let targets: Vec<usize> = state
            .others(&me)
            .filter(|m| self.nodes[i].detector.is_up(&m.id))
            .filter_map(|m| self.index.get(&m.id).copied())
            .collect();
        for t in targets {
            self.traffic.push += 1;
            self.send_state(i, t, state.clone(), true);
        }
    }

    fn up_at(&self, i: usize) -> impl Fn(&NodeId) -> bool + '_ {
        move |id: &NodeId| *id == self.nodes[i].id || self.nodes[i].detector.is_up(id)
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::GossipTick(i) => {
                if !self.nodes[i].alive {
                    return;
                }
                self.at(self.now + us(GOSSIP_EVERY), Ev::GossipTick(i));
                let Some(state) = self.nodes[i].state.clone() else { return };
                // `gossip_loop`: one random member other than this one, not removed.
                let others: Vec<&Member> = state.others(&self.nodes[i].id).collect();
                if others.is_empty() {
                    return;
                }
                let peer = others[self.rng.gen_range(0..others.len())].id.clone();
                if let Some(&j) = self.index.get(&peer) {
                    self.traffic.gossip += 1;
                    self.send_state(i, j, state, true);
                }
            }
            Ev::State { to, from, state, answer } => {
                if !self.nodes[to].alive {
                    return;
                }
                // A message from a peer is an answer as far as the detector goes.
                let now = self.instant(self.now);
                let from_id = self.nodes[from].id.clone();
                self.nodes[to].detector.ok(&from_id, now);
                self.merge_at(to, &state);
                if answer {
                    if let Some(mine) = self.nodes[to].state.clone() {
                        self.traffic.replies += 1;
                        self.send_state(to, from, mine, false);
                    }
                }
            }
            Ev::Join { seed, joiner } => {
                if !self.nodes[seed].alive {
                    return;
                }
                let Some(mut state) = self.nodes[seed].state.as_deref().cloned() else { return };
                // `Cluster::admit`: saved, not pushed; gossip spreads it.
                let member = self.nodes[joiner].member.clone();
                if state.admit(member.clone()) {
                    let state = Arc::new(state);
                    self.nodes[seed].state = Some(state.clone());
                    self.spreads.push(Spread {
                        news: News::Member(member.id.clone(), member.version),
                        made: self.now,
                        everywhere: None,
                    });
                    self.send_state(seed, joiner, state, false);
                    self.start_loops(joiner);
                }
            }
            Ev::ClaimTick(i) => {
                if !self.nodes[i].alive {
                    return;
                }
                self.at(self.now + us(CLAIM_EVERY), Ev::ClaimTick(i));
                self.claim_step(i);
            }
            Ev::TransferTick(i) => {
                if !self.nodes[i].alive {
                    return;
                }
                self.at(self.now + us(crate::handoff::transfer::EVERY), Ev::TransferTick(i));
                self.transfer_step(i);
            }
            Ev::TransferEnd { node, t } => {
                if !self.nodes[node].alive {
                    return;
                }
                self.nodes[node].running.remove(&t);
                let to = self.index.get(&t.to).copied();
                let delivered = to.is_some_and(|to| self.reachable(node, to));
                let claimant = self.nodes[node].state.as_ref().and_then(|s| s.claimant().cloned());
                let claimant = claimant.and_then(|c| self.index.get(&c).copied());
                match claimant {
                    Some(c) if delivered && c == node => self.on_transfer_done(c, node, t),
                    Some(c) if delivered && self.reachable(node, c) => {
                        self.traffic.transfer_reports += 1;
                        let d = self.delay();
                        self.at(self.now + d, Ev::TransferDone { claimant: c, from: node, t });
                    }
                    // Failed: tried again from the start at a later round.
                    _ => {}
                }
                self.transfer_step(node);
            }
            Ev::TransferDone { claimant, from, t } => {
                if self.nodes[claimant].alive {
                    self.on_transfer_done(claimant, from, t);
                }
            }
            Ev::HbSend { a, b } => self.heartbeat(a, b),
            Ev::HbFail { a, b } => {
                if !self.nodes[a].alive {
                    return;
                }
                let now = self.instant(self.now);
                let id = self.nodes[b].id.clone();
                if self.nodes[a].detector.failed(&id, now) {
                    self.marked_down.entry(b).or_default().insert(a, self.now);
                }
            }
            Ev::Call(Call(f)) => f(self),
        }
    }

    /// What node `i`'s rounds need of its state: whether it is the claimant, and the key of
    /// its pending transfers.
    fn seen(&mut self, i: usize) -> Option<Seen> {
        let state = self.nodes[i].state.clone()?;
        if let Some(seen) = &self.nodes[i].seen {
            if Arc::ptr_eq(&seen.0, &state) {
                return Some(seen.clone());
            }
        }
        let claimant = state.claimant() == Some(&self.nodes[i].id);
        let key = (state.ring.version, state.members.values().map(|m| m.version).sum::<u64>(), state.members.len());
        let seen = (state, claimant, key);
        self.nodes[i].seen = Some(seen.clone());
        Some(seen)
    }

    /// `claim_loop`'s round at node `i`.
    fn claim_step(&mut self, i: usize) {
        let Some((state, claimant, _)) = self.seen(i) else { return };
        if !claimant {
            return;
        }
        let Some(next) = state.next(self.cfg.n, &self.up_at(i)) else { return };
        self.record_change(&state, &next);
        self.install_and_push(i, next);
    }

    fn record_change(&mut self, old: &ClusterState, next: &ClusterState) {
        if next.ring.version != old.ring.version {
            self.ring_made.insert(next.ring.version, self.now);
            self.spreads.push(Spread { news: News::Ring(next.ring.version), made: self.now, everywhere: None });
        }
        if !old.ring.in_transition() && next.ring.in_transition() {
            let placed = next.placeable();
            let future = next.ring.future();
            let counts = future.ownership();
            let per: Vec<usize> = placed.iter().map(|m| counts.get(m).copied().unwrap_or(0)).collect();
            let spread = per.iter().max().unwrap_or(&0) - per.iter().min().unwrap_or(&0);
            let joined = old.members.values().filter(|m| m.status == Status::Joining).count();
            let left = old.ring.owners().iter().filter(|o| !placed.contains(o)).count();
            let pending = next.pending_transfers(self.cfg.n);
            let plan = pending
                .iter()
                .filter_map(|t| {
                    let from = next.transfer_source(t.partition, self.cfg.n, &|_| true)?;
                    Some((t.partition, t.to.clone(), from))
                })
                .collect();
            self.changes.push(RingChange {
                at: self.now,
                version: next.ring.version,
                members: placed.len(),
                joined,
                left,
                moved: next.ring.partitions.iter().filter(|p| p.next.is_some()).count(),
                transfers: pending.len(),
                spread,
                flipped: None,
                plan,
            });
        }
        if old.ring.in_transition() && !next.ring.in_transition() {
            if let Some(c) = self.changes.last_mut() {
                c.flipped.get_or_insert(self.now);
            }
        }
    }

    /// At the claimant: a transfer finished (`Cluster::on_transfer_done`), answered with its
    /// state (the sender merges it).
    fn on_transfer_done(&mut self, c: usize, from: usize, t: Transfer) {
        let Some(state) = self.nodes[c].state.clone() else { return };
        if state.claimant() != Some(&self.nodes[c].id) {
            return;
        }
        let mut next = (*state).clone();
        if next.transfer_done(t.partition, &t.to, self.cfg.n) {
            self.record_change(&state, &next);
            self.install_and_push(c, next);
        }
        if from != c {
            if let Some(mine) = self.nodes[c].state.clone() {
                self.send_state(c, from, mine, false);
            }
        }
    }

    /// The transfer loop's round at node `i` (`handoff/transfer.rs`): starts what
    /// `transfers_to_start` says; a transfer ends after its bytes at the stream rate.
    fn transfer_step(&mut self, i: usize) {
        let Some((state, _, key)) = self.seen(i) else { return };
        if !state.ring.in_transition() {
            return;
        }
        let n = self.cfg.n;
        let memo = self
            .memo
            .entry(key)
            .or_insert_with(|| {
                let pending = state.pending_transfers(n);
                // A node sends only partitions it replicates now: the others have nothing to do.
                let zone_of = |_: &NodeId| None;
                let senders = pending
                    .iter()
                    .flat_map(|t| state.ring.preference_list_in(t.partition, n, &zone_of, &[None]))
                    .collect();
                Arc::new((pending, senders))
            })
            .clone();
        if self.memo.len() > 4096 {
            self.memo.clear();
        }
        if !memo.1.contains(&self.nodes[i].id) {
            return;
        }
        let me = self.nodes[i].id.clone();
        let start =
            state.transfers_to_start(&memo.0, n, &me, &self.nodes[i].running, self.cfg.transfer_limit, &self.up_at(i));
        for t in start {
            self.nodes[i].running.insert(t.clone());
            let secs = self.cfg.partition_bytes as f64 / self.cfg.stream_rate;
            self.at(self.now + (secs * 1e6) as Micros, Ev::TransferEnd { node: i, t });
        }
    }

    /// A heartbeat from `a` to `b`, which did not answer lately: it fails after the heartbeat
    /// timeout, or `b` answers and the chain ends (the heartbeats that follow are answered).
    fn heartbeat(&mut self, a: usize, b: usize) {
        let known =
            self.nodes[a].state.as_ref().is_some_and(|s| s.others(&self.nodes[a].id).any(|m| m.id == self.nodes[b].id));
        if !self.nodes[a].alive || !known {
            self.chains.remove(&(a, b));
            return;
        }
        self.traffic.heartbeats_to_silent += 1;
        if self.reachable(a, b) {
            let d = 2 * self.delay();
            let at = self.instant(self.now + d);
            let id = self.nodes[b].id.clone();
            self.nodes[a].detector.ok(&id, at);
            self.chains.remove(&(a, b));
            return;
        }
        self.at(self.now + us(HEARTBEAT_TIMEOUT), Ev::HbFail { a, b });
        self.at(self.now + us(HEARTBEAT_EVERY), Ev::HbSend { a, b });
    }

    /// `b` stops answering `a` now: `a`'s heartbeats to it are simulated from here on. If
    /// `answered`, `a` heard from it at its last heartbeat before now.
    pub fn lose_touch(&mut self, a: usize, b: usize, answered: bool) {
        if a == b || !self.chains.insert((a, b)) {
            return;
        }
        let every = us(HEARTBEAT_EVERY);
        let phase = self.nodes[a].hb_phase;
        let k = self.now.saturating_sub(phase) / every;
        let last = phase + k * every;
        if answered && last + 1_000 < self.now {
            let at = self.instant(last + 1_000);
            let id = self.nodes[b].id.clone();
            self.nodes[a].detector.ok(&id, at);
        }
        self.at(last + every, Ev::HbSend { a, b });
    }

    /// Every running member that knows a silent member and is not yet sending it heartbeats
    /// starts (a node that joined after the silence began).
    pub fn sweep_heartbeats(&mut self) {
        let silent: Vec<usize> = (0..self.nodes.len()).filter(|&b| !self.nodes[b].alive).collect();
        let cut: Vec<usize> = self.cut.iter().copied().collect();
        for a in 0..self.nodes.len() {
            if !self.nodes[a].alive || self.nodes[a].state.is_none() {
                continue;
            }
            let targets: Vec<usize> = {
                let s = self.nodes[a].state.as_ref().expect("checked");
                let me = &self.nodes[a].id;
                let mut t: Vec<usize> = silent
                    .iter()
                    .copied()
                    .filter(|&b| {
                        s.members.get(&self.nodes[b].id).is_some_and(|m| m.status != Status::Removed && &m.id != me)
                    })
                    .collect();
                if !cut.is_empty() {
                    t.extend(
                        s.others(me)
                            .filter_map(|m| self.index.get(&m.id).copied())
                            .filter(|&b| self.nodes[b].alive && !self.reachable(a, b)),
                    );
                }
                t
            };
            for b in targets {
                self.lose_touch(a, b, false);
            }
        }
    }

    /// Node `b` crashes.
    pub fn crash(&mut self, b: usize) {
        self.nodes[b].alive = false;
        self.nodes[b].running.clear();
        let knowers: Vec<usize> = (0..self.nodes.len()).filter(|&a| a != b && self.nodes[a].alive).collect();
        let id = self.nodes[b].id.clone();
        for a in knowers {
            // A member that had it down already (it was cut off from it) has it down now.
            if !self.nodes[a].detector.is_up(&id) {
                self.marked_down.entry(b).or_default().insert(a, self.now);
            }
            self.lose_touch(a, b, true);
        }
    }

    /// Cuts `group` off from the rest until `heal`.
    pub fn cut_off(&mut self, group: BTreeSet<usize>) {
        self.cut = group;
        let all: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].alive).collect();
        for &a in &all {
            for &b in &all {
                if a != b && !self.reachable(a, b) {
                    self.lose_touch(a, b, true);
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// A new node joins through `seed` (`Request::Join`).
    pub fn join(&mut self, seed: usize) -> usize {
        let joiner = self.add_node();
        let d = self.delay();
        self.at(self.now + d, Ev::Join { seed, joiner });
        joiner
    }

    /// `KURA LEAVE` at node `i`.
    pub fn leave(&mut self, i: usize) {
        let Some(mut state) = self.nodes[i].state.as_deref().cloned() else { return };
        let id = self.nodes[i].id.clone();
        if state.leave(&id, false) == Some(true) {
            let v = state.members[&id].version;
            self.spreads.push(Spread { news: News::Member(id, v), made: self.now, everywhere: None });
            self.install_and_push(i, state);
        }
    }

    /// `KURA REMOVE id` sent to node `at`.
    pub fn remove(&mut self, at: usize, gone: usize) {
        let Some(mut state) = self.nodes[at].state.as_deref().cloned() else { return };
        let id = self.nodes[gone].id.clone();
        if state.remove(&id) == Some(true) {
            let v = state.members[&id].version;
            self.spreads.push(Spread { news: News::Member(id, v), made: self.now, everywhere: None });
            self.install_and_push(at, state);
        }
    }

    /// Whether node `i` has `news`.
    fn has(&self, i: usize, news: &News) -> bool {
        let Some(s) = &self.nodes[i].state else { return false };
        match news {
            News::Ring(v) => s.ring.version >= *v,
            News::Member(id, v) => s.members.get(id).is_some_and(|m| m.version >= *v),
        }
    }

    /// Marks the news every member now has.
    pub fn check_spreads(&mut self) {
        let members: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].in_cluster()).collect();
        let now = self.now;
        let mut done = Vec::new();
        for (k, s) in self.spreads.iter().enumerate() {
            if s.everywhere.is_none() && members.iter().all(|&i| self.has(i, &s.news)) {
                done.push(k);
            }
        }
        for k in done {
            self.spreads[k].everywhere = Some(now);
        }
    }

    /// The members running now.
    pub fn running_members(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].in_cluster()).collect()
    }

    /// The newest ring any running node has.
    pub fn newest_ring(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.alive)
            .filter_map(|n| n.state.as_ref())
            .map(|s| s.ring.version)
            .max()
            .unwrap_or(0)
    }

    /// Whether the cluster is settled: no transition, no joining or leaving member, and every
    /// running member at the newest ring.
    pub fn settled(&self) -> bool {
        let newest = self.newest_ring();
        self.running_members().iter().all(|&i| {
            let s = self.nodes[i].state.as_ref().expect("a member has a state");
            s.ring.version == newest
                && !s.ring.in_transition()
                && s.members.values().all(|m| matches!(m.status, Status::Valid | Status::Removed))
        })
    }

    /// The placement view of node `i`'s ring, as the node builds it (one per ring version).
    pub fn view_of(&mut self, i: usize) -> Option<Arc<View>> {
        let state = self.nodes[i].state.clone()?;
        let v = state.ring.version;
        if let Some(view) = self.views.get(&v) {
            return Some(view.clone());
        }
        let view = Arc::new(View::new(Some((*state).clone()), self.cfg.n));
        self.views.insert(v, view.clone());
        while self.views.len() > 256 {
            self.views.pop_first();
        }
        Some(view)
    }
}
