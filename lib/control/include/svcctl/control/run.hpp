// `svcctl proxy`'s whole life, once its options are parsed: the registry loaded into the
// watch-driven cache, the route builder and its mass-change guard fed from it (the
// guard's second read through a session live at the time), the gateway serving from the
// routes, /gateway/{id} held while it runs, and on stop the drain: stop accepting, leave
// /gateway, let the calls under way finish.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/gateway/gateway.hpp>
#include <svcctl/gateway/log.hpp>
#include <svcctl/registry/cache.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace svcctl::control {

struct GatewayRun {
  gateway::Options gateway;
  // The cache's options (ZooKeeper, how many sessions, the last-known-good file);
  // run_gateway sets on_change and on_session. The /gateway/{id} registration and the
  // guard's confirming read connect with the same ZooKeeper options.
  registry::Cache::Options cache;
  // The first load's time (then the last-known-good file, or Unavailable).
  std::chrono::milliseconds start_timeout{5000};
  std::string dc;   // the gateway's datacenter: its addresses are preferred
  std::string id;   // its name under /gateway; empty: the short host name and the port
  std::chrono::milliseconds guard_delay{2000};  // 0: no mass-change guard
  std::chrono::milliseconds guard_window{0};    // 0: the guard delay
  std::chrono::milliseconds drain_timeout{10'000};
  std::string version;  // svcctl's, written in /gateway/{id}
  // The event log (session transitions, the guard, start and drain); null: say nothing.
  gateway::Log* events = nullptr;
  // Problems worth a warning: node data, the registration failing for good, the
  // last-known-good file served.
  std::function<void(std::string_view)> warn;
  // The registration's every step (--verbose).
  std::function<void(std::string_view)> debug;
  // Called every 50 ms on the thread that runs the gateway (the command reopens its log
  // files there).
  std::function<void()> on_tick;
};

// Runs until `stop` is set, then drains. Fails before serving (a listener that cannot be
// bound, ZooKeeper unreachable with no last-known-good file); once serving, it runs on
// whatever ZooKeeper does.
Expected<void> run_gateway(GatewayRun run, const std::atomic<bool>& stop);

// "{short host name}-{port of listen}", in the characters a gateway id may hold (others
// become '-', and one trailing '-' is dropped); "gateway-{port}" without a host name.
std::string default_gateway_id(std::string_view host_name, std::string_view listen);

}  // namespace svcctl::control
