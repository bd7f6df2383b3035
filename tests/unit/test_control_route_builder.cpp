// The route builder (lib/control): the gateway's routes followed from the registry's
// changes, and the mass-change guard that holds what would take too much away at once.
#include <svcctl/control/route_builder.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace svcctl;
using namespace svcctl::control;
using gateway::AclRoute;

namespace {

registry::Change change(registry::Change::Kind kind, std::string path, std::string data) {
  registry::Change c;
  c.kind = kind;
  c.path = std::move(path);
  if (kind != registry::Change::Kind::Deleted) c.after = std::make_shared<const registry::CacheEntry>(registry::CacheEntry{std::move(data), 1, 0, 0, false});
  return c;
}

}  // namespace

TEST_CASE("RouteBuilder follows changes and keeps untouched services' objects") {
  Routes routes;
  RouteBuilder b(routes, "");
  b.guard_delay = std::chrono::milliseconds(0);  // the guard is tested below
  using K = registry::Change::Kind;
  b.apply({change(K::Added, "/service/s", R"({"status":"up"})"),
           change(K::Added, "/address/s/10.0.0.1:80", R"({"weight":100})"),
           change(K::Added, "/api/s/echo", R"({"path":"/echo","timeout_ms":250})"),
           change(K::Added, "/service/t", "{}"),
           change(K::Added, "/address/orphan/10.0.0.9:80", "{}"),
           change(K::Added, "/key/k1", "{}")});
  auto t1 = routes.current();
  CHECK(routes.generation() == t1->generation);
  REQUIRE(t1->find("s"));
  CHECK(!t1->find("orphan"));  // addresses without a service node are not routed
  CHECK(t1->find("s")->find_api("echo")->timeout == std::chrono::milliseconds(250));
  CHECK(t1->find("s")->candidates == 1);
  const ServiceRoute* t_before = t1->find("t");

  b.apply({change(K::Modified, "/address/s/10.0.0.1:80", R"({"status":"down"})")});
  auto t2 = routes.current();
  CHECK(t2->generation == t1->generation + 1);
  CHECK(t2->find("s")->candidates == 0);
  CHECK(t2->find("t") == t_before);  // same object: workers keep their state for it
  CHECK(t1->find("s")->candidates == 1);  // the old table is unchanged

  b.apply({change(K::Deleted, "/service/s", "")});
  CHECK(!routes.current()->find("s"));
  b.apply({change(K::Added, "/service/s", "{}")});
  CHECK(routes.current()->find("s")->find_api("echo"));  // its interfaces were kept

  // Data that is not valid still routes, with safe values, and is reported.
  std::vector<std::string> problems;
  b.on_problem = [&](std::string_view path, std::string_view p) { problems.push_back(std::string(path) + ": " + std::string(p)); };
  b.apply({change(K::Modified, "/address/s/10.0.0.1:80", R"({"weight":"lots"})")});
  CHECK(problems.size() == 1);
  CHECK(routes.current()->find("s")->addrs.at(0).weight == model::k_default_weight);
}

TEST_CASE("mass-change guard: more than half of the addresses away is held until a second read agrees") {
  Routes routes;
  RouteBuilder b(routes, "");
  using K = registry::Change::Kind;
  using Clock = RouteBuilder::Clock;
  std::vector<std::string> events;
  b.on_event = [&](std::string_view m) { events.emplace_back(m); };
  std::optional<std::vector<std::string>> zk_has;  // what the second read returns
  int reads = 0;
  b.confirm = [&](const std::string& svc) {
    CHECK(svc == "s");
    ++reads;
    return zk_has;
  };
  std::vector<registry::Change> add{change(K::Added, "/service/s", "{}")};
  for (int i = 1; i <= 4; ++i) add.push_back(change(K::Added, "/address/s/10.0.0." + std::to_string(i) + ":80", "{}"));
  b.apply(add);
  const ServiceRoute* all = routes.current()->find("s");
  REQUIRE(all->addrs.size() == 4);

  // Two of four away: not more than half, at once.
  b.apply({change(K::Deleted, "/address/s/10.0.0.4:80", "")});
  CHECK(routes.current()->find("s")->addrs.size() == 3);
  b.apply({change(K::Added, "/address/s/10.0.0.4:80", "{}")});

  // Three of four away in one batch: held, routed as it was.
  b.apply({change(K::Deleted, "/address/s/10.0.0.2:80", ""), change(K::Deleted, "/address/s/10.0.0.3:80", ""),
           change(K::Modified, "/address/s/10.0.0.4:80", R"({"status":"down"})")});
  CHECK(routes.current()->find("s")->addrs.size() == 4);
  CHECK(routes.guard().held == std::vector<std::string>{"s"});
  CHECK(routes.guard().holds == 1);
  REQUIRE(events.size() == 1);
  CHECK(events[0].find("holding service s") != std::string::npos);

  b.tick(Clock::now());  // not due yet: no read
  CHECK(reads == 0);
  // Due, but ZooKeeper cannot be read: still held.
  b.tick(Clock::now() + std::chrono::seconds(3));
  CHECK(reads == 1);
  CHECK(routes.current()->find("s")->addrs.size() == 4);
  // ZooKeeper shows another state than the cache: still held.
  zk_has = std::vector<std::string>{"10.0.0.1:80", "10.0.0.2:80"};
  b.tick(Clock::now() + std::chrono::seconds(6));
  CHECK(routes.current()->find("s")->addrs.size() == 4);
  // The second read agrees: applied.
  zk_has = std::vector<std::string>{"10.0.0.1:80"};
  b.tick(Clock::now() + std::chrono::seconds(9));
  REQUIRE(routes.current()->find("s")->addrs.size() == 1);
  CHECK(routes.current()->find("s")->addrs[0].name == "10.0.0.1:80");
  CHECK(routes.guard().held.empty());
  CHECK(events.back().find("confirmed by a second read: 1 of 4") != std::string::npos);

  // A hold that a later batch brings back under the limit is released at once.
  b.apply({change(K::Added, "/address/s/10.0.0.2:80", "{}"), change(K::Added, "/address/s/10.0.0.3:80", "{}")});
  CHECK(routes.current()->find("s")->addrs.size() == 3);
  b.apply({change(K::Deleted, "/address/s/10.0.0.2:80", ""), change(K::Deleted, "/address/s/10.0.0.3:80", "")});
  CHECK(routes.current()->find("s")->addrs.size() == 3);  // 2 of 3: held
  b.apply({change(K::Added, "/address/s/10.0.0.3:80", "{}")});
  CHECK(routes.current()->find("s")->addrs.size() == 2);  // 1 of 3 away now: released, applied
  CHECK(routes.guard().held.empty());
  CHECK(routes.guard().holds == 2);

  // The service node removed while it is routed to addresses: held too, until a second
  // read finds no service either.
  b.apply({change(K::Deleted, "/service/s", "")});
  REQUIRE(routes.current()->find("s"));
  CHECK(routes.current()->find("s")->addrs.size() == 2);
  CHECK(events.back().find("remove the service node") != std::string::npos);
  zk_has = std::vector<std::string>{};
  b.tick(Clock::now() + std::chrono::seconds(12));
  CHECK(!routes.current()->find("s"));
  CHECK(routes.guard().holds == 3);

  // guard_delay 0: no guard.
  Routes r2;
  RouteBuilder b2(r2, "");
  b2.guard_delay = std::chrono::milliseconds(0);
  b2.apply(add);
  b2.apply({change(K::Deleted, "/address/s/10.0.0.1:80", ""), change(K::Deleted, "/address/s/10.0.0.2:80", ""),
            change(K::Deleted, "/address/s/10.0.0.3:80", "")});
  CHECK(r2.current()->find("s")->addrs.size() == 1);
}

namespace {

// A builder with service "s" routed to 10.0.0.1:80 … 10.0.0.n:80, and a second read that
// agrees with whatever the cache has.
struct Guarded {
  Routes routes;
  RouteBuilder b{routes, ""};
  std::vector<std::string> events;
  explicit Guarded(int n) {
    b.on_event = [this](std::string_view m) { events.emplace_back(m); };
    std::vector<registry::Change> add{change(registry::Change::Kind::Added, "/service/s", "{}")};
    for (int i = 1; i <= n; ++i) add.push_back(change(registry::Change::Kind::Added, name(i), "{}"));
    b.apply(add);
  }
  static std::string name(int i) { return "/address/s/10.0.0." + std::to_string(i) + ":80"; }
  std::size_t routed() const {
    auto s = routes.current()->find("s");
    return s ? s->addrs.size() : 0;
  }
  bool held() const { return routes.guard().held == std::vector<std::string>{"s"}; }
};

}  // namespace

TEST_CASE("mass-change guard: removals one after another are judged together within the window") {
  using K = registry::Change::Kind;
  Guarded g(4);
  // Four deletes in a row (as four `unregister` would do): the third takes more than half
  // of the four the service was routed to a moment ago.
  g.b.apply({change(K::Deleted, Guarded::name(4), "")});
  g.b.apply({change(K::Deleted, Guarded::name(3), "")});
  CHECK(g.routed() == 2);
  CHECK_FALSE(g.held());
  g.b.apply({change(K::Deleted, Guarded::name(2), "")});
  CHECK(g.held());
  CHECK(g.routed() == 2);
  g.b.apply({change(K::Deleted, Guarded::name(1), "")});
  CHECK(g.routed() == 2);
  REQUIRE(!g.events.empty());
  CHECK(g.events[0].find("leave 1 of the 4 addresses it was routed to within 2000 ms") != std::string::npos);

  // Downs and weight 0 count as removals.
  Guarded d(3);
  d.b.apply({change(K::Modified, Guarded::name(3), R"({"status":"down"})")});
  d.b.apply({change(K::Modified, Guarded::name(2), R"({"weight":0})")});
  CHECK(d.held());
  CHECK(d.routed() == 2);
}

TEST_CASE("mass-change guard: the window slides; a rolling replacement is not held") {
  using K = registry::Change::Kind;
  using Clock = RouteBuilder::Clock;
  const auto t0 = Clock::now();
  Guarded g(4);
  // One removal every three seconds, the window being the guard delay (2 s): each is
  // judged against what was routed within the last two seconds only.
  g.b.apply({change(K::Deleted, Guarded::name(4), "")}, t0);
  g.b.apply({change(K::Deleted, Guarded::name(3), "")}, t0 + std::chrono::seconds(3));
  g.b.apply({change(K::Deleted, Guarded::name(2), "")}, t0 + std::chrono::seconds(6));
  CHECK_FALSE(g.held());
  CHECK(g.routed() == 1);
  // A longer window catches the same sequence.
  Guarded w(4);
  w.b.guard_window = std::chrono::seconds(10);
  w.b.apply({change(K::Deleted, Guarded::name(4), "")}, t0);
  w.b.apply({change(K::Deleted, Guarded::name(3), "")}, t0 + std::chrono::seconds(3));
  w.b.apply({change(K::Deleted, Guarded::name(2), "")}, t0 + std::chrono::seconds(6));
  CHECK(w.held());

  // Each address replaced by a new one, one at a time: never fewer than three routed.
  Guarded r(4);
  for (int i = 1; i <= 4; ++i) {
    r.b.apply({change(K::Deleted, Guarded::name(i), "")});
    r.b.apply({change(K::Added, Guarded::name(10 + i), "{}")});
  }
  CHECK_FALSE(r.held());
  CHECK(r.routed() == 4);
  CHECK(r.routes.guard().holds == 0);
}

TEST_CASE("mass-change guard: a service's last routable address is held") {
  using K = registry::Change::Kind;
  using Clock = RouteBuilder::Clock;
  Guarded g(1);
  std::optional<std::vector<std::string>> zk_has;
  g.b.confirm = [&](const std::string&) { return zk_has; };
  g.b.apply({change(K::Deleted, Guarded::name(1), "")});
  CHECK(g.held());
  CHECK(g.routed() == 1);
  CHECK(g.events.back().find("last routable address") != std::string::npos);
  zk_has = std::vector<std::string>{};
  g.b.tick(Clock::now() + std::chrono::seconds(3));
  CHECK_FALSE(g.held());
  CHECK(g.routed() == 0);
  REQUIRE(g.routes.current()->find("s"));  // still known: 503, not 404
  // Nothing routable left: a later change has nothing to take away.
  g.b.apply({change(K::Modified, "/service/s", R"({"status":"up"})")});
  CHECK_FALSE(g.held());
  CHECK(g.routes.guard().holds == 1);
  // Back, then marked down: held again.
  g.b.apply({change(K::Added, Guarded::name(1), "{}")});
  CHECK(g.routed() == 1);
  g.b.apply({change(K::Modified, Guarded::name(1), R"({"status":"down"})")});
  CHECK(g.held());
}

TEST_CASE("RouteBuilder: keys, ACLs (their buckets kept across changes) and the gateway count") {
  using K = registry::Change::Kind;
  Routes routes;
  RouteBuilder b(routes, "");
  b.apply({change(K::Added, "/service/s", R"({"status":"up"})"),
           change(K::Added, "/address/s/10.0.0.1:80", "{}"),
           change(K::Added, "/api/s/A", R"({"path":"/a"})"),
           change(K::Added, "/service/open", "{}")});
  auto t = routes.current();
  CHECK(t->find("s")->acls.empty());
  CHECK_FALSE(t->find("s")->enforcing);
  CHECK(t->key_state("k1") == gateway::KeyState::Unknown);
  CHECK(t->gateways == 1);

  b.apply({change(K::Added, "/key/k1", "{}"), change(K::Added, "/key/k2", R"({"status":"down"})"),
           change(K::Added, "/acl/s/k1", R"({"rate":10,"apis":["B","A"]})"),
           change(K::Added, "/acl/s/k2", R"({"shadow":true})"),
           change(K::Added, "/gateway/g1", "{}"), change(K::Added, "/gateway/g2", "{}")});
  t = routes.current();
  CHECK(t->key_state("k1") == gateway::KeyState::Enabled);
  CHECK(t->key_state("k2") == gateway::KeyState::Disabled);
  CHECK(t->gateways == 2);
  const ServiceRoute* s = t->find("s");
  CHECK(s->enforcing);
  const AclRoute* a1 = s->find_acl("k1");
  REQUIRE(a1);
  CHECK(*a1->rate == 10.0);
  CHECK(a1->burst == 10);  // the rate, when no burst is given
  CHECK(a1->allows("A"));
  CHECK(a1->allows("B"));
  CHECK_FALSE(a1->allows("C"));
  const AclRoute* a2 = s->find_acl("k2");
  REQUIRE(a2);
  CHECK(a2->shadow);
  CHECK_FALSE(a2->rate);
  CHECK(a2->allows("anything"));
  auto bucket = a1->bucket;
  bucket->tat = 12345;

  // Changing the rate keeps the bucket; the untouched service keeps its object.
  auto open_before = t->services.at("open");
  b.apply({change(K::Modified, "/acl/s/k1", R"({"rate":20,"burst":3})"), change(K::Deleted, "/gateway/g1", "")});
  t = routes.current();
  CHECK(t->gateways == 1);
  CHECK(t->services.at("open") == open_before);
  a1 = t->find("s")->find_acl("k1");
  CHECK(a1->bucket == bucket);
  CHECK(a1->burst == 3);
  CHECK(a1->bucket->tat.load() == 12345);

  // Every ACL in shadow mode: the service counts, it does not refuse.
  b.apply({change(K::Deleted, "/acl/s/k1", "")});
  t = routes.current();
  CHECK(t->find("s")->find_acl("k1") == nullptr);
  CHECK_FALSE(t->find("s")->enforcing);
  b.apply({change(K::Added, "/acl/s/k1", R"({"rate":20})")});
  CHECK(routes.current()->find("s")->find_acl("k1")->bucket != bucket);  // a new ACL starts full
  b.apply({change(K::Deleted, "/key/k1", "")});
  CHECK(routes.current()->key_state("k1") == gateway::KeyState::Unknown);
}
