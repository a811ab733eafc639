// @langchain/redis's RedisChatMessageHistory on a node-redis client, for read.mjs and write.mjs.
//
// The class uses its sessionId as the Redis key, verbatim (no prefix): pass the full key,
// "message_store:<session>". Before every call it connects the client unless
// client.isReady (ensureReadiness).
import { RedisChatMessageHistory } from "@langchain/redis";
import { createClient, createCluster } from "redis";

const CLUSTER_SCHEME = "redis+cluster://";

/** A client for a redis:// url, or a cluster client for redis-chat-history's redis+cluster://seed,seed. */
function clientFor(url) {
  if (!url.startsWith(CLUSTER_SCHEME)) return createClient({ url });
  const seeds = url.slice(CLUSTER_SCHEME.length).split("/")[0].split(",");
  const cluster = createCluster({ rootNodes: seeds.map((seed) => ({ url: `redis://${seed}` })) });
  // node-redis's cluster client has no isReady: without it every call after the first
  // connects again and fails with "Cluster already open" (addMessages makes one per message).
  Object.defineProperty(cluster, "isReady", { get: () => cluster.isOpen });
  return cluster;
}

/** Run `use(history)` on the history at `key`, then close the connection. */
export async function withHistory(url, key, use) {
  const client = clientFor(url);
  client.on("error", (error) => {
    console.error(`redis client: ${error.message}`);
    process.exit(1);
  });
  try {
    return await use(new RedisChatMessageHistory({ sessionId: key, client }));
  } finally {
    if (client.isOpen) await client.quit();
  }
}

/** The two command-line arguments, or exit with a usage line. */
export function urlAndKey(usage) {
  const [url, key] = process.argv.slice(2);
  if (!url || !key) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  return [url, key];
}
