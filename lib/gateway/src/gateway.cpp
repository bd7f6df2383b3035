// Starting and stopping the workers and the admin listener; gathering their counters.
#include "admin.hpp"
#include "internal.hpp"

#include <fmt/format.h>

#include <boost/asio/post.hpp>

#include <future>

namespace svcctl::gateway {

namespace {

// host:port with port 0..65535 ([v6]:port for IPv6).
Expected<tcp::endpoint> parse_endpoint(std::string_view what, std::string_view text) {
  auto bad = [&] {
    return fail(ErrorKind::Usage, fmt::format("{} \"{}\" is not HOST:PORT (an IP address and a port)", what, text));
  };
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned p = 0;
  if (port.empty() || port.size() > 5) return bad();
  for (char ch : port) {
    if (ch < '0' || ch > '9') return bad();
    p = p * 10 + static_cast<unsigned>(ch - '0');
  }
  if (p > 65535) return bad();
  boost::system::error_code ec;
  std::string h(host);
  if (h == "localhost") h = "127.0.0.1";
  auto ip = asio::ip::make_address(h, ec);
  if (ec) return bad();
  return tcp::endpoint(ip, static_cast<std::uint16_t>(p));
}

std::string endpoint_text(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

Expected<void> open_acceptor(tcp::acceptor& a, const tcp::endpoint& ep, bool share, std::string_view what) {
  boost::system::error_code ec;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && share) a.set_option(reuse_port(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(4096, ec);
  if (ec)
    return fail(ErrorKind::Unavailable, fmt::format("cannot listen on {} ({}): {}", endpoint_text(ep), what, ec.message()));
  return {};
}

}  // namespace

Gateway::Impl::Impl(Options o, const RegistrySource& source, const Routes& r)
    : options(std::move(o)), registry(source), routes(r) {}
Gateway::Impl::~Impl() = default;

Gateway::Gateway(Options options, const RegistrySource& registry, const Routes& routes)
    : m_impl(std::make_unique<Impl>(std::move(options), registry, routes)) {}

Gateway::~Gateway() { stop(); }

Expected<void> Gateway::start() {
  Impl& g = *m_impl;
  SVCCTL_TRY(auto listen_ep, parse_endpoint("--listen", g.options.listen));
  std::optional<tcp::endpoint> admin_ep;
  if (!g.options.admin.empty()) {
    SVCCTL_TRY(auto ep, parse_endpoint("--admin", g.options.admin));
    admin_ep = ep;
  }
  unsigned n = g.options.workers ? g.options.workers : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>(g, i);
    w->pending_limit = std::max<std::size_t>(1, (g.options.max_pending_per_address + n - 1) / n);
    // Every worker listens on the same port; the kernel spreads connections over them.
    SVCCTL_CHECK(open_acceptor(w->acceptor, listen_ep, true, "--listen"));
    if (i == 0) listen_ep = w->acceptor.local_endpoint();  // the port chosen for 0
    g.workers.push_back(std::move(w));
  }
  g.listen_address = endpoint_text(listen_ep);
  if (admin_ep) {
    g.admin = std::make_unique<Impl::Admin>(g);
    SVCCTL_CHECK(open_acceptor(g.admin->acceptor, *admin_ep, false, "--admin"));
    g.admin_address = endpoint_text(g.admin->acceptor.local_endpoint());
  }
  for (auto& w : g.workers) w->thread = std::thread([w = w.get()] { w->run(); });
  if (g.admin) g.admin->start();
  g.running = true;
  return {};
}

void Gateway::stop() {
  Impl& g = *m_impl;
  if (!g.running) return;
  g.running = false;
  if (g.admin) g.admin->stop();
  for (auto& w : g.workers) asio::post(w->ioc, [w = w.get()] { w->shutdown(); });
  for (auto& w : g.workers)
    if (w->thread.joinable()) w->thread.join();
  g.workers.clear();
}

bool Gateway::drain(std::chrono::steady_clock::time_point deadline) {
  Impl& g = *m_impl;
  if (!g.running) return true;
  g.draining = true;
  for (auto& w : g.workers) asio::post(w->ioc, [w = w.get()] { w->drain(); });
  while (true) {
    std::int64_t open = 0;
    for (auto& w : g.workers) open += w->live.load(std::memory_order_relaxed);
    if (open == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Gateway::set_id(std::string id) {
  std::lock_guard lock(m_impl->id_mu);
  m_impl->id = std::move(id);
}

std::string Gateway::listen_address() const { return m_impl->listen_address; }
std::string Gateway::admin_address() const { return m_impl->admin_address; }
StatsView Gateway::stats() const { return m_impl->gather(); }

StatsView Gateway::Impl::gather() const {
  StatsView all;
  for (const auto& w : workers) {
    auto copy = std::make_shared<std::promise<StatsView>>();
    auto f = copy->get_future();
    asio::post(w->ioc, [copy, w = w.get()] { copy->set_value(w->stats); });
    // A stopped worker runs nothing more: its counters are gone with it.
    if (f.wait_for(std::chrono::seconds(2)) != std::future_status::ready) continue;
    all.merge(f.get());
  }
  // Ejections are shared by the workers: read once.
  const std::int64_t now = Clock::now().time_since_epoch().count();
  std::lock_guard lock(health_mu);
  for (auto& [_, s] : all.services)
    for (auto& [name, a] : s.addresses) {
      auto it = health.find(name);
      if (it == health.end()) continue;
      auto until = it->second->ejected_until.load(std::memory_order_relaxed);
      a.ejected_ms = until > now ? std::max<std::int64_t>(1, (until - now) / 1'000'000) : 0;
    }
  return all;
}

}  // namespace svcctl::gateway
