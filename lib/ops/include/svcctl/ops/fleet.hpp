// Asking every gateway at once (ask_admins: stats, doctor, and the waits), and waiting for
// the fleet of gateways to follow a registry write (drain, undrain --wait,
// apply --wait): every gateway under /gateway asked for its /-/stats each round, until
// each has what drain::Progress asks of it or the time is up.
#pragma once

#include <svcctl/ops/drain_report.hpp>

#include <svcctl/model/model.hpp>
#include <svcctl/registry/registry.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::ops::fleet {

// Asks every gateway's admin listener for `path` (/-/stats, with a query or not) at once,
// each for at most `timeout`. Per gateway, in order: the answer's JSON, or why there is
// none (no admin address, unreachable, an HTTP status other than 200, not JSON).
std::vector<Expected<nlohmann::json>> ask_admins(const std::vector<model::Gateway>& gateways,
                                                 std::string_view path, std::chrono::milliseconds timeout);

// What a gateway's answer is read for: the services whose mass-change guard must not hold
// them, and the address (of the first service) whose calls in flight are counted (none
// when empty).
struct Target {
  std::vector<std::string> services;
  std::string address;
};

struct Outcome {
  drain::Progress progress;
  std::int64_t waited_ms = 0;
  bool timed_out = false;
  bool no_gateway = false;  // none was registered at the first round
};

// Where follow() tells what it waits for (at most once a second, and when it changes) and
// the rounds that could not read ZooKeeper.
struct Tell {
  std::function<void(std::string_view)> note;
  std::function<void(std::string_view)> warn;
};

// Polls every gateway (at most every 100 ms) until `progress` is done or `timeout` passes.
// Fails only when ZooKeeper cannot be read at the first round; later, it warns and asks
// again.
Expected<Outcome> follow(const Tell& tell, registry::Registry& reg, const Target& target,
                         std::chrono::milliseconds timeout, drain::Progress progress);

}  // namespace svcctl::ops::fleet
