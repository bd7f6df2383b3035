#include <svcctl/control/route_builder.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace svcctl::control {

using gateway::AddrRoute;
using gateway::build_service;

void RouteBuilder::take_in(const registry::Change& c, Touched& touched) {
  auto leaf = registry::paths::parse_leaf(c.path);
  if (!leaf) return;  // containers
  auto report = [&](const std::vector<std::string>& problems) {
    if (on_problem)
      for (const auto& p : problems) on_problem(c.path, p);
  };
  const bool gone = c.kind == registry::Change::Kind::Deleted || !c.after;
  const std::string_view data = c.after ? std::string_view(c.after->data) : std::string_view();
  if (leaf->kind == "key") {
    touched.keys = true;
    if (gone) {
      m_keys.erase(leaf->name);
    } else {
      auto d = model::decode_key(leaf->name, data);
      report(d.problems);
      m_keys[leaf->name] = d.value.status == model::Status::Up;
    }
    return;
  }
  if (leaf->kind == "gateway") {
    touched.gateways |= gone ? m_gateways.erase(leaf->name) > 0 : m_gateways.insert(leaf->name).second;
    return;
  }
  if (leaf->kind != "service" && leaf->kind != "address" && leaf->kind != "api" && leaf->kind != "acl") return;
  auto& n = m_nodes[leaf->service];
  touched.services.insert(leaf->service);
  // A node of the service: removed, or decoded (problems reported) and kept.
  auto put = [&](auto& nodes, auto decode) {
    if (gone) {
      nodes.erase(leaf->name);
      return;
    }
    auto d = decode();
    report(d.problems);
    nodes[leaf->name] = std::move(d.value);
  };
  if (leaf->kind == "service") {
    if (gone) {
      n.service.reset();
    } else {
      auto d = model::decode_service(leaf->name, data);
      report(d.problems);
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

bool RouteBuilder::reroute(const std::string& svc, RouteTable& next, Clock::time_point now) {
  auto route = build(svc);
  auto it = m_table->services.find(svc);
  const ServiceRoute* prev = it == m_table->services.end() ? nullptr : it->second.get();
  const Verdict v = judge(svc, prev, route.get(), now);
  if (v.hold) {  // routed as it was
    if (m_holds.count(svc)) return false;
    m_holds[svc] = Hold{now + guard_delay, v.before};
    ++m_hold_count;
    if (on_event)
      on_event(fmt::format("mass-change guard: holding service {}: a change would {}; checking again in {} ms", svc,
                           v.why, guard_delay.count()));
    return true;
  }
  const bool released = m_holds.erase(svc) > 0;
  if (released && on_event)
    on_event(fmt::format("mass-change guard: service {} is back under the limit, released", svc));
  routed(svc, prev, now);
  if (route) next.services[svc] = std::move(route);
  else next.services.erase(svc);  // addresses or interfaces without a service: not routable
  return released;
}

void RouteBuilder::apply(const std::vector<registry::Change>& changes, Clock::time_point now) {
  std::lock_guard lock(m_mu);
  Touched touched;
  for (const auto& c : changes) take_in(c, touched);
  if (touched.services.empty() && !touched.keys && !touched.gateways) return;
  auto next = std::make_shared<RouteTable>(*m_table);
  next->generation = m_table->generation + 1;
  if (touched.keys) next->keys = std::make_shared<const KeyTable>(m_keys);
  next->gateways = std::max<std::int64_t>(1, static_cast<std::int64_t>(m_gateways.size()));
  bool guard_changed = false;
  for (const auto& svc : touched.services) guard_changed |= reroute(svc, *next, now);
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

}  // namespace svcctl::control
