// One scenario of an official Node client against a running esdb-host with
// the grpc plugin. Run by grpc_node_test (../grpc_node_test.cc), which
// starts the host and passes:
//   node scenario.mjs <eventstore|kurrent> <grpc port> <http port>
// Exit code 0 when every check passed; each failure is printed.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { check, collect, finish } from "./checks.mjs";
import { clientOf } from "./client_kind.mjs";

const [kind, grpcPort, httpPort] = process.argv.slice(2);
const { lib, Client, scheme, appendOpt } = await clientOf(kind);
const { jsonEvent, binaryEvent, ANY, NO_STREAM, STREAM_EXISTS, START, END, FORWARDS, BACKWARDS, eventTypeFilter } = lib;
const { streamNameFilter, PARK, RETRY, UNBOUNDED } = lib;
const streamGroupSettings = lib.persistentSubscriptionToStreamSettingsFromDefaults;
const allGroupSettings = lib.persistentSubscriptionToAllSettingsFromDefaults;

const client = Client.connectionString(`${scheme}://127.0.0.1:${grpcPort}?tls=false`);
const run = `${kind}-${randomUUID().slice(0, 8)}`;

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
  // Past the end: no event (the Kurrent client reads at compatibility 1 and
  // is told first_stream_position / last_stream_position, which it passes over).
  assert.deepEqual(await collect(client.readStream(s, { fromRevision: 100n, direction: FORWARDS, maxCount: 10 })), []);
  const tail = await collect(client.readStream(s, { fromRevision: 10n, direction: FORWARDS, maxCount: 10 }));
  assert.deepEqual(tail.map((e) => e.data.i), [10, 11]);
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

// Persistent subscriptions: the same checks for a group on a stream and for
// a group on $all (filtered to this run's streams by a stream-name prefix).
function groupTarget(onAll, streamPrefix) {
  if (onAll) {
    return {
      create: (g, settings) =>
        client.createPersistentSubscriptionToAll(g, allGroupSettings(settings), {
          filter: streamNameFilter({ prefixes: [streamPrefix] }),
        }),
      update: (g, settings) => client.updatePersistentSubscriptionToAll(g, allGroupSettings(settings)),
      info: (g) => client.getPersistentSubscriptionToAllInfo(g),
      list: () => client.listPersistentSubscriptionsToAll(),
      subscribe: (g) => client.subscribeToPersistentSubscriptionToAll(g),
      replay: (g, options) => client.replayParkedMessagesToAll(g, options),
      del: (g) => client.deletePersistentSubscriptionToAll(g),
      source: "$all",
    };
  }
  const s = streamPrefix;
  return {
    create: (g, settings) => client.createPersistentSubscriptionToStream(s, g, streamGroupSettings(settings)),
    update: (g, settings) => client.updatePersistentSubscriptionToStream(s, g, streamGroupSettings(settings)),
    info: (g) => client.getPersistentSubscriptionToStreamInfo(s, g),
    list: () => client.listPersistentSubscriptionsToStream(s),
    subscribe: (g) => client.subscribeToPersistentSubscriptionToStream(s, g),
    replay: (g, options) => client.replayParkedMessagesToStream(s, g, options),
    del: (g) => client.deletePersistentSubscriptionToStream(s, g),
    source: s,
  };
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function until(what, fn, ms = 10000) {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const onAll of [false, true]) {
  const where = onAll ? "$all" : "a stream";
  await check(`persistent subscription to ${where}: create, getInfo, update, list, subscribe and ack, delete, typed errors`, async () => {
    const s = `${run}-ps${onAll ? "a" : "s"}`;
    const g = `${s}-g`;
    const t = groupTarget(onAll, s);
    await client.appendToStream(s, [0, 1, 2, 3, 4].map((i) => ev("P", { i })), appendOpt(NO_STREAM));
    await t.create(g, { startFrom: START });
    await expectError(t.create(g, { startFrom: START }), "persistent-subscription-exists");
    const info = await t.info(g);
    assert.equal(info.eventSource, t.source);
    assert.equal(info.groupName, g);
    assert.equal(info.settings.startFrom, START);
    assert.equal(info.settings.maxRetryCount, 10);
    assert.equal(info.settings.consumerStrategyName, "RoundRobin");
    await t.update(g, { startFrom: START, maxRetryCount: 3, messageTimeout: 10000 });
    const updated = await t.info(g);
    assert.equal(updated.settings.maxRetryCount, 3);
    assert.equal(updated.settings.messageTimeout, 10000);
    assert.deepEqual((await t.list()).filter((i) => i.groupName === g).map((i) => i.eventSource), [t.source]);
    assert.ok((await client.listAllPersistentSubscriptions()).some((i) => i.groupName === g && i.eventSource === t.source));
    const sub = t.subscribe(g);
    const got = [];
    await withTimeout((async () => {
      for await (const e of sub) {
        assert.equal(e.event.streamId, s);
        got.push(e.event.data.i);
        await sub.ack(e);
        if (got.length === 5) break;
      }
    })(), 10000, "five messages");
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
    await until("every message acked", async () => (await t.info(g)).stats.totalInFlightMessages === 0);
    await sub.unsubscribe();
    await t.del(g);
    await expectError(t.info(g), "persistent-subscription-does-not-exist");
    await expectError(t.del(g), "persistent-subscription-does-not-exist");
    await expectError(t.update(g, { startFrom: START }), "persistent-subscription-does-not-exist");
  });

  await check(`persistent subscription to ${where}: nack retry redelivers with the retry count, nack park then replayParked delivers again`, async () => {
    const s = `${run}-pn${onAll ? "a" : "s"}`;
    const g = `${s}-g`;
    const t = groupTarget(onAll, s);
    await client.appendToStream(s, [ev("Retried", { i: 0 }), ev("Parked", { i: 1 })], appendOpt(NO_STREAM));
    await t.create(g, { startFrom: START });
    const sub = t.subscribe(g);
    let retried = null;
    let parkedOnce = false;
    let replayed = null;
    await withTimeout((async () => {
      for await (const e of sub) {
        const i = e.event.data.i;
        if (i === 0 && e.retryCount === 0) {
          await sub.nack(RETRY, "try again", e);
        } else if (i === 0) {
          retried = e.retryCount;
          await sub.ack(e);
        } else if (!parkedOnce) {
          parkedOnce = true;
          await sub.nack(PARK, "cannot handle it", e);
          await until("the message parked", async () => (await t.info(g)).stats.parkedMessageCount === 1n);
          await t.replay(g);
        } else {
          replayed = e.event.type;
          await sub.ack(e);
        }
        if (retried !== null && replayed !== null) break;
      }
    })(), 15000, "the retried and the replayed message");
    await sub.unsubscribe();
    assert.equal(retried, 1);
    assert.equal(replayed, "Parked");
    await until("the parked message replayed", async () => (await t.info(g)).stats.parkedMessageCount === 0n);
    await t.del(g);
  });

  await check(`persistent subscription to ${where}: maxSubscriberCount refuses one consumer too many with MaxSubscribersReached`, async () => {
    const s = `${run}-pm${onAll ? "a" : "s"}`;
    const g = `${s}-g`;
    const t = groupTarget(onAll, s);
    await client.appendToStream(s, [ev("P", { i: 0 })], appendOpt(NO_STREAM));
    await t.create(g, { startFrom: START, maxSubscriberCount: 1 });
    assert.equal((await t.info(g)).settings.maxSubscriberCount, 1);
    const first = t.subscribe(g);
    await withTimeout(new Promise((resolve) => first.once("confirmation", resolve)), 10000, "the first consumer's confirmation");
    await until("the first consumer connected", async () => (await t.info(g)).connections.length === 1);
    const second = t.subscribe(g);
    const refused = await withTimeout(new Promise((resolve) => second.on("error", resolve)), 10000, "the refusal");
    assert.equal(refused.type, "maximum-subscribers-reached", `${refused.type}: ${refused.message}`);
    assert.equal(refused.groupName, g);
    await second.unsubscribe().catch(() => {});
    // Unlimited again (0 on the wire): another consumer is taken.
    await t.update(g, { startFrom: START, maxSubscriberCount: UNBOUNDED });
    assert.equal((await t.info(g)).settings.maxSubscriberCount, UNBOUNDED);
    const third = t.subscribe(g);
    await withTimeout(new Promise((resolve) => third.once("confirmation", resolve)), 10000, "the third consumer's confirmation");
    await until("two consumers connected", async () => (await t.info(g)).connections.length === 2);
    await third.unsubscribe();
    await first.unsubscribe();
    await t.del(g);
  });

  await check(`persistent subscription to ${where}: replayParked with stopAt replays that many, the rest stay parked`, async () => {
    const s = `${run}-pr${onAll ? "a" : "s"}`;
    const g = `${s}-g`;
    const t = groupTarget(onAll, s);
    await client.appendToStream(s, [0, 1, 2].map((i) => ev("P", { i })), appendOpt(NO_STREAM));
    await t.create(g, { startFrom: START });
    const sub = t.subscribe(g);
    const seen = [];
    await withTimeout((async () => {
      for await (const e of sub) {
        seen.push(e.event.data.i);
        if (seen.length <= 3) {
          await sub.nack(PARK, "later", e);
          if (seen.length === 3) {
            await until("three parked", async () => (await t.info(g)).stats.parkedMessageCount === 3n);
            await t.replay(g, { stopAt: 1 });
            await until("two still parked", async () => (await t.info(g)).stats.parkedMessageCount === 2n);
          }
        } else {
          await sub.ack(e);
          if (seen.length === 4) break;
        }
      }
    })(), 15000, "the three parked and the one replayed");
    assert.deepEqual(seen, [0, 1, 2, 0]);
    assert.equal((await t.info(g)).stats.parkedMessageCount, 2n);
    await t.replay(g);
    await until("none parked", async () => (await t.info(g)).stats.parkedMessageCount === 0n);
    await sub.unsubscribe();
    await t.del(g);
  });
}

await client.dispose();
finish(kind);
