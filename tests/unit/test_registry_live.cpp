// A registry read through a session that is live now (the guard's confirming read), and
// the last-known-good file refused before anything waits for ZooKeeper.
#include <svcctl/registry/cache.hpp>
#include <svcctl/registry/live.hpp>
#include <svcctl/registry/paths.hpp>
#include <svcctl/zk/fake.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace svcctl;
using namespace svcctl::registry;

namespace {

struct Rig {
  zk::FakeEnsemble ens{3};
  std::vector<std::string> lines;
  LiveRegistry live;
  Rig() : live(zk::Options{}, [this](std::string_view m) { lines.emplace_back(m); }, ens.connector()) {
    REQUIRE(ens.create(std::string(paths::k_services)));
    REQUIRE(ens.create(paths::service("a"), "{}"));
  }
  Expected<std::vector<std::string>> names() {
    return live.read([](Registry& r) { return r.names_under(std::string(paths::k_services)); });
  }
  std::int64_t only_session() const {
    auto ids = ens.sessions();
    REQUIRE(ids.size() == 1);
    return ids[0];
  }
};

}  // namespace

TEST_CASE("live registry: a read after its session expired goes through a new session") {
  // The fault run: the guard's confirming read kept using a client whose session had
  // expired, and held the service for good.
  Rig rig;
  REQUIRE(rig.names());
  const auto first = rig.only_session();
  rig.ens.expire(first);
  rig.ens.run();
  auto names = rig.names();
  REQUIRE(names);
  CHECK(*names == std::vector<std::string>{"a"});
  CHECK(rig.only_session() != first);
  REQUIRE(rig.lines.size() == 1);
  CHECK(rig.lines[0].find("failed a read") != std::string::npos);
}

TEST_CASE("live registry: a read through a session that lost its connection is made again through a new one") {
  Rig rig;
  REQUIRE(rig.names());
  const auto first = rig.only_session();
  rig.ens.disconnect(first);
  REQUIRE(rig.names());
  CHECK(rig.only_session() != first);
}

TEST_CASE("live registry: what a new session cannot do is returned, and not tried again") {
  Rig rig;
  rig.ens.refuse_connects(true);
  auto r = rig.names();
  REQUIRE(!r);
  CHECK(r.error().kind == ErrorKind::Unavailable);
  CHECK(rig.ens.counters().connects == 0);
  rig.ens.refuse_connects(false);
  REQUIRE(rig.names());
  // An answer that is not about the connection (here: no such node) is the read's own.
  auto missing = rig.live.read([](Registry& reg) { return reg.describe_service("none"); });
  REQUIRE(!missing);
  CHECK(missing.error().kind == ErrorKind::NotFound);
  CHECK(rig.lines.empty());
}

TEST_CASE("last-known-good file: refused at once when it cannot be written or is not the cache's") {
  const auto dir = std::filesystem::temp_directory_path() / "svcctl-unit-lkg";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  SUBCASE("absent, in a directory that exists: a first run") {
    CHECK(check_lkg_file((dir / "lkg.json").string()));
  }
  SUBCASE("in a directory that does not exist") {
    auto r = check_lkg_file((dir / "nope" / "lkg.json").string());
    REQUIRE(!r);
    CHECK(r.error().message.find("No such file or directory") != std::string::npos);
  }
  SUBCASE("a directory") {
    std::filesystem::create_directories(dir / "d");
    auto r = check_lkg_file((dir / "d").string());
    REQUIRE(!r);
    CHECK(r.error().message.find("Is a directory") != std::string::npos);
  }
  SUBCASE("corrupt") {
    std::ofstream(dir / "bad.json") << "{\"format\": \"svcctl-lkg-1\", \"nodes\": [";
    auto r = check_lkg_file((dir / "bad.json").string());
    REQUIRE(!r);
    CHECK(r.error().message.find("not JSON") != std::string::npos);
  }
  SUBCASE("another program's JSON") {
    std::ofstream(dir / "other.json") << R"({"nodes": []})";
    auto r = check_lkg_file((dir / "other.json").string());
    REQUIRE(!r);
    CHECK(r.error().message.find("svcctl-lkg-1") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}
