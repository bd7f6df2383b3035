// `svcctl drain` and `svcctl doctor`: whether the gateways are done with an address, from
// their answers round after round (lib/ops drain_report.*); the findings computed from a
// registry listing, sessions, gateway stats and probes (lib/ops doctor_report.*); and the
// parsing of ZooKeeper's four-letter words they rely on (lib/zk four_letter).
#include <svcctl/ops/doctor_report.hpp>
#include <svcctl/ops/drain_report.hpp>

#include <svcctl/zk/four_letter.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace svcctl;
using namespace svcctl::ops;

namespace {

nlohmann::json stats_answer(const std::string& zxid, std::int64_t in_flight, bool held = false) {
  nlohmann::json j = {{"registry", {{"zxid", zxid}}}, {"guard", {{"held", nlohmann::json::array()}}}};
  j["services"]["s"]["addresses"]["10.0.0.1:80"] = {{"in_flight", in_flight}, {"ejected", false}};
  if (held) j["guard"]["held"].push_back("s");
  return j;
}

drain::Answer answer(const std::string& id, std::int64_t zxid, std::int64_t in_flight, bool held = false) {
  model::Gateway g;
  g.id = id;
  g.admin = "127.0.0.1:9901";
  return {g, drain::Seen{zxid, in_flight, held}, {}};
}

drain::Answer silent(const std::string& id) {
  model::Gateway g;
  g.id = id;
  return {g, std::nullopt, "cannot connect"};
}

}  // namespace

TEST_CASE("drain: reading a gateway's /-/stats") {
  CHECK(drain::parse_zxid("0x1a") == 26);
  CHECK(drain::parse_zxid("26") == 26);
  CHECK_FALSE(drain::parse_zxid("0x"));
  CHECK_FALSE(drain::parse_zxid("zz"));
  CHECK_FALSE(drain::parse_zxid("-1"));

  auto s = drain::read_stats(stats_answer("0x20", 3), "s", "10.0.0.1:80");
  REQUIRE(s);
  CHECK(s->zxid == 32);
  CHECK(s->in_flight == 3);
  CHECK_FALSE(s->held);
  // An address the gateway never sent a call to is not listed: nothing in flight.
  auto other = drain::read_stats(stats_answer("0x20", 3), "s", "10.0.0.2:80");
  REQUIRE(other);
  CHECK(other->in_flight == 0);
  CHECK(drain::read_stats(stats_answer("0x20", 0, true), "s", "10.0.0.1:80")->held);
  CHECK_FALSE(drain::read_stats(nlohmann::json::object(), "s", "a:1"));
  CHECK_FALSE(drain::read_stats(nlohmann::json::array(), "s", "a:1"));
  CHECK_FALSE(drain::read_stats({{"registry", {{"zxid", 7}}}}, "s", "a:1"));
}

TEST_CASE("drain: done only once every gateway saw the write and, a round later, has nothing in flight") {
  drain::Progress p(100, drain::Need::Idle, drain::Unreachable::Wait);
  p.update({answer("a", 99, 0), answer("b", 100, 2)});
  CHECK_FALSE(p.done());
  auto w = p.waiting();
  REQUIRE(w.size() == 2);
  CHECK(w[0] == "a has not seen the change (its registry is at zxid 0x63, the write is 0x64)");
  CHECK(w[1] == "b still has 2 calls in flight");

  // a sees it with nothing in flight: not trusted in the round it first sees it.
  p.update({answer("a", 100, 0), answer("b", 101, 1)});
  CHECK_FALSE(p.done());
  CHECK(p.waiting() == std::vector<std::string>{"a has just seen the change", "b still has 1 call in flight"});

  p.update({answer("a", 100, 0), answer("b", 101, 0)});
  CHECK(p.done());
  CHECK(p.waiting().empty());
  // Done stays done, whatever comes after.
  p.update({answer("a", 100, 5), answer("b", 101, 0)});
  CHECK(p.done());
}

TEST_CASE("drain: a gateway whose guard holds the service has not applied the write") {
  drain::Progress p(10, drain::Need::Idle, drain::Unreachable::Wait);
  p.update({answer("a", 12, 0, true)});
  p.update({answer("a", 12, 0, true)});
  CHECK_FALSE(p.done());
  CHECK(p.waiting()[0] == "a holds the service at its old view (mass-change guard)");
  p.update({answer("a", 12, 0)});
  CHECK_FALSE(p.done());
  p.update({answer("a", 12, 0)});
  CHECK(p.done());
}

TEST_CASE("drain: gateways that do not answer, leave, or come") {
  drain::Progress wait(10, drain::Need::Idle, drain::Unreachable::Wait);
  wait.update({silent("x")});
  wait.update({silent("x")});
  CHECK_FALSE(wait.done());
  CHECK(wait.waiting() == std::vector<std::string>{"x did not answer (cannot connect)"});
  // A gateway that left /gateway stopped: nothing of it is in flight any more.
  wait.update({});
  CHECK(wait.done());

  drain::Progress ignore(10, drain::Need::Idle, drain::Unreachable::Ignore);
  ignore.update({silent("x"), answer("a", 10, 0)});
  ignore.update({silent("x"), answer("a", 10, 0)});
  CHECK(ignore.done());
  CHECK(ignore.gateways()[1].ignored);
  // It answers again: waited for like any other.
  ignore.update({answer("x", 9, 0), answer("a", 10, 0)});
  CHECK_FALSE(ignore.done());

  drain::Progress none(10, drain::Need::Idle, drain::Unreachable::Wait);
  none.update({});
  CHECK(none.done());
}

TEST_CASE("undrain --wait: done as soon as every gateway saw the write") {
  drain::Progress p(10, drain::Need::Seen, drain::Unreachable::Wait);
  p.update({answer("a", 10, 4), answer("b", 9, 0)});
  CHECK_FALSE(p.done());
  p.update({answer("a", 10, 4), answer("b", 11, 0)});
  CHECK(p.done());
  auto j = drain::result_json(p, "seen", "s", "10.0.0.1:80", "updated", 250);
  CHECK(j["seen"] == true);
  CHECK(j["zxid"] == 10);
  CHECK(j["waited_ms"] == 250);
  CHECK(j["gateways"][0] == nlohmann::json{{"id", "a"}, {"admin", "127.0.0.1:9901"}, {"seen", true}, {"zxid", 10},
                                           {"in_flight", 4}});
}

// ---- doctor -----------------------------------------------------------------------------

namespace {

registry::CacheEntry node(const std::string& data, std::int64_t owner = 0) {
  registry::CacheEntry e;
  e.data = data;
  e.ephemeral_owner = owner;
  return e;
}

doctor::Entries healthy() {
  return {
      {"/service/s", node(R"({"status":"up"})")},
      {"/address/s/10.0.0.1:80", node(R"({"status":"up"})")},
      {"/address/s/10.0.0.2:80", node(R"({"status":"up"})", 0x42)},
      {"/api/s/echo", node(R"({"path":"/echo"})")},
      {"/key/k", node(R"({"status":"up"})")},
      {"/acl/s/k", node(R"({"apis":["echo"]})")},
      {"/gateway/g", node(R"({"admin":"127.0.0.1:9901"})", 0x43)},
  };
}

doctor::Report run_all(const doctor::Entries& e, const doctor::Sessions& sessions,
                       const std::vector<doctor::GatewayStats>& gateways,
                       const std::map<std::string, std::string>& unreachable) {
  doctor::Report r;
  doctor::check_services(e, r);
  doctor::check_ephemerals(e, sessions, r);
  doctor::check_ejected(e, gateways, r);
  doctor::check_unreachable(e, unreachable, r);
  doctor::check_keys(e, r);
  doctor::sort(r);
  return r;
}

doctor::Sessions all_live() {
  return {std::set<std::int64_t>{0x42, 0x43}, std::set<std::int64_t>{0x42, 0x43}, {}, {}};
}

}  // namespace

TEST_CASE("doctor: a healthy registry has no findings") {
  auto r = run_all(healthy(), all_live(), {}, {});
  CHECK(r.findings.empty());
  REQUIRE(r.skipped.size() == 1);
  CHECK(r.skipped[0].reason == "no gateway registered under /gateway");
  CHECK(doctor::to_json(r)["findings"] == nlohmann::json::array());
}

TEST_CASE("doctor: the registry's shape") {
  auto e = healthy();
  e["/api/empty/x"] = node(R"({"path":"/x"})");
  e["/service/empty"] = node("{}");
  e["/service/off"] = node("{}");
  e["/address/off/10.0.0.9:80"] = node(R"({"status":"down"})");
  e["/address/off/10.0.0.8:80"] = node(R"({"status":"down"})");
  e["/service/deliberately-off"] = node(R"({"status":"down"})");
  e["/address/deliberately-off/10.0.0.9:80"] = node(R"({"status":"down"})");
  e["/api/s/nopath"] = node(R"({"encoding":"json"})");
  e["/address/orphan/10.0.0.7:80"] = node("{}");
  doctor::Report r;
  doctor::check_services(e, r);
  doctor::sort(r);
  REQUIRE(r.findings.size() == 4);
  CHECK(r.findings[0].check == "unregistered-service");
  CHECK(r.findings[0].fix == "svcctl register service orphan");
  CHECK(r.findings[1].check == "no-address");
  CHECK(r.findings[1].fix == "svcctl register address empty HOST:PORT");
  CHECK(r.findings[2].check == "no-up-address");
  CHECK(r.findings[2].fix == "svcctl undrain off 10.0.0.8:80");
  CHECK(r.findings[3].check == "interface-without-path");
  CHECK(r.findings[3].fix == "svcctl register api s nopath --path /nopath");
}

TEST_CASE("doctor: ephemeral addresses of gone or disconnected sessions") {
  auto e = healthy();
  e["/address/s/10.0.0.3:80"] = node(R"({"status":"up"})", 0x99);
  doctor::Sessions s{std::set<std::int64_t>{0x42, 0x43, 0x44}, std::set<std::int64_t>{0x42}, {}, {}};
  e["/address/s/10.0.0.4:80"] = node(R"({"status":"up"})", 0x44);
  doctor::Report r;
  doctor::check_ephemerals(e, s, r);
  doctor::sort(r);
  REQUIRE(r.findings.size() == 2);
  CHECK(r.findings[0].check == "zombie-ephemeral");
  CHECK(r.findings[0].subject == "10.0.0.3:80");
  CHECK(r.findings[0].message.find("session 0x99") != std::string::npos);
  CHECK(r.findings[0].fix == "svcctl unregister address s 10.0.0.3:80");
  CHECK(r.findings[1].check == "stale-ephemeral");
  CHECK(r.findings[1].subject == "10.0.0.4:80");
  CHECK(r.skipped.empty());

  // The only up address needs --force to go.
  doctor::Entries lone = {{"/service/t", node("{}")}, {"/address/t/1.2.3.4:5", node("{}", 0x7)}};
  doctor::Report r2;
  doctor::check_ephemerals(lone, s, r2);
  REQUIRE(r2.findings.size() == 1);
  CHECK(r2.findings[0].fix == "svcctl unregister address t 1.2.3.4:5 --force");

  // Without the session lists the checks are skipped, saying why.
  doctor::Report r3;
  doctor::check_ephemerals(e, doctor::Sessions{std::nullopt, std::nullopt, "no dump", "no cons"}, r3);
  CHECK(r3.findings.empty());
  REQUIRE(r3.skipped.size() == 2);
  CHECK(r3.skipped[0].check == "zombie-ephemeral");
  CHECK(r3.skipped[0].reason == "no dump");
  CHECK(r3.skipped[1].reason == "no cons");
  // Nothing ephemeral: nothing to skip.
  doctor::Report r4;
  doctor::check_ephemerals({{"/address/s/1.2.3.4:5", node("{}")}}, doctor::Sessions{}, r4);
  CHECK(r4.skipped.empty());
}

TEST_CASE("doctor: up addresses every gateway ejected, and unreachable ones") {
  auto e = healthy();
  auto ejected = [](bool a) {
    nlohmann::json j;
    j["services"]["s"]["addresses"]["10.0.0.1:80"] = {{"ejected", a}};
    return j;
  };
  doctor::Report some;
  doctor::check_ejected(e, {{"g1", ejected(true), {}}, {"g2", ejected(false), {}}}, some);
  CHECK(some.findings.empty());
  doctor::Report all;
  doctor::check_ejected(e, {{"g1", ejected(true), {}}, {"g2", ejected(true), {}}, {"g3", std::nullopt, "refused"}},
                        all);
  REQUIRE(all.findings.size() == 1);
  CHECK(all.findings[0].fix == "svcctl drain s 10.0.0.1:80");
  REQUIRE(all.skipped.size() == 1);
  CHECK(all.skipped[0].reason == "gateway g3 did not answer: refused");

  doctor::Report r;
  e["/address/s/10.0.0.5:80"] = node(R"({"status":"down"})");
  doctor::check_unreachable(e, {{"10.0.0.2:80", "cannot connect"}, {"10.0.0.5:80", "cannot connect"}}, r);
  REQUIRE(r.findings.size() == 1);  // a down address is expected not to answer
  CHECK(r.findings[0].subject == "10.0.0.2:80");
  CHECK(r.findings[0].fix == "svcctl drain s 10.0.0.2:80");
  CHECK(doctor::up_addresses(e).at("s") == std::set<std::string>{"10.0.0.1:80", "10.0.0.2:80"});
}

TEST_CASE("doctor: keys and ACLs") {
  auto e = healthy();
  e["/key/lonely"] = node("{}");
  e["/acl/s/missing"] = node("{}");
  e["/key/k2"] = node("{}");
  e["/acl/s/k2"] = node(R"({"apis":["echo","gone","old"]})");
  e["/key/k3"] = node("{}");
  e["/acl/s/k3"] = node(R"({"apis":["gone"]})");
  e["/acl/vanished/k"] = node("{}");
  doctor::Report r;
  doctor::check_keys(e, r);
  doctor::sort(r);
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& f : r.findings) got.emplace_back(f.check, f.fix);
  CHECK(got == std::vector<std::pair<std::string, std::string>>{
                   {"unused-key", "svcctl unregister key lonely"},
                   {"acl-without-key", "svcctl unregister acl s missing"},
                   {"acl-without-service", "svcctl unregister acl vanished k"},
                   {"acl-unknown-interface", "svcctl register acl s k2 --apis echo"},
                   {"acl-unknown-interface", "svcctl unregister acl s k3"},
               });
  auto j = doctor::to_json(r);
  CHECK(j["findings"][0] == nlohmann::json{{"check", "unused-key"}, {"service", nullptr}, {"address", "lonely"},
                                           {"message", "key lonely is named by no ACL"},
                                           {"fix", "svcctl unregister key lonely"}});
  CHECK(doctor::table(r).render(output::Color::Off).starts_with("CHECK"));
}

// ---- four-letter words ------------------------------------------------------------------

TEST_CASE("zk: four-letter words as ZooKeeper 3.8 answers them") {
  CHECK(zk::servers_of("a:1,b:2/chroot/x") == std::vector<std::string>{"a:1", "b:2"});
  CHECK(zk::servers_of("[::1]:2181") == std::vector<std::string>{"[::1]:2181"});
  CHECK(zk::not_whitelisted("wchs is not executed because it is not in the whitelist.\n"));
  CHECK_FALSE(zk::not_whitelisted("Mode: standalone\n"));
  CHECK(zk::parse_mode("Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.5/1\nMode: leader\nNode count: 5\n") ==
        "leader");
  CHECK(zk::parse_cons(" /127.0.0.1:46264[1](queued=0,recved=5,sent=5,sid=0x10001695f220000,lop=CREA,est=17,"
                       "to=30000,lcxid=0x4,lzxid=0x3)\n /127.0.0.1:46278[0](queued=0,recved=1,sent=0)\n\n") ==
        std::set<std::int64_t>{0x10001695f220000});
  const char* dump =
      "SessionTracker dump:\nSession Sets (2)/(2):\n0 expire at Sun Nov 22 21:50:50 UTC 2026:\n"
      "1 expire at Sun Nov 22 21:50:50 UTC 2026:\n\t0x10001695f220000\n\t0x10001695f220001\n"
      "ephemeral nodes dump:\nSessions with Ephemerals (1):\n0x10001695f220000:\n\t/x/e\n\t/x/f\n"
      "Connections dump:\nConnections Sets (1)/(1):\n1 expire at Sun Nov 22 21:50:56 UTC 2026:\n"
      "\tip: /127.0.0.1:46264 sessionId: 0x10001695f220009\n";
  auto d = zk::parse_dump(dump);
  CHECK(d.has_sessions);
  CHECK(d.sessions == std::set<std::int64_t>{0x10001695f220000, 0x10001695f220001});
  CHECK_FALSE(zk::parse_dump("dump is not executed because it is not in the whitelist.\n").has_sessions);
}
