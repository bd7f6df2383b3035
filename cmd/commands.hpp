// The table of subcommands.
//
// To add a subcommand:
//   1. write cmd/<name>.cpp with `void setup_<name>(CLI::App& app, Context& ctx)`, which adds
//      the subcommand, its options (validated with lib/model parsers) and a parse callback
//      that sets ctx.action; the action calls one library facade and prints via lib/output;
//   2. declare setup_<name> below and add a row to k_commands;
//   3. add the file to cmd/CMakeLists.txt;
//   4. document it in README.md (tour, with real output) and cover it in tests/integration;
//   5. write its man page's prose, man/svcctl-<name>.mdoc (see man/README.md); --help,
//      completion and the page's synopsis and options follow from the options themselves
//      (declare enumerated values with cli::choices, cmd/cli_tree.hpp).
#pragma once

#include "context.hpp"

#include <svcctl/model/model.hpp>
#include <svcctl/ops/stats_report.hpp>
#include <svcctl/registry/declare.hpp>
#include <svcctl/registry/registry.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace svcctl::cmd {

void setup_register(CLI::App& app, Context& ctx);
void setup_unregister(CLI::App& app, Context& ctx);
void setup_list(CLI::App& app, Context& ctx);
void setup_call(CLI::App& app, Context& ctx);
void setup_watch(CLI::App& app, Context& ctx);
void setup_proxy(CLI::App& app, Context& ctx);
void setup_stats(CLI::App& app, Context& ctx);
void setup_drain(CLI::App& app, Context& ctx);
void setup_undrain(CLI::App& app, Context& ctx);
void setup_doctor(CLI::App& app, Context& ctx);
void setup_apply(CLI::App& app, Context& ctx);
void setup_export(CLI::App& app, Context& ctx);
void setup_split(CLI::App& app, Context& ctx);
void setup_rollout(CLI::App& app, Context& ctx);
void setup_history(CLI::App& app, Context& ctx);
void setup_revert(CLI::App& app, Context& ctx);

// The split as `split` takes it and as `list` and `split` show it (cmd/split.cpp).
Expected<std::vector<model::VersionShare>> parse_split(const std::vector<std::string>& items);
std::string describe_split(const model::Service& s);

// After a write at `zxid`, waits until every live gateway's view has it (cmd/follow.cpp),
// saying so on a terminal, and adds "wait" to `out`; TimedOut (exit 10) past `timeout`.
Expected<void> wait_for_gateways(Context& ctx, registry::Registry& reg, std::int64_t zxid,
                                 std::vector<std::string> services, std::chrono::milliseconds timeout,
                                 nlohmann::json& out);
// Lists the gateways and fetches every one's figures (with histograms) at once
// (cmd/follow.cpp). `warn`: tell the problems in their nodes' data.
Expected<ops::stats::Round> fetch_round(Context& ctx, registry::Registry& reg, std::chrono::milliseconds timeout,
                                        bool warn);

// How a plan is carried out (apply, revert; cmd/apply.cpp): shown, refused (exit 9) when
// unsafe without --force, asked for on a terminal unless --yes, written in one
// multi-operation, then with --wait waited for; `out` (the plan's JSON) printed with -o json.
struct PlanRun {
  bool yes = false;
  bool dry_run = false;
  bool force = false;
  bool wait = false;
  int wait_timeout_ms = 30'000;
};
void add_plan_options(CLI::App* command, PlanRun& run);
Expected<void> carry_out(Context& ctx, registry::Registry& reg, const registry::Plan& plan, const PlanRun& run,
                         nlohmann::json out);

// The hidden ones (group ""): __complete, __man, __cli-json (cmd/cli_tools.cpp).
void setup_cli_tools(CLI::App& app, Context& ctx);

struct Command {
  const char* name;
  void (*setup)(CLI::App& app, Context& ctx);
};

inline constexpr Command k_commands[] = {
    {"register", setup_register},
    {"unregister", setup_unregister},
    {"list", setup_list},
    {"call", setup_call},
    {"watch", setup_watch},
    {"proxy", setup_proxy},
    {"stats", setup_stats},
    {"drain", setup_drain},
    {"undrain", setup_undrain},
    {"doctor", setup_doctor},
    {"apply", setup_apply},
    {"export", setup_export},
    {"split", setup_split},
    {"rollout", setup_rollout},
    {"history", setup_history},
    {"revert", setup_revert},
    {"__cli", setup_cli_tools},
};

}  // namespace svcctl::cmd
