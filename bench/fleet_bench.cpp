// Benchmark (not a test): many registry caches in one process, as a fleet of gateways
// would hold them, for bench/fleet_bench.py. Loads them all, prints one line
// ("loaded <caches> <nodes each> <seconds>"), then prints a line a second until standard
// input closes: "t <seconds since loaded> <caches whose view is whole> <caches connected>".
// Usage: fleet_bench --zk HOST:PORT[,...] [--caches N] [--sessions N] [--session-timeout MS]
#include <svcctl/registry/cache.hpp>

#include <fmt/format.h>

#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace svcctl;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::string connect = "127.0.0.1:2181";
  int caches = 50;
  std::size_t sessions = registry::Cache::Options{}.sessions;
  int session_timeout_ms = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--zk")) connect = argv[i + 1];
    else if (!std::strcmp(argv[i], "--caches")) caches = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--sessions")) sessions = static_cast<std::size_t>(std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--session-timeout")) session_timeout_ms = std::atoi(argv[i + 1]);
  }
  std::vector<std::unique_ptr<registry::Cache>> fleet;
  auto t0 = Clock::now();
  std::vector<std::thread> starters;
  fleet.resize(static_cast<std::size_t>(caches));
  std::atomic<int> failed{0};
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    registry::Cache::Options o;
    o.zk.connect = connect;
    o.zk.timeout = std::chrono::milliseconds(10000);
    o.zk.session_timeout = std::chrono::milliseconds(session_timeout_ms);
    o.sessions = sessions;
    fleet[i] = std::make_unique<registry::Cache>(std::move(o));
    starters.emplace_back([&, i] {
      if (auto r = fleet[i]->start(std::chrono::seconds(600)); !r) {
        fmt::print(stderr, "fleet_bench: {}\n", r.error().message);
        ++failed;
      }
    });
  }
  for (auto& t : starters) t.join();
  if (failed) return 1;
  auto loaded = Clock::now();
  fmt::print("loaded {} {} {:.2f}\n", caches, fleet[0]->snapshot()->size(),
             std::chrono::duration<double>(loaded - t0).count());
  std::fflush(stdout);
  for (;;) {
    pollfd in{STDIN_FILENO, POLLIN, 0};
    if (::poll(&in, 1, 1000) > 0) {
      char b[64];
      if (::read(STDIN_FILENO, b, sizeof b) <= 0) break;
    }
    int whole = 0, connected = 0;
    for (const auto& c : fleet) {
      auto s = c->snapshot();
      connected += s->session == zk::SessionState::Connected;
      whole += s->session == zk::SessionState::Connected && !s->stale_since;
    }
    fmt::print("t {:.1f} {} {}\n", std::chrono::duration<double>(Clock::now() - loaded).count(), whole, connected);
    std::fflush(stdout);
  }
  return 0;
}
