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
