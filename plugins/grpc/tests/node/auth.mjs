// Credentials and TLS with an official Node client against a running
// esdb-host whose grpc plugin has tls and users. Run by grpc_node_test
// (../grpc_node_test.cc), which starts the host with the users below and a
// certificate it made, and passes:
//   node auth.mjs <eventstore|kurrent> <grpc port> <CA file (the self-signed certificate)>
// The clients send credentials only over TLS. Exit code 0 when every check
// passed; each failure is printed.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { check, collect, finish } from "./checks.mjs";
import { clientOf } from "./client_kind.mjs";

const [kind, grpcPort, caFile] = process.argv.slice(2);
const { lib, Client, scheme, appendOpt } = await clientOf(kind);
const { jsonEvent, ANY, START, FORWARDS } = lib;

// The users grpc_node_test configures.
const WRITER = { username: "writer", password: "w-secret" };
const READER = { username: "reader", password: "r-secret" };
const ADMIN = { username: "admin", password: "a:secret" };

const connect = (userinfo) =>
  Client.connectionString(
    `${scheme}://${userinfo}127.0.0.1:${grpcPort}?tls=true&tlsCAFile=${encodeURIComponent(caFile)}&defaultDeadline=10000`,
  );
const as = (u) => `${encodeURIComponent(u.username)}:${encodeURIComponent(u.password)}@`;

const run = `${kind}-${randomUUID().slice(0, 8)}`;
// The clients turn both UNAUTHENTICATED and PERMISSION_DENIED + access-denied into AccessDenied.
async function expectDenied(promise, what) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.type, "access-denied", `${what}: expected an access-denied error, got ${e.type}: ${e.message}`);
    return e;
  }
  assert.fail(`${what}: expected an access-denied error, got success`);
}

const ev = (type, data) => jsonEvent({ type, data });
const writer = connect(as(WRITER));

await check("TLS + user:pass@ in the connection string: append and read back", async () => {
  const s = `${run}-basic`;
  const r = await writer.appendToStream(s, [ev("A", { n: 1 }), ev("B", { n: 2 })], appendOpt(ANY));
  assert.equal(r.nextExpectedRevision, 1n);
  const events = await collect(writer.readStream(s, { fromRevision: START, direction: FORWARDS }));
  assert.deepEqual(events.map((e) => e.type), ["A", "B"]);
  assert.deepEqual(events[1].data, { n: 2 });
});

await check("a wrong password is an AccessDenied error", async () => {
  const bad = connect(as({ username: WRITER.username, password: "nope" }));
  await expectDenied(bad.appendToStream(`${run}-bad`, ev("A", {}), appendOpt(ANY)), "append");
  await expectDenied(collect(bad.readStream(`${run}-basic`, { fromRevision: START })), "read");
  await bad.dispose();
});

await check("an unknown user and no credentials at all are AccessDenied", async () => {
  const unknown = connect(as({ username: "nobody", password: "x" }));
  await expectDenied(unknown.appendToStream(`${run}-unknown`, ev("A", {}), appendOpt(ANY)), "unknown user");
  await unknown.dispose();
  const anonymous = connect("");
  await expectDenied(anonymous.appendToStream(`${run}-anon`, ev("A", {}), appendOpt(ANY)), "anonymous");
  await anonymous.dispose();
});

await check("the read role reads and may not append", async () => {
  const reader = connect(as(READER));
  const events = await collect(reader.readStream(`${run}-basic`, { fromRevision: START }));
  assert.equal(events.length, 2);
  await expectDenied(reader.appendToStream(`${run}-basic`, ev("C", {}), appendOpt(ANY)), "append as reader");
  await reader.dispose();
});

await check("a tombstone needs the admin role (per-call credentials)", async () => {
  const s = `${run}-tomb`;
  await writer.appendToStream(s, ev("A", {}), appendOpt(ANY));
  await expectDenied(writer.tombstoneStream(s), "tombstone as writer");
  await writer.tombstoneStream(s, { credentials: ADMIN });
  try {
    await collect(writer.readStream(s, { fromRevision: START }));
    assert.fail("a tombstoned stream read without error");
  } catch (e) {
    assert.equal(e.type, "stream-deleted", `expected stream-deleted, got ${e.type}: ${e.message}`);
  }
});

await writer.dispose();
finish();
