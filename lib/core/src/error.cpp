#include <svcctl/core/error.hpp>

namespace svcctl {

std::string_view kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Error: return "error";
    case ErrorKind::Usage: return "usage";
    case ErrorKind::NotFound: return "not_found";
    case ErrorKind::Conflict: return "conflict";
    case ErrorKind::Unavailable: return "unavailable";
    case ErrorKind::PermissionDenied: return "permission_denied";
    case ErrorKind::RemoteError: return "remote_error";
    case ErrorKind::DeliveryFailed: return "delivery_failed";
    case ErrorKind::Unsafe: return "unsafe";
    case ErrorKind::TimedOut: return "timed_out";
    case ErrorKind::Findings: return "findings";
    case ErrorKind::RolledBack: return "rolled_back";
  }
  return "error";
}

}  // namespace svcctl
