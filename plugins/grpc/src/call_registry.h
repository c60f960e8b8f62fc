// The open long-lived calls on gRPC's callback API (persistent Reads,
// BatchAppends), so that a stop or RestartSubsystem can end them at once
// instead of waiting for their clients. Thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <set>

#include <grpcpp/grpcpp.h>

namespace esdb_grpc {

// A call that can be ended from outside its reactions.
class EndableCall {
 public:
  // Ends the call with `status` (once; later calls do nothing). Never runs
  // the call's OnDone on the caller's thread.
  virtual void End(const grpc::Status& status) = 0;

 protected:
  ~EndableCall() = default;
};

class CallRegistry {
 public:
  // Adds `c`; false when `limit` calls are registered already.
  bool Add(EndableCall* c, size_t limit);
  void Remove(EndableCall* c);
  // Ends every registered call with `status` (they finish on their own threads).
  void EndAll(const grpc::Status& status);

 private:
  std::mutex mu_;
  std::set<EndableCall*> calls_;
};

}  // namespace esdb_grpc
