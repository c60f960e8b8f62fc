// ReplyFunnel: carries replies made on other threads (the store's writer
// completing a commit group, one ack after another) to the io thread of the
// sessions they belong to, coalescing wakeups: while the io thread has not
// drained the queue yet, further replies only join it. A commit group's
// acks then cost the writer about one post (one wakeup of the io thread)
// per io_context instead of one per request, and the io thread sends them
// in one go.
//
// One per io_context. Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "http_types.h"

namespace esdb_gateway {

class Session;

class ReplyFunnel : public std::enable_shared_from_this<ReplyFunnel> {
 public:
  explicit ReplyFunnel(boost::asio::io_context::executor_type io) : io_(io) {}

  // Queues `response` for `session`; Session::Deliver(response) runs on a
  // thread of the io_context soon. Any thread.
  void Push(std::shared_ptr<Session> session, Response response);
  // Drops what is queued (server stop, once its sessions are closed).
  void Clear();

 private:
  void Drain();

  const boost::asio::io_context::executor_type io_;
  std::mutex mu_;
  std::vector<std::pair<std::shared_ptr<Session>, Response>> queue_;  // guarded by mu_
  bool drain_posted_ = false;                                        // guarded by mu_
};

}  // namespace esdb_gateway
