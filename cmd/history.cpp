// svcctl history [SVC] [--since DURATION] [--limit N]: the records of svcctl's writes
// (lib/registry/history.hpp), oldest first; svcctl revert ID: the plan that undoes one,
// carried out as apply carries out a plan (shown, asked for, --yes, --wait), every step
// pinned to the version the record left.
#include "commands.hpp"

#include <svcctl/registry/history.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <memory>

namespace svcctl::cmd {

namespace {

struct HistoryArgs {
  std::string service;
  std::string since;
  int limit = 0;
  int set_keep = 0;
  const CLI::Option* set_keep_given = nullptr;
};

struct RevertArgs {
  std::string id;
  PlanRun run;
};

// Local time, to the second, with the zone's offset: "2026-12-04 15:02:11 +0000".
std::string local_time(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  return fmt::format("{:%Y-%m-%d %H:%M:%S %z}", tm);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Expected<void> run_history(Context& ctx, const HistoryArgs& a) {
  if (a.limit < 0) return fail(ErrorKind::Usage, "--limit must be 0 (all) or more");
  if (a.set_keep_given && a.set_keep_given->count() > 0) {
    if (a.set_keep < 1) return fail(ErrorKind::Usage, "--set-keep must be at least 1");
    if (!a.service.empty() || !a.since.empty() || a.limit != 0)
      return fail(ErrorKind::Usage, "--set-keep takes no SVC, --since or --limit");
    SVCCTL_TRY(auto* reg, ctx.registry());
    SVCCTL_CHECK(reg->set_history_keep(static_cast<std::size_t>(a.set_keep)));
    if (ctx.format == output::Format::Json) output::print_json({{"keep", a.set_keep}});
    else if (!ctx.quiet) fmt::print("the history keeps the newest {} records\n", a.set_keep);
    return {};
  }
  std::int64_t since_ms = 0;
  if (!a.since.empty()) {
    SVCCTL_TRY(auto seconds, model::parse_duration_s("--since", a.since));
    since_ms = now_ms() - seconds * 1000;
  }
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto listing, reg->history(a.service, since_ms));
  ctx.warn_problems(listing.problems);
  auto& records = listing.records;
  if (a.limit > 0 && records.size() > static_cast<std::size_t>(a.limit))
    records.erase(records.begin(), records.end() - a.limit);
  if (ctx.format == output::Format::Json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : records) {
      auto j = r.to_json();
      j["time"] = local_time(r.time_ms);
      out.push_back(std::move(j));
    }
    output::print_json(out);
    return {};
  }
  if (records.empty()) {
    if (!ctx.quiet) fmt::print("no records{}\n", a.service.empty() ? "" : " for service " + a.service);
    return {};
  }
  // As git log shows commits: a heading line, then what changed, indented.
  for (const auto& r : records) {
    fmt::print("#{}  {}  {}  {}\n", r.id, local_time(r.time_ms), r.who, r.command);
    for (const auto& line : r.lines()) fmt::print("    {}\n", line);
  }
  return {};
}

Expected<void> run_revert(Context& ctx, const RevertArgs& a) {
  if (a.run.wait_timeout_ms < 1) return fail(ErrorKind::Usage, "--wait-timeout-ms must be at least 1");
  SVCCTL_TRY(auto id, model::parse_positive("record id", a.id.starts_with('#') ? a.id.substr(1) : a.id,
                                            std::numeric_limits<std::int32_t>::max()));
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto record, reg->record(id));
  SVCCTL_TRY(auto tree, reg->read_tree());
  SVCCTL_TRY(auto plan, registry::revert_plan(record, tree));
  if (ctx.format != output::Format::Json && !ctx.quiet)
    fmt::print("reverting #{} ({}, {}): {}\n", record.id, local_time(record.time_ms), record.who, record.command);
  nlohmann::json out = plan.to_json();
  out["record"] = record.id;
  return carry_out(ctx, *reg, plan, a.run, std::move(out));
}

}  // namespace

void setup_history(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<HistoryArgs>();
  auto* c = app.add_subcommand("history", "list the writes svcctl made: who, when, the command, each node before and after");
  c->add_option("SVC", a->service, "only the records that touch this service")->type_name("SVC");
  c->add_option("--since", a->since, "only the records of this last span of time (90s, 15m, 2h, 7d)")
      ->type_name("DURATION");
  c->add_option("--limit", a->limit, "only the newest N records (0: all)")->type_name("N")->capture_default_str();
  a->set_keep_given = c->add_option("--set-keep", a->set_keep,
                "set how many records the history keeps, for every writer (default 1000); the oldest beyond go")
      ->type_name("N");
  c->callback([&ctx, a] { ctx.action = [&ctx, a] { return run_history(ctx, *a); }; });
}

void setup_revert(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<RevertArgs>();
  auto* c = app.add_subcommand("revert", "undo one recorded write: its nodes back to their data before, as one "
                                         "compare-and-set plan");
  c->add_option("ID", a->id, "the record's number, as svcctl history shows it")->required()->type_name("ID");
  add_plan_options(c, a->run);
  c->callback([&ctx, a] { ctx.action = [&ctx, a] { return run_revert(ctx, *a); }; });
}

}  // namespace svcctl::cmd
