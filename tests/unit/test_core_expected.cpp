#include <svcctl/core/expected.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace svcctl;

namespace {
Expected<int> half(int v) {
  if (v % 2) return fail(ErrorKind::Usage, "odd");
  return v / 2;
}
Expected<int> quarter(int v) {
  SVCCTL_TRY(int h, half(v));
  SVCCTL_TRY(int q, half(h));
  return q;
}
Expected<void> check_even(int v) {
  SVCCTL_CHECK(half(v));
  return {};
}
}  // namespace

TEST_CASE("exit codes are the documented numbers") {
  CHECK(exit_code(ErrorKind::Error) == 1);
  CHECK(exit_code(ErrorKind::Usage) == 2);
  CHECK(exit_code(ErrorKind::NotFound) == 3);
  CHECK(exit_code(ErrorKind::Conflict) == 4);
  CHECK(exit_code(ErrorKind::Unavailable) == 5);
  CHECK(exit_code(ErrorKind::PermissionDenied) == 6);
  CHECK(exit_code(ErrorKind::RemoteError) == 7);
  CHECK(exit_code(ErrorKind::DeliveryFailed) == 8);
  CHECK(exit_code(ErrorKind::Unsafe) == 9);
  CHECK(kind_name(ErrorKind::NotFound) == "not_found");
}

TEST_CASE("Expected carries a value or an error, and SVCCTL_TRY propagates") {
  auto ok = quarter(8);
  REQUIRE(ok);
  CHECK(*ok == 2);
  auto bad = quarter(6);  // 6 → 3 → odd
  REQUIRE(!bad);
  CHECK(bad.error().kind == ErrorKind::Usage);
  CHECK(bad.error().message == "odd");
  CHECK(check_even(4).has_value());
  CHECK(!check_even(5).has_value());
  Expected<std::string> s = std::string("x");
  CHECK(s->size() == 1);
}
