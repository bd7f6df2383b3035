// Benchmark (not a test) of the watch-driven cache on a populated registry:
//   full-load time, memory held, and the latency from a write by another client to the
//   change being visible in the published snapshot (median and p99).
// Usage: cache_bench --zk HOST:PORT[/chroot] [--changes N] [--window N] [--sessions N]
#include <svcctl/registry/cache.hpp>
#include <svcctl/zk/client.hpp>

#include <fmt/format.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

using namespace svcctl;
using Clock = std::chrono::steady_clock;

// Bytes the allocator has handed out and not had back, in every arena.
static double heap_mb() {
  const struct mallinfo2 m = ::mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd) / (1024.0 * 1024.0);
}

static double rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0;
}

int main(int argc, char** argv) {
  std::string connect = "127.0.0.1:2181";
  int changes = 1000;
  std::size_t window = 32;
  std::size_t sessions = registry::Cache::Options{}.sessions;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--zk")) connect = argv[i + 1];
    else if (!std::strcmp(argv[i], "--changes")) changes = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--window")) window = static_cast<std::size_t>(std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--sessions")) sessions = static_cast<std::size_t>(std::atoi(argv[i + 1]));
  }

  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, std::pair<std::int64_t, Clock::time_point>> seen;

  registry::Cache::Options o;
  o.zk.connect = connect;
  o.zk.timeout = std::chrono::milliseconds(10000);
  o.zk.session_timeout = std::chrono::milliseconds(30000);
  o.max_outstanding = window;
  o.sessions = sessions;
  // Only the timed changes are written down: the load's would count in the cache's memory.
  std::atomic<bool> timing{false};
  o.on_change = [&](const std::vector<registry::Change>& cs, const registry::Snapshot&) {
    if (!timing.load()) return;
    auto now = Clock::now();
    {
      std::lock_guard lock(mu);
      for (const auto& c : cs)
        if (c.after) seen[c.path] = {c.after->mzxid, now};
    }
    cv.notify_all();
  };

  double rss0 = rss_mb();
  double heap0 = heap_mb();
  registry::Cache cache(o);
  auto t0 = Clock::now();
  if (auto r = cache.start(std::chrono::seconds(300)); !r) {
    fmt::print(stderr, "cache_bench: {}\n", r.error().message);
    return 1;
  }
  double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  auto snap = cache.snapshot();
  // Memory held: once the control thread has freed the load's change list (just after it).
  std::this_thread::sleep_for(std::chrono::seconds(1));
  double rss1 = rss_mb();
  double heap1 = heap_mb();

  std::vector<std::string> leaves;
  for (const auto& [path, e] : snap->entries())
    if (!e.container) leaves.push_back(path);
  if (leaves.empty()) {
    fmt::print(stderr, "cache_bench: the registry is empty\n");
    return 1;
  }

  zk::Options wo;
  wo.connect = connect;
  auto writer = zk::Client::connect(wo);
  if (!writer) {
    fmt::print(stderr, "cache_bench: {}\n", writer.error().message);
    return 1;
  }
  // Timed in steady state: the first changes after a load are slower (the allocator
  // consolidates what the load freed), so 20 untimed ones go first.
  timing = true;
  const int warmup = 20;
  std::mt19937_64 rng(7);
  std::vector<double> lat_ms;
  for (int i = -warmup; i < changes; ++i) {
    const std::string& path = leaves[rng() % leaves.size()];
    std::string data = fmt::format(R"({{"dc":"bench","weight":{},"status":"up"}})", i);
    auto start = Clock::now();
    auto st = (*writer)->set(path, data, -1);
    if (!st) {
      fmt::print(stderr, "cache_bench: {}\n", st.error().message);
      return 1;
    }
    std::unique_lock lock(mu);
    bool ok = cv.wait_for(lock, std::chrono::seconds(10), [&] {
      auto it = seen.find(path);
      return it != seen.end() && it->second.first >= st->mzxid;
    });
    if (!ok) {
      fmt::print(stderr, "cache_bench: change to {} never became visible\n", path);
      return 1;
    }
    if (i >= 0) lat_ms.push_back(std::chrono::duration<double, std::milli>(seen[path].second - start).count());
  }
  std::sort(lat_ms.begin(), lat_ms.end());
  auto pct = [&](double p) { return lat_ms[static_cast<std::size_t>(p * static_cast<double>(lat_ms.size() - 1))]; };
  fmt::print(R"({{"nodes":{},"leaves":{},"load_s":{:.3f},"rss_mb":{:.1f},"heap_mb":{:.1f},"window":{},"sessions":{},"changes":{},)"
             R"("latency_ms":{{"p50":{:.3f},"p90":{:.3f},"p99":{:.3f},"max":{:.3f}}}}})"
             "\n",
             snap->size(), leaves.size(), load_s, rss1 - rss0, heap1 - heap0, window, sessions, changes, pct(0.5), pct(0.9),
             pct(0.99), lat_ms.back());
  return 0;
}
