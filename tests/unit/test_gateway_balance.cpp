// Choosing an address (lib/gateway balance.*): the balancers, and the choice among a
// service's addresses with the pending limit, ejections, panic and a retry's address.
#include <svcctl/gateway/balance.hpp>

#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace svcctl;
using namespace svcctl::gateway;

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


namespace {

// A service of n addresses of equal weight, the first `local` of them candidates.
ServiceRoute service(std::size_t n, std::size_t local) {
  ServiceRoute r;
  r.addrs.resize(n);
  for (std::size_t i = 0; i < n; ++i) r.addrs[i].name = "10.0.0." + std::to_string(i + 1) + ":80";
  r.candidates = local;
  for (std::size_t i = 0; i < local; ++i) r.cumulative.push_back(100 * static_cast<std::int64_t>(i + 1));
  for (auto& a : r.addrs) a.weight = 100;
  return r;
}

// A service's addresses as balance::choose asks about them.
struct Addrs {
  std::vector<std::int64_t> load, queued;  // the service's calls in flight; every call to the address
  std::vector<bool> out;
  std::size_t avoid = balance::k_none;
  explicit Addrs(std::size_t n) : load(n, 0), queued(n, 0), out(n, false) {}
  std::int64_t in_flight(std::size_t i) const { return load[i]; }
  std::int64_t pending(std::size_t i) const { return queued[i]; }
  bool ejected(std::size_t i) const { return out[i]; }
  bool avoided(std::size_t i) const { return i == avoid; }
};

std::set<std::size_t> chosen(const ServiceRoute& r, Addrs& a, const balance::Rules& rules, bool ejections,
                             bool* panic = nullptr) {
  std::mt19937_64 rng(3);
  std::vector<std::int64_t> swrr(r.candidates, 0);
  std::set<std::size_t> out;
  for (int i = 0; i < 400; ++i) {
    auto c = balance::choose(r, a, swrr, rules, {ejections, a.avoid != balance::k_none}, [&] { return rng(); });
    out.insert(c.index);
    if (panic) *panic = c.panic;
  }
  return out;
}

}  // namespace

TEST_CASE("choose: the candidates (the local datacenter) first, others only when none is usable") {
  auto r = service(4, 2);
  Addrs a(4);
  balance::Rules rules;
  CHECK(chosen(r, a, rules, false) == std::set<std::size_t>{0, 1});
  rules.balance = Balance::RoundRobin;
  CHECK(chosen(r, a, rules, false) == std::set<std::size_t>{0, 1});
  // Both candidates at the pending limit: the others.
  rules.pending_limit = 3;
  a.queued = {3, 3, 0, 0};
  CHECK(chosen(r, a, rules, false) == std::set<std::size_t>{2, 3});
  a.queued = {3, 3, 3, 3};
  CHECK(chosen(r, a, rules, false) == std::set<std::size_t>{balance::k_none});
}

TEST_CASE("choose: ejected addresses and the retry's are left out; below the panic share, ejections are not") {
  auto r = service(4, 4);
  Addrs a(4);
  balance::Rules rules;
  a.out = {true, false, false, false};
  bool panic = true;
  CHECK(chosen(r, a, rules, true, &panic) == std::set<std::size_t>{1, 2, 3});
  CHECK_FALSE(panic);
  // Ejections are only looked at while one is in force.
  CHECK(chosen(r, a, rules, false).count(0) == 1);
  a.avoid = 1;
  CHECK(chosen(r, a, rules, true) == std::set<std::size_t>{2, 3});
  a.avoid = balance::k_none;
  // Three of four ejected: 25 % healthy is under 50 %: panic, every address again.
  a.out = {true, true, true, false};
  CHECK(chosen(r, a, rules, true, &panic) == std::set<std::size_t>{0, 1, 2, 3});
  CHECK(panic);
  rules.panic_percent = 0;
  CHECK(chosen(r, a, rules, true) == std::set<std::size_t>{3});
}

namespace {

model::Address versioned(std::string name, std::string version, std::string dc = "a",
                         model::Status st = model::Status::Up) {
  model::Address a;
  a.service = "s";
  a.address = std::move(name);
  a.dc = std::move(dc);
  a.version = std::move(version);
  a.status = st;
  return a;
}

model::Service split_service(std::vector<model::VersionShare> split) {
  model::Service s;
  s.name = "s";
  s.split = std::move(split);
  return s;
}

// How many of n calls each version gets, at random points.
std::map<std::string, int> shares_of(const ServiceRoute& r, int n, std::string_view pin = {}) {
  std::mt19937_64 rng(11);
  std::map<std::string, int> out;
  for (int i = 0; i < n; ++i) {
    auto p = balance::pick_version(r, pin, rng());
    out[p.kind == balance::VersionPick::Kind::Version ? r.versions[p.index].version
        : p.kind == balance::VersionPick::Kind::All   ? "*all"
                                                      : "*none"] += 1;
  }
  return out;
}

}  // namespace

TEST_CASE("build_service: each version's addresses, local first, with their share and indexes") {
  auto r = build_service(split_service({{"v1", 90}, {"v2", 10}}),
                         {versioned("10.0.0.1:80", "v1", "b"), versioned("10.0.0.2:80", "v1"),
                          versioned("10.0.0.3:80", "v2"), versioned("10.0.0.4:80", ""),
                          versioned("10.0.0.5:80", "v2", "a", model::Status::Down)},
                         {}, "a");
  REQUIRE(r->versions.size() == 3);  // "", v1, v2
  CHECK(r->split);
  CHECK(r->versions[0].version.empty());
  CHECK(r->versions[0].share == 0);
  const VersionRoute& v1 = r->versions[1];
  CHECK(v1.share == 90);
  REQUIRE(v1.addrs.size() == 2);
  CHECK(v1.addrs[0].name == "10.0.0.2:80");  // the local one first, and the only candidate
  CHECK(v1.candidates == 1);
  for (std::size_t i = 0; i < v1.addrs.size(); ++i) CHECK(r->addrs[v1.indexes[i]].name == v1.addrs[i].name);
  CHECK(r->versions[2].addrs.size() == 1);  // the down one is not routable
  // No versions and no split: nothing to keep apart.
  auto plain = build_service(split_service({}), {versioned("10.0.0.1:80", "")}, {}, "a");
  CHECK(plain->versions.empty());
  CHECK(!plain->split);
}

TEST_CASE("pick_version: the split's shares; a version without addresses passes its share on; pins") {
  auto r = build_service(split_service({{"v1", 90}, {"v2", 10}}),
                         {versioned("10.0.0.1:80", "v1"), versioned("10.0.0.2:80", "v2"),
                          versioned("10.0.0.3:80", "v3")},
                         {}, "a");
  auto n = shares_of(*r, 20000);
  CHECK(n["v1"] > 17700);  // 18000, sd ~42
  CHECK(n["v1"] < 18300);
  CHECK(n["v1"] + n["v2"] == 20000);  // v3 is in no split: pinned calls only
  CHECK(shares_of(*r, 100, "v3")["v3"] == 100);
  CHECK(shares_of(*r, 10, "v9")["*none"] == 10);
  // The same point, the same version: stickiness is the caller's point.
  const auto p = balance::sticky_point("alice");
  CHECK(balance::pick_version(*r, {}, p).index == balance::pick_version(*r, {}, p).index);
  // FNV-1a's published values: every gateway and build places a caller alike.
  CHECK(balance::sticky_point("") == 0xcbf29ce484222325ULL);
  CHECK(balance::sticky_point("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(balance::sticky_point("foobar") == 0x85944171f73967e8ULL);
  // v2 has no address: its share goes to v1, counted as passed over.
  auto gone = build_service(split_service({{"v1", 90}, {"v2", 10}}), {versioned("10.0.0.1:80", "v1")}, {}, "a");
  std::mt19937_64 rng(5);
  int passed = 0;
  for (int i = 0; i < 1000; ++i) {
    auto pick = balance::pick_version(*gone, {}, rng());
    CHECK(gone->versions[pick.index].version == "v1");
    passed += pick.passed_over != balance::k_none;
    if (pick.passed_over != balance::k_none) CHECK(gone->versions[pick.passed_over].version == "v2");
  }
  CHECK(passed > 60);  // ~100
  CHECK(passed < 140);
  CHECK(shares_of(*gone, 10, "v2")["*none"] == 10);  // a pin is not passed on
  // No version of the split has an address: every address, by weight.
  auto none = build_service(split_service({{"v5", 100}}), {versioned("10.0.0.1:80", "v1")}, {}, "a");
  CHECK(shares_of(*none, 10)["*all"] == 10);
  // No split, no pin: every address.
  auto open = build_service(split_service({}), {versioned("10.0.0.1:80", "v1")}, {}, "a");
  CHECK(shares_of(*open, 10)["*all"] == 10);
}

TEST_CASE("choose within a version: its addresses only, given as the service's indexes") {
  auto r = build_service(split_service({{"v1", 50}, {"v2", 50}}),
                         {versioned("10.0.0.1:80", "v1"), versioned("10.0.0.2:80", "v2"),
                          versioned("10.0.0.3:80", "v1"), versioned("10.0.0.4:80", "v2")},
                         {}, "a");
  Addrs all(4);
  const VersionRoute& v2 = r->versions[r->find_version("v2")];
  balance::VersionAddrs<Addrs> in_v2{all, v2};
  std::vector<std::int64_t> swrr(v2.candidates, 0);
  std::mt19937_64 rng(2);
  std::set<std::string> names;
  for (int i = 0; i < 200; ++i) {
    auto c = balance::choose(v2, in_v2, swrr, {}, {false, false}, [&] { return rng(); });
    REQUIRE(c.index != balance::k_none);
    names.insert(r->addrs[v2.indexes[c.index]].name);
  }
  CHECK(names == std::set<std::string>{"10.0.0.2:80", "10.0.0.4:80"});
  // The version's addresses at their limit: none, though v1's are free.
  all.queued[v2.indexes[0]] = all.queued[v2.indexes[1]] = 5;
  balance::Rules rules;
  rules.pending_limit = 5;
  CHECK(balance::choose(v2, in_v2, swrr, rules, {false, false}, [&] { return rng(); }).index == balance::k_none);
}

TEST_CASE("choose: below --dc-min-percent, the local datacenter takes the share it holds over it") {
  auto r = service(10, 2);  // 2 of 10 local: 20 %
  Addrs a(10);
  balance::Rules rules;
  std::mt19937_64 rng(9);
  auto local_share = [&](unsigned percent, bool ejections) {
    rules.dc_min_percent = percent;
    std::vector<std::int64_t> swrr(r.candidates, 0);
    int local = 0, spilled = 0;
    for (int i = 0; i < 20000; ++i) {
      auto c = balance::choose(r, a, swrr, rules, {ejections, false}, [&] { return rng(); });
      local += c.index < 2;
      spilled += c.spilled;
      CHECK(c.spilled == (c.index >= 2));
    }
    CHECK(local + spilled == 20000);
    return local / 20000.0;
  };
  CHECK(local_share(0, false) == 1.0);   // today's: all local
  CHECK(local_share(20, false) == 1.0);  // it holds the threshold
  const double half = local_share(40, false);
  CHECK(half > 0.48);  // 20 / 40
  CHECK(half < 0.52);
  const double fifth = local_share(100, true);  // the gathering path too
  CHECK(fifth > 0.185);
  CHECK(fifth < 0.215);
  // Spilled, but every other address is at its limit: the local ones after all.
  rules.pending_limit = 1;
  for (std::size_t i = 2; i < 10; ++i) a.queued[i] = 1;
  CHECK(local_share(100, false) == 1.0);
}
