//! The command table: every command's name, arity, flags, key positions and summary (what
//! COMMAND reports), and the properties dispatch needs (which commands touch only keys, which
//! run alone on a node alone, which run at once inside MULTI).

use bytes::Bytes;

/// What COMMAND reports of a command, in Redis's terms.
pub struct Spec {
    pub name: &'static str,
    /// Exact argument count including the name; negative: at least that many.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
    /// Usable before AUTH when a password is required.
    pub no_auth: bool,
}

macro_rules! commands {
    ($( $variant:ident => $name:literal, $arity:literal, [$($flag:literal),*], ($first:literal, $last:literal, $step:literal), $group:literal, $no_auth:literal, $summary:literal; )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Cmd { $($variant),* }

        pub const SPECS: &[Spec] = &[$(Spec {
            name: $name, arity: $arity, flags: &[$($flag),*], first_key: $first, last_key: $last,
            step: $step, group: $group, summary: $summary, no_auth: $no_auth,
        }),*];

        pub(super) const ALL: &[Cmd] = &[$(Cmd::$variant),*];
    };
}

commands! {
    Get => "get", 2, ["readonly", "fast"], (1, 1, 1), "string", false, "Returns the newest value of a key (last write wins among siblings).";
    Set => "set", -3, ["write", "denyoom"], (1, 1, 1), "string", false, "Sets the value of a key, superseding every version the coordinator holds.";
    Setex => "setex", 4, ["write", "denyoom"], (1, 1, 1), "string", false, "SET with an expiry in seconds.";
    Psetex => "psetex", 4, ["write", "denyoom"], (1, 1, 1), "string", false, "SET with an expiry in milliseconds.";
    Setnx => "setnx", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "SET if the key is missing; 1 if it was set.";
    Del => "del", -2, ["write"], (1, -1, 1), "keyspace", false, "Deletes keys (writes tombstones).";
    Unlink => "unlink", -2, ["write", "fast"], (1, -1, 1), "keyspace", false, "Deletes keys (as DEL: a tombstone write).";
    Type => "type", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "The type of the key's value: string, set, hash or none.";
    Touch => "touch", -2, ["readonly", "fast"], (1, -1, 1), "keyspace", false, "Counts the given keys that exist.";
    Expire => "expire", -3, ["write", "fast"], (1, 1, 1), "keyspace", false, "Sets a key's time to live in seconds [NX|XX|GT|LT].";
    Pexpire => "pexpire", -3, ["write", "fast"], (1, 1, 1), "keyspace", false, "Sets a key's time to live in milliseconds [NX|XX|GT|LT].";
    Expireat => "expireat", -3, ["write", "fast"], (1, 1, 1), "keyspace", false, "Sets a key's expiry as a Unix time in seconds [NX|XX|GT|LT].";
    Pexpireat => "pexpireat", -3, ["write", "fast"], (1, 1, 1), "keyspace", false, "Sets a key's expiry as a Unix time in milliseconds [NX|XX|GT|LT].";
    Persist => "persist", 2, ["write", "fast"], (1, 1, 1), "keyspace", false, "Removes a key's expiry.";
    Expiretime => "expiretime", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "A key's expiry as a Unix time in seconds (-1: none, -2: missing).";
    Pexpiretime => "pexpiretime", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "A key's expiry as a Unix time in milliseconds (-1: none, -2: missing).";
    Incr => "incr", 2, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Adds 1 to the key's counter (convergent: concurrent increments all count); the new value.";
    Decr => "decr", 2, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Subtracts 1 from the key's counter; the new value.";
    Incrby => "incrby", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Adds an integer to the key's counter; the new value.";
    Decrby => "decrby", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Subtracts an integer from the key's counter; the new value.";
    Incrbyfloat => "incrbyfloat", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Adds a float to the value (a rewrite: not convergent); the new value.";
    Pfadd => "pfadd", -2, ["write", "denyoom", "fast"], (1, 1, 1), "hyperloglog", false, "Adds elements to a HyperLogLog (convergent: registers merge by maximum); 1 if it changed.";
    Pfcount => "pfcount", -2, ["readonly"], (1, -1, 1), "hyperloglog", false, "The estimated number of distinct elements of the union of HyperLogLogs.";
    Pfmerge => "pfmerge", -2, ["write", "denyoom"], (1, -1, 1), "hyperloglog", false, "Merges HyperLogLogs into the first key.";
    Sadd => "sadd", -3, ["write", "denyoom", "fast"], (1, 1, 1), "set", false, "Adds members to a set (convergent: an observed-remove set); how many were new.";
    Srem => "srem", -3, ["write", "fast"], (1, 1, 1), "set", false, "Removes members from a set (those it observed; a concurrent add wins); how many it removed.";
    Smembers => "smembers", 2, ["readonly"], (1, 1, 1), "set", false, "Every member of a set.";
    Sismember => "sismember", 3, ["readonly", "fast"], (1, 1, 1), "set", false, "1 if the member is in the set.";
    Smismember => "smismember", -3, ["readonly", "fast"], (1, 1, 1), "set", false, "For each member, 1 if it is in the set.";
    Scard => "scard", 2, ["readonly", "fast"], (1, 1, 1), "set", false, "The number of members of a set.";
    Srandmember => "srandmember", -2, ["readonly"], (1, 1, 1), "set", false, "Random members of a set [count].";
    Spop => "spop", -2, ["write", "fast"], (1, 1, 1), "set", false, "Removes and returns random members of a set [count].";
    Smove => "smove", 4, ["write", "fast"], (1, 2, 1), "set", false, "Moves a member from one set to another (two writes in a cluster).";
    Sinter => "sinter", -2, ["readonly"], (1, -1, 1), "set", false, "The intersection of sets.";
    Sunion => "sunion", -2, ["readonly"], (1, -1, 1), "set", false, "The union of sets.";
    Sdiff => "sdiff", -2, ["readonly"], (1, -1, 1), "set", false, "The members of the first set in none of the others.";
    Sinterstore => "sinterstore", -3, ["write", "denyoom"], (1, -1, 1), "set", false, "Stores the intersection of sets; its size.";
    Sunionstore => "sunionstore", -3, ["write", "denyoom"], (1, -1, 1), "set", false, "Stores the union of sets; its size.";
    Sdiffstore => "sdiffstore", -3, ["write", "denyoom"], (1, -1, 1), "set", false, "Stores the difference of sets; its size.";
    Sintercard => "sintercard", -3, ["readonly", "movablekeys"], (2, -1, 1), "set", false, "The size of the intersection of sets: numkeys key [key ...] [LIMIT n].";
    Sscan => "sscan", -3, ["readonly"], (1, 1, 1), "set", false, "Walks a set's members: cursor [MATCH p] [COUNT n].";
    Hset => "hset", -4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", false, "Sets hash fields (convergent: an observed-remove map); how many were new.";
    Hmset => "hmset", -4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", false, "Sets hash fields (HSET's old form).";
    Hsetnx => "hsetnx", 4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", false, "Sets a hash field if it is missing.";
    Hget => "hget", 3, ["readonly", "fast"], (1, 1, 1), "hash", false, "The value of a hash field.";
    Hmget => "hmget", -3, ["readonly", "fast"], (1, 1, 1), "hash", false, "The values of hash fields.";
    Hgetall => "hgetall", 2, ["readonly"], (1, 1, 1), "hash", false, "Every field and value of a hash.";
    Hdel => "hdel", -3, ["write", "fast"], (1, 1, 1), "hash", false, "Removes hash fields (those it observed); how many it removed.";
    Hlen => "hlen", 2, ["readonly", "fast"], (1, 1, 1), "hash", false, "The number of fields of a hash.";
    Hexists => "hexists", 3, ["readonly", "fast"], (1, 1, 1), "hash", false, "1 if the hash has the field.";
    Hkeys => "hkeys", 2, ["readonly"], (1, 1, 1), "hash", false, "The fields of a hash.";
    Hvals => "hvals", 2, ["readonly"], (1, 1, 1), "hash", false, "The values of a hash.";
    Hstrlen => "hstrlen", 3, ["readonly", "fast"], (1, 1, 1), "hash", false, "The length of a hash field's value.";
    Hincrby => "hincrby", 4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", false, "Adds to a hash field's counter (convergent); the new value.";
    Hincrbyfloat => "hincrbyfloat", 4, ["write", "denyoom", "fast"], (1, 1, 1), "hash", false, "Adds a float to a hash field (a rewrite: not convergent); the new value.";
    Hrandfield => "hrandfield", -2, ["readonly"], (1, 1, 1), "hash", false, "Random fields of a hash [count [WITHVALUES]].";
    Hscan => "hscan", -3, ["readonly"], (1, 1, 1), "hash", false, "Walks a hash's fields: cursor [MATCH p] [COUNT n].";
    Lpush => "lpush", -3, ["write", "denyoom", "fast"], (1, 1, 1), "list", false, "Pushes elements at a list's head (convergent: a sequence CRDT); the new length.";
    Rpush => "rpush", -3, ["write", "denyoom", "fast"], (1, 1, 1), "list", false, "Pushes elements at a list's tail; the new length.";
    Lpushx => "lpushx", -3, ["write", "denyoom", "fast"], (1, 1, 1), "list", false, "LPUSH only when the list exists.";
    Rpushx => "rpushx", -3, ["write", "denyoom", "fast"], (1, 1, 1), "list", false, "RPUSH only when the list exists.";
    Lpop => "lpop", -2, ["write", "fast"], (1, 1, 1), "list", false, "Removes and returns elements at a list's head [count] (decided at the key's first owner).";
    Rpop => "rpop", -2, ["write", "fast"], (1, 1, 1), "list", false, "Removes and returns elements at a list's tail [count].";
    Llen => "llen", 2, ["readonly", "fast"], (1, 1, 1), "list", false, "The length of a list.";
    Lrange => "lrange", 4, ["readonly"], (1, 1, 1), "list", false, "Elements of a list by index range.";
    Lindex => "lindex", 3, ["readonly"], (1, 1, 1), "list", false, "The element at an index.";
    Lset => "lset", 4, ["write", "denyoom"], (1, 1, 1), "list", false, "Sets the element at an index (last write wins between concurrent sets).";
    Linsert => "linsert", 5, ["write", "denyoom"], (1, 1, 1), "list", false, "Inserts an element before or after a pivot element.";
    Lrem => "lrem", 4, ["write"], (1, 1, 1), "list", false, "Removes elements equal to a value.";
    Ltrim => "ltrim", 4, ["write"], (1, 1, 1), "list", false, "Trims a list to an index range.";
    Lpos => "lpos", -3, ["readonly"], (1, 1, 1), "list", false, "Indexes of elements equal to a value [RANK] [COUNT] [MAXLEN].";
    Lmove => "lmove", 5, ["write", "denyoom"], (1, 2, 1), "list", false, "Pops from one list and pushes to another (two writes in a cluster).";
    Rpoplpush => "rpoplpush", 3, ["write", "denyoom"], (1, 2, 1), "list", false, "LMOVE source destination RIGHT LEFT.";
    Lmpop => "lmpop", -4, ["write", "movablekeys"], (0, 0, 0), "list", false, "Pops from the first non-empty list of several.";
    Blpop => "blpop", -3, ["write", "noscript", "blocking"], (1, -2, 1), "list", false, "LPOP of the first non-empty list, waiting for one up to a timeout (a push through any node wakes it).";
    Brpop => "brpop", -3, ["write", "noscript", "blocking"], (1, -2, 1), "list", false, "RPOP of the first non-empty list, waiting for one up to a timeout.";
    Blmove => "blmove", 6, ["write", "denyoom", "noscript", "blocking"], (1, 2, 1), "list", false, "LMOVE, waiting for the source up to a timeout.";
    Brpoplpush => "brpoplpush", 4, ["write", "denyoom", "noscript", "blocking"], (1, 2, 1), "list", false, "RPOPLPUSH, waiting for the source up to a timeout.";
    Blmpop => "blmpop", -5, ["write", "blocking", "movablekeys"], (0, 0, 0), "list", false, "LMPOP, waiting up to a timeout.";
    Zadd => "zadd", -4, ["write", "denyoom", "fast"], (1, 1, 1), "sorted_set", false, "Adds members with scores [NX|XX] [GT|LT] [CH] [INCR] (convergent: observed-remove members, last-write-wins scores).";
    Zincrby => "zincrby", 4, ["write", "denyoom", "fast"], (1, 1, 1), "sorted_set", false, "Adds to a member's score (concurrent increments add up); the new score.";
    Zrem => "zrem", -3, ["write", "fast"], (1, 1, 1), "sorted_set", false, "Removes members.";
    Zcard => "zcard", 2, ["readonly", "fast"], (1, 1, 1), "sorted_set", false, "The number of members.";
    Zscore => "zscore", 3, ["readonly", "fast"], (1, 1, 1), "sorted_set", false, "A member's score.";
    Zmscore => "zmscore", -3, ["readonly", "fast"], (1, 1, 1), "sorted_set", false, "Members' scores.";
    Zrank => "zrank", 3, ["readonly", "fast"], (1, 1, 1), "sorted_set", false, "A member's rank by ascending score.";
    Zrevrank => "zrevrank", 3, ["readonly", "fast"], (1, 1, 1), "sorted_set", false, "A member's rank by descending score.";
    Zcount => "zcount", 4, ["readonly", "fast"], (1, 1, 1), "sorted_set", false, "The number of members in a score range.";
    Zlexcount => "zlexcount", 4, ["readonly", "fast"], (1, 1, 1), "sorted_set", false, "The number of members in a lexicographic range.";
    Zrange => "zrange", -4, ["readonly"], (1, 1, 1), "sorted_set", false, "Members by rank, score or lexicographic range [BYSCORE|BYLEX] [REV] [LIMIT] [WITHSCORES].";
    Zrangestore => "zrangestore", -5, ["write", "denyoom"], (1, 2, 1), "sorted_set", false, "Stores a range of a sorted set in another key.";
    Zrevrange => "zrevrange", -4, ["readonly"], (1, 1, 1), "sorted_set", false, "Members by rank, highest score first.";
    Zrangebyscore => "zrangebyscore", -4, ["readonly"], (1, 1, 1), "sorted_set", false, "Members in a score range.";
    Zrevrangebyscore => "zrevrangebyscore", -4, ["readonly"], (1, 1, 1), "sorted_set", false, "Members in a score range, highest first.";
    Zrangebylex => "zrangebylex", -4, ["readonly"], (1, 1, 1), "sorted_set", false, "Members in a lexicographic range.";
    Zrevrangebylex => "zrevrangebylex", -4, ["readonly"], (1, 1, 1), "sorted_set", false, "Members in a lexicographic range, reversed.";
    Zremrangebyrank => "zremrangebyrank", 4, ["write"], (1, 1, 1), "sorted_set", false, "Removes members by rank range.";
    Zremrangebyscore => "zremrangebyscore", 4, ["write"], (1, 1, 1), "sorted_set", false, "Removes members by score range.";
    Zremrangebylex => "zremrangebylex", 4, ["write"], (1, 1, 1), "sorted_set", false, "Removes members by lexicographic range.";
    Zpopmin => "zpopmin", -2, ["write", "fast"], (1, 1, 1), "sorted_set", false, "Removes and returns the lowest-scored members [count].";
    Zpopmax => "zpopmax", -2, ["write", "fast"], (1, 1, 1), "sorted_set", false, "Removes and returns the highest-scored members [count].";
    Zmpop => "zmpop", -4, ["write", "movablekeys"], (0, 0, 0), "sorted_set", false, "Pops from the first non-empty sorted set of several.";
    Bzpopmin => "bzpopmin", -3, ["write", "noscript", "blocking", "fast"], (1, -2, 1), "sorted_set", false, "ZPOPMIN of the first non-empty sorted set, waiting up to a timeout.";
    Bzpopmax => "bzpopmax", -3, ["write", "noscript", "blocking", "fast"], (1, -2, 1), "sorted_set", false, "ZPOPMAX of the first non-empty sorted set, waiting up to a timeout.";
    Bzmpop => "bzmpop", -5, ["write", "blocking", "movablekeys"], (0, 0, 0), "sorted_set", false, "ZMPOP, waiting up to a timeout.";
    Zrandmember => "zrandmember", -2, ["readonly"], (1, 1, 1), "sorted_set", false, "Random members [count [WITHSCORES]].";
    Zscan => "zscan", -3, ["readonly"], (1, 1, 1), "sorted_set", false, "Iterates members with their scores.";
    Zunion => "zunion", -3, ["readonly", "movablekeys"], (0, 0, 0), "sorted_set", false, "The union of sorted sets (and sets) [WEIGHTS] [AGGREGATE] [WITHSCORES].";
    Zinter => "zinter", -3, ["readonly", "movablekeys"], (0, 0, 0), "sorted_set", false, "The intersection of sorted sets [WEIGHTS] [AGGREGATE] [WITHSCORES].";
    Zdiff => "zdiff", -3, ["readonly", "movablekeys"], (0, 0, 0), "sorted_set", false, "The members of the first sorted set in none of the others [WITHSCORES].";
    Zunionstore => "zunionstore", -4, ["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted_set", false, "Stores the union of sorted sets.";
    Zinterstore => "zinterstore", -4, ["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted_set", false, "Stores the intersection of sorted sets.";
    Zdiffstore => "zdiffstore", -4, ["write", "denyoom", "movablekeys"], (1, 1, 1), "sorted_set", false, "Stores the difference of sorted sets.";
    Zintercard => "zintercard", -3, ["readonly", "movablekeys"], (0, 0, 0), "sorted_set", false, "The size of the intersection of sorted sets [LIMIT].";
    Xadd => "xadd", -5, ["write", "denyoom", "fast"], (1, 1, 1), "stream", false, "Appends an entry [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] <*|id> field value ... (convergent: entries of both sides of a partition all survive).";
    Xrange => "xrange", -4, ["readonly"], (1, 1, 1), "stream", false, "Entries in an ID range [COUNT n].";
    Xrevrange => "xrevrange", -4, ["readonly"], (1, 1, 1), "stream", false, "Entries in an ID range, last first [COUNT n].";
    Xlen => "xlen", 2, ["readonly", "fast"], (1, 1, 1), "stream", false, "The number of entries.";
    Xdel => "xdel", -3, ["write", "fast"], (1, 1, 1), "stream", false, "Removes entries by ID.";
    Xtrim => "xtrim", -4, ["write"], (1, 1, 1), "stream", false, "Trims a stream: MAXLEN|MINID [=|~] threshold [LIMIT n].";
    Xsetid => "xsetid", -3, ["write", "denyoom", "fast"], (1, 1, 1), "stream", false, "Sets a stream's last ID [ENTRIESADDED n] [MAXDELETEDID id].";
    Xread => "xread", -4, ["readonly", "blocking", "movablekeys"], (0, 0, 0), "stream", false, "Entries after IDs of several streams [COUNT n] [BLOCK ms] STREAMS key ... id ... (an XADD through any node wakes it).";
    Xreadgroup => "xreadgroup", -7, ["write", "blocking", "movablekeys"], (0, 0, 0), "stream", false, "Entries for a consumer of a group: GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...";
    Xgroup => "xgroup", -2, [], (0, 0, 0), "stream", false, "CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER, HELP of consumer groups.";
    Xack => "xack", -4, ["write", "fast"], (1, 1, 1), "stream", false, "Acknowledges deliveries of a group.";
    Xpending => "xpending", -3, ["readonly"], (1, 1, 1), "stream", false, "A group's pending deliveries: a summary, or [IDLE ms] start end count [consumer].";
    Xclaim => "xclaim", -6, ["write", "fast"], (1, 1, 1), "stream", false, "Takes pending deliveries over for a consumer [IDLE] [TIME] [RETRYCOUNT] [FORCE] [JUSTID] [LASTID].";
    Xautoclaim => "xautoclaim", -6, ["write", "fast"], (1, 1, 1), "stream", false, "XCLAIM of the deliveries idle long enough, from a start ID [COUNT n] [JUSTID].";
    Xinfo => "xinfo", -2, [], (0, 0, 0), "stream", false, "STREAM [FULL [COUNT n]], GROUPS, CONSUMERS, HELP.";
    Geoadd => "geoadd", -5, ["write", "denyoom"], (1, 1, 1), "geo", false, "Adds positions [NX|XX] [CH] longitude latitude member ... (a ZADD of their 52-bit geohash scores: convergent as sorted sets are).";
    Geopos => "geopos", -2, ["readonly"], (1, 1, 1), "geo", false, "Members' positions (their cells' centres).";
    Geodist => "geodist", -4, ["readonly"], (1, 1, 1), "geo", false, "The distance between two members [M|KM|FT|MI].";
    Geohash => "geohash", -2, ["readonly"], (1, 1, 1), "geo", false, "Members' positions as 11-character geohash strings.";
    Geosearch => "geosearch", -7, ["readonly"], (1, 1, 1), "geo", false, "Members within a radius or a box around a member or a position [ASC|DESC] [COUNT n [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH].";
    Geosearchstore => "geosearchstore", -8, ["write", "denyoom"], (1, 2, 1), "geo", false, "Stores GEOSEARCH's result in a sorted set [STOREDIST]; its size.";
    Georadius => "georadius", -6, ["write", "denyoom", "movablekeys"], (1, 1, 1), "geo", false, "Members within a radius of a position [STORE key|STOREDIST key] (GEOSEARCH's older form).";
    GeoradiusRo => "georadius_ro", -6, ["readonly"], (1, 1, 1), "geo", false, "GEORADIUS without STORE.";
    Georadiusbymember => "georadiusbymember", -5, ["write", "denyoom", "movablekeys"], (1, 1, 1), "geo", false, "Members within a radius of a member [STORE key|STOREDIST key].";
    GeoradiusbymemberRo => "georadiusbymember_ro", -5, ["readonly"], (1, 1, 1), "geo", false, "GEORADIUSBYMEMBER without STORE.";
    Getdel => "getdel", 2, ["write", "fast"], (1, 1, 1), "string", false, "Returns the value and deletes the key.";
    Getex => "getex", -2, ["write", "fast"], (1, 1, 1), "string", false, "Returns the value and sets or removes its expiry.";
    Getset => "getset", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Sets the value and returns the old one.";
    Append => "append", 3, ["write", "denyoom", "fast"], (1, 1, 1), "string", false, "Appends to the value; returns the new length.";
    Setbit => "setbit", 4, ["write", "denyoom"], (1, 1, 1), "bitmap", false, "Sets or clears the bit at an offset; returns the old bit.";
    Getbit => "getbit", 3, ["readonly", "fast"], (1, 1, 1), "bitmap", false, "The bit at an offset.";
    Bitcount => "bitcount", -2, ["readonly"], (1, 1, 1), "bitmap", false, "Counts set bits [start end [BYTE|BIT]].";
    Bitpos => "bitpos", -3, ["readonly"], (1, 1, 1), "bitmap", false, "The first bit set or clear [start [end [BYTE|BIT]]].";
    Bitop => "bitop", -4, ["write", "denyoom"], (2, -1, 1), "bitmap", false, "AND, OR, XOR or NOT of strings into a key; the result's length.";
    Bitfield => "bitfield", -2, ["write", "denyoom"], (1, 1, 1), "bitmap", false, "Gets, sets and increments integers of 1 to 64 bits at any offset [OVERFLOW WRAP|SAT|FAIL].";
    BitfieldRo => "bitfield_ro", -2, ["readonly", "fast"], (1, 1, 1), "bitmap", false, "BITFIELD with GET subcommands only.";
    Setrange => "setrange", 4, ["write", "denyoom"], (1, 1, 1), "string", false, "Overwrites part of the value from an offset; returns the new length.";
    Strlen => "strlen", 2, ["readonly", "fast"], (1, 1, 1), "string", false, "The length of the value.";
    Getrange => "getrange", 4, ["readonly"], (1, 1, 1), "string", false, "A substring of the value by byte offsets.";
    Substr => "substr", 4, ["readonly"], (1, 1, 1), "string", false, "GETRANGE's old name.";
    Ttl => "ttl", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "Seconds until the value expires (-1: no expiry, -2: missing).";
    Pttl => "pttl", 2, ["readonly", "fast"], (1, 1, 1), "keyspace", false, "Milliseconds until the value expires (-1: no expiry, -2: missing).";
    Exists => "exists", -2, ["readonly", "fast"], (1, -1, 1), "keyspace", false, "Counts the given keys that exist.";
    Mget => "mget", -2, ["readonly", "fast"], (1, -1, 1), "string", false, "Returns the values of several keys.";
    Mset => "mset", -3, ["write", "denyoom"], (1, -1, 2), "string", false, "Sets several keys (atomic on one node, and over keys of one hash tag in a cluster).";
    Msetnx => "msetnx", -3, ["write", "denyoom"], (1, -1, 2), "string", false, "Sets several keys if none exists (atomic on one node, and over keys of one hash tag in a cluster).";
    Rename => "rename", 3, ["write"], (1, 2, 1), "keyspace", false, "Renames a key (atomic on one node).";
    Renamenx => "renamenx", 3, ["write", "fast"], (1, 2, 1), "keyspace", false, "Renames a key if the new name is free (atomic on one node).";
    Copy => "copy", -3, ["write", "denyoom"], (1, 2, 1), "keyspace", false, "Copies a key's value and expiry [DB 0] [REPLACE].";
    Dump => "dump", 2, ["readonly"], (1, 1, 1), "keyspace", false, "The key's value serialized as Redis 7.0's DUMP makes it (RDB version 10), or nil.";
    Restore => "restore", -4, ["write", "denyoom"], (1, 1, 1), "keyspace", false, "Writes a key anew from a DUMP payload: ttl (ms, 0: none) [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f].";
    Memory => "memory", -2, [], (0, 0, 0), "server", false, "MEMORY USAGE key [SAMPLES n] (an estimate), MEMORY HELP.";
    Object => "object", -2, [], (0, 0, 0), "keyspace", false, "OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key: what Redis would answer (see docs/commands.md).";
    Reset => "reset", 1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", true, "Resets the connection: no transaction, database 0, RESP2, no name.";
    Readonly => "readonly", 1, ["loading", "stale", "fast"], (0, 0, 0), "cluster", false, "OK: the connection is a cluster client's (it is answered MOVED for keys this node does not replicate).";
    Readwrite => "readwrite", 1, ["loading", "stale", "fast"], (0, 0, 0), "cluster", false, "OK: the connection is a cluster client's.";
    Asking => "asking", 1, ["fast"], (0, 0, 0), "cluster", false, "OK: the connection is a cluster client's (kura never answers ASK).";
    Cluster => "cluster", -2, [], (0, 0, 0), "cluster", false, "CLUSTER SLOTS, SHARDS, NODES, INFO, MYID, MYSHARDID, KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT, HELP: the ring as Redis Cluster's slots.";
    Slowlog => "slowlog", -2, [], (0, 0, 0), "server", false, "SLOWLOG GET [count], LEN, RESET, HELP.";
    Latency => "latency", -2, [], (0, 0, 0), "server", false, "LATENCY LATEST, HISTORY, RESET, HELP (no monitor events).";
    Time => "time", 1, ["loading", "stale", "fast"], (0, 0, 0), "server", false, "The server's clock: seconds and microseconds.";
    Dget => "dget", -2, ["readonly"], (1, 1, 1), "kura", false, "Returns a key's context and all its sibling values.";
    Dput => "dput", -4, ["write", "denyoom"], (1, 1, 1), "kura", false, "Writes a value superseding exactly what the context saw; returns the new context.";
    Ddel => "ddel", -3, ["write"], (1, 1, 1), "kura", false, "Deletes what the context saw (writes a tombstone).";
    Ping => "ping", -1, ["fast"], (0, 0, 0), "connection", false, "Returns PONG or the message.";
    Echo => "echo", 2, ["loading", "stale", "fast"], (0, 0, 0), "connection", false, "Returns the message.";
    Quit => "quit", -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", true, "Closes the connection.";
    Select => "select", 2, ["loading", "stale", "fast"], (0, 0, 0), "connection", false, "Selects a database (0 to --databases - 1).";
    Dbsize => "dbsize", 1, ["readonly", "fast"], (0, 0, 0), "server", false, "Counts the live keys of the whole cluster.";
    Scan => "scan", -2, ["readonly"], (0, 0, 0), "keyspace", false, "Walks the cluster's keys: cursor [MATCH p] [COUNT n] [TYPE t].";
    Keys => "keys", 2, ["readonly"], (0, 0, 0), "keyspace", false, "Every key matching a glob pattern (walks the whole cluster).";
    Flushdb => "flushdb", -1, ["write"], (0, 0, 0), "server", false, "Deletes every key of the database, in the whole cluster [ASYNC|SYNC].";
    Flushall => "flushall", -1, ["write"], (0, 0, 0), "server", false, "Deletes every key of every database, in the whole cluster [ASYNC|SYNC].";
    Randomkey => "randomkey", 1, ["readonly"], (0, 0, 0), "keyspace", false, "A random key.";
    Hello => "hello", -1, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", true, "Handshake: protocol version, authentication, client name.";
    Auth => "auth", -2, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", true, "Authenticates the connection.";
    Client => "client", -2, [], (0, 0, 0), "connection", false, "CLIENT ID, SETNAME, GETNAME, INFO, LIST, KILL, SETINFO, NO-EVICT, NO-TOUCH.";
    Command => "command", -1, ["loading", "stale"], (0, 0, 0), "server", false, "Describes the commands: COUNT, DOCS, INFO, LIST.";
    Config => "config", -2, [], (0, 0, 0), "server", false, "CONFIG GET, SET (run-time settings), RESETSTAT.";
    Shutdown => "shutdown", -1, ["admin", "noscript", "loading", "stale", "no_multi", "allow_busy"], (0, 0, 0), "server", false, "Stops the node after syncing its journal [NOSAVE|SAVE] [NOW] [FORCE] [ABORT].";
    Monitor => "monitor", 1, ["admin", "noscript", "loading", "stale"], (0, 0, 0), "server", false, "Streams every request the node receives.";
    Kura => "kura", -2, ["admin"], (0, 0, 0), "kura", false, "The cluster as this node sees it, and membership changes: MEMBERS, RING, PREFLIST, LOCAL, HINTS, TRANSFERS, JOIN, LEAVE, REMOVE.";
    Info => "info", -1, ["loading", "stale"], (0, 0, 0), "server", false, "Server information and statistics.";
    Multi => "multi", 1, ["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", false, "Starts a transaction: later commands are queued.";
    Exec => "exec", 1, ["noscript", "loading", "stale", "skip_slowlog"], (0, 0, 0), "transactions", false, "Runs the queued commands (isolated on one node; nil if a WATCHed key changed).";
    Discard => "discard", 1, ["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", false, "Drops the queued commands.";
    Watch => "watch", -2, ["noscript", "loading", "stale", "fast", "allow_busy"], (1, -1, 1), "transactions", false, "EXEC will abort if one of these keys changes first.";
    Eval => "eval", -3, ["noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], (0, 0, 0), "scripting", false, "Runs a Lua script: script numkeys [key ...] [arg ...] (atomic on a node alone; key by key in a cluster).";
    Evalsha => "evalsha", -3, ["noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], (0, 0, 0), "scripting", false, "Runs a cached Lua script by its SHA1 (loaded through any node of the cluster).";
    EvalRo => "eval_ro", -3, ["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], (0, 0, 0), "scripting", false, "EVAL of a script that may not write.";
    EvalshaRo => "evalsha_ro", -3, ["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], (0, 0, 0), "scripting", false, "EVALSHA of a script that may not write.";
    Script => "script", -2, [], (0, 0, 0), "scripting", false, "SCRIPT LOAD, EXISTS, FLUSH [ASYNC|SYNC], KILL, HELP (scripts are cluster state).";
    Fcall => "fcall", -3, ["noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], (0, 0, 0), "scripting", false, "Runs a function of a loaded library: function numkeys [key ...] [arg ...].";
    FcallRo => "fcall_ro", -3, ["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"], (0, 0, 0), "scripting", false, "FCALL of a function flagged no-writes.";
    Function => "function", -2, [], (0, 0, 0), "scripting", false, "FUNCTION LOAD, LIST, DELETE, FLUSH, DUMP, RESTORE, STATS, KILL, HELP (libraries are cluster state).";
    Subscribe => "subscribe", -2, ["pubsub", "noscript", "loading", "stale"], (0, 0, 0), "pubsub", false, "Subscribes to channels (messages published through any node of the cluster).";
    Unsubscribe => "unsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], (0, 0, 0), "pubsub", false, "Unsubscribes from channels (all of them when none is named).";
    Psubscribe => "psubscribe", -2, ["pubsub", "noscript", "loading", "stale"], (0, 0, 0), "pubsub", false, "Subscribes to the channels matching glob patterns.";
    Punsubscribe => "punsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], (0, 0, 0), "pubsub", false, "Unsubscribes from patterns (all of them when none is named).";
    Ssubscribe => "ssubscribe", -2, ["pubsub", "noscript", "loading", "stale"], (1, -1, 1), "pubsub", false, "Subscribes to shard channels (delivered as channels are: to every node).";
    Sunsubscribe => "sunsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], (1, -1, 1), "pubsub", false, "Unsubscribes from shard channels (all of them when none is named).";
    Publish => "publish", 3, ["pubsub", "loading", "stale", "fast"], (0, 0, 0), "pubsub", false, "Posts a message to a channel's subscribers on every node; how many received it (peers that answer in time).";
    Spublish => "spublish", 3, ["pubsub", "loading", "stale", "fast"], (1, 1, 1), "pubsub", false, "Posts a message to a shard channel's subscribers on every node.";
    Pubsub => "pubsub", -2, [], (0, 0, 0), "pubsub", false, "PUBSUB CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS, SHARDNUMSUB: the whole cluster's subscriptions.";
    Unwatch => "unwatch", 1, ["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", false, "Forgets the WATCHed keys.";
}

impl Cmd {
    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    /// Commands whose first argument is a subcommand (`client|list` in CLIENT LIST).
    pub fn has_subcommands(self) -> bool {
        matches!(
            self,
            Cmd::Client
                | Cmd::Config
                | Cmd::Command
                | Cmd::Memory
                | Cmd::Object
                | Cmd::Slowlog
                | Cmd::Latency
                | Cmd::Cluster
                | Cmd::Kura
                | Cmd::Script
                | Cmd::Function
                | Cmd::Pubsub
        )
    }

    /// Checks a container command's subcommand before it runs (and before MULTI queues it), as
    /// Redis does: an unknown subcommand, or a wrong argument count for a known one (the
    /// arities are Redis 7's). KURA checks its own subcommands when it runs.
    pub fn check_subcommand(self, args: &[Bytes]) -> Result<(), super::CommandError> {
        let upper = match self {
            Cmd::Client => "CLIENT",
            Cmd::Config => "CONFIG",
            Cmd::Command => "COMMAND",
            Cmd::Memory => "MEMORY",
            Cmd::Object => "OBJECT",
            Cmd::Slowlog => "SLOWLOG",
            Cmd::Latency => "LATENCY",
            Cmd::Cluster => "CLUSTER",
            Cmd::Script => "SCRIPT",
            Cmd::Function => "FUNCTION",
            Cmd::Pubsub => "PUBSUB",
            _ => return Ok(()),
        };
        let Some(sub) = args.get(1) else { return Ok(()) };
        let Some(&(_, name, arity, _)) = self.subcommand(sub) else {
            return Err(super::CommandError::UnknownSubcommand {
                cmd: upper,
                sub: String::from_utf8_lossy(sub).into_owned(),
            });
        };
        let n = args.len() as i32;
        if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
            return Err(super::CommandError::WrongArity(format!("{}|{name}", self.spec().name)));
        }
        Ok(())
    }

    /// A container command's subcommand `sub`, if kura has it.
    fn subcommand(self, sub: &[u8]) -> Option<&'static (Cmd, &'static str, i32, bool)> {
        SUBCOMMANDS.iter().find(|(c, name, _, _)| *c == self && name.as_bytes().eq_ignore_ascii_case(sub))
    }

    /// Whether Redis keeps the request `args` (of this command) from MONITOR: a command
    /// flagged `admin`, or an `admin` subcommand of a container (Redis looks at the
    /// subcommand's flags; one it does not know is refused before MONITOR would see it).
    pub(super) fn hidden_from_monitor(self, args: &[Bytes]) -> bool {
        if self.spec().flags.contains(&"admin") {
            return true;
        }
        match args.get(1) {
            Some(sub) if self.has_subcommands() => self.subcommand(sub).is_none_or(|&(_, _, _, admin)| admin),
            _ => false,
        }
    }

    /// Looks a command up by name, case-insensitively, without allocating.
    pub fn lookup(name: &[u8]) -> Option<Cmd> {
        ALL.iter().copied().find(|c| c.spec().name.as_bytes().eq_ignore_ascii_case(name))
    }
}

impl Cmd {
    /// Whether the command touches nothing of its connection but keys: such commands of one
    /// pipeline may run at once when their keys differ.
    pub(super) fn is_data(self) -> bool {
        // A blocking command needs its client (CLIENT UNBLOCK, a closed connection).
        !self.blocks()
            && !matches!(
                self,
                Cmd::Quit
                | Cmd::Select
                | Cmd::Dbsize
                | Cmd::Scan
                | Cmd::Keys
                | Cmd::Randomkey
                | Cmd::Copy
                | Cmd::Reset
                | Cmd::Slowlog
                | Cmd::Readonly
                | Cmd::Readwrite
                | Cmd::Asking
                | Cmd::Cluster
                | Cmd::Flushdb
                | Cmd::Flushall
                | Cmd::Hello
                | Cmd::Auth
                | Cmd::Client
                | Cmd::Command
                | Cmd::Config
                | Cmd::Monitor
                | Cmd::Shutdown
                | Cmd::Info
                | Cmd::Kura
                | Cmd::Multi
                | Cmd::Exec
                | Cmd::Discard
                | Cmd::Watch
                | Cmd::Unwatch
                | Cmd::Eval
                | Cmd::Evalsha
                | Cmd::EvalRo
                | Cmd::EvalshaRo
                | Cmd::Script
                | Cmd::Fcall
                | Cmd::FcallRo
                | Cmd::Function
                | Cmd::Subscribe
                | Cmd::Unsubscribe
                | Cmd::Psubscribe
                | Cmd::Punsubscribe
                | Cmd::Ssubscribe
                | Cmd::Sunsubscribe
                // Not at once with others of its pipeline: one connection's messages are
                // published in the order it sent them.
                | Cmd::Publish
                | Cmd::Spublish
            )
    }

    /// Whether the command must run alone on a node alone (Redis runs it atomically over
    /// several keys): it then holds the node's gate exclusively, like EXEC.
    pub(super) fn exclusive(self) -> bool {
        matches!(
            self,
            Cmd::Mset
                | Cmd::Msetnx
                | Cmd::Rename
                | Cmd::Renamenx
                | Cmd::Copy
                | Cmd::Flushdb
                | Cmd::Flushall
                | Cmd::Smove
                | Cmd::Sinterstore
                | Cmd::Sunionstore
                | Cmd::Sdiffstore
                | Cmd::Lmove
                | Cmd::Rpoplpush
                | Cmd::Lmpop
                | Cmd::Zmpop
                | Cmd::Zrangestore
                | Cmd::Zunionstore
                | Cmd::Zinterstore
                | Cmd::Zdiffstore
                | Cmd::Geosearchstore
                | Cmd::Georadius
                | Cmd::Georadiusbymember
                | Cmd::Eval
                | Cmd::Evalsha
                | Cmd::EvalRo
                | Cmd::EvalshaRo
                | Cmd::Fcall
                | Cmd::FcallRo
        )
    }

    /// Whether a RESP2 connection in subscribed mode may run it (Redis 7.0's list).
    pub(super) fn allowed_subscribed(self) -> bool {
        matches!(
            self,
            Cmd::Ping
                | Cmd::Subscribe
                | Cmd::Ssubscribe
                | Cmd::Unsubscribe
                | Cmd::Sunsubscribe
                | Cmd::Psubscribe
                | Cmd::Punsubscribe
                | Cmd::Quit
                | Cmd::Reset
        )
    }

    /// Whether the command runs at once inside MULTI instead of being queued.
    /// A blocking command (it waits for its keys outside the node's gate: `blocking.rs`).
    pub(super) fn blocks(self) -> bool {
        matches!(
            self,
            Cmd::Blpop
                | Cmd::Brpop
                | Cmd::Blmove
                | Cmd::Brpoplpush
                | Cmd::Blmpop
                | Cmd::Bzpopmin
                | Cmd::Bzpopmax
                | Cmd::Bzmpop
                | Cmd::Xread
                | Cmd::Xreadgroup
        )
    }

    pub(super) fn runs_in_multi(self) -> bool {
        matches!(self, Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Watch | Cmd::Quit | Cmd::Reset)
    }
}

/// The keys of a request that may run concurrently with others of its pipeline (`None` for
/// a command that must run alone, in order: one that changes the connection or reads the
/// whole node). Unknown commands and wrong arities only produce an error reply, so they may.
pub(super) fn concurrent_keys(args: &[Bytes]) -> Option<Vec<&[u8]>> {
    let Some(cmd) = Cmd::lookup(&args[0]) else { return Some(Vec::new()) };
    if !cmd.is_data() {
        return None;
    }
    Some(key_positions(cmd.spec(), args).into_iter().filter_map(|i| args.get(i).map(|a| &a[..])).collect())
}

/// Where a request's keys are (by the spec's first, last and step; the commands that give
/// their number of keys by that number, so that nothing after the keys is taken for one).
pub(super) fn key_positions(spec: &Spec, args: &[Bytes]) -> Vec<usize> {
    let numkeys =
        |at: usize| args.get(at).and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok()).unwrap_or(0);
    let end = args.len().saturating_sub(1);
    match spec.name {
        "sintercard" | "zintercard" | "zunion" | "zinter" | "zdiff" | "lmpop" | "zmpop" => {
            (2..=(1 + numkeys(1)).min(end)).collect()
        }
        // The timeout, then the number of keys.
        "blmpop" | "bzmpop" => (3..=(2 + numkeys(2)).min(end)).collect(),
        // The destination, then the sources after their number.
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            std::iter::once(1).chain(3..=(2 + numkeys(2)).min(end)).filter(|&i| i <= end).collect()
        }
        // The source, then every STORE or STOREDIST destination (the last one is used).
        "georadius" | "georadiusbymember" => {
            let mut keys = vec![1];
            let mut i = if spec.name == "georadius" { 6 } else { 5 };
            while i < args.len() {
                let a = &args[i];
                if a.eq_ignore_ascii_case(b"count") {
                    i += 1;
                } else if (a.eq_ignore_ascii_case(b"store") || a.eq_ignore_ascii_case(b"storedist"))
                    && i + 1 < args.len()
                {
                    keys.push(i + 1);
                    i += 1;
                }
                i += 1;
            }
            keys
        }
        // OBJECT's subcommands name their key after them (Redis's key specs; COMMAND INFO
        // shows no first key).
        "object" | "xgroup" | "xinfo" => (2..=2.min(end)).collect(),
        // The keys after STREAMS: the first half of what follows it.
        "xread" | "xreadgroup" => {
            let Some(at) = args.iter().position(|a| a.eq_ignore_ascii_case(b"streams")) else { return Vec::new() };
            let n = (args.len() - at - 1) / 2;
            (at + 1..at + 1 + n).collect()
        }
        // Shard channels sit where keys do (Redis Cluster routes them by slot) but are no keys
        // (`not_key`): never moved into a database, never keys of a pipeline wave.
        "ssubscribe" | "sunsubscribe" | "spublish" => Vec::new(),
        _ if spec.first_key <= 0 => Vec::new(),
        _ => {
            let last = if spec.last_key < 0 { args.len() as i32 + spec.last_key } else { spec.last_key };
            (spec.first_key as usize..=last.max(0) as usize).step_by(spec.step.max(1) as usize).collect()
        }
    }
}

/// The subcommands kura answers, with Redis 7's arities (name included) and whether Redis 7
/// flags them `admin` (not shown to MONITOR).
const SUBCOMMANDS: &[(Cmd, &str, i32, bool)] = &[
    (Cmd::Client, "id", 2, false),
    (Cmd::Client, "getname", 2, false),
    (Cmd::Client, "setname", 3, false),
    (Cmd::Client, "info", 2, false),
    (Cmd::Client, "list", -2, true),
    (Cmd::Client, "kill", -3, true),
    (Cmd::Client, "setinfo", 4, false),
    (Cmd::Client, "no-evict", 3, true),
    (Cmd::Client, "no-touch", 3, false),
    (Cmd::Client, "help", 2, false),
    (Cmd::Client, "unblock", -3, true),
    (Cmd::Config, "get", -3, true),
    (Cmd::Config, "set", -4, true),
    (Cmd::Config, "resetstat", 2, true),
    (Cmd::Command, "count", 2, false),
    (Cmd::Command, "docs", -2, false),
    (Cmd::Command, "info", -2, false),
    (Cmd::Command, "list", -2, false),
    (Cmd::Memory, "usage", -3, false),
    (Cmd::Memory, "help", 2, false),
    (Cmd::Object, "encoding", 3, false),
    (Cmd::Object, "freq", 3, false),
    (Cmd::Object, "idletime", 3, false),
    (Cmd::Object, "refcount", 3, false),
    (Cmd::Object, "help", 2, false),
    (Cmd::Cluster, "slots", 2, false),
    (Cmd::Cluster, "shards", 2, false),
    (Cmd::Cluster, "nodes", 2, false),
    (Cmd::Cluster, "info", 2, false),
    (Cmd::Cluster, "myid", 2, false),
    (Cmd::Cluster, "myshardid", 2, false),
    (Cmd::Cluster, "keyslot", 3, false),
    (Cmd::Cluster, "countkeysinslot", 3, false),
    (Cmd::Cluster, "getkeysinslot", 4, false),
    (Cmd::Cluster, "help", 2, false),
    (Cmd::Slowlog, "get", -2, true),
    (Cmd::Slowlog, "len", 2, true),
    (Cmd::Slowlog, "reset", 2, true),
    (Cmd::Slowlog, "help", 2, false),
    (Cmd::Latency, "latest", 2, true),
    (Cmd::Latency, "history", 3, true),
    (Cmd::Latency, "reset", -2, true),
    (Cmd::Latency, "help", 2, false),
    (Cmd::Script, "load", 3, false),
    (Cmd::Script, "exists", -3, false),
    (Cmd::Script, "flush", -2, false),
    (Cmd::Script, "kill", 2, false),
    (Cmd::Script, "help", 2, false),
    (Cmd::Function, "load", -3, false),
    (Cmd::Function, "list", -2, false),
    (Cmd::Function, "delete", 3, false),
    (Cmd::Function, "flush", -2, false),
    (Cmd::Function, "dump", 2, false),
    (Cmd::Function, "restore", -3, false),
    (Cmd::Function, "stats", 2, false),
    (Cmd::Function, "kill", 2, false),
    (Cmd::Function, "help", 2, false),
    (Cmd::Pubsub, "channels", -2, false),
    (Cmd::Pubsub, "numsub", -2, false),
    (Cmd::Pubsub, "numpat", 2, false),
    (Cmd::Pubsub, "shardchannels", -2, false),
    (Cmd::Pubsub, "shardnumsub", -2, false),
    (Cmd::Pubsub, "help", 2, false),
    (Cmd::Xgroup, "create", -5, false),
    (Cmd::Xgroup, "setid", -5, false),
    (Cmd::Xgroup, "destroy", 4, false),
    (Cmd::Xgroup, "createconsumer", 5, false),
    (Cmd::Xgroup, "delconsumer", 5, false),
    (Cmd::Xgroup, "help", 2, false),
    (Cmd::Xinfo, "stream", -3, false),
    (Cmd::Xinfo, "groups", 3, false),
    (Cmd::Xinfo, "consumers", 4, false),
    (Cmd::Xinfo, "help", 2, false),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_lookup_agree() {
        assert_eq!(SPECS.len(), ALL.len());
        for &c in ALL {
            assert_eq!(Cmd::lookup(c.spec().name.to_uppercase().as_bytes()), Some(c));
        }
        assert_eq!(Cmd::lookup(b"nope"), None);
    }

    /// The commands usable before AUTH are those Redis flags `no_auth` (COMMAND shows it).
    #[test]
    fn no_auth_is_the_flag() {
        for spec in SPECS {
            assert_eq!(spec.no_auth, spec.flags.contains(&"no_auth"), "{}", spec.name);
        }
    }
}
