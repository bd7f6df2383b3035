// Choosing a provider address for a call, pure given a random source: the balancers
// (smooth weighted round robin, weighted power of two choices) and the choice among a
// service's addresses with ejections, a retry's address to avoid, the pending limit and
// panic. What it asks of the addresses (their load, their health) the caller's accessor
// answers, so the data plane's own state and a unit test's both serve.
#pragma once

#include <svcctl/gateway/routes.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace svcctl::gateway {

enum class Balance { P2C, RoundRobin };

// Smooth weighted round robin (nginx's): every choice adds each candidate's weight to its
// current value, picks the highest and takes the total off it. `current` holds one value
// per candidate and is the caller's (per worker) state.
std::size_t pick_swrr(std::span<const AddrRoute> candidates, std::span<std::int64_t> current);

// Power of two choices: two draws at random by weight, then the one with fewer requests in
// flight per unit of weight (pick_p2c_by: over n candidates given by accessors); the first
// draw wins ties, so with nothing in flight the choice follows the weights. `random`
// returns uniform 64-bit values.
//
// `distinct`: the second draw is among the other candidates, so two are always compared
// (with two addresses, draws that may coincide compare nothing half the time, and the
// queues drift apart). Only for equal weights: with unequal ones and a few calls in flight,
// always comparing lets integer in-flight counts override the weights (1:3 served 1:1).
template <typename Weight, typename InFlight, typename Random>
std::size_t pick_p2c_by(std::size_t n, std::span<const std::int64_t> cumulative, Weight&& weight,
                        InFlight&& in_flight, Random&& random, bool distinct = false) {
  if (n <= 1) return 0;
  // The candidate whose running-sum interval holds r.
  auto find = [&](std::int64_t r) -> std::size_t {
    std::size_t lo = 0, hi = n - 1;
    while (lo < hi) {
      std::size_t mid = (lo + hi) / 2;
      if (cumulative[mid] > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const std::int64_t total = cumulative[n - 1];
  const std::size_t a = find(static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(total)));
  const std::int64_t wa = weight(a);
  std::size_t b;
  if (distinct && total > wa) {
    // A number over the other weights, shifted past a's interval.
    auto r = static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(total - wa));
    if (r >= cumulative[a] - wa) r += wa;
    b = find(r);
  } else {
    b = find(static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(total)));
  }
  if (a == b) return a;
  // fa / wa <= fb / wb, without division (weights are at most 10^6). Not (f + 1) / w:
  // with nothing in flight that would always favour the heavier address, and the choice
  // would no longer follow the weights.
  std::int64_t la = static_cast<std::int64_t>(in_flight(a)) * weight(b);
  std::int64_t lb = static_cast<std::int64_t>(in_flight(b)) * wa;
  return la <= lb ? a : b;
}

// The same over a service's candidates (their weights, `cumulative` their running sums).
template <typename InFlight, typename Random>
std::size_t pick_p2c(std::span<const AddrRoute> candidates, std::span<const std::int64_t> cumulative,
                     InFlight&& in_flight, Random&& random, bool distinct = false) {
  return pick_p2c_by(
      candidates.size(), cumulative, [&](std::size_t i) { return candidates[i].weight; },
      std::forward<InFlight>(in_flight), std::forward<Random>(random), distinct);
}

namespace balance {

constexpr std::size_t k_none = static_cast<std::size_t>(-1);

struct Rules {
  Balance balance = Balance::P2C;
  unsigned panic_percent = 50;       // fewer healthy than this share: ejections are ignored
  std::int64_t pending_limit = 1024;  // calls in flight to one address (this worker's share)
};

// What holds at the time of the choice.
struct Situation {
  bool ejections = false;  // some ejection is in force (health is looked at only then)
  bool avoiding = false;   // a retry leaves the address it failed on out
};

struct Choice {
  std::size_t index = k_none;  // into route.addrs; k_none: every address is unusable
  bool panic = false;          // chosen with ejections ignored
};

// The address for a call among `r`'s. `addrs` answers, for index i into r.addrs:
//   in_flight(i): this service's calls in flight to it (what P2C compares),
//   pending(i):   every call in flight to the address (what the limit counts),
//   ejected(i):   out of rotation now (asked only with `now.ejections`),
//   avoided(i):   the address a retry leaves out (asked only with `now.avoiding`).
// `swrr`: the round-robin state of r's candidates. The common case (no ejection in force,
// nothing avoided) balances the candidates and checks the limit of the one chosen only;
// otherwise the usable ones of the candidates (else of the other addresses) are gathered
// first, and chosen among by weighted P2C.
template <typename Addrs, typename Random>
Choice choose(const ServiceRoute& r, Addrs& addrs, std::span<std::int64_t> swrr, const Rules& rules, Situation now,
              Random&& random) {
  const bool ejections = now.ejections;
  const bool avoiding = now.avoiding;
  if (!avoiding && !ejections && r.candidates > 0) {
    std::size_t i = 0;
    if (r.candidates > 1) {
      if (rules.balance == Balance::RoundRobin) i = pick_swrr(r.candidate_addrs(), swrr);
      else
        i = pick_p2c(r.candidate_addrs(), r.cumulative, [&](std::size_t k) { return addrs.in_flight(k); }, random,
                     r.equal_weights);
    }
    if (addrs.pending(i) < rules.pending_limit) return {i, false};
  }
  bool panic = false;
  if (ejections && !r.addrs.empty()) {
    std::size_t healthy = 0;
    for (std::size_t i = 0; i < r.addrs.size(); ++i) healthy += !addrs.ejected(i);
    panic = healthy * 100 < rules.panic_percent * r.addrs.size();
  }
  auto usable = [&](std::size_t i) {
    return !(avoiding && addrs.avoided(i)) && addrs.pending(i) < rules.pending_limit &&
           (panic || !ejections || !addrs.ejected(i));
  };
  std::array<std::size_t, 64> pick{};  // the first 64 usable ones: enough to spread load
  std::size_t n = 0;
  for (std::size_t i = 0; i < r.candidates && n < pick.size(); ++i)
    if (usable(i)) pick[n++] = i;
  if (n == 0)  // none of the candidates: every other usable address, not only the first
    for (std::size_t i = r.candidates; i < r.addrs.size() && n < pick.size(); ++i)
      if (usable(i)) pick[n++] = i;
  if (n == 0) return {};
  std::array<std::int64_t, 64> cumulative{};
  std::int64_t sum = 0;
  for (std::size_t k = 0; k < n; ++k) cumulative[k] = sum += r.addrs[pick[k]].weight;
  const std::size_t k = pick_p2c_by(
      n, std::span<const std::int64_t>(cumulative.data(), n), [&](std::size_t j) { return r.addrs[pick[j]].weight; },
      [&](std::size_t j) { return addrs.in_flight(pick[j]); }, random);
  return {pick[k], panic};
}

}  // namespace balance

}  // namespace svcctl::gateway
