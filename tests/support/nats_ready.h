// A test's requirement that its nats-servers are ready: NatsCluster::
// WaitReady() within `timeout_ms`, or the test stops, naming the server that
// failed and holding its log (NatsCluster::Failure()). For Catch2 tests.
#pragma once

#include <catch2/catch.hpp>

#include "support/nats_cluster.h"

namespace esdb::test {

inline void RequireNatsReady(NatsCluster& nats, int timeout_ms) {
  const bool ready = nats.WaitReady(timeout_ms);
  INFO(nats.Failure());
  REQUIRE(ready);
}

}  // namespace esdb::test
