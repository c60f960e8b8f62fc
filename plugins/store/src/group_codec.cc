#include "group_codec.h"

#include "codec.h"
#include "lease_rule.h"

namespace esdb_store {
namespace {

void PutRequestHead(std::string* out, uint8_t kind, std::string_view stream, const esdb::ExpectedVersion& expected) {
  out->push_back(static_cast<char>(kind));
  PutString(out, stream);
  out->push_back(static_cast<char>(expected.kind));
  PutFixed64BE(out, static_cast<uint64_t>(expected.version));
}

// The fewest bytes a request and an event can take, even with every string
// empty (which the checks after reading them refuse, naming the field): a
// scavenge order (kind, node, term) and an event (flags, id, four strings).
constexpr size_t kMinRequestBytes = 1 + 4 + 8;
constexpr size_t kMinEventBytes = 1 + 16 + 4 * 4;

bool GetU32(RecordReader& r, uint32_t* v) {
  std::string_view b;
  if (!r.GetBytes(4, &b)) return false;
  *v = (uint32_t{static_cast<uint8_t>(b[0])} << 24) | (uint32_t{static_cast<uint8_t>(b[1])} << 16) |
       (uint32_t{static_cast<uint8_t>(b[2])} << 8) | uint32_t{static_cast<uint8_t>(b[3])};
  return true;
}

}  // namespace

void EncodeGroupHeader(int64_t created_us, uint32_t count, std::string* out) {
  out->push_back(1);
  PutFixed64BE(out, static_cast<uint64_t>(created_us));
  PutFixed32BE(out, count);
}

void EncodeGroupAppend(std::string_view stream, const esdb::ExpectedVersion& expected,
                       const std::vector<esdb::ProposedEvent>& events, const std::vector<std::string>& raw_ids,
                       const std::vector<uint8_t>& generated, std::string* out) {
  PutRequestHead(out, 0, stream, expected);
  PutFixed32BE(out, static_cast<uint32_t>(events.size()));
  for (size_t i = 0; i < events.size(); ++i) {
    const esdb::ProposedEvent& e = events[i];
    out->push_back(static_cast<char>(!generated.empty() && generated[i] ? 1 : 0));
    out->append(raw_ids[i]);
    PutString(out, e.event_type);
    PutString(out, e.content_type);
    PutString(out, e.data);
    PutString(out, e.metadata);
  }
}

void EncodeGroupDelete(std::string_view stream, const esdb::ExpectedVersion& expected, bool hard, std::string* out) {
  PutRequestHead(out, 1, stream, expected);
  out->push_back(static_cast<char>(hard ? 1 : 0));
}

void EncodeGroupMetadata(std::string_view stream, const esdb::StreamMetadata& metadata, std::string* out) {
  PutRequestHead(out, 2, stream, esdb::ExpectedVersion::Any());
  PutString(out, EncodeMetadata(metadata));
}

void EncodeGroupLease(const esdb::LeaderLeaseClaim& claim, std::string* out) {
  out->push_back(3);
  PutString(out, claim.node);
  PutString(out, claim.http);
  PutFixed64BE(out, claim.term);
  PutFixed32BE(out, claim.ttl_ms);
}

void EncodeGroupCheckpoint(const LogCheckpoint& checkpoint, std::string* out) {
  out->push_back(4);
  PutString(out, checkpoint.node);
  PutFixed64BE(out, checkpoint.sequence);
  out->append(checkpoint.hash);
}

void EncodeGroupScavenge(const ScavengeOrder& order, std::string* out) {
  out->push_back(5);
  PutString(out, order.node);
  PutFixed64BE(out, order.term);
}

esdb::Result<GroupRecord> DecodeGroup(std::string_view data) {
  RecordReader r(data);
  auto bad = [](const std::string& what) { return esdb::Status::Corruption("malformed commit group: " + what); };
  uint8_t format = 0;
  GroupRecord g;
  uint32_t count = 0;
  if (!r.GetU8(&format) || format != 1) return bad("unknown format");
  if (!r.GetI64(&g.created_us) || !GetU32(r, &count)) return bad("truncated header");
  // Each request takes at least kMinRequestBytes: a count the bytes cannot
  // hold is refused before anything is allocated for it (an entry of 1 MB
  // would otherwise reserve hundreds of MB on every node).
  if (count > r.remaining() / kMinRequestBytes) {
    return bad("request count " + std::to_string(count) + " larger than the group");
  }
  g.requests.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const std::string which = "request " + std::to_string(i);
    GroupRequest q;
    uint8_t kind = 0, expected_kind = 0;
    if (!r.GetU8(&kind)) return bad(which + " truncated");
    if (kind > 5) return bad(which + ": unknown kind " + std::to_string(kind));
    if (kind == 5) {
      std::string_view node;
      ScavengeOrder order;
      if (!r.GetString(&node) || !r.GetU64(&order.term)) return bad(which + " truncated");
      // The same rule as a lease claim's node (a scavenge names a lease holder).
      const esdb::Status valid = ValidateLeaseClaim({std::string(node), "", 0, 1000});
      if (!valid.ok()) return bad(which + ": scavenge: node must be 1 to 256 printable ASCII characters");
      if (order.term == 0) return bad(which + ": scavenge of term 0");
      // Applied against the state before its entry: nothing else may share it.
      if (count != 1) return bad(which + ": a scavenge must be the only request of its group, not one of " +
                                 std::to_string(count));
      order.node.assign(node);
      q.kind = GroupRequest::Kind::kScavenge;
      q.scavenge = std::move(order);
      g.requests.push_back(std::move(q));
      continue;
    }
    if (kind == 4) {
      std::string_view node, hash;
      LogCheckpoint cp;
      if (!r.GetString(&node) || !r.GetU64(&cp.sequence) || !r.GetBytes(32, &hash)) return bad(which + " truncated");
      if (node.empty() || node.size() > 64) return bad(which + ": checkpoint node name of " + std::to_string(node.size()) + " bytes");
      if (cp.sequence == 0) return bad(which + ": checkpoint of entry 0");
      cp.node.assign(node);
      cp.hash.assign(hash);
      q.kind = GroupRequest::Kind::kCheckpoint;
      q.checkpoint = std::move(cp);
      g.requests.push_back(std::move(q));
      continue;
    }
    if (kind == 3) {
      std::string_view node, http;
      uint64_t term = 0;
      uint32_t ttl_ms = 0;
      if (!r.GetString(&node) || !r.GetString(&http) || !r.GetU64(&term) || !GetU32(r, &ttl_ms)) {
        return bad(which + " truncated");
      }
      esdb::LeaderLeaseClaim claim{std::string(node), std::string(http), term, ttl_ms};
      const esdb::Status valid = ValidateLeaseClaim(claim);
      if (!valid.ok()) return bad(which + ": " + valid.message());
      q.kind = GroupRequest::Kind::kLease;
      q.lease = std::move(claim);
      g.requests.push_back(std::move(q));
      continue;
    }
    std::string_view stream;
    if (!r.GetString(&stream) || !r.GetU8(&expected_kind) || !r.GetI64(&q.expected.version)) {
      return bad(which + " truncated");
    }
    if (expected_kind > static_cast<uint8_t>(esdb::ExpectedVersion::Kind::kExact)) return bad(which + ": bad expected version");
    q.kind = static_cast<GroupRequest::Kind>(kind);
    q.expected.kind = static_cast<esdb::ExpectedVersion::Kind>(expected_kind);
    if (q.expected.kind == esdb::ExpectedVersion::Kind::kExact && q.expected.version < esdb::kNoStreamVersion) {
      return bad(which + ": bad expected version");
    }
    if (stream.empty() || stream.size() > 65536 || stream.find('\0') != std::string_view::npos || stream == "$all") {
      return bad(which + ": bad stream id");
    }
    q.stream.assign(stream);
    if (q.kind == GroupRequest::Kind::kAppend) {
      uint32_t n = 0;
      if (!GetU32(r, &n)) return bad(which + " truncated");
      if (n > r.remaining() / kMinEventBytes) {
        return bad(which + ": event count " + std::to_string(n) + " larger than the group");
      }
      q.events.resize(n);
      q.raw_ids.resize(n);
      q.generated.resize(n);
      for (uint32_t k = 0; k < n; ++k) {
        uint8_t flags = 0;
        std::string_view id, type, content_type, payload, metadata;
        if (!r.GetU8(&flags) || !r.GetBytes(16, &id) || !r.GetString(&type) || !r.GetString(&content_type) ||
            !r.GetString(&payload) || !r.GetString(&metadata)) {
          return bad(which + " truncated");
        }
        if (flags > 1) return bad(which + ": bad event flags");
        if (type.empty()) return bad(which + ": empty event type");
        q.generated[k] = flags;
        q.raw_ids[k].assign(id);
        esdb::ProposedEvent& e = q.events[k];
        e.event_type.assign(type);
        e.content_type.assign(content_type);
        e.data.assign(payload);
        e.metadata.assign(metadata);
      }
    } else if (q.kind == GroupRequest::Kind::kDelete) {
      uint8_t hard = 0;
      if (!r.GetU8(&hard) || hard > 1) return bad(which + " truncated");
      q.hard = hard == 1;
    } else {
      std::string_view json;
      if (!r.GetString(&json)) return bad(which + " truncated");
      esdb::StreamMetadata m;
      esdb::Status s = DecodeMetadata(json, &m);
      if (!s.ok()) return bad(which + ": " + s.message());
      q.metadata = std::move(m);
    }
    g.requests.push_back(std::move(q));
  }
  if (!r.done()) return bad("trailing bytes");
  return g;
}

}  // namespace esdb_store
