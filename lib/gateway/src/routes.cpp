#include <svcctl/gateway/routes.hpp>
#include <svcctl/registry/paths.hpp>

#include <algorithm>
#include <set>

namespace svcctl::gateway {

const ApiRoute* ServiceRoute::find_api(std::string_view api) const {
  auto it = std::lower_bound(apis.begin(), apis.end(), api,
                             [](const ApiRoute& a, std::string_view n) { return a.name < n; });
  return it != apis.end() && it->name == api ? &*it : nullptr;
}

std::shared_ptr<const ServiceRoute> build_service(const model::Service& service,
                                                  const std::vector<model::Address>& addresses,
                                                  const std::vector<model::Api>& apis,
                                                  const std::string& dc) {
  auto r = std::make_shared<ServiceRoute>();
  r->name = service.name;
  r->up = service.status == model::Status::Up;
  for (const auto& a : addresses) {
    if (a.status != model::Status::Up || a.weight <= 0) continue;
    auto hp = model::parse_host_port(a.address);
    if (!hp) continue;  // not a host:port node name: nothing to connect to
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
  return r;
}

void RouteBuilder::apply(const std::vector<registry::Change>& changes) {
  std::lock_guard lock(m_mu);
  std::set<std::string, std::less<>> touched;
  auto report = [&](const std::string& path, const std::vector<std::string>& problems) {
    if (on_problem)
      for (const auto& p : problems) on_problem(path, p);
  };
  for (const auto& c : changes) {
    auto leaf = registry::paths::parse_leaf(c.path);
    if (!leaf || leaf->service.empty()) continue;  // keys, acls' parents, gateways: not routing
    const bool gone = c.kind == registry::Change::Kind::Deleted || !c.after;
    const std::string_view data = c.after ? std::string_view(c.after->data) : std::string_view();
    if (leaf->kind != "service" && leaf->kind != "address" && leaf->kind != "api") continue;
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
    } else {
      put(n.apis, [&] { return model::decode_api(leaf->service, leaf->name, data); });
    }
  }
  if (touched.empty()) return;
  auto next = std::make_shared<RouteTable>(*m_table);
  next->generation = m_table->generation + 1;
  for (const auto& svc : touched) {
    auto it = m_nodes.find(svc);
    const Nodes& n = it->second;
    if (!n.service) {
      next->services.erase(svc);  // addresses or interfaces without a service: not routable
      if (n.addresses.empty() && n.apis.empty()) m_nodes.erase(it);
      continue;
    }
    std::vector<model::Address> addrs;
    for (const auto& [_, a] : n.addresses) addrs.push_back(a);
    std::vector<model::Api> apis;
    for (const auto& [_, a] : n.apis) apis.push_back(a);
    next->services[svc] = build_service(*n.service, addrs, apis, m_dc);
  }
  m_table = next;
  m_routes.publish(std::move(next));
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
