// The gateway (DESIGN §4): `svcctl proxy`'s data plane and admin listener.
//
// - Data plane: a few worker threads, each with its own event loop, its own listening
//   socket on the same port (SO_REUSEPORT), its own upstream connection pools and its own
//   counters; a connection stays on the worker that accepted it. Nothing on the request
//   path locks, waits for or calls ZooKeeper: routing reads the published RouteTable.
// - Admin listener: /-/healthz, /-/stats, /metrics, /-/registry, on its own thread.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/gateway/balance.hpp>
#include <svcctl/gateway/log.hpp>
#include <svcctl/gateway/registry_source.hpp>
#include <svcctl/gateway/routes.hpp>
#include <svcctl/gateway/stats.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace svcctl::gateway {

struct Options {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  std::string admin = "127.0.0.1:9901";   // empty: no admin listener
  unsigned workers = 0;                   // 0: one per hardware thread
  Balance balance = Balance::P2C;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 1024 * 1024;
  std::chrono::milliseconds header_timeout{10'000};   // a request's header and body, from its first byte
  std::chrono::milliseconds idle_timeout{60'000};     // a client connection between requests
  std::chrono::milliseconds upstream_idle_timeout{30'000};
  std::size_t max_idle_per_address = 1024;            // pooled upstream connections, per worker
  // Calls in flight to one address, over all workers; past it, other addresses, then 503.
  std::size_t max_pending_per_address = 1024;
  // Failure handling (DESIGN §4). A call that could not be sent, or an idempotent
  // interface's call that failed, goes once to another address while retries stay under
  // `retry_budget_percent` of calls (plus a small burst).
  unsigned retry_budget_percent = 20;
  // Passive outlier ejection: after `eject_after` failures in a row (connect error,
  // timeout, 5xx, unreadable answer) an address is out of rotation for eject_base × the
  // times it was ejected (at most eject_max); never more than `max_ejected_percent` of a
  // service's addresses at once. Below `panic_percent` healthy, ejections are ignored.
  unsigned eject_after = 5;
  std::chrono::milliseconds eject_base{30'000};
  std::chrono::milliseconds eject_max{300'000};
  unsigned max_ejected_percent = 50;
  unsigned panic_percent = 50;
  // Below this share of a service's addresses in the gateway's datacenter, calls spill to
  // the others in proportion (balance::Rules::dc_min_percent); 0: the local ones take all.
  unsigned dc_min_percent = 0;
  // /-/healthz answers 503 "stale" once the registry view has not been followed this long
  // (ZooKeeper unreachable, session lost): routing goes on from the snapshot meanwhile.
  std::chrono::milliseconds max_stale{300'000};
  // Caller keys: a service with ACLs needs a known key with an ACL there; with
  // require_keys, every service does (a service without ACLs refuses every call).
  bool require_keys = false;
  // One line per event worth telling an operator (not per request).
  std::function<void(std::string_view)> log;
  // When set, one line per call (buffered per worker, written every 10 ms).
  Log* access_log = nullptr;
};

class Gateway {
 public:
  // `registry` answers the admin listener's questions about the view `routes` come from;
  // both must outlive the gateway.
  Gateway(Options options, const RegistrySource& registry, const Routes& routes);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds the listeners and starts the threads. Unavailable when an address cannot be
  // bound (in use, not local), Usage when it is not host:port.
  Expected<void> start();
  // Stops accepting, closes every connection and joins the threads.
  void stop();
  // Stops accepting and closes idle connections; calls under way finish (their connections
  // close after the answer). Returns true when every connection is gone before `deadline`.
  // stop() then ends what is left.
  bool drain(std::chrono::steady_clock::time_point deadline);

  // This gateway's name (its /gateway/{id}), shown by the admin listener.
  void set_id(std::string id);

  // The addresses actually bound (with the port chosen when 0 was asked).
  std::string listen_address() const;
  std::string admin_address() const;

  // Every worker's counters, merged (asks each worker's loop for a copy).
  StatsView stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> m_impl;
};

}  // namespace svcctl::gateway
