//! The pure part of keyspace notifications: `notify-keyspace-events`' flag letters (parsed
//! and printed as Redis 7.0's `keyspaceEventsStringToFlags` / `keyspaceEventsFlagsToString`),
//! the classes events belong to, the channels an event goes to, and the events a
//! read-modify-write reports, from what it did (Redis 7.0's `notifyKeyspaceEvent` calls).

use bytes::{Bytes, BytesMut};

use crate::rmw::{Outcome, Rmw, ZRange};

/// `__keyspace@<db>__:<key>` messages (`K`).
pub const KEYSPACE: u32 = 1 << 0;
/// `__keyevent@<db>__:<event>` messages (`E`).
pub const KEYEVENT: u32 = 1 << 1;

/// The class of an event: which letter of `notify-keyspace-events` turns it on. The bits are
/// Redis's (`NOTIFY_*` in its server.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Class {
    /// `g`: DEL, EXPIRE, RENAME ... (commands of no one type).
    Generic = 1 << 2,
    /// `$`
    String = 1 << 3,
    /// `l`
    List = 1 << 4,
    /// `s`
    Set = 1 << 5,
    /// `h`
    Hash = 1 << 6,
    /// `z`
    Zset = 1 << 7,
    /// `x`: a key expired.
    Expired = 1 << 8,
    /// `e`: a key evicted (kura evicts nothing).
    Evicted = 1 << 9,
    /// `t`: stream commands.
    Stream = 1 << 10,
    /// `m`: a read missed (not part of `A`).
    KeyMiss = 1 << 11,
    /// `d`: module events (kura has no modules).
    Module = 1 << 13,
    /// `n`: a key was created (not part of `A`).
    New = 1 << 14,
}

impl Class {
    pub const fn bit(self) -> u32 {
        self as u32
    }
}

/// `A`: every class but `m` and `n`.
pub const ALL: u32 = Class::Generic.bit()
    | Class::String.bit()
    | Class::List.bit()
    | Class::Set.bit()
    | Class::Hash.bit()
    | Class::Zset.bit()
    | Class::Expired.bit()
    | Class::Evicted.bit()
    | Class::Stream.bit()
    | Class::Module.bit();

/// Redis's error text for a letter it does not know (after `CONFIG SET failed ... - `).
pub const INVALID: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// `notify-keyspace-events` as a set of bits (Redis's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u32);

impl Flags {
    /// Parses the letters as Redis does: any order, repeats allowed, `A` for the classes of
    /// [`ALL`]; `None` for any other character (the whole value is refused).
    pub fn parse(text: &[u8]) -> Option<Flags> {
        let mut bits = 0;
        for &c in text {
            bits |= match c {
                b'A' => ALL,
                b'g' => Class::Generic.bit(),
                b'$' => Class::String.bit(),
                b'l' => Class::List.bit(),
                b's' => Class::Set.bit(),
                b'h' => Class::Hash.bit(),
                b'z' => Class::Zset.bit(),
                b'x' => Class::Expired.bit(),
                b'e' => Class::Evicted.bit(),
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b't' => Class::Stream.bit(),
                b'm' => Class::KeyMiss.bit(),
                b'd' => Class::Module.bit(),
                b'n' => Class::New.bit(),
                _ => return None,
            };
        }
        Some(Flags(bits))
    }

    /// Whether an event of `class` is published at all: its class is on, and one of `K` and
    /// `E` is.
    pub fn wants(self, class: Class) -> bool {
        self.0 & class.bit() != 0 && self.0 & (KEYSPACE | KEYEVENT) != 0
    }
}

/// What CONFIG GET answers, as Redis prints it: `A` when every class of it is on (and then no
/// `n` even when it is on: Redis's quirk), else the class letters in Redis's order; then `K`,
/// `E` and `m`. `KEA` reads back as `AKE`.
impl std::fmt::Display for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bits = self.0;
        let mut out = String::new();
        if bits & ALL == ALL {
            out.push('A');
        } else {
            for (class, letter) in [
                (Class::Generic, 'g'),
                (Class::String, '$'),
                (Class::List, 'l'),
                (Class::Set, 's'),
                (Class::Hash, 'h'),
                (Class::Zset, 'z'),
                (Class::Expired, 'x'),
                (Class::Evicted, 'e'),
                (Class::Stream, 't'),
                (Class::Module, 'd'),
                (Class::New, 'n'),
            ] {
                if bits & class.bit() != 0 {
                    out.push(letter);
                }
            }
        }
        for (bit, letter) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (Class::KeyMiss.bit(), 'm')] {
            if bits & bit != 0 {
                out.push(letter);
            }
        }
        f.write_str(&out)
    }
}

/// The messages one event makes under `flags` (whose class is on): `(channel, message)` for
/// `__keyspace@<db>__:<key>` (the message is the event) and for `__keyevent@<db>__:<event>`
/// (the message is the key), in that order, as Redis publishes them.
pub fn messages(flags: Flags, event: &'static str, db: u32, key: &Bytes) -> Vec<(Bytes, Bytes)> {
    let db = db.to_string();
    let channel = |kind: &str, name: &[u8]| {
        let mut c = BytesMut::with_capacity(2 + kind.len() + 1 + db.len() + 3 + name.len());
        c.extend_from_slice(b"__");
        c.extend_from_slice(kind.as_bytes());
        c.extend_from_slice(b"@");
        c.extend_from_slice(db.as_bytes());
        c.extend_from_slice(b"__:");
        c.extend_from_slice(name);
        c.freeze()
    };
    let mut out = Vec::with_capacity(2);
    if flags.0 & KEYSPACE != 0 {
        out.push((channel("keyspace", key), Bytes::from_static(event.as_bytes())));
    }
    if flags.0 & KEYEVENT != 0 {
        out.push((channel("keyevent", event.as_bytes()), key.clone()));
    }
    out
}

/// What a read-modify-write reports, by its kind (taken before the operation moves into the
/// coordinator; no copy of its arguments): see [`Effect::events`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The command reports its own events (RENAME's, COPY's and the STORE commands' writes).
    Own,
    /// SET with options, GETSET, SETNX (`expire`: it set an expiry).
    Set {
        expire: bool,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (`persist` false) and PERSIST.
    Expire {
        persist: bool,
    },
    /// GETEX with an option.
    GetEx {
        persist: bool,
    },
    /// DEL, UNLINK, GETDEL (and a STORE whose result is empty, RESTORE's delete).
    Del,
    Append,
    SetRange,
    /// SETBIT (`on`: the bit it sets).
    SetBit {
        on: bool,
    },
    /// BITFIELD: the command reports (which subcommands wrote is its to tell).
    BitField,
    IncrBy,
    IncrByFloat,
    PfAdd,
    PfMerge,
    SAdd,
    SRem,
    SPop,
    HSet,
    HDel,
    HIncrBy,
    HIncrByFloat,
    Push {
        head: bool,
    },
    Pop {
        head: bool,
    },
    LSet,
    LInsert,
    LRem,
    LTrim,
    ZAdd {
        incr: bool,
    },
    ZRem,
    ZPop {
        max: bool,
    },
    ZRemRange {
        by: &'static str,
    },
}

impl Effect {
    /// The kind of `op`. A new operation gets its arm here (a stream's: `Effect::Own`, its
    /// command reporting through `Notifier::stream`).
    pub fn of(op: &Rmw) -> Effect {
        match op {
            Rmw::Set { expires_ms, keep_ttl, .. } => Effect::Set { expire: expires_ms.is_some() && !keep_ttl },
            Rmw::Expire { at_ms, .. } => Effect::Expire { persist: at_ms.is_none() },
            Rmw::GetEx { expiry } => Effect::GetEx { persist: matches!(expiry, Some(None)) },
            Rmw::GetDel | Rmw::Del => Effect::Del,
            Rmw::Append { .. } => Effect::Append,
            Rmw::SetRange { .. } => Effect::SetRange,
            Rmw::SetBit { on, .. } => Effect::SetBit { on: *on },
            Rmw::BitField { .. } => Effect::BitField,
            Rmw::IncrBy { .. } => Effect::IncrBy,
            Rmw::IncrByFloat { .. } => Effect::IncrByFloat,
            Rmw::PfAdd { .. } => Effect::PfAdd,
            Rmw::PfMerge { .. } => Effect::PfMerge,
            Rmw::SAdd { .. } => Effect::SAdd,
            Rmw::SRem { .. } => Effect::SRem,
            Rmw::SPop { .. } => Effect::SPop,
            Rmw::HSet { .. } => Effect::HSet,
            Rmw::HDel { .. } => Effect::HDel,
            Rmw::HIncrBy { .. } => Effect::HIncrBy,
            Rmw::HIncrByFloat { .. } => Effect::HIncrByFloat,
            Rmw::Push { head, .. } => Effect::Push { head: *head },
            Rmw::Pop { head, .. } => Effect::Pop { head: *head },
            Rmw::LSet { .. } => Effect::LSet,
            Rmw::LInsert { .. } => Effect::LInsert,
            Rmw::LRem { .. } => Effect::LRem,
            Rmw::LTrim { .. } => Effect::LTrim,
            Rmw::ZAdd { flags, .. } => Effect::ZAdd { incr: flags.incr },
            Rmw::ZRem { .. } => Effect::ZRem,
            Rmw::ZPop { max, .. } => Effect::ZPop { max: *max },
            Rmw::ZRemRange { range } => Effect::ZRemRange {
                by: match range {
                    ZRange::Rank(..) => "zremrangebyrank",
                    ZRange::Score(..) => "zremrangebyscore",
                    ZRange::Lex(..) => "zremrangebylex",
                },
            },
            Rmw::Store { .. } | Rmw::Stream(_) => Effect::Own,
        }
    }

    /// The events, in Redis's order, of an operation of this kind that came to `o` (a
    /// command that changed nothing reports nothing). A collection's `len` is its size
    /// before (so a removal that took every member also reports `del`); an EXPIRE or GETEX
    /// that deleted the key (a time not in the future) has `int` 1.
    pub fn events(self, o: &Outcome) -> Vec<(Class, &'static str)> {
        use Class::{Generic, Hash, List, Set, String, Zset};
        let del = (Generic, "del");
        // A removal of `n` members from a collection of `o.len`: its event, and `del` when
        // it emptied the key.
        let removed = |class: Class, name: &'static str, n: u64| match n {
            0 => vec![],
            n if n >= o.len => vec![(class, name), del],
            _ => vec![(class, name)],
        };
        let popped = o.members.len() as u64;
        let int = u64::try_from(o.int).unwrap_or(0);
        let when = |applied: bool, event: (Class, &'static str)| if applied { vec![event] } else { vec![] };
        match self {
            Effect::Own | Effect::BitField => vec![],
            Effect::Set { expire } if o.applied && expire => vec![(String, "set"), (Generic, "expire")],
            Effect::Set { .. } => when(o.applied, (String, "set")),
            Effect::Expire { .. } | Effect::GetEx { .. } if o.applied && o.int == 1 => vec![del],
            Effect::Expire { persist: true } | Effect::GetEx { persist: true } => when(o.applied, (Generic, "persist")),
            Effect::Expire { persist: false } | Effect::GetEx { persist: false } => {
                when(o.applied, (Generic, "expire"))
            }
            Effect::Del => when(o.applied, del),
            Effect::Append => vec![(String, "append")],
            Effect::SetRange => when(o.applied, (String, "setrange")),
            Effect::SetBit { on } => {
                // Redis's rule: the key was made, or grew, or the bit changed.
                let before = o.old.as_ref().map(Bytes::len);
                let changed = before.is_none_or(|b| (b as u64) < o.len) || (o.int == 1) != on;
                when(changed, (String, "setbit"))
            }
            Effect::IncrBy => vec![(String, "incrby")],
            Effect::IncrByFloat => vec![(String, "incrbyfloat")],
            Effect::PfAdd => when(o.applied, (String, "pfadd")),
            Effect::PfMerge => vec![(String, "pfadd")],
            Effect::SAdd => when(o.int > 0, (Set, "sadd")),
            Effect::SRem => removed(Set, "srem", int),
            Effect::SPop => removed(Set, "spop", popped),
            Effect::HSet => when(o.applied, (Hash, "hset")),
            Effect::HDel => removed(Hash, "hdel", int),
            Effect::HIncrBy => vec![(Hash, "hincrby")],
            Effect::HIncrByFloat => vec![(Hash, "hincrbyfloat")],
            Effect::Push { head } => when(o.applied, (List, if head { "lpush" } else { "rpush" })),
            Effect::Pop { head } => removed(List, if head { "lpop" } else { "rpop" }, popped),
            Effect::LSet => vec![(List, "lset")],
            Effect::LInsert => when(o.applied, (List, "linsert")),
            Effect::LRem => removed(List, "lrem", int),
            // LTRIM reports even when it removed nothing (of a list that exists).
            Effect::LTrim if o.len == 0 => vec![],
            Effect::LTrim if int >= o.len => vec![(List, "ltrim"), del],
            Effect::LTrim => vec![(List, "ltrim")],
            Effect::ZAdd { incr } => when(o.applied, (Zset, if incr { "zincr" } else { "zadd" })),
            Effect::ZRem => removed(Zset, "zrem", int),
            Effect::ZPop { max } => removed(Zset, if max { "zpopmax" } else { "zpopmin" }, popped),
            Effect::ZRemRange { by } => removed(Zset, by, int),
        }
    }
}

/// The event of a STORE command at its destination: the command's (`sinterstore`,
/// `zunionstore`, `georadiusstore` ...) when it stored members, `del` when an empty result
/// deleted what was there (`deleted`), nothing otherwise.
pub fn stored(event: &'static str, class: Class, members: usize, deleted: bool) -> Option<(Class, &'static str)> {
    if members > 0 {
        Some((class, event))
    } else {
        deleted.then_some((Class::Generic, "del"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        Flags::parse(text.as_bytes()).expect("valid").to_string()
    }

    /// What redis-server 7.0.15 answers to CONFIG GET after CONFIG SET of each.
    #[test]
    fn flags_read_back_as_redis_prints_them() {
        for (set, got) in [
            ("KEA", "AKE"),
            ("KEAn", "AKE"),
            ("gK", "gK"),
            ("mlK", "lKm"),
            ("", ""),
            ("x", "x"),
            ("g$lshzxetdKE", "AKE"),
            ("EK", "KE"),
            ("Kn", "nK"),
            ("ntdezK$", "$zetdnK"),
            ("AAA", "A"),
        ] {
            assert_eq!(shown(set), got, "{set}");
        }
        assert_eq!(Flags::parse(b"KQ"), None);
        assert_eq!(Flags::parse(b"KEA "), None);
        assert_eq!(Flags::parse(b"a"), None);
        // `n` is kept though `A` hides it.
        assert!(Flags::parse(b"KEAn").unwrap().wants(Class::New));
    }

    #[test]
    fn classes_filter_and_need_k_or_e() {
        let f = Flags::parse(b"Kl").unwrap();
        assert!(f.wants(Class::List));
        assert!(!f.wants(Class::Generic) && !f.wants(Class::String) && !f.wants(Class::Expired));
        assert!(!Flags::parse(b"A").unwrap().wants(Class::List), "no K or E: nothing");
        let all = Flags::parse(b"KEA").unwrap();
        assert!(!all.wants(Class::KeyMiss) && !all.wants(Class::New), "A leaves out m and n");
        assert!([Class::Generic, Class::Expired, Class::Stream, Class::Zset].iter().all(|&c| all.wants(c)));
        assert!(!Flags::default().wants(Class::Generic));
    }

    #[test]
    fn channels_and_messages() {
        let key = Bytes::from_static(b"user:1");
        let both = messages(Flags::parse(b"KEA").unwrap(), "set", 3, &key);
        assert_eq!(
            both,
            vec![
                (Bytes::from_static(b"__keyspace@3__:user:1"), Bytes::from_static(b"set")),
                (Bytes::from_static(b"__keyevent@3__:set"), key.clone()),
            ]
        );
        let events = messages(Flags::parse(b"Eg").unwrap(), "del", 0, &key);
        assert_eq!(events, vec![(Bytes::from_static(b"__keyevent@0__:del"), key.clone())]);
        assert_eq!(messages(Flags::parse(b"Kg").unwrap(), "del", 0, &key).len(), 1);
    }

    fn outcome(f: impl FnOnce(&mut Outcome)) -> Outcome {
        let mut o = Outcome::default();
        f(&mut o);
        o
    }

    #[test]
    fn removals_that_empty_a_key_also_report_del() {
        let srem = |n, len| Effect::SRem.events(&outcome(|o| (o.int, o.len) = (n, len)));
        assert_eq!(srem(0, 3), vec![]);
        assert_eq!(srem(1, 3), vec![(Class::Set, "srem")]);
        assert_eq!(srem(3, 3), vec![(Class::Set, "srem"), (Class::Generic, "del")]);
        let pop = |n: usize, len| {
            Effect::Pop { head: false }.events(&outcome(|o| (o.members, o.len) = (vec![Bytes::new(); n], len)))
        };
        assert_eq!(pop(0, 0), vec![]);
        assert_eq!(pop(2, 3), vec![(Class::List, "rpop")]);
        assert_eq!(pop(2, 2), vec![(Class::List, "rpop"), (Class::Generic, "del")]);
        let ltrim = |n, len| Effect::LTrim.events(&outcome(|o| (o.int, o.len) = (n, len)));
        assert_eq!(ltrim(0, 0), vec![], "no list");
        assert_eq!(ltrim(0, 4), vec![(Class::List, "ltrim")], "nothing removed still reports");
        assert_eq!(ltrim(4, 4), vec![(Class::List, "ltrim"), (Class::Generic, "del")]);
    }

    #[test]
    fn strings_and_expiries() {
        let applied = outcome(|o| o.applied = true);
        assert_eq!(
            Effect::Set { expire: true }.events(&applied),
            vec![(Class::String, "set"), (Class::Generic, "expire")]
        );
        assert_eq!(Effect::Set { expire: false }.events(&Outcome::default()), vec![]);
        assert_eq!(Effect::Expire { persist: false }.events(&applied), vec![(Class::Generic, "expire")]);
        assert_eq!(Effect::Expire { persist: true }.events(&applied), vec![(Class::Generic, "persist")]);
        let deleted = outcome(|o| (o.applied, o.int) = (true, 1));
        assert_eq!(Effect::Expire { persist: false }.events(&deleted), vec![(Class::Generic, "del")]);
        assert_eq!(Effect::GetEx { persist: false }.events(&deleted), vec![(Class::Generic, "del")]);
        // SETBIT: only when it made the key, grew it or changed the bit.
        let bit = |old: Option<&'static str>, len, was| {
            Effect::SetBit { on: true }.events(&outcome(|o| {
                o.old = old.map(|s: &'static str| Bytes::from_static(s.as_bytes()));
                o.len = len;
                o.int = was;
            }))
        };
        assert_eq!(bit(None, 1, 0), vec![(Class::String, "setbit")]);
        assert_eq!(bit(Some("a"), 1, 1), vec![]);
        assert_eq!(bit(Some("a"), 1, 0), vec![(Class::String, "setbit")]);
        assert_eq!(bit(Some("a"), 2, 1), vec![(Class::String, "setbit")]);
    }

    #[test]
    fn stores_report_their_event_or_del() {
        assert_eq!(stored("sinterstore", Class::Set, 2, true), Some((Class::Set, "sinterstore")));
        assert_eq!(stored("sinterstore", Class::Set, 0, true), Some((Class::Generic, "del")));
        assert_eq!(stored("sinterstore", Class::Set, 0, false), None);
    }
}
