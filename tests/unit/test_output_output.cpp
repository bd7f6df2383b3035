#include <svcctl/output/output.hpp>

#include <doctest/doctest.h>

using namespace svcctl::output;

TEST_CASE("format resolution") {
  CHECK(*parse_format("auto", true) == Format::Table);
  CHECK(*parse_format("auto", false) == Format::Json);
  CHECK(*parse_format("", false) == Format::Json);
  CHECK(*parse_format("table", false) == Format::Table);
  CHECK(*parse_format("json", true) == Format::Json);
  CHECK(!parse_format("yaml", true));
}

TEST_CASE("tables align on the widest cell, in code points") {
  Table t({"NAME", "STATUS", "NOTE"});
  t.add_row({{"a"}, {"up", Tone::Good}, {"x"}});
  t.add_row({{"längere"}, {"down", Tone::Bad}, {""}});
  CHECK(t.render(Color::Off) ==
        "NAME     STATUS  NOTE\n"
        "a        up      x\n"
        "längere  down    \n");
  auto colored = t.render(Color::On);
  CHECK(colored.find("\x1b[32mup\x1b[0m") != std::string::npos);
  CHECK(colored.find("\x1b[31mdown\x1b[0m") != std::string::npos);
}

TEST_CASE("rows shorter than the header are padded") {
  Table t({"A", "B"});
  t.add_row({{"x"}});
  CHECK(t.render(Color::Off) == "A  B\nx  \n");
}
