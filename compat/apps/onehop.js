// ioredis's Cluster against kura (issue 25: one hop).
//
//     node onehop.js HOST:PORT...
//
// 1,000 SET/GET of keys spread over every slot, then MSET/MGET of 50 keys of one hash tag,
// through the cluster client (it reads CLUSTER SLOTS and sends each key to its slot's node).
const Redis = require("ioredis");

async function main() {
  const nodes = process.argv.slice(2).map((a) => {
    const at = a.lastIndexOf(":");
    return { host: a.slice(0, at), port: Number(a.slice(at + 1)) };
  });
  const cluster = new Redis.Cluster(nodes, { slotsRefreshTimeout: 20000, redisOptions: { commandTimeout: 20000 } });
  for (let i = 0; i < 1000; i++) await cluster.set(`onehopjs:${i}`, `v${i}`);
  for (let i = 0; i < 1000; i++) {
    const got = await cluster.get(`onehopjs:${i}`);
    if (got !== `v${i}`) throw new Error(`onehopjs:${i}: ${got}`);
  }
  const keys = [];
  const flat = [];
  for (let i = 0; i < 50; i++) {
    keys.push(`{cartjs}:${i}`);
    flat.push(`{cartjs}:${i}`, `item${i}`);
  }
  await cluster.mset(...flat);
  const got = await cluster.mget(...keys);
  for (let i = 0; i < 50; i++) if (got[i] !== `item${i}`) throw new Error(`MGET: ${JSON.stringify(got)}`);
  console.log(JSON.stringify({ masters: cluster.nodes("master").length }));
  await cluster.quit();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
