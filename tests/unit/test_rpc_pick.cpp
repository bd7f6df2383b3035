#include <svcctl/rpc/rpc.hpp>

#include <doctest/doctest.h>

#include <map>

using namespace svcctl;

namespace {
model::Address addr(const char* hp, const char* dc, std::int64_t weight,
                    model::Status status = model::Status::Up) {
  model::Address a;
  a.service = "s";
  a.address = hp;
  a.dc = dc;
  a.weight = weight;
  a.status = status;
  return a;
}
}  // namespace

TEST_CASE("pick_address: weights, datacenter preference, nothing to pick") {
  std::mt19937_64 rng(42);
  std::vector<model::Address> all{addr("a:1", "bj", 100), addr("b:1", "bj", 300),
                                  addr("c:1", "sh", 100), addr("d:1", "sh", 0),
                                  addr("e:1", "sh", 1000, model::Status::Down)};
  std::map<std::string, int> seen;
  for (int i = 0; i < 40000; ++i) ++seen[rpc::pick_address(all, "bj", rng)->address->address];
  CHECK(seen.size() == 2);  // only bj
  CHECK(seen["b:1"] / static_cast<double>(seen["a:1"]) == doctest::Approx(3.0).epsilon(0.1));

  seen.clear();
  for (int i = 0; i < 1000; ++i) ++seen[rpc::pick_address(all, "", rng)->address->address];
  CHECK(seen.count("d:1") == 0);  // weight 0
  CHECK(seen.count("e:1") == 0);  // down
  CHECK(seen.size() == 3);

  auto c = rpc::pick_address(all, "nowhere", rng);
  REQUIRE(c);
  CHECK(!c->in_preferred_dc);
  CHECK(c->candidates == 3);
  CHECK(c->total_weight == 500);

  std::vector<model::Address> none{addr("d:1", "sh", 0), addr("e:1", "sh", 5, model::Status::Down)};
  CHECK(!rpc::pick_address(none, "", rng));
  CHECK(!rpc::pick_address({}, "sh", rng));
}
