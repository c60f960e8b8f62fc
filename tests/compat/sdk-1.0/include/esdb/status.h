// Status and Result: how errors cross the plugin boundary. Nothing in the SDK
// throws across it; every fallible call returns one of these.
//
// Thread-safety: plain values; a const object may be read from many threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace esdb {

// What went wrong, coarse enough for callers to branch on (the gateway maps
// each code to one HTTP status).
enum class Code {
  kOk = 0,
  kInvalidArgument,       // the caller's input is wrong; retrying won't help
  kNotFound,              // stream, event, snapshot, service... does not exist
  kAlreadyExists,         // a unique name is taken
  kFailedPrecondition,    // the operation does not apply in this state
  kWrongExpectedVersion,  // optimistic concurrency check failed
  kStreamDeleted,         // the stream is tombstoned (hard-deleted) forever
  kUnavailable,           // a needed subsystem is not ready; retry later
  kResourceExhausted,     // a configured limit was hit
  kTimeout,               // a deadline passed
  kIOError,               // the disk or the OS failed us
  kCorruption,            // stored data does not parse
  kCancelled,             // the operation was stopped (shutdown, removal)
  kUnauthenticated,       // no or bad credentials
  kPermissionDenied,      // credentials lack the role
  kInternal,              // a bug or an unexpected exception
};

// Returns the stable lower-case name of `code`, e.g. "wrong_expected_version".
inline const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kFailedPrecondition: return "failed_precondition";
    case Code::kWrongExpectedVersion: return "wrong_expected_version";
    case Code::kStreamDeleted: return "stream_deleted";
    case Code::kUnavailable: return "unavailable";
    case Code::kResourceExhausted: return "resource_exhausted";
    case Code::kTimeout: return "timeout";
    case Code::kIOError: return "io_error";
    case Code::kCorruption: return "corruption";
    case Code::kCancelled: return "cancelled";
    case Code::kUnauthenticated: return "unauthenticated";
    case Code::kPermissionDenied: return "permission_denied";
    case Code::kInternal: return "internal";
  }
  return "unknown";
}

// The outcome of an operation: ok, or a code with a message that names what
// was wrong (the field, the file, the stream...). Default: ok.
class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
  static Status WrongExpectedVersion(std::string m) { return {Code::kWrongExpectedVersion, std::move(m)}; }
  static Status StreamDeleted(std::string m) { return {Code::kStreamDeleted, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
  static Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  // Attaches a code-specific number: for kWrongExpectedVersion, the stream's
  // current version (so callers need not parse the message).
  Status& SetDetail(int64_t detail) {
    detail_ = detail;
    return *this;
  }
  // The attached number, if any.
  std::optional<int64_t> detail() const { return detail_; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "ok", or "<code name>: <message>".
  std::string ToString() const {
    if (ok()) return "ok";
    return std::string(CodeName(code_)) + ": " + message_;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::optional<int64_t> detail_;
};

// A value or the Status saying why there is none. Accessing value() of an
// error Result is a programming error (it is checked with an assert-like
// abort in debug builds through std::optional).
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: must not be ok
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace esdb
