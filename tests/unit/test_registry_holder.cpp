// The holder's steps, turn by turn on the in-memory ensemble: registration, others' edits
// and drains kept, re-registration, writes whose answers were lost, sessions replaced.
#include <svcctl/registry/holder.hpp>
#include <svcctl/registry/paths.hpp>
#include <svcctl/zk/fake.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace svcctl;
using namespace svcctl::registry;
using namespace std::chrono_literals;

namespace {

struct Rig {
  zk::FakeEnsemble ens{3};
  Holder::Clock::time_point t = Holder::Clock::time_point(1h);
  std::vector<std::string> lines;
  bool healthy = true;
  const std::string path = paths::address("s", "10.0.0.1:80");
  std::unique_ptr<Holder> h;

  Rig() {
    REQUIRE(ens.create(std::string(paths::k_services)));
    REQUIRE(ens.create(paths::service("s"), R"({"protocol":"yar"})"));
    REQUIRE(ens.create(std::string(paths::k_addresses)));
  }

  void open(std::function<void(Holder::Options&)> tweak = {}) {
    model::AddressFields fields;
    fields.weight = 10;
    Holder::Options o = Holder::for_address("s", model::HostPort{"10.0.0.1", 80}, fields);
    o.connect = ens.connector();
    o.zk.session_timeout = 4000ms;
    o.log = [this](std::string_view m) { lines.emplace_back(m); };
    if (tweak) tweak(o);
    h = std::make_unique<Holder>(std::move(o));
  }

  // With a health check that answers `healthy`, run every second.
  void open_checked(int rise, int fall) {
    open([this, rise, fall](Holder::Options& o) {
      o.check = [this] { return healthy; };
      o.interval = 1000ms;
      o.rise = rise;
      o.fall = fall;
    });
  }

  // Delivers what the ensemble has for the holder, and lets it take a turn.
  Expected<void> turn() {
    ens.run();
    auto r = h->turn(t);
    ens.run();
    return r;
  }
  void turns(int n) {
    for (int i = 0; i < n; ++i) REQUIRE(turn());
  }

  nlohmann::json node() const {
    auto n = ens.node(path);
    REQUIRE(n);
    return nlohmann::json::parse(n->data);
  }
  std::int64_t owner() const { return ens.node(path) ? ens.node(path)->stat.ephemeral_owner : 0; }
  std::size_t logged(std::string_view part) const {
    std::size_t n = 0;
    for (const auto& l : lines) n += l.find(part) != std::string::npos;
    return n;
  }
};

// Another client's write: its data, with `fields` merged in.
void edit(Rig& rig, const nlohmann::json& fields) {
  auto d = rig.node();
  d.update(fields);
  REQUIRE(rig.ens.set(rig.path, d.dump()));
}

}  // namespace

TEST_CASE("holder: registers the address up in its session, its parent created, and removes it on release") {
  Rig rig;
  rig.open();
  rig.turns(2);  // the first turn creates /address/s, the next the node
  REQUIRE(rig.h->held());
  CHECK(rig.owner() == rig.h->session_id());
  CHECK(rig.node()["status"] == "up");
  CHECK(rig.node()["weight"] == 10);
  CHECK(rig.logged("registered /address/s/10.0.0.1:80 (up)") == 1);
  rig.h->release();
  CHECK(!rig.ens.node(rig.path));
  CHECK(!rig.h->held());
}

TEST_CASE("holder: fails at once on what waiting cannot fix") {
  SUBCASE("the service is missing") {
    Rig rig;
    REQUIRE(rig.ens.remove(paths::service("s")));
    rig.open();
    auto r = rig.turn();
    REQUIRE(!r);
    CHECK(r.error().kind == ErrorKind::NotFound);
    CHECK(r.error().message == "service \"s\" not found");
  }
  SUBCASE("a persistent node is at the address") {
    Rig rig;
    REQUIRE(rig.ens.ensure_path(rig.path, "{}"));
    rig.open();
    auto r = rig.turn();
    REQUIRE(!r);
    CHECK(r.error().kind == ErrorKind::Conflict);
  }
}

TEST_CASE("holder: others' edits are kept, and a drain stays until someone marks it up") {
  Rig rig;
  rig.open();
  rig.turns(2);
  edit(rig, {{"weight", 5}, {"status", "down"}});  // an operator's drain
  rig.turns(3);
  CHECK(rig.h->drained());
  CHECK(rig.node()["status"] == "down");  // the check passes, the drain is kept
  CHECK(rig.node()["weight"] == 5);
  CHECK(rig.logged("was marked down by someone else") == 1);

  edit(rig, {{"status", "up"}});
  rig.turns(2);
  CHECK(!rig.h->drained());
  CHECK(rig.logged("was marked up again") == 1);
  CHECK(rig.node()["status"] == "up");
  CHECK(rig.node()["weight"] == 5);
}

TEST_CASE("holder: the check's verdict is written with rise and fall, over others' edits") {
  Rig rig;
  rig.open_checked(2, 3);
  rig.turns(2);
  CHECK(rig.node()["status"] == "down");  // not up before `rise` passes
  rig.t += 1000ms;
  rig.turns(1);
  CHECK(rig.node()["status"] == "up");
  edit(rig, {{"weight", 7}});
  rig.healthy = false;
  for (int i = 0; i < 2; ++i) {
    rig.t += 1000ms;
    rig.turns(1);
  }
  CHECK(rig.node()["status"] == "up");  // two failures of three
  rig.t += 1000ms;
  rig.turns(1);
  CHECK(rig.node()["status"] == "down");
  CHECK(rig.node()["weight"] == 7);
  CHECK(!rig.h->drained());  // its own verdict is no drain
}

TEST_CASE("holder: a node removed by someone else is registered again") {
  Rig rig;
  rig.open();
  rig.turns(2);
  REQUIRE(rig.ens.remove(rig.path));
  rig.turns(2);
  CHECK(rig.owner() == rig.h->session_id());
  CHECK(rig.logged("was removed by someone else: registering it again") == 1);
}

TEST_CASE("holder: a create whose answer was lost is taken over as its own") {
  Rig rig;
  rig.open();
  rig.turns(2);
  const auto id = rig.h->session_id();
  SUBCASE("and not taken for a drain") {
    rig.ens.lose_next_answer(id);
    REQUIRE(rig.ens.remove(rig.path));  // registered again: that create's answer is lost
    rig.turns(1);
    CHECK(!rig.h->held());
    REQUIRE(rig.ens.reconnect(id));
    rig.turns(2);
    CHECK(rig.h->held());
    CHECK(!rig.h->drained());
    CHECK(rig.node()["status"] == "up");
    CHECK(rig.logged("marked down by someone else") == 0);
  }
  SUBCASE("and a drain made meanwhile is kept") {
    rig.ens.lose_next_answer(id);
    REQUIRE(rig.ens.remove(rig.path));
    rig.turns(1);
    edit(rig, {{"status", "down"}});  // an operator, while the holder is disconnected
    REQUIRE(rig.ens.reconnect(id));
    rig.turns(3);
    CHECK(rig.h->held());
    CHECK(rig.h->drained());
    CHECK(rig.node()["status"] == "down");
  }
}

TEST_CASE("holder: a status write whose answer was lost is told from another's edit") {
  Rig rig;
  rig.open_checked(1, 1);
  rig.turns(3);
  REQUIRE(rig.node()["status"] == "up");
  const auto id = rig.h->session_id();
  rig.healthy = false;
  rig.ens.lose_next_answer(id);
  rig.t += 1000ms;
  rig.turns(1);  // "down" written; its answer lost
  CHECK(rig.node()["status"] == "down");
  REQUIRE(rig.ens.reconnect(id));
  rig.healthy = true;
  rig.t += 1000ms;
  rig.turns(3);
  CHECK(!rig.h->drained());  // its own unanswered write is no drain
  CHECK(rig.node()["status"] == "up");
}

TEST_CASE("holder: after a session expiry the node is registered in a new session") {
  Rig rig;
  rig.open();
  rig.turns(2);
  const auto old_id = rig.h->session_id();
  rig.ens.expire(old_id);
  CHECK(!rig.ens.node(rig.path));
  rig.turns(2);
  CHECK(rig.h->session_id() != old_id);
  CHECK(rig.owner() == rig.h->session_id());
  CHECK(rig.logged("session expired: opening a new one") == 1);
}

TEST_CASE("holder: a session a restored ensemble refuses is given up past its timeout") {
  Rig rig;
  rig.open();
  rig.turns(2);
  const auto old_id = rig.h->session_id();
  rig.ens.lose_data();
  REQUIRE(rig.ens.ensure_path(paths::service("s"), "{}"));
  REQUIRE(rig.ens.ensure_path(paths::addresses("s")));
  rig.turns(1);
  CHECK(!rig.ens.reconnect(old_id));  // it has seen zxids the ensemble has not
  rig.t += 3900ms;
  rig.turns(1);
  CHECK(rig.h->session_id() == old_id);  // within its timeout it may still come back
  CHECK(!rig.ens.node(rig.path));
  rig.t += 200ms;
  rig.turns(2);
  CHECK(rig.h->session_id() != old_id);
  CHECK(rig.owner() == rig.h->session_id());
  CHECK(rig.logged("could not reconnect for 4100 ms, longer than the session timeout of 4000 ms") == 1);
}

TEST_CASE("holder: a node another session holds is waited for, said once") {
  Rig rig;
  REQUIRE(rig.ens.ensure_path(paths::addresses("s")));
  auto other = rig.ens.connector()(zk::Options{});
  REQUIRE(other);
  REQUIRE((*other)->create(rig.path, R"({"status":"up"})", zk::CreateMode::Ephemeral));
  rig.open();
  for (int i = 0; i < 3; ++i) {
    rig.t += 1000ms;
    rig.turns(1);
  }
  CHECK(!rig.h->held());
  CHECK(rig.owner() == (*other)->session_id());
  CHECK(rig.logged("is held by session") == 1);
  other->reset();  // its node goes with it; the watch says so
  rig.turns(1);
  CHECK(rig.h->held());
  CHECK(rig.owner() == rig.h->session_id());
}
