// Waiting for the gateways to follow a write (apply --wait, split --wait).
#include "commands.hpp"
#include <svcctl/ops/drain_report.hpp>
#include <svcctl/ops/fleet.hpp>

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

}  // namespace svcctl::cmd
