// SSE stream sources: adapters from a bus subscription or a store
// subscription to an SseSink. Each keeps only a weak_ptr to its sink and
// cancels its subscription in Stop() (thread-safe, idempotent).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "esdb/bus.h"
#include "esdb/subscriptions.h"
#include "http_types.h"

namespace esdb_gateway {

// Formats one SSE message; each line of `data` (JSON text) is one "data:"
// line, so a client joining them with "\n" gets `data` back ("\r" as "\n").
std::string SseMessage(const std::string& id, const std::string& event, const std::string& data);

// Bus events (e.g. lifecycle) as SSE: id = bus event id, event = type,
// data = EventToJson.
class BusEventSource : public StreamSource {
 public:
  BusEventSource(esdb::EventBus* bus, esdb::SubscribeOptions options) : bus_(bus), options_(std::move(options)) {}
  esdb::Status Start(std::shared_ptr<SseSink> sink) override;
  void Stop() override;

 private:
  esdb::EventBus* bus_;
  esdb::SubscribeOptions options_;
  std::mutex mu_;
  bool stopped_ = false;
  esdb::Subscription subscription_;
};

// Opens a subscription with the given handlers (a call to
// SubscribeToStream/SubscribeToAll/ConnectToGroup bound to its request).
using SubscribeFn = std::function<esdb::Result<esdb::Subscription>(std::weak_ptr<SseSink> sink)>;

// A store-side subscription (catch-up or persistent group) as SSE. The
// subscribe function builds the handlers around the sink it is given; a
// refusal's response names `refusal_fields` (e.g. stream and group).
class StoreSubscriptionSource : public StreamSource {
 public:
  explicit StoreSubscriptionSource(SubscribeFn subscribe,
                                   std::vector<std::pair<std::string, std::string>> refusal_fields = {})
      : subscribe_(std::move(subscribe)), refusal_fields_(std::move(refusal_fields)) {}
  esdb::Status Start(std::shared_ptr<SseSink> sink) override;
  void Stop() override;
  std::vector<std::pair<std::string, std::string>> RefusalFields() const override { return refusal_fields_; }

 private:
  SubscribeFn subscribe_;
  const std::vector<std::pair<std::string, std::string>> refusal_fields_;
  std::mutex mu_;
  bool stopped_ = false;
  esdb::Subscription subscription_;
};

}  // namespace esdb_gateway
