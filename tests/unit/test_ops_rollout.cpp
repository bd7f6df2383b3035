// The pure part of `svcctl rollout` (lib/ops rollout.*): steps, the split of each, a
// version's window between two rounds of figures, and the verdict.
#include <svcctl/ops/rollout.hpp>

#include <doctest/doctest.h>

using namespace svcctl;
using namespace svcctl::ops;
using model::VersionShare;

namespace {

// A round of one gateway whose service "s" has these versions' counters: (requests,
// errors, latency of each call in µs).
stats::Round round_of(const std::string& identity,
                      const std::vector<std::tuple<std::string, std::uint64_t, std::uint64_t, std::uint64_t>>& v) {
  stats::Round r;
  gateway::StatsView view;
  for (const auto& [version, requests, errors, us] : v) {
    auto& c = view.services["s"].versions[version].counters;
    for (std::uint64_t i = 0; i < requests; ++i) {
      const gateway::Err e = gateway::Err::ProviderError;
      c.record(us, i < errors ? &e : nullptr);
    }
  }
  r.answers.push_back({identity, std::move(view)});
  return r;
}

}  // namespace

TEST_CASE("parse_steps: increasing percentages from 1 to 100") {
  CHECK(*rollout::parse_steps("5,25,50,100") == std::vector<int>{5, 25, 50, 100});
  CHECK(*rollout::parse_steps("100") == std::vector<int>{100});
  for (const char* bad : {"", "0,50", "50,25", "5,,10", "5,101", "a", "5,5", "-5"})
    CHECK_MESSAGE(!rollout::parse_steps(bad), bad);
}

TEST_CASE("step_split: the new version's share, the rest in proportion, adding up to 100") {
  CHECK(rollout::step_split({{"v1", 100}}, "v2", 5) == std::vector<VersionShare>{{"v1", 95}, {"v2", 5}});
  CHECK(rollout::step_split({{"v1", 100}}, "v2", 100) == std::vector<VersionShare>{{"v2", 100}});
  auto three = rollout::step_split({{"a", 1}, {"b", 1}, {"c", 1}}, "v2", 25);  // 75 over three
  CHECK(three == std::vector<VersionShare>{{"a", 25}, {"b", 25}, {"c", 25}, {"v2", 25}});
  auto uneven = rollout::step_split({{"a", 2}, {"b", 1}}, "z", 50);  // 33.3 and 16.7
  CHECK(uneven == std::vector<VersionShare>{{"a", 33}, {"b", 17}, {"z", 50}});
}

TEST_CASE("starting_shares: the split's other versions, else every routable version alike") {
  model::Service s;
  s.split = {{"v1", 80}, {"v2", 20}};
  CHECK(rollout::starting_shares(s, {}, "v2") == std::vector<VersionShare>{{"v1", 80}});
  model::Address a1, a2, a3;
  a1.version = "v1";
  a2.version = "v3";
  a3.version = "v4";
  a3.status = model::Status::Down;
  a1.address = a2.address = a3.address = "10.0.0.1:80";
  CHECK(rollout::starting_shares(model::Service{}, {a1, a2, a3}, "v2") ==
        std::vector<VersionShare>{{"v1", 1}, {"v3", 1}});
}

TEST_CASE("window: per gateway between the rounds; a restarted gateway counts from 0") {
  auto before = round_of("gw-a", {{"v1", 100, 1, 500}, {"v2", 10, 0, 500}});
  auto after = round_of("gw-a", {{"v1", 300, 3, 500}, {"v2", 60, 10, 500}});
  auto other = round_of("gw-b", {{"v2", 5, 5, 100}});  // appeared between the rounds
  after.answers.push_back(other.answers[0]);
  auto w = rollout::window(before, after, "s", {"v2"});
  CHECK(w.requests == 55);
  CHECK(w.errors == 15);
  CHECK(w.latency.count() == 55);
  auto old = rollout::window(before, after, "s", {"v1"});
  CHECK(old.requests == 200);
  CHECK(old.errors == 2);
  auto restarted = round_of("gw-a", {{"v2", 4, 0, 500}});  // counters fell: from 0
  CHECK(rollout::window(before, restarted, "s", {"v2"}).requests == 4);
}

TEST_CASE("judge: too few calls, the error rate, then the p99 against the old version's") {
  auto w = [](std::uint64_t requests, std::uint64_t errors, std::uint64_t us) {
    rollout::Window x;
    x.requests = requests;
    x.errors = errors;
    for (std::uint64_t i = 0; i < requests; ++i) x.latency.record(us);
    return x;
  };
  const rollout::Limits limits{1.0, 1.5, 200};
  CHECK(rollout::judge(w(199, 0, 500), w(1000, 0, 500), limits).kind == rollout::Verdict::Kind::TooFew);
  auto bad = rollout::judge(w(1000, 200, 500), w(1000, 0, 500), limits);
  CHECK(bad.kind == rollout::Verdict::Kind::ErrorRate);
  CHECK(bad.error_rate == doctest::Approx(20.0));
  CHECK(bad.reason == "error rate 20.0% > 1%");
  CHECK(rollout::judge(w(1000, 10, 500), w(1000, 0, 500), limits).kind == rollout::Verdict::Kind::Pass);
  auto slow = rollout::judge(w(1000, 0, 2000), w(1000, 0, 500), limits);
  CHECK(slow.kind == rollout::Verdict::Kind::Latency);
  REQUIRE(slow.p99_ratio);
  CHECK(*slow.p99_ratio > 3.5);
  // At 100 % the old version has no calls: the latency is not judged.
  auto last = rollout::judge(w(1000, 0, 2000), w(0, 0, 0), limits);
  CHECK(last.kind == rollout::Verdict::Kind::Pass);
  CHECK(!last.p99_ratio);
}
