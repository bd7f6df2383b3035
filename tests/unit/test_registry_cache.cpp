// The cache's reconciliation, driven step by step on the in-memory ensemble: each rule
// ARCHITECTURE.md states for it, and what the fault runs found, as a case.
#include <svcctl/registry/cache.hpp>
#include <svcctl/registry/mirror.hpp>
#include <svcctl/registry/paths.hpp>
#include <svcctl/zk/fake.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace svcctl;
using namespace svcctl::registry;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// The registry's roots and the depth of their leaves (DESIGN §2), as the test knows them.
struct TestRoot {
  std::string_view path;
  int leaf_depth;
};
constexpr TestRoot k_roots[] = {{paths::k_services, 1}, {paths::k_addresses, 2}, {paths::k_apis, 2},
                                {paths::k_keys, 1},     {paths::k_acls, 2},      {paths::k_gateways, 1}};

// An ensemble, a cache of it on a clock the test moves, and what the cache told.
struct Rig {
  zk::FakeEnsemble ens;
  Clock::time_point t = Clock::time_point(1h);
  std::vector<std::vector<Change>> published;  // each on_change call
  std::vector<SessionEvent> events;
  std::unique_ptr<Cache> cache;

  explicit Rig(std::size_t members = 3, std::uint64_t seed = 1) : ens(members, seed) {
    for (const auto& r : k_roots) REQUIRE(ens.create(std::string(r.path)));
  }

  void open(std::size_t sessions = 2, std::function<void(Cache::Options&)> tweak = {}) {
    Cache::Options o;
    o.connect = ens.connector();
    o.sessions = sessions;
    o.clock = [this] { return t; };
    o.seed = 7;
    o.zk.session_timeout = 4000ms;
    o.on_change = [this](const std::vector<Change>& c, const Snapshot&) { published.push_back(c); };
    o.on_session = [this](const SessionEvent& e) { events.push_back(e); };
    if (tweak) tweak(o);
    cache = std::make_unique<Cache>(std::move(o));
  }

  // Delivers everything and lets the cache do what falls due, moving the clock on to it
  // while that is within `horizon`.
  void settle(std::chrono::milliseconds horizon = 1000ms) {
    const auto deadline = t + horizon;
    for (int round = 0; round < 100000; ++round) {
      const std::size_t delivered = ens.run();
      const auto next = cache->tick();
      if (delivered > 0 || ens.step()) continue;
      if (next && *next <= deadline) {
        t = std::max(t, *next);
        continue;
      }
      return;
    }
    FAIL("the cache and the ensemble did not settle");
  }

  // Delivers and ticks without moving the clock: what happens before anything is due.
  void deliver() {
    do cache->tick();
    while (ens.run() > 0);
  }

  std::shared_ptr<const Snapshot> snap() const { return cache->snapshot(); }

  // The ZooKeeper session id of the cache's session i.
  std::int64_t session(std::size_t i) const { return snap()->session_ids.at(i); }

  // Every change ever published for `path`, as "Added", "Deleted" or "Modified".
  std::vector<std::string> history(const std::string& path) const {
    std::vector<std::string> out;
    for (const auto& batch : published)
      for (const auto& c : batch)
        if (c.path == path) out.emplace_back(to_string(c.kind));
    return out;
  }

  // The ensemble's nodes under the roots, as the cache mirrors them: path → data
  // (containers' data is not read) and mzxid.
  std::map<std::string, std::pair<std::string, std::int64_t>> truth() const {
    std::map<std::string, std::pair<std::string, std::int64_t>> out;
    std::function<void(const std::string&, int)> walk = [&](const std::string& p, int leaf_depth) {
      auto n = ens.node(p);
      if (!n) return;
      const bool container = leaf_depth > 0;
      out[p] = {container ? std::string() : n->data, n->stat.mzxid};
      if (container)
        for (const auto& k : ens.children_of(p)) walk(p + "/" + k, leaf_depth - 1);
    };
    for (const auto& r : k_roots) walk(std::string(r.path), r.leaf_depth);
    return out;
  }

  std::map<std::string, std::pair<std::string, std::int64_t>> mirror() const {
    std::map<std::string, std::pair<std::string, std::int64_t>> out;
    for (const auto& [p, e] : snap()->entries()) out[p] = {e.data, e.mzxid};
    return out;
  }

  std::size_t count(SessionEvent::Kind kind) const {
    std::size_t n = 0;
    for (const auto& e : events) n += e.kind == kind;
    return n;
  }
};

// A service name whose nodes session `want` of `sessions` reads.
std::string name_read_by(std::size_t want, std::size_t sessions) {
  const Mirror layout(sessions);
  for (int i = 0;; ++i) {
    std::string n = fmt::format("svc{}", i);
    if (layout.session_of(paths::service(n)) == want) return n;
  }
}

}  // namespace

TEST_CASE("cache: the first load is the registry, published once, at the zxid every session vouches for") {
  Rig rig;
  for (int i = 0; i < 20; ++i) {
    const auto svc = fmt::format("s{}", i);
    REQUIRE(rig.ens.create(paths::service(svc), R"({"protocol":"yar"})"));
    REQUIRE(rig.ens.create(paths::addresses(svc)));
    REQUIRE(rig.ens.create(paths::address(svc, "127.0.0.1:9000"), "{}", zk::CreateMode::Persistent));
  }
  rig.open();
  rig.settle();
  REQUIRE(rig.snap());
  CHECK(rig.snap()->loaded);
  CHECK(rig.mirror() == rig.truth());
  CHECK(rig.published.size() == 1);  // the load comes all at once
  CHECK(rig.snap()->max_zxid == rig.ens.zxid());
  CHECK(rig.snap()->session == zk::SessionState::Connected);
  CHECK(rig.events.empty());  // a load is no resync
}

TEST_CASE("cache: one transaction is published whole, never in pieces") {
  // The fault run: a transaction deleting addresses of one service was judged in pieces.
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    CAPTURE(seed);
    Rig rig(3, seed);
    REQUIRE(rig.ens.create(paths::service("s"), "{}"));
    REQUIRE(rig.ens.create(paths::addresses("s")));
    for (int p = 1; p <= 4; ++p) REQUIRE(rig.ens.create(paths::address("s", fmt::format("10.0.0.{}:80", p)), "{}"));
    rig.open();
    rig.settle();
    rig.published.clear();
    REQUIRE(rig.ens.multi({zk::Op::remove(paths::address("s", "10.0.0.1:80"), -1),
                           zk::Op::remove(paths::address("s", "10.0.0.2:80"), -1),
                           zk::Op::remove(paths::address("s", "10.0.0.3:80"), -1)}));
    rig.settle();
    CHECK(rig.mirror() == rig.truth());
    std::vector<std::size_t> deletions;
    for (const auto& batch : rig.published) {
      std::size_t n = 0;
      for (const auto& c : batch) n += c.kind == Change::Kind::Deleted;
      if (n > 0) deletions.push_back(n);
    }
    CHECK(deletions == std::vector<std::size_t>{3});
  }
}

TEST_CASE("cache: a listing made after a node was created, and without it, wins over an older read of it") {
  Rig rig;
  rig.open();
  rig.settle();
  // /service is listed by session 0; /service/{svc} is read by the session its name hashes to.
  const std::string svc = name_read_by(1, 2);
  const std::string path = paths::service(svc);
  const auto reader = rig.session(1);
  REQUIRE(rig.ens.member_of(reader) != rig.ens.member_of(rig.session(0)));

  rig.ens.hold(reader);
  REQUIRE(rig.ens.create(path, "v1"));
  rig.deliver();  // the listing names it: session 1 reads it (its member has it), the reply held
  rig.ens.lag(*rig.ens.member_of(reader));
  REQUIRE(rig.ens.remove(path));
  rig.deliver();  // the listing again, without it, made after its creation
  rig.ens.release(reader);
  rig.deliver();  // the read of when it existed

  CHECK(rig.snap()->find(path) == nullptr);
  CHECK(rig.history(path).empty());  // never published, not even for a moment
  rig.settle();
  CHECK(rig.mirror() == rig.truth());
}

TEST_CASE("cache: a node the listing names but a lagging member cannot see yet is waited for") {
  Rig rig;
  rig.open();
  rig.settle();
  const std::string svc = name_read_by(1, 2);
  const std::string path = paths::service(svc);
  rig.ens.lag(*rig.ens.member_of(rig.session(1)));
  REQUIRE(rig.ens.create(path, "v1"));
  rig.deliver();  // session 0's listing names it; session 1 reads it: no node there yet
  CHECK(rig.snap()->find(path) == nullptr);
  rig.settle();  // the session behind is synced: its member catches up, the watch brings it
  REQUIRE(rig.snap()->find(path) != nullptr);
  CHECK(rig.snap()->find(path)->data == "v1");
  CHECK(rig.history(path) == std::vector<std::string>{"added"});
}

TEST_CASE("cache: the published zxid is one every session has seen, never past a change not in the snapshot") {
  Rig rig;
  const std::string behind = paths::service(name_read_by(1, 2));
  const std::string ahead = paths::service(name_read_by(0, 2));
  REQUIRE(rig.ens.create(behind, "v1"));
  REQUIRE(rig.ens.create(ahead, "v1"));
  rig.open();
  rig.settle();
  rig.ens.lag(*rig.ens.member_of(rig.session(1)));
  const auto z = rig.ens.set(behind, "v2");
  REQUIRE(z);
  REQUIRE(rig.ens.set(ahead, "v2"));
  rig.deliver();
  CHECK(rig.snap()->find(ahead)->data == "v2");
  CHECK(rig.snap()->find(behind)->data == "v1");
  CHECK(rig.snap()->max_zxid < *z);
  rig.settle();
  CHECK(rig.snap()->find(behind)->data == "v2");
  CHECK(rig.snap()->max_zxid == rig.ens.zxid());
}

TEST_CASE("cache: a read lost with its connection is sent again") {
  Rig rig;
  const std::string path = paths::service(name_read_by(1, 2));
  REQUIRE(rig.ens.create(path, "v1"));
  rig.open();
  rig.settle();
  const auto s1 = rig.session(1);
  REQUIRE(rig.ens.set(path, "v2"));
  REQUIRE(rig.ens.step());  // the notification: the read it calls for is sent
  CHECK(rig.ens.queued() == 1);
  rig.ens.disconnect(s1);   // and its reply lost with the connection
  rig.deliver();
  CHECK(rig.snap()->find(path)->data == "v1");
  REQUIRE(rig.ens.reconnect(s1));  // its watches set again tell nothing: it heard of v2
  rig.settle();
  CHECK(rig.snap()->find(path)->data == "v2");
  CHECK(rig.count(SessionEvent::Kind::Disconnected) == 1);
  CHECK(rig.count(SessionEvent::Kind::Reconnected) == 1);
}

TEST_CASE("cache: a reconnect reads only the roots' listings, and still sees every change made meanwhile") {
  Rig rig;
  std::vector<std::string> svcs;
  for (int i = 0; i < 50; ++i) {
    svcs.push_back(fmt::format("s{}", i));
    REQUIRE(rig.ens.create(paths::service(svcs.back()), "v1"));
    REQUIRE(rig.ens.create(paths::addresses(svcs.back())));
    REQUIRE(rig.ens.create(paths::address(svcs.back(), "10.0.0.1:80"), "{}"));
  }
  rig.open();
  rig.settle();
  const auto ids = rig.snap()->session_ids;
  for (auto id : ids) rig.ens.disconnect(id);
  rig.deliver();
  REQUIRE(rig.ens.set(paths::service("s3"), "v2"));
  REQUIRE(rig.ens.remove(paths::address("s4", "10.0.0.1:80")));
  REQUIRE(rig.ens.create(paths::address("s5", "10.0.0.2:80"), "{}"));
  REQUIRE(rig.ens.create(paths::service("new"), "v1"));
  const auto before = rig.ens.counters();
  for (auto id : ids) REQUIRE(rig.ens.reconnect(id));
  rig.settle();
  CHECK(rig.mirror() == rig.truth());
  const auto reads = rig.ens.counters().reads() - before.reads();
  // The six roots' listings, and a read per change: /service/s3, the listings of
  // /address/s4 and /address/s5, /address/s5/10.0.0.2:80, /service/new; not 150 nodes.
  CHECK(reads <= 6 + 8);
  CHECK(rig.count(SessionEvent::Kind::Reconnected) == 2);
  CHECK(rig.count(SessionEvent::Kind::Resynced) == 2);
}

TEST_CASE("cache: after an expiry a new session reads everything again and sweeps what is gone") {
  Rig rig;
  const std::string svc = name_read_by(1, 2);
  REQUIRE(rig.ens.create(paths::addresses(svc)));
  REQUIRE(rig.ens.create(paths::address(svc, "10.0.0.1:80"), "{}"));
  REQUIRE(rig.ens.create(paths::address(svc, "10.0.0.2:80"), "{}"));
  rig.open();
  rig.settle();
  const auto old_id = rig.session(1);
  rig.ens.expire(old_id);
  rig.deliver();
  REQUIRE(rig.ens.remove(paths::address(svc, "10.0.0.2:80")));
  REQUIRE(rig.ens.set(paths::address(svc, "10.0.0.1:80"), R"({"weight":5})"));
  REQUIRE(rig.ens.create(paths::address(svc, "10.0.0.3:80"), "{}"));
  rig.settle(2000ms);  // the new session starts after a jitter of up to a second
  CHECK(rig.mirror() == rig.truth());
  CHECK(rig.session(1) != old_id);
  CHECK(rig.count(SessionEvent::Kind::Expired) == 1);
  REQUIRE(rig.count(SessionEvent::Kind::Replaced) == 1);
  const SessionEvent& resynced = rig.events.back();
  REQUIRE(resynced.kind == SessionEvent::Kind::Resynced);
  CHECK(resynced.session == 1);
  CHECK(resynced.added == 1);
  CHECK(resynced.modified == 1);
  CHECK(resynced.deleted == 1);
  // What the gateway's event log and `watch` say of them.
  std::vector<std::string> said;
  for (const auto& e : rig.events) said.push_back(describe(e));
  REQUIRE(said.size() == 3);
  CHECK(said[0] == fmt::format("session 1 (0x{:x}) expired (the server ended it): opening a new session", old_id));
  CHECK(said[1] == fmt::format("session 1: new session 0x{:x} replaces 0x{:x} (the server ended it)",
                               rig.session(1), old_id));
  CHECK(said[2].find("resync done: 3 nodes read, 1 added, 1 modified, 1 deleted") != std::string::npos);
  CHECK(to_json(rig.events[1])["old_session_id"] == fmt::format("0x{:x}", old_id));
}

TEST_CASE("cache: a new session on a member behind the cache catches it up before reading") {
  // Without the sync, a new session's round on a lagging member would take nodes created
  // since for deleted: routes lost for as long as the member lags.
  Rig rig;
  const std::string svc = name_read_by(1, 2);
  REQUIRE(rig.ens.create(paths::addresses(svc)));
  REQUIRE(rig.ens.create(paths::address(svc, "10.0.0.1:80"), "{}"));
  rig.ens.lag(2);
  const std::string recent = paths::address(svc, "10.0.0.2:80");
  REQUIRE(rig.ens.create(recent, "{}"));
  rig.ens.connect_to(0);
  rig.open();
  rig.settle();
  REQUIRE(rig.snap()->find(recent));
  rig.ens.connect_to(2);
  rig.ens.expire(rig.session(1));
  rig.settle(2000ms);
  CHECK(rig.count(SessionEvent::Kind::Replaced) == 1);
  CHECK(rig.ens.member_of(rig.session(1)) == 2u);
  CHECK(rig.history(recent) == std::vector<std::string>{"added"});
  CHECK(rig.mirror() == rig.truth());
}

TEST_CASE("cache: a session a restored ensemble refuses is given up past its timeout for a new one") {
  Rig rig;
  for (int i = 0; i < 5; ++i) REQUIRE(rig.ens.create(paths::service(fmt::format("s{}", i)), "v1"));
  REQUIRE(rig.ens.set(paths::service("s0"), "v2"));  // its mzxid is now above what the rebuilt ensemble gives it
  rig.open();
  rig.settle();
  const auto ids = rig.snap()->session_ids;
  rig.ens.lose_data();  // rebuilt on an empty data dir: zxid 0, no sessions
  for (const auto& r : k_roots) REQUIRE(rig.ens.create(std::string(r.path)));
  REQUIRE(rig.ens.create(paths::service("s0"), "rebuilt"));  // the same path, other data, a lower mzxid
  rig.deliver();
  for (auto id : ids) CHECK(!rig.ens.reconnect(id));  // it has seen zxids the ensemble has not
  rig.t += 3900ms;  // not yet the session timeout
  rig.settle(0ms);
  CHECK(rig.count(SessionEvent::Kind::Expired) == 0);
  CHECK(rig.snap()->find(paths::service("s4")) != nullptr);  // the old view, served stale meanwhile
  CHECK(rig.snap()->session == zk::SessionState::Connecting);
  CHECK(rig.snap()->stale_since.has_value());
  rig.settle(3000ms);
  CHECK(rig.count(SessionEvent::Kind::Expired) == 2);
  CHECK(rig.count(SessionEvent::Kind::Replaced) == 2);
  for (const auto& e : rig.events)
    if (e.kind == SessionEvent::Kind::Expired) CHECK(e.reason.find("could not reconnect for") == 0);
  CHECK(rig.mirror() == rig.truth());
  CHECK(rig.snap()->session == zk::SessionState::Connected);
  CHECK(!rig.snap()->stale_since.has_value());
}

TEST_CASE("cache: a connect that fails is tried again with a growing backoff") {
  Rig rig;
  rig.ens.refuse_connects(true);
  rig.open(1);
  rig.cache->tick();
  CHECK(rig.ens.counters().connects == 0);
  CHECK(!rig.snap());
  rig.settle(1000ms);  // tried again, refused again
  rig.ens.refuse_connects(false);
  rig.settle(20000ms);
  REQUIRE(rig.snap());
  CHECK(rig.snap()->loaded);
  CHECK(rig.ens.counters().connects == 1);
}

TEST_CASE("cache: with its own clock it is driven by tick(), not started") {
  Rig rig;
  rig.open();
  auto started = rig.cache->start(100ms);
  REQUIRE(!started);
  CHECK(started.error().message.find("tick()") != std::string::npos);
}
