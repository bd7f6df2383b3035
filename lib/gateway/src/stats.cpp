#include <svcctl/gateway/stats.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <optional>

namespace svcctl::gateway {

std::size_t Histogram::bucket_of(std::uint64_t us) {
  if (us < 16) return static_cast<std::size_t>(us);
  auto e = static_cast<std::size_t>(63 - std::countl_zero(us));  // >= 4
  if (e > 31) return k_buckets - 1;
  auto sub = static_cast<std::size_t>((us >> (e - 3)) & 7);
  return 16 + (e - 4) * 8 + sub;
}

std::uint64_t Histogram::upper_edge(std::size_t bucket) {
  if (bucket < 16) return bucket;
  std::size_t e = 4 + (bucket - 16) / 8;
  std::uint64_t sub = (bucket - 16) % 8;
  return ((8 + sub + 1) << (e - 3)) - 1;
}

void Histogram::merge(const Histogram& other) {
  for (std::size_t i = 0; i < k_buckets; ++i) m_counts[i] += other.m_counts[i];
  m_count += other.m_count;
}

std::uint64_t Histogram::quantile(double q) const {
  if (m_count == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(m_count)));
  if (rank == 0) rank = 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < k_buckets; ++i) {
    seen += m_counts[i];
    if (seen >= rank) return upper_edge(i);
  }
  return upper_edge(k_buckets - 1);
}

std::uint64_t Histogram::count_at_most(std::uint64_t us) const {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < k_buckets && upper_edge(i) <= us; ++i) n += m_counts[i];
  return n;
}

void Counters::merge(const Counters& other) {
  requests += other.requests;
  for (std::size_t i = 0; i < k_err_count; ++i) errors[i] += other.errors[i];
  latency_sum_us += other.latency_sum_us;
  latency.merge(other.latency);
}

void StatsView::merge(const StatsView& other) {
  for (const auto& [name, s] : other.services) {
    auto& mine = services[name];
    mine.counters.merge(s.counters);
    mine.in_flight += s.in_flight;
    mine.retries += s.retries;
    mine.retries_denied += s.retries_denied;
    mine.panic += s.panic;
    mine.dc_spilled += s.dc_spilled;
    for (const auto& [iface, c] : s.interfaces) mine.interfaces[iface].merge(c);
    for (const auto& [addr, a] : s.addresses) {
      auto& ma = mine.addresses[addr];
      ma.counters.merge(a.counters);
      ma.in_flight += a.in_flight;
      ma.ejections += a.ejections;
      ma.ejected_ms = std::max(ma.ejected_ms, a.ejected_ms);
    }
    for (const auto& [key, k] : s.keys) {
      auto& mk = mine.keys[key];
      mk.counters.merge(k.counters);
      for (std::size_t i = 0; i < k_err_count; ++i) mk.shadow[i] += k.shadow[i];
    }
    for (const auto& [version, ver] : s.versions) {
      auto& mv = mine.versions[version];
      mv.counters.merge(ver.counters);
      mv.passed_over += ver.passed_over;
    }
    for (std::size_t i = 0; i < k_err_count; ++i) mine.shadow[i] += s.shadow[i];
  }
  unrouted.merge(other.unrouted);
  connections += other.connections;
  accepted += other.accepted;
  upstream_connects += other.upstream_connects;
}

namespace {
double ms(std::uint64_t us) { return static_cast<double>(us) / 1000.0; }

nlohmann::json by_code(const std::array<std::uint64_t, k_err_count>& counts) {
  nlohmann::json j = nlohmann::json::object();
  for (std::size_t i = 0; i < k_err_count; ++i)
    if (counts[i]) j[std::string(info(static_cast<Err>(i)).code)] = counts[i];
  return j;
}
}  // namespace

nlohmann::json to_json(const Counters& c, bool histograms) {
  nlohmann::json lat = {
      {"p50", ms(c.latency.quantile(0.50))},
      {"p90", ms(c.latency.quantile(0.90))},
      {"p99", ms(c.latency.quantile(0.99))},
      {"mean", c.requests ? ms(c.latency_sum_us / c.requests) : 0.0},
  };
  nlohmann::json j = {{"requests", c.requests}, {"errors", by_code(c.errors)}, {"latency_ms", std::move(lat)}};
  if (histograms) {
    nlohmann::json h = nlohmann::json::array();
    for (std::size_t i = 0; i < Histogram::k_buckets; ++i)
      if (c.latency.at(i)) h.push_back({i, c.latency.at(i)});
    j["latency_sum_us"] = c.latency_sum_us;
    j["histogram"] = std::move(h);
  }
  return j;
}

nlohmann::json to_json(const StatsView& v, bool histograms) {
  nlohmann::json services = nlohmann::json::object();
  for (const auto& [name, s] : v.services) {
    nlohmann::json j = to_json(s.counters, histograms);
    j["in_flight"] = s.in_flight;
    j["retries"] = s.retries;
    j["retries_denied"] = s.retries_denied;
    j["panic"] = s.panic;
    j["dc_spilled"] = s.dc_spilled;
    j["shadow"] = by_code(s.shadow);
    nlohmann::json ifaces = nlohmann::json::object();
    for (const auto& [iface, c] : s.interfaces) ifaces[iface] = to_json(c, histograms);
    nlohmann::json keys = nlohmann::json::object();
    for (const auto& [key, k] : s.keys) {
      auto kj = to_json(k.counters, histograms);
      kj["shadow"] = by_code(k.shadow);
      keys[key] = std::move(kj);
    }
    nlohmann::json addrs = nlohmann::json::object();
    for (const auto& [addr, a] : s.addresses) {
      auto aj = to_json(a.counters, histograms);
      aj["in_flight"] = a.in_flight;
      aj["ejections"] = a.ejections;
      aj["ejected"] = a.ejected_ms > 0;
      if (a.ejected_ms > 0) aj["ejected_for_ms"] = a.ejected_ms;
      addrs[addr] = std::move(aj);
    }
    nlohmann::json versions = nlohmann::json::object();
    for (const auto& [version, ver] : s.versions) {
      auto vj = to_json(ver.counters, histograms);
      vj["passed_over"] = ver.passed_over;
      versions[version] = std::move(vj);
    }
    j["interfaces"] = std::move(ifaces);
    j["addresses"] = std::move(addrs);
    j["keys"] = std::move(keys);
    j["versions"] = std::move(versions);
    services[name] = std::move(j);
  }
  return {{"connections", v.connections},
          {"accepted", v.accepted},
          {"upstream_connects", v.upstream_connects},
          {"unrouted", to_json(v.unrouted, histograms)},
          {"services", std::move(services)}};
}

namespace {

// The Err whose code this is; nullopt for a code this build does not know.
std::optional<Err> err_of(std::string_view code) {
  for (std::size_t i = 0; i < k_err_count; ++i)
    if (info(static_cast<Err>(i)).code == code) return static_cast<Err>(i);
  return std::nullopt;
}

template <typename T>
T number(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  return it != j.end() && it->is_number() ? it->get<T>() : T{};
}

void codes_from(const nlohmann::json& j, const char* field, std::array<std::uint64_t, k_err_count>& out) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_object()) return;
  for (const auto& [code, n] : it->items())
    if (auto e = err_of(code); e && n.is_number_unsigned()) out[index(*e)] += n.get<std::uint64_t>();
}

Expected<Counters> counters_from(const nlohmann::json& j, std::string_view where) {
  if (!j.is_object()) return fail(ErrorKind::Usage, fmt::format("stats: {} is not an object", where));
  Counters c;
  c.requests = number<std::uint64_t>(j, "requests");
  codes_from(j, "errors", c.errors);
  c.latency_sum_us = number<std::uint64_t>(j, "latency_sum_us");
  if (auto h = j.find("histogram"); h != j.end()) {
    if (!h->is_array()) return fail(ErrorKind::Usage, fmt::format("stats: {}: histogram is not a list", where));
    for (const auto& pair : *h) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() || !pair[1].is_number_unsigned())
        return fail(ErrorKind::Usage, fmt::format("stats: {}: histogram entries are [bucket, count]", where));
      c.latency.add(pair[0].get<std::size_t>(), pair[1].get<std::uint64_t>());
    }
  }
  return c;
}

// The members of an object field, or nothing.
const nlohmann::json& members(const nlohmann::json& j, const char* field) {
  static const nlohmann::json empty = nlohmann::json::object();
  auto it = j.find(field);
  return it != j.end() && it->is_object() ? *it : empty;
}

}  // namespace

Expected<StatsView> stats_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return fail(ErrorKind::Usage, "stats: not a JSON object");
  StatsView v;
  v.connections = number<std::int64_t>(j, "connections");
  v.accepted = number<std::uint64_t>(j, "accepted");
  v.upstream_connects = number<std::uint64_t>(j, "upstream_connects");
  if (auto u = j.find("unrouted"); u != j.end()) {
    SVCCTL_TRY(v.unrouted, counters_from(*u, "unrouted"));
  }
  for (const auto& [name, sj] : members(j, "services").items()) {
    auto& s = v.services[name];
    SVCCTL_TRY(s.counters, counters_from(sj, "service " + name));
    s.in_flight = number<std::int64_t>(sj, "in_flight");
    s.retries = number<std::uint64_t>(sj, "retries");
    s.retries_denied = number<std::uint64_t>(sj, "retries_denied");
    s.panic = number<std::uint64_t>(sj, "panic");
    s.dc_spilled = number<std::uint64_t>(sj, "dc_spilled");
    codes_from(sj, "shadow", s.shadow);
    for (const auto& [iface, ij] : members(sj, "interfaces").items()) {
      SVCCTL_TRY(s.interfaces[iface], counters_from(ij, "interface " + iface));
    }
    for (const auto& [addr, aj] : members(sj, "addresses").items()) {
      auto& a = s.addresses[addr];
      SVCCTL_TRY(a.counters, counters_from(aj, "address " + addr));
      a.in_flight = number<std::int64_t>(aj, "in_flight");
      a.ejections = number<std::uint64_t>(aj, "ejections");
      a.ejected_ms = number<std::int64_t>(aj, "ejected_for_ms");
    }
    for (const auto& [key, kj] : members(sj, "keys").items()) {
      auto& k = s.keys[key];
      SVCCTL_TRY(k.counters, counters_from(kj, "key " + key));
      codes_from(kj, "shadow", k.shadow);
    }
    for (const auto& [version, vj] : members(sj, "versions").items()) {
      auto& ver = s.versions[version];
      SVCCTL_TRY(ver.counters, counters_from(vj, "version " + version));
      ver.passed_over = number<std::uint64_t>(vj, "passed_over");
    }
  }
  return v;
}

namespace {

constexpr std::uint64_t k_le_us[] = {500, 1000, 2500, 5000, 10000, 25000, 50000,
                                     100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

// The families one set of counters feeds: {prefix}_requests_total, _errors_total by code,
// and the _duration_seconds histogram.
void declare_counters(Prometheus& p, const std::string& prefix, std::string_view what, std::string_view errors,
                      std::string_view latency) {
  p.family(prefix + "_requests_total", "counter", what);
  p.family(prefix + "_errors_total", "counter", errors);
  p.family(prefix + "_duration_seconds", "histogram", latency);
}

void counters_samples(Prometheus& p, const std::string& prefix, const Prometheus::Labels& labels,
                      const Counters& c) {
  p.sample(prefix + "_requests_total", labels, c.requests);
  const std::string errors = prefix + "_errors_total";
  for (std::size_t i = 0; i < k_err_count; ++i)
    if (c.errors[i]) p.sample(errors, labels.with("code", info(static_cast<Err>(i)).code), c.errors[i]);
  const std::string d = prefix + "_duration_seconds";
  const std::string bucket = d + "_bucket";
  for (auto le : k_le_us)
    p.sample(d, labels.with("le", fmt::format("{}", static_cast<double>(le) / 1e6)), c.latency.count_at_most(le),
             bucket);
  p.sample(d, labels.with("le", "+Inf"), c.latency.count(), bucket);
  p.sample(d, labels, static_cast<double>(c.latency_sum_us) / 1e6, d + "_sum");
  p.sample(d, labels, c.latency.count(), d + "_count");
}

}  // namespace

void to_prometheus(Prometheus& p, const StatsView& v) {
  p.family("svcctl_connections", "gauge", "Client connections open.");
  p.sample("svcctl_connections", {}, v.connections);
  p.family("svcctl_connections_accepted_total", "counter", "Client connections accepted.");
  p.sample("svcctl_connections_accepted_total", {}, v.accepted);
  p.family("svcctl_upstream_connects_total", "counter", "Upstream connections opened.");
  p.sample("svcctl_upstream_connects_total", {}, v.upstream_connects);

  declare_counters(p, "svcctl", "Calls per service and interface.", "Calls answered with an error, by code.",
                   "Call latency through the gateway.");
  for (const auto& [svc, s] : v.services)
    for (const auto& [iface, c] : s.interfaces)
      counters_samples(p, "svcctl", {{"service", svc}, {"interface", iface}}, c);

  declare_counters(p, "svcctl_upstream", "Calls sent to each provider address.",
                   "Calls to each address that failed, by code.", "Latency of each provider address.");
  p.family("svcctl_upstream_in_flight", "gauge", "Calls waiting for each provider address.");
  p.family("svcctl_upstream_ejections_total", "counter", "Times each address was taken out of rotation.");
  p.family("svcctl_upstream_ejected", "gauge", "1 while the address is out of rotation.");
  for (const auto& [svc, s] : v.services)
    for (const auto& [addr, a] : s.addresses) {
      const Prometheus::Labels labels{{"service", svc}, {"address", addr}};
      counters_samples(p, "svcctl_upstream", labels, a.counters);
      p.sample("svcctl_upstream_in_flight", labels, a.in_flight);
      p.sample("svcctl_upstream_ejections_total", labels, a.ejections);
      p.sample("svcctl_upstream_ejected", labels, a.ejected_ms > 0 ? 1 : 0);
    }

  declare_counters(p, "svcctl_version", "Calls sent to each version of a service.",
                   "Calls to each version that failed, by code.", "Latency of each version of a service.");
  p.family("svcctl_version_passed_over_total", "counter",
           "Calls a version's share held that went to another version, for want of an address.");
  for (const auto& [svc, s] : v.services)
    for (const auto& [version, ver] : s.versions) {
      const Prometheus::Labels labels{{"service", svc}, {"version", version}};
      counters_samples(p, "svcctl_version", labels, ver.counters);
      p.sample("svcctl_version_passed_over_total", labels, ver.passed_over);
    }

  p.family("svcctl_retries_total", "counter", "Calls sent again to another address, per service.");
  p.family("svcctl_retries_denied_total", "counter", "Retries the retry budget refused, per service.");
  p.family("svcctl_panic_total", "counter", "Calls routed with ejections ignored (too few healthy addresses).");
  p.family("svcctl_dc_spilled_total", "counter",
           "Calls sent past the gateway's datacenter because it holds too few of the addresses.");
  for (const auto& [svc, s] : v.services) {
    const Prometheus::Labels labels{{"service", svc}};
    p.sample("svcctl_retries_total", labels, s.retries);
    p.sample("svcctl_retries_denied_total", labels, s.retries_denied);
    p.sample("svcctl_panic_total", labels, s.panic);
    p.sample("svcctl_dc_spilled_total", labels, s.dc_spilled);
  }

  p.family("svcctl_key_requests_total", "counter", "Calls per service and caller key.");
  p.family("svcctl_key_rate_limited_total", "counter", "Calls refused for their key's rate, per service and key.");
  p.family("svcctl_shadow_rejections_total", "counter",
           "Calls an ACL in shadow mode would have refused, per service and code.");
  for (const auto& [svc, s] : v.services) {
    for (const auto& [key, k] : s.keys) {
      const Prometheus::Labels labels{{"service", svc}, {"key", key}};
      p.sample("svcctl_key_requests_total", labels, k.counters.requests);
      p.sample("svcctl_key_rate_limited_total", labels, k.counters.errors[index(Err::RateLimited)]);
    }
    for (std::size_t i = 0; i < k_err_count; ++i)
      if (s.shadow[i])
        p.sample("svcctl_shadow_rejections_total", {{"service", svc}, {"code", info(static_cast<Err>(i)).code}},
                 s.shadow[i]);
  }

  p.family("svcctl_unrouted_errors_total", "counter", "Requests refused before a service was known.");
  for (std::size_t i = 0; i < k_err_count; ++i)
    if (v.unrouted.errors[i])
      p.sample("svcctl_unrouted_errors_total", {{"code", info(static_cast<Err>(i)).code}}, v.unrouted.errors[i]);
}

std::string to_prometheus(const StatsView& v) {
  Prometheus p;
  to_prometheus(p, v);
  return p.text();
}

}  // namespace svcctl::gateway
