#include "sources.h"

#include "json_util.h"

namespace esdb_gateway {

std::string SseMessage(const std::string& id, const std::string& event, const std::string& data) {
  std::string m;
  m.reserve(data.size() + id.size() + event.size() + 24);
  if (!id.empty()) m += "id: " + id + "\n";
  if (!event.empty()) m += "event: " + event + "\n";
  m += "data: ";
  // A line break ends an SSE field: each line of `data` becomes its own
  // "data:" line, which the client joins with "\n" (JSON text kept as
  // written may contain line breaks between tokens).
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t brk = data.find_first_of("\r\n", i);
    if (brk == std::string::npos) {
      m.append(data, i, std::string::npos);
      break;
    }
    m.append(data, i, brk - i);
    m += "\ndata: ";
    i = brk;
    if (data[brk] == '\r' && brk + 1 < data.size() && data[brk + 1] == '\n') ++i;
  }
  m += "\n\n";
  return m;
}

esdb::Status BusEventSource::Start(std::shared_ptr<SseSink> sink) {
  std::weak_ptr<SseSink> weak = sink;
  auto result = bus_->Subscribe(options_, [weak](const esdb::EventPtr& e) {
    auto s = weak.lock();
    if (!s) return;
    s->Send(SseMessage(e->id, e->type, Dump(RedactSecrets(esdb::EventToJson(*e)))));
  });
  if (!result.ok()) return result.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return esdb::Status::OK();  // result's destructor cancels it
  subscription_ = std::move(result.value());
  return esdb::Status::OK();
}

void BusEventSource::Stop() {
  esdb::Subscription sub;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    sub = std::move(subscription_);
  }
  sub.cancel();  // outside the lock: waits for a running handler
}

esdb::Status StoreSubscriptionSource::Start(std::shared_ptr<SseSink> sink) {
  SubscribeFn subscribe;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return esdb::Status::OK();
    subscribe = subscribe_;
  }
  auto result = subscribe(sink);
  if (!result.ok()) return result.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return esdb::Status::OK();
  subscription_ = std::move(result.value());
  return esdb::Status::OK();
}

void StoreSubscriptionSource::Stop() {
  esdb::Subscription sub;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    sub = std::move(subscription_);
    subscribe_ = nullptr;
  }
  sub.cancel();
}

}  // namespace esdb_gateway
