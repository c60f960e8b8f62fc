// An official Node client against a cluster of esdb-hosts with the grpc
// plugin, given every node in its connection string (gossip discovery).
// Run by tests/cluster/cluster_test.cc ([cluster-gossip]), which starts the nodes and, while
// this runs, kills the node the client chose:
//   node cluster.mjs <eventstore|kurrent> <stream> <count> <host:port,host:port,...>
// Appends events 0..count-1 to <stream> one at a time, each with its own
// event id; an append that fails is resent with the same id (idempotent)
// until it succeeds or 60 s have passed. Prints one JSON line per append
// that needed a retry and, at the end, {"appended", "retried", "errors"}.
// Exit code 0 when every event was appended.
import { randomUUID } from "node:crypto";

import { clientOf } from "./client_kind.mjs";

const [kind, stream, countText, hosts] = process.argv.slice(2);
const { lib, Client, scheme } = await clientOf(kind);
const { jsonEvent } = lib;

const client = Client.connectionString(
  `${scheme}://${hosts}?tls=false&nodePreference=leader&discoveryInterval=100&gossipTimeout=3&maxDiscoverAttempts=50`,
);
const count = Number(countText);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let appended = 0;
let retried = 0;
const errors = [];
for (let n = 0; n < count; n++) {
  const event = jsonEvent({ id: randomUUID(), type: "Counted", data: { n } });
  const deadline = Date.now() + 60000;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      await client.appendToStream(stream, event);
      appended++;
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        errors.push(`event ${n}: ${e && e.message ? e.message : e}`);
        break;
      }
      await sleep(200);
    }
  }
  if (attempts > 1) {
    retried++;
    console.log(JSON.stringify({ n, attempts }));
  }
  if (errors.length > 0) break;
}
console.log(JSON.stringify({ appended, retried, errors }));
await client.dispose();
process.exit(appended === count ? 0 : 1);
