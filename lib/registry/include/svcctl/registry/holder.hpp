// Self-registration (DESIGN §2): holds an ephemeral /address/{svc}/{host:port} node for as
// long as this process lives and its health check passes, like a provider's sidecar.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/model/model.hpp>
#include <svcctl/zk/client.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

namespace svcctl::registry {

class Holder {
 public:
  struct Options {
    zk::Options zk;
    std::string service;
    model::HostPort address;
    model::AddressFields fields;  // dc, weight, version, tags written with the node
    // The health check; empty means always healthy. Called on the holding thread.
    std::function<bool()> check;
    std::chrono::milliseconds interval{2000};
    int rise = 2;  // consecutive passes before the address is up
    int fall = 3;  // consecutive failures before it is down
    // Told of every transition ("registered", "down: check failed", "new session", ...).
    std::function<void(std::string_view)> log;
  };

  explicit Holder(Options options) : m_options(std::move(options)) {}

  // Runs until `stop` becomes true, then removes the node (if this session holds it) and
  // returns. Fails at once on what waiting cannot fix: a missing service (NotFound), a
  // persistent node at the address (Conflict), a permission error. ZooKeeper being away
  // is waited out.
  Expected<void> run(const std::atomic<bool>& stop);

 private:
  Options m_options;
};

}  // namespace svcctl::registry
