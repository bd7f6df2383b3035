// Replays every input a fuzzer ever failed on (tests/fuzz/regressions/<target>/) through the
// same target bodies, so a fixed finding stays fixed in every build.
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
    if (!e.is_regular_file() || e.path().filename() == ".keep") continue;
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
  int n = replay("yar", svcctl::fuzz::yar) + replay("msgpack", svcctl::fuzz::msgpack) +
          replay("json", svcctl::fuzz::json);
  MESSAGE("replayed ", n, " saved inputs");
}
