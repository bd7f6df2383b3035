// svcctl rollout SVC --to V: moves a service's split to a version step by step; after each
// step it watches every gateway's per-version figures for a window and judges the new
// version against the old (ops/rollout.hpp). A broken limit, too few calls to judge by,
// or SIGINT (unless --keep) puts back the split it started from and exits 12.
#include "commands.hpp"

#include <svcctl/model/model.hpp>
#include <svcctl/ops/rollout.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace svcctl::cmd {

namespace rollout = ops::rollout;

namespace {

struct RolloutArgs {
  std::string service;
  std::string to;
  std::string steps = "5,25,50,100";
  double step_s = 60;
  double max_error_rate = 1;
  double max_p99_ratio = 1.5;
  std::uint64_t min_requests = 200;
  bool keep = false;
  int wait_timeout_ms = 30'000;
};

using Clock = std::chrono::steady_clock;

std::string shares_text(const std::vector<model::VersionShare>& split) {
  model::Service s;
  s.split = split;
  return describe_split(s);
}

nlohmann::json window_json(const rollout::Window& w, std::uint64_t p99_us) {
  return {{"requests", w.requests},
          {"errors", w.errors},
          {"error_rate", w.requests ? 100.0 * static_cast<double>(w.errors) / static_cast<double>(w.requests) : 0.0},
          {"p99_ms", static_cast<double>(p99_us) / 1000.0}};
}

// Sleeps up to `d`, in slices, unless `stop` is set; false when it was.
bool sleep_unless(const std::atomic<bool>& stop, Clock::duration d) {
  const auto until = Clock::now() + d;
  while (!stop && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return !stop;
}

class Rollout {
 public:
  Rollout(Context& ctx, registry::Registry& reg, const RolloutArgs& a, const std::atomic<bool>& stop)
      : m_ctx(ctx), m_reg(reg), m_a(a), m_stop(stop) {}

  Expected<void> run() {
    SVCCTL_TRY(auto steps, rollout::parse_steps(m_a.steps));
    SVCCTL_TRY(auto detail, m_reg.describe_service(m_a.service));
    m_ctx.warn_problems(detail.problems);
    m_original = detail.service.split;
    m_sticky = detail.service.sticky;
    const bool has_to = std::any_of(detail.addresses.begin(), detail.addresses.end(),
                                    [&](const model::Address& x) { return x.version == m_a.to && model::routable(x); });
    if (!has_to)
      return fail(ErrorKind::Unsafe, fmt::format("version \"{}\" of service \"{}\" has no routable address to roll out to",
                                                 m_a.to, m_a.service));
    m_from = rollout::starting_shares(detail.service, detail.addresses, m_a.to);
    if (m_from.empty())
      return fail(ErrorKind::Usage, fmt::format("service \"{}\" has no other version to roll out from", m_a.service));
    for (const auto& f : m_from) m_old_versions.push_back(f.version);
    for (std::size_t i = 0; i < steps.size(); ++i) {
      auto split = rollout::step_split(m_from, m_a.to, steps[i]);
      SVCCTL_TRY(auto verdict, step(i + 1, steps.size(), split));
      if (m_stop) return interrupted();
      if (verdict.kind != rollout::Verdict::Kind::Pass) return roll_back(verdict.reason);
    }
    finish("rolled_out", fmt::format("rolled out: {} (was: {})", shares_text(rollout::step_split(m_from, m_a.to, steps.back())),
                                     shares_text(m_original)));
    return {};
  }

 private:
  bool json() const { return m_ctx.format == output::Format::Json; }

  // Writes the step's split, waits for the gateways, watches the window and judges it.
  Expected<rollout::Verdict> step(std::size_t n, std::size_t of, const std::vector<model::VersionShare>& split) {
    auto w = m_reg.set_split(m_a.service, split, m_sticky, registry::Safety::Guarded);
    if (!w) return restore_after(w.error());
    m_written = true;
    nlohmann::json scratch;
    if (auto waited = wait_quietly(w->zxid, scratch); !waited) return restore_after(waited.error());
    auto before = fetch_round(m_ctx, m_reg, std::chrono::milliseconds(2000), false);
    if (!before) return restore_after(before.error());
    if (before->answered() == 0)
      return restore_after(Error{ErrorKind::NotFound, "no gateway answered: there is nothing to judge the versions by"});
    const auto window = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(m_a.step_s));
    const auto started = Clock::now();
    sleep_unless(m_stop, window);
    rollout::Window fresh, old;
    while (true) {  // a window too quiet to judge is stretched, up to 4 times its length
      auto after = fetch_round(m_ctx, m_reg, std::chrono::milliseconds(2000), false);
      if (!after) return restore_after(after.error());
      fresh = rollout::window(*before, *after, m_a.service, {m_a.to});
      old = rollout::window(*before, *after, m_a.service, m_old_versions);
      if (m_stop || fresh.requests >= m_a.min_requests || Clock::now() - started >= 4 * window) break;
      sleep_unless(m_stop, std::chrono::seconds(1));
    }
    const rollout::Limits limits{m_a.max_error_rate, m_a.max_p99_ratio, m_a.min_requests};
    auto verdict = rollout::judge(fresh, old, limits);
    report(n, of, split, fresh, old, verdict);
    return verdict;
  }

  Expected<void> wait_quietly(std::int64_t zxid, nlohmann::json& scratch) {
    // the step line says it all: no "every gateway has it" line per step
    const bool quiet = m_ctx.quiet;
    m_ctx.quiet = true;
    auto r = wait_for_gateways(m_ctx, m_reg, zxid, {m_a.service}, std::chrono::milliseconds(m_a.wait_timeout_ms), scratch);
    m_ctx.quiet = quiet;
    return r;
  }

  void report(std::size_t n, std::size_t of, const std::vector<model::VersionShare>& split,
              const rollout::Window& fresh, const rollout::Window& old, const rollout::Verdict& v) {
    if (json()) {
      nlohmann::json j = {{"step", n},
                          {"of", of},
                          {"split", model::to_json(model::Service{m_a.service, {}, {}, {}, split, {}})["split"]},
                          {"new", window_json(fresh, v.new_p99_us)},
                          {"old", window_json(old, v.old_p99_us)},
                          {"p99_ratio", v.p99_ratio ? nlohmann::json(*v.p99_ratio) : nlohmann::json(nullptr)},
                          {"verdict", rollout::to_string(v.kind)},
                          {"reason", v.reason}};
      fmt::print("{}\n", j.dump());
      std::fflush(stdout);
      return;
    }
    std::string others = fmt::format("{} calls", old.requests);
    if (old.requests > 0) others += fmt::format(", p99 {:.1f}ms", static_cast<double>(v.old_p99_us) / 1000.0);
    if (v.p99_ratio) others += fmt::format(" ({:.2f}x)", *v.p99_ratio);
    fmt::print("step {}/{}  {}  {}: {} calls, {:.1f}% errors, p99 {:.1f}ms  others: {}  {}\n", n, of,
               shares_text(split), m_a.to, fresh.requests, v.error_rate, static_cast<double>(v.new_p99_us) / 1000.0,
               others, v.reason);
    std::fflush(stdout);
  }

  void finish(std::string_view result, const std::string& line) {
    if (json()) fmt::print("{}\n", nlohmann::json{{"result", result}, {"message", line}}.dump());
    else if (!m_ctx.quiet) fmt::print("{}\n", line);
    std::fflush(stdout);
  }

  Expected<void> restore() {
    if (!m_written) return {};
    SVCCTL_TRY(auto w, m_reg.set_split(m_a.service, m_original, m_sticky, registry::Safety::Force));
    (void)w;
    return {};
  }

  // A step failed to be written, followed or read: the split goes back, the error stays.
  Expected<rollout::Verdict> restore_after(Error e) {
    if (auto r = restore(); !r)
      return fail(r.error().kind, fmt::format("{}; and restoring the split failed: {}", e.message, r.error().message));
    if (m_written) e.message += fmt::format(" (the split is back to {})", shares_text(m_original));
    return fail(std::move(e));
  }

  Expected<void> roll_back(const std::string& why) {
    SVCCTL_CHECK(restore());
    const std::string line = fmt::format("rolled back: {}; the split is back to {}", why, shares_text(m_original));
    if (json()) finish("rolled_back", line);  // on a terminal, the error line says it
    return fail(ErrorKind::RolledBack, line);
  }

  Expected<void> interrupted() {
    if (m_a.keep) {
      if (json()) finish("interrupted", "interrupted: the split stays as it is (--keep)");
      return fail(ErrorKind::RolledBack, "interrupted; the split was kept (--keep)");
    }
    return roll_back("interrupted");
  }

  Context& m_ctx;
  registry::Registry& m_reg;
  const RolloutArgs& m_a;
  const std::atomic<bool>& m_stop;
  std::vector<model::VersionShare> m_original;  // the split it started from
  model::Sticky m_sticky;
  std::vector<model::VersionShare> m_from;
  std::vector<std::string> m_old_versions;
  bool m_written = false;  // a step's split was written: there is something to restore
};

Expected<void> run_rollout(Context& ctx, const RolloutArgs& a) {
  SVCCTL_CHECK(model::validate_name("service", a.service));
  SVCCTL_CHECK(model::validate_version(a.to));
  if (a.to.empty()) return fail(ErrorKind::Usage, "--to needs a version");
  if (!(a.step_s >= 0.1) || a.step_s > 86400) return fail(ErrorKind::Usage, "--step-s must be from 0.1 to 86400");
  if (!(a.max_error_rate >= 0) || a.max_error_rate > 100)
    return fail(ErrorKind::Usage, "--max-error-rate is a percentage (0 to 100)");
  if (!(a.max_p99_ratio > 0)) return fail(ErrorKind::Usage, "--max-p99-ratio must be above 0");
  if (a.min_requests == 0) return fail(ErrorKind::Usage, "--min-requests must be at least 1");
  SVCCTL_TRY(auto steps, rollout::parse_steps(a.steps));
  (void)steps;
  SVCCTL_TRY(auto* reg, ctx.registry());
  const auto& stop = stop_on_signals();
  Rollout r(ctx, *reg, a, stop);
  return r.run();
}

}  // namespace

void setup_rollout(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<RolloutArgs>();
  auto* c = app.add_subcommand("rollout", "move a service's calls to a version step by step, rolling back on errors");
  c->add_option("SVC", a->service, "the service")->required()->type_name("SVC");
  c->add_option("--to", a->to, "the version to move the calls to")->required()->type_name("VERSION");
  c->add_option("--steps", a->steps, "the new version's share at each step, in percent")->capture_default_str();
  c->add_option("--step-s", a->step_s, "seconds each step is watched before the next")->capture_default_str();
  c->add_option("--max-error-rate", a->max_error_rate, "roll back when the new version fails more calls (percent)")
      ->capture_default_str();
  c->add_option("--max-p99-ratio", a->max_p99_ratio,
                "roll back when the new version's p99 is more than this times the others'")
      ->capture_default_str();
  c->add_option("--min-requests", a->min_requests, "calls of the new version a step needs to be judged")
      ->capture_default_str();
  c->add_flag("--keep", a->keep, "on SIGINT, leave the split as it is instead of rolling back");
  c->add_option("--wait-timeout-ms", a->wait_timeout_ms, "how long each step waits for the gateways to have it")
      ->capture_default_str();
  c->callback([&ctx, a] { ctx.action = [&ctx, a] { return run_rollout(ctx, *a); }; });
}

}  // namespace svcctl::cmd
