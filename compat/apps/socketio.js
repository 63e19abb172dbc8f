// Socket.IO's Redis adapter (npm's @socket.io/redis-adapter over ioredis) against kura: two
// Socket.IO servers, each with its own publisher and subscriber connections, two
// socket.io-client clients connected to each. io.emit from one server reaches the clients of
// both, a room broadcast from the other reaches the room's members on both and no one else,
// io.fetchSockets() lists the sockets of both servers, serverSideEmit with an ack gets the other
// server's answer (the adapter counts servers with PUBSUB NUMSUB), socketsJoin moves remote
// sockets into a room. Then the same with the sharded adapter (createShardedAdapter:
// SSUBSCRIBE, SPUBLISH, PUBSUB SHARDNUMSUB).
//
// Usage: node socketio.js HOST:PORT [HOST:PORT ...] [--cluster]
// The first server's Redis connections go to the first node, the second server's to the second
// node (the first if alone). Exits non-zero on the first failed check.

const http = require("http");
const Redis = require("ioredis");
const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { io: connect } = require("socket.io-client");

const nodes = process.argv
  .slice(2)
  .filter((a) => !a.startsWith("--"))
  .map((a) => ({ host: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)) }));
const run = Math.random().toString(16).slice(2, 10);

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

async function waitFor(what, cond, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    check(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10)); // poll interval, bounded by the deadline
  }
}

async function startServer(node, make) {
  const pub = new Redis({ ...node, maxRetriesPerRequest: 1 });
  const sub = pub.duplicate();
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: make(pub, sub, { key: `socket.io-${run}`, channelPrefix: `socket.io-${run}` }) });
  io.on("connection", (socket) => {
    if (socket.handshake.query.room === "yes") socket.join("room");
  });
  io.on("ping", (payload, ack) => ack(`pong ${payload} from ${io.name}`));
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  io.name = `server:${httpServer.address().port}`;
  return { io, httpServer, pub, sub, port: httpServer.address().port };
}

function startClient(server, room) {
  const socket = connect(`http://127.0.0.1:${server.port}`, {
    transports: ["websocket"],
    query: { room: room ? "yes" : "no" },
    reconnection: false,
  });
  socket.got = [];
  socket.onAny((event, ...args) => socket.got.push([event, ...args]));
  return socket;
}

const received = (socket, event) => socket.got.filter(([e]) => e === event);

async function scenario(label, make) {
  const a = await startServer(nodes[0], make);
  const b = await startServer(nodes[1 % nodes.length], make);
  const adapterA = a.io.of("/").adapter;
  const adapterB = b.io.of("/").adapter;
  // Each adapter subscribes on start; it is ready once both count two servers.
  await waitFor(`${label}: both servers to count two servers`, async () => {
    return (await adapterA.serverCount()) === 2 && (await adapterB.serverCount()) === 2;
  });
  const clients = [startClient(a, true), startClient(a, false), startClient(b, true), startClient(b, false)];
  await waitFor(`${label}: clients connected`, () => clients.every((c) => c.connected));
  await waitFor(`${label}: sockets registered`, () => a.io.of("/").sockets.size === 2 && b.io.of("/").sockets.size === 2);

  // io.emit from one server reaches the clients of both.
  a.io.emit("hello", `from a ${run}`);
  await waitFor(`${label}: io.emit to reach all four clients`, () => clients.every((c) => received(c, "hello").length === 1));
  check(clients.every((c) => received(c, "hello")[0][1] === `from a ${run}`), `${label}: io.emit payload`);

  // A room broadcast from the other server reaches the room's members on both servers only.
  b.io.to("room").emit("room-news", 42);
  await waitFor(`${label}: room broadcast to reach the members`, () => received(clients[0], "room-news").length === 1 && received(clients[2], "room-news").length === 1);
  b.io.emit("fence"); // sent after the room broadcast, through the same publisher
  await waitFor(`${label}: the fence`, () => clients.every((c) => received(c, "fence").length === 1));
  check(received(clients[1], "room-news").length === 0 && received(clients[3], "room-news").length === 0, `${label}: non-members got nothing`);
  a.io.except("room").emit("outside", 1);
  await waitFor(`${label}: except(room) broadcast`, () => received(clients[1], "outside").length === 1 && received(clients[3], "outside").length === 1);

  // fetchSockets through one server lists the sockets of both, with their rooms.
  const sockets = await a.io.fetchSockets();
  const ids = sockets.map((s) => s.id).sort();
  check(JSON.stringify(ids) === JSON.stringify(clients.map((c) => c.id).sort()), `${label}: fetchSockets ${ids}`);
  const inRoom = (await b.io.in("room").fetchSockets()).map((s) => s.id).sort();
  check(JSON.stringify(inRoom) === JSON.stringify([clients[0].id, clients[2].id].sort()), `${label}: fetchSockets of the room ${inRoom}`);

  // serverSideEmit with an ack: the other server answers.
  const replies = await a.io.serverSideEmitWithAck("ping", run);
  check(JSON.stringify(replies) === JSON.stringify([`pong ${run} from ${b.io.name}`]), `${label}: serverSideEmitWithAck ${JSON.stringify(replies)}`);

  // socketsJoin through one server moves the other server's socket into a room.
  a.io.in(clients[3].id).socketsJoin("late");
  await waitFor(`${label}: remote socketsJoin`, () => b.io.of("/").sockets.get(clients[3].id).rooms.has("late"));
  a.io.to("late").emit("late-news", 1);
  await waitFor(`${label}: broadcast to the joined room`, () => received(clients[3], "late-news").length === 1);

  for (const c of clients) c.disconnect();
  for (const s of [a, b]) {
    await new Promise((resolve) => s.io.close(resolve));
    s.pub.disconnect();
    s.sub.disconnect();
  }
  console.log(`socketio.js: ${label} passed`);
}

async function main() {
  await scenario("redis adapter", createAdapter);
  await scenario("sharded adapter", (pub, sub, opts) => createShardedAdapter(pub, sub, { channelPrefix: opts.channelPrefix }));
  console.log("socketio.js: all checks passed");
}

main().catch((e) => {
  console.error("FAILED:", e);
  process.exit(1);
});
