// A Registry over a ZooKeeper session that is live when it is read, for a long-running
// process's occasional reads (the gateway's mass-change guard): a session opened once and
// kept would not outlive ZooKeeper being away longer than its timeout, and an expired
// session fails every read after.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/registry/registry.hpp>
#include <svcctl/zk/session.hpp>

#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>

namespace svcctl::registry {

class LiveRegistry {
 public:
  // `log` is told when a session is replaced, and why. Sessions are opened with `connect`
  // (by default the real client).
  explicit LiveRegistry(zk::Options options, std::function<void(std::string_view)> log = {},
                        zk::Connector connect = {});
  ~LiveRegistry();
  LiveRegistry(const LiveRegistry&) = delete;
  LiveRegistry& operator=(const LiveRegistry&) = delete;

  // Returns what `read(Registry&)` returns, run over the current session; with none, one
  // is connected first (within the options' timeout; its failure is returned). When a read
  // through a session opened before this call fails for connection reasons
  // (ErrorKind::Unavailable: connection lost, session expired, no answer in time), that
  // session is closed and `read` runs once more, through a new one.
  template <typename F>
  auto read(F&& read) -> std::invoke_result_t<F&, Registry&> {
    const bool reused = m_registry != nullptr;
    SVCCTL_TRY(Registry * registry, current());
    auto result = read(*registry);
    if (result || !reused || result.error().kind != ErrorKind::Unavailable) return result;
    replace(result.error());
    SVCCTL_TRY(registry, current());
    return read(*registry);
  }

 private:
  // The registry over the current session, connecting one when there is none.
  Expected<Registry*> current();
  // Closes the current session after `why` (a failed read), and says so.
  void replace(const Error& why);

  zk::Options m_options;
  std::function<void(std::string_view)> m_log;
  zk::Connector m_connect;
  std::unique_ptr<zk::Session> m_client;
  std::unique_ptr<Registry> m_registry;  // over m_client; destroyed first
};

}  // namespace svcctl::registry
