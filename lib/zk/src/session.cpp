#include <svcctl/zk/client.hpp>
#include <svcctl/zk/session.hpp>

#include <fmt/format.h>

namespace svcctl::zk {

std::string_view describe(Code c) {
  switch (c) {
    case Code::Ok: return "ok";
    case Code::SystemError: return "ZooKeeper system error";
    case Code::RuntimeInconsistency: return "ZooKeeper runtime inconsistency";
    case Code::DataInconsistency: return "ZooKeeper data inconsistency";
    case Code::ConnectionLoss: return "connection to ZooKeeper lost";
    case Code::MarshallingError: return "ZooKeeper marshalling error";
    case Code::Unimplemented: return "operation not implemented by ZooKeeper";
    case Code::OperationTimeout: return "ZooKeeper request timed out";
    case Code::BadArguments: return "invalid path or arguments";
    case Code::InvalidState: return "ZooKeeper session is not connected";
    case Code::NewConfigNoQuorum: return "no quorum of the new ZooKeeper configuration";
    case Code::ReconfigInProgress: return "a ZooKeeper reconfiguration is in progress";
    case Code::SslConnectionError: return "TLS connection to ZooKeeper failed";
    case Code::ApiError: return "ZooKeeper API error";
    case Code::NoNode: return "no such node";
    case Code::NoAuth: return "permission denied by the node's ACL";
    case Code::BadVersion: return "version conflict (the node changed since it was read)";
    case Code::NoChildrenForEphemerals: return "ephemeral nodes cannot have children";
    case Code::NodeExists: return "node already exists";
    case Code::NotEmpty: return "node has children";
    case Code::SessionExpired: return "ZooKeeper session expired";
    case Code::InvalidCallback: return "invalid callback";
    case Code::InvalidAcl: return "invalid ACL";
    case Code::AuthFailed: return "authentication failed";
    case Code::Closing: return "ZooKeeper handle closing";
    case Code::Nothing: return "no server responses to process";
    case Code::SessionMoved: return "ZooKeeper session moved to another server";
    case Code::NotReadOnly: return "write sent to a read-only ZooKeeper server";
    case Code::EphemeralOnLocalSession: return "ephemeral node on a local session";
    case Code::NoWatcher: return "no such watch";
    case Code::ReconfigDisabled: return "ZooKeeper reconfiguration is disabled";
    case Code::SessionClosedRequireSaslAuth: return "ZooKeeper requires SASL authentication";
    case Code::Throttled: return "ZooKeeper throttled the request";
  }
  return "unknown ZooKeeper error";
}

bool connection_trouble(Code c) {
  switch (c) {
    case Code::ConnectionLoss:
    case Code::OperationTimeout:
    case Code::SessionExpired:
    case Code::InvalidState:
    case Code::Closing:
    case Code::SessionMoved:
    case Code::Throttled: return true;
    default: return false;
  }
}

Error to_error(Code rc, std::string_view context) {
  ErrorKind kind = ErrorKind::Error;
  switch (rc) {
    case Code::NoNode: kind = ErrorKind::NotFound; break;
    case Code::NodeExists:
    case Code::BadVersion:
    case Code::NotEmpty: kind = ErrorKind::Conflict; break;
    case Code::NoAuth:
    case Code::AuthFailed:
    case Code::InvalidAcl: kind = ErrorKind::PermissionDenied; break;
    default:
      if (connection_trouble(rc)) kind = ErrorKind::Unavailable;
      break;
  }
  std::string_view what = describe(rc);
  std::string unknown;
  if (what == "unknown ZooKeeper error") {
    unknown = fmt::format("ZooKeeper error {}", static_cast<int>(rc));
    what = unknown;
  }
  return Error{kind, fmt::format("{}: {}", context, what), static_cast<int>(rc)};
}

std::string_view to_string(SessionState s) {
  switch (s) {
    case SessionState::Connecting: return "connecting";
    case SessionState::Connected: return "connected";
    case SessionState::Expired: return "expired";
    case SessionState::AuthFailed: return "auth_failed";
    case SessionState::Closed: return "closed";
  }
  return "connecting";
}

Op Op::create(std::string path, std::string data, CreateMode mode) {
  return Op{Type::Create, std::move(path), std::move(data), -1, mode};
}
Op Op::remove(std::string path, int version) {
  return Op{Type::Remove, std::move(path), {}, version, CreateMode::Persistent};
}
Op Op::set(std::string path, std::string data, int version) {
  return Op{Type::Set, std::move(path), std::move(data), version, CreateMode::Persistent};
}
Op Op::check(std::string path, int version) {
  return Op{Type::Check, std::move(path), {}, version, CreateMode::Persistent};
}

std::string join(std::string_view parent, std::string_view child) {
  if (parent == "/" || parent.empty()) return fmt::format("/{}", child);
  return fmt::format("{}/{}", parent, child);
}

Expected<void> Session::ensure_path(const std::string& path) {
  if (path.empty() || path == "/") return {};
  auto r = create(path, "", CreateMode::Persistent);
  if (r || is(r.error(), Code::NodeExists)) return {};
  const auto slash = path.rfind('/');
  if (!is(r.error(), Code::NoNode) || slash == 0) return r;  // a top-level node's parent is "/"
  SVCCTL_CHECK(ensure_path(path.substr(0, slash)));
  r = create(path, "", CreateMode::Persistent);
  if (r || is(r.error(), Code::NodeExists)) return {};
  return r;
}

std::vector<Expected<Node>> Session::get_many(const std::vector<std::string>& paths, std::size_t) {
  std::vector<Expected<Node>> out;
  out.reserve(paths.size());
  for (const auto& p : paths) out.push_back(get(p));
  return out;
}

std::vector<Expected<std::vector<std::string>>> Session::children_many(const std::vector<std::string>& paths,
                                                                       std::size_t) {
  std::vector<Expected<std::vector<std::string>>> out;
  out.reserve(paths.size());
  for (const auto& p : paths) out.push_back(children(p));
  return out;
}

Connector real_connector() {
  return [](const Options& o) -> Expected<std::unique_ptr<Session>> {
    SVCCTL_TRY(auto client, Client::connect(o));
    return std::unique_ptr<Session>(std::move(client));
  };
}

}  // namespace svcctl::zk
