// The check runner of the Node client scripts (scenario.mjs, auth.mjs): each check is
// timed and printed as "ok" or "FAIL" with its stack; finish() prints the
// count and exits 0 only when every check passed.
let failures = 0;

export async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    // A Kurrent client error keeps what its Rust bridge threw in `_raw`.
    const raw = e && e._raw ? ` (bridge: ${JSON.stringify({ name: e._raw.name, message: e._raw.message, metadata: e._raw.metadata })})` : "";
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}${raw}`);
  }
}

// The events of a read or subscription iterable, in order.
export async function collect(iterable) {
  const out = [];
  for await (const resolved of iterable) out.push(resolved.event);
  return out;
}

export function finish(what = "") {
  const of = what ? ` (${what})` : "";
  console.log(failures === 0 ? `all checks passed${of}` : `${failures} check(s) failed${of}`);
  process.exit(failures === 0 ? 0 : 1);
}
