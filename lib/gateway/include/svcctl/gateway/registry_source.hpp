// What the gateway's admin listener says of the registry view its routes come from. The
// gateway never reads ZooKeeper: whoever feeds its routes (lib/control) also answers
// these questions, from its own copy of the registry.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace svcctl::gateway {

struct RegistryStatus {
  using Time = std::chrono::system_clock::time_point;
  bool started = false;     // a view exists (loaded or loading); nothing else is set until then
  bool loaded = false;      // the whole registry has been read once (or taken from a file)
  bool connected = false;   // its first session is connected
  std::string session;      // that session's state, as a word ("connected", "connecting", ...)
  std::vector<std::int64_t> session_ids;
  std::int64_t zxid = 0;    // the newest ZooKeeper transaction the view reflects
  std::uint64_t generation = 0;
  std::size_t nodes = 0;
  bool serving_last_known_good = false;
  std::optional<Time> last_change;
  std::optional<Time> stale_since;  // not following ZooKeeper since then

  struct Session {
    std::int64_t id = 0;
    std::string state;
  };
  std::vector<Session> sessions;
  // Transitions the sessions have been through: (kind, times), every kind listed.
  std::vector<std::pair<std::string, std::uint64_t>> session_events;
  std::uint64_t sessions_replaced = 0;
  std::optional<Time> last_replaced;
  std::string last_replaced_reason;
};

// One node of the view, for /-/registry.
struct RegistryNode {
  std::string_view path;
  std::string_view data;
  std::int32_t version = 0;
  bool ephemeral = false;
};

class RegistrySource {
 public:
  virtual ~RegistrySource() = default;
  // Cheap enough to call per admin request (not on the request path).
  virtual RegistryStatus status() const = 0;
  // Every node with data (containers are left out), in path order.
  virtual void each_node(const std::function<void(const RegistryNode&)>& fn) const = 0;
};

}  // namespace svcctl::gateway
