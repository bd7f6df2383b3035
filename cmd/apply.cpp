// svcctl export [SVC...] and svcctl apply -f FILE: the registry as a declarative document
// (lib/registry/declare.hpp). apply shows its plan, refuses an unsafe one without --force,
// writes it in one ZooKeeper multi-operation with version checks (only with --yes, or
// after a yes on a terminal), and with --wait returns once every live gateway's registry
// view has reached the write.
#include "commands.hpp"
#include <svcctl/ops/drain_report.hpp>

#include <svcctl/model/model.hpp>
#include <svcctl/registry/declare.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

namespace svcctl::cmd {

namespace drain = ops::drain;

namespace {

struct ApplyArgs {
  std::string file;
  bool prune = false;
  PlanRun run;
};

struct ExportArgs {
  std::vector<std::string> services;
  std::string file;
};

Expected<std::string> read_input(const Context& ctx, const std::string& file) {
  if (file == "-") return ctx.read_stdin("the registry document");
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(ErrorKind::Usage, fmt::format("cannot read {}", file));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Expected<nlohmann::json> parse_document(const std::string& file, const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return fail(ErrorKind::Usage, fmt::format("{} is not JSON: {}", file == "-" ? "standard input" : file, e.what()));
  }
}

// Asks on the terminal; anything but y/yes is a no.
bool confirm(std::size_t changes) {
  if (changes == 1) fmt::print("apply this change? [y/N] ");
  else fmt::print("apply these {} changes? [y/N] ", changes);
  std::fflush(stdout);
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes";
}

// The services a plan touches: a gateway whose mass-change guard holds one of them has not
// taken the write yet.
std::vector<std::string> services_of(const registry::Plan& plan) {
  std::set<std::string> out;
  for (const auto& s : plan.steps)
    if (auto leaf = registry::paths::parse_leaf(s.path); leaf && !leaf->service.empty()) out.insert(leaf->service);
  return {out.begin(), out.end()};
}

void print_plan(Context& ctx, const registry::Plan& plan) {
  for (const auto& n : plan.notes) ctx.note(n);
  if (ctx.format == output::Format::Json) return;
  for (const auto& c : plan.create_containers) fmt::print("+ {}\n", c);
  for (const auto& line : plan.lines()) fmt::print("{}\n", line);
  for (const auto& c : plan.delete_containers) fmt::print("- {}\n", c);
  fmt::print("plan: {} to create, {} to change, {} to delete\n", plan.count(registry::PlanStep::Kind::Create),
             plan.count(registry::PlanStep::Kind::Update), plan.count(registry::PlanStep::Kind::Delete));
}

Expected<void> run_apply(Context& ctx, const ApplyArgs& a) {
  if (a.run.wait_timeout_ms < 1) return fail(ErrorKind::Usage, "--wait-timeout-ms must be at least 1");
  SVCCTL_TRY(auto text, read_input(ctx, a.file));
  SVCCTL_TRY(auto doc, parse_document(a.file, text));
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto tree, reg->read_tree());
  SVCCTL_TRY(auto plan, registry::make_plan(tree, doc, {a.prune}));
  return carry_out(ctx, *reg, plan, a.run, plan.to_json());
}

Expected<void> run_export(Context& ctx, const ExportArgs& a) {
  for (const auto& s : a.services) SVCCTL_CHECK(model::validate_name("service", s));
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto tree, reg->read_tree());
  auto doc = registry::export_document(tree, a.services);
  for (const auto& s : a.services)
    if (!doc["services"].contains(s)) return fail(ErrorKind::NotFound, fmt::format("service {} is not registered", s));
  const std::string text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (a.file.empty() || a.file == "-") {
    fmt::print("{}", text);
    return {};
  }
  std::ofstream out(a.file, std::ios::binary | std::ios::trunc);
  if (!out || !(out << text) || !out.flush()) return fail(ErrorKind::Error, fmt::format("cannot write {}", a.file));
  ctx.note(fmt::format("wrote {} services and {} keys to {}", doc["services"].size(), doc["keys"].size(), a.file));
  return {};
}

}  // namespace

Expected<void> carry_out(Context& ctx, registry::Registry& reg, const registry::Plan& plan, const PlanRun& run,
                         nlohmann::json out) {
  out["applied"] = false;
  print_plan(ctx, plan);
  auto finish = [&]() -> Expected<void> {
    if (ctx.format == output::Format::Json) output::print_json(out);
    return {};
  };
  if (plan.empty()) {
    if (ctx.format != output::Format::Json && !ctx.quiet) fmt::print("nothing to change\n");
    return finish();
  }
  if (!plan.unsafe.empty() && !run.force) {
    std::string why;
    for (const auto& u : plan.unsafe) why += "\n  " + u;
    if (ctx.format == output::Format::Json) output::print_json(out);
    return fail(ErrorKind::Unsafe, fmt::format("refused, the plan is unsafe (--force applies it anyway):{}", why));
  }
  for (const auto& u : plan.unsafe) ctx.warn(fmt::format("applied with --force: {}", u));
  bool go = run.yes && !run.dry_run;
  if (!run.yes && !run.dry_run) {
    if (::isatty(STDIN_FILENO) && output::stdout_is_tty()) {
      go = confirm(plan.steps.size() + plan.create_containers.size() + plan.delete_containers.size());
    } else {
      ctx.note("not applied: give --yes to apply it");
    }
  }
  if (!go) return finish();
  SVCCTL_TRY(auto zxid, reg.apply(plan));
  out["applied"] = true;
  out["zxid"] = drain::hex(zxid);
  if (ctx.format != output::Format::Json && !ctx.quiet) fmt::print("applied at zxid {}\n", drain::hex(zxid));
  if (!run.wait) return finish();
  auto waited = wait_for_gateways(ctx, reg, zxid, services_of(plan), std::chrono::milliseconds(run.wait_timeout_ms), out);
  if (ctx.format == output::Format::Json) output::print_json(out);
  return waited;
}

void add_plan_options(CLI::App* c, PlanRun& run) {
  c->add_flag("--yes", run.yes, "apply without asking (needed when not on a terminal)");
  c->add_flag("--dry-run", run.dry_run, "show the plan only");
  c->add_flag("--force", run.force,
              "apply a plan that removes more than half of a service's addresses or leaves none up");
  c->add_flag("--wait", run.wait, "return once every live gateway's registry view has the change");
  c->add_option("--wait-timeout-ms", run.wait_timeout_ms, "how long --wait waits (then exit 10)")
      ->capture_default_str();
}

void setup_apply(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ApplyArgs>();
  auto* c = app.add_subcommand("apply", "bring the registry to what a document (from export) says, atomically");
  c->add_option("-f,--file", a->file, "the document (JSON; - for standard input)")->required()->type_name("FILE");
  add_plan_options(c, a->run);
  c->add_flag("--prune", a->prune, "also remove the services and keys the document does not name");
  c->callback([&ctx, a] { ctx.action = [&ctx, a] { return run_apply(ctx, *a); }; });
}

void setup_export(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ExportArgs>();
  auto* c = app.add_subcommand("export", "print the registry (or some services) as a document for apply");
  c->add_option("SVC", a->services, "only these services (and the keys their ACLs name)")->type_name("SVC");
  c->add_option("-f,--file", a->file, "write it to this file instead of standard output")->type_name("FILE");
  c->callback([&ctx, a] { ctx.action = [&ctx, a] { return run_export(ctx, *a); }; });
}

}  // namespace svcctl::cmd
