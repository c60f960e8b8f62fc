// The store's semantics, in process, on a real LevelDB in a temp dir.
#include <future>
#include <set>
#include <thread>

#include "store_service.h"
#include "test_util.h"

using namespace esdb_store_test;
using esdb::Code;
using esdb::ExpectedVersion;

namespace {

esdb::ReadStreamResult ReadAllOf(esdb::EventStoreV2& s, const std::string& stream) {
  esdb::ReadStreamRequest r;
  r.stream_id = stream;
  r.count = 1000;
  auto res = s.ReadStream(r);
  REQUIRE(res.ok());
  return *res;
}

std::vector<esdb::RecordedEvent> ReadAllEvents(esdb::EventStoreV2& s, esdb::AllFilter filter = {}) {
  esdb::ReadAllRequest r;
  r.count = 1000;
  r.filter = std::move(filter);
  auto res = s.ReadAll(r);
  REQUIRE(res.ok());
  return res->events;
}

enum class StreamKind { kAbsent, kExisting, kSoftDeleted, kTombstoned };

// Puts "s" in the given state; an existing / soft-deleted stream had versions 0 and 1.
void Prepare(esdb::EventStoreV2& s, StreamKind kind) {
  if (kind == StreamKind::kAbsent) return;
  REQUIRE(s.Append("s", ExpectedVersion::NoStream(), {Ev("a"), Ev("b")}).ok());
  if (kind == StreamKind::kSoftDeleted) REQUIRE(s.DeleteStream("s", ExpectedVersion::Any(), false).ok());
  if (kind == StreamKind::kTombstoned) REQUIRE(s.DeleteStream("s", ExpectedVersion::Any(), true).ok());
}

}  // namespace

TEST_CASE("append then read a stream forward, backward, one event, its version") {
  StoreFixture f;
  auto& s = *f.store;
  CHECK(s.NextPosition() == 0);
  auto r = s.Append("orders-1", ExpectedVersion::NoStream(), {Ev("created", "{\"n\":1}"), Ev("paid", "{\"n\":2}")});
  REQUIRE(r.ok());
  CHECK(r->next_expected_version == 1);
  CHECK(r->first_position == 0);
  CHECK(r->position == 1);
  CHECK_FALSE(r->idempotent);
  r = s.Append("orders-2", ExpectedVersion::Any(), {Ev("created")});
  REQUIRE(r.ok());
  CHECK(r->position == 2);
  r = s.Append("orders-1", ExpectedVersion::Exact(1), {Ev("shipped")});
  REQUIRE(r.ok());
  CHECK(r->next_expected_version == 2);
  CHECK(r->position == 3);
  CHECK(s.NextPosition() == 4);

  auto fwd = ReadAllOf(s, "orders-1");
  CHECK(Versions(fwd) == std::vector<int64_t>{0, 1, 2});
  CHECK(fwd.last_version == 2);
  CHECK(fwd.end_of_stream);
  CHECK(fwd.events[0].event_type == "created");
  CHECK(fwd.events[0].data == "{\"n\":1}");
  CHECK(fwd.events[0].content_type == "application/json");
  CHECK(fwd.events[2].position == 3);
  CHECK(fwd.events[0].event_id.size() == 36);  // generated
  CHECK(fwd.events[0].created_us > 0);

  esdb::ReadStreamRequest page;
  page.stream_id = "orders-1";
  page.from = 1;
  page.count = 1;
  auto p = s.ReadStream(page);
  REQUIRE(p.ok());
  CHECK(Versions(*p) == std::vector<int64_t>{1});
  CHECK(p->next_version == 2);
  CHECK_FALSE(p->end_of_stream);

  page.direction = esdb::Direction::kBackward;
  page.from = -1;
  page.count = 2;
  p = s.ReadStream(page);
  REQUIRE(p.ok());
  CHECK(Versions(*p) == std::vector<int64_t>{2, 1});
  CHECK(p->next_version == 0);
  CHECK_FALSE(p->end_of_stream);
  page.from = 0;
  p = s.ReadStream(page);
  REQUIRE(p.ok());
  CHECK(Versions(*p) == std::vector<int64_t>{0});
  CHECK(p->end_of_stream);

  auto one = s.ReadEvent("orders-1", 2);
  REQUIRE(one.ok());
  CHECK(one->event_type == "shipped");
  CHECK(s.ReadEvent("orders-1", 3).status().code() == Code::kNotFound);
  CHECK(s.ReadEvent("nope", 0).status().code() == Code::kNotFound);
  CHECK(*s.StreamVersion("orders-1") == 2);
  CHECK(*s.StreamVersion("nope") == -1);
  esdb::ReadStreamRequest missing;
  missing.stream_id = "nope";
  CHECK(s.ReadStream(missing).status().code() == Code::kNotFound);
}

TEST_CASE("expected-version matrix: every kind against absent, existing, soft-deleted, tombstoned") {
  struct Case {
    StreamKind stream;
    ExpectedVersion expected;
    Code code;
    int64_t next_version;  // on success
    int64_t current;       // reported with WrongExpectedVersion
  };
  const std::vector<Case> cases = {
      {StreamKind::kAbsent, ExpectedVersion::Any(), Code::kOk, 0, 0},
      {StreamKind::kAbsent, ExpectedVersion::NoStream(), Code::kOk, 0, 0},
      {StreamKind::kAbsent, ExpectedVersion::StreamExists(), Code::kWrongExpectedVersion, 0, -1},
      {StreamKind::kAbsent, ExpectedVersion::Exact(-1), Code::kOk, 0, 0},
      {StreamKind::kAbsent, ExpectedVersion::Exact(0), Code::kWrongExpectedVersion, 0, -1},
      {StreamKind::kExisting, ExpectedVersion::Any(), Code::kOk, 2, 0},
      {StreamKind::kExisting, ExpectedVersion::NoStream(), Code::kWrongExpectedVersion, 0, 1},
      {StreamKind::kExisting, ExpectedVersion::StreamExists(), Code::kOk, 2, 0},
      {StreamKind::kExisting, ExpectedVersion::Exact(1), Code::kOk, 2, 0},
      {StreamKind::kExisting, ExpectedVersion::Exact(0), Code::kWrongExpectedVersion, 0, 1},
      {StreamKind::kExisting, ExpectedVersion::Exact(5), Code::kWrongExpectedVersion, 0, 1},
      {StreamKind::kSoftDeleted, ExpectedVersion::Any(), Code::kOk, 2, 0},
      {StreamKind::kSoftDeleted, ExpectedVersion::NoStream(), Code::kOk, 2, 0},
      {StreamKind::kSoftDeleted, ExpectedVersion::StreamExists(), Code::kWrongExpectedVersion, 0, -1},
      {StreamKind::kSoftDeleted, ExpectedVersion::Exact(1), Code::kOk, 2, 0},
      {StreamKind::kSoftDeleted, ExpectedVersion::Exact(0), Code::kWrongExpectedVersion, 0, -1},
      {StreamKind::kTombstoned, ExpectedVersion::Any(), Code::kStreamDeleted, 0, 0},
      {StreamKind::kTombstoned, ExpectedVersion::NoStream(), Code::kStreamDeleted, 0, 0},
      {StreamKind::kTombstoned, ExpectedVersion::StreamExists(), Code::kStreamDeleted, 0, 0},
      {StreamKind::kTombstoned, ExpectedVersion::Exact(1), Code::kStreamDeleted, 0, 0},
  };
  int index = 0;
  for (const Case& c : cases) {
    CAPTURE(index++);
    StoreFixture f;
    auto& s = *f.store;
    Prepare(s, c.stream);
    const uint64_t before = s.NextPosition();
    auto r = s.Append("s", c.expected, {Ev("x", "{\"new\":true}")});
    CHECK(r.status().code() == c.code);
    if (c.code == Code::kOk) {
      CHECK(r->next_expected_version == c.next_version);
      CHECK(s.NextPosition() == before + 1);
      // A recreated stream shows only its new events; numbering continued.
      auto read = ReadAllOf(s, "s");
      if (c.stream == StreamKind::kSoftDeleted) {
        CHECK(Versions(read) == std::vector<int64_t>{2});
      } else {
        CHECK(read.events.back().version == c.next_version);
      }
    } else {
      CHECK(s.NextPosition() == before);  // nothing written
      if (c.code == Code::kWrongExpectedVersion) {
        REQUIRE(r.status().detail().has_value());
        CHECK(*r.status().detail() == c.current);
        CHECK(r.status().message().find("'s'") != std::string::npos);
      }
    }
  }
}

TEST_CASE("idempotent resend in every mode; partial overlap is an error; nothing written") {
  StoreFixture f;
  auto& s = *f.store;
  // no_stream
  auto first = s.Append("idem", ExpectedVersion::NoStream(), {Ev("a", "1", Uuid(1)), Ev("b", "2", Uuid(2))});
  REQUIRE(first.ok());
  auto again = s.Append("idem", ExpectedVersion::NoStream(), {Ev("a", "1", Uuid(1)), Ev("b", "2", Uuid(2))});
  REQUIRE(again.ok());
  CHECK(again->idempotent);
  CHECK(again->next_expected_version == 1);
  CHECK(again->first_position == first->first_position);
  CHECK(again->position == first->position);
  // exact
  REQUIRE(s.Append("idem", ExpectedVersion::Exact(1), {Ev("c", "3", Uuid(3))}).ok());
  auto exact = s.Append("idem", ExpectedVersion::Exact(1), {Ev("c", "3", Uuid(3))});
  REQUIRE(exact.ok());
  CHECK(exact->idempotent);
  CHECK(exact->next_expected_version == 2);
  // any
  REQUIRE(s.Append("idem", ExpectedVersion::Any(), {Ev("d", "4", Uuid(4)), Ev("e", "5", Uuid(5))}).ok());
  auto any = s.Append("idem", ExpectedVersion::Any(), {Ev("d", "4", Uuid(4)), Ev("e", "5", Uuid(5))});
  REQUIRE(any.ok());
  CHECK(any->idempotent);
  CHECK(any->next_expected_version == 4);
  // stream_exists
  REQUIRE(s.Append("idem", ExpectedVersion::StreamExists(), {Ev("f", "6", Uuid(6))}).ok());
  auto exists = s.Append("idem", ExpectedVersion::StreamExists(), {Ev("f", "6", Uuid(6))});
  REQUIRE(exists.ok());
  CHECK(exists->idempotent);
  CHECK(exists->next_expected_version == 5);
  // An older append resent with `any` much later is still idempotent.
  auto old = s.Append("idem", ExpectedVersion::Any(), {Ev("a", "1", Uuid(1)), Ev("b", "2", Uuid(2))});
  REQUIRE(old.ok());
  CHECK(old->idempotent);
  CHECK(old->next_expected_version == 1);

  const uint64_t head = s.NextPosition();
  CHECK(head == 6);
  SECTION("partial overlap: some ids new") {
    auto r = s.Append("idem", ExpectedVersion::Any(), {Ev("f", "6", Uuid(6)), Ev("g", "7", Uuid(7))});
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find(Uuid(6)) != std::string::npos);
    CHECK(r.status().message().find("partially overlaps") != std::string::npos);
  }
  SECTION("partial overlap: known ids in another order") {
    auto r = s.Append("idem", ExpectedVersion::Any(), {Ev("b", "2", Uuid(2)), Ev("a", "1", Uuid(1))});
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  SECTION("known ids in another stream") {
    auto r = s.Append("other", ExpectedVersion::Any(), {Ev("a", "1", Uuid(1))});
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find("'idem'") != std::string::npos);
  }
  SECTION("exact resend with the wrong expected version") {
    auto r = s.Append("idem", ExpectedVersion::Exact(3), {Ev("c", "3", Uuid(3))});
    CHECK(r.status().code() == Code::kWrongExpectedVersion);
  }
  CHECK(s.NextPosition() == head);
  CHECK(ReadAllOf(s, "idem").events.size() == 6);
  // The id index is persistent: still idempotent after a reopen.
  f.Reopen();
  auto after = f.store->Append("idem", ExpectedVersion::Exact(1), {Ev("c", "3", Uuid(3))});
  REQUIRE(after.ok());
  CHECK(after->idempotent);
  CHECK(f.store->NextPosition() == head);
}

TEST_CASE("two appends to one stream queued together are decided in order") {
  StoreFixture f;
  auto& s = *f.store;
  std::promise<esdb::Result<esdb::AppendResult>> p1, p2, p3, p4;
  s.AppendAsync("g", ExpectedVersion::Exact(-1), {Ev("a")}, [&](auto r) { p1.set_value(std::move(r)); });
  s.AppendAsync("g", ExpectedVersion::Exact(0), {Ev("b")}, [&](auto r) { p2.set_value(std::move(r)); });
  s.AppendAsync("g", ExpectedVersion::NoStream(), {Ev("c")}, [&](auto r) { p3.set_value(std::move(r)); });
  s.AppendAsync("g", ExpectedVersion::Exact(1), {Ev("d", "{}", Uuid(9))}, [&](auto r) { p4.set_value(std::move(r)); });
  auto r1 = p1.get_future().get(), r2 = p2.get_future().get(), r3 = p3.get_future().get(), r4 = p4.get_future().get();
  REQUIRE(r1.ok());
  REQUIRE(r2.ok());
  CHECK(r2->next_expected_version == 1);
  CHECK(r3.status().code() == Code::kWrongExpectedVersion);
  REQUIRE(r4.ok());
  CHECK(r4->next_expected_version == 2);
  // The same ids twice in a row: the second is idempotent even in the same group.
  std::promise<esdb::Result<esdb::AppendResult>> q1, q2;
  s.AppendAsync("g", ExpectedVersion::Any(), {Ev("e", "{}", Uuid(10))}, [&](auto r) { q1.set_value(std::move(r)); });
  s.AppendAsync("g", ExpectedVersion::Any(), {Ev("e", "{}", Uuid(10))}, [&](auto r) { q2.set_value(std::move(r)); });
  auto s1 = q1.get_future().get(), s2 = q2.get_future().get();
  REQUIRE(s1.ok());
  REQUIRE(s2.ok());
  CHECK(s2->idempotent);
  CHECK(s2->next_expected_version == 3);
  CHECK(Versions(ReadAllOf(s, "g")) == std::vector<int64_t>{0, 1, 2, 3});
}

TEST_CASE("soft delete and tombstone") {
  StoreFixture f;
  auto& s = *f.store;
  REQUIRE(s.Append("soft", ExpectedVersion::Any(), {Ev("a"), Ev("b")}).ok());
  REQUIRE(s.Append("hard", ExpectedVersion::Any(), {Ev("a")}).ok());
  CHECK(s.DeleteStream("soft", ExpectedVersion::Exact(0), false).code() == Code::kWrongExpectedVersion);
  REQUIRE(s.DeleteStream("soft", ExpectedVersion::Exact(1), false).ok());
  REQUIRE(s.DeleteStream("hard", ExpectedVersion::Any(), true).ok());

  esdb::ReadStreamRequest r;
  r.stream_id = "soft";
  CHECK(s.ReadStream(r).status().code() == Code::kNotFound);
  CHECK(s.ReadEvent("soft", 0).status().code() == Code::kNotFound);
  CHECK(*s.StreamVersion("soft") == -1);
  CHECK(s.DeleteStream("soft", ExpectedVersion::Any(), false).code() == Code::kNotFound);
  CHECK(s.DeleteStream("never", ExpectedVersion::Any(), false).code() == Code::kNotFound);
  r.stream_id = "hard";
  CHECK(s.ReadStream(r).status().code() == Code::kStreamDeleted);
  CHECK(s.ReadEvent("hard", 0).status().code() == Code::kStreamDeleted);
  CHECK(s.StreamVersion("hard").status().code() == Code::kStreamDeleted);
  CHECK(s.DeleteStream("hard", ExpectedVersion::Any(), true).code() == Code::kStreamDeleted);
  CHECK(s.DeleteStream("hard", ExpectedVersion::Any(), false).code() == Code::kStreamDeleted);
  CHECK(s.SetMetadata("hard", {}).code() == Code::kStreamDeleted);
  // $all hides the deleted events.
  CHECK(ReadAllEvents(s).empty());
  auto list = s.ListStreams("", 10);
  REQUIRE(list.ok());
  REQUIRE(list->streams.size() == 2);
  CHECK(list->streams[0].stream_id == "hard");
  CHECK(list->streams[0].tombstoned);
  CHECK(list->streams[1].stream_id == "soft");
  CHECK(list->streams[1].deleted);
  // A tombstone on a stream that never existed is allowed and final.
  REQUIRE(s.DeleteStream("ghost", ExpectedVersion::NoStream(), true).ok());
  CHECK(s.Append("ghost", ExpectedVersion::Any(), {Ev("a")}).status().code() == Code::kStreamDeleted);

  const auto published = f.Published();
  int deletes = 0;
  for (const auto& e : published) {
    if (e.type == "stream_deleted") {
      ++deletes;
      CHECK(e.topic == "store");
    }
  }
  CHECK(deletes == 3);
  // Everything holds after a reopen.
  f.Reopen();
  CHECK(f.store->Append("hard", ExpectedVersion::Any(), {Ev("a")}).status().code() == Code::kStreamDeleted);
  CHECK(*f.store->StreamVersion("soft") == -1);
  auto again = f.store->Append("soft", ExpectedVersion::NoStream(), {Ev("c")});
  REQUIRE(again.ok());
  CHECK(again->next_expected_version == 2);
  CHECK(Versions(ReadAllOf(*f.store, "soft")) == std::vector<int64_t>{2});
}

TEST_CASE("stream metadata truncates reads at once; scavenge reclaims and reports") {
  StoreFixture f;
  auto& s = *f.store;
  std::vector<esdb::ProposedEvent> five;
  for (int i = 0; i < 5; ++i) five.push_back(Ev("t", std::string(100, 'a' + i), Uuid(100 + i)));
  REQUIRE(s.Append("m", ExpectedVersion::NoStream(), five).ok());
  REQUIRE(s.Append("keep", ExpectedVersion::NoStream(), {Ev("k")}).ok());

  esdb::StreamMetadata md;
  md.max_count = 2;
  md.custom = {{"owner", "billing"}};
  REQUIRE(s.SetMetadata("m", md).ok());
  CHECK(Versions(ReadAllOf(s, "m")) == std::vector<int64_t>{3, 4});
  CHECK(ReadAllOf(s, "m").last_version == 4);
  CHECK(s.ReadEvent("m", 2).status().code() == Code::kNotFound);
  auto got = s.GetMetadata("m");
  REQUIRE(got.ok());
  CHECK(got->max_count == 2u);
  CHECK(got->custom["owner"] == "billing");
  CHECK_FALSE(got->truncate_before.has_value());

  esdb::StreamMetadata tb;
  tb.truncate_before = 4;
  REQUIRE(s.SetMetadata("m", tb).ok());
  CHECK(Versions(ReadAllOf(s, "m")) == std::vector<int64_t>{4});
  CHECK(ReadAllEvents(s).size() == 2);  // m@4 and keep@0

  auto scavenged = s.Scavenge();
  REQUIRE(scavenged.ok());
  CHECK(scavenged->events_removed == 4);
  CHECK(scavenged->bytes_removed > 400);
  CHECK(scavenged->streams_scanned >= 2);
  // Lowering truncate_before cannot bring scavenged events back, but reads stay consistent.
  REQUIRE(s.SetMetadata("m", {}).ok());
  CHECK(Versions(ReadAllOf(s, "m")) == std::vector<int64_t>{4});
  // A scavenged event's id still makes a resend idempotent.
  auto resend = s.Append("m", ExpectedVersion::Any(), {five[0]});
  REQUIRE(resend.ok());
  CHECK(resend->idempotent);
  auto second = s.Scavenge();
  REQUIRE(second.ok());
  CHECK(second->events_removed == 0);

  SECTION("max_age hides old events") {
    esdb::StreamMetadata age;
    age.max_age_seconds = 1;
    REQUIRE(s.SetMetadata("keep", age).ok());
    CHECK(ReadAllOf(s, "keep").events.size() == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    CHECK(ReadAllOf(s, "keep").events.empty());
    REQUIRE(s.Append("keep", ExpectedVersion::Exact(0), {Ev("fresh")}).ok());
    CHECK(Versions(ReadAllOf(s, "keep")) == std::vector<int64_t>{1});
    auto r = s.Scavenge();
    REQUIRE(r.ok());
    CHECK(r->events_removed == 1);
  }
  SECTION("metadata survives a reopen") {
    REQUIRE(s.SetMetadata("keep", md).ok());
    f.Reopen();
    auto m2 = f.store->GetMetadata("keep");
    REQUIRE(m2.ok());
    CHECK(m2->max_count == 2u);
    CHECK(m2->custom == md.custom);
  }
  SECTION("metadata errors") {
    esdb::StreamMetadata bad;
    bad.max_count = 0;
    CHECK(s.SetMetadata("m", bad).code() == Code::kInvalidArgument);
    bad = {};
    bad.custom = nlohmann::json::array();
    CHECK(s.SetMetadata("m", bad).code() == Code::kInvalidArgument);
  }
}

TEST_CASE("snapshots: record, read at a version, latest, delete, list") {
  StoreFixture f;
  auto& s = *f.store;
  REQUIRE(s.Append("acc", ExpectedVersion::Any(), {Ev("a"), Ev("b"), Ev("c")}).ok());
  esdb::Snapshot snap;
  snap.stream_id = "acc";
  snap.version = 0;
  snap.data = "{\"balance\":1}";
  REQUIRE(s.PutSnapshot(snap).ok());
  snap.version = 2;
  snap.data = "{\"balance\":3}";
  REQUIRE(s.PutSnapshot(snap).ok());
  auto at = s.GetSnapshot("acc", 0);
  REQUIRE(at.ok());
  CHECK(at->data == "{\"balance\":1}");
  CHECK(at->created_us > 0);
  auto latest = s.LatestSnapshot("acc");
  REQUIRE(latest.ok());
  CHECK(latest->version == 2);
  CHECK(latest->data == "{\"balance\":3}");
  auto list = s.ListSnapshots("acc");
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].version == 0);
  CHECK((*list)[1].version == 2);
  REQUIRE(s.DeleteSnapshot("acc", 2).ok());
  CHECK(s.DeleteSnapshot("acc", 2).code() == Code::kNotFound);
  CHECK(s.LatestSnapshot("acc")->version == 0);
  CHECK(s.GetSnapshot("acc", 1).status().code() == Code::kNotFound);
  CHECK(s.LatestSnapshot("other").status().code() == Code::kNotFound);
  snap.version = 3;
  CHECK(s.PutSnapshot(snap).code() == Code::kInvalidArgument);  // beyond the stream
  snap.stream_id = "none";
  snap.version = 0;
  CHECK(s.PutSnapshot(snap).code() == Code::kNotFound);
  f.Reopen();
  CHECK(f.store->LatestSnapshot("acc")->data == "{\"balance\":1}");
  REQUIRE(f.store->DeleteStream("acc", ExpectedVersion::Any(), true).ok());
  CHECK(f.store->LatestSnapshot("acc").status().code() == Code::kStreamDeleted);
}

TEST_CASE("validation errors are clear and write nothing") {
  esdb_store::StoreOptions o;
  o.max_event_bytes = 1000;
  o.max_append_bytes = 1500;
  o.max_stream_id_length = 20;
  StoreFixture f(o);
  auto& s = *f.store;
  struct Bad {
    std::string stream;
    std::vector<esdb::ProposedEvent> events;
    ExpectedVersion expected;
    std::string message_part;
  };
  const std::vector<Bad> bad = {
      {"", {Ev("t")}, ExpectedVersion::Any(), "stream id is empty"},
      {std::string(21, 'x'), {Ev("t")}, ExpectedVersion::Any(), "max_stream_id_length"},
      {std::string("a\0b", 3), {Ev("t")}, ExpectedVersion::Any(), "NUL"},
      {"$system", {Ev("t")}, ExpectedVersion::Any(), "reserved"},
      {"$all", {Ev("t")}, ExpectedVersion::Any(), "$all"},
      {"ok", {Ev("t"), Ev("")}, ExpectedVersion::Any(), "event 1 of the append to 'ok': event type is required"},
      {"ok", {Ev("t", "{}", "not-a-uuid")}, ExpectedVersion::Any(), "is not a UUID"},
      {"ok", {Ev("t", "{}", "00000000-0000-4000-8000-00000000000g")}, ExpectedVersion::Any(), "is not a UUID"},
      {"ok", {Ev("t", std::string(1001, 'x'))}, ExpectedVersion::Any(), "max_event_bytes"},
      {"ok", {Ev("t", std::string(800, 'x')), Ev("t", std::string(800, 'x'))}, ExpectedVersion::Any(), "max_append_bytes"},
      {"ok", {Ev("t", "{}", Uuid(1)), Ev("t", "{}", Uuid(1))}, ExpectedVersion::Any(), "appears twice"},
      {"ok", {Ev("t")}, ExpectedVersion::Exact(-2), "expected version -2"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.message_part);
    auto r = s.Append(b.stream, b.expected, b.events);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find(b.message_part) != std::string::npos);
  }
  CHECK(s.NextPosition() == 0);
  CHECK(s.ListStreams("", 10)->streams.empty());
  // Upper-case UUIDs are accepted and stored canonical (lower case).
  auto ok = s.Append("ok", ExpectedVersion::Any(), {Ev("t", "{}", "ABCDEF00-0000-4000-8000-000000000001")});
  REQUIRE(ok.ok());
  CHECK(s.ReadEvent("ok", 0)->event_id == "abcdef00-0000-4000-8000-000000000001");
  // System streams of other subsystems are allowed by prefix.
  CHECK(s.Append("$persistent-g1", ExpectedVersion::Any(), {Ev("checkpoint")}).ok());
  // Reading a system stream is fine; reading "$all" as a stream is not.
  esdb::ReadStreamRequest r;
  r.stream_id = "$all";
  CHECK(s.ReadStream(r).status().code() == Code::kInvalidArgument);
  r.stream_id = "ok";
  r.count = o.max_read_count + 1;
  CHECK(s.ReadStream(r).status().code() == Code::kInvalidArgument);
}

TEST_CASE("$all: forward and backward pages, filters by type, prefix, regex, system streams") {
  StoreFixture f;
  auto& s = *f.store;
  for (int i = 0; i < 10; ++i) {
    const std::string stream = (i % 2 == 0 ? "order-" : "user-") + std::to_string(i % 3);
    REQUIRE(s.Append(stream, ExpectedVersion::Any(), {Ev(i % 2 == 0 ? "placed" : "renamed")}).ok());
  }
  REQUIRE(s.Append("$persistent-x", ExpectedVersion::Any(), {Ev("sys")}).ok());
  esdb::ReadAllRequest r;
  r.count = 4;
  std::vector<uint64_t> positions;
  for (;;) {
    auto page = s.ReadAll(r);
    REQUIRE(page.ok());
    for (const auto& e : page->events) positions.push_back(e.position);
    r.from = page->next_position;
    if (page->end_of_all) break;
  }
  CHECK(positions == std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});  // system stream excluded
  r = {};
  r.direction = esdb::Direction::kBackward;
  r.from = UINT64_MAX;
  r.count = 3;
  r.filter.include_system = true;
  auto back = s.ReadAll(r);
  REQUIRE(back.ok());
  REQUIRE(back->events.size() == 3);
  CHECK(back->events[0].position == 10);
  CHECK(back->events[0].stream_id == "$persistent-x");
  CHECK(back->next_position == 7);
  CHECK_FALSE(back->end_of_all);

  esdb::AllFilter by_type;
  by_type.event_types = {"renamed"};
  CHECK(ReadAllEvents(s, by_type).size() == 5);
  esdb::AllFilter by_prefix;
  by_prefix.stream_prefixes = {"order-"};
  CHECK(ReadAllEvents(s, by_prefix).size() == 5);
  esdb::AllFilter by_regex;
  by_regex.stream_regex = "user-[01]";
  auto users = ReadAllEvents(s, by_regex);
  CHECK(users.size() == 4);
  for (const auto& e : users) CHECK((e.stream_id == "user-0" || e.stream_id == "user-1"));
  r = {};
  r.filter.stream_regex = "([";
  CHECK(s.ReadAll(r).status().code() == Code::kInvalidArgument);
  // ListStreams pages by id.
  auto l1 = s.ListStreams("", 2);
  REQUIRE(l1.ok());
  REQUIRE(l1->streams.size() == 2);
  CHECK(l1->streams[0].stream_id == "$persistent-x");
  CHECK(l1->next_after == "order-0");
  auto l2 = s.ListStreams(l1->next_after, 100);
  REQUIRE(l2.ok());
  CHECK(l2->streams.size() == 5);
  CHECK(l2->next_after.empty());
}

TEST_CASE("one events_appended bus event per commit group with the contract's data") {
  StoreFixture f;
  auto& s = *f.store;
  REQUIRE(s.Append("a", ExpectedVersion::Any(), {Ev("x"), Ev("y")}).ok());
  REQUIRE_FALSE(s.Append("a", ExpectedVersion::NoStream(), {Ev("z")}).ok());  // rejected: no event
  auto published = f.Published();
  REQUIRE(published.size() == 1);
  const esdb::Event& e = published[0];
  CHECK(e.topic == "store");
  CHECK(e.type == "events_appended");
  CHECK(e.data["first_position"] == 0);
  CHECK(e.data["last_position"] == 1);
  CHECK(e.data["count"] == 2);
  REQUIRE(e.data["appends"].size() == 1);
  CHECK(e.data["appends"][0] == nlohmann::json{{"stream", "a"},
                                               {"first_version", 0},
                                               {"last_version", 1},
                                               {"first_position", 0},
                                               {"last_position", 1}});
}

TEST_CASE("the caller's CallContext rides on events_appended and stream_deleted") {
  StoreFixture f;
  auto& s = *f.store;
  std::promise<esdb::Result<esdb::AppendResult>> done;
  s.AppendAsync("traced", ExpectedVersion::Any(), {Ev("x")}, [&](auto r) { done.set_value(std::move(r)); },
                esdb::CallContext{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"});
  REQUIRE(done.get_future().get().ok());
  REQUIRE(s.DeleteStream("traced", ExpectedVersion::Any(), false, esdb::CallContext{"trace-of-delete", ""}).ok());
  REQUIRE(s.Append("untraced", ExpectedVersion::Any(), {Ev("y")}).ok());
  // A group's events are published right after its acks: wait (bounded) for the last one.
  auto published = f.Published();
  for (int tries = 0; tries < 500 && published.size() < 3; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    published = f.Published();
  }
  REQUIRE(published.size() == 3);
  CHECK(published[0].type == "events_appended");
  CHECK(published[0].correlation_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(published[0].causation_id == "00f067aa0ba902b7");
  CHECK(published[0].data["appends"][0]["correlation_id"] == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(published[0].data["appends"][0]["causation_id"] == "00f067aa0ba902b7");
  CHECK(published[1].type == "stream_deleted");
  CHECK(published[1].correlation_id == "trace-of-delete");
  CHECK(published[1].causation_id.empty());
  CHECK(published[2].correlation_id.empty());
  CHECK_FALSE(published[2].data["appends"][0].contains("correlation_id"));

  // Concurrent appends with different contexts, however they are grouped:
  // each entry names its own; the event names one only if all entries share it.
  constexpr int kAppends = 16;
  std::vector<std::promise<esdb::Result<esdb::AppendResult>>> promises(kAppends);
  for (int i = 0; i < kAppends; ++i) {
    s.AppendAsync("many", ExpectedVersion::Any(), {Ev("z")}, [&, i](auto r) { promises[i].set_value(std::move(r)); },
                  esdb::CallContext{"trace-" + std::to_string(i), "span-" + std::to_string(i)});
  }
  for (auto& p : promises) REQUIRE(p.get_future().get().ok());
  int entries = 0;
  for (int tries = 0; tries < 500 && entries < kAppends; ++tries) {
    entries = 0;
    for (const auto& e : f.Published()) {
      if (e.type != "events_appended" || e.data["appends"][0]["stream"] != "many") continue;
      entries += static_cast<int>(e.data["appends"].size());
    }
    if (entries < kAppends) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(entries == kAppends);
  std::set<std::string> seen;
  for (const auto& e : f.Published()) {
    if (e.type != "events_appended" || e.data["appends"][0]["stream"] != "many") continue;
    const auto& appends = e.data["appends"];
    for (const auto& a : appends) {
      const std::string trace = a["correlation_id"].get<std::string>();
      CHECK(a["causation_id"] == "span-" + trace.substr(6));
      seen.insert(trace);
    }
    if (appends.size() == 1) {
      CHECK(e.correlation_id == appends[0]["correlation_id"]);
    } else {
      CHECK(e.correlation_id.empty());
      CHECK(e.causation_id.empty());
    }
  }
  CHECK(seen.size() == kAppends);
}

TEST_CASE("everything survives a clean stop and start") {
  StoreFixture f;
  for (int i = 0; i < 50; ++i) {
    REQUIRE(f.store->Append("s-" + std::to_string(i % 5), ExpectedVersion::Any(), {Ev("e", std::to_string(i))}).ok());
  }
  auto before = ReadAllEvents(*f.store);
  f.Reopen();
  CHECK(f.store->NextPosition() == 50);
  auto after = ReadAllEvents(*f.store);
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    CHECK(after[i].event_id == before[i].event_id);
    CHECK(after[i].data == before[i].data);
    CHECK(after[i].version == before[i].version);
    CHECK(after[i].created_us == before[i].created_us);
  }
  CHECK(*f.store->StreamVersion("s-0") == 9);
  auto r = f.store->Append("s-0", ExpectedVersion::Exact(9), {Ev("e")});
  REQUIRE(r.ok());
  CHECK(r->position == 50);
}

TEST_CASE("a failed commit applies nothing and fails every request of the group") {
  struct FailingWriter : esdb_store::CommitWriter {
    esdb::Status Commit(esdb_store::CommitGroup&) override { return esdb::Status::IOError("disk on fire"); }
  };
  StoreFixture f;
  f.store->SetCommitWriterForTesting(std::make_unique<FailingWriter>());
  auto r = f.store->Append("s", ExpectedVersion::Any(), {Ev("e")});
  CHECK(r.status().code() == Code::kIOError);
  CHECK(*f.store->StreamVersion("s") == -1);
  CHECK(f.store->NextPosition() == 0);
  CHECK(f.Published().empty());
}

TEST_CASE("a closed storage makes the store answer with errors, not hang or crash") {
  StoreFixture f;
  REQUIRE(f.store->Append("s", ExpectedVersion::Any(), {Ev("e")}).ok());
  REQUIRE(f.storage->Close(std::chrono::seconds(5)).ok());
  CHECK(f.store->Append("s", ExpectedVersion::Any(), {Ev("e")}).status().code() == Code::kUnavailable);
  esdb::ReadStreamRequest r;
  r.stream_id = "s";
  CHECK(f.store->ReadStream(r).status().code() == Code::kUnavailable);
  f.store->Close();
  CHECK(f.store->Append("s", ExpectedVersion::Any(), {Ev("e")}).status().code() == Code::kCancelled);
}

TEST_CASE("the provided service answers Unavailable naming persistence until a core is attached") {
  StoreFixture f;
  esdb_store::StoreService svc("persistence is not ready: waiting for esdb.storage/1");
  auto r = svc.Append("s", ExpectedVersion::Any(), {Ev("e")});
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK(r.status().message().find("persistence") != std::string::npos);
  bool called = false;
  svc.AppendAsync("s", ExpectedVersion::Any(), {Ev("e")}, [&](esdb::Result<esdb::AppendResult> a) {
    called = true;
    CHECK(a.status().code() == Code::kUnavailable);
  });
  CHECK(called);
  svc.Attach(f.store);
  REQUIRE(svc.Append("s", ExpectedVersion::Any(), {Ev("e")}).ok());
  CHECK(svc.Stats()["available"] == true);
  auto core = svc.Detach("persistence is not available: esdb.storage/1 was withdrawn");
  CHECK(core == f.store);
  CHECK(svc.ReadEvent("s", 0).status().message().find("withdrawn") != std::string::npos);
}

TEST_CASE("store config: defaults and clear errors naming the key") {
  auto d = esdb_store::ParseStoreOptions(nlohmann::json::object());
  REQUIRE(d.ok());
  CHECK(d->sync);
  CHECK(d->max_event_bytes == 1u << 20);
  auto a = esdb_store::ParseStoreOptions({{"durability", "async"}, {"max_stream_id_length", 64}});
  REQUIRE(a.ok());
  CHECK_FALSE(a->sync);
  CHECK(a->max_stream_id_length == 64);
  CHECK(d->checkpoint_interval_ms == 5000);
  CHECK(esdb_store::ParseStoreOptions({{"checkpoint_interval_ms", 0}})->checkpoint_interval_ms == 0);
  for (const nlohmann::json& bad : {nlohmann::json{{"durability", "fast"}}, nlohmann::json{{"max_event_bytes", -1}},
                                    nlohmann::json{{"max_event_bytes", "1MiB"}}, nlohmann::json{{"durabilty", "sync"}},
                                    nlohmann::json{{"system_stream_prefixes", {"x-"}}},
                                    nlohmann::json{{"checkpoint_interval_ms", 50}},
                                    nlohmann::json{{"checkpoint_interval_ms", -1}}}) {
    auto r = esdb_store::ParseStoreOptions(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find(bad.begin().key()) != std::string::npos);
  }
  // Every problem at once, each naming its field.
  auto many = esdb_store::ParseStoreOptions({{"durability", "fast"}, {"max_event_bytes", 3}, {"colour", "red"}});
  REQUIRE_FALSE(many.ok());
  CHECK(many.status().code() == esdb::Code::kInvalidArgument);
  CHECK_THAT(many.status().message(), Catch::Contains("store config: 3 problems") &&
                                          Catch::Contains("field 'durability': must be one of \"sync\", \"async\"") &&
                                          Catch::Contains("field 'max_event_bytes': must be between 64 and") &&
                                          Catch::Contains("field 'colour': unknown field"));
  CHECK_THAT(esdb_store::ParseStoreOptions(nlohmann::json::array()).status().message(),
             Catch::Contains("store config: must be an object, got array"));
}
