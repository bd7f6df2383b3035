// Passive outlier detection (lib/gateway outlier.hpp): failures in a row eject an address,
// longer each time, never past the share of its service; a success resets the count.
#include <svcctl/gateway/outlier.hpp>

#include <doctest/doctest.h>

using namespace svcctl::gateway;
using namespace std::chrono_literals;

namespace {
constexpr std::int64_t k_s = 1'000'000'000;
outlier::Rules rules() {
  outlier::Rules r;
  r.eject_after = 3;
  r.eject_base = 10s;
  r.eject_max = 25s;
  r.max_ejected_percent = 50;
  return r;
}
}  // namespace

TEST_CASE("outlier: the n-th failure in a row ejects, each ejection longer, at most the maximum") {
  Health h;
  const auto r = rules();
  auto none = [] { return std::size_t{0}; };
  CHECK_FALSE(outlier::failed(h, r, 0, 4, none));
  CHECK_FALSE(outlier::failed(h, r, 0, 4, none));
  auto e = outlier::failed(h, r, 0, 4, none);
  REQUIRE(e);
  CHECK(e->length == 10s);
  CHECK(e->failures == 3);
  CHECK(h.ejected(5 * k_s));
  CHECK_FALSE(h.ejected(10 * k_s));
  // Failing again while ejected (calls already under way) ejects nothing more.
  for (int i = 0; i < 5; ++i) CHECK_FALSE(outlier::failed(h, r, 1 * k_s, 4, none));
  // Back, and failing again: twice as long; a third time: the maximum.
  h.failures = 0;
  for (int i = 0; i < 2; ++i) CHECK_FALSE(outlier::failed(h, r, 11 * k_s, 4, none));
  e = outlier::failed(h, r, 11 * k_s, 4, none);
  REQUIRE(e);
  CHECK(e->length == 20s);
  for (int i = 0; i < 2; ++i) CHECK_FALSE(outlier::failed(h, r, 40 * k_s, 4, none));
  e = outlier::failed(h, r, 40 * k_s, 4, none);
  REQUIRE(e);
  CHECK(e->length == 25s);
}

TEST_CASE("outlier: a success resets the count, and a long healthy spell the ejection length") {
  Health h;
  const auto r = rules();
  auto none = [] { return std::size_t{0}; };
  outlier::failed(h, r, 0, 4, none);
  outlier::failed(h, r, 0, 4, none);
  outlier::succeeded(h, r, 0);
  CHECK_FALSE(outlier::failed(h, r, 0, 4, none));  // one in a row, not three
  outlier::failed(h, r, 0, 4, none);
  REQUIRE(outlier::failed(h, r, 0, 4, none));  // ejected until 10 s
  outlier::succeeded(h, r, 20 * k_s);  // healthy, not yet for eject_max past the ejection
  CHECK(h.times_ejected == 1);
  outlier::succeeded(h, r, 36 * k_s);
  CHECK(h.times_ejected == 0);
}

TEST_CASE("outlier: never more than the share of a service's addresses out at once; 0 never ejects") {
  Health h;
  auto r = rules();
  // Two of four out already: a third would be 75 %.
  auto two = [] { return std::size_t{2}; };
  for (int i = 0; i < 5; ++i) CHECK_FALSE(outlier::failed(h, r, 0, 4, two));
  auto one = [] { return std::size_t{1}; };
  CHECK(outlier::failed(h, r, 0, 4, one));
  Health never;
  r.eject_after = 0;
  for (int i = 0; i < 10; ++i) CHECK_FALSE(outlier::failed(never, r, 0, 4, one));
}
