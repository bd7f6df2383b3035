#include <svcctl/gateway/routes.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace svcctl::gateway {

const ApiRoute* ServiceRoute::find_api(std::string_view api) const {
  auto it = std::lower_bound(apis.begin(), apis.end(), api,
                             [](const ApiRoute& a, std::string_view n) { return a.name < n; });
  return it != apis.end() && it->name == api ? &*it : nullptr;
}

std::size_t ServiceRoute::find_version(std::string_view version) const {
  auto it = std::lower_bound(versions.begin(), versions.end(), version,
                             [](const VersionRoute& v, std::string_view n) { return v.version < n; });
  return it != versions.end() && it->version == version ? static_cast<std::size_t>(it - versions.begin())
                                                        : versions.size();
}

namespace {
// The candidates of a set whose addresses are in order, local first.
void choose_candidates(AddrSet& s) {
  auto local = static_cast<std::size_t>(
      std::count_if(s.addrs.begin(), s.addrs.end(), [](const AddrRoute& a) { return a.local; }));
  s.candidates = local > 0 ? local : s.addrs.size();
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < s.candidates; ++i) {
    s.cumulative.push_back(sum += s.addrs[i].weight);
    if (s.addrs[i].weight != s.addrs[0].weight) s.equal_weights = false;
  }
}

// Each version of the addresses, and each one the split names, with its share; none when
// no address has a version and there is no split (nothing to tell apart, nothing to count).
void build_versions(ServiceRoute& r, const model::Service& service) {
  std::set<std::string> names;
  for (const auto& a : r.addrs) names.insert(a.version);
  for (const auto& s : service.split) names.insert(s.version);
  r.split = !service.split.empty();
  r.sticky = service.sticky;
  if (!r.split && names.size() <= 1 && (names.empty() || names.begin()->empty())) return;  // no versions
  for (const auto& name : names) {
    VersionRoute v;
    v.version = name;
    for (const auto& s : service.split)
      if (s.version == name) v.share = s.share;
    for (std::size_t i = 0; i < r.addrs.size(); ++i) {
      if (r.addrs[i].version != name) continue;
      v.addrs.push_back(r.addrs[i]);
      v.indexes.push_back(i);
    }
    choose_candidates(v);
    r.versions.push_back(std::move(v));
  }
}
}  // namespace

std::shared_ptr<const ServiceRoute> build_service(
    const model::Service& service, const std::vector<model::Address>& addresses,
    const std::vector<model::Api>& apis, const std::string& dc, const std::vector<model::Acl>& acls,
    const std::map<std::string, std::shared_ptr<RateBucket>, std::less<>>& buckets) {
  auto r = std::make_shared<ServiceRoute>();
  r->name = service.name;
  r->up = service.status == model::Status::Up;
  for (const auto& a : addresses) {
    if (!model::routable(a)) continue;
    auto hp = model::parse_host_port(a.address);
    AddrRoute ar;
    ar.name = a.address;
    ar.host = hp->host;
    ar.port = hp->port;
    ar.dc = a.dc;
    ar.weight = a.weight;
    ar.local = !dc.empty() && a.dc == dc;
    ar.version = a.version;
    r->addrs.push_back(std::move(ar));
  }
  // Local first; otherwise the node order (by name), so every worker sees the same order.
  std::stable_partition(r->addrs.begin(), r->addrs.end(), [](const AddrRoute& a) { return a.local; });
  choose_candidates(*r);
  build_versions(*r, service);
  for (const auto& a : apis) {
    ApiRoute ar;
    ar.name = a.name;
    ar.path = a.path;
    ar.encoding = a.encoding;
    ar.up = a.status == model::Status::Up && !a.path.empty();
    if (a.timeout_ms && *a.timeout_ms > 0) ar.timeout = std::chrono::milliseconds(*a.timeout_ms);
    ar.method = a.method.empty() ? a.name : a.method;
    ar.idempotent = a.idempotent;
    r->apis.push_back(std::move(ar));
  }
  std::sort(r->apis.begin(), r->apis.end(), [](const ApiRoute& x, const ApiRoute& y) { return x.name < y.name; });
  for (const auto& a : acls) {
    AclRoute ar;
    ar.rate = a.rate;
    ar.burst = a.effective_burst();
    ar.all_apis = std::find(a.apis.begin(), a.apis.end(), "*") != a.apis.end();
    if (!ar.all_apis) {
      ar.apis = a.apis;
      std::sort(ar.apis.begin(), ar.apis.end());
    }
    ar.shadow = a.shadow;
    ar.version = a.version;
    auto b = buckets.find(a.key);
    ar.bucket = b != buckets.end() ? b->second : std::make_shared<RateBucket>();
    r->enforcing |= !a.shadow;
    r->acls.emplace(a.key, std::move(ar));
  }
  return r;
}

RateDecision take_token(RateBucket& bucket, double rate, std::int64_t burst, std::int64_t gateways,
                        std::int64_t now_ns) {
  RateDecision d;
  if (gateways < 1) gateways = 1;
  d.limit = std::max<std::int64_t>(1, burst / gateways);
  // Nanoseconds per call at this gateway's share of the rate, and how far ahead of now the
  // next call's time may run (the bucket's depth), both kept within int64.
  const double t = std::min(1e15, 1e9 * static_cast<double>(gateways) / std::max(rate, 1e-6));
  const auto interval = std::max<std::int64_t>(1, static_cast<std::int64_t>(t));
  const auto depth = static_cast<std::int64_t>(std::min(4e18, t * static_cast<double>(d.limit)));
  std::int64_t tat = bucket.tat.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t next = std::max(tat, now_ns) + interval;
    if (next - now_ns > depth) {
      d.allowed = false;
      d.retry_after_ns = next - now_ns - depth;
      d.reset_ns = std::max<std::int64_t>(0, tat - now_ns);
      return d;
    }
    if (bucket.tat.compare_exchange_weak(tat, next, std::memory_order_relaxed)) {
      d.remaining = (depth - (next - now_ns)) / interval;
      d.reset_ns = next - now_ns;
      return d;
    }
  }
}

}  // namespace svcctl::gateway
