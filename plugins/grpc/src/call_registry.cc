#include "call_registry.h"

namespace esdb_grpc {

bool CallRegistry::Add(EndableCall* c, size_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (calls_.size() >= limit) return false;
  calls_.insert(c);
  return true;
}

void CallRegistry::Remove(EndableCall* c) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.erase(c);
}

void CallRegistry::EndAll(const grpc::Status& status) {
  // A call's Finish completes on a gRPC thread, never inside End, so its
  // OnDone (which calls Remove) cannot run while this holds the lock.
  std::lock_guard<std::mutex> lock(mu_);
  for (EndableCall* c : calls_) c->End(status);
}

}  // namespace esdb_grpc
