// One scenario of an official Node client against a running esdb-host with
// the grpc plugin. Run by grpc_node_test (../grpc_node_test.cc), which
// starts the host and passes:
//   node scenario.mjs <eventstore|kurrent> <grpc port> <http port>
// Exit code 0 when every check passed; each failure is printed.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

const [kind, grpcPort, httpPort] = process.argv.slice(2);
const lib = kind === "kurrent" ? await import("@kurrent/kurrentdb-client") : await import("@eventstore/db-client");
const Client = kind === "kurrent" ? lib.KurrentDBClient : lib.EventStoreDBClient;
const { jsonEvent, binaryEvent, ANY, NO_STREAM, STREAM_EXISTS, START, END, FORWARDS, BACKWARDS, eventTypeFilter } = lib;
// The option naming the expected state of an append: `streamState` in the Kurrent client.
const appendOpt = (v) => (kind === "kurrent" ? { streamState: v } : { expectedRevision: v });

const client = Client.connectionString(`esdb://127.0.0.1:${grpcPort}?tls=false`);
const run = `${kind}-${randomUUID().slice(0, 8)}`;
let failures = 0;

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

async function collect(iterable) {
  const out = [];
  for await (const resolved of iterable) out.push(resolved.event);
  return out;
}

async function expectError(promise, type) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.type, type, `expected a ${type} error, got ${e.type}: ${e.message}`);
    return e;
  }
  assert.fail(`expected a ${type} error, got success`);
}

const ev = (type, data, metadata) => jsonEvent({ type, data, metadata });

await check("append with each expected-version kind", async () => {
  const s = `${run}-append`;
  const a = await client.appendToStream(s, ev("Created", { n: 0 }), appendOpt(NO_STREAM));
  assert.equal(a.nextExpectedRevision, 0n);
  const b = await client.appendToStream(s, [ev("Changed", { n: 1 }), ev("Changed", { n: 2 })], appendOpt(0n));
  assert.equal(b.nextExpectedRevision, 2n);
  assert.ok(b.position.commit > a.position.commit);
  const c = await client.appendToStream(s, ev("Changed", { n: 3 }), appendOpt(STREAM_EXISTS));
  assert.equal(c.nextExpectedRevision, 3n);
  const d = await client.appendToStream(s, ev("Changed", { n: 4 }), appendOpt(ANY));
  assert.equal(d.nextExpectedRevision, 4n);
});

await check("wrong expected version is the typed error with the current revision", async () => {
  const s = `${run}-wev`;
  await client.appendToStream(s, ev("A", {}), appendOpt(NO_STREAM));
  const e = await expectError(client.appendToStream(s, ev("B", {}), appendOpt(5n)), "wrong-expected-version");
  if (kind === "kurrent") {
    assert.equal(e.actualState, 0n);
    assert.equal(e.expectedState, 5n);
  } else {
    assert.equal(e.actualVersion, 0n);
    assert.equal(e.expectedVersion, 5n);
  }
  await expectError(client.appendToStream(`${run}-absent`, ev("B", {}), appendOpt(STREAM_EXISTS)), "wrong-expected-version");
  await expectError(client.appendToStream(s, ev("B", {}), appendOpt(NO_STREAM)), "wrong-expected-version");
});

await check("read a stream forwards and backwards, from a revision, with a count", async () => {
  const s = `${run}-read`;
  const events = [];
  for (let i = 0; i < 12; i++) events.push(ev("Num", { i }, { m: i }));
  await client.appendToStream(s, events, appendOpt(NO_STREAM));
  const fwd = await collect(client.readStream(s, { fromRevision: START, direction: FORWARDS, maxCount: 100 }));
  assert.deepEqual(fwd.map((e) => e.data.i), [...Array(12).keys()]);
  assert.deepEqual(fwd.map((e) => Number(e.revision)), [...Array(12).keys()]);
  assert.equal(fwd[3].metadata.m, 3);
  assert.equal(fwd[0].type, "Num");
  assert.equal(fwd[0].isJson, true);
  const back = await collect(client.readStream(s, { fromRevision: END, direction: BACKWARDS, maxCount: 5 }));
  assert.deepEqual(back.map((e) => e.data.i), [11, 10, 9, 8, 7]);
  const mid = await collect(client.readStream(s, { fromRevision: 4n, direction: FORWARDS, maxCount: 3 }));
  assert.deepEqual(mid.map((e) => e.data.i), [4, 5, 6]);
  const midBack = await collect(client.readStream(s, { fromRevision: 4n, direction: BACKWARDS, maxCount: 10 }));
  assert.deepEqual(midBack.map((e) => e.data.i), [4, 3, 2, 1, 0]);
  await expectError(collect(client.readStream(`${run}-nothing`, { maxCount: 10 })), "stream-not-found");
});

await check("read $all both directions, positions increasing", async () => {
  const s = `${run}-all`;
  await client.appendToStream(s, [ev("AllA", { k: 1 }), ev("AllB", { k: 2 })], appendOpt(ANY));
  const fwd = await collect(client.readAll({ fromPosition: START, direction: FORWARDS, maxCount: 100000 }));
  const mine = fwd.filter((e) => e.streamId === s);
  assert.deepEqual(mine.map((e) => e.type), ["AllA", "AllB"]);
  for (let i = 1; i < fwd.length; i++) assert.ok(fwd[i].position.commit > fwd[i - 1].position.commit);
  const back = await collect(client.readAll({ fromPosition: END, direction: BACKWARDS, maxCount: 2 }));
  assert.equal(back.length, 2);
  assert.ok(back[0].position.commit > back[1].position.commit);
  assert.equal(back[0].position.commit, fwd[fwd.length - 1].position.commit);
  const after = await collect(client.readAll({ fromPosition: mine[0].position, direction: FORWARDS, maxCount: 1 }));
  assert.equal(after[0].id, mine[0].id);
});

await check("delete and tombstone, and their typed errors", async () => {
  const s = `${run}-del`;
  await client.appendToStream(s, ev("A", {}), appendOpt(NO_STREAM));
  await expectError(client.deleteStream(s, { expectedRevision: 7n }), "wrong-expected-version");
  await client.deleteStream(s);
  await expectError(collect(client.readStream(s, { maxCount: 10 })), "stream-not-found");
  const again = await client.appendToStream(s, ev("B", {}), appendOpt(NO_STREAM));
  assert.equal(again.nextExpectedRevision, 1n);
  const t = `${run}-tomb`;
  await client.appendToStream(t, ev("A", {}), appendOpt(NO_STREAM));
  await client.tombstoneStream(t);
  await expectError(collect(client.readStream(t, { maxCount: 10 })), "stream-deleted");
  await expectError(client.appendToStream(t, ev("B", {}), appendOpt(ANY)), "stream-deleted");
});

await check("stream metadata through $$stream", async () => {
  const s = `${run}-meta`;
  for (let i = 0; i < 5; i++) await client.appendToStream(s, ev("M", { i }), appendOpt(ANY));
  const none = await client.getStreamMetadata(s);
  assert.deepEqual(none.metadata ?? {}, {});
  await client.setStreamMetadata(s, { maxCount: 2, owner: "team-a" });
  const got = await client.getStreamMetadata(s);
  assert.equal(got.metadata.maxCount, 2);
  assert.equal(got.metadata.owner, "team-a");
  const left = await collect(client.readStream(s, { maxCount: 100 }));
  assert.deepEqual(left.map((e) => e.data.i), [3, 4]);
  const http = await fetch(`http://127.0.0.1:${httpPort}/streams/${s}/metadata`).then((r) => r.json());
  assert.equal(http.maxCount, 2);
  assert.equal(http.custom.owner, "team-a");
});

await check("catch-up then live subscription under concurrent appends: each event once, in order", async () => {
  const s = `${run}-sub`;
  const total = 200;
  for (let i = 0; i < 50; i++) await client.appendToStream(s, ev("S", { i }), appendOpt(ANY));
  const sub = client.subscribeToStream(s, { fromRevision: START });
  const writer = (async () => {
    for (let i = 50; i < total; i++) await client.appendToStream(s, ev("S", { i }), appendOpt(ANY));
  })();
  const seen = [];
  let caughtUp = false;
  sub.on("caughtUp", () => (caughtUp = true));
  for await (const resolved of sub) {
    seen.push(resolved.event.data.i);
    if (seen.length === total) break;
  }
  await writer;
  await sub.unsubscribe();
  assert.deepEqual(seen, [...Array(total).keys()]);
  assert.ok(caughtUp || kind === "kurrent", "caughtUp was not emitted");
});

await check("filtered $all subscription (event type prefix) with checkpoints", async () => {
  const prefix = `${run}-Typ`;
  const stream = `${run}-filt`;
  await client.appendToStream(stream, [ev(`${prefix}A`, { k: 1 }), ev("Other", {}), ev(`${prefix}B`, { k: 2 })], appendOpt(ANY));
  let checkpoints = 0;
  const sub = client.subscribeToAll({
    fromPosition: START,
    filter: eventTypeFilter({ prefixes: [prefix], checkpointInterval: 1, checkpointReached: () => void checkpoints++ }),
  });
  const live = (async () => {
    await new Promise((r) => setTimeout(r, 200));
    await client.appendToStream(stream, [ev("Other", {}), ev(`${prefix}C`, { k: 3 })], appendOpt(ANY));
  })();
  const got = [];
  for await (const resolved of sub) {
    got.push(resolved.event.type);
    if (got.length === 3) break;
  }
  await live;
  await sub.unsubscribe();
  assert.deepEqual(got, [`${prefix}A`, `${prefix}B`, `${prefix}C`]);
  assert.ok(checkpoints > 0, "no checkpoint was reached");
});

await check("one event round-trips between HTTP and gRPC", async () => {
  const s = `${run}-rt`;
  const id = randomUUID();
  const body = [{ eventId: id, eventType: "ViaHttp", data: { big: 12345678901234567890, s: "é" }, metadata: { who: "http" } }];
  const r = await fetch(`http://127.0.0.1:${httpPort}/streams/${s}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "ES-ExpectedVersion": "no_stream" },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 201);
  const [viaGrpc] = await collect(client.readStream(s, { maxCount: 1 }));
  const viaHttp = (await fetch(`http://127.0.0.1:${httpPort}/streams/${s}/0`).then((x) => x.json()));
  assert.equal(viaGrpc.id, id);
  assert.equal(viaGrpc.type, "ViaHttp");
  assert.equal(viaGrpc.metadata.who, "http");
  assert.equal(String(viaGrpc.position.commit), String(viaHttp.position));
  assert.equal(Number(viaGrpc.revision), viaHttp.version);
  // The exact value (ticks = createdUs * 10) is checked in grpc_e2e_test; the
  // Kurrent client's reads (its Rust bridge) hand out whole seconds only.
  const unit = kind === "kurrent" ? 1000000 : 1000;
  assert.equal(Math.floor(viaGrpc.created.getTime() / (unit / 1000)), Math.floor(viaHttp.createdUs / unit));
  // And back: an event appended over gRPC reads the same over HTTP.
  const bid = randomUUID();
  await client.appendToStream(s, binaryEvent({ id: bid, type: "ViaGrpc", data: Buffer.from([1, 2, 3]), metadata: Buffer.from('{"who":"grpc"}') }), appendOpt(0n));
  const h = await fetch(`http://127.0.0.1:${httpPort}/streams/${s}/1`).then((x) => x.json());
  assert.equal(h.id, bid);
  assert.equal(h.type, "ViaGrpc");
  assert.equal(h.contentType, "application/octet-stream");
});

await client.dispose();
console.log(failures === 0 ? `all checks passed (${kind})` : `${failures} check(s) failed (${kind})`);
process.exit(failures === 0 ? 0 : 1);
