// The grpc plugin's reading of what a client sends (plugins/grpc/src/
// convert.cc, persistent_convert.cc, metadata_stream.cc), on arbitrary
// bytes parsed as the protocol's messages, the way gRPC hands a call's
// message to the plugin. Byte 0 picks the message; the rest is its wire
// bytes (or, for kind 5, a "$metadata" event's data).
// Invariants besides "no crash": every refusal is kInvalidArgument; a
// proposed message that converts carries the canonical text of a UUID; a
// filter that compiles matches without crashing; metadata JSON that parses
// prints back to JSON that parses to the same metadata.
#include <cstddef>
#include <cstdint>
#include <string>

#include "convert.h"
#include "esdb/group_settings.h"
#include "esdb/uuid.h"
#include "fuzz_check.h"
#include "metadata_stream.h"
#include "persistent_convert.h"

using namespace esdb_grpc;

namespace {

template <class Proposed>
void CheckProposed(const Proposed& m) {
  std::string missing;
  auto e = ToProposedEvent(m, &missing);
  if (!e.ok()) {
    FUZZ_CHECK(e.status().code() == esdb::Code::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(missing.empty());
  auto raw = esdb::ParseUuid(e->event_id);
  FUZZ_CHECK(raw.has_value() && esdb::FormatUuid(*raw) == e->event_id);
}

void CheckGroup(const esdb::Result<esdb_grpc::GroupRequest>& g) {
  if (!g.ok()) {
    FUZZ_CHECK(g.status().code() == esdb::Code::kInvalidArgument);
    return;
  }
  // The notification service validates again when it creates the group.
  const esdb::Status valid = esdb::ValidateGroupSettings(g->settings, g->stream);
  FUZZ_CHECK(valid.ok() || valid.code() == esdb::Code::kInvalidArgument);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t kind = data[0] % 6;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (kind) {
    case 0: {
      spb::AppendReq req;
      if (!req.ParseFromString(bytes)) return 0;
      if (req.has_proposed_message()) CheckProposed(req.proposed_message());
      if (req.has_options()) (void)ExpectedFrom(req.options());
      break;
    }
    case 1: {
      spb::BatchAppendReq req;
      if (!req.ParseFromString(bytes)) return 0;
      (void)UuidText(req.correlation_id());
      for (const auto& m : req.proposed_messages()) CheckProposed(m);
      break;
    }
    case 2: {
      spb::ReadReq req;
      if (!req.ParseFromString(bytes)) return 0;
      auto filter = ToClientFilter(req.options());
      if (!filter.ok()) {
        FUZZ_CHECK(filter.status().code() == esdb::Code::kInvalidArgument);
        break;
      }
      esdb::RecordedEvent e;
      for (const char* stream : {"orders-1", "$all", "$$orders-1", ""}) {
        e.stream_id = stream;
        e.event_type = req.options().has_stream() ? req.options().stream().stream_identifier().stream_name() : "t";
        (void)filter->Matches(e);
      }
      break;
    }
    case 3: {
      pspb::CreateReq req;
      if (!req.ParseFromString(bytes)) return 0;
      CheckGroup(FromCreate(req));
      break;
    }
    case 4: {
      pspb::UpdateReq req;
      if (!req.ParseFromString(bytes)) return 0;
      CheckGroup(FromUpdate(req));
      break;
    }
    case 5: {
      auto m = MetadataFromJson(bytes);
      if (!m.ok()) {
        FUZZ_CHECK(m.status().code() == esdb::Code::kInvalidArgument);
        break;
      }
      auto again = MetadataFromJson(MetadataToJson(*m));
      FUZZ_CHECK(again.ok());
      FUZZ_CHECK(again->max_count == m->max_count && again->max_age_seconds == m->max_age_seconds &&
                 again->truncate_before == m->truncate_before && again->custom == m->custom);
      break;
    }
  }
  return 0;
}
