#include <svcctl/registry/declare.hpp>

#include <doctest/doctest.h>

using namespace svcctl;
using namespace svcctl::registry;
using nlohmann::json;

namespace {

Tree sample() {
  Tree t;
  t.containers = {"/service", "/address", "/api", "/key", "/acl", "/address/s", "/api/s", "/acl/s"};
  t.nodes["/service/s"] = {json{{"status", "up"}, {"desc", "d"}, {"owner", ""}, {"team", "x"}}, 2, false};
  t.nodes["/address/s/10.0.0.1:80"] = {json{{"dc", "a"}, {"weight", 100}, {"status", "up"}}, 1, false};
  t.nodes["/address/s/10.0.0.2:80"] = {json{{"dc", "a"}, {"weight", 100}, {"status", "up"}}, 4, false};
  t.nodes["/address/s/10.0.0.3:80"] = {json{{"dc", "a"}, {"weight", 100}, {"status", "up"}}, 0, true};
  t.nodes["/api/s/echo"] = {json{{"path", "/echo"}, {"encoding", "json"}, {"status", "up"}}, 0, false};
  t.nodes["/key/k"] = {json{{"owner", "o"}, {"status", "up"}}, 0, false};
  t.nodes["/acl/s/k"] = {json{{"apis", {"*"}}, {"shadow", false}}, 0, false};
  return t;
}

const PlanStep* step(const Plan& p, const std::string& path) {
  for (const auto& s : p.steps)
    if (s.path == path) return &s;
  return nullptr;
}

}  // namespace

TEST_CASE("export then apply changes nothing; ephemeral addresses are left out") {
  auto t = sample();
  auto doc = export_document(t);
  CHECK(doc["format"] == "svcctl-registry-1");
  CHECK(doc["services"]["s"]["team"] == "x");  // unknown fields kept
  CHECK(doc["services"]["s"]["addresses"].size() == 2);
  CHECK_FALSE(doc["services"]["s"]["addresses"].contains("10.0.0.3:80"));
  CHECK(doc["keys"]["k"]["owner"] == "o");
  auto plan = make_plan(t, doc, {});
  REQUIRE(plan);
  CHECK(plan->empty());
  CHECK(plan->unsafe.empty());
  // Only the services asked for, with the keys their ACLs name.
  t.nodes["/key/other"] = {json{{"owner", ""}, {"status", "up"}}, 0, false};
  auto one = export_document(t, {"s"});
  CHECK(one["keys"].size() == 1);
  CHECK(export_document(t)["keys"].size() == 2);
}

TEST_CASE("a plan: fields merged, sections authoritative, new nodes from the defaults") {
  auto t = sample();
  json doc = {{"services",
               {{"s",
                 {{"desc", "new"},
                  {"addresses", {{"10.0.0.1:80", {{"weight", 50}}}, {"10.0.0.2:80", json::object()}}},
                  {"interfaces", {{"add", {{"path", "/add"}}}}}}},
                {"t", {{"interfaces", {{"x", {{"path", "/x"}, {"encoding", "yar-msgpack"}}}}}}}}},
              {"keys", {{"k2", {{"owner", "me"}}}}}};
  auto plan = make_plan(t, doc, {});
  REQUIRE(plan);
  const PlanStep* svc = step(*plan, "/service/s");
  REQUIRE(svc);
  CHECK(svc->kind == PlanStep::Kind::Update);
  CHECK(svc->after["desc"] == "new");
  CHECK(svc->after["team"] == "x");
  CHECK(svc->version == 2);
  const PlanStep* a1 = step(*plan, "/address/s/10.0.0.1:80");
  REQUIRE(a1);
  CHECK(a1->after == json{{"dc", "a"}, {"weight", 50}, {"status", "up"}});
  CHECK(step(*plan, "/address/s/10.0.0.2:80") == nullptr);  // unchanged
  CHECK(step(*plan, "/address/s/10.0.0.3:80") == nullptr);  // ephemeral: never touched
  CHECK(step(*plan, "/api/s/echo")->kind == PlanStep::Kind::Delete);  // not listed
  CHECK(step(*plan, "/api/s/add")->after["encoding"] == "json");      // a default
  CHECK(step(*plan, "/acl/s/k") == nullptr);                         // no "acls" section: left alone
  CHECK(step(*plan, "/service/t")->after == json{{"status", "up"}, {"desc", ""}, {"owner", ""}});
  CHECK(step(*plan, "/key/k2")->kind == PlanStep::Kind::Create);
  CHECK(step(*plan, "/key/k") == nullptr);  // not pruned
  CHECK(plan->create_containers == std::vector<std::string>{"/api/t"});
  CHECK(plan->unsafe.empty());
  CHECK_FALSE(plan->notes.empty());  // the ephemeral address left as it is
  auto lines = plan->lines();
  CHECK(std::find(lines.begin(), lines.end(), "~ /address/s/10.0.0.1:80 weight: 100 → 50") != lines.end());
  CHECK(std::find(lines.begin(), lines.end(), "- /api/s/echo") != lines.end());
  // The multi-operation: containers, writes, deletes, then checks; writes pinned to versions.
  auto ops = plan->ops();
  REQUIRE_FALSE(ops.empty());
  CHECK(ops.front().type == zk::Op::Type::Create);
  CHECK(ops.front().path == "/api/t");
  bool pinned = false;
  for (const auto& op : ops) pinned |= op.type == zk::Op::Type::Set && op.path == "/service/s" && op.version == 2;
  CHECK(pinned);
}

TEST_CASE("unsafe plans: more than half the addresses away, or none left up") {
  auto t = sample();
  // Two of three addresses removed (the ephemeral one cannot be).
  json doc = {{"services", {{"s", {{"addresses", json::object()}}}}}};
  auto plan = make_plan(t, doc, {});
  REQUIRE(plan);
  CHECK(plan->count(PlanStep::Kind::Delete) == 2);
  REQUIRE(plan->unsafe.size() == 1);
  CHECK(plan->unsafe[0].find("removes 2 of its 3 addresses") != std::string::npos);
  // Both persistent ones down: the ephemeral one is still up, so only... it is fine.
  json down = {{"services", {{"s", {{"addresses", {{"10.0.0.1:80", {{"status", "down"}}}, {"10.0.0.2:80", {{"status", "down"}}}}}}}}}};
  plan = make_plan(t, down, {});
  REQUIRE(plan);
  CHECK(plan->unsafe.empty());
  // Without the ephemeral one: none left up.
  t.nodes.erase("/address/s/10.0.0.3:80");
  plan = make_plan(t, down, {});
  REQUIRE(plan);
  REQUIRE(plan->unsafe.size() == 1);
  CHECK(plan->unsafe[0].find("leaves no address up") != std::string::npos);
  // One of two marked down: safe, and the other is pinned by a check.
  json one = {{"services", {{"s", {{"addresses", {{"10.0.0.1:80", {{"status", "down"}}}, {"10.0.0.2:80", json::object()}}}}}}}};
  plan = make_plan(t, one, {});
  REQUIRE(plan);
  CHECK(plan->unsafe.empty());
  CHECK(plan->checks == std::vector<std::pair<std::string, int>>{{"/address/s/10.0.0.2:80", 4}});
}

TEST_CASE("prune removes what the document does not name; ephemeral addresses block it") {
  auto t = sample();
  t.nodes["/service/gone"] = {json::object(), 0, false};
  t.containers.insert("/api/gone");
  t.nodes["/api/gone/x"] = {json{{"path", "/x"}}, 3, false};
  auto doc = export_document(t, {"s"});
  auto plan = make_plan(t, doc, {true});
  REQUIRE(plan);
  CHECK(step(*plan, "/service/gone")->kind == PlanStep::Kind::Delete);
  CHECK(step(*plan, "/api/gone/x")->version == 3);
  CHECK(plan->delete_containers == std::vector<std::string>{"/api/gone"});
  CHECK(step(*plan, "/service/s") == nullptr);
  // A service held by a live provider cannot go.
  auto empty = make_plan(t, json{{"services", json::object()}}, {true});
  REQUIRE_FALSE(empty);
  CHECK(empty.error().message.find("held by a live provider") != std::string::npos);
}

TEST_CASE("a bad document names every problem") {
  auto t = sample();
  json doc = {{"services",
               {{"bad name!", json::object()},
                {"s",
                 {{"addresses", {{"nohostport", json::object()}, {"10.0.0.9:80", {{"weight", -5}}}}},
                  {"interfaces", {{"new", json::object()}}},
                  {"acls", {{"nokey", json::object()}}}}}}},
              {"extra", 1}};
  auto plan = make_plan(t, doc, {});
  REQUIRE_FALSE(plan);
  CHECK(plan.error().kind == ErrorKind::Usage);
  const auto& m = plan.error().message;
  CHECK(m.find("unknown section \"extra\"") != std::string::npos);
  CHECK(m.find("bad name!") != std::string::npos);
  CHECK(m.find("nohostport") != std::string::npos);
  CHECK(m.find("/address/s/10.0.0.9:80: ") != std::string::npos);
  CHECK(m.find("/api/s/new: an interface needs a \"path\"") != std::string::npos);
  CHECK(m.find("key nokey is neither registered") != std::string::npos);
  CHECK_FALSE(make_plan(t, json::array(), {}));
  CHECK_FALSE(make_plan(t, json{{"format", "other"}}, {}));
}
