// The store's record codec on damaged records (the inputs of fuzz/codec_fuzz.cc):
// a record that cannot be what the store wrote is Corruption, never
// undefined behaviour or a silently wrapped value.
#include <catch2/catch.hpp>

#include "codec.h"

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
