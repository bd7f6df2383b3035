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
}  // namespace

TEST_CASE("build_service: only up addresses with a weight, the local datacenter first") {
  model::Service svc{"s", model::Status::Up, "", "", {}, {}};
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
