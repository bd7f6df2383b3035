// svcctl proxy: the gateway. Its options, checked, then control::run_gateway (the cache,
// the routes, the gateway, /gateway/{id}, the drain) until SIGTERM/SIGINT.
#include "cli_tree.hpp"
#include "commands.hpp"

#include <svcctl/control/run.hpp>
#include <svcctl/gateway/gateway.hpp>
#include <svcctl/gateway/log.hpp>
#include <svcctl/model/model.hpp>

#include <fmt/format.h>

#include <sys/resource.h>

namespace svcctl::cmd {

namespace {

struct ProxyArgs {
  std::string listen = "127.0.0.1:8080";
  std::string admin = "127.0.0.1:9901";
  std::string dc;
  std::string id;
  unsigned workers = 0;
  std::string balance = "p2c";
  std::string max_body = "1048576";
  int header_timeout_ms = 10'000;
  int idle_timeout_ms = 60'000;
  CacheArgs cache;
  unsigned retry_budget = 20;
  unsigned eject_after = 5;
  int eject_ms = 30'000;
  int eject_max_ms = 300'000;
  unsigned max_ejected_percent = 50;
  unsigned dc_min_percent = 0;
  unsigned max_pending = 1024;
  int drain_timeout_ms = 10'000;
  int max_stale_s = 300;
  int guard_delay_ms = 2000;
  int guard_window_ms = 0;
  std::string log_file;
  std::string log_format = "text";
  bool access_log = false;
  bool require_keys = false;
};

// A gateway holds a descriptor per client and per pooled upstream connection: take the
// whole allowance (the soft limit is often 1024 of a hard limit many times larger).
void raise_fd_limit(const Context& ctx) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ctx.warn("could not raise the open-files limit");
}

// The gateway's options from the command line (Usage when one is out of range).
Expected<gateway::Options> gateway_options(const ProxyArgs& a) {
  gateway::Options go;
  go.listen = a.listen;
  go.admin = a.admin;
  go.workers = a.workers;
  if (a.balance == "p2c") go.balance = gateway::Balance::P2C;
  else if (a.balance == "round-robin") go.balance = gateway::Balance::RoundRobin;
  else return fail(ErrorKind::Usage, fmt::format("--balance \"{}\": expected p2c or round-robin", a.balance));
  SVCCTL_TRY(auto max_body, model::parse_positive("--max-body", a.max_body, std::int64_t{1} << 30));
  go.max_body_bytes = static_cast<std::size_t>(max_body);
  if (a.header_timeout_ms <= 0 || a.idle_timeout_ms <= 0)
    return fail(ErrorKind::Usage, "--header-timeout-ms and --idle-timeout-ms must be positive");
  go.header_timeout = std::chrono::milliseconds(a.header_timeout_ms);
  go.idle_timeout = std::chrono::milliseconds(a.idle_timeout_ms);
  if (a.eject_ms <= 0 || a.eject_max_ms < a.eject_ms)
    return fail(ErrorKind::Usage, "--eject-ms must be positive and at most --eject-max-ms");
  if (a.max_ejected_percent > 100 || a.retry_budget > 100 || a.dc_min_percent > 100)
    return fail(ErrorKind::Usage,
                "--max-ejected-percent, --retry-budget and --dc-min-percent are percentages (0 to 100)");
  if (a.max_pending == 0 || a.max_stale_s <= 0)
    return fail(ErrorKind::Usage, "--max-pending and --max-stale-s must be positive");
  go.retry_budget_percent = a.retry_budget;
  go.eject_after = a.eject_after;
  go.eject_base = std::chrono::milliseconds(a.eject_ms);
  go.eject_max = std::chrono::milliseconds(a.eject_max_ms);
  go.max_ejected_percent = a.max_ejected_percent;
  go.dc_min_percent = a.dc_min_percent;
  go.max_pending_per_address = a.max_pending;
  go.max_stale = std::chrono::seconds(a.max_stale_s);
  go.require_keys = a.require_keys;
  return go;
}

Expected<void> run_proxy(Context& ctx, const ProxyArgs& a) {
  ignore_sigpipe();
  raise_fd_limit(ctx);
  control::GatewayRun run;
  SVCCTL_TRY(run.gateway, gateway_options(a));
  if (!a.id.empty()) SVCCTL_CHECK(model::validate_name("gateway id", a.id));
  if (!a.dc.empty()) SVCCTL_CHECK(model::validate_name("datacenter", a.dc));
  if (a.drain_timeout_ms < 0 || a.guard_delay_ms < 0 || a.guard_window_ms < 0)
    return fail(ErrorKind::Usage, "--drain-timeout-ms, --guard-delay-ms and --guard-window-ms must not be negative");
  run.id = a.id;
  run.dc = a.dc;
  run.guard_delay = std::chrono::milliseconds(a.guard_delay_ms);
  run.guard_window = std::chrono::milliseconds(a.guard_window_ms);
  run.drain_timeout = std::chrono::milliseconds(a.drain_timeout_ms);
  run.version = SVCCTL_VERSION;
  if (a.log_format != "text" && a.log_format != "json")
    return fail(ErrorKind::Usage, fmt::format("--log-format \"{}\": expected text or json", a.log_format));
  const auto format = a.log_format == "json" ? gateway::LogFormat::Json : gateway::LogFormat::Text;
  SVCCTL_TRY(auto log, gateway::Log::open(a.log_file, format));
  if (!ctx.quiet) {
    run.events = log.get();
    run.gateway.log = [&log](std::string_view m) { log->event("info", m); };
  }
  if (a.access_log) run.gateway.access_log = log.get();
  SVCCTL_TRY(run.cache, ctx.cache_options(a.cache));
  run.start_timeout = std::chrono::milliseconds(ctx.zk_timeout_ms);
  run.warn = ctx.warner();
  if (ctx.verbose) run.debug = [](std::string_view m) { to_stderr(fmt::format("svcctl proxy: {}\n", m)); };
  run.on_tick = [&log] {
    if (take_reopen_signal()) log->reopen();
  };
  const auto& stop = stop_on_signals();
  catch_reopen_signal();
  return control::run_gateway(std::move(run), stop);
}

}  // namespace

void setup_proxy(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ProxyArgs>();
  auto* p = app.add_subcommand("proxy", "run the gateway: route calls to providers from the registry");
  p->add_option("--listen", a->listen, "address for calls, HOST:PORT (port 0: any free port)")
      ->capture_default_str();
  p->add_option("--admin", a->admin, "address for /-/healthz, /-/stats, /metrics, /-/registry (\"\" for none)")
      ->capture_default_str();
  p->add_option("--dc", a->dc, "this gateway's datacenter: its addresses are preferred");
  p->add_option("--dc-min-percent", a->dc_min_percent,
                "below this share of a service's addresses, --dc's take only the share they hold over it, the "
                "others the rest (0: --dc's take all)")
      ->capture_default_str();
  p->add_option("--id", a->id, "name under /gateway (default: host name and listening port)");
  p->add_option("--workers", a->workers, "worker threads (default: one per CPU)");
  p->add_option("--balance", a->balance, "how to choose among addresses: p2c or round-robin")
      ->capture_default_str();
  p->add_option("--max-body", a->max_body, "largest request body in bytes (larger: 413)")->capture_default_str();
  p->add_option("--header-timeout-ms", a->header_timeout_ms,
                "time a client has to send a whole request (then 408 and close)")
      ->capture_default_str();
  p->add_option("--idle-timeout-ms", a->idle_timeout_ms, "idle keep-alive connections are closed after this")
      ->capture_default_str();
  p->add_option("--retry-budget", a->retry_budget, "retries allowed, in percent of calls")->capture_default_str();
  p->add_option("--eject-after", a->eject_after, "failures in a row that eject an address (0: never)")
      ->capture_default_str();
  p->add_option("--eject-ms", a->eject_ms, "first ejection's length; each next one is longer by as much")
      ->capture_default_str();
  p->add_option("--eject-max-ms", a->eject_max_ms, "longest ejection")->capture_default_str();
  p->add_option("--max-ejected-percent", a->max_ejected_percent,
                "never eject more than this share of a service's addresses")
      ->capture_default_str();
  p->add_option("--max-pending", a->max_pending, "calls in flight to one address (more: another, or 503)")
      ->capture_default_str();
  p->add_option("--drain-timeout-ms", a->drain_timeout_ms, "on SIGTERM, time given to calls under way")
      ->capture_default_str();
  p->add_option("--max-stale-s", a->max_stale_s,
                "/-/healthz fails when the registry view has not been followed this long")
      ->capture_default_str();
  p->add_option("--guard-delay-ms", a->guard_delay_ms,
                "hold a change that takes more than half of a service's addresses, its last one or its "
                "service node away this long, then confirm it with a second read (0: no guard)")
      ->capture_default_str();
  p->add_option("--guard-window-ms", a->guard_window_ms,
                "the guard judges changes against the most addresses a service had within this long "
                "(0: the guard delay)")
      ->capture_default_str();
  p->add_option("--log-file", a->log_file, "write the log here instead of standard error (SIGHUP reopens it)");
  p->add_option("--log-format", a->log_format, "text or json (one object per line)")->capture_default_str();
  p->add_flag("--access-log", a->access_log, "one log line per call");
  p->add_flag("--require-keys", a->require_keys,
              "every call needs a registered key with an ACL for its service (default: only services "
              "that have ACLs)");
  add_cache_options(p, a->cache);
  cli::choices(p->get_option("--balance"), {"p2c", "round-robin"});
  cli::choices(p->get_option("--log-format"), {"text", "json"});
  p->get_option("--log-file")->type_name("FILE");
  p->callback([&ctx, a] { ctx.action = [&ctx, a] { return run_proxy(ctx, *a); }; });
}

}  // namespace svcctl::cmd
