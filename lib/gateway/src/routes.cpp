#include <svcctl/gateway/routes.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace svcctl::gateway {

const ApiRoute* ServiceRoute::find_api(std::string_view api) const {
  auto it = std::lower_bound(apis.begin(), apis.end(), api,
                             [](const ApiRoute& a, std::string_view n) { return a.name < n; });
  return it != apis.end() && it->name == api ? &*it : nullptr;
}

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
    r->addrs.push_back(std::move(ar));
  }
  // Local first; otherwise the node order (by name), so every worker sees the same order.
  std::stable_partition(r->addrs.begin(), r->addrs.end(), [](const AddrRoute& a) { return a.local; });
  auto local = static_cast<std::size_t>(
      std::count_if(r->addrs.begin(), r->addrs.end(), [](const AddrRoute& a) { return a.local; }));
  r->candidates = local > 0 ? local : r->addrs.size();
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < r->candidates; ++i) {
    r->cumulative.push_back(sum += r->addrs[i].weight);
    if (r->addrs[i].weight != r->addrs[0].weight) r->equal_weights = false;
  }
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

void RouteBuilder::apply(const std::vector<registry::Change>& changes, Clock::time_point now) {
  std::lock_guard lock(m_mu);
  std::set<std::string, std::less<>> touched;
  auto report = [&](const std::string& path, const std::vector<std::string>& problems) {
    if (on_problem)
      for (const auto& p : problems) on_problem(path, p);
  };
  bool keys_changed = false;
  bool gateways_changed = false;
  for (const auto& c : changes) {
    auto leaf = registry::paths::parse_leaf(c.path);
    if (!leaf) continue;  // containers
    const bool gone = c.kind == registry::Change::Kind::Deleted || !c.after;
    const std::string_view data = c.after ? std::string_view(c.after->data) : std::string_view();
    if (leaf->kind == "key") {
      keys_changed = true;
      if (gone) {
        m_keys.erase(leaf->name);
      } else {
        auto d = model::decode_key(leaf->name, data);
        report(c.path, d.problems);
        m_keys[leaf->name] = d.value.status == model::Status::Up;
      }
      continue;
    }
    if (leaf->kind == "gateway") {
      gateways_changed |= gone ? m_gateways.erase(leaf->name) > 0 : m_gateways.insert(leaf->name).second;
      continue;
    }
    if (leaf->kind != "service" && leaf->kind != "address" && leaf->kind != "api" && leaf->kind != "acl") continue;
    auto& n = m_nodes[leaf->service];
    touched.insert(leaf->service);
    // An address or interface: removed, or decoded (problems reported) and kept.
    auto put = [&](auto& nodes, auto decode) {
      if (gone) {
        nodes.erase(leaf->name);
        return;
      }
      auto d = decode();
      report(c.path, d.problems);
      nodes[leaf->name] = std::move(d.value);
    };
    if (leaf->kind == "service") {
      if (gone) {
        n.service.reset();
      } else {
        auto d = model::decode_service(leaf->name, data);
        report(c.path, d.problems);
        n.service = std::move(d.value);
      }
    } else if (leaf->kind == "address") {
      put(n.addresses, [&] { return model::decode_address(leaf->service, leaf->name, data); });
    } else if (leaf->kind == "acl") {
      put(n.acls, [&] { return model::decode_acl(leaf->service, leaf->name, data); });
      if (gone) n.buckets.erase(leaf->name);
      else if (!n.buckets.count(leaf->name)) n.buckets.emplace(leaf->name, std::make_shared<RateBucket>());
    } else {
      put(n.apis, [&] { return model::decode_api(leaf->service, leaf->name, data); });
    }
  }
  if (touched.empty() && !keys_changed && !gateways_changed) return;
  auto next = std::make_shared<RouteTable>(*m_table);
  next->generation = m_table->generation + 1;
  if (keys_changed) {
    next->keys = std::make_shared<const KeyTable>(m_keys);
  }
  next->gateways = std::max<std::int64_t>(1, static_cast<std::int64_t>(m_gateways.size()));
  bool guard_changed = false;
  for (const auto& svc : touched) {
    auto route = build(svc);
    auto it = m_table->services.find(svc);
    const ServiceRoute* prev = it == m_table->services.end() ? nullptr : it->second.get();
    const Verdict v = judge(svc, prev, route.get(), now);
    if (v.hold) {  // routed as it was
      if (!m_holds.count(svc)) {
        m_holds[svc] = Hold{now + guard_delay, v.before};
        ++m_hold_count;
        guard_changed = true;
        if (on_event)
          on_event(fmt::format("mass-change guard: holding service {}: a change would {}; checking again in {} ms",
                               svc, v.why, guard_delay.count()));
      }
      continue;
    }
    if (m_holds.erase(svc)) {
      guard_changed = true;
      if (on_event) on_event(fmt::format("mass-change guard: service {} is back under the limit, released", svc));
    }
    routed(svc, prev, now);
    if (route) next->services[svc] = std::move(route);
    else next->services.erase(svc);  // addresses or interfaces without a service: not routable
  }
  m_table = next;
  m_routes.publish(std::move(next));
  if (guard_changed) publish_guard();
}

std::shared_ptr<const ServiceRoute> RouteBuilder::build(const std::string& svc) {
  auto it = m_nodes.find(svc);
  if (it == m_nodes.end()) return nullptr;
  const Nodes& n = it->second;
  if (!n.service) {
    if (n.empty()) m_nodes.erase(it);
    return nullptr;
  }
  std::vector<model::Address> addrs;
  for (const auto& [_, a] : n.addresses) addrs.push_back(a);
  std::vector<model::Api> apis;
  for (const auto& [_, a] : n.apis) apis.push_back(a);
  std::vector<model::Acl> acls;
  for (const auto& [_, a] : n.acls) acls.push_back(a);
  return build_service(*n.service, addrs, apis, m_dc, acls, n.buckets);
}

namespace {
bool routes_to(const ServiceRoute* r, std::string_view addr) {
  return r && std::any_of(r->addrs.begin(), r->addrs.end(), [&](const AddrRoute& a) { return a.name == addr; });
}
}  // namespace

RouteBuilder::Verdict RouteBuilder::judge(const std::string& svc, const ServiceRoute* prev,
                                          const ServiceRoute* next, Clock::time_point now) {
  Verdict v;
  if (guard_delay.count() <= 0 || !prev || prev->addrs.empty()) return v;
  const std::size_t had = prev->addrs.size();
  const std::size_t after = next ? next->addrs.size() : 0;
  std::size_t removed = 0;  // of those it is routed to now
  for (const auto& a : prev->addrs) removed += !routes_to(next, a.name);
  // The most it was routed to within the window.
  std::size_t peak = had;
  if (auto p = m_peaks.find(svc); p != m_peaks.end())
    for (const auto& [when, count] : p->second)
      if (when + window() > now) peak = std::max(peak, count);
  v.before = peak;
  if (!next) {
    v.hold = true;
    v.why = fmt::format("remove the service node of a service routed to {} addresses", had);
  } else if (after == 0) {
    v.hold = true;
    v.why = fmt::format("take its last routable address away ({} of {} away)", removed, had);
  } else if (had >= 2 && removed * 2 > had) {
    v.hold = true;
    v.before = had;
    v.why = fmt::format("take {} of its {} addresses away", removed, had);
  } else if (peak >= 2 && after * 2 < peak) {
    v.hold = true;
    v.why = fmt::format("leave {} of the {} addresses it was routed to within {} ms", after, peak, window().count());
  }
  return v;
}

void RouteBuilder::routed(const std::string& svc, const ServiceRoute* prev, Clock::time_point now) {
  auto& peaks = m_peaks[svc];
  std::erase_if(peaks, [&](const auto& p) { return p.first + window() <= now; });
  if (prev) peaks.emplace_back(now, prev->addrs.size());
  if (peaks.empty()) m_peaks.erase(svc);
}

void RouteBuilder::publish_guard() {
  Routes::Guard g;
  g.holds = m_hold_count;
  for (const auto& [svc, _] : m_holds) g.held.push_back(svc);
  m_routes.set_guard(std::move(g));
}

void RouteBuilder::tick(Clock::time_point now) {
  std::vector<std::string> due;
  {
    std::lock_guard lock(m_mu);
    for (const auto& [svc, h] : m_holds)
      if (h.due <= now) due.push_back(svc);
    // Forget routes older than the window (a removed service's too).
    for (auto it = m_peaks.begin(); it != m_peaks.end();) {
      std::erase_if(it->second, [&](const auto& p) { return p.first + window() <= now; });
      it = it->second.empty() ? m_peaks.erase(it) : std::next(it);
    }
  }
  for (const auto& svc : due) {
    // The second read, outside the lock: the cache's thread goes on meanwhile.
    std::optional<std::vector<std::string>> read;
    if (confirm) read = confirm(svc);
    std::lock_guard lock(m_mu);
    auto h = m_holds.find(svc);
    if (h == m_holds.end()) continue;  // released meanwhile
    auto route = build(svc);
    std::vector<std::string> cached;
    if (route)
      for (const auto& a : route->addrs) cached.push_back(a.name);
    std::sort(cached.begin(), cached.end());
    if (read) std::sort(read->begin(), read->end());
    if (confirm && (!read || *read != cached)) {
      h->second.due = now + guard_delay;
      if (on_event)
        on_event(fmt::format("mass-change guard: service {} still held: {}", svc,
                             read ? "ZooKeeper and the cache disagree; reading again" : "cannot read ZooKeeper"));
      continue;
    }
    auto next = std::make_shared<RouteTable>(*m_table);
    next->generation = m_table->generation + 1;
    if (route) next->services[svc] = std::move(route);
    else next->services.erase(svc);
    if (on_event)
      on_event(fmt::format("mass-change guard: service {} confirmed by a second read: {} of {} addresses left",
                           svc, cached.size(), h->second.before));
    m_holds.erase(h);
    m_peaks.erase(svc);  // the confirmed state is what later changes are judged against
    m_table = next;
    m_routes.publish(std::move(next));
    publish_guard();
  }
}

std::size_t pick_swrr(std::span<const AddrRoute> candidates, std::span<std::int64_t> current) {
  std::size_t best = 0;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    current[i] += candidates[i].weight;
    total += candidates[i].weight;
    if (current[i] > current[best]) best = i;
  }
  current[best] -= total;
  return best;
}

}  // namespace svcctl::gateway
