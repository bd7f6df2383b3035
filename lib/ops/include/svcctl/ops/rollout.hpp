// The pure part of `svcctl rollout`: the split of each step, a version's calls in the
// window between two rounds of every gateway's figures, and the verdict on the new
// version against the old. No I/O, so unit-tested; cmd/rollout.cpp does the writes, the
// waiting and the fetching.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/gateway/stats.hpp>
#include <svcctl/model/model.hpp>
#include <svcctl/ops/stats_report.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::ops::rollout {

// "5,25,50,100": increasing whole percentages from 1 to 100 (Usage otherwise).
Expected<std::vector<int>> parse_steps(std::string_view text);

// The versions a rollout to `to` moves calls from: those of the split it starts from
// (with their shares), else every version with a routable address, sharing alike.
std::vector<model::VersionShare> starting_shares(const model::Service& service,
                                                 const std::vector<model::Address>& addresses, const std::string& to);

// The split of a step: `to` at `percent`, the rest shared among `from` in proportion to
// their shares (largest remainders, so that the shares add up to 100).
std::vector<model::VersionShare> step_split(const std::vector<model::VersionShare>& from, const std::string& to,
                                            int percent);

// Some versions' calls between two rounds: per gateway (a gateway that restarted or
// appeared counts from 0), summed.
struct Window {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;  // every code: a version's counters only hold calls that reached it
  gateway::Histogram latency;
};
Window window(const stats::Round& before, const stats::Round& after, const std::string& service,
              const std::vector<std::string>& versions);

struct Limits {
  double max_error_rate = 1.0;  // percent of the new version's calls
  double max_p99_ratio = 1.5;   // the new version's p99 over the old one's
  std::uint64_t min_requests = 200;
};

struct Verdict {
  enum class Kind { Pass, TooFew, ErrorRate, Latency };
  Kind kind = Kind::Pass;
  double error_rate = 0;                 // percent
  std::uint64_t new_p99_us = 0;
  std::uint64_t old_p99_us = 0;
  std::optional<double> p99_ratio;       // when the old version had min_requests calls too
  // What broke, or "ok", with the figures: "error rate 20.1% > 1%".
  std::string reason;
};
// The new version's window against the old one's. Too few calls of the new version
// (under min_requests) cannot be judged; the latency is judged only when the old version
// had min_requests calls in the same window (not at 100 %).
Verdict judge(const Window& fresh, const Window& old, const Limits& limits);

std::string to_string(Verdict::Kind kind);  // "pass", "too_few", "error_rate", "latency"

}  // namespace svcctl::ops::rollout
