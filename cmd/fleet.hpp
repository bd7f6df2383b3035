// Waiting for the fleet of gateways to follow a registry write (drain, undrain --wait,
// apply --wait): every gateway under /gateway asked for its /-/stats each round, until
// each has what drain::Progress asks of it or the time is up.
#pragma once

#include "context.hpp"
#include "drain_report.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace svcctl::cmd::fleet {

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

// Polls every gateway (at most every 100 ms) until `progress` is done or `timeout` passes,
// telling progress on stderr. Fails only when ZooKeeper cannot be read at the first round;
// later, it warns and asks again.
Expected<Outcome> follow(Context& ctx, registry::Registry& reg, const Target& target,
                         std::chrono::milliseconds timeout, drain::Progress progress);

}  // namespace svcctl::cmd::fleet
