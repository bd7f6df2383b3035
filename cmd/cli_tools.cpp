// The hidden subcommands that render the command line itself (cmd/cli_tree.hpp):
//   svcctl __complete -- WORD...      what may come at the last word (completions/ call it)
//   svcctl __man PAGE PROSE [--out F] a man page from its prose (man/CMakeLists.txt calls it)
//   svcctl __cli-json                 the whole tree as JSON
// Their group is "", so --help, the completions and the man pages leave them out.
#include "cli_tree.hpp"
#include "commands.hpp"
#include "complete.hpp"
#include "manpage.hpp"

#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace svcctl::cmd {

namespace {

// Completion runs at every Tab: an unreachable ZooKeeper must cost at most this, unless a
// --zk-timeout was typed.
constexpr int k_complete_timeout_ms = 500;

std::string registry_folder(const cli::Completion& c) {
  switch (c.source) {
    case cli::Source::Services: return std::string(registry::paths::k_services);
    case cli::Source::Interfaces: return registry::paths::apis(c.service);
    case cli::Source::Addresses: return registry::paths::addresses(c.service);
    case cli::Source::Keys: return std::string(registry::paths::k_keys);
    default: return {};
  }
}

// The registry the words typed point at (--zk, --auth, --zk-timeout), else the environment's.
void point_at_typed_registry(Context& ctx, const cli::Completion& c) {
  auto typed = [&](const char* name) -> const std::string* {
    auto it = c.given.find(name);
    return it == c.given.end() ? nullptr : &it->second;
  };
  if (const auto* zk = typed("--zk")) ctx.zk = *zk;
  if (const auto* auth = typed("--auth")) ctx.auth = *auth;
  ctx.admin_id.clear();
  ctx.zk_timeout_ms = k_complete_timeout_ms;
  if (const auto* t = typed("--zk-timeout")) ctx.zk_timeout_ms = std::clamp(std::atoi(t->c_str()), 1, 60'000);
  ctx.quiet = true;
  ctx.verbose = false;
}

// Names for a registry source; none when ZooKeeper cannot tell (completion stays silent).
std::vector<std::string> registry_names(Context& ctx, const cli::Completion& c) {
  const auto folder = registry_folder(c);
  if (folder.empty()) return {};
  point_at_typed_registry(ctx, c);
  auto reg = ctx.registry();
  if (!reg) return {};
  auto names = (*reg)->names_under(folder);
  return names ? *names : std::vector<std::string>{};
}

// One line saying where candidates come from ("words" or "files"), then one per candidate:
// the word, a tab, its description.
void print_completion(Context& ctx, const cli::Completion& c) {
  if (c.source == cli::Source::Files) {
    fmt::print("files\n");
    return;
  }
  auto candidates = c.candidates;
  if (c.source != cli::Source::Words && c.source != cli::Source::Nothing)
    candidates = cli::matching(c, registry_names(ctx, c));
  fmt::print("words\n");
  for (const auto& cand : candidates) {
    auto description = cand.description;
    std::replace(description.begin(), description.end(), '\t', ' ');
    std::replace(description.begin(), description.end(), '\n', ' ');
    fmt::print("{}\t{}\n", cand.word, description);
  }
}

Expected<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorKind::Usage, fmt::format("cannot read \"{}\"", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Expected<void> write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return fail(ErrorKind::Error, fmt::format("cannot write \"{}\"", path));
  return {};
}

struct ManArgs {
  std::string page;
  std::string prose;
  std::string out;
};

Expected<void> run_man(const CLI::App& app, const ManArgs& a) {
  SVCCTL_TRY(auto prose, read_file(a.prose));
  SVCCTL_TRY(auto page, cli::render_page(cli::describe(app), a.page, prose));
  if (a.out.empty()) {
    fmt::print("{}", page);
    return {};
  }
  return write_file(a.out, page);
}

}  // namespace

void setup_cli_tools(CLI::App& app, Context& ctx) {
  auto words = std::make_shared<std::vector<std::string>>();
  auto* c = app.add_subcommand("__complete", "shell completion: candidates for the last word")->group("");
  c->add_option("WORD", *words, "the words after the program name, the last being completed");
  c->callback([&app, &ctx, words] {
    ctx.action = [&app, &ctx, words]() -> Expected<void> {
      print_completion(ctx, cli::complete(cli::describe(app), *words));
      return {};
    };
  });

  auto man = std::make_shared<ManArgs>();
  auto* m = app.add_subcommand("__man", "print a man page (mdoc) from its prose")->group("");
  m->add_option("PAGE", man->page, "svcctl or svcctl-<subcommand>")->required();
  m->add_option("PROSE", man->prose, "the page's prose, man/<page>.mdoc")->required();
  m->add_option("--out", man->out, "write the page to this file instead of standard output");
  m->callback([&app, &ctx, man] { ctx.action = [&app, man] { return run_man(app, *man); }; });

  auto* j = app.add_subcommand("__cli-json", "print the command line's tree as JSON")->group("");
  j->callback([&app, &ctx] {
    ctx.action = [&app]() -> Expected<void> {
      fmt::print("{}\n", cli::to_json(cli::describe(app)).dump(2));
      return {};
    };
  });
}

}  // namespace svcctl::cmd
