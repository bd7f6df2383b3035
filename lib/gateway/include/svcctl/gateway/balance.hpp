// Choosing a provider address for a call, pure given a random source: the version under a
// split or a pin, the balancers (smooth weighted round robin, weighted power of two
// choices) and the choice among a service's (or a version's) addresses with ejections, a
// retry's address to avoid, the pending limit and panic. What it asks of the addresses (their load, their health) the caller's accessor
// answers, so the data plane's own state and a unit test's both serve.
#pragma once

#include <svcctl/gateway/routes.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
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
  // The local datacenter takes every call while it holds at least this share of the
  // addresses; below it, the share it holds over this one (Envoy's zone-aware routing: 2 of
  // 10 addresses against 40 % take half the calls), the rest going to the others. 0: all.
  unsigned dc_min_percent = 0;
};

// What holds at the time of the choice.
struct Situation {
  bool ejections = false;  // some ejection is in force (health is looked at only then)
  bool avoiding = false;   // a retry leaves the address it failed on out
};

struct Choice {
  std::size_t index = k_none;  // into route.addrs; k_none: every address is unusable
  bool panic = false;          // chosen with ejections ignored
  bool spilled = false;        // sent past the local datacenter by rules.dc_min_percent
};

// Whether a call leaves the local datacenter (`r`'s candidates, when it has others) under
// rules.dc_min_percent: with probability 1 - (local share / threshold).
template <typename Random>
bool spills(const AddrSet& r, const Rules& rules, Random&& random) {
  if (rules.dc_min_percent == 0 || r.candidates == 0 || r.candidates >= r.addrs.size()) return false;
  const std::uint64_t local = r.candidates * 100;
  const std::uint64_t threshold = r.addrs.size() * std::uint64_t{rules.dc_min_percent};
  return local < threshold && random() % threshold >= local;
}

// The address for a call among `r`'s (a service's, or one version's). `addrs` answers, for index i into r.addrs:
//   in_flight(i): this service's calls in flight to it (what P2C compares),
//   pending(i):   every call in flight to the address (what the limit counts),
//   ejected(i):   out of rotation now (asked only with `now.ejections`),
//   avoided(i):   the address a retry leaves out (asked only with `now.avoiding`).
// `swrr`: the round-robin state of r's candidates. The common case (no ejection in force,
// nothing avoided, no spill) balances the candidates and checks the limit of the one
// chosen only; otherwise the usable ones of the candidates (else of the other addresses;
// for a spilled call, the other way round) are gathered first, and chosen among by
// weighted P2C.
template <typename Addrs, typename Random>
Choice choose(const AddrSet& r, Addrs& addrs, std::span<std::int64_t> swrr, const Rules& rules, Situation now,
              Random&& random) {
  const bool ejections = now.ejections;
  const bool avoiding = now.avoiding;
  const bool spill = spills(r, rules, random);
  if (!avoiding && !ejections && !spill && r.candidates > 0) {
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
  auto gather = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to && n < pick.size(); ++i)
      if (usable(i)) pick[n++] = i;
  };
  // The candidates, else every other usable address (not only the first); a spilled call
  // the other way round.
  const std::size_t size = r.addrs.size();
  if (spill) gather(r.candidates, size);
  else gather(0, r.candidates);
  const bool spilled = spill && n > 0;
  if (n == 0) {
    if (spill) gather(0, r.candidates);
    else gather(r.candidates, size);
  }
  if (n == 0) return {};
  std::array<std::int64_t, 64> cumulative{};
  std::int64_t sum = 0;
  for (std::size_t k = 0; k < n; ++k) cumulative[k] = sum += r.addrs[pick[k]].weight;
  const std::size_t k = pick_p2c_by(
      n, std::span<const std::int64_t>(cumulative.data(), n), [&](std::size_t j) { return r.addrs[pick[j]].weight; },
      [&](std::size_t j) { return addrs.in_flight(pick[j]); }, random);
  return {pick[k], panic, spilled};
}

// One version's addresses as choose() asks about them, given an accessor of the service's
// (index i of the version's is v.indexes[i] of the service's).
template <typename Addrs>
struct VersionAddrs {
  Addrs& all;
  const VersionRoute& v;
  auto in_flight(std::size_t i) const { return all.in_flight(v.indexes[i]); }
  auto pending(std::size_t i) const { return all.pending(v.indexes[i]); }
  bool ejected(std::size_t i) const { return all.ejected(v.indexes[i]); }
  bool avoided(std::size_t i) const { return all.avoided(v.indexes[i]); }
};

// Where a call goes among a service's versions.
struct VersionPick {
  enum class Kind {
    All,      // no split and no pin (or no version of the split has an address): every address
    Version,  // `index` into route.versions
    None,     // pinned to a version with no address
  };
  Kind kind = Kind::All;
  std::size_t index = k_none;
  std::size_t passed_over = k_none;  // the version whose share it was, when it had no address
};

// A sticky value's place on the split: the same on every gateway and build (FNV-1a).
inline std::uint64_t sticky_point(std::string_view value) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : value) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h;
}

// The version of a call to `r`. `pin`: the version the call must go to ("": none).
// Otherwise, under a split, the version whose share holds `point` (taken modulo the sum of
// the shares; random, or a sticky_point); when that version has no address its share goes
// to the others with addresses, in proportion to theirs, by the same point.
inline VersionPick pick_version(const ServiceRoute& r, std::string_view pin, std::uint64_t point) {
  if (!pin.empty()) {
    const std::size_t i = r.find_version(pin);
    if (i == r.versions.size() || r.versions[i].addrs.empty()) return {VersionPick::Kind::None, k_none, k_none};
    return {VersionPick::Kind::Version, i, k_none};
  }
  if (!r.split) return {};
  // The version whose interval of [0, total) holds `point % total`, among those `in`.
  auto find = [&](auto&& in) -> std::size_t {
    std::int64_t total = 0;
    for (std::size_t i = 0; i < r.versions.size(); ++i)
      if (in(i)) total += r.versions[i].share;
    if (total == 0) return k_none;
    auto at = static_cast<std::int64_t>(point % static_cast<std::uint64_t>(total));
    for (std::size_t i = 0; i < r.versions.size(); ++i) {
      if (!in(i)) continue;
      if (at < r.versions[i].share) return i;
      at -= r.versions[i].share;
    }
    return k_none;
  };
  const std::size_t first = find([](std::size_t) { return true; });
  if (first != k_none && !r.versions[first].addrs.empty()) return {VersionPick::Kind::Version, first, k_none};
  const std::size_t other = find([&](std::size_t i) { return !r.versions[i].addrs.empty(); });
  if (other == k_none) return {VersionPick::Kind::All, k_none, first};
  return {VersionPick::Kind::Version, other, first};
}

}  // namespace balance

}  // namespace svcctl::gateway
