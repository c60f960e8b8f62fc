// Stream metadata as the client protocol carries it: "$metadata" events in
// the stream "$$<stream>", whose JSON has "$maxCount", "$maxAge" (seconds),
// "$tb" (truncate before) and any other keys (kept as the store's custom
// metadata). Reading "$$<stream>" gives one such event made from the
// store's metadata (revision 0, position 0, created 0, an id derived from
// the stream name); appending one sets the store's metadata. Plain
// functions; thread-safe.
#pragma once

#include <optional>
#include <string>

#include "esdb/event_store.h"
#include "esdb/status.h"

namespace esdb_grpc {

// The stream whose metadata `stream_id` holds ("$$x" -> "x"), or nullopt.
std::optional<std::string> MetadataTarget(const std::string& stream_id);

// Whether nothing is set (the metadata stream then reads as not found).
bool IsEmptyMetadata(const esdb::StreamMetadata& m);

// The "$metadata" JSON of `m`.
std::string MetadataToJson(const esdb::StreamMetadata& m);

// Parses a "$metadata" event's data; InvalidArgument naming the key.
esdb::Result<esdb::StreamMetadata> MetadataFromJson(const std::string& data);

// The one event "$$<stream>" reads as.
esdb::RecordedEvent MetadataEvent(const std::string& metadata_stream, const esdb::StreamMetadata& m);

}  // namespace esdb_grpc
