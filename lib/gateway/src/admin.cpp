#include "admin.hpp"

#include <svcctl/model/model.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <fmt/format.h>

namespace svcctl::gateway {

namespace {

namespace bhttp = beast::http;

double seconds_since(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::system_clock::now() - t).count();
}

std::int64_t epoch_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Each session's id and state, and the transitions the sessions have been through.
void add_sessions(nlohmann::json& j, const RegistryStatus& st) {
  nlohmann::json each = nlohmann::json::array();
  for (std::size_t i = 0; i < st.sessions.size(); ++i)
    each.push_back({{"session", i}, {"id", fmt::format("0x{:x}", st.sessions[i].id)}, {"state", st.sessions[i].state}});
  j["sessions"] = std::move(each);
  nlohmann::json events = nlohmann::json::object();
  for (const auto& [kind, n] : st.session_events) events[kind] = n;
  j["session_events"] = std::move(events);
  j["sessions_replaced"] = st.sessions_replaced;
  if (st.last_replaced) {
    j["last_replaced_ms"] = epoch_ms(*st.last_replaced);
    j["last_replaced_reason"] = st.last_replaced_reason;
  }
}

// The session transitions as a Prometheus counter, by kind.
void session_metrics(Prometheus& p, const RegistryStatus& st) {
  p.family("svcctl_zk_session_events_total", "counter", "ZooKeeper session transitions of the registry view, by kind.");
  for (const auto& [kind, n] : st.session_events) p.sample("svcctl_zk_session_events_total", {{"event", kind}}, n);
}

// What every admin answer says of the registry view.
nlohmann::json registry_state(const RegistryStatus& st) {
  nlohmann::json j = {{"loaded", st.loaded}};
  if (!st.started) return j;
  j["session"] = st.session;
  j["session_id"] = fmt::format("0x{:x}", st.session_ids.empty() ? 0 : st.session_ids.front());
  nlohmann::json ids = nlohmann::json::array();
  for (auto id : st.session_ids) ids.push_back(fmt::format("0x{:x}", id));
  j["session_ids"] = std::move(ids);
  j["zxid"] = fmt::format("0x{:x}", st.zxid);
  j["generation"] = st.generation;
  j["nodes"] = st.nodes;
  j["serving_last_known_good"] = st.serving_last_known_good;
  if (st.last_change) j["last_change_ms"] = epoch_ms(*st.last_change);
  if (st.stale_since) {
    j["stale_since_ms"] = epoch_ms(*st.stale_since);
    j["stale_seconds"] = seconds_since(*st.stale_since);
  } else {
    j["stale_seconds"] = 0.0;
  }
  add_sessions(j, st);
  return j;
}

nlohmann::json route_json(const ServiceRoute& r) {
  nlohmann::json addrs = nlohmann::json::array();
  for (std::size_t i = 0; i < r.addrs.size(); ++i) {
    const auto& a = r.addrs[i];
    addrs.push_back({{"address", a.name}, {"dc", a.dc}, {"weight", a.weight}, {"local", a.local},
                     {"candidate", i < r.candidates}});
  }
  nlohmann::json apis = nlohmann::json::object();
  for (const auto& a : r.apis)
    apis[a.name] = {{"path", a.path}, {"encoding", model::to_string(a.encoding)}, {"up", a.up},
                    {"timeout_ms", a.timeout.count()}, {"method", a.method}, {"idempotent", a.idempotent}};
  nlohmann::json acls = nlohmann::json::object();
  for (const auto& [key, a] : r.acls)
    acls[key] = {{"rate", a.rate ? nlohmann::json(*a.rate) : nlohmann::json(nullptr)},
                 {"burst", a.burst},
                 {"apis", a.all_apis ? nlohmann::json::array({"*"}) : nlohmann::json(a.apis)},
                 {"shadow", a.shadow}};
  return {{"up", r.up}, {"addresses", std::move(addrs)}, {"interfaces", std::move(apis)},
          {"acls", std::move(acls)}, {"enforcing", r.enforcing}};
}

}  // namespace

Gateway::Impl::Admin::Reply Gateway::Impl::Admin::handle(std::string_view target) const {
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  Reply r;
  if (path == "/-/healthz") {
    // Healthy while the registry view is loaded and fresh enough: a gateway cut off from
    // ZooKeeper keeps routing from its snapshot, and says how stale it is.
    const RegistryStatus st = gw.registry.status();
    const double stale = st.stale_since ? seconds_since(*st.stale_since) : 0.0;
    const double max_stale = std::chrono::duration<double>(gw.options.max_stale).count();
    std::string_view status = "ok";
    if (!st.loaded) status = "unavailable";
    else if (gw.draining) status = "draining";
    else if (stale > max_stale) status = "stale";
    nlohmann::json j = {{"status", status},
                        {"id", gw.get_id()},
                        {"uptime_seconds", seconds_since(gw.started)},
                        {"max_stale_seconds", max_stale},
                        {"registry", registry_state(st)}};
    r.status = status == "ok" ? 200 : 503;
    r.body = j.dump();
    return r;
  }
  if (path == "/-/stats") {
    // ?histograms=1: each latency's buckets too, for `svcctl stats` to merge gateways exactly.
    const bool histograms = q != std::string_view::npos && target.substr(q + 1).find("histograms=1") != std::string_view::npos;
    nlohmann::json j = to_json(gw.gather(), histograms);
    j["id"] = gw.get_id();
    j["listen"] = gw.listen_address;
    j["uptime_seconds"] = seconds_since(gw.started);
    j["registry"] = registry_state(gw.registry.status());
    auto guard = gw.routes.guard();
    j["guard"] = {{"holds", guard.holds}, {"held", guard.held}};
    r.body = j.dump();
    return r;
  }
  if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    Prometheus p;
    to_prometheus(p, gw.gather());
    const RegistryStatus st = gw.registry.status();
    const double stale = st.stale_since ? seconds_since(*st.stale_since) : 0.0;
    p.family("svcctl_registry_connected", "gauge", "Whether the ZooKeeper session is connected.");
    p.sample("svcctl_registry_connected", {}, st.connected ? 1 : 0);
    p.family("svcctl_registry_stale_seconds", "gauge", "How long the registry view has not been followed.");
    p.sample("svcctl_registry_stale_seconds", {}, stale);
    p.family("svcctl_registry_nodes", "gauge", "Nodes in the registry view.");
    p.sample("svcctl_registry_nodes", {}, st.nodes);
    session_metrics(p, st);
    r.body = p.text();
    return r;
  }
  if (path == "/-/registry") {
    nlohmann::json j = registry_state(gw.registry.status());
    nlohmann::json nodes = nlohmann::json::object();
    gw.registry.each_node([&nodes](const RegistryNode& n) {
      nlohmann::json data = nlohmann::json::parse(n.data, nullptr, false);
      if (data.is_discarded()) data = n.data;
      nodes[std::string(n.path)] = {{"data", std::move(data)}, {"version", n.version}, {"ephemeral", n.ephemeral}};
    });
    j["nodes"] = std::move(nodes);
    nlohmann::json by_service = nlohmann::json::object();
    auto table = gw.routes.current();
    for (const auto& [name, route] : table->services) by_service[name] = route_json(*route);
    j["routes"] = std::move(by_service);
    nlohmann::json keys = nlohmann::json::object();
    for (const auto& [k, up] : *table->keys) keys[k] = up ? "up" : "down";
    j["keys"] = std::move(keys);
    j["gateways"] = table->gateways;
    r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
  }
  r.status = 404;
  r.body = error_json(Err::NotFound, "admin paths: /-/healthz, /-/stats, /metrics, /-/registry", {}, {});
  return r;
}

namespace {

// One admin connection. Every read and write has 10 s (a client that stops sending is
// dropped), and a connection serves 100 requests at most.
struct Session : std::enable_shared_from_this<Session> {
  Session(tcp::socket s, const Gateway::Impl::Admin& a) : stream(std::move(s)), admin(a) {}
  beast::tcp_stream stream;
  int served = 0;
  const Gateway::Impl::Admin& admin;
  beast::flat_buffer buf;
  bhttp::request<bhttp::string_body> req;
  bhttp::response<bhttp::string_body> res;

  void read() {
    req = {};
    buf.max_size(64 * 1024);
    stream.expires_after(std::chrono::seconds(10));
    bhttp::async_read(stream, buf, req, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec) return;
      self->answer();
    });
  }
  void answer() {
    Gateway::Impl::Admin::Reply r;
    if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
      r.status = 405;
      r.body = error_json(Err::MethodNotAllowed, "the admin listener answers GET", {}, {});
    } else {
      std::string_view t(req.target().data(), req.target().size());
      r = admin.handle(t);
    }
    res = {};
    res.result(static_cast<unsigned>(r.status));
    res.version(req.version());
    res.set(bhttp::field::content_type, r.content_type);
    res.keep_alive(req.keep_alive() && ++served < 100);
    res.body() = std::move(r.body);
    res.prepare_payload();
    stream.expires_after(std::chrono::seconds(10));
    bhttp::async_write(stream, res, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec) return;
      if (!self->res.keep_alive()) {
        boost::system::error_code ignore;
        self->stream.socket().shutdown(tcp::socket::shutdown_send, ignore);
        return;
      }
      self->read();
    });
  }
};

}  // namespace

void Gateway::Impl::Admin::start() {
  accept();
  thread = std::thread([this] { ioc.run(); });
}

void Gateway::Impl::Admin::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      std::make_shared<Session>(std::move(sock), *this)->read();
      return accept();
    }
    // Out of descriptors or memory: try again shortly instead of spinning.
    auto t = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(100));
    t->async_wait([this, t](boost::system::error_code) { accept(); });
  });
}

void Gateway::Impl::Admin::stop() {
  ioc.stop();
  if (thread.joinable()) thread.join();
}

}  // namespace svcctl::gateway
