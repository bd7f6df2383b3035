#include <svcctl/control/cache_source.hpp>
#include <svcctl/control/route_builder.hpp>
#include <svcctl/control/run.hpp>
#include <svcctl/registry/holder.hpp>
#include <svcctl/registry/live.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <thread>

namespace svcctl::control {

namespace {

using Say = std::function<void(std::string_view)>;

// The guard's second read: the service's routable addresses, straight from ZooKeeper,
// through a session live at the time (the guard may be needed right after ZooKeeper was
// away longer than a session lasts).
auto confirming_read(registry::LiveRegistry& live) {
  return [&live](const std::string& svc) -> std::optional<std::vector<std::string>> {
    auto d = live.read([&svc](registry::Registry& reg) { return reg.describe_service(svc); });
    if (!d) {
      if (d.error().kind == ErrorKind::NotFound) return std::vector<std::string>{};
      return std::nullopt;
    }
    std::vector<std::string> names;
    for (const auto& addr : d->addresses)
      if (model::routable(addr)) names.push_back(addr.address);
    return names;
  };
}

// /gateway/{id}: where this gateway and its admin listener are.
registry::Holder::Options registration(const GatewayRun& run, const gateway::Gateway& gw, const std::string& id,
                                       const Say& say) {
  registry::Holder::Options ho;
  ho.zk = run.cache.zk;
  ho.path = registry::paths::under(registry::paths::k_gateways, id);
  ho.parent = std::string(registry::paths::k_gateways);
  const auto started = std::chrono::system_clock::now();
  nlohmann::json node = {{"listen", gw.listen_address()},
                         {"admin", gw.admin_address()},
                         {"dc", run.dc},
                         {"started", fmt::format("{:%FT%TZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(started)))},
                         {"version", run.version},
                         {"pid", ::getpid()}};
  ho.data = [text = node.dump()](bool) { return text; };
  ho.log = run.debug;
  ho.on_session = [say, path = ho.path](std::string_view m) { say(fmt::format("{}: {}", path, m)); };
  return ho;
}

// The session transitions, in the event log: text, or JSON with their fields.
std::function<void(const registry::SessionEvent&)> log_sessions(gateway::Log* events) {
  return [events](const registry::SessionEvent& e) {
    using K = registry::SessionEvent::Kind;
    const bool trouble = e.kind == K::Disconnected || e.kind == K::Expired;
    if (events) events->event(trouble ? "warn" : "info", registry::describe(e), registry::to_json(e));
  };
}

// Stop accepting, leave /gateway, let the calls under way finish, then close what is left.
void drain(gateway::Gateway& gw, std::chrono::milliseconds timeout, std::atomic<bool>& stop_holding,
           std::thread& holder, const Say& say) {
  say(fmt::format("draining: not accepting, calls under way have {} ms", timeout.count()));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  stop_holding = true;  // the holder leaves /gateway/{id} while the calls finish
  const bool drained = gw.drain(deadline);
  holder.join();
  gw.stop();
  say(drained ? "drained, stopped" : "drain deadline passed: closed the connections left, stopped");
}

}  // namespace

std::string default_gateway_id(std::string_view host_name, std::string_view listen) {
  std::string id = host_name.empty() ? "gateway" : "";
  for (char c : host_name) {
    if (c == '.') break;  // the short host name
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    id += ok ? c : '-';
  }
  if (!id.empty() && id.back() == '-') id.pop_back();  // one, as "web-" and "web+" give "web"
  auto colon = listen.rfind(':');
  return fmt::format("{}-{}", id, colon == std::string_view::npos ? listen : listen.substr(colon + 1));
}

Expected<void> run_gateway(GatewayRun run, const std::atomic<bool>& stop) {
  const Say say = [events = run.events](std::string_view m) {
    if (events) events->event("info", m);
  };
  const Say warn = [&run](std::string_view m) {
    if (run.warn) run.warn(m);
  };
  gateway::Routes routes;
  RouteBuilder builder(routes, run.dc);
  builder.on_problem = [&warn](std::string_view path, std::string_view problem) {
    warn(fmt::format("{}: {}", path, problem));
  };
  builder.on_event = say;
  builder.guard_delay = run.guard_delay;
  builder.guard_window = run.guard_window;
  registry::LiveRegistry confirming(run.cache.zk,
                                    [&say](std::string_view m) { say(fmt::format("mass-change guard: {}", m)); });
  builder.confirm = confirming_read(confirming);

  registry::Cache::Options co = run.cache;
  co.on_change = [&builder](const std::vector<registry::Change>& changes, const registry::Snapshot&) {
    builder.apply(changes);
  };
  co.on_session = log_sessions(run.events);
  registry::Cache cache(std::move(co));
  SVCCTL_CHECK(cache.start(run.start_timeout));
  if (cache.serving_lkg())
    warn(fmt::format("ZooKeeper at {} is unreachable: serving the last-known-good registry from {} until it is back",
                     run.cache.zk.connect, run.cache.lkg_file));

  CacheSource source(cache);
  gateway::Gateway gw(run.gateway, source, routes);
  SVCCTL_CHECK(gw.start());
  std::string id = run.id;
  if (id.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    id = default_gateway_id(host, gw.listen_address());
  }
  gw.set_id(id);

  const auto ho = registration(run, gw, id, say);
  std::atomic<bool> stop_holding{false};
  std::thread holder([&] {
    // Only what waiting cannot fix ends it (a persistent node at the path, permissions):
    // the gateway keeps serving, unregistered, and says so now.
    auto r = registry::Holder(ho).run(stop_holding);
    if (!r) warn(fmt::format("cannot register {}: {}", ho.path, r.error().message));
  });

  say(fmt::format("listening on {}{}, gateway id {}, {} services", gw.listen_address(),
                  gw.admin_address().empty() ? std::string() : fmt::format(" (admin {})", gw.admin_address()), id,
                  routes.current()->services.size()));
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (run.on_tick) run.on_tick();
    builder.tick();
  }
  drain(gw, run.drain_timeout, stop_holding, holder, say);
  return {};
}

}  // namespace svcctl::control
