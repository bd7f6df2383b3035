// Request statistics. Each worker thread counts into its own Counters (no atomics, no
// locks on the request path); the admin listener asks every worker for a copy and merges
// them into a StatsView, which renders as the /-/stats JSON and the /metrics text. Pure.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/gateway/errors.hpp>
#include <svcctl/gateway/prometheus.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace svcctl::gateway {

// Latency in microseconds, log-linear: exact below 16 µs, then 8 buckets per power of two
// (at most 12.5 % wide), up to about 2^31 µs. Percentiles are given as the upper edge of
// their bucket.
class Histogram {
 public:
  static constexpr std::size_t k_buckets = 16 + 28 * 8;
  static std::size_t bucket_of(std::uint64_t us);
  static std::uint64_t upper_edge(std::size_t bucket);  // the largest value in it

  void record(std::uint64_t us) {
    ++m_counts[bucket_of(us)];
    ++m_count;
  }
  void merge(const Histogram& other);
  // Adds n values to a bucket (merging a histogram read back from JSON).
  void add(std::size_t bucket, std::uint64_t n) {
    if (bucket >= k_buckets) bucket = k_buckets - 1;
    m_counts[bucket] += n;
    m_count += n;
  }
  std::uint64_t at(std::size_t bucket) const { return m_counts[bucket]; }
  std::uint64_t count() const { return m_count; }
  // The q-quantile (0 < q <= 1) in µs; 0 when empty.
  std::uint64_t quantile(double q) const;
  // How many values are <= us (bucket-exact at bucket edges, else an estimate).
  std::uint64_t count_at_most(std::uint64_t us) const;

 private:
  std::array<std::uint64_t, k_buckets> m_counts{};
  std::uint64_t m_count = 0;
};

struct Counters {
  std::uint64_t requests = 0;
  std::array<std::uint64_t, k_err_count> errors{};
  std::uint64_t latency_sum_us = 0;
  Histogram latency;

  void record(std::uint64_t us, const Err* err) {
    ++requests;
    if (err) ++errors[index(*err)];
    latency_sum_us += us;
    latency.record(us);
  }
  void merge(const Counters& other);
};

// Everything the gateway counts, merged over workers.
struct StatsView {
  struct Address {
    Counters counters;
    std::int64_t in_flight = 0;
    std::uint64_t ejections = 0;   // times taken out of rotation
    std::int64_t ejected_ms = 0;   // out of rotation now, for this much longer (set by the gateway after merging)
  };
  // Would-be rejections of ACLs in shadow mode, by code (unknown_key, forbidden, rate_limited...).
  using Shadow = std::array<std::uint64_t, k_err_count>;
  // A caller key's calls to one service (only keys the registry knows are counted apart).
  struct Key {
    Counters counters;
    Shadow shadow{};
  };
  // The calls that went to one version's addresses (kept for services whose addresses
  // have versions, or that have a split).
  struct Version {
    Counters counters;
    std::uint64_t passed_over = 0;  // calls its share held that went to another version: it had no address
  };
  struct Service {
    Counters counters;  // all its interfaces
    std::int64_t in_flight = 0;
    std::uint64_t retries = 0;         // calls sent again to another address
    std::uint64_t retries_denied = 0;  // retries the budget refused
    std::uint64_t panic = 0;           // calls routed in panic mode (ejections ignored)
    std::uint64_t dc_spilled = 0;      // calls sent past the local datacenter by --dc-min-percent
    std::map<std::string, Counters> interfaces;
    std::map<std::string, Address> addresses;
    std::map<std::string, Key> keys;
    std::map<std::string, Version> versions;  // the addresses without a version are ""
    Shadow shadow{};  // all its keys, and calls without a known key
  };
  std::map<std::string, Service> services;
  Counters unrouted;  // requests answered before a service was known (bad path, method...)
  std::int64_t connections = 0;     // client connections open now
  std::uint64_t accepted = 0;       // client connections accepted in all
  std::uint64_t upstream_connects = 0;  // upstream connections opened in all

  void merge(const StatsView& other);
};

// {"requests", "errors": {code: n}, "latency_ms": {"p50","p90","p99","mean"}}; with
// `histograms`, also "latency_sum_us" and "histogram": [[bucket, count], ...] (the
// non-empty buckets), so that several gateways' figures can be merged exactly.
nlohmann::json to_json(const Counters& c, bool histograms = false);
nlohmann::json to_json(const StatsView& v, bool histograms = false);
// Reads back what to_json(v, true) wrote (unknown fields are ignored, missing ones are 0;
// without histograms the latencies are lost). Usage error when it is not that shape.
Expected<StatsView> stats_from_json(const nlohmann::json& j);
// Prometheus text exposition (version 0.0.4), every family with HELP and TYPE: the
// counters' families added to `p`, or alone as text.
void to_prometheus(Prometheus& p, const StatsView& v);
std::string to_prometheus(const StatsView& v);

}  // namespace svcctl::gateway
