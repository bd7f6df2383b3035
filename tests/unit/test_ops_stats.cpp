// `svcctl stats`: gateways' figures read back from their JSON and merged exactly, and the
// rows, rates and forms built from the merge (lib/ops stats_report.*).
#include <svcctl/ops/stats_report.hpp>

#include <svcctl/gateway/stats.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace svcctl;
using namespace svcctl::gateway;
using namespace svcctl::ops::stats;

namespace {

const Err k_rate_limited = Err::RateLimited;
const Err k_timeout = Err::Timeout;

// A gateway's view: `n` calls of `us` each to service `svc`, interface `iface`, address
// `addr`, key `key`, the last `errors` of them failing with `err`.
void calls(StatsView& v, const std::string& svc, const std::string& iface, const std::string& addr,
           const std::string& key, int n, std::uint64_t us, int errors = 0, const Err* err = nullptr) {
  auto& s = v.services[svc];
  for (int i = 0; i < n; ++i) {
    const Err* e = i >= n - errors ? err : nullptr;
    s.counters.record(us, e);
    s.interfaces[iface].record(us, e);
    if (!addr.empty()) s.addresses[addr].counters.record(us, e);
    if (!key.empty()) s.keys[key].counters.record(us, e);
  }
}

Round round_of(std::vector<Answer> answers, std::chrono::steady_clock::time_point at) {
  Round r;
  for (const auto& a : answers) {
    Reached g;
    g.gateway.id = a.identity.substr(0, a.identity.find('\n'));
    r.gateways.push_back(g);
  }
  r.answers = std::move(answers);
  r.at = at;
  merge_answers(r);
  return r;
}

std::uint64_t edge(std::uint64_t us) { return Histogram::upper_edge(Histogram::bucket_of(us)); }

}  // namespace

TEST_CASE("stats: a view survives to_json(…, true) and stats_from_json unchanged") {
  StatsView v;
  calls(v, "s", "echo", "10.0.0.1:80", "k", 40, 120, 3, &k_timeout);
  calls(v, "s", "add", "10.0.0.2:80", "", 7, 90'000);
  calls(v, "t", "x", "10.0.0.3:80", "k", 2, 3, 2, &k_rate_limited);
  v.services["s"].in_flight = 4;
  v.services["s"].retries = 5;
  v.services["s"].retries_denied = 1;
  v.services["s"].panic = 2;
  v.services["s"].shadow[index(Err::Forbidden)] = 6;
  v.services["s"].keys["k"].shadow[index(Err::RateLimited)] = 9;
  v.services["s"].addresses["10.0.0.1:80"].in_flight = 3;
  v.services["s"].addresses["10.0.0.1:80"].ejections = 2;
  v.services["s"].addresses["10.0.0.1:80"].ejected_ms = 1500;
  v.unrouted.record(10, &k_rate_limited);
  v.connections = 12;
  v.accepted = 34;
  v.upstream_connects = 56;

  const auto j = to_json(v, true);
  auto back = stats_from_json(j);
  REQUIRE(back);
  CHECK(to_json(*back, true) == j);
  const auto& c = back->services["s"].interfaces["echo"];
  CHECK(c.requests == 40);
  CHECK(c.errors[index(Err::Timeout)] == 3);
  CHECK(c.latency_sum_us == 40 * 120);
  for (std::size_t b = 0; b < Histogram::k_buckets; ++b)
    CHECK(c.latency.at(b) == v.services["s"].interfaces["echo"].latency.at(b));
  CHECK(back->services["s"].addresses["10.0.0.1:80"].ejected_ms == 1500);
  // Without histograms the counts come back, the latencies do not.
  auto bare = stats_from_json(to_json(v, false));
  REQUIRE(bare);
  CHECK(bare->services["s"].counters.requests == 47);
  CHECK(bare->services["s"].counters.latency.count() == 0);
}

TEST_CASE("stats: two gateways merge into sums, and percentiles come from the summed histograms") {
  // Gateway a: 90 fast calls; gateway b: 10 slow ones, 4 of them timing out.
  StatsView a, b;
  calls(a, "s", "echo", "10.0.0.1:80", "", 90, 200);
  calls(b, "s", "echo", "10.0.0.1:80", "", 10, 50'000, 4, &k_timeout);
  auto ra = stats_from_json(to_json(a, true));
  auto rb = stats_from_json(to_json(b, true));
  REQUIRE(ra);
  REQUIRE(rb);
  StatsView merged;
  merged.merge(*ra);
  merged.merge(*rb);

  const auto& c = merged.services["s"].counters;
  CHECK(c.requests == 100);
  CHECK(c.errors[index(Err::Timeout)] == 4);
  CHECK(merged.services["s"].addresses["10.0.0.1:80"].counters.requests == 100);
  CHECK(c.latency.quantile(0.50) == edge(200));
  CHECK(c.latency.quantile(0.90) == edge(200));  // the 90th call is still a fast one
  CHECK(c.latency.quantile(0.99) == edge(50'000));
  // Not the mean of the two gateways' p99 (which would be about 25 ms).
  const auto j = to_json(merged);
  const auto& lat = j["services"]["s"]["latency_ms"];
  CHECK(lat["p99"].get<double>() == doctest::Approx(static_cast<double>(edge(50'000)) / 1000.0));
  CHECK(lat["p50"].get<double>() == doctest::Approx(static_cast<double>(edge(200)) / 1000.0));
  CHECK(j["services"]["s"]["errors"] == nlohmann::json{{"timeout", 4}});

  // The same through the rows `stats` prints.
  const auto t0 = std::chrono::steady_clock::now();
  auto round = round_of({{"a\n{}", *ra}, {"b\n{}", *rb}}, t0);
  auto rows = build_rows(round, nullptr, {By::Service, "", 0});
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].requests == 100);
  CHECK(rows[0].errors == 4);
  CHECK(rows[0].p99_us == edge(50'000));
  CHECK(rows[0].p50_us == edge(200));
  CHECK_FALSE(rows[0].per_second);
}

TEST_CASE("stats rows: by each dimension, busiest first, a service filter and --top") {
  StatsView a, b;
  calls(a, "small", "ping", "10.0.0.9:80", "", 3, 100);
  calls(a, "big", "get", "10.0.0.1:80", "k1", 50, 100, 2, &k_rate_limited);
  calls(b, "big", "put", "10.0.0.2:80", "k2", 60, 100);
  calls(b, "big", "get", "10.0.0.1:80", "k1", 20, 100);
  a.services["big"].in_flight = 2;
  b.services["big"].in_flight = 1;
  a.services["big"].addresses["10.0.0.1:80"].ejected_ms = 4000;
  a.services["big"].addresses["10.0.0.1:80"].ejections = 1;
  b.services["big"].keys["k2"].shadow[index(Err::Forbidden)] = 5;
  a.services["small"].interfaces["idle"];  // known to a gateway, never called: no row
  const auto round = round_of({{"a\n{}", a}, {"b\n{}", b}}, std::chrono::steady_clock::now());

  auto rows = build_rows(round, nullptr, {By::Service, "", 0});
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].service == "big");
  CHECK(rows[0].requests == 130);
  CHECK(rows[0].rate_limited == 2);
  CHECK(rows[0].in_flight == 3);
  CHECK(rows[1].service == "small");

  rows = build_rows(round, nullptr, {By::Interface, "", 0});
  REQUIRE(rows.size() == 3);
  CHECK((rows[0].name == "get" && rows[0].requests == 70));
  CHECK((rows[1].name == "put" && rows[1].requests == 60));
  CHECK((rows[2].service == "small" && rows[2].name == "ping"));

  rows = build_rows(round, nullptr, {By::Interface, "big", 1});
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].name == "get");

  rows = build_rows(round, nullptr, {By::Address, "big", 0});
  REQUIRE(rows.size() == 2);
  CHECK((rows[0].name == "10.0.0.1:80" && rows[0].requests == 70));
  CHECK(rows[0].ejected_by == 1);
  CHECK(rows[0].ejected_for_ms == 4000);
  CHECK(rows[0].ejections == 1);
  CHECK(rows[1].ejected_by == 0);

  rows = build_rows(round, nullptr, {By::Key, "", 0});
  REQUIRE(rows.size() == 2);
  CHECK((rows[0].name == "k1" && rows[0].requests == 70 && rows[0].rate_limited == 2));
  CHECK((rows[1].name == "k2" && rows[1].shadow == 5));

  CHECK(build_rows(round, nullptr, {By::Service, "nosuch", 0}).empty());
  CHECK(only_service(round.merged, "small").services.size() == 1);
  CHECK(only_service(round.merged, "").services.size() == 2);
}

TEST_CASE("stats rows: requests per second count only gateways that answered both rounds as the same process") {
  const auto t0 = std::chrono::steady_clock::now();
  const auto t1 = t0 + std::chrono::seconds(2);
  StatsView a0, a1, b0, b1, c1;
  calls(a0, "s", "i", "", "", 100, 10);
  calls(a1, "s", "i", "", "", 120, 10);  // +20 in 2 s
  calls(b0, "s", "i", "", "", 500, 10);
  calls(b1, "s", "i", "", "", 5, 10);    // restarted: another process under the same id
  calls(c1, "s", "i", "", "", 900, 10);  // new: its whole history is not this second's traffic
  calls(c1, "t", "i", "", "", 4, 10);
  auto before = round_of({{"a\n{\"pid\":1}", a0}, {"b\n{\"pid\":2}", b0}}, t0);
  auto now = round_of({{"a\n{\"pid\":1}", a1}, {"b\n{\"pid\":3}", b1}, {"c\n{\"pid\":4}", c1}}, t1);

  auto rows = build_rows(now, &before, {By::Service, "", 0});
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].service == "s");
  REQUIRE(rows[0].per_second);
  CHECK(*rows[0].per_second == doctest::Approx(10.0));
  CHECK(rows[0].requests == 120 + 5 + 900);
  REQUIRE(rows[1].per_second);
  CHECK(*rows[1].per_second == 0.0);

  // With rates, the order is by rate: a quiet service with a big history goes below.
  StatsView q0, q1;
  calls(q0, "old", "i", "", "", 1000, 10);
  calls(q1, "old", "i", "", "", 1000, 10);
  calls(q1, "new", "i", "", "", 6, 10);
  rows = build_rows(round_of({{"q\n{}", q1}}, t1), nullptr, {By::Service, "", 0});
  CHECK(rows[0].service == "old");
  auto q_before = round_of({{"q\n{}", q0}}, t0);
  rows = build_rows(round_of({{"q\n{}", q1}}, t1), &q_before, {By::Service, "", 0});
  CHECK(rows[0].service == "new");
  CHECK(*rows[0].per_second == doctest::Approx(3.0));
}

TEST_CASE("stats forms: cells, table, summary and JSON rows") {
  CHECK(format_ms(303, 1) == "0.30ms");
  CHECK(format_ms(12'543, 1) == "12.5ms");
  CHECK(format_ms(1'203'000, 1) == "1203ms");
  CHECK(format_ms(0, 0) == "-");
  CHECK(format_pct(0, 10) == "0.0%");
  CHECK(format_pct(1, 8) == "12.5%");
  CHECK(format_pct(1, 5000) == "<0.1%");
  CHECK(format_pct(0, 0) == "-");
  CHECK(parse_by("address") == By::Address);
  CHECK_FALSE(parse_by("host"));

  std::vector<Reached> gws(3);
  gws[0].gateway.id = "gw-a";
  gws[1].gateway.id = "gw-b";
  gws[2].gateway.id = "gw-c";
  gws[2].error = "cannot connect";
  CHECK(summary_line(gws) == "2 gateways: gw-a, gw-b; 1 unreachable: gw-c (cannot connect)");
  CHECK(summary_line({}) == "no gateway registered under /gateway");
  auto gj = gateways_json(gws);
  CHECK(gj[0]["ok"] == true);
  CHECK_FALSE(gj[0].contains("error"));
  CHECK(gj[2]["ok"] == false);
  CHECK(gj[2]["error"] == "cannot connect");

  Counters unrouted;
  const Err unknown = Err::UnknownService;
  unrouted.record(5, &unknown);
  unrouted.record(5, &unknown);
  CHECK(unrouted_line(unrouted) == "unrouted: 2 requests (unknown_service 2)");
  CHECK(unrouted_line(Counters{}).empty());

  Row r;
  r.service = "s";
  r.name = "10.0.0.1:80";
  r.requests = 8;
  r.errors = 1;
  r.p50_us = r.p90_us = r.p99_us = 303;
  r.ejected_by = 1;
  r.ejected_for_ms = 2500;
  const auto text = table({r}, By::Address, Rates::Hidden, 2).render(output::Color::Off);
  CHECK(text ==
        "SERVICE  ADDRESS      REQUESTS  ERRORS  ERR%   P50     P90     P99     IN-FLIGHT  EJECTIONS  EJECTED\n"
        "s        10.0.0.1:80  8         1       12.5%  0.30ms  0.30ms  0.30ms  0          0          1 of 2 (3s)\n");
  const auto by_service = table({r}, By::Service, Rates::Shown, 1).render(output::Color::Off);
  CHECK(by_service.find("SERVICE  REQUESTS  REQ/S  ERRORS  ERR%   RATE-LIMITED  P50") == 0);

  auto rj = rows_json({r}, By::Address);
  CHECK(rj[0]["address"] == "10.0.0.1:80");
  CHECK(rj[0]["ejected_by"] == 1);
  CHECK(rj[0]["latency_ms"]["p99"].get<double>() == doctest::Approx(0.303));
  CHECK_FALSE(rj[0].contains("requests_per_second"));
  CHECK_FALSE(rows_json({r}, By::Service)[0].contains("address"));
}

TEST_CASE("rows by version: each version's calls and what it passed over, \"\" for none") {
  Round rnd;
  StatsView view;
  auto& s = view.services["s"];
  s.versions["v1"].counters.record(500, nullptr);
  s.versions["v1"].counters.record(700, nullptr);
  s.versions[""].counters.record(500, nullptr);
  s.versions["v2"].passed_over = 3;  // no calls of its own, but something to tell
  rnd.answers.push_back({"gw", view});
  merge_answers(rnd);
  auto rows = build_rows(rnd, nullptr, {By::Version, "", 0});
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].name == "v1");
  CHECK(rows[0].requests == 2);
  CHECK(rows[2].name == "v2");
  CHECK(rows[2].passed_over == 3);
  auto text = table(rows, By::Version, Rates::Hidden, 1).render(output::Color::Off);
  CHECK(text.find("VERSION") != std::string::npos);
  CHECK(text.find("PASSED-OVER") != std::string::npos);
  CHECK(text.find("RATE-LIMITED") == std::string::npos);
  CHECK(text.find("\"\"") != std::string::npos);
  auto j = rows_json(rows, By::Version);
  CHECK(j[2]["version"] == "v2");
  CHECK(j[2]["passed_over"] == 3);
  CHECK(parse_by("version") == By::Version);
}
