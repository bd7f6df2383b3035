// Passive outlier detection (DESIGN §4): an address that fails several calls in a row is
// taken out of rotation for a while, longer each time, never more than a share of its
// service's addresses at once. Pure given the time: the caller passes now, and each
// address's Health is shared by every worker (relaxed atomics: a count off by one under a
// race only moves an ejection by a call).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace svcctl::gateway {

struct Health {
  std::atomic<int> failures{0};  // in a row
  std::atomic<int> times_ejected{0};
  std::atomic<std::int64_t> ejected_until{0};  // steady clock, ns
  bool ejected(std::int64_t now_ns) const { return ejected_until.load(std::memory_order_relaxed) > now_ns; }
};

namespace outlier {

struct Rules {
  unsigned eject_after = 5;  // failures in a row; 0: never eject
  std::chrono::milliseconds eject_base{30'000};  // the first ejection; the n-th is n times as long
  std::chrono::milliseconds eject_max{300'000};
  unsigned max_ejected_percent = 50;
};

struct Ejection {
  std::int64_t until_ns = 0;
  std::chrono::milliseconds length{0};
  int failures = 0;  // in a row, that caused it
};

// A call to the address failed. When that ejects it (enough failures in a row, it is not
// ejected already, and `count_ejected()` — how many of its service's `addresses` are out
// now — leaves room under the share), the ejection.
template <typename CountEjected>
std::optional<Ejection> failed(Health& h, const Rules& rules, std::int64_t now_ns, std::size_t addresses,
                               CountEjected&& count_ejected) {
  const int failures = h.failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (rules.eject_after == 0 || failures < static_cast<int>(rules.eject_after)) return std::nullopt;
  std::int64_t until = h.ejected_until.load(std::memory_order_relaxed);
  if (until > now_ns) return std::nullopt;  // another worker did it
  const std::size_t ejected = count_ejected();
  if ((ejected + 1) * 100 > rules.max_ejected_percent * addresses) return std::nullopt;
  const int times = h.times_ejected.load(std::memory_order_relaxed) + 1;
  const auto length = std::min<std::chrono::milliseconds>(rules.eject_base * times, rules.eject_max);
  const std::int64_t end = now_ns + std::chrono::nanoseconds(length).count();
  if (!h.ejected_until.compare_exchange_strong(until, end, std::memory_order_relaxed)) return std::nullopt;
  h.times_ejected.store(times, std::memory_order_relaxed);
  h.failures.store(0, std::memory_order_relaxed);
  return Ejection{end, length, failures};
}

// A call to the address succeeded: the failures in a row end, and once it has been
// healthy for the longest ejection since its last one, the next ejection starts short again.
inline void succeeded(Health& h, const Rules& rules, std::int64_t now_ns) {
  if (h.failures.load(std::memory_order_relaxed) != 0) h.failures.store(0, std::memory_order_relaxed);
  if (h.times_ejected.load(std::memory_order_relaxed) != 0 &&
      now_ns > h.ejected_until.load(std::memory_order_relaxed) + std::chrono::nanoseconds(rules.eject_max).count())
    h.times_ejected.store(0, std::memory_order_relaxed);
}

}  // namespace outlier

}  // namespace svcctl::gateway
