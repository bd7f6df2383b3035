// svcctl stats [SVC] [--by service|interface|address|key|version] [--top N] [--watch]: fetches
// /-/stats from every gateway registered under /gateway, all at once, merges their figures
// (counts summed, percentiles from the summed histograms) and prints them busiest first.
//
// Exit codes: 0 when at least one gateway answered (each one that did not is a warning on
// stderr and an "ok": false entry in the JSON "gateways"); 3 (not found) when no gateway
// is registered; 8 (could not be delivered) when gateways are registered but none
// answered; 5 when ZooKeeper is unreachable. --watch shows every round, whatever it found,
// until SIGINT or SIGTERM, and then exits 0.
#include "cli_tree.hpp"
#include "commands.hpp"
#include <svcctl/ops/fleet.hpp>
#include <svcctl/ops/stats_report.hpp>

#include <svcctl/gateway/stats.hpp>
#include <svcctl/model/model.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <thread>

namespace svcctl::cmd {

namespace stats = ops::stats;
namespace fleet = ops::fleet;

namespace {

struct StatsArgs {
  std::string service;
  std::string by = "service";
  std::size_t top = 0;
  bool watch = false;
  int interval_ms = 1000;
  int timeout_ms = 2000;
};

constexpr int k_min_interval_ms = 100;

nlohmann::json round_json(const stats::Round& round, const std::vector<stats::Row>& rows, const StatsArgs& a,
                          stats::By by) {
  nlohmann::json j = gateway::to_json(stats::only_service(round.merged, a.service));
  j["gateways"] = stats::gateways_json(round.gateways);
  j["by"] = stats::to_string(by);
  j["rows"] = stats::rows_json(rows, by);
  return j;
}

// The summary line (with `suffix`), the unrouted calls, and the table or why it is empty.
void print_table(const stats::Round& round, const std::vector<stats::Row>& rows, const StatsArgs& a, stats::By by,
                 stats::Rates rates, std::string_view suffix) {
  fmt::print("{}{}\n", stats::summary_line(round.gateways), suffix);
  if (auto u = stats::unrouted_line(round.merged.unrouted); !u.empty() && a.service.empty()) fmt::print("{}\n", u);
  fmt::print("\n");
  if (rows.empty()) {
    if (round.answered() == 0) return;
    if (a.service.empty()) fmt::print("no calls yet\n");
    else
      fmt::print("no calls to service {} through {}\n", a.service,
                 round.answered() == 1 ? "this gateway" : "these gateways");
    return;
  }
  std::cout << stats::table(rows, by, rates, round.answered()).render(output::use_color(stdout));
  std::cout.flush();
}

void warn_unreachable(Context& ctx, const stats::Reached& g) {
  ctx.warn(fmt::format("gateway {} at {}: {}", g.gateway.id, g.gateway.admin.empty() ? "-" : g.gateway.admin, g.error));
}

Expected<void> run_once(Context& ctx, registry::Registry& reg, const StatsArgs& a, stats::By by) {
  SVCCTL_TRY(auto round, fetch_round(ctx, reg, std::chrono::milliseconds(a.timeout_ms), true));
  if (round.gateways.empty())
    return fail(ErrorKind::NotFound,
                fmt::format("no gateway registered under /gateway on {} (is svcctl proxy running?)", ctx.zk));
  if (round.answered() == 0) {
    std::string why;
    for (const auto& g : round.gateways)
      why += fmt::format("{}{} ({})", why.empty() ? "" : "; ", g.gateway.id, g.error);
    return fail(ErrorKind::DeliveryFailed, fmt::format("no gateway answered: {}", why));
  }
  for (const auto& g : round.gateways)
    if (!g.ok()) warn_unreachable(ctx, g);
  auto rows = stats::build_rows(round, nullptr, {by, a.service, a.top});
  if (ctx.format == output::Format::Json) {
    if (rows.empty() && !a.service.empty())
      ctx.warn(fmt::format("no calls to service {} through the gateways that answered", a.service));
    output::print_json(round_json(round, rows, a, by));
    return {};
  }
  print_table(round, rows, a, by, stats::Rates::Hidden, "");
  return {};
}

// Sleeps until `next` or a stop signal.
void sleep_until(std::chrono::steady_clock::time_point next, const std::atomic<bool>& stop) {
  while (!stop && std::chrono::steady_clock::now() < next) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

// Warns when a gateway stops answering, not again every round while it stays away.
class UnreachableNotes {
 public:
  void update(Context& ctx, const std::vector<stats::Reached>& gateways) {
    std::set<std::string> now;
    for (const auto& g : gateways) {
      if (g.ok()) continue;
      now.insert(g.gateway.id);
      if (!m_failing.count(g.gateway.id)) warn_unreachable(ctx, g);
    }
    m_failing = std::move(now);
  }

 private:
  std::set<std::string> m_failing;
};

// Like top: a round every interval, requests per second from the difference with the one
// before. A table on a terminal redraws the screen; otherwise rounds follow each other
// (JSON: one object per line).
Expected<void> run_watch(Context& ctx, registry::Registry& reg, const StatsArgs& a, stats::By by) {
  const auto& stop = stop_on_signals();
  const bool json = ctx.format == output::Format::Json;
  const bool redraw = !json && output::stdout_is_tty();
  const stats::Query q{by, a.service, a.top};
  const auto interval = std::chrono::milliseconds(a.interval_ms);
  std::optional<stats::Round> before;
  UnreachableNotes notes;
  std::string last_error;
  bool first = true;
  while (!stop) {
    const auto next = std::chrono::steady_clock::now() + interval;
    auto round = fetch_round(ctx, reg, std::chrono::milliseconds(a.timeout_ms), first);
    if (!round) {
      // ZooKeeper away for a while: say so once and keep trying, as a watch should.
      if (round.error().message != last_error) ctx.warn(round.error().message);
      last_error = round.error().message;
      sleep_until(next, stop);
      continue;
    }
    last_error.clear();
    notes.update(ctx, round->gateways);
    auto rows = stats::build_rows(*round, before ? &*before : nullptr, q);
    const auto wall = std::chrono::system_clock::now();
    if (json) {
      auto j = round_json(*round, rows, a, by);
      j["at"] = fmt::format("{:%FT%TZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(wall)));
      fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      std::fflush(stdout);
    } else {
      if (redraw) fmt::print("\x1b[H\x1b[2J");
      else if (!first) fmt::print("\n");
      const auto local = fmt::localtime(std::chrono::system_clock::to_time_t(wall));
      print_table(*round, rows, a, by, stats::Rates::Shown, fmt::format("  ({:%T}, every {} ms)", local, a.interval_ms));
      std::fflush(stdout);
    }
    before = std::move(*round);
    first = false;
    sleep_until(next, stop);
  }
  return {};
}

Expected<void> run_stats(Context& ctx, const StatsArgs& a) {
  if (!a.service.empty()) SVCCTL_CHECK(model::validate_name("service", a.service));
  auto by = stats::parse_by(a.by);
  if (!by)
    return fail(ErrorKind::Usage, fmt::format("invalid --by \"{}\": use service, interface, address or key", a.by));
  if (a.timeout_ms < 1)
    return fail(ErrorKind::Usage, fmt::format("invalid --timeout-ms {}: use milliseconds ≥ 1", a.timeout_ms));
  if (a.interval_ms < k_min_interval_ms)
    return fail(ErrorKind::Usage,
                fmt::format("invalid --interval {}: use milliseconds ≥ {}", a.interval_ms, k_min_interval_ms));
  SVCCTL_TRY(auto* reg, ctx.registry());
  return a.watch ? run_watch(ctx, *reg, a, *by) : run_once(ctx, *reg, a, *by);
}

}  // namespace

void setup_stats(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<StatsArgs>();
  auto* s = app.add_subcommand("stats", "merge the request statistics of every gateway");
  s->add_option("SVC", args->service, "only this service");
  s->add_option("--by", args->by, "one row per service, interface, address, key or version")->capture_default_str();
  s->add_option("--top", args->top, "only the N busiest rows")->check(CLI::PositiveNumber);
  s->add_flag("--watch", args->watch, "refresh every --interval, with requests per second, until interrupted");
  s->add_option("--interval", args->interval_ms, "milliseconds between refreshes of --watch")
      ->capture_default_str();
  s->add_option("--timeout-ms", args->timeout_ms, "milliseconds to wait for each gateway's answer")
      ->capture_default_str();
  cli::choices(s->get_option("--by"), {"service", "interface", "address", "key", "version"});
  s->callback([&ctx, args] { ctx.action = [&ctx, args] { return run_stats(ctx, *args); }; });
}

}  // namespace svcctl::cmd
