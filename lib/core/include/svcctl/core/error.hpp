// Error values returned by the library, and the exit codes they map to.
#pragma once

#include <string>
#include <string_view>

namespace svcctl {

// Each kind is one documented process exit code (README, "Exit codes"); the numbers are a
// contract with scripts and never change.
enum class ErrorKind : int {
  Error = 1,             // anything not listed below
  Usage = 2,             // bad command line or bad input value
  NotFound = 3,          // the named service, address, interface, key or ACL does not exist
  Conflict = 4,          // already exists, or version conflict (--if-version)
  Unavailable = 5,       // ZooKeeper unreachable, or a request timed out
  PermissionDenied = 6,  // ZooKeeper ACL refused the operation
  RemoteError = 7,       // the called service answered with an error
  DeliveryFailed = 8,    // the call could not be delivered (refused, timeout, bad framing)
  Unsafe = 9,            // refused as unsafe without --force (or --recursive)
  TimedOut = 10,         // gave up waiting for the fleet to follow (drain; undrain --wait)
  Findings = 11,         // a check found problems (doctor)
  RolledBack = 12,       // a rollout did not complete: the split it started from is back (or kept)
};

struct Error {
  ErrorKind kind = ErrorKind::Error;
  std::string message;  // lowercase, says what failed first, names the thing
  int code = 0;         // origin-specific detail (a ZooKeeper return code), 0 if none
};

// The process exit code for an error kind.
constexpr int exit_code(ErrorKind kind) { return static_cast<int>(kind); }

// Short stable name of the kind ("not_found"), used in JSON error output.
std::string_view kind_name(ErrorKind kind);

}  // namespace svcctl
