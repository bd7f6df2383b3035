#include <svcctl/gateway/errors.hpp>
#include <svcctl/gateway/routes.hpp>
#include <svcctl/gateway/stats.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <random>
#include <thread>
#include <atomic>

using namespace svcctl;
using namespace svcctl::gateway;

namespace {

model::Address addr(std::string name, std::string dc, std::int64_t weight, model::Status st = model::Status::Up) {
  model::Address a;
  a.service = "s";
  a.address = std::move(name);
  a.dc = std::move(dc);
  a.weight = weight;
  a.status = st;
  return a;
}

model::Api api(std::string name, std::string path) {
  model::Api a;
  a.service = "s";
  a.name = std::move(name);
  a.path = std::move(path);
  return a;
}

registry::Change change(registry::Change::Kind kind, std::string path, std::string data) {
  registry::Change c;
  c.kind = kind;
  c.path = std::move(path);
  if (kind != registry::Change::Kind::Deleted) c.after = std::make_shared<const registry::CacheEntry>(registry::CacheEntry{std::move(data), 1, 0, 0, false});
  return c;
}

}  // namespace

TEST_CASE("build_service: only up addresses with a weight, the local datacenter first") {
  model::Service svc{"s", model::Status::Up, "", ""};
  auto r = build_service(svc,
                         {addr("10.0.0.1:80", "b", 100), addr("10.0.0.2:80", "a", 50),
                          addr("10.0.0.3:80", "a", 0), addr("10.0.0.4:80", "a", 100, model::Status::Down),
                          addr("10.0.0.5:80", "a", 30), addr("[::1]:81", "b", 10), addr("bad", "a", 10)},
                         {api("b", "/b"), api("a", "/a")}, "a");
  REQUIRE(r->addrs.size() == 4);
  CHECK(r->addrs[0].name == "10.0.0.2:80");
  CHECK(r->addrs[1].name == "10.0.0.5:80");
  CHECK(r->addrs[3].host == "::1");
  CHECK(r->addrs[3].port == 81);
  CHECK(r->candidates == 2);
  CHECK(r->cumulative == std::vector<std::int64_t>{50, 80});
  REQUIRE(r->find_api("a"));
  CHECK(r->find_api("a")->path == "/a");
  CHECK(r->find_api("a")->method == "a");
  CHECK(r->find_api("a")->timeout == std::chrono::milliseconds(1000));
  CHECK(!r->find_api("c"));

  // No local address up: every up address is a candidate.
  auto other = build_service(svc, {addr("10.0.0.1:80", "b", 100), addr("10.0.0.2:80", "c", 100)}, {}, "a");
  CHECK(other->candidates == 2);
  auto none = build_service(svc, {}, {}, "a");
  CHECK(none->candidates == 0);
}

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

TEST_CASE("smooth weighted round robin: exact shares, spread out") {
  std::vector<AddrRoute> c(3);
  c[0].weight = 5;
  c[1].weight = 1;
  c[2].weight = 1;
  std::vector<std::int64_t> cur(3, 0);
  std::string order;
  for (int i = 0; i < 7; ++i) order += static_cast<char>('a' + pick_swrr(c, cur));
  CHECK(order == "aabacaa");  // nginx's sequence for 5:1:1
  std::map<std::size_t, int> n;
  for (int i = 0; i < 700; ++i) ++n[pick_swrr(c, cur)];
  CHECK(n[0] == 500);
  CHECK(n[1] == 100);
  CHECK(n[2] == 100);
}

TEST_CASE("power of two choices: weights when idle, load when busy") {
  std::vector<AddrRoute> c(2);
  c[0].weight = 100;
  c[1].weight = 300;
  std::vector<std::int64_t> cum{100, 400};
  std::mt19937_64 rng(7);
  auto random = [&] { return rng(); };
  std::vector<std::int64_t> in_flight{0, 0};
  auto f = [&](std::size_t i) { return in_flight[i]; };
  int second = 0;
  for (int i = 0; i < 40000; ++i) second += pick_p2c(c, cum, f, random) == 1;
  CHECK(second > 29000);  // 75 % of 40000 = 30000, sd ~87
  CHECK(second < 31000);
  // The heavier one is busier per unit of weight: the lighter one gets every split draw.
  in_flight = {0, 10};
  int first = 0;
  for (int i = 0; i < 10000; ++i) first += pick_p2c(c, cum, f, random) == 0;
  CHECK(first > 3300);  // P(at least one draw is 0) = 1 - 0.75^2 = 0.4375
  CHECK(first < 5400);
  // Equal weights, distinct draws: both of two are always compared.
  std::vector<AddrRoute> two(2);
  two[0].weight = two[1].weight = 100;
  std::vector<std::int64_t> cum2{100, 200};
  in_flight = {5, 0};
  for (int i = 0; i < 1000; ++i) CHECK(pick_p2c(two, cum2, f, random, true) == 1);
  in_flight = {0, 0};
  int zero = 0;
  for (int i = 0; i < 10000; ++i) zero += pick_p2c(two, cum2, f, random, true) == 0;
  CHECK(zero > 4700);  // a tie goes to the first draw: even
  CHECK(zero < 5300);
  std::vector<AddrRoute> one(1);
  CHECK(pick_p2c(one, std::vector<std::int64_t>{100}, f, random) == 0);
}

TEST_CASE("histogram: buckets, edges and quantiles") {
  CHECK(Histogram::bucket_of(0) == 0);
  CHECK(Histogram::bucket_of(15) == 15);
  CHECK(Histogram::bucket_of(16) == 16);
  CHECK(Histogram::upper_edge(16) == 17);
  for (std::uint64_t v : {1ull, 16ull, 100ull, 1000ull, 123456ull, 1ull << 30}) {
    auto b = Histogram::bucket_of(v);
    CHECK(Histogram::upper_edge(b) >= v);
    CHECK(Histogram::upper_edge(b) <= v + v / 8);  // at most 12.5 % wide
    if (b > 0) CHECK(Histogram::upper_edge(b - 1) < v);
  }
  CHECK(Histogram::bucket_of(~0ull) == Histogram::k_buckets - 1);
  Histogram h;
  CHECK(h.quantile(0.5) == 0);
  for (std::uint64_t v = 1; v <= 1000; ++v) h.record(v);
  CHECK(h.count() == 1000);
  CHECK(h.quantile(0.5) >= 500);
  CHECK(h.quantile(0.5) <= 500 + 500 / 8);
  CHECK(h.quantile(0.99) >= 990);
  CHECK(h.quantile(1.0) >= 1000);
  CHECK(h.count_at_most(15) == 15);
  Histogram g;
  g.record(5);
  g.merge(h);
  CHECK(g.count() == 1001);
}

TEST_CASE("counters render as JSON and Prometheus text") {
  StatsView v;
  auto& s = v.services["s"];
  Err e = Err::Timeout;
  s.interfaces["a"].record(1500, nullptr);
  s.interfaces["a"].record(2500, &e);
  s.addresses["10.0.0.1:80"].counters.record(2500, &e);
  s.counters.record(1500, nullptr);
  auto j = to_json(v);
  CHECK(j["services"]["s"]["interfaces"]["a"]["requests"] == 2);
  CHECK(j["services"]["s"]["interfaces"]["a"]["errors"]["timeout"] == 1);
  auto text = to_prometheus(v);
  CHECK(text.find("svcctl_requests_total{service=\"s\",interface=\"a\"} 2\n") != std::string::npos);
  CHECK(text.find("svcctl_errors_total{service=\"s\",interface=\"a\",code=\"timeout\"} 1\n") != std::string::npos);
  CHECK(text.find("svcctl_duration_seconds_bucket{service=\"s\",interface=\"a\",le=\"+Inf\"} 2\n") != std::string::npos);
  CHECK(text.find("svcctl_upstream_errors_total{service=\"s\",address=\"10.0.0.1:80\",code=\"timeout\"} 1\n") !=
        std::string::npos);
  // each family's samples come after its TYPE line and before the next family's
  auto type_at = text.find("# TYPE svcctl_errors_total");
  CHECK(type_at < text.find("svcctl_errors_total{"));
  CHECK(text.find("# TYPE svcctl_duration_seconds") > text.find("svcctl_errors_total{"));
}

TEST_CASE("the one error shape") {
  auto doc = nlohmann::json::parse(error_json(Err::NoUpstream, "no address is up", "s", "A"));
  CHECK(doc == nlohmann::json::parse(
                   R"({"error":{"code":"no_upstream","message":"no address is up","service":"s","interface":"A"}})"));
  codec::Value extra = {{"provider_status", 500}};
  doc = nlohmann::json::parse(error_json(Err::ProviderError, "m", "", "", &extra));
  CHECK(doc["error"]["provider_status"] == 500);
  CHECK(!doc["error"].contains("service"));
  CHECK(info(Err::RateLimited).http_status == 429);
  CHECK(info(Err::Timeout).http_status == 504);
  CHECK(info(Err::UnknownInterface).yar_status == 4);
  CHECK(yar_error_message(Err::Timeout, "slow") == "timeout: slow");
  for (std::size_t i = 0; i < k_err_count; ++i) CHECK(!info(static_cast<Err>(i)).code.empty());
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
  CHECK(t->find_key("k1") == nullptr);
  CHECK(t->gateways == 1);

  b.apply({change(K::Added, "/key/k1", "{}"), change(K::Added, "/key/k2", R"({"status":"down"})"),
           change(K::Added, "/acl/s/k1", R"({"rate":10,"apis":["B","A"]})"),
           change(K::Added, "/acl/s/k2", R"({"shadow":true})"),
           change(K::Added, "/gateway/g1", "{}"), change(K::Added, "/gateway/g2", "{}")});
  t = routes.current();
  REQUIRE(t->find_key("k1"));
  CHECK(*t->find_key("k1"));
  CHECK_FALSE(*t->find_key("k2"));
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
  CHECK(routes.current()->find_key("k1") == nullptr);
}

TEST_CASE("take_token: GCRA, the burst at once, then the rate") {
  constexpr std::int64_t s = 1'000'000'000;
  RateBucket bucket;
  const std::int64_t t0 = 1000 * s;
  for (int i = 0; i < 5; ++i) {
    auto d = take_token(bucket, 10.0, 5, 1, t0);
    CHECK(d.allowed);
    CHECK(d.limit == 5);
    CHECK(d.remaining == 4 - i);
  }
  auto refused = take_token(bucket, 10.0, 5, 1, t0);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after_ns == s / 10);  // one call's worth of the rate
  CHECK(refused.reset_ns == s / 2);         // five calls' worth to be full again
  CHECK_FALSE(take_token(bucket, 10.0, 5, 1, t0 + s / 10 - 1).allowed);
  CHECK(take_token(bucket, 10.0, 5, 1, t0 + s / 10).allowed);

  // Calls every millisecond from 0 to 10 s at 100/s with a burst of 20: rate × time + burst.
  RateBucket b2;
  int allowed = 0;
  for (std::int64_t ms = 0; ms <= 10'000; ++ms) allowed += take_token(b2, 100.0, 20, 1, t0 + ms * 1'000'000).allowed;
  CHECK(allowed == 100 * 10 + 20);

  // Three gateways share the limit: each allows a third of the rate and of the burst.
  RateBucket b3;
  allowed = 0;
  for (std::int64_t ms = 0; ms <= 9'000; ++ms) allowed += take_token(b3, 300.0, 30, 3, t0 + ms * 1'000'000).allowed;
  CHECK(allowed == 100 * 9 + 10);
  // ...and never less than a burst of one.
  RateBucket b4;
  CHECK(take_token(b4, 1.0, 2, 5, t0).limit == 1);
  CHECK(take_token(b4, 1.0, 2, 5, t0).allowed == false);

  // A fractional rate: one call every 4 s.
  RateBucket b5;
  CHECK(take_token(b5, 0.25, 1, 1, t0).allowed);
  CHECK_FALSE(take_token(b5, 0.25, 1, 1, t0 + 3 * s).allowed);
  CHECK(take_token(b5, 0.25, 1, 1, t0 + 4 * s).allowed);
}

TEST_CASE("take_token: threads racing on one bucket get exactly its burst") {
  RateBucket bucket;
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) allowed += take_token(bucket, 1.0, 1000, 1, 5'000'000'000).allowed;
    });
  for (auto& t : threads) t.join();
  CHECK(allowed.load() == 1000);
}

TEST_CASE("stats: per-key counters and shadow counts merge, and survive a round trip through JSON") {
  StatsView a, b;
  Err rl = Err::RateLimited;
  a.services["s"].keys["k"].counters.record(100, nullptr);
  a.services["s"].keys["k"].counters.record(300, &rl);
  a.services["s"].shadow[index(Err::Forbidden)] = 2;
  b.services["s"].keys["k"].counters.record(5000, nullptr);
  b.services["s"].keys["k"].shadow[index(Err::RateLimited)] = 7;
  b.services["s"].counters.record(5000, nullptr);
  a.merge(b);
  const auto& k = a.services["s"].keys["k"];
  CHECK(k.counters.requests == 3);
  CHECK(k.counters.errors[index(Err::RateLimited)] == 1);
  CHECK(k.shadow[index(Err::RateLimited)] == 7);
  auto back = stats_from_json(to_json(a, true));
  REQUIRE(back);
  const auto& k2 = back->services["s"].keys["k"];
  CHECK(k2.counters.requests == 3);
  CHECK(k2.counters.latency.quantile(1.0) == k.counters.latency.quantile(1.0));
  CHECK(k2.counters.latency_sum_us == 5400);
  CHECK(back->services["s"].shadow[index(Err::Forbidden)] == 2);
  auto prom = to_prometheus(a);
  CHECK(prom.find("svcctl_key_requests_total{service=\"s\",key=\"k\"} 3") != std::string::npos);
  CHECK(prom.find("svcctl_key_rate_limited_total{service=\"s\",key=\"k\"} 1") != std::string::npos);
  CHECK(prom.find("svcctl_shadow_rejections_total{service=\"s\",code=\"forbidden\"} 2") != std::string::npos);
  CHECK_FALSE(stats_from_json(nlohmann::json::array()));
  CHECK_FALSE(stats_from_json(nlohmann::json::parse(R"({"services":{"s":{"histogram":"x"}}})")));
}

TEST_CASE("prometheus: each family's samples together, in the order declared, label values escaped") {
  Prometheus p;
  p.family("a_total", "counter", "As.");
  p.family("b", "gauge", "Bs.");
  p.sample("b", {{"x", "q\"uo\\te\nd"}}, 2.5);
  p.sample("a_total", {}, 1);
  p.sample("a_total", Prometheus::Labels{{"s", "one"}}.with("code", "two"), 3);
  p.family("a_total", "gauge", "declared again: ignored");
  p.sample("c", {}, 4);  // never declared: still valid text
  CHECK(p.text() ==
        "# HELP a_total As.\n# TYPE a_total counter\na_total 1\na_total{s=\"one\",code=\"two\"} 3\n"
        "# HELP b Bs.\n# TYPE b gauge\nb{x=\"q\\\"uo\\\\te\\nd\"} 2.5\n"
        "# HELP c (undeclared)\n# TYPE c untyped\nc 4\n");
}
