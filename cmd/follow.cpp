// The fleet of gateways as commands see it: waiting for them to follow a write (apply,
// split, rollout), and one round of every one's figures (stats, rollout).
#include "commands.hpp"
#include <svcctl/ops/drain_report.hpp>
#include <svcctl/ops/fleet.hpp>
#include <svcctl/ops/stats_report.hpp>

#include <svcctl/gateway/stats.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace svcctl::cmd {

Expected<void> wait_for_gateways(Context& ctx, registry::Registry& reg, std::int64_t zxid,
                                 std::vector<std::string> services, std::chrono::milliseconds timeout,
                                 nlohmann::json& out) {
  namespace drain = ops::drain;
  drain::Progress progress(zxid, drain::Need::Seen, drain::Unreachable::Wait);
  SVCCTL_TRY(auto o, ops::fleet::follow({ctx.noter(), ctx.warner()}, reg, {std::move(services), {}}, timeout,
                                        std::move(progress)));
  if (o.no_gateway) ctx.note("no gateway is registered under /gateway: nothing to wait for");
  out["wait"] = {{"gateways", o.progress.gateways().size()}, {"waited_ms", o.waited_ms}};
  if (o.timed_out)
    return fail(ErrorKind::TimedOut, fmt::format("written at zxid {}, but after {} ms not every gateway has it: {}",
                                                 drain::hex(zxid), o.waited_ms, fmt::join(o.progress.waiting(), "; ")));
  if (ctx.format != output::Format::Json && !ctx.quiet)
    fmt::print("every gateway ({}) has it, after {} ms\n", o.progress.gateways().size(), o.waited_ms);
  return {};
}

// Lists the gateways and fetches every one's figures at once. `warn` says whether
// problems in their nodes' data are told (once, not every round of --watch).
Expected<ops::stats::Round> fetch_round(Context& ctx, registry::Registry& reg, std::chrono::milliseconds timeout, bool warn) {
  SVCCTL_TRY(auto gateways, reg.list_gateways());
  ops::stats::Round round;
  std::vector<model::Gateway> asked;
  for (auto& g : gateways) {
    if (warn) ctx.warn_problems(g.problems);
    asked.push_back(std::move(g.gateway));
  }
  auto replies = ops::fleet::ask_admins(asked, "/-/stats?histograms=1", timeout);
  round.at = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < gateways.size(); ++i) {
    ops::stats::Reached reached{std::move(asked[i]), {}};
    auto view = replies[i] ? gateway::stats_from_json(*replies[i]) : fail(replies[i].error());
    if (!view) {
      reached.error = view.error().message;
    } else {
      // The node's data changes with the process (its pid, start time): see Answer::identity.
      round.answers.push_back({reached.gateway.id + '\n' + gateways[i].data.dump(), std::move(*view)});
    }
    round.gateways.push_back(std::move(reached));
  }
  ops::stats::merge_answers(round);
  return round;
}

}  // namespace svcctl::cmd
