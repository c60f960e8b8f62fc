#include "convert.h"

#include "esdb/uuid.h"
#include "persistent.pb.h"

namespace esdb_grpc {
namespace {

void PutBigEndian(uint64_t v, std::string* out) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

uint64_t GetBigEndian(const std::string& raw, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(raw[at + i]);
  return v;
}


}  // namespace

std::optional<std::string> UuidText(const pb::UUID& id) {
  if (id.has_structured()) {
    std::string raw;
    PutBigEndian(static_cast<uint64_t>(id.structured().most_significant_bits()), &raw);
    PutBigEndian(static_cast<uint64_t>(id.structured().least_significant_bits()), &raw);
    return esdb::FormatUuid(raw);
  }
  if (id.value_case() == pb::UUID::kString) {
    auto raw = esdb::ParseUuid(id.string());
    if (!raw) return std::nullopt;
    return esdb::FormatUuid(*raw);
  }
  return std::nullopt;
}

void SetUuid(const std::string& text, bool structured, pb::UUID* out) {
  if (!structured) {
    out->set_string(text);
    return;
  }
  auto raw = esdb::ParseUuid(text);
  if (!raw) {  // the store's ids are always UUIDs; keep the text rather than invent one
    out->set_string(text);
    return;
  }
  out->mutable_structured()->set_most_significant_bits(static_cast<int64_t>(GetBigEndian(*raw, 0)));
  out->mutable_structured()->set_least_significant_bits(static_cast<int64_t>(GetBigEndian(*raw, 8)));
}

template <class Proposed>
esdb::Result<esdb::ProposedEvent> ToProposedEvent(const Proposed& m, std::string* missing) {
  esdb::ProposedEvent e;
  if (!m.has_id()) return esdb::Status::InvalidArgument("proposed message without an id");
  auto id = UuidText(m.id());
  if (!id) return esdb::Status::InvalidArgument("proposed message id is not a UUID");
  e.event_id = *id;
  const auto& md = m.metadata();
  auto type = md.find("type");
  auto content_type = md.find("content-type");
  if (type == md.end()) *missing += missing->empty() ? "type" : ",type";
  if (content_type == md.end()) *missing += missing->empty() ? "content-type" : ",content-type";
  if (!missing->empty()) return esdb::Status::InvalidArgument("proposed message " + e.event_id + " lacks metadata " + *missing);
  e.event_type = type->second;
  e.content_type = content_type->second;
  e.data = m.data();
  e.metadata = m.custom_metadata();
  return e;
}

template esdb::Result<esdb::ProposedEvent> ToProposedEvent(const spb::AppendReq::ProposedMessage&, std::string*);
template esdb::Result<esdb::ProposedEvent> ToProposedEvent(const spb::BatchAppendReq::ProposedMessage&, std::string*);

std::string AnywhereRegex(const std::string& regex) { return regex.empty() ? regex : ".*(?:" + regex + ").*"; }

template <class Recorded>
void ToRecordedEvent(const esdb::RecordedEvent& e, bool structured_ids, Recorded* out) {
  SetUuid(e.event_id, structured_ids, out->mutable_id());
  out->mutable_stream_identifier()->set_stream_name(e.stream_id);
  out->set_stream_revision(static_cast<uint64_t>(e.version));
  out->set_prepare_position(e.position);
  out->set_commit_position(e.position);
  auto& md = *out->mutable_metadata();
  md["type"] = e.event_type;
  md["content-type"] = e.content_type;
  md["created"] = std::to_string(TicksFromMicros(e.created_us));
  out->set_custom_metadata(e.metadata);
  out->set_data(e.data);
}

template void ToRecordedEvent(const esdb::RecordedEvent&, bool, spb::ReadResp::ReadEvent::RecordedEvent*);
template void ToRecordedEvent(const esdb::RecordedEvent&, bool,
                              event_store::client::persistent_subscriptions::ReadResp::ReadEvent::RecordedEvent*);

int64_t ExpectedVersionNumber(const esdb::ExpectedVersion& e) {
  switch (e.kind) {
    case esdb::ExpectedVersion::Kind::kAny: return -2;
    case esdb::ExpectedVersion::Kind::kNoStream: return -1;
    case esdb::ExpectedVersion::Kind::kStreamExists: return -4;
    case esdb::ExpectedVersion::Kind::kExact: return e.version;
  }
  return -2;
}

esdb::Result<ClientFilter> ToClientFilter(const spb::ReadReq::Options& options) {
  ClientFilter f;
  if (options.filter_option_case() == spb::ReadReq::Options::kFilter) {
    const auto& fo = options.filter();
    if (fo.has_stream_identifier()) {
      const auto& ex = fo.stream_identifier();
      f.stream.stream_prefixes.assign(ex.prefix().begin(), ex.prefix().end());
      f.stream.stream_regex = AnywhereRegex(ex.regex());
    } else if (fo.has_event_type()) {
      const auto& ex = fo.event_type();
      esdb::AllFilter types;
      types.include_system = true;  // a type starting with '$' is not a system stream
      types.stream_prefixes.assign(ex.prefix().begin(), ex.prefix().end());
      types.stream_regex = AnywhereRegex(ex.regex());
      auto compiled = esdb::CompiledAllFilter::Compile(types);
      if (!compiled.ok()) return esdb::Status::InvalidArgument("filter.event_type: " + compiled.status().message());
      f.type_match = std::move(compiled).value();
    }
    const uint64_t window = fo.window_case() == spb::ReadReq::Options::FilterOptions::kMax ? fo.max() : 1;
    f.checkpoint_interval = std::max<uint64_t>(1, window) * std::max<uint64_t>(1, fo.checkpointintervalmultiplier());
  }
  auto compiled = esdb::CompiledAllFilter::Compile(f.stream);
  if (!compiled.ok()) return esdb::Status::InvalidArgument("filter.stream_identifier: " + compiled.status().message());
  f.stream_match = std::move(compiled).value();
  return f;
}

std::string NameUuid(const std::string& name) {
  auto fnv1a = [&name](uint64_t h) {
    for (unsigned char c : name) {
      h ^= c;
      h *= 1099511628211ull;
    }
    return h;
  };
  std::string raw;
  for (uint64_t h : {fnv1a(14695981039346656037ull), fnv1a(1469598103934665603ull)}) {
    for (int i = 7; i >= 0; --i) raw.push_back(static_cast<char>((h >> (i * 8)) & 0xff));
  }
  raw[6] = static_cast<char>((raw[6] & 0x0f) | 0x50);  // version 5 layout (name-based)
  raw[8] = static_cast<char>((raw[8] & 0x3f) | 0x80);
  return esdb::FormatUuid(raw);
}

}  // namespace esdb_grpc
