// svcctl doctor: read-only checks of the registry, what ZooKeeper says of the sessions
// holding ephemeral addresses, what the gateways see, and whether up addresses accept
// connections. Each finding comes with the svcctl command that fixes it.
//
// Exit codes: 0 nothing found (checks that could not run are listed as skipped); 11 at
// least one finding; 5 ZooKeeper unreachable (nothing could be checked).
#include "commands.hpp"
#include <svcctl/ops/doctor_report.hpp>
#include <svcctl/ops/fleet.hpp>

#include <svcctl/model/model.hpp>
#include <svcctl/registry/paths.hpp>
#include <svcctl/rpc/rpc.hpp>
#include <svcctl/zk/four_letter.hpp>

#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <memory>

namespace svcctl::cmd {

namespace doctor = ops::doctor;
namespace fleet = ops::fleet;

namespace {

using std::chrono::milliseconds;

struct DoctorArgs {
  bool no_probe = false;
  int probe_timeout_ms = 1000;
  std::size_t probe_max = 256;
  std::size_t probe_parallel = 64;
  int timeout_ms = 2000;  // each gateway's /-/stats, each four-letter word
};

// Every registry node with its stat, read once (a cache loads it all, pipelined).
Expected<doctor::Entries> read_registry(Context& ctx) {
  registry::Cache::Options o;
  SVCCTL_TRY(o.zk, ctx.zk_options());
  o.max_outstanding = 256;
  registry::Cache cache(std::move(o));
  SVCCTL_CHECK(cache.start(milliseconds(ctx.zk_timeout_ms)));
  return cache.snapshot()->entries();
}

// Why a four-letter word gave nothing to go on, or empty when `answer` is usable.
std::string refusal(const Expected<std::string>& answer, const std::string& server, std::string_view word) {
  if (!answer) return answer.error().message;
  if (zk::not_whitelisted(*answer))
    return fmt::format("ZooKeeper at {} does not allow the four-letter word \"{}\" (add it to "
                       "4lw.commands.whitelist)",
                       server, word);
  return {};
}

// Asks every server of the connect string which sessions are connected ("cons"), and the
// leader (or the standalone server) which sessions exist ("dump"). ZooKeeper tells a client
// neither; a session is connected to one server only, so every server is asked.
doctor::Sessions ask_sessions(const std::string& connect, milliseconds timeout) {
  doctor::Sessions s;
  std::set<std::int64_t> connected;
  for (const auto& server : zk::servers_of(connect)) {
    auto cons = zk::four_letter(server, "cons", timeout);
    if (auto why = refusal(cons, server, "cons"); !why.empty()) {
      s.why_no_connected = why;
    } else {
      auto ids = zk::parse_cons(*cons);
      connected.insert(ids.begin(), ids.end());
    }
    if (s.live) continue;
    auto srvr = zk::four_letter(server, "srvr", timeout);
    if (auto why = refusal(srvr, server, "srvr"); !why.empty()) {
      s.why_no_live = why;
      continue;
    }
    const auto mode = zk::parse_mode(*srvr);
    if (mode != "leader" && mode != "standalone") continue;
    auto dump = zk::four_letter(server, "dump", timeout);
    if (auto why = refusal(dump, server, "dump"); !why.empty()) {
      s.why_no_live = why;
      continue;
    }
    auto d = zk::parse_dump(*dump);
    if (d.has_sessions) s.live = std::move(d.sessions);
    else s.why_no_live = fmt::format("ZooKeeper at {} answered \"dump\" without its session tracker", server);
  }
  if (s.why_no_connected.empty()) s.connected = std::move(connected);
  if (!s.live && s.why_no_live.empty())
    s.why_no_live = "no server of the connect string is the leader, which alone knows every session";
  return s;
}

// Every registered gateway's /-/stats, at once.
std::vector<doctor::GatewayStats> ask_gateways(const doctor::Entries& entries, milliseconds timeout) {
  std::vector<model::Gateway> gateways;
  for (const auto& [path, e] : entries) {
    auto leaf = registry::paths::parse_leaf(path);
    if (leaf && leaf->kind == "gateway") gateways.push_back(model::decode_gateway(leaf->name, e.data).value);
  }
  auto replies = fleet::ask_admins(gateways, "/-/stats", timeout);
  std::vector<doctor::GatewayStats> out;
  for (std::size_t i = 0; i < gateways.size(); ++i) {
    doctor::GatewayStats gs{gateways[i].id, std::nullopt, {}};
    if (!replies[i]) gs.error = replies[i].error().message;
    else if (!replies[i]->is_object()) gs.error = "/-/stats answered something that is not a JSON object";
    else gs.stats = std::move(*replies[i]);
    out.push_back(std::move(gs));
  }
  return out;
}

// Up addresses that do not accept a TCP connection: address → why.
std::map<std::string, std::string> probe(const doctor::Entries& entries, const DoctorArgs& a, doctor::Report& r) {
  std::set<std::string> all;
  for (const auto& [svc, addrs] : doctor::up_addresses(entries)) all.insert(addrs.begin(), addrs.end());
  std::vector<std::string> targets(all.begin(), all.end());
  if (targets.size() > a.probe_max) {
    r.skipped.push_back({"unreachable", fmt::format("probed {} of {} up addresses (--probe-max)", a.probe_max,
                                                    targets.size())});
    targets.resize(a.probe_max);
  }
  auto results = rpc::connect_many(targets, milliseconds(a.probe_timeout_ms), a.probe_parallel);
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i < results.size(); ++i)
    if (!results[i]) out[targets[i]] = results[i].error().message;
  return out;
}

void print_table(const doctor::Report& r) {
  if (r.findings.empty()) fmt::print("no problems found\n");
  else std::cout << doctor::table(r).render(output::use_color(stdout));
  std::cout.flush();
  for (const auto& s : r.skipped) fmt::print("skipped {}: {}\n", s.check, s.reason);
}

Expected<void> run_doctor(Context& ctx, const DoctorArgs& a) {
  if (a.timeout_ms < 1 || a.probe_timeout_ms < 1 || a.probe_parallel < 1)
    return fail(ErrorKind::Usage, "--timeout-ms, --probe-timeout-ms and --probe-parallel must be at least 1");
  SVCCTL_TRY(auto entries, read_registry(ctx));
  doctor::Report r;
  doctor::check_services(entries, r);
  if (doctor::has_ephemeral_addresses(entries))
    doctor::check_ephemerals(entries, ask_sessions(ctx.zk, milliseconds(a.timeout_ms)), r);
  doctor::check_ejected(entries, ask_gateways(entries, milliseconds(a.timeout_ms)), r);
  if (a.no_probe) r.skipped.push_back({"unreachable", "--no-probe"});
  else doctor::check_unreachable(entries, probe(entries, a, r), r);
  doctor::check_keys(entries, r);
  doctor::sort(r);
  if (ctx.format == output::Format::Json) output::print_json(doctor::to_json(r));
  else print_table(r);
  if (r.findings.empty()) return {};
  return fail(ErrorKind::Findings,
              fmt::format("doctor found {} problem{}", r.findings.size(), r.findings.size() == 1 ? "" : "s"));
}

}  // namespace

void setup_doctor(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<DoctorArgs>();
  auto* s = app.add_subcommand("doctor", "check the registry for problems and say how to fix each");
  s->add_flag("--no-probe", args->no_probe, "do not try to connect to the up addresses");
  s->add_option("--probe-timeout-ms", args->probe_timeout_ms, "milliseconds to wait for each connect probe")
      ->capture_default_str();
  s->add_option("--probe-max", args->probe_max, "probe at most this many addresses")->capture_default_str();
  s->add_option("--probe-parallel", args->probe_parallel, "connect probes under way at once")->capture_default_str();
  s->add_option("--timeout-ms", args->timeout_ms,
                "milliseconds to wait for each gateway's /-/stats and each ZooKeeper four-letter word")
      ->capture_default_str();
  s->callback([&ctx, args] { ctx.action = [&ctx, args] { return run_doctor(ctx, *args); }; });
}

}  // namespace svcctl::cmd
