// The command line as data, completion over it and the man pages rendered from it, on a
// small App shaped like svcctl's.
#include <cli_tree.hpp>
#include <complete.hpp>
#include <manpage.hpp>

#include <doctest/doctest.h>

#include <algorithm>

using namespace svcctl::cmd::cli;

namespace {

struct Fixture {
  CLI::App app{"tool", "svcctl"};
  std::string zk = "127.0.0.1:2181", output = "auto", status, svc, iface, file;
  bool quiet = false, idempotent = false;
  std::vector<std::string> many;

  Fixture() {
    app.add_option("--zk", zk, "connect string")->capture_default_str();
    choices(app.add_option("-o,--output", output, "format"), {"table", "json", "auto"});
    app.add_flag("-q,--quiet", quiet, "quiet");
    auto* reg = app.add_subcommand("register", "register things");
    auto* api = reg->add_subcommand("api", "register an interface");
    api->add_option("SVC", svc, "service")->required();
    api->add_option("IFACE", iface, "interface")->required();
    choices(api->add_option("--status", status, "up or down"), {"up", "down"});
    api->add_flag("--idempotent,!--no-idempotent", idempotent, "retry");
    auto* watch = app.add_subcommand("watch", "watch");
    watch->add_option("SVC", many, "services");
    watch->add_option("--lkg-file", file, "file")->type_name("FILE");
    app.add_subcommand("__complete", "hidden")->group("");
  }
  Command tree() const { return describe(app); }
};

std::vector<std::string> words_of(const Completion& c) {
  std::vector<std::string> out;
  for (const auto& cand : c.candidates) out.push_back(cand.word);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("describe: visible subcommands, names, values and defaults") {
  Fixture f;
  auto root = f.tree();
  REQUIRE(root.subcommands.size() == 2);  // __complete is hidden
  CHECK(root.find("__complete") == nullptr);
  const auto* api = root.find("register")->find("api");
  REQUIRE(api);
  CHECK(api->display_name() == "svcctl register api");
  REQUIRE(api->positionals.size() == 2);
  CHECK(api->positionals[1].name == "IFACE");
  auto status = std::find_if(api->options.begin(), api->options.end(),
                             [](const Option& o) { return o.names.front() == "--status"; });
  REQUIRE(status != api->options.end());
  CHECK(status->choices == std::vector<std::string>{"up", "down"});
  auto idem = std::find_if(api->options.begin(), api->options.end(),
                           [](const Option& o) { return o.names.front() == "--idempotent"; });
  REQUIRE(idem != api->options.end());
  CHECK(idem->names == std::vector<std::string>{"--idempotent", "--no-idempotent"});
  CHECK(idem->value.empty());
  CHECK(root.options[1].default_value == "127.0.0.1:2181");
}

TEST_CASE("complete: subcommands, options, values, registry sources") {
  Fixture f;
  auto root = f.tree();
  CHECK(words_of(complete(root, {"re"})) == std::vector<std::string>{"register"});
  CHECK(words_of(complete(root, {""})) == std::vector<std::string>{"register", "watch"});
  CHECK(words_of(complete(root, {"register", ""})) == std::vector<std::string>{"api"});

  auto opts = words_of(complete(root, {"register", "api", "-"}));
  CHECK(has(opts, "--status"));
  CHECK(has(opts, "--no-idempotent"));
  CHECK(has(opts, "-o"));  // global options are accepted after the subcommand
  CHECK(has(opts, "--zk"));

  CHECK(words_of(complete(root, {"-o", ""})) == std::vector<std::string>{"table", "json", "auto"});
  CHECK(words_of(complete(root, {"-oj"})).empty());  // a short option's attached value is not completed
  CHECK(words_of(complete(root, {"register", "api", "--status=d"})) == std::vector<std::string>{"--status=down"});

  auto svc = complete(root, {"--zk", "h:1/c", "register", "api", "he"});
  CHECK(svc.source == Source::Services);
  CHECK(svc.given.at("--zk") == "h:1/c");
  auto names = matching(svc, {"hello", "other"});
  REQUIRE(names.size() == 1);
  CHECK(names[0].word == "hello");

  auto iface = complete(root, {"register", "api", "-q", "hello", ""});
  CHECK(iface.source == Source::Interfaces);
  CHECK(iface.service == "hello");

  CHECK(complete(root, {"watch", "a", "b", ""}).source == Source::Services);  // SVC... repeats
  CHECK(complete(root, {"watch", "--lkg-file", ""}).source == Source::Files);
  CHECK(complete(root, {"--zk", ""}).source == Source::Nothing);
}

TEST_CASE("render_page: markers, every option, escaping") {
  Fixture f;
  auto root = f.tree();
  auto page = render_page(root, "svcctl-register", ".Dd November 22, 2026\n@head\n.Sh DESCRIPTION\nText.\n@options\n");
  REQUIRE(page);
  CHECK(page->find(".Dt SVCCTL-REGISTER 1") != std::string::npos);
  CHECK(page->find(".Cm register api\n.Ar SVC\n.Ar IFACE\n.Op Fl -status Ar up|down\n") != std::string::npos);
  CHECK(page->find(".It Fl -idempotent , Fl -no-idempotent\n") != std::string::npos);
  CHECK(page->find(".Ss svcctl register api\n") != std::string::npos);

  auto root_page = render_page(root, "svcctl", ".Dd November 22, 2026\n@head\n@commands\n@options\n");
  REQUIRE(root_page);
  CHECK(root_page->find(".It Fl o , Fl -output Ar table|json|auto\n") != std::string::npos);
  CHECK(root_page->find("Default: 127.0.0.1:2181.") != std::string::npos);
  CHECK(root_page->find(".Xr svcctl-watch 1 .") != std::string::npos);

  CHECK(!render_page(root, "svcctl-register", "@head\n"));            // no @options
  CHECK(!render_page(root, "svcctl-nothing", "@head\n@options\n"));  // no such command
}
