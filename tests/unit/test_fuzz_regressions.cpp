// Replays every input under tests/fuzz/regressions/<target>/ through the same target bodies:
// whatever a fuzzer ever failed on (so a fixed finding stays fixed in every build), and
// hand-made inputs for the codec's edge paths (absurd lengths and nesting, cut headers,
// msgpack-php's nil-keyed object marker inside "p").
#include "../fuzz/targets.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace {
int replay(const char* target, void (*body)(std::string_view)) {
  int n = 0;
  std::filesystem::path dir = std::filesystem::path(SVCCTL_FUZZ_REGRESSIONS) / target;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    CAPTURE(e.path().string());
    body(s.str());
    ++n;
  }
  return n;
}
}  // namespace

TEST_CASE("saved fuzz findings stay fixed") {
  CHECK(replay("yar", svcctl::fuzz::yar) >= 2);
  CHECK(replay("msgpack", svcctl::fuzz::msgpack) >= 2);
  CHECK(replay("json", svcctl::fuzz::json) >= 1);
  CHECK(replay("convert", svcctl::fuzz::convert) >= 4);
}
