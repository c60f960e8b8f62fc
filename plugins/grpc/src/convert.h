// Conversions between the client protocol's messages and the store's
// values: UUIDs, proposed and recorded events, expected versions, the
// client's $all filter. Plain functions; thread-safe.
//
// An event reads the same over HTTP and gRPC: the id is the store's UUID,
// revision its version, commit and prepare position its $all position,
// "created" its commit time as 100-ns ticks since the Unix epoch (the
// store's microseconds times 10), "type" and "content-type" the store's
// fields, data and custom metadata the stored bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "esdb/all_filter.h"
#include "esdb/event_store.h"
#include "esdb/status.h"
#include "shared.pb.h"
#include "streams.pb.h"

namespace esdb_grpc {

namespace pb = event_store::client;
namespace spb = event_store::client::streams;

// 100-ns ticks since the Unix epoch of `us` microseconds.
inline int64_t TicksFromMicros(int64_t us) { return us * 10; }

// The canonical (lower-case) text of `id`, or nullopt when it holds no valid UUID.
std::optional<std::string> UuidText(const pb::UUID& id);
// Fills `out` with `text` (a canonical UUID) as a string or as two halves.
void SetUuid(const std::string& text, bool structured, pb::UUID* out);
// A stable UUID (version-5 layout; two 64-bit FNV-1a hashes) derived from
// `name`: the same name gives the same id in every process.
std::string NameUuid(const std::string& name);

// A proposed message as a store event. InvalidArgument naming what is
// wrong (id, the "type" or "content-type" metadata entry). `missing` gets the
// names of required metadata entries that are absent.
template <class Proposed>
esdb::Result<esdb::ProposedEvent> ToProposedEvent(const Proposed& m, std::string* missing);

// Size counted against max_append_bytes: data, custom metadata, type,
// content type and id (so many empty events count too).
inline uint64_t ProposedBytes(const esdb::ProposedEvent& e) {
  return e.data.size() + e.metadata.size() + e.event_type.size() + e.content_type.size() + e.event_id.size();
}

// Fills a recorded event of a read or subscription (Streams.Read's or
// PersistentSubscriptions.Read's message: the same fields).
template <class Recorded>
void ToRecordedEvent(const esdb::RecordedEvent& e, bool structured_ids, Recorded* out);

// The expected version of an append/delete options message (fields
// revision / no_stream / any / stream_exists); `any` when none is set.
template <class Options>
esdb::ExpectedVersion ExpectedFrom(const Options& o) {
  switch (o.expected_stream_revision_case()) {
    case Options::kRevision: return esdb::ExpectedVersion::Exact(static_cast<int64_t>(o.revision()));
    case Options::kNoStream: return esdb::ExpectedVersion::NoStream();
    case Options::kStreamExists: return esdb::ExpectedVersion::StreamExists();
    default: return esdb::ExpectedVersion::Any();
  }
}

// The value of the "expected-version" trailer KurrentDB sends: the number,
// or -1 no stream, -2 any, -4 stream exists.
int64_t ExpectedVersionNumber(const esdb::ExpectedVersion& e);

// KurrentDB's regexes match anywhere; an AllFilter's stream_regex must
// match the whole text, so a client's pattern is wrapped ("" stays "").
std::string AnywhereRegex(const std::string& regex);

// The client's $all filter: the stream part as the store's AllFilter, and
// the event-type part matched by a CompiledAllFilter applied to the type
// (the one filter implementation; its prefixes and regex then stand for
// event types). Regexes match anywhere in the text, as KurrentDB's do.
struct ClientFilter {
  esdb::AllFilter stream;                // what the store is asked for
  esdb::CompiledAllFilter stream_match;  // the same, compiled
  std::optional<esdb::CompiledAllFilter> type_match;  // none: every type
  uint64_t checkpoint_interval = 0;      // events scanned between checkpoints; 0 = no checkpoints

  bool Matches(const esdb::RecordedEvent& e) const {
    return stream_match.MatchesStream(e.stream_id) && (!type_match || type_match->MatchesStream(e.event_type));
  }
};
// InvalidArgument naming the field when the filter does not compile.
esdb::Result<ClientFilter> ToClientFilter(const spb::ReadReq::Options& options);

}  // namespace esdb_grpc
