// The gateway's routing view of the registry (DESIGN §4): per service, its state, its
// interfaces and the addresses a request may go to, in the order of preference.
//
// RouteBuilder follows the cache's changes (on the thread that publishes them) and publishes
// an immutable RouteTable; request threads read it without locks (see Routes). A service
// whose nodes did not change keeps its ServiceRoute object, so workers can tell by
// pointer which services to rebind.
//
// Pure apart from the atomic publish: no I/O, no ZooKeeper.
#pragma once

#include <svcctl/model/model.hpp>
#include <svcctl/registry/cache.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace svcctl::gateway {

struct ApiRoute {
  std::string name;
  std::string path;
  model::Encoding encoding = model::Encoding::Json;
  bool up = true;
  std::chrono::milliseconds timeout{1000};
  std::string method;  // the Yar method (the interface name unless set)
  bool idempotent = false;
};

struct AddrRoute {
  std::string name;  // host:port, the node name
  std::string host;  // without IPv6 brackets
  std::uint16_t port = 0;
  std::string dc;
  std::int64_t weight = model::k_default_weight;
  bool local = false;  // in the gateway's datacenter
};

// A caller key's rate for one service, shared by every worker: GCRA, the token bucket
// kept as one number (the theoretical arrival time of the next call, steady-clock ns),
// updated by compare-and-swap. Lives as long as its ACL, across route rebuilds.
struct RateBucket {
  std::atomic<std::int64_t> tat{0};
};

struct RateDecision {
  bool allowed = true;
  std::int64_t limit = 0;           // this gateway's burst
  std::int64_t remaining = 0;       // calls that may follow at once
  std::int64_t retry_after_ns = 0;  // refused: until one call is allowed again
  std::int64_t reset_ns = 0;        // until the bucket is full again
};

// Takes one call from the bucket if it holds one. With `gateways` gateways sharing the
// limit, this one enforces rate / gateways and burst / gateways (at least 1). A refused
// call takes nothing. Lock-free.
RateDecision take_token(RateBucket& bucket, double rate, std::int64_t burst, std::int64_t gateways,
                        std::int64_t now_ns);

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// What one key may call on a service (DESIGN §2, /acl/{svc}/{key}).
struct AclRoute {
  std::optional<double> rate;  // calls per second over all gateways; none: unlimited
  std::int64_t burst = 1;
  bool all_apis = true;
  std::vector<std::string> apis;  // sorted; when not all_apis
  bool shadow = false;            // count what it would refuse, refuse nothing
  std::shared_ptr<RateBucket> bucket;

  bool allows(std::string_view api) const {
    return all_apis || std::binary_search(apis.begin(), apis.end(), api);
  }
};

struct ServiceRoute {
  std::string name;
  bool up = true;
  // The addresses a request may go to (model::routable); the gateway's datacenter first.
  std::vector<AddrRoute> addrs;
  // How many of `addrs` the balancer chooses among: the local ones when any is up,
  // otherwise all of them.
  std::size_t candidates = 0;
  // Running sums of the candidates' weights (for weighted random choice).
  std::vector<std::int64_t> cumulative;
  bool equal_weights = true;  // all candidates weigh the same
  std::vector<ApiRoute> apis;  // sorted by name
  // Caller keys allowed to call it. None: open to every caller (unless the gateway
  // requires keys). Some: a call needs a known, enabled key with an ACL here.
  std::unordered_map<std::string, AclRoute, StringHash, std::equal_to<>> acls;
  bool enforcing = false;  // some ACL is not in shadow mode

  const AclRoute* find_acl(std::string_view key) const {
    auto it = acls.find(key);
    return it == acls.end() ? nullptr : &it->second;
  }
  const ApiRoute* find_api(std::string_view api) const;
  std::span<const AddrRoute> candidate_addrs() const { return {addrs.data(), candidates}; }
};

// Caller keys (/key/{key}): whether each is enabled.
using KeyTable = std::unordered_map<std::string, bool, StringHash, std::equal_to<>>;

struct RouteTable {
  std::uint64_t generation = 0;
  std::unordered_map<std::string, std::shared_ptr<const ServiceRoute>, StringHash, std::equal_to<>> services;
  std::shared_ptr<const KeyTable> keys = std::make_shared<const KeyTable>();
  // Live gateways (/gateway/*, this one included once registered), at least 1: each
  // enforces its share of every rate.
  std::int64_t gateways = 1;

  const ServiceRoute* find(std::string_view service) const {
    auto it = services.find(service);
    return it == services.end() ? nullptr : it->second.get();
  }
  // nullptr: not registered; else whether it is enabled.
  const bool* find_key(std::string_view key) const {
    auto it = keys->find(key);
    return it == keys->end() ? nullptr : &it->second;
  }
};

// Builds one service's route from its decoded nodes.
// `buckets`: each ACL's rate bucket by key (an ACL missing from it gets a new one).
std::shared_ptr<const ServiceRoute> build_service(
    const model::Service& service, const std::vector<model::Address>& addresses,
    const std::vector<model::Api>& apis, const std::string& dc, const std::vector<model::Acl>& acls = {},
    const std::map<std::string, std::shared_ptr<RateBucket>, std::less<>>& buckets = {});

// The published table, read by request threads: current() is a lock-free load when the
// generation did not move (the caller keeps the pointer it got last time).
class Routes {
 public:
  Routes() : m_table(std::make_shared<const RouteTable>()) {}
  std::uint64_t generation() const { return m_generation.load(std::memory_order_acquire); }
  std::shared_ptr<const RouteTable> current() const { return m_table.load(std::memory_order_acquire); }
  void publish(std::shared_ptr<const RouteTable> table) {
    auto g = table->generation;
    m_table.store(std::move(table), std::memory_order_release);
    m_generation.store(g, std::memory_order_release);
  }

  // The mass-change guard's state, for the admin listener.
  struct Guard {
    std::uint64_t holds = 0;          // changes held, in all
    std::vector<std::string> held;    // services held now
  };
  Guard guard() const {
    std::lock_guard lock(m_guard_mu);
    return m_guard;
  }
  void set_guard(Guard g) {
    std::lock_guard lock(m_guard_mu);
    m_guard = std::move(g);
  }

 private:
  mutable std::mutex m_guard_mu;
  Guard m_guard;
  std::atomic<std::shared_ptr<const RouteTable>> m_table;
  std::atomic<std::uint64_t> m_generation{0};
};

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
  // The names of a service's up addresses (weight > 0) as ZooKeeper has them now (none
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

// ---- choosing an address ------------------------------------------------------------

// Smooth weighted round robin (nginx's): every choice adds each candidate's weight to its
// current value, picks the highest and takes the total off it. `current` holds one value
// per candidate and is the caller's (per worker) state.
std::size_t pick_swrr(std::span<const AddrRoute> candidates, std::span<std::int64_t> current);

// Power of two choices: two draws at random by weight, then the one with fewer requests in
// flight per unit of weight (pick_p2c_by: over n candidates given by accessors); the first draw wins ties, so with nothing in flight the choice
// follows the weights. `random` returns uniform 64-bit values.
//
// `distinct`: the second draw is among the other candidates, so two are always compared
// (with two addresses, draws that may coincide compare nothing half the time, and the
// queues drift apart). Only for equal weights: with unequal ones and a few calls in flight,
// always comparing lets integer in-flight counts override the weights (1:3 served 1:1).
template <typename Weight, typename InFlight, typename Random>
std::size_t pick_p2c_by(std::size_t n, std::span<const std::int64_t> cumulative, Weight&& weight,
                        InFlight&& in_flight, Random&& random, bool distinct = false) {
  if (n <= 1) return 0;
  // The candidate whose running-sum interval holds r.
  auto find = [&](std::int64_t r) -> std::size_t {
    std::size_t lo = 0, hi = n - 1;
    while (lo < hi) {
      std::size_t mid = (lo + hi) / 2;
      if (cumulative[mid] > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const std::int64_t total = cumulative[n - 1];
  const std::size_t a = find(static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(total)));
  const std::int64_t wa = weight(a);
  std::size_t b;
  if (distinct && total > wa) {
    // A number over the other weights, shifted past a's interval.
    auto r = static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(total - wa));
    if (r >= cumulative[a] - wa) r += wa;
    b = find(r);
  } else {
    b = find(static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(total)));
  }
  if (a == b) return a;
  // fa / wa <= fb / wb, without division (weights are at most 10^6). Not (f + 1) / w:
  // with nothing in flight that would always favour the heavier address, and the choice
  // would no longer follow the weights.
  std::int64_t la = static_cast<std::int64_t>(in_flight(a)) * weight(b);
  std::int64_t lb = static_cast<std::int64_t>(in_flight(b)) * wa;
  return la <= lb ? a : b;
}

// The same over a service's candidates (their weights, `cumulative` their running sums).
template <typename InFlight, typename Random>
std::size_t pick_p2c(std::span<const AddrRoute> candidates, std::span<const std::int64_t> cumulative,
                     InFlight&& in_flight, Random&& random, bool distinct = false) {
  return pick_p2c_by(
      candidates.size(), cumulative, [&](std::size_t i) { return candidates[i].weight; },
      std::forward<InFlight>(in_flight), std::forward<Random>(random), distinct);
}

}  // namespace svcctl::gateway
