// The gateway's routing view of the registry (DESIGN §4): per service, its state, its
// interfaces and the addresses a request may go to, in the order of preference.
//
// The control module's RouteBuilder (lib/control) follows the registry and publishes an
// immutable RouteTable through Routes; request threads read it without locks. A service
// whose nodes did not change keeps its ServiceRoute object, so workers can tell by
// pointer which services to rebind.
//
// Pure apart from the atomic publish: no I/O, no ZooKeeper.
#pragma once

#include <svcctl/model/model.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
  std::string version;
};

// Addresses the balancer chooses among: the gateway's datacenter first.
struct AddrSet {
  std::vector<AddrRoute> addrs;
  // How many of `addrs` the balancer chooses among: the local ones when any is up,
  // otherwise all of them.
  std::size_t candidates = 0;
  // Running sums of the candidates' weights (for weighted random choice).
  std::vector<std::int64_t> cumulative;
  bool equal_weights = true;  // all candidates weigh the same

  std::span<const AddrRoute> candidate_addrs() const { return {addrs.data(), candidates}; }
};

// One version's addresses, a subset of its service's: a split's share goes to it, a pin
// chooses it.
struct VersionRoute : AddrSet {
  std::string version;
  std::int64_t share = 0;            // in the split; 0: only pinned calls
  std::vector<std::size_t> indexes;  // of `addrs` in the service's addrs
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
  std::string version;            // the key's calls go to this version ("": none)
  std::shared_ptr<RateBucket> bucket;

  bool allows(std::string_view api) const {
    return all_apis || std::binary_search(apis.begin(), apis.end(), api);
  }
};

// A service: its addresses (`addrs`: every routable one, model::routable), interfaces,
// versions and ACLs.
struct ServiceRoute : AddrSet {
  std::string name;
  bool up = true;
  // Every version its addresses have (the addresses without one are version ""), and the
  // versions a split names, sorted by version.
  std::vector<VersionRoute> versions;
  bool split = false;  // calls are split among `versions` by share
  model::Sticky sticky;
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
  // The index of `version` in `versions`, or versions.size().
  std::size_t find_version(std::string_view version) const;
};

// A caller key as the registry has it (/key/{key}).
enum class KeyState { Unknown, Enabled, Disabled };
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
  KeyState key_state(std::string_view key) const {
    auto it = keys->find(key);
    if (it == keys->end()) return KeyState::Unknown;
    return it->second ? KeyState::Enabled : KeyState::Disabled;
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

}  // namespace svcctl::gateway
