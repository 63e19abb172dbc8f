//! Lua scripting and functions (issue 22, item 2) on real processes: the same scripts
//! (struct included) and FUNCTION/FCALL requests sent to redis-server 7 and a kura node,
//! replies compared byte for byte; a script or function past `busy-reply-threshold` (BUSY,
//! SCRIPT KILL, FUNCTION KILL, UNKILLABLE); scripts and libraries as cluster state (loaded
//! through one node, run through the others and through a node that joins later; SCRIPT
//! FLUSH and FUNCTION DELETE/REPLACE/FLUSH/RESTORE reaching every node); scripts at their
//! first key's decider (atomic over keys of one hash tag in 3-node N=3 and 4-node N=2
//! clusters; BUSY and kills of a forwarded script).

use crate::harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use harness::{resp_cmd, wait_until, Cluster, Node, RedisServer};

/// A raw RESP connection that reads one reply's exact bytes.
struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        Raw { reader: BufReader::new(s) }
    }

    fn send(&mut self, args: &[&[u8]]) {
        self.reader.get_mut().write_all(&resp_cmd(args)).expect("write");
    }

    fn reply(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read");
        let kind = line[0];
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        match kind {
            b'$' | b'=' | b'!' if n >= 0 => {
                let mut body = vec![0; n as usize + 2];
                self.reader.read_exact(&mut body).expect("body");
                line.extend(body);
            }
            b'*' | b'~' | b'>' | b'%' if n > 0 => {
                let items = if kind == b'%' { n * 2 } else { n };
                for _ in 0..items {
                    line.extend(self.reply());
                }
            }
            _ => {}
        }
        line
    }

    fn call(&mut self, args: &[&str]) -> Vec<u8> {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&argv);
        self.reply()
    }

    fn text(&mut self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.call(args)).into_owned()
    }
}

/// Scripts over every family of commands, the conversions both ways, the libraries and every
/// error case, in order (later ones see what earlier ones wrote).
const CASES: &[&[&str]] = &[
    &["eval", "return 1", "0"],
    &["eval", "return 1.9", "0"],
    &["eval", "return -1.9", "0"],
    &["eval", "return 1e20", "0"],
    &["eval", "return false", "0"],
    &["eval", "return true", "0"],
    &["eval", "return nil", "0"],
    &["eval", "return {1,2,nil,3}", "0"],
    &["eval", "return {1,{2,'x'},false,3}", "0"],
    &["eval", "return {1,2,3,'ciao',{1,2}}", "0"],
    &["eval", "return {ok='fine'}", "0"],
    &["eval", "return {err='bad thing'}", "0"],
    &["eval", "return {err='NOTERR bad thing'}", "0"],
    &["eval", "return {err=''}", "0"],
    &["eval", "return {err=3}", "0"],
    &["eval", "return {double=3.5}", "0"],
    &["eval", "return {1,{err='inner'}}", "0"],
    &["eval", "return redis.error_reply('my err')", "0"],
    &["eval", "return redis.error_reply('-my err')", "0"],
    &["eval", "return redis.error_reply('NOSPACE')", "0"],
    &["eval", "return redis.error_reply(5)", "0"],
    &["eval", "return redis.status_reply('st')", "0"],
    &["eval", "return redis.status_reply()", "0"],
    &["eval", "return {}", "0"],
    &["eval", "return _G", "0"],
    &["eval", "return 'x'", "-1"],
    &["eval", "return 'x'", "2", "a"],
    &["eval", "return 'x'", "abc"],
    &["eval", "return KEYS[1]..ARGV[1]..#KEYS..#ARGV", "1", "k", "v"],
    &["eval", "return x(", "0"],
    &["eval", "error('boom')", "0"],
    &["eval", "error({err='tbl'})", "0"],
    &["eval", "local t = {} t.x.y = 1", "0"],
    &["eval", "return redis.call('get','a') .. nil", "0"],
    &["eval", "a=5", "0"],
    &["eval", "return a", "0"],
    &["eval", "redis = nil", "0"],
    &["eval", "string.foo = 1", "0"],
    &["eval", "return os", "0"],
    &["eval", "return io", "0"],
    &["eval", "return loadfile", "0"],
    &["eval", "return dofile", "0"],
    &["eval", "return require", "0"],
    &["eval", "return print", "0"],
    &["eval", "return _VERSION", "0"],
    &["eval", "return redis.REDIS_VERSION", "0"],
    &["eval", "return math.random(1000)", "0"],
    &["eval", "return math.random(1000)", "0"],
    &["eval", "return math.random(0)", "0"],
    &["eval", "return redis.call('nosuch')", "0"],
    &["eval", "return redis.pcall('nosuch')", "0"],
    &["eval", "return redis.pcall('nosuch')['err']", "0"],
    &["eval", "return redis.call('get')", "0"],
    &["eval", "return redis.call('get','a','b')", "0"],
    &["eval", "return redis.pcall('get','a','b')", "0"],
    &["eval", "return redis.call()", "0"],
    &["eval", "return redis.call(1)", "0"],
    &["eval", "return redis.call({})", "0"],
    &["eval", "return redis.call('get',{})", "0"],
    &["eval", "return redis.call('multi')", "0"],
    &["eval", "return redis.call('eval','return 1','0')", "0"],
    &["eval", "return redis.call('script','load','return 1')", "0"],
    &["eval", "return redis.call('client','id')", "0"],
    &["eval", "return redis.call('config','get','maxmemory')", "0"],
    &["eval", "return redis.call('auth','x')", "0"],
    &["eval", "return redis.call('watch','x')", "0"],
    &["eval", "return redis.call('select','99')", "0"],
    &["eval", "local ok, e = pcall(function() redis.call('nosuch') end) return e", "0"],
    &["eval", "local ok, e = pcall(function() error('x') end) return e", "0"],
    &["eval", "return pcall(function() error('x') end)", "0"],
    // Strings, counters, lists, hashes, sets, sorted sets through redis.call.
    &["eval", "return redis.call('set',KEYS[1],ARGV[1])", "1", "s", "hello"],
    &["eval", "return redis.call('get',KEYS[1])", "1", "s"],
    &["eval", "return type(redis.call('get','nokey'))", "0"],
    &["eval", "return redis.call('append',KEYS[1],'!')", "1", "s"],
    &["eval", "redis.call('set','n',3.7) return redis.call('get','n')", "0"],
    &["eval", "redis.call('set','big',1e15) return redis.call('get','big')", "0"],
    &["eval", "return redis.call('incr','s')", "0"],
    &["eval", "return redis.pcall('incr','s')", "0"],
    &["eval", "return redis.call('lpush','s','x')", "0"],
    &["eval", "return redis.call('incrby','c',5) + redis.call('decr','c')", "0"],
    &["eval", "return redis.call('rpush','l','a','b','c')", "0"],
    &["eval", "return redis.call('lrange','l',0,-1)", "0"],
    &["eval", "return {redis.call('lpop','l'), redis.call('rpop','l'), redis.call('llen','l')}", "0"],
    &["eval", "return redis.call('hset','h','a','1','b','2')", "0"],
    &["eval", "return redis.call('hgetall','h')", "0"],
    &["eval", "return redis.call('hget','h','zz')", "0"],
    &["eval", "return redis.call('hincrby','h','a',10)", "0"],
    &["eval", "redis.setresp(3) return redis.call('hgetall','h')", "0"],
    &["eval", "return redis.call('sadd','st','m1','m2')", "0"],
    &["eval", "return redis.call('sismember','st','m1')", "0"],
    &["eval", "return redis.call('scard','st')", "0"],
    &["eval", "return redis.call('zadd','z','1.5','m','3','n')", "0"],
    &["eval", "return redis.call('zscore','z','m')", "0"],
    &["eval", "return redis.call('zrange','z','0','-1','withscores')", "0"],
    &["eval", "return redis.call('zrangebyscore','z','-inf','+inf','limit','0','1')", "0"],
    &["eval", "return redis.call('zincrby','z','2','m')", "0"],
    &["eval", "return redis.call('exists','s','h','nokey')", "0"],
    &["eval", "return redis.call('del','s','nokey')", "0"],
    &["eval", "return redis.call('type','h')", "0"],
    &["eval", "return redis.call('ping')", "0"],
    &["eval", "return redis.call('select','1')", "0"],
    &["eval", "redis.call('select','2') return redis.call('set','indb2','v')", "0"],
    &["get", "indb2"],
    &["eval", "redis.call('select','2') return redis.call('get','indb2')", "0"],
    // Libraries.
    &["eval", "return cjson.encode({1,2,{a=1}})", "0"],
    &["eval", "return cjson.encode({a={1,2},b=true,c=cjson.null})", "0"],
    &["eval", "return cjson.encode(1.5)", "0"],
    &["eval", "return cjson.encode(100000000000000)", "0"],
    &["eval", "return cjson.encode('a\"b/\\1')", "0"],
    &["eval", "return cjson.encode({[1]=1,[3]=3})", "0"],
    &["eval", "return cjson.encode({1,2,x=3})", "0"],
    &["eval", "return cjson.encode(function() end)", "0"],
    &["eval", "return cjson.decode('[1,2,{\"a\":1.5}]')[3].a", "0"],
    &["eval", "return cjson.decode('x')", "0"],
    &["eval", "return cjson.encode(cjson.decode('{\"a\":[1,2,null],\"b\":{\"c\":\"d\"}}'))", "0"],
    &["eval", "return cjson.decode('{\"a\":[1,2,null]}').a[3] == cjson.null and 1 or 0", "0"],
    &["eval", "return cmsgpack.pack({1,2,3})", "0"],
    &["eval", "return cmsgpack.pack({a=1})", "0"],
    &["eval", "return cmsgpack.pack(1.5, -1, 300, 'abc', true, false, nil)", "0"],
    &["eval", "local t = cmsgpack.unpack(cmsgpack.pack({1,'x',{y=2}})) return {t[1],t[2],t[3].y}", "0"],
    &["eval", "return {cmsgpack.unpack(cmsgpack.pack(1,2,3))}", "0"],
    &["eval", "return bit.tohex(bit.band(0xff,0x0f))", "0"],
    &["eval", "return bit.tobit(0xffffffff)", "0"],
    &["eval", "return {bit.lshift(1,31), bit.rshift(-1,28), bit.arshift(-256,4), bit.bnot(0), bit.bxor(5,3,1)}", "0"],
    &["eval", "return {bit.rol(0x12345678,8), bit.ror(0x12345678,8), bit.bswap(0x12345678)}", "0"],
    &["eval", "return {bit.tohex(-1,-4), bit.tohex(255,2)}", "0"],
    &["eval", "return bit.tohex()", "0"],
    &["eval", "return bit.band('a')", "0"],
    // struct (lua_struct.c): the bytes as hex, so that every byte is compared.
    &[
        "eval",
        "local s = struct.pack(ARGV[1], tonumber(ARGV[2]) or ARGV[2], tonumber(ARGV[3]) or ARGV[3]) \
               return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))",
        "0",
        ">I2",
        "7",
        "",
    ],
    &[
        "eval",
        "return (string.gsub(struct.pack('<d>f!4bxi>hT<i16<L', 1.5, -2.25, 1, 2, -2, 1, -2, 2^63), '.', \
               function(c) return string.format('%02x', string.byte(c)) end))",
        "0",
    ],
    &[
        "eval",
        "return (string.gsub(struct.pack('<L<lB<I', 0/0, -1e300, 300, 1/0), '.', \
               function(c) return string.format('%02x', string.byte(c)) end))",
        "0",
    ],
    &["eval", "return struct.pack('s c0 c2 i3 i0', 'ab', 'cd', 'efg', 7, 7)", "0"],
    &["eval", "return struct.pack('b c0', '12', 12.5)", "0"],
    &["eval", "return {struct.unpack('>I2', struct.pack('>I2', 7))}", "0"],
    &["eval", "return {struct.unpack('bc0b', '\\2ab\\3')}", "0"],
    &["eval", "return {struct.unpack('c2c0', '02abc')}", "0"],
    &["eval", "return {struct.unpack('s', 'ab\\0cd')}", "0"],
    &["eval", "return {struct.unpack('>I2', 'abcd', 3)}", "0"],
    &["eval", "return {struct.unpack('>I2', 'abcd', '2')}", "0"],
    &["eval", "return {struct.unpack('>i16<I16', struct.pack('>i16<i16', -2, -2))}", "0"],
    &[
        "eval",
        "local a, b, c = struct.unpack('<d>f', struct.pack('<d>f', 1.5, -2.25)) return {tostring(a), tostring(b), c}",
        "0",
    ],
    &["eval", "return tostring(struct.unpack('<l', struct.pack('<L', 2^63)))", "0"],
    &["eval", "return {struct.size('!4bi'), struct.size('<i8>dT!2hl'), struct.size('z'), struct.size('!')}", "0"],
    &["eval", "return struct.pack('z', 7)", "0"],
    &["eval", "return struct.pack('i33', 7)", "0"],
    &["eval", "return struct.pack('i99999999999', 7)", "0"],
    &["eval", "return struct.pack('!3i', 7)", "0"],
    &["eval", "return struct.pack('c3', 'ab')", "0"],
    &["eval", "return struct.pack('b')", "0"],
    &["eval", "return struct.pack('b', 'x')", "0"],
    &["eval", "return struct.pack()", "0"],
    &["eval", "return struct.size('s')", "0"],
    &["eval", "return struct.size('c0')", "0"],
    &["eval", "return struct.size('b!3')", "0"],
    &["eval", "return struct.unpack('s', 'abc')", "0"],
    &["eval", "return struct.unpack('c0', 'abc')", "0"],
    &["eval", "return struct.unpack('>I2', 'a')", "0"],
    &["eval", "return struct.unpack('>I2', 'abcd', 0)", "0"],
    &["eval", "return struct.unpack('>I2', 'abcd', -1)", "0"],
    &["eval", "return struct.unpack('>I2', 'abcd', 'x')", "0"],
    &["eval", "return struct.unpack('b')", "0"],
    &["eval", "return pcall(struct.pack, 'z')", "0"],
    &["eval", "return redis.sha1hex('')", "0"],
    &["eval", "return redis.sha1hex()", "0"],
    &["eval", "return redis.log(redis.LOG_WARNING,'hi')", "0"],
    &["eval", "return redis.log()", "0"],
    &["eval", "return {redis.LOG_DEBUG,redis.LOG_VERBOSE,redis.LOG_NOTICE,redis.LOG_WARNING}", "0"],
    &["eval", "return redis.setresp(3)", "0"],
    &["eval", "return redis.setresp(4)", "0"],
    &["eval", "return redis.replicate_commands()", "0"],
    &["eval", "return redis.set_repl(redis.REPL_ALL)", "0"],
    &["eval", "return {redis.REPL_NONE,redis.REPL_AOF,redis.REPL_SLAVE,redis.REPL_REPLICA,redis.REPL_ALL}", "0"],
    // Read-only scripts and shebangs.
    &["eval_ro", "return redis.call('set','a','b')", "0"],
    &["eval_ro", "return redis.pcall('set','a','b')", "0"],
    &["eval_ro", "return redis.call('get','a')", "0"],
    &["eval", "#!lua flags=no-writes\nreturn redis.call('set','a','b')", "0"],
    &["eval", "#!lua\nreturn 1", "0"],
    &["eval", "#!foo\nreturn 1", "0"],
    &["eval", "#!lua flags=bad\nreturn 1", "0"],
    // The script cache.
    &["evalsha", "ffffffffffffffffffffffffffffffffffffffff", "0"],
    &["evalsha", "fff", "0"],
    &["evalsha_ro", "ffffffffffffffffffffffffffffffffffffffff", "0"],
    &["script", "load", "return 1"],
    &["script", "exists", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "ffffffffffffffffffffffffffffffffffffffff"],
    &["evalsha", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
    &["evalsha", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0"],
    &["evalsha_ro", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
    &["evalsha", "b5d0a9d5d0e3d2c4c3ab8f5fb1e1c6c8c4b1a0b2", "0"],
    &["eval", "return 'cached by eval'", "0"],
    &["script", "exists", "1e9b5a5a0b0b5a1f6b1a9ab6c3a05ab7f5a5e3e4"],
    &["script", "load", "return x("],
    &["script", "kill"],
    &["script", "flush", "async"],
    &["script", "exists", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"],
    &["evalsha", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
    &["script", "flush", "sync"],
    &["script", "flush"],
    &["script", "flush", "foo"],
    &["script", "flush", "sync", "x"],
    &["script", "foo"],
    &["script", "exists"],
    &["script", "load"],
    &["script", "help"],
    &["eval"],
    &["eval", "return 1"],
    &["evalsha", "x"],
    // MULTI with a script inside.
    &["multi"],
    &["eval", "return redis.call('incr','m')", "0"],
    &["eval", "return redis.call('incr','m')", "0"],
    &["exec"],
    &["dbsize"],
];

/// A fresh redis-server and a kura node get the same scripts; every reply is the same bytes.
#[test]
fn scripts_answer_as_redis_7() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let redis_server = RedisServer::start();
    let mut kura = Raw::connect(node.addr());
    let mut reference = Raw::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, redis_server.port)));
    let mut differ = Vec::new();
    for case in CASES {
        let (ours, theirs) = (kura.call(case), reference.call(case));
        if ours != theirs {
            differ.push(format!(
                "{case:?}\n  redis: {:?}\n  kura:  {:?}",
                String::from_utf8_lossy(&theirs),
                String::from_utf8_lossy(&ours)
            ));
        }
    }
    assert!(differ.is_empty(), "{} of {} replies differ:\n{}", differ.len(), CASES.len(), differ.join("\n"));
}

/// FUNCTION and FCALL: loading (the shebang, `redis.register_function` in both forms, every
/// error of the load environment), listing, calling, the flags, deleting, flushing, dumping
/// and restoring, as Redis 7 answers them. Listings show at most one library with one
/// function (Redis lists them in its hash tables' order, kura by name and in registration
/// order), and FUNCTION DUMP runs with one library (the payload lists libraries in that order).
const FUNCTION_CASES: &[&[&str]] = &[
    &["function", "list"],
    &["function", "stats"],
    &["function", "dump"],
    &["function", "load", "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)"],
    &["fcall", "myfunc", "0", "hello"],
    &["fcall", "MYFUNC", "0", "hi"],
    &["fcall_ro", "myfunc", "0", "hi"],
    &["function", "dump"],
    &["function", "list"],
    &["function", "list", "withcode"],
    &["function", "list", "WITHCODE", "libraryname", "my*"],
    &["function", "list", "libraryname", "MY*"],
    &["function", "list", "libraryname", "nomatch"],
    &["function", "list", "libraryname"],
    &["function", "list", "bogus"],
    &["function", "list", "withcode", "withcode"],
    &["function", "list", "libraryname", "a", "libraryname", "b"],
    &["function", "stats"],
    &["function", "load"],
    &["function", "load", "replace"],
    &["function", "load", "foo", "bar"],
    &["function", "load", "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)"],
    &["function", "load", "REPLACE", "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 2 end)"],
    &["fcall", "myfunc", "0"],
    &["function", "load", "#!lua name=lib2\nredis.register_function('myfunc', function(keys, args) return 3 end)"],
    &["function", "load", "#!lua\nredis.register_function('f', function() return 1 end)"],
    &["function", "load", "#!lua name=a name=b\nredis.register_function('f', function() return 1 end)"],
    &["function", "load", "#!lua name=a foo=b\nredis.register_function('f', function() return 1 end)"],
    &["function", "load", "#!luax name=a\nredis.register_function('f', function() return 1 end)"],
    &["function", "load", "redis.register_function('f', function() return 1 end)"],
    &["function", "load", "#!lua name=a"],
    &["function", "load", "#!lua name=\"q q\"\nredis.register_function('qq', function() return 1 end)"],
    &["function", "load", "#!lua name=\"qq\nredis.register_function('qq', function() return 1 end)"],
    &["function", "load", "#!lua name=a-b\nredis.register_function('fx', function() return 1 end)"],
    &["function", "load", "#!lua name=a\nreturn 1"],
    &["function", "load", "#!lua name=a\nreturn 1 +"],
    &["function", "load", "#!lua name=a\nredis.call('set','x','1')"],
    &["function", "load", "#!lua name=a\nlocal x = string.len('abc')"],
    &["function", "load", "#!lua name=a\nx = 5"],
    &["function", "load", "#!lua name=a\nlocal x = pcall"],
    &["function", "load", "#!lua name=a\nlocal x = _G"],
    &["function", "load", "#!lua name=a\nerror('x')"],
    &["function", "load", "#!lua name=a\nlocal x = redis.setresp"],
    &["function", "load", "#!lua name=a\nwhile true do end"],
    &["function", "load", "#!lua name=a\nredis.register_function('f', function() return 1 end)\nredis.register_function('f', function() return 1 end)"],
    &["function", "load", "#!lua name=a\nredis.register_function('f-x', function() return 1 end)"],
    &["function", "load", "#!lua name=a\nredis.register_function('', function() return 1 end)"],
    &["function", "load", "#!lua name=a\nredis.register_function('f', 'notfn')"],
    &["function", "load", "#!lua name=a\nredis.register_function({}, function() end)"],
    &["function", "load", "#!lua name=a\nredis.register_function()"],
    &["function", "load", "#!lua name=a\nredis.register_function('a', function() end, 3)"],
    &["function", "load", "#!lua name=a\nredis.register_function(5)"],
    &["function", "load", "#!lua name=a\nredis.register_function({function_name='x'})"],
    &["function", "load", "#!lua name=a\nredis.register_function({callback=function() end})"],
    &["function", "load", "#!lua name=a\nredis.register_function({function_name='x', callback=function() end, foo=1})"],
    &["function", "load", "#!lua name=a\nredis.register_function({function_name='x', callback=function() end, flags='no-writes'})"],
    &["function", "load", "#!lua name=a\nredis.register_function({function_name='x', callback=function() end, flags={'no-writes', 'bogus'}})"],
    &["function", "load", "#!lua name=a\nredis.register_function({function_name='x', callback=function() end, flags={1}})"],
    &["function", "load", "#!lua name=a\nredis.register_function({function_name={}, callback=function() end})"],
    &["function", "load", "#!lua name=a\nredis.register_function({function_name='x', callback=5})"],
    &["function", "load", "#!lua name=a\nredis.register_function({function_name='x', callback=function() end, description={}})"],
    &["function", "load", "#!lua name=a\nredis.register_function{[1]=5}"],
    &["function", "load", "#!lua name=a\nlocal t = redis.log(redis.LOG_WARNING, 'loading') redis.register_function('lg', function() return redis.REDIS_VERSION end)"],
    &["fcall", "lg", "0"],
    &["function", "delete", "a"],
    &["function", "delete", "a"],
    &["function", "delete"],
    &["function", "load", "#!LUA NAME=up\nredis.register_function{function_name='ro', callback=function(keys) return redis.call('get', keys[1]) end, flags={'NO-WRITES', 'allow-oom', 'allow-stale', 'allow-cross-slot-keys'}, description='reads a key'}"],
    &["function", "list", "libraryname", "up"],
    &["fcall_ro", "ro", "1", "k"],
    &["fcall", "ro", "1", "k"],
    &["function", "load", "#!lua name=w\nredis.register_function('w', function(keys, args) return redis.call('set', keys[1], args[1]) end)"],
    &["fcall", "w", "1", "k", "v"],
    &["fcall_ro", "w", "1", "k", "v"],
    &["fcall_ro", "ro", "1", "k"],
    &["function", "load", "#!lua name=nw\nredis.register_function{function_name='nw', callback=function(keys) return redis.call('set', keys[1], 'x') end, flags={'no-writes'}}"],
    &["fcall", "nw", "1", "k"],
    &["function", "load", "#!lua name=e\nredis.register_function('e1', function() error('boom') end)"],
    &["fcall", "e1", "0"],
    &["function", "load", "#!lua name=e2\nredis.register_function('e2', function() return redis.call('nosuch') end)"],
    &["fcall", "e2", "0"],
    &["function", "load", "#!lua name=e3\nredis.register_function('e3', function() return KEYS end)"],
    &["fcall", "e3", "0"],
    &["function", "load", "#!lua name=e4\nredis.register_function('e4', function() x = 1 end)"],
    &["fcall", "e4", "0"],
    &["function", "load", "#!lua name=e5\nredis.register_function('e5', function(keys, args) return {keys, args, #keys, type(redis.register_function), redis.pcall('nosuch')} end)"],
    &["fcall", "e5", "2", "a", "b", "c", "d"],
    &["fcall", "e5", "0"],
    &["function", "load", "#!lua name=e6\nredis.register_function('e6', function() return {double=1.5, {ok='st'}, {err='inner'}} end)"],
    &["fcall", "e6", "0"],
    &["fcall", "nope", "0"],
    &["fcall", "e5", "3", "a"],
    &["fcall", "e5", "-1", "a"],
    &["fcall", "e5", "x", "a"],
    &["fcall", "nope", "x", "a"],
    &["fcall"],
    &["fcall", "e5"],
    &["fcall_ro", "e5"],
    &["eval_ro", "#!lua\nreturn 1", "0"],
    &["eval_ro", "#!lua flags=no-writes\nreturn 1", "0"],
    &["function", "flush", "bogus"],
    &["function", "flush", "sync", "async"],
    &["function", "restore"],
    &["function", "restore", "abc"],
    &["function", "restore", "abc", "bogus"],
    &["function", "restore", "abc", "flush", "x"],
    &["function", "stats", "x"],
    &["function", "kill"],
    &["function", "kill", "x"],
    &["function", "help"],
    &["function", "bogus"],
    &["function"],
    &["function", "flush"],
    &["function", "list"],
    &["fcall", "e5", "0"],
    &["function", "flush", "sync"],
    &["function", "flush", "ASYNC"],
    &["function", "stats"],
    // Through MULTI.
    &["function", "load", "#!lua name=m\nredis.register_function('incr_m', function() return redis.call('incr', 'm') end)"],
    &["multi"],
    &["fcall", "incr_m", "0"],
    &["fcall", "incr_m", "0"],
    &["exec"],
    &["function", "delete", "m"],
];

/// The same FUNCTION and FCALL requests to redis-server 7 and a kura node: the same bytes.
#[test]
fn functions_answer_as_redis_7() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let redis_server = RedisServer::start();
    let mut kura = Raw::connect(node.addr());
    let mut reference = Raw::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, redis_server.port)));
    let mut differ = Vec::new();
    let mut compare = |case: &[&[u8]], kura: &mut Raw, reference: &mut Raw| {
        kura.send(case);
        reference.send(case);
        let (ours, theirs) = (kura.reply(), reference.reply());
        if ours != theirs {
            differ.push(format!(
                "{:?}\n  redis: {:?}\n  kura:  {:?}",
                case.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>(),
                String::from_utf8_lossy(&theirs),
                String::from_utf8_lossy(&ours)
            ));
        }
        theirs
    };
    for case in FUNCTION_CASES {
        let argv: Vec<&[u8]> = case.iter().map(|a| a.as_bytes()).collect();
        compare(&argv, &mut kura, &mut reference);
    }
    // Redis's DUMP of one library restores into kura (APPEND, REPLACE, FLUSH), and kura's
    // into Redis.
    let lib = "#!lua name=dumped\nredis.register_function('dumped', function(keys, args) return 'restored' end)";
    compare(&[b"function", b"load", lib.as_bytes()], &mut kura, &mut reference);
    let payload = reference.call(&["function", "dump"]);
    let body = &payload[payload.iter().position(|&b| b == b'\n').expect("a bulk") + 1..payload.len() - 2];
    for case in [
        &[&b"function"[..], b"restore", body][..],
        &[b"function", b"restore", body, b"append"],
        &[b"function", b"restore", body, b"REPLACE"],
        &[b"fcall", b"dumped", b"0"],
        &[b"function", b"flush"],
        &[b"function", b"restore", body],
        &[b"fcall", b"dumped", b"0"],
        &[b"function", b"load", b"#!lua name=other\nredis.register_function('dumped', function() return 1 end)"],
        &[b"function", b"load", b"#!lua name=other\nredis.register_function('other', function() return 1 end)"],
        &[b"function", b"restore", body, b"flush"],
        &[b"function", b"stats"],
        &[b"fcall", b"other", b"0"],
        &[b"function", b"list"],
    ] {
        compare(case, &mut kura, &mut reference);
    }
    // RESP3: maps, sets and nulls of FUNCTION LIST and STATS (HELLO's reply describes the
    // server: not compared).
    kura.call(&["hello", "3"]);
    reference.call(&["hello", "3"]);
    for case in [
        &["function", "load", "#!lua name=r3\nredis.register_function{function_name='r3', callback=function() return redis.setresp(3) end, flags={'no-writes', 'no-cluster'}}"][..],
        &["function", "list", "libraryname", "r*"],
        &["function", "list", "libraryname", "r3", "withcode"],
        &["function", "stats"],
        &["fcall", "r3", "0"],
        &["function", "load", "#!lua name=r4\nredis.register_function{function_name='r4', callback=function() return 1 end, description='d'}"],
        &["function", "list", "libraryname", "r4"],
    ] {
        let argv: Vec<&[u8]> = case.iter().map(|a| a.as_bytes()).collect();
        compare(&argv, &mut kura, &mut reference);
    }
    assert!(differ.is_empty(), "{} replies differ:\n{}", differ.len(), differ.join("\n"));
}

const BUSY: &str = "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";

/// A script past `busy-reply-threshold` on a node alone: other clients get BUSY (but what
/// Redis lets through), SCRIPT KILL ends it with Redis's error, and the node serves again; a
/// script that wrote cannot be killed (UNKILLABLE), SHUTDOWN NOSAVE stops the node.
#[test]
fn a_busy_script_is_killed() {
    let mut node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let mut admin = Raw::connect(node.addr());
    assert_eq!(admin.text(&["config", "set", "busy-reply-threshold", "100"]), "+OK\r\n");
    assert_eq!(admin.text(&["config", "get", "lua-time-limit"]), "*2\r\n$14\r\nlua-time-limit\r\n$3\r\n100\r\n");

    let mut looping = Raw::connect(node.addr());
    looping.send(&[b"eval", b"while true do end", b"0"]);
    wait_until("PING answered BUSY", Duration::from_secs(20), || (admin.text(&["ping"]) == BUSY).then_some(()));
    assert_eq!(admin.text(&["get", "x"]), BUSY);
    assert_eq!(admin.text(&["multi"]), "+OK\r\n", "MULTI is allowed while busy, as in Redis");
    assert_eq!(admin.text(&["discard"]), "+OK\r\n");
    assert_eq!(admin.text(&["script", "kill"]), "+OK\r\n");
    let killed = String::from_utf8_lossy(&looping.reply()).into_owned();
    assert_eq!(
        killed,
        "-ERR Script killed by user with SCRIPT KILL... script: 694a5fe1ddb97a4c6a1bf299d9537c7d3d0f84e7, on @user_script:1.\r\n"
    );
    assert_eq!(admin.text(&["ping"]), "+PONG\r\n");
    assert_eq!(admin.text(&["script", "kill"]), "-NOTBUSY No scripts in execution right now.\r\n");

    // A script that wrote cannot be killed.
    looping.send(&[b"eval", b"redis.call('set','x','1') while true do end", b"0"]);
    wait_until("PING answered BUSY", Duration::from_secs(20), || (admin.text(&["ping"]) == BUSY).then_some(()));
    assert!(admin
        .text(&["script", "kill"])
        .starts_with("-UNKILLABLE Sorry the script already executed write commands"));
    admin.send(&[b"shutdown", b"nosave"]);
    assert!(node.wait_exit().success() || !node.is_running());
}

/// Scripts are cluster state: loaded through one node, EVALSHA works through every node,
/// also one that joins later; keys of a script live on different nodes; KEYS, DBSIZE and
/// FLUSHALL leave the stored scripts alone; SCRIPT FLUSH removes them.
#[test]
fn scripts_are_cluster_state() {
    let mut cluster = Cluster::start(3, &[]);
    let mut one = Raw::connect(cluster.nodes[0].addr());
    let body = "redis.call('set',KEYS[1],ARGV[1]) redis.call('set',KEYS[2],ARGV[2]) \
                return {redis.call('get',KEYS[1]), redis.call('get',KEYS[2])}";
    let sha = String::from_utf8(one.call(&["script", "load", body])).expect("utf8");
    let sha = sha.lines().nth(1).expect("a bulk sha").to_owned();
    assert_eq!(sha.len(), 40);
    for (i, node) in cluster.nodes.iter().enumerate().skip(1) {
        let mut c = Raw::connect(node.addr());
        let (k1, k2) = (format!("left{i}"), format!("right{i}"));
        let reply = c.text(&["evalsha", &sha, "2", &k1, &k2, "a", "b"]);
        assert_eq!(reply, "*2\r\n$1\r\na\r\n$1\r\nb\r\n", "EVALSHA through node {}", i + 1);
        assert_eq!(c.text(&["script", "exists", &sha]), "*1\r\n:1\r\n");
    }
    // The keys are on different nodes' preference lists (a script is key by key there).
    let owners: std::collections::HashSet<Vec<String>> =
        (0..20).map(|i| harness::preflist(&cluster.nodes[0], &format!("k{i}"))).collect();
    assert!(owners.len() > 1);
    let mut two = Raw::connect(cluster.nodes[1].addr());
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let mut args: Vec<&str> = vec!["eval", "for i, k in ipairs(KEYS) do redis.call('incr', k) end return #KEYS", "20"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(two.text(&args), ":20\r\n");
    for k in &keys {
        assert_eq!(one.text(&["get", k]), "$1\r\n1\r\n");
    }
    // Not a key to clients; FLUSHALL keeps scripts.
    assert_eq!(two.text(&["dbsize"]), ":24\r\n");
    assert!(!two.text(&["keys", "*"]).contains("script"));
    assert_eq!(two.text(&["flushall"]), "+OK\r\n");
    assert_eq!(two.text(&["dbsize"]), ":0\r\n");
    let three = cluster.nodes[2].addr();
    assert_eq!(Raw::connect(three).text(&["evalsha", &sha, "2", "p", "q", "1", "2"]), "*2\r\n$1\r\n1\r\n$1\r\n2\r\n");

    // A node that joins later.
    let i = cluster.add(&[]);
    cluster.wait_converged(Duration::from_secs(60));
    let mut late = Raw::connect(cluster.nodes[i].addr());
    assert_eq!(late.text(&["evalsha", &sha, "2", "x", "y", "3", "4"]), "*2\r\n$1\r\n3\r\n$1\r\n4\r\n");

    // SCRIPT FLUSH through one node reaches every node: one that had not cached the script
    // and one that had (it ran it) both answer NOSCRIPT at once.
    let mut fresh = Raw::connect(cluster.nodes[2].addr());
    let other = String::from_utf8(one.call(&["script", "load", "return 'other'"])).expect("utf8");
    let other = other.lines().nth(1).expect("sha").to_owned();
    assert_eq!(late.text(&["evalsha", &other, "0"]), "$5\r\nother\r\n", "cached where it ran");
    assert_eq!(one.text(&["script", "flush"]), "+OK\r\n");
    assert_eq!(fresh.text(&["evalsha", &other, "0"]), "-NOSCRIPT No matching script. Please use EVAL.\r\n");
    assert_eq!(late.text(&["evalsha", &other, "0"]), "-NOSCRIPT No matching script. Please use EVAL.\r\n");
    assert_eq!(late.text(&["script", "exists", &sha, &other]), "*2\r\n:0\r\n:0\r\n");
    assert_eq!(one.text(&["evalsha", &sha, "0"]), "-NOSCRIPT No matching script. Please use EVAL.\r\n");
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// Function libraries are cluster state: loaded through one node, FCALL works through every
/// node, also one that joins later; LOAD REPLACE, DELETE, FLUSH and RESTORE through one node
/// change what every node runs at once (also nodes that had run the old functions).
#[test]
fn functions_are_cluster_state() {
    let mut cluster = Cluster::start(3, &[]);
    let mut c: Vec<Raw> = cluster.nodes.iter().map(|n| Raw::connect(n.addr())).collect();
    let v1 = "#!lua name=lib\nredis.register_function('version', function() return 'v1' end)\n\
              redis.register_function('put', function(keys, args) return redis.call('set', keys[1], args[1]) end)";
    assert_eq!(c[0].text(&["function", "load", v1]), bulk("lib"));
    for (i, conn) in c.iter_mut().enumerate() {
        assert_eq!(conn.text(&["fcall", "version", "0"]), bulk("v1"), "through node {}", i + 1);
        assert_eq!(conn.text(&["fcall", "put", "1", &format!("k{i}"), "x"]), "+OK\r\n");
        assert!(conn.text(&["function", "list"]).contains("$3\r\nlib\r\n"));
    }
    // Replaced through another node: every node runs the new code.
    let v2 = "#!lua name=lib\nredis.register_function('version', function() return 'v2' end)";
    assert_eq!(c[1].text(&["function", "load", "replace", v2]), bulk("lib"));
    for conn in c.iter_mut() {
        assert_eq!(conn.text(&["fcall", "version", "0"]), bulk("v2"));
        assert_eq!(conn.text(&["fcall", "put", "1", "k", "x"]), "-ERR Function not found\r\n");
    }
    // Deleted through a third node.
    assert_eq!(c[2].text(&["function", "delete", "lib"]), "+OK\r\n");
    for conn in c.iter_mut() {
        assert_eq!(conn.text(&["fcall", "version", "0"]), "-ERR Function not found\r\n");
        assert_eq!(conn.text(&["function", "list"]), "*0\r\n");
    }
    // Restored from a dump, then flushed.
    assert_eq!(c[0].text(&["function", "load", v1]), bulk("lib"));
    let payload = c[0].call(&["function", "dump"]);
    let body = payload[payload.iter().position(|&b| b == b'\n').expect("a bulk") + 1..payload.len() - 2].to_vec();
    assert_eq!(c[1].text(&["fcall", "version", "0"]), bulk("v1"));
    assert_eq!(c[2].text(&["function", "flush", "sync"]), "+OK\r\n");
    assert_eq!(c[1].text(&["fcall", "version", "0"]), "-ERR Function not found\r\n");
    c[1].send(&[b"function", b"restore", &body]);
    assert_eq!(String::from_utf8_lossy(&c[1].reply()), "+OK\r\n");
    for conn in c.iter_mut() {
        assert_eq!(conn.text(&["fcall", "version", "0"]), bulk("v1"));
    }
    assert_eq!(c[0].text(&["function", "stats"]).matches(":2\r\n").count(), 1, "one library of two functions");

    // A node that joins later finds the library; FLUSHALL leaves libraries alone.
    assert_eq!(c[0].text(&["flushall"]), "+OK\r\n");
    let i = cluster.add(&[]);
    cluster.wait_converged(Duration::from_secs(60));
    let mut late = Raw::connect(cluster.nodes[i].addr());
    assert_eq!(late.text(&["fcall", "version", "0"]), bulk("v1"));
    assert_eq!(late.text(&["dbsize"]), ":0\r\n");
}

/// A function past `busy-reply-threshold` on a node alone: BUSY names FUNCTION KILL, SCRIPT
/// KILL refuses, FUNCTION STATS shows it, FUNCTION KILL ends it with Redis's error.
#[test]
fn a_busy_function_is_killed() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let mut admin = Raw::connect(node.addr());
    assert_eq!(admin.text(&["config", "set", "busy-reply-threshold", "100"]), "+OK\r\n");
    let lib = "#!lua name=busy\nredis.register_function('spin', function() while true do end end)";
    assert_eq!(admin.text(&["function", "load", lib]), bulk("busy"));
    let busy = "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";
    let mut looping = Raw::connect(node.addr());
    looping.send(&[b"fcall", b"spin", b"0"]);
    wait_until("PING answered BUSY", Duration::from_secs(20), || (admin.text(&["ping"]) == busy).then_some(()));
    assert_eq!(admin.text(&["script", "kill"]), busy);
    let stats = admin.text(&["function", "stats"]);
    assert!(
        stats.starts_with("*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n$7\r\ncommand\r\n*3\r\n$5\r\nfcall\r\n$4\r\nspin\r\n$1\r\n0\r\n$11\r\nduration_ms\r\n:"),
        "{stats}"
    );
    assert_eq!(admin.text(&["function", "kill"]), "+OK\r\n");
    assert_eq!(
        String::from_utf8_lossy(&looping.reply()),
        "-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.\r\n"
    );
    assert_eq!(admin.text(&["function", "kill"]), "-NOTBUSY No scripts in execution right now.\r\n");
    // A script running: FUNCTION KILL refuses it.
    looping.send(&[b"eval", b"while true do end", b"0"]);
    wait_until("PING answered BUSY", Duration::from_secs(20), || (admin.text(&["ping"]) == BUSY).then_some(()));
    assert_eq!(admin.text(&["function", "kill"]), BUSY);
    assert_eq!(admin.text(&["function", "stats"]), BUSY);
    assert_eq!(admin.text(&["script", "kill"]), "+OK\r\n");
    let _ = looping.reply();
    assert_eq!(admin.text(&["ping"]), "+PONG\r\n");
}

/// A request that arrives while an FCALL is starting (it holds the node's gate but reads the
/// libraries before it registers as running) answers BUSY once the function passes the
/// threshold, instead of waiting for the gate as long as the function runs (a CI run of
/// `a_busy_function_is_killed` once waited 30 s for such a PING). Each round loads a new
/// version of the library, so the FCALL reads the libraries again, and PINGs from several
/// connections race it.
#[test]
fn requests_racing_a_starting_function_answer_busy() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let mut admin = Raw::connect(node.addr());
    assert_eq!(admin.text(&["config", "set", "busy-reply-threshold", "100"]), "+OK\r\n");
    let busy = "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";
    let mut pingers: Vec<Raw> = (0..8).map(|_| Raw::connect(node.addr())).collect();
    let mut looping = Raw::connect(node.addr());
    for round in 0..5 {
        let lib = format!(
            "#!lua name=busy\nredis.register_function('spin', function() local v = {round} while true do end end)"
        );
        assert_eq!(admin.text(&["function", "load", "replace", &lib]), bulk("busy"));
        looping.send(&[b"fcall", b"spin", b"0"]);
        for pinger in &mut pingers {
            pinger.send(&[b"ping"]);
        }
        for pinger in &mut pingers {
            let reply = String::from_utf8_lossy(&pinger.reply()).into_owned();
            assert!(reply == busy || reply == "+PONG\r\n", "round {round}: {reply}");
        }
        wait_until("the function is killed", Duration::from_secs(20), || {
            (admin.text(&["function", "kill"]) == "+OK\r\n").then_some(())
        });
        assert!(String::from_utf8_lossy(&looping.reply()).starts_with("-ERR Script killed by user"), "round {round}");
    }
}

/// Issue 22: a script with keys runs at the deciding owner of its first key, holding every key
/// it declares. Many clients on every node run read-then-write scripts over two keys of one
/// hash tag (half of them naming the keys in the other order) while others INCR one of them:
/// no update is lost. Without the rule (scripts key by key where they arrive, or keys of one
/// tag on different nodes) concurrent scripts overwrite each other's writes.
#[test]
fn scripts_over_one_tag_are_atomic_in_a_cluster() {
    for (nodes, n) in [(3usize, "3"), (4, "2")] {
        let cluster = Cluster::start(nodes, &["--n", n]);
        let (a, b) = ("{ctr}a", "{ctr}b");
        assert_eq!(
            harness::preflist(&cluster.nodes[0], a),
            harness::preflist(&cluster.nodes[0], b),
            "keys of one tag share their preference list"
        );
        let body = "local x = tonumber(redis.call('get', KEYS[1]) or '0') \
                    local y = tonumber(redis.call('get', KEYS[2]) or '0') \
                    redis.call('set', KEYS[1], x + 1) redis.call('set', KEYS[2], y + 1) return x + 1";
        let lib = "#!lua name=ctr\nredis.register_function('bump', function(keys) \
                   local x = tonumber(redis.call('get', keys[1]) or '0') \
                   local y = tonumber(redis.call('get', keys[2]) or '0') \
                   redis.call('set', keys[1], x + 1) redis.call('set', keys[2], y + 1) return x + 1 end)";
        assert_eq!(Raw::connect(cluster.nodes[nodes - 1].addr()).text(&["function", "load", lib]), bulk("ctr"));
        const ROUNDS: usize = 20;
        let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.addr()).collect();
        let mut clients = Vec::new();
        for addr in &addrs {
            for kind in 0..4 {
                let addr = *addr;
                clients.push(std::thread::spawn(move || {
                    let mut c = Raw::connect(addr);
                    for _ in 0..ROUNDS {
                        let reply = match kind {
                            0 => c.text(&["eval", body, "2", a, b]),
                            1 => c.text(&["eval", body, "2", b, a]),
                            2 => c.text(&["fcall", "bump", "2", a, b]),
                            _ => c.text(&["incr", b]),
                        };
                        assert!(reply.starts_with(':'), "{reply}");
                    }
                }));
            }
        }
        for c in clients {
            c.join().expect("a client");
        }
        let scripts = nodes * 3 * ROUNDS;
        let mut check = Raw::connect(addrs[0]);
        assert_eq!(check.text(&["get", a]), bulk(&scripts.to_string()), "{nodes} nodes, N={n}: {a}");
        assert_eq!(check.text(&["get", b]), bulk(&(scripts + nodes * ROUNDS).to_string()), "{nodes} nodes, N={n}: {b}");
    }
}

/// Index of the node whose cluster address is first in `key`'s preference list.
fn decider(cluster: &Cluster, key: &str) -> usize {
    cluster.preflist(0, key)[0]
}

/// A script forwarded to its key's decider past `busy-reply-threshold`: a script on its key
/// through another node waits for it and gets BUSY, a read-modify-write of the key gets BUSY
/// at its timeout; SCRIPT KILL (FUNCTION KILL) through the client's node or the decider ends
/// it with Redis's error; one that wrote is UNKILLABLE, and its client hears when its decider
/// goes away.
#[test]
fn a_forwarded_busy_script_is_killed() {
    let mut cluster = Cluster::start(3, &[]);
    let key = "{busy}k";
    let d = decider(&cluster, key);
    let (o, other) = ((d + 1) % 3, (d + 2) % 3);
    for node in &cluster.nodes {
        assert_eq!(Raw::connect(node.addr()).text(&["config", "set", "busy-reply-threshold", "200"]), "+OK\r\n");
    }
    let mut at_o = Raw::connect(cluster.nodes[o].addr());
    let mut at_d = Raw::connect(cluster.nodes[d].addr());
    let mut at_other = Raw::connect(cluster.nodes[other].addr());
    let killed = "-ERR Script killed by user with SCRIPT KILL... script: 694a5fe1ddb97a4c6a1bf299d9537c7d3d0f84e7, on @user_script:1.\r\n";
    for kill_through in [o, d] {
        let mut looping = Raw::connect(cluster.nodes[o].addr());
        looping.send(&[b"eval", b"while true do end", b"1", key.as_bytes()]);
        wait_until("a script on the key answered BUSY", Duration::from_secs(20), || {
            (at_other.text(&["eval", "return 1", "1", key]) == BUSY).then_some(())
        });
        assert_eq!(at_other.text(&["incr", key]), BUSY, "a read-modify-write waits until its timeout");
        assert_eq!(at_o.text(&["eval", "return 'no key'", "0"]), "$6\r\nno key\r\n", "other work goes on");
        let mut killer = Raw::connect(cluster.nodes[kill_through].addr());
        assert_eq!(killer.text(&["script", "kill"]), "+OK\r\n", "through node {kill_through}");
        assert_eq!(String::from_utf8_lossy(&looping.reply()), killed);
        assert_eq!(at_other.text(&["eval", "return redis.call('incr', KEYS[1])", "1", key]), ":1\r\n");
        assert_eq!(at_o.text(&["script", "kill"]), "-NOTBUSY No scripts in execution right now.\r\n");
        assert_eq!(at_other.text(&["del", key]), ":1\r\n");
    }
    // A function, killed through its client's node.
    let lib = "#!lua name=spin\nredis.register_function('spin', function(keys) while true do end end)";
    assert_eq!(at_o.text(&["function", "load", lib]), bulk("spin"));
    let mut looping = Raw::connect(cluster.nodes[o].addr());
    looping.send(&[b"fcall", b"spin", b"1", key.as_bytes()]);
    wait_until("a script on the key answered BUSY", Duration::from_secs(20), || {
        (at_other.text(&["eval", "return 1", "1", key]) == BUSY).then_some(())
    });
    assert!(at_d.text(&["function", "stats"]).contains("$4\r\nspin\r\n"), "FUNCTION STATS at the decider");
    assert_eq!(at_o.text(&["function", "kill"]), "+OK\r\n");
    assert_eq!(
        String::from_utf8_lossy(&looping.reply()),
        "-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.\r\n"
    );
    // One that wrote cannot be killed; its client hears when the decider goes away.
    looping.send(&[b"eval", b"redis.call('set', KEYS[1], 'x') while true do end", b"1", key.as_bytes()]);
    wait_until("a script on the key answered BUSY", Duration::from_secs(20), || {
        (at_other.text(&["eval", "return 1", "1", key]) == BUSY).then_some(())
    });
    assert!(at_o.text(&["script", "kill"]).starts_with("-UNKILLABLE Sorry the script already executed write commands"));
    cluster.nodes[d].kill9();
    let lost = String::from_utf8_lossy(&looping.reply()).into_owned();
    assert!(
        lost.starts_with("-NOQUORUM the script was sent to node") && lost.ends_with("it may have run\r\n"),
        "{lost}"
    );
}
