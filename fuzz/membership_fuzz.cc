// libFuzzer target: what a NATS client can send the cluster plugin's
// membership (plugins/cluster/src/membership.h). The input is a script of
// steps, each one byte of kind followed by its operands:
//   0: a heartbeat as text (a length byte, then that many bytes) through
//      DecodeHeartbeat, observed when it decodes;
//   1: a heartbeat from fields (a name out of 12, an incarnation out of 4,
//      goodbye, an address out of 3), observed;
//   2: time passes (a byte, in 100 ms), then Expire;
//   3: Depart of one of the 12 names (this node stopping).
// Never crashes, and after every step:
//   - a refused text heartbeat is kInvalidArgument; a decoded one encodes
//     and decodes back to the same fields;
//   - at most max_members members, at most 2 * max_members names holding
//     a retained slot, every event's key "cluster" or "member:<n>" with
//     n < 2 * max_members;
//   - the events tell the member list: node_joined makes a member,
//     node_left ends one (never for a name that is not one), as many as
//     there are, and at the end exactly those Members() lists;
//   - a member keeps its key: its node_left and any node_joined again come
//     under the key it joined with, and no two members share a key.
// Links: esdb_cluster_core.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "membership.h"

namespace {

using esdb_cluster::Heartbeat;
using esdb_cluster::MemberEvent;
using esdb_cluster::Membership;

constexpr size_t kMaxMembers = 4;
constexpr int kNames = 12;

struct Shadow {
  std::map<std::string, std::string> key_of;  // member -> the key it joined with

  void Apply(const std::vector<MemberEvent>& events) {
    for (const MemberEvent& e : events) {
      if (e.type == "cluster_formed") {
        FUZZ_CHECK(e.retain_key == "cluster");
        continue;
      }
      FUZZ_CHECK(e.retain_key.rfind("member:", 0) == 0);
      const std::string digits = e.retain_key.substr(7);
      FUZZ_CHECK(!digits.empty() && digits.size() <= 3 && digits.find_first_not_of("0123456789") == std::string::npos);
      FUZZ_CHECK(std::stoul(digits) < 2 * kMaxMembers);
      const std::string node = e.data.at("node").get<std::string>();
      auto it = key_of.find(node);
      if (e.type == "node_joined") {
        if (it != key_of.end()) {
          FUZZ_CHECK(it->second == e.retain_key);  // an address change: the same slot
        } else {
          for (const auto& [other, key] : key_of) FUZZ_CHECK(key != e.retain_key);
          key_of.emplace(node, e.retain_key);
        }
      } else {
        FUZZ_CHECK(e.type == "node_left");
        FUZZ_CHECK(it != key_of.end());
        FUZZ_CHECK(it->second == e.retain_key);
        key_of.erase(it);
      }
    }
  }
};

std::string Name(uint8_t b) { return "n" + std::to_string(b % kNames); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Membership m(3, 5000, kMaxMembers);
  Shadow shadow;
  int64_t now_ms = 0;
  size_t at = 0;
  const auto next = [&](uint8_t* b) {
    if (at >= size) return false;
    *b = data[at++];
    return true;
  };
  uint8_t kind = 0;
  while (next(&kind)) {
    std::vector<MemberEvent> events;
    switch (kind % 4) {
      case 0: {
        uint8_t len = 0;
        if (!next(&len)) return 0;
        const size_t n = std::min<size_t>(len, size - at);
        const std::string_view text(reinterpret_cast<const char*>(data + at), n);
        at += n;
        esdb::Result<Heartbeat> h = esdb_cluster::DecodeHeartbeat(text);
        if (!h.ok()) {
          FUZZ_CHECK(h.status().code() == esdb::Code::kInvalidArgument);
          break;
        }
        esdb::Result<Heartbeat> again = esdb_cluster::DecodeHeartbeat(esdb_cluster::EncodeHeartbeat(*h));
        FUZZ_CHECK(again.ok());
        FUZZ_CHECK(again->node == h->node && again->incarnation == h->incarnation &&
                   again->applied_sequence == h->applied_sequence && again->http == h->http &&
                   again->process == h->process && again->goodbye == h->goodbye && again->grpc == h->grpc &&
                   again->wall_us == h->wall_us);
        events = m.Observe(*h, now_ms, 1796182523515482);
        break;
      }
      case 1: {
        uint8_t name = 0, flags = 0;
        if (!next(&name) || !next(&flags)) return 0;
        Heartbeat h;
        h.node = Name(name);
        h.incarnation = flags & 3;
        h.goodbye = (flags & 4) != 0;
        h.http = "127.0.0.1:" + std::to_string(2113 + ((flags >> 3) % 3));
        h.process = "fuzz/1";
        events = m.Observe(h, now_ms);
        break;
      }
      case 2: {
        uint8_t step = 0;
        if (!next(&step)) return 0;
        now_ms += int64_t{step} * 100;
        events = m.Expire(now_ms);
        break;
      }
      default: {
        uint8_t name = 0;
        if (!next(&name)) return 0;
        events = m.Depart(Name(name));
        break;
      }
    }
    shadow.Apply(events);
    FUZZ_CHECK(m.size() <= kMaxMembers);
    FUZZ_CHECK(m.retained_names() <= 2 * kMaxMembers);
    FUZZ_CHECK(m.size() == shadow.key_of.size());
  }
  // The members the events told are the ones listed.
  const nlohmann::json members = m.Members(now_ms);
  FUZZ_CHECK(members.size() == shadow.key_of.size());
  for (const nlohmann::json& member : members) FUZZ_CHECK(shadow.key_of.count(member.at("node").get<std::string>()) == 1);
  return 0;
}
