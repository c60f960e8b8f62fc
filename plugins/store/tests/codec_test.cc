// The store's record codec on damaged records (the inputs of fuzz/codec_fuzz.cc):
// a record that cannot be what the store wrote is Corruption, never
// undefined behaviour or a silently wrapped value.
#include <catch2/catch.hpp>

#include "codec.h"
#include "group_codec.h"
#include "store_core_internal.h"

using esdb::Code;
using esdb_store::DecodeMetadata;

TEST_CASE("metadata records with out-of-range or mistyped numbers are corruption", "[codec]") {
  // Found while writing fuzz/codec_fuzz.cc (which reports it on these
  // records): 1e300 converted to uint64 was undefined behaviour (UBSan:
  // "outside the range of representable values"); -1 became max_count
  // 18446744073709551615.
  for (const char* record : {R"({"max_count":1e300})", R"({"max_age":-1e300})", R"({"truncate_before":1e300})",
                             R"({"max_count":-1})", R"({"max_age":-5})", R"({"max_count":1.5})",
                             R"({"truncate_before":18446744073709551615})", R"({"max_count":"10"})"}) {
    INFO(record);
    esdb::StreamMetadata m;
    esdb::Status s = DecodeMetadata(record, &m);
    CHECK(s.code() == Code::kCorruption);
  }
}

TEST_CASE("metadata records the store writes decode", "[codec]") {
  esdb::StreamMetadata in;
  in.max_count = UINT64_MAX;
  in.max_age_seconds = 0;
  in.truncate_before = -1;
  in.custom = {{"k", "v"}};
  esdb::StreamMetadata out;
  REQUIRE(DecodeMetadata(esdb_store::EncodeMetadata(in), &out).ok());
  CHECK(out.max_count == in.max_count);
  CHECK(out.max_age_seconds == in.max_age_seconds);
  CHECK(out.truncate_before == in.truncate_before);
  CHECK(out.custom == in.custom);
}

// Cluster mode's commit groups (group_codec.h) come from the log, written
// by any node: every prefix of a group, and a group with a byte changed
// where the store's keys depend on it, is Corruption.
TEST_CASE("commit groups round-trip, and damaged or truncated ones are corruption", "[codec][cluster]") {
  using esdb_store::DecodeGroup;
  std::string g;
  esdb_store::EncodeGroupHeader(1234567, 3, &g);
  esdb::ProposedEvent e1{"", "type-a", "application/json", R"({"a":1})", ""};
  esdb::ProposedEvent e2{"", "type-b", "application/octet-stream", std::string("\0\x01", 2), "{}"};
  esdb_store::EncodeGroupAppend("orders-1", esdb::ExpectedVersion::Exact(4), {e1, e2},
                                {std::string(16, 'a'), std::string(16, 'b')}, {0, 1}, &g);
  esdb_store::EncodeGroupDelete("orders-2", esdb::ExpectedVersion::Any(), true, &g);
  esdb::StreamMetadata m;
  m.max_count = 10;
  esdb_store::EncodeGroupMetadata("orders-3", m, &g);

  auto r = DecodeGroup(g);
  REQUIRE(r.ok());
  CHECK(r->created_us == 1234567);
  REQUIRE(r->requests.size() == 3);
  const auto& a = r->requests[0];
  CHECK(a.kind == esdb_store::GroupRequest::Kind::kAppend);
  CHECK(a.stream == "orders-1");
  CHECK(a.expected.kind == esdb::ExpectedVersion::Kind::kExact);
  CHECK(a.expected.version == 4);
  REQUIRE(a.events.size() == 2);
  CHECK(a.raw_ids[1] == std::string(16, 'b'));
  CHECK(a.generated == std::vector<uint8_t>{0, 1});
  CHECK(a.events[1].data == std::string("\0\x01", 2));
  CHECK(a.events[1].content_type == "application/octet-stream");
  CHECK(r->requests[1].kind == esdb_store::GroupRequest::Kind::kDelete);
  CHECK(r->requests[1].hard);
  REQUIRE(r->requests[2].metadata.has_value());
  CHECK(r->requests[2].metadata->max_count == 10u);

  for (size_t n = 0; n < g.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK(DecodeGroup(std::string_view(g).substr(0, n)).status().code() == Code::kCorruption);
  }
  CHECK(DecodeGroup(g + "x").status().code() == Code::kCorruption);

  // A stream id with a NUL (it ends stream ids inside keys), "$all", an
  // empty event type, an expected version below -1.
  auto bad_append = [](std::string_view stream, esdb::ExpectedVersion expected, const std::string& type) {
    std::string b;
    esdb_store::EncodeGroupHeader(0, 1, &b);
    esdb::ProposedEvent e{"", type, "application/json", "{}", ""};
    esdb_store::EncodeGroupAppend(stream, expected, {e}, {std::string(16, 'c')}, {}, &b);
    return DecodeGroup(b).status().code();
  };
  CHECK(bad_append("ok", esdb::ExpectedVersion::Any(), "t") == Code::kOk);
  CHECK(bad_append(std::string_view("a\0b", 3), esdb::ExpectedVersion::Any(), "t") == Code::kCorruption);
  CHECK(bad_append("$all", esdb::ExpectedVersion::Any(), "t") == Code::kCorruption);
  CHECK(bad_append("", esdb::ExpectedVersion::Any(), "t") == Code::kCorruption);
  CHECK(bad_append("ok", esdb::ExpectedVersion::Any(), "") == Code::kCorruption);
  CHECK(bad_append("ok", esdb::ExpectedVersion::Exact(-2), "t") == Code::kCorruption);
  // A count far beyond the bytes present fails without allocating for it.
  std::string huge;
  esdb_store::EncodeGroupHeader(0, 0xffffffffu, &huge);
  CHECK(DecodeGroup(huge).status().code() == Code::kCorruption);
  // So does one the bytes present could not hold: 100,000 requests in
  // 100,000 bytes (each takes at least 13), and 10,000 events in 100,000
  // bytes (each at least 33). Refused before anything is reserved for them,
  // not at the first request or event that turns out bad.
  std::string padded;
  esdb_store::EncodeGroupHeader(0, 100000, &padded);
  padded.append(100000, '\x05');
  auto too_many = DecodeGroup(padded);
  CHECK(too_many.status().code() == Code::kCorruption);
  CHECK_THAT(too_many.status().message(), Catch::Contains("request count 100000 larger than the group"));
  std::string events;
  esdb_store::EncodeGroupHeader(0, 1, &events);
  esdb_store::EncodeGroupAppend("s", esdb::ExpectedVersion::Any(), {}, {}, {}, &events);
  events.resize(events.size() - 4);  // the event count, written again below
  esdb_store::PutFixed32BE(&events, 10000);
  events.append(100000, 'e');
  auto too_many_events = DecodeGroup(events);
  CHECK(too_many_events.status().code() == Code::kCorruption);
  CHECK_THAT(too_many_events.status().message(), Catch::Contains("event count 10000 larger than the group"));
}

// A log checkpoint (group_codec.h, kind 4) comes from the log like any
// request: every prefix is corruption, a bad node name or entry 0 is named.
TEST_CASE("log checkpoints round-trip in a commit group; damaged ones are corruption", "[codec][cluster]") {
  using esdb_store::DecodeGroup;
  const esdb_store::LogCheckpoint cp{"node-2", 4242, std::string(32, '\x7f')};
  std::string g;
  esdb_store::EncodeGroupHeader(7, 2, &g);
  esdb_store::EncodeGroupCheckpoint(cp, &g);
  esdb_store::EncodeGroupDelete("s", esdb::ExpectedVersion::Any(), false, &g);
  auto r = DecodeGroup(g);
  REQUIRE(r.ok());
  REQUIRE(r->requests.size() == 2);
  CHECK(r->requests[0].kind == esdb_store::GroupRequest::Kind::kCheckpoint);
  REQUIRE(r->requests[0].checkpoint.has_value());
  CHECK(r->requests[0].checkpoint->node == "node-2");
  CHECK(r->requests[0].checkpoint->sequence == 4242);
  CHECK(r->requests[0].checkpoint->hash == cp.hash);
  for (size_t n = 0; n < g.size(); ++n) {
    INFO(n);
    CHECK(DecodeGroup(std::string_view(g).substr(0, n)).status().code() == Code::kCorruption);
  }
  for (const esdb_store::LogCheckpoint& bad : {esdb_store::LogCheckpoint{"", 1, std::string(32, 'h')},
                                               esdb_store::LogCheckpoint{std::string(65, 'n'), 1, std::string(32, 'h')},
                                               esdb_store::LogCheckpoint{"node-1", 0, std::string(32, 'h')}}) {
    std::string e;
    esdb_store::EncodeGroupHeader(1, 1, &e);
    esdb_store::EncodeGroupCheckpoint(bad, &e);
    auto d = DecodeGroup(e);
    CHECK(d.status().code() == Code::kCorruption);
    CHECK_THAT(d.status().message(), Catch::Contains("request 0: checkpoint"));
  }
}

// A node's stored log position (store_core_internal.h): format 3 carries
// the last verified point; formats 1 and 2 (written by earlier versions)
// still decode, verified at the empty log. Truncated or inconsistent ones
// are refused.
TEST_CASE("the stored log position round-trips with its verified point; older formats decode", "[codec][cluster]") {
  esdb_store::LogPosition p;
  p.sequence = 900;
  p.hash.assign(32, 'h');
  p.digest.assign(32, 'd');
  p.entry_id = "node-1-3.abcd-17";
  p.verified_sequence = 850;
  p.verified_hash.assign(32, 'v');
  const std::string bytes = esdb_store::EncodeLogPosition(p);
  esdb_store::LogPosition back;
  REQUIRE(esdb_store::DecodeLogPosition(bytes, &back));
  CHECK(back.sequence == 900);
  CHECK(back.hash == p.hash);
  CHECK(back.digest == p.digest);
  CHECK(back.entry_id == p.entry_id);
  CHECK(back.verified_sequence == 850);
  CHECK(back.verified_hash == p.verified_hash);
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO(n);
    CHECK_FALSE(esdb_store::DecodeLogPosition(std::string_view(bytes).substr(0, n), &back));
  }
  // Verified beyond what was applied cannot be.
  esdb_store::LogPosition ahead = p;
  ahead.verified_sequence = 901;
  CHECK_FALSE(esdb_store::DecodeLogPosition(esdb_store::EncodeLogPosition(ahead), &back));
  // Format 2: the same without the verified point.
  std::string v2 = bytes.substr(0, bytes.size() - 40);
  v2[0] = 2;
  REQUIRE(esdb_store::DecodeLogPosition(v2, &back));
  CHECK(back.sequence == 900);
  CHECK(back.verified_sequence == 0);
  CHECK(back.verified_hash == std::string(32, '\0'));
  std::string v4 = bytes;
  v4[0] = 4;
  CHECK_FALSE(esdb_store::DecodeLogPosition(v4, &back));
}
