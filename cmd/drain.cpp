// svcctl drain SVC HOST:PORT: marks the address down, then waits until every gateway under
// /gateway has seen that write and has no call left in flight to the address, so that a
// deploy can stop the provider without cutting a call. svcctl undrain SVC HOST:PORT marks
// it up again (with --wait: until every gateway has seen it).
//
// Exit codes: 0 done (also when no gateway is registered: there is nothing to wait for);
// 3 the service or address does not exist; 9 the last up address, without --force;
// 10 timed out (stderr says which gateways still had calls in flight, had not seen the
// change, or did not answer; the address stays down); 5 ZooKeeper unreachable.
#include "commands.hpp"
#include <svcctl/ops/drain_report.hpp>
#include <svcctl/ops/fleet.hpp>

#include <svcctl/model/model.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <memory>

namespace svcctl::cmd {

namespace drain = ops::drain;
namespace fleet = ops::fleet;

namespace {

using std::chrono::milliseconds;

struct DrainArgs {
  std::string service;
  std::string address;
  int timeout_ms = 30000;
  bool force = false;
  bool ignore_unreachable = false;
  bool wait = false;  // undrain
};

void print_outcome(Context& ctx, const DrainArgs& a, const fleet::Outcome& o, std::string_view done_field,
                   const registry::WriteResult& w) {
  for (const auto& g : o.progress.gateways())
    if (g.ignored)
      ctx.warn(fmt::format("gateway {} did not answer ({}); counted as {} (--ignore-unreachable)", g.gateway.id,
                           g.error, done_field));
  if (ctx.format == output::Format::Json) {
    output::print_json(drain::result_json(o.progress, done_field, a.service, a.address,
                                          registry::to_string(w.action), o.waited_ms));
    return;
  }
  if (ctx.quiet || o.timed_out) return;
  const auto n = o.progress.gateways().size();
  if (o.no_gateway) {
    fmt::print("{} {} of service {} (zxid {}); no gateway registered\n", done_field, a.address, a.service,
               drain::hex(o.progress.zxid()));
  } else if (done_field == "drained") {
    fmt::print("drained {} of service {}: {} gateway{} saw zxid {} and {} no call in flight to it (waited {} ms)\n",
               a.address, a.service, n, n == 1 ? "" : "s", drain::hex(o.progress.zxid()), n == 1 ? "has" : "have",
               o.waited_ms);
  } else {
    fmt::print("{} up again: {} gateway{} saw zxid {} (waited {} ms)\n", a.address, n, n == 1 ? "" : "s",
               drain::hex(o.progress.zxid()), o.waited_ms);
  }
}

Unexpected timed_out(const DrainArgs& a, const fleet::Outcome& o, std::string_view doing) {
  return fail(ErrorKind::TimedOut, fmt::format("{} {} of service {} timed out after {} ms: {}", doing, a.address,
                                               a.service, a.timeout_ms, fmt::join(o.progress.waiting(), "; ")));
}

// Marks the address up or down; NotFound when it is not registered. Leaves a.address in
// the form the registry and the gateways name it by.
Expected<registry::WriteResult> mark(Context& ctx, DrainArgs& a, model::Status status) {
  SVCCTL_CHECK(model::validate_name("service", a.service));
  SVCCTL_TRY(auto hp, model::parse_host_port(a.address));
  a.address = hp.str();
  if (a.timeout_ms < 1)
    return fail(ErrorKind::Usage, fmt::format("invalid --timeout-ms {}: use milliseconds ≥ 1", a.timeout_ms));
  SVCCTL_TRY(auto* reg, ctx.registry());
  model::AddressFields f;
  f.status = status;
  registry::WriteOptions o;
  o.safety = a.force ? registry::Safety::Force : registry::Safety::Guarded;
  o.if_absent = registry::IfAbsent::Refuse;
  auto w = reg->put_address(a.service, hp, f, o);
  if (!w && w.error().kind == ErrorKind::NotFound)
    return fail(ErrorKind::NotFound, w.error().message.starts_with("service")
                                         ? fmt::format("service \"{}\" not found", a.service)
                                         : fmt::format("address {} of service \"{}\" not found", a.address, a.service));
  if (w && w->zxid == 0)
    return fail(ErrorKind::Error, fmt::format("the write of {} did not say its zxid", w->path));
  return w;
}

// After the write: follows the gateways until each has what `need` asks, and says so.
Expected<void> wait_for_fleet(Context& ctx, const DrainArgs& a, const registry::WriteResult& w, drain::Need need,
                              std::string_view state, std::string_view verb) {
  ctx.note(fmt::format("{} {} {} (zxid {}); waiting for the gateways{}",
                       w.action == registry::Action::Unchanged ? "already marked" : "marked", w.path,
                       need == drain::Need::Idle ? "down" : "up", drain::hex(w.zxid),
                       need == drain::Need::Idle ? "" : " to see it"));
  SVCCTL_TRY(auto* reg, ctx.registry());
  drain::Progress p(w.zxid, need, a.ignore_unreachable ? drain::Unreachable::Ignore : drain::Unreachable::Wait);
  SVCCTL_TRY(auto o, fleet::follow({ctx.noter(), ctx.warner()}, *reg, {{a.service}, need == drain::Need::Idle ? a.address : std::string()},
                                    milliseconds(a.timeout_ms), std::move(p)));
  if (o.no_gateway) ctx.note("no gateway registered under /gateway: nothing to wait for");
  print_outcome(ctx, a, o, state, w);
  if (o.timed_out) return timed_out(a, o, verb);
  return {};
}

Expected<void> run_drain(Context& ctx, DrainArgs a) {
  SVCCTL_TRY(auto w, mark(ctx, a, model::Status::Down));
  return wait_for_fleet(ctx, a, w, drain::Need::Idle, "drained", "drain of");
}

Expected<void> run_undrain(Context& ctx, DrainArgs a) {
  SVCCTL_TRY(auto w, mark(ctx, a, model::Status::Up));
  if (!a.wait) {
    ctx.print_write(w);
    return {};
  }
  return wait_for_fleet(ctx, a, w, drain::Need::Seen, "seen", "undrain of");
}

void add_waiting_options(CLI::App* s, DrainArgs& a) {
  s->add_option("--timeout-ms", a.timeout_ms, "give up (exit 10) after this many milliseconds")
      ->capture_default_str();
  s->add_flag("--ignore-unreachable", a.ignore_unreachable,
              "count a gateway whose admin listener does not answer as done, with a warning");
}

}  // namespace

void setup_drain(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<DrainArgs>();
  auto* s = app.add_subcommand("drain", "mark an address down and wait until no gateway sends it calls");
  s->add_option("SVC", args->service, "service name")->required();
  s->add_option("HOST:PORT", args->address, "provider address")->required();
  add_waiting_options(s, *args);
  s->add_flag("--force", args->force, "allow draining the last up address of the service");
  s->callback([&ctx, args] { ctx.action = [&ctx, args] { return run_drain(ctx, *args); }; });
}

void setup_undrain(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<DrainArgs>();
  auto* s = app.add_subcommand("undrain", "mark a drained address up again");
  s->add_option("SVC", args->service, "service name")->required();
  s->add_option("HOST:PORT", args->address, "provider address")->required();
  auto* wait = s->add_flag("--wait", args->wait, "wait until every gateway has seen it (exit 10 after --timeout-ms)");
  add_waiting_options(s, *args);
  // Without --wait they mean nothing: a usage error.
  for (const char* name : {"--timeout-ms", "--ignore-unreachable"}) s->get_option(name)->needs(wait);
  s->callback([&ctx, args] { ctx.action = [&ctx, args] { return run_undrain(ctx, *args); }; });
}

}  // namespace svcctl::cmd
