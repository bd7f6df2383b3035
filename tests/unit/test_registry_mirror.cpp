// The cache's reconciliation as a pure unit: answers in, changes and reads out.
#include <svcctl/registry/mirror.hpp>
#include <svcctl/registry/paths.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace svcctl;
using namespace svcctl::registry;
using Kind = Mirror::ReadKind;

namespace {

zk::Node node(std::string data, std::int64_t czxid, std::int64_t mzxid) {
  zk::Node n;
  n.data = std::move(data);
  n.stat.czxid = czxid;
  n.stat.mzxid = mzxid;
  return n;
}

zk::Stat listing_stat(std::int64_t czxid, std::int64_t pzxid) {
  zk::Stat st;
  st.czxid = czxid;
  st.mzxid = czxid;
  st.pzxid = pzxid;
  return st;
}

// "added /service/a", ... for what one answer changed.
std::vector<std::string> said(const Mirror::Out& out) {
  std::vector<std::string> v;
  for (const auto& c : out.changes) v.push_back(fmt::format("{} {}", to_string(c.kind), c.path));
  return v;
}

// The nth service name (from 0) that session `want` reads.
std::string read_by(const Mirror& m, std::size_t want, int nth = 0) {
  for (int i = 0;; ++i) {
    std::string n = fmt::format("svc{}", i);
    if (m.session_of(paths::service(n)) == want && nth-- == 0) return n;
  }
}

}  // namespace

TEST_CASE("mirror: a listing's new names are read, each by the session its name hashes to") {
  Mirror m(2);
  Mirror::Out out;
  m.children(0, "/address", zk::Code::Ok, {"a", "b"}, listing_stat(1, 5), out);
  CHECK(said(out) == std::vector<std::string>{"added /address"});
  REQUIRE(out.reads.size() == 2);
  CHECK(out.reads[0] == Mirror::Read{m.session_of("/address/a"), "/address/a", Kind::Children});
  CHECK(out.reads[1] == Mirror::Read{m.session_of("/address/b"), "/address/b", Kind::Children});
  Mirror::Out again;
  m.children(0, "/address", zk::Code::Ok, {"a", "b"}, listing_stat(1, 5), again);
  CHECK(again.reads.empty());  // known names are not read again
  CHECK(again.changes.empty());
  // Under /address/{svc}, leaves: their data is read.
  Mirror::Out leaves;
  m.children(m.session_of("/address/a"), "/address/a", zk::Code::Ok, {"10.0.0.1:80"}, listing_stat(2, 6), leaves);
  REQUIRE(leaves.reads.size() == 1);
  CHECK(leaves.reads[0].kind == Kind::Data);
}

TEST_CASE("mirror: a node's mzxid never goes back") {
  Mirror m(1);
  Mirror::Out out;
  m.data(0, "/service/s", zk::Code::Ok, node("v2", 3, 9), out);
  m.data(0, "/service/s", zk::Code::Ok, node("v1", 3, 4), out);  // an older member's answer
  m.data(0, "/service/s", zk::Code::Ok, node("v2", 3, 9), out);  // the same state again
  CHECK(said(out) == std::vector<std::string>{"added /service/s"});
  CHECK(m.find("/service/s")->data == "v2");
  m.data(0, "/service/s", zk::Code::Ok, node("v3", 3, 12), out);
  CHECK(said(out).back() == "modified /service/s");
  CHECK(out.changes.back().before->data == "v2");
  CHECK(m.find("/service/s")->data == "v3");
}

TEST_CASE("mirror: a listing made after a node was created, and without it, wins over an older read") {
  Mirror m(1);
  Mirror::Out out;
  m.children(0, "/service", zk::Code::Ok, {}, listing_stat(1, 20), out);
  out = {};
  m.data(0, "/service/gone", zk::Code::Ok, node("x", 15, 15), out);  // created at 15, listing at 20 lacks it
  CHECK(out.changes.empty());
  CHECK(m.find("/service/gone") == nullptr);
  m.data(0, "/service/new", zk::Code::Ok, node("x", 25, 25), out);  // created after that listing
  CHECK(said(out) == std::vector<std::string>{"added /service/new"});
}

TEST_CASE("mirror: an older listing that lacks a node created after it does not delete it") {
  Mirror m(1);
  Mirror::Out out;
  m.children(0, "/service", zk::Code::Ok, {"a"}, listing_stat(1, 10), out);
  m.data(0, "/service/a", zk::Code::Ok, node("x", 10, 10), out);
  m.data(0, "/service/b", zk::Code::Ok, node("y", 30, 30), out);  // read first, from a member further ahead
  out = {};
  m.children(0, "/service", zk::Code::Ok, {"a"}, listing_stat(1, 20), out);  // made before b existed
  CHECK(out.changes.empty());
  CHECK(m.find("/service/b") != nullptr);
  m.children(0, "/service", zk::Code::Ok, {"a"}, listing_stat(1, 40), out);  // made after: b is gone
  CHECK(said(out) == std::vector<std::string>{"deleted /service/b"});
}

TEST_CASE("mirror: a node another session's listing names, but its own member cannot see yet, is waited for") {
  Mirror m(2);
  const std::string svc = read_by(m, 1);
  const std::string path = paths::service(svc);
  Mirror::Out out;
  m.children(0, "/service", zk::Code::Ok, {svc}, listing_stat(1, 20), out);
  REQUIRE(out.reads.size() == 1);
  CHECK(out.reads[0] == Mirror::Read{1, path, Kind::Data});
  out = {};
  m.data(1, path, zk::Code::NoNode, {}, out);  // session 1's member is behind
  CHECK(out.changes.empty());
  REQUIRE(out.reads.size() == 1);
  CHECK(out.reads[0] == Mirror::Read{1, path, Kind::Exists});
  // The exists watch fires once the member has it: read it.
  out = {};
  m.exists(1, path, out);
  REQUIRE(out.reads.size() == 1);
  CHECK(out.reads[0] == Mirror::Read{1, path, Kind::Data});
  // Still named by the listing: the read is not taken for a node deleted since it.
  m.data(1, path, zk::Code::Ok, node("v1", 18, 18), out);
  CHECK(said(out) == std::vector<std::string>{"added " + path});
}

TEST_CASE("mirror: a node gone for the session that lists it too is deleted, not waited for") {
  Mirror m(1);
  Mirror::Out out;
  m.children(0, "/service", zk::Code::Ok, {"a"}, listing_stat(1, 10), out);
  m.data(0, "/service/a", zk::Code::Ok, node("x", 10, 10), out);
  out = {};
  m.data(0, "/service/a", zk::Code::NoNode, {}, out);
  CHECK(said(out) == std::vector<std::string>{"deleted /service/a"});
  CHECK(out.reads.empty());
  // Its name left the parent's list: the next listing that names it again reads it.
  out = {};
  m.children(0, "/service", zk::Code::Ok, {"a"}, listing_stat(1, 12), out);
  REQUIRE(out.reads.size() == 1);
  CHECK(out.reads[0].path == "/service/a");
}

TEST_CASE("mirror: a container gone takes everything below it; a root gone is waited for") {
  Mirror m(1);
  Mirror::Out out;
  m.children(0, "/address", zk::Code::Ok, {"s"}, listing_stat(1, 2), out);
  m.children(0, "/address/s", zk::Code::Ok, {"a:1", "b:2"}, listing_stat(2, 4), out);
  m.data(0, "/address/s/a:1", zk::Code::Ok, node("{}", 3, 3), out);
  m.data(0, "/address/s/b:2", zk::Code::Ok, node("{}", 4, 4), out);
  out = {};
  m.children(0, "/address/s", zk::Code::NoNode, {}, {}, out);
  CHECK(out.changes.size() == 3);
  CHECK(m.find("/address/s/a:1") == nullptr);
  CHECK(m.find("/address/s") == nullptr);
  out = {};
  m.children(0, "/address", zk::Code::NoNode, {}, {}, out);
  CHECK(said(out) == std::vector<std::string>{"deleted /address"});
  REQUIRE(out.reads.size() == 1);
  CHECK(out.reads[0] == Mirror::Read{0, "/address", Kind::Exists});
}

TEST_CASE("mirror: a round reads its session's share again and sweeps what it did not see") {
  Mirror m(2);
  const std::string a = paths::service(read_by(m, 1));
  Mirror::Out out;
  m.data(1, a, zk::Code::Ok, node("x", 5, 5), out);
  m.data(0, paths::service(read_by(m, 0)), zk::Code::Ok, node("y", 6, 6), out);
  const std::string b = paths::service(read_by(m, 1, 1));  // gone meanwhile
  m.data(1, b, zk::Code::Ok, node("{}", 7, 7), out);

  auto reads = m.begin_round(1, Mirror::RoundKind::Sweep);
  CHECK(m.sweeping(1));
  std::vector<std::string> paths_read;
  for (const auto& r : reads) {
    CHECK(r.session == 1);
    paths_read.push_back(r.path);
  }
  CHECK(std::find(paths_read.begin(), paths_read.end(), a) != paths_read.end());
  CHECK(paths_read.size() == m.held_by(1).size());
  out = {};
  m.data(1, a, zk::Code::Ok, node("x", 5, 5), out);  // seen again, unchanged
  const std::size_t seen = m.end_round(1, out);
  CHECK(seen == 1);
  CHECK(m.find(a) != nullptr);
  CHECK(paths_read.size() == 2);
  CHECK(m.find(b) == nullptr);  // not seen again: swept
  CHECK(said(out) == std::vector<std::string>{"deleted " + b});
  CHECK(m.held_by(0).size() == 1);  // session 0's share is not this round's
  CHECK(!m.sweeping(1));
  // A round without a sweep (a reconnect) reads nothing and removes nothing.
  CHECK(m.begin_round(1, Mirror::RoundKind::Listings).empty());
  out = {};
  m.end_round(1, out);
  CHECK(out.changes.empty());
}

TEST_CASE("mirror: a snapshot keeps its view while the mirror changes") {
  Mirror m(1);
  Mirror::Out out;
  m.data(0, "/service/s", zk::Code::Ok, node("v1", 1, 1), out);
  Snapshot snap;
  m.share_into(snap);
  m.data(0, "/service/s", zk::Code::Ok, node("v2", 1, 2), out);
  m.data(0, "/service/t", zk::Code::Ok, node("t", 3, 3), out);
  CHECK(snap.find("/service/s")->data == "v1");
  CHECK(snap.find("/service/t") == nullptr);
  CHECK(m.find("/service/s")->data == "v2");
  Snapshot later;
  m.share_into(later);
  CHECK(later.size() == 2);
}

TEST_CASE("mirror: a node taken from a file learns when it was created from its first read") {
  Mirror m(1);
  Mirror::Out out;
  m.from_file("/service/s", CacheEntry{"v1", 7, 0, 0, false, 0}, out);
  CHECK(said(out) == std::vector<std::string>{"added /service/s"});
  out = {};
  m.data(0, "/service/s", zk::Code::Ok, node("v1", 4, 7), out);  // the same state: no change
  CHECK(out.changes.empty());
  CHECK(m.find("/service/s")->czxid == 4);
}

TEST_CASE("mirror: a round that starts a new history takes the answers whatever their zxids") {
  // A rebuilt or restored ensemble numbers its log again from low zxids: a node recreated
  // there has a lower mzxid than the one held, and listings' pzxids are lower too.
  Mirror m(1);
  Mirror::Out out;
  m.children(0, "/service", zk::Code::Ok, {"kept", "old"}, listing_stat(1, 40), out);
  m.data(0, "/service/kept", zk::Code::Ok, node("before", 20, 30), out);
  m.data(0, "/service/old", zk::Code::Ok, node("x", 40, 40), out);
  const auto reads = m.begin_round(0, Mirror::RoundKind::NewHistory);
  CHECK(reads.size() == 3);
  out = {};
  m.data(0, "/service/new", zk::Code::Ok, node("n", 6, 6), out);  // the old listing (pzxid 40) says nothing
  m.children(0, "/service", zk::Code::Ok, {"kept", "new"}, listing_stat(1, 8), out);  // "old": created at 40 elsewhere
  m.data(0, "/service/kept", zk::Code::Ok, node("after", 3, 7), out);
  m.data(0, "/service/kept", zk::Code::Ok, node("older", 3, 5), out);  // within the new log: never back
  CHECK(said(out) == std::vector<std::string>{"added /service/new", "deleted /service/old", "modified /service/kept"});
  CHECK(m.find("/service/kept")->data == "after");
  m.end_round(0, out);
  CHECK(m.size() == 3);  // /service, kept, new
}
