// The gateway's routes fed from the registry: RouteBuilder takes the cache's changes,
// decodes the nodes they touch, rebuilds those services' routes and publishes a new
// gateway::RouteTable; its mass-change guard holds a change that would take too much of
// a service away until a second read confirms it.
#pragma once

#include <svcctl/gateway/routes.hpp>
#include <svcctl/model/model.hpp>
#include <svcctl/registry/cache.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace svcctl::control {

using gateway::KeyTable;
using gateway::RateBucket;
using gateway::Routes;
using gateway::RouteTable;
using gateway::ServiceRoute;

// Follows the cache: apply() takes each batch of changes (from Cache::Options::on_change),
// rebuilds the services they touch and publishes a new table. Problems in node data are
// reported through `on_problem` (the node is used with safe values, as model's lenient
// decoding gives them).
//
// Mass-change guard: a change is held, the service routed as it was, when it would
//  - take more than half of the service's routable addresses away at once,
//  - leave it fewer than half of the most it was routed to within `guard_window`
//    (removals, downs and weight 0 in several changes in a row),
//  - take its last routable address away, or
//  - remove the /service node of a service routed to some address;
// until `guard_delay` has passed and `confirm` (a second read, from ZooKeeper) shows the
// same addresses as the cache: then it is applied. A later batch that brings the service
// back under the threshold releases the hold at once.
class RouteBuilder {
 public:
  using Clock = std::chrono::steady_clock;
  RouteBuilder(Routes& routes, std::string dc) : m_routes(routes), m_dc(std::move(dc)) {}

  void apply(const std::vector<registry::Change>& changes, Clock::time_point now = Clock::now());
  // Confirms holds that are due; call it often (every 100 ms or so), not on the cache's thread.
  void tick(Clock::time_point now = Clock::now());

  std::function<void(std::string_view path, std::string_view problem)> on_problem;
  std::function<void(std::string_view message)> on_event;
  std::chrono::milliseconds guard_delay{2000};  // 0: no guard
  // How far back the guard looks for the addresses a service was routed to (0: the guard
  // delay).
  std::chrono::milliseconds guard_window{0};
  // The names of a service's routable addresses (model::routable) as ZooKeeper has them now (none
  // when the service node is gone), or nullopt when it cannot be read (the hold stays).
  std::function<std::optional<std::vector<std::string>>(const std::string& service)> confirm;

 private:
  struct Hold {
    Clock::time_point due;
    std::size_t before = 0;  // routable addresses when it began
  };
  // What the guard says of routing a service to `next` (null: not routable) instead of
  // what it is routed to now (`prev`, null when it is not in the table).
  struct Verdict {
    bool hold = false;
    std::string why;         // for the log: what the change would do
    std::size_t before = 0;  // the addresses it is judged against
  };
  Verdict judge(const std::string& svc, const ServiceRoute* prev, const ServiceRoute* next,
                Clock::time_point now);
  // The service is routed anew from now on: how many addresses its route `prev` had is
  // remembered for the guard's window.
  void routed(const std::string& svc, const ServiceRoute* prev, Clock::time_point now);
  std::chrono::milliseconds window() const { return guard_window.count() > 0 ? guard_window : guard_delay; }
  std::map<std::string, Hold, std::less<>> m_holds;
  // Per service, its routes' address counts within the window: when each was replaced.
  std::map<std::string, std::vector<std::pair<Clock::time_point, std::size_t>>, std::less<>> m_peaks;
  std::uint64_t m_hold_count = 0;
  void publish_guard();
  // What a batch of changes touched.
  struct Touched {
    std::set<std::string, std::less<>> services;
    bool keys = false;
    bool gateways = false;
  };
  // One change decoded into the nodes, keys and gateways kept.
  void take_in(const registry::Change& c, Touched& touched);
  // The service's route rebuilt into `next`, unless the guard holds it (routed as it was);
  // true when the guard's state changed (a hold began or ended).
  bool reroute(const std::string& svc, RouteTable& next, Clock::time_point now);
  // The service's route from its nodes now; null when it is not routable.
  std::shared_ptr<const ServiceRoute> build(const std::string& svc);

  struct Nodes {
    std::optional<model::Service> service;
    std::map<std::string, model::Address> addresses;
    std::map<std::string, model::Api> apis;
    std::map<std::string, model::Acl> acls;
    std::map<std::string, std::shared_ptr<RateBucket>, std::less<>> buckets;  // by key, one per ACL
    bool empty() const { return !service && addresses.empty() && apis.empty() && acls.empty(); }
  };
  Routes& m_routes;
  std::string m_dc;
  std::mutex m_mu;
  std::map<std::string, Nodes, std::less<>> m_nodes;
  KeyTable m_keys;  // what the table's `keys` is copied from
  std::set<std::string, std::less<>> m_gateways;
  std::shared_ptr<const RouteTable> m_table = std::make_shared<const RouteTable>();
};

}  // namespace svcctl::control
