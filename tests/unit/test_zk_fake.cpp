// The in-memory ensemble keeps the ZooKeeper semantics the reconciliation relies on.
#include <svcctl/zk/fake.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace svcctl;
using namespace svcctl::zk;

namespace {

// A session whose notifications are written down as "type path".
struct Recorder {
  std::vector<std::string> seen;
  std::unique_ptr<Session> session;

  Recorder(FakeEnsemble& ens, std::optional<std::size_t> member = {}) {
    ens.connect_to(member);
    Options o;
    o.on_event = [this](Event e) { seen.push_back(text(e)); };
    auto s = ens.connector()(o);
    REQUIRE(s);
    session = std::move(*s);
  }

  static std::string text(const Event& e) {
    switch (e.type) {
      case Event::Type::Created: return "created " + e.path;
      case Event::Type::Deleted: return "deleted " + e.path;
      case Event::Type::Changed: return "changed " + e.path;
      case Event::Type::Children: return "children " + e.path;
      case Event::Type::Session: return std::string("session ") + std::string(to_string(e.state));
    }
    return "?";
  }
  std::int64_t id() const { return session->session_id(); }
};

}  // namespace

TEST_CASE("fake ensemble: a multi-op is one transaction, all or none") {
  FakeEnsemble ens;
  REQUIRE(ens.ensure_path("/address/s"));
  const auto before = ens.zxid();
  auto z = ens.multi({Op::create("/address/s/a", "1"), Op::create("/address/s/b", "2")});
  REQUIRE(z);
  CHECK(*z == before + 1);
  CHECK(ens.node("/address/s/a")->stat.czxid == *z);
  CHECK(ens.node("/address/s/b")->stat.czxid == *z);
  CHECK(ens.node("/address/s")->stat.pzxid == *z);

  auto bad = ens.multi({Op::remove("/address/s/a", -1), Op::remove("/address/s/nope", -1)});
  REQUIRE(!bad);
  CHECK(is(bad.error(), Code::NoNode));
  CHECK(bad.error().message.find("/address/s/nope") != std::string::npos);
  CHECK(ens.node("/address/s/a"));  // the first op was not applied
  CHECK(ens.zxid() == *z);
  CHECK(is(ens.remove("/address/s").error(), Code::NotEmpty));
  CHECK(is(ens.set("/address/s/a", "x", 7).error(), Code::BadVersion));
}

TEST_CASE("fake ensemble: replies come from the session's member, notifications before later replies") {
  FakeEnsemble ens(3);
  REQUIRE(ens.create("/service"));
  REQUIRE(ens.create("/service/s", "v1"));
  ens.lag(1);
  REQUIRE(ens.set("/service/s", "v2"));
  Recorder ahead(ens, 0), behind(ens, 1);
  ens.run();

  std::string got_ahead, got_behind;
  ahead.session->get_async("/service/s", Watch::Yes, [&](Code rc, Node n) {
    CHECK(rc == Code::Ok);
    got_ahead = n.data;
  });
  behind.session->get_async("/service/s", Watch::Yes, [&](Code rc, Node n) {
    CHECK(rc == Code::Ok);
    got_behind = n.data;
  });
  ens.run();
  CHECK(got_ahead == "v2");
  CHECK(got_behind == "v1");  // the member has not applied the write

  // A sync catches the member up: the notification for what it applies comes first.
  std::vector<std::string> order;
  behind.session->sync_async("/", [&](Code rc) {
    CHECK(rc == Code::Ok);
    order = behind.seen;
    order.push_back("synced");
  });
  ens.run();
  CHECK(order == std::vector<std::string>{"session connected", "changed /service/s", "synced"});
  CHECK(ens.member_zxid(1) == ens.zxid());

  // Watches are one-shot: a second write is not notified until a read sets one again.
  ahead.seen.clear();
  REQUIRE(ens.set("/service/s", "v3"));
  REQUIRE(ens.set("/service/s", "v4"));
  ens.run();
  CHECK(ahead.seen == std::vector<std::string>{"changed /service/s"});
}

TEST_CASE("fake ensemble: exists on a missing node is armed for its creation; deletes notify the parent") {
  FakeEnsemble ens;
  REQUIRE(ens.create("/address"));
  Recorder r(ens);
  r.session->exists_async("/address/s", Watch::Yes, [](Code rc, Stat) { CHECK(rc == Code::NoNode); });
  r.session->children_async("/address", Watch::Yes, [](Code rc, std::vector<std::string> names, Stat) {
    CHECK(rc == Code::Ok);
    CHECK(names.empty());
  });
  ens.run();
  REQUIRE(ens.create("/address/s"));
  ens.run();
  CHECK(r.seen == std::vector<std::string>{"session connected", "created /address/s", "children /address"});
}

TEST_CASE("fake ensemble: a lost connection loses notifications and replies; watches are set again") {
  FakeEnsemble ens;
  REQUIRE(ens.ensure_path("/service/s", "v1"));
  Recorder r(ens);
  r.session->get_async("/service/s", Watch::Yes, [](Code, Node) {});
  ens.run();

  Code lost = Code::Ok;
  r.session->get_async("/service/s", Watch::No, [&](Code rc, Node) { lost = rc; });
  ens.disconnect(r.id());
  ens.run();
  CHECK(lost == Code::ConnectionLoss);
  Code while_down = Code::Ok;
  r.session->get_async("/service/s", Watch::No, [&](Code rc, Node) { while_down = rc; });
  ens.run();
  CHECK(while_down == Code::ConnectionLoss);

  // Changed while disconnected: the watch set again on reconnecting fires at once.
  REQUIRE(ens.set("/service/s", "v2"));
  r.seen.clear();
  REQUIRE(ens.reconnect(r.id()));
  ens.run();
  CHECK(r.seen == std::vector<std::string>{"session connected", "changed /service/s"});
}

TEST_CASE("fake ensemble: expiry drops ephemerals; a member behind the session's zxid refuses it") {
  FakeEnsemble ens(3);
  REQUIRE(ens.ensure_path("/address/s"));
  Recorder holder(ens, 0), other(ens, 0);
  REQUIRE(holder.session->create("/address/s/a", "", CreateMode::Ephemeral));
  CHECK(ens.node("/address/s/a")->stat.ephemeral_owner == holder.id());

  // Refused: the session has seen a zxid that member 2, lagging, has not.
  ens.lag(2);
  REQUIRE(ens.create("/address/s/b"));
  other.session->get_async("/address/s/b", Watch::No, [](Code, Node) {});
  ens.run();
  ens.disconnect(other.id());
  CHECK(!ens.reconnect(other.id(), 2));
  CHECK(ens.counters().refused == 1);
  CHECK(ens.reconnect(other.id(), 1));

  ens.expire(holder.id());
  ens.run();
  CHECK(!ens.node("/address/s/a"));
  CHECK(holder.seen.back() == "session expired");
  Code rc = Code::Ok;
  holder.session->get_async("/address/s", Watch::No, [&](Code c, Node) { rc = c; });  // inline
  CHECK(rc == Code::InvalidState);

  // Closing a session drops its ephemerals too.
  REQUIRE(other.session->create("/address/s/c", "", CreateMode::Ephemeral));
  other.session.reset();
  CHECK(!ens.node("/address/s/c"));
}

TEST_CASE("fake ensemble: a rebuilt ensemble refuses old sessions for good and accepts new ones") {
  FakeEnsemble ens(1);
  REQUIRE(ens.ensure_path("/service/s"));
  REQUIRE(ens.set("/service/s", "v2"));
  REQUIRE(ens.set("/service/s", "v3"));
  Recorder r(ens);
  r.session->get_async("/service/s", Watch::Yes, [](Code, Node) {});
  ens.run();
  ens.lose_data();
  ens.run();
  CHECK(r.seen.back() == "session connecting");
  CHECK(!ens.reconnect(r.id()));
  REQUIRE(ens.ensure_path("/service/s"));
  CHECK(!ens.reconnect(r.id()));  // still behind what the session saw
  Recorder fresh(ens);
  CHECK(fresh.session->get("/service/s"));
  // Once the rebuilt ensemble is past the session's zxid, it hears that it is gone.
  REQUIRE(ens.set("/service/s", "w2"));
  REQUIRE(ens.set("/service/s", "w3"));
  CHECK(ens.reconnect(r.id()));
  ens.run();
  CHECK(r.seen.back() == "session expired");
}

TEST_CASE("fake ensemble: the seed decides the interleaving across sessions, and repeats it") {
  auto order = [](std::uint64_t seed) {
    FakeEnsemble ens(1, seed);
    REQUIRE(ens.create("/n"));
    std::string out;
    std::vector<std::unique_ptr<Recorder>> rs;
    for (std::size_t i = 0; i < 4; ++i) rs.push_back(std::make_unique<Recorder>(ens));
    for (std::size_t i = 0; i < 4; ++i)
      for (int k = 0; k < 3; ++k)
        rs[i]->session->get_async("/n", Watch::No, [&out, i](Code, Node) { out += static_cast<char>('a' + i); });
    ens.run();
    return out;
  };
  CHECK(order(1) == order(1));
  bool differs = false;
  for (std::uint64_t s = 2; s < 10 && !differs; ++s) differs = order(s) != order(1);
  CHECK(differs);
  // Within one session the order is kept: each letter's replies come in the order sent.
  CHECK(order(3).size() == 12);
}

TEST_CASE("fake ensemble: a held session keeps its queue until released") {
  FakeEnsemble ens;
  REQUIRE(ens.create("/n"));
  Recorder r(ens);
  ens.run();
  bool done = false;
  ens.hold(r.id());
  r.session->get_async("/n", Watch::No, [&](Code, Node) { done = true; });
  ens.run();
  CHECK(!done);
  CHECK(ens.queued() == 1);
  ens.release(r.id());
  ens.run();
  CHECK(done);
}
