// The history of writes (registry/history.hpp): each write's record in the same
// multi-operation, nothing for a write that failed, the oldest trimmed, and the plan that
// undoes a record. Driven on zk::FakeEnsemble, whose sequential names follow ZooKeeper's.
#include <svcctl/registry/history.hpp>
#include <svcctl/registry/paths.hpp>
#include <svcctl/registry/registry.hpp>
#include <svcctl/zk/fake.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace svcctl;
using namespace svcctl::registry;
using nlohmann::json;

namespace {

model::HostPort hp(const char* text) { return *model::parse_host_port(text); }

struct Rig {
  zk::FakeEnsemble ens{1};
  std::unique_ptr<zk::Session> session;
  Registry reg;
  Rig() : session(*ens.connector()(zk::Options{})), reg(*session) {
    reg.record_as({"alice", "svcctl test"});
    REQUIRE(reg.put_service("hello", {}, {}));
  }
  std::vector<std::string> records() const { return ens.children_of(std::string(k_history)); }
  json data(const std::string& path) const { return json::parse(ens.node(path)->data); }
  Record last() {
    auto listing = reg.history("", 0);
    REQUIRE(listing);
    REQUIRE(!listing->records.empty());
    return listing->records.back();
  }
};

model::AddressFields weight(std::int64_t w) {
  model::AddressFields f;
  f.weight = w;
  return f;
}

}  // namespace

TEST_CASE("fake ensemble: a sequential node is named after its parent's child counter, as ZooKeeper names it") {
  zk::FakeEnsemble ens{1};
  REQUIRE(ens.create("/h"));
  REQUIRE(ens.create("/h/other"));  // cversion 1
  REQUIRE(ens.create("/h/r-", "a", zk::CreateMode::PersistentSequential));
  REQUIRE(ens.remove("/h/other"));  // cversion 3: deletes count too
  REQUIRE(ens.create("/h/r-", "b", zk::CreateMode::PersistentSequential));
  CHECK(ens.children_of("/h") == std::vector<std::string>{"r-0000000001", "r-0000000003"});
  CHECK(ens.node("/h/r-0000000003")->data == "b");
}

TEST_CASE("history: a record's id is its node's ten-digit number") {
  CHECK(record_id("r-0000000042") == 42);
  CHECK(record_path(42) == "/history/r-0000000042");
  CHECK_FALSE(record_id("r-42"));
  CHECK_FALSE(record_id("x-0000000042"));
  CHECK_FALSE(record_id("r-00000000-1"));
}

TEST_CASE("history: each write is recorded with who, the command, and the node before and after") {
  Rig rig;
  const std::string path = paths::address("hello", "127.0.0.1:9101");
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(5), {}));
  const json created = rig.data(path);
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(7), {}));

  auto r = rig.last();
  CHECK(r.who == "alice");
  CHECK(r.command == "svcctl test");
  CHECK(r.services() == std::vector<std::string>{"hello"});
  REQUIRE(r.changes.size() == 1);
  CHECK(r.changes[0].path == path);
  CHECK(r.changes[0].before == created);
  CHECK(r.changes[0].after == rig.data(path));
  CHECK(r.changes[0].version == rig.ens.node(path)->stat.version);
  CHECK(r.time_ms == rig.ens.node(record_path(r.id))->stat.ctime_ms);
  // The record is written by the same transaction as the node.
  CHECK(rig.ens.node(record_path(r.id))->stat.czxid == rig.ens.node(path)->stat.mzxid);
}

TEST_CASE("history: a write that changes nothing, or fails, records nothing") {
  Rig rig;
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(5), {}));
  const auto before = rig.records().size();

  CHECK(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(5), {})->action == Action::Unchanged);
  WriteOptions pinned;
  pinned.if_version = 7;  // a version conflict
  CHECK_FALSE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(9), pinned));
  // The last up address: refused by its guard.
  model::AddressFields down;
  down.status = model::Status::Down;
  CHECK(rig.reg.put_address("hello", hp("127.0.0.1:9101"), down, {}).error().kind == ErrorKind::Unsafe);
  CHECK(rig.reg.remove_address("hello", hp("127.0.0.1:9101"), Safety::Guarded).error().kind == ErrorKind::Unsafe);
  CHECK(rig.records().size() == before);
}

TEST_CASE("history: a write applied whose answer was lost has its record, once") {
  Rig rig;
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(5), {}));
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9102"), weight(5), {}));
  const auto before = rig.records().size();
  // The write is applied but its answer is lost: the caller hears a failure, and the
  // record is there with the write, once.
  rig.ens.lose_next_answer(rig.ens.sessions().front());
  CHECK_FALSE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(6), {}));
  CHECK(rig.records().size() == before + 1);
  CHECK(rig.data(paths::address("hello", "127.0.0.1:9101"))["weight"] == 6);
}

TEST_CASE("history: without an author nothing is recorded, and /history is not made") {
  zk::FakeEnsemble ens{1};
  auto session = *ens.connector()(zk::Options{});
  Registry reg(*session);
  REQUIRE(reg.put_service("hello", {}, {}));
  CHECK_FALSE(ens.node(std::string(k_history)));
}

TEST_CASE("history: removals keep each node's data, removed at the version read") {
  Rig rig;
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(5), {}));
  model::ApiFields api;
  api.path = "/echo";
  REQUIRE(rig.reg.put_api("hello", "echo", api, {}));
  const json addr = rig.data(paths::address("hello", "127.0.0.1:9101"));
  const json echo = rig.data(paths::api("hello", "echo"));
  const json svc = rig.data(paths::service("hello"));
  REQUIRE(rig.reg.remove_service("hello", Depth::Recursive));
  auto r = rig.last();
  REQUIRE(r.changes.size() == 3);
  for (const auto& c : r.changes) {
    CHECK(c.after.is_null());
    CHECK(c.version == -1);
  }
  CHECK(r.changes[0].path == paths::address("hello", "127.0.0.1:9101"));
  CHECK(r.changes[0].before == addr);
  CHECK(r.changes[1].before == echo);
  CHECK(r.changes[2].before == svc);
}

TEST_CASE("history: the oldest records beyond the folder's keep are trimmed, the newest kept") {
  Rig rig;
  REQUIRE(rig.reg.set_history_keep(10));
  for (int w = 1; w <= 30; ++w) REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(w), {}));
  auto names = rig.records();
  CHECK(names.size() >= 10);
  CHECK(names.size() <= 11);  // trimmed once a tenth over
  auto r = rig.last();
  CHECK(r.changes[0].after["weight"] == 30);
  CHECK(rig.reg.history("", 0)->records.front().changes[0].after["weight"] == 31 - static_cast<int>(names.size()));
}

TEST_CASE("history: a record too large keeps paths only, and cannot be reverted") {
  std::vector<Edit> edits{{"/service/a", nullptr, json{{"desc", std::string(k_max_record_bytes, 'x')}}, 0}};
  auto text = encode_record({"alice", "svcctl apply"}, edits);
  CHECK(text.size() < 1000);
  zk::Node node{text, {}};
  auto r = decode_record("r-0000000003", node);
  REQUIRE(r);
  CHECK(r->cut);
  CHECK(r->changes[0].path == "/service/a");
  CHECK(r->changes[0].before.is_null());  // still reads as a creation
  Tree tree;
  tree.nodes["/service/a"] = {json::object(), 0, false};
  CHECK(revert_plan(*r, tree).error().kind == ErrorKind::Usage);
}

TEST_CASE("revert: a record's nodes go back to their data before, pinned to the versions it left") {
  Rig rig;
  const std::string path = paths::address("hello", "127.0.0.1:9101");
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(5), {}));
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9102"), weight(5), {}));
  const json before = rig.data(path);
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(8), {}));
  auto changed = rig.last();

  auto plan = revert_plan(changed, *rig.reg.read_tree());
  REQUIRE(plan);
  REQUIRE(plan->steps.size() == 1);
  CHECK(plan->steps[0].kind == PlanStep::Kind::Update);
  CHECK(plan->steps[0].after == before);
  CHECK(plan->steps[0].version == rig.ens.node(path)->stat.version);
  REQUIRE(rig.reg.apply(*plan));
  CHECK(rig.data(path) == before);
  // The revert is a record of its own, whose revert is the change again.
  auto undo = rig.last();
  CHECK(undo.id > changed.id);
  REQUIRE(rig.reg.apply(*revert_plan(undo, *rig.reg.read_tree())));
  CHECK(rig.data(path)["weight"] == 8);
}

TEST_CASE("revert: a node changed since the record is a conflict that names it, and nothing is planned") {
  Rig rig;
  const std::string path = paths::address("hello", "127.0.0.1:9101");
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(5), {}));
  auto created = rig.last();
  REQUIRE(rig.reg.put_address("hello", hp("127.0.0.1:9101"), weight(6), {}));
  auto plan = revert_plan(created, *rig.reg.read_tree());
  REQUIRE_FALSE(plan);
  CHECK(plan.error().kind == ErrorKind::Conflict);
  CHECK(plan.error().message.find(path + " is at version 1, the record left version 0") != std::string::npos);
  // And a plan made before the node moved is refused by ZooKeeper when applied.
  auto updated = rig.last();
  auto stale = revert_plan(updated, *rig.reg.read_tree());
  REQUIRE(stale);
  REQUIRE(rig.ens.set(path, R"({"status":"up","weight":9})"));
  const auto records = rig.records().size();
  CHECK(rig.reg.apply(*stale).error().kind == ErrorKind::Conflict);
  CHECK(rig.data(path)["weight"] == 9);
  CHECK(rig.records().size() == records);  // the refused transaction took its record with it
}

TEST_CASE("revert: a removed service comes back whole, containers first; a created one goes with its containers") {
  Rig rig;
  REQUIRE(rig.reg.put_service("tmp", {}, {}));
  auto created = rig.last();
  REQUIRE(rig.reg.put_address("tmp", hp("127.0.0.1:9101"), weight(5), {}));
  REQUIRE(rig.reg.remove_service("tmp", Depth::Recursive));
  auto removed = rig.last();
  CHECK_FALSE(rig.ens.node(paths::addresses("tmp")));

  auto back = revert_plan(removed, *rig.reg.read_tree());
  REQUIRE(back);
  CHECK(back->create_containers == std::vector<std::string>{paths::addresses("tmp"), paths::apis("tmp")});
  REQUIRE(rig.reg.apply(*back));
  CHECK(rig.data(paths::address("tmp", "127.0.0.1:9101"))["weight"] == 5);

  // The service's creation cannot be undone while an address of it is left...
  auto orphan = revert_plan(created, *rig.reg.read_tree());
  REQUIRE(orphan);
  CHECK(orphan->unsafe.size() == 1);
  // ...and, once it is gone, takes the containers register made with it.
  REQUIRE(rig.reg.remove_address("tmp", hp("127.0.0.1:9101"), Safety::Force));
  auto alone = revert_plan(created, *rig.reg.read_tree());
  REQUIRE(alone);
  CHECK(alone->unsafe.empty());
  CHECK(alone->delete_containers == std::vector<std::string>{paths::addresses("tmp"), paths::apis("tmp")});
  REQUIRE(rig.reg.apply(*alone));
  CHECK_FALSE(rig.ens.node(paths::service("tmp")));
  CHECK_FALSE(rig.ens.node(paths::apis("tmp")));
}

TEST_CASE("revert: a held address removed is left for its provider, with a note") {
  Record r;
  r.id = 4;
  r.changes.push_back({paths::address("hello", "127.0.0.1:9101"), json{{"status", "up"}}, nullptr, -1, true});
  auto plan = revert_plan(r, Tree{});
  REQUIRE(plan);
  CHECK(plan->steps.empty());
  CHECK(plan->notes.size() == 1);
}
