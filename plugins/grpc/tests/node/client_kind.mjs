// The official client a script runs, by its kind ("eventstore" for
// @eventstore/db-client, "kurrent" for @kurrent/kurrentdb-client): its
// module, its client class, the connection string scheme it prefers
// ("esdb", "kurrentdb"; the Kurrent client warns that "esdb" is deprecated)
// and the append option naming the expected state (`expectedRevision`, in
// the Kurrent client `streamState`).
export async function clientOf(kind) {
  if (kind === "kurrent") {
    const lib = await import("@kurrent/kurrentdb-client");
    return { lib, Client: lib.KurrentDBClient, scheme: "kurrentdb", appendOpt: (v) => ({ streamState: v }) };
  }
  if (kind === "eventstore") {
    const lib = await import("@eventstore/db-client");
    return { lib, Client: lib.EventStoreDBClient, scheme: "esdb", appendOpt: (v) => ({ expectedRevision: v }) };
  }
  throw new Error(`unknown client kind '${kind}' (eventstore or kurrent)`);
}
