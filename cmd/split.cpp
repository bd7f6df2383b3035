// svcctl split SVC VERSION=SHARE... | --clear: a service's calls split by version, in one
// compare-and-set write of /service/{svc} (Registry::set_split); refused (exit 9) when a
// version given a share has no routable address, unless --force. With --wait it returns
// once every live gateway has the write.
#include "commands.hpp"

#include <svcctl/model/model.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>

namespace svcctl::cmd {

namespace {

struct SplitArgs {
  std::string service;
  std::vector<std::string> shares;
  std::string sticky;
  bool clear = false;
  bool force = false;
  bool wait = false;
  int wait_timeout_ms = 30'000;
};

}  // namespace

// "v1=90" "v2=10" → the split; the shares are whole percentages adding up to 100.
Expected<std::vector<model::VersionShare>> parse_split(const std::vector<std::string>& items) {
  std::vector<model::VersionShare> split;
  std::set<std::string> seen;
  std::int64_t sum = 0;
  for (const auto& item : items) {
    const auto eq = item.rfind('=');
    if (eq == std::string::npos)
      return fail(ErrorKind::Usage, fmt::format("invalid share \"{}\": use VERSION=PERCENT, e.g. v2=10", item));
    const std::string version = item.substr(0, eq);
    SVCCTL_CHECK(model::validate_version(version));
    auto share = model::parse_positive("share of " + (version.empty() ? std::string("\"\"") : version),
                                       item.substr(eq + 1), 100);
    if (!share && item.substr(eq + 1) == "0") share = 0;  // a version kept for pinned calls only
    if (!share) return fail(share.error());
    if (!seen.insert(version).second)
      return fail(ErrorKind::Usage, fmt::format("version \"{}\" is given twice", version));
    split.push_back({version, *share});
    sum += *share;
  }
  if (sum != 100)
    return fail(ErrorKind::Usage, fmt::format("the shares add up to {}; they must add up to 100", sum));
  std::sort(split.begin(), split.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
  return split;
}

std::string describe_split(const model::Service& s) {
  if (s.split.empty()) return "no split";
  std::vector<std::string> parts;
  for (const auto& v : s.split) parts.push_back(fmt::format("{}={}", v.version.empty() ? "\"\"" : v.version, v.share));
  std::string out = fmt::format("{}", fmt::join(parts, " "));
  if (s.sticky.by != model::Sticky::By::None) out += fmt::format(", sticky by {}", model::to_string(s.sticky));
  return out;
}

namespace {

Expected<void> run_split(Context& ctx, const SplitArgs& a) {
  SVCCTL_CHECK(model::validate_name("service", a.service));
  if (a.clear && (!a.shares.empty() || !a.sticky.empty()))
    return fail(ErrorKind::Usage, "--clear takes no shares and no --sticky");
  if (!a.clear && a.shares.empty())
    return fail(ErrorKind::Usage, "give the shares (VERSION=PERCENT...), or --clear");
  if (a.wait_timeout_ms < 1) return fail(ErrorKind::Usage, "--wait-timeout-ms must be at least 1");
  std::vector<model::VersionShare> split;
  if (!a.clear) {
    SVCCTL_TRY(split, parse_split(a.shares));
  }
  SVCCTL_TRY(auto sticky, model::parse_sticky(a.sticky));
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto w, reg->set_split(a.service, split, sticky,
                                    a.force ? registry::Safety::Force : registry::Safety::Guarded));
  if (a.force && !a.clear) ctx.note("written with --force: no address was checked");
  nlohmann::json out = w.to_json();
  const auto service = model::decode_service(a.service, w.data.dump()).value;
  out["split"] = model::to_json(service)["split"];
  out["sticky"] = model::to_string(service.sticky);
  if (ctx.format != output::Format::Json && !ctx.quiet)
    fmt::print("{} {} (version {}): {}\n", registry::to_string(w.action), w.path, w.version, describe_split(service));
  if (!a.wait) {
    if (ctx.format == output::Format::Json) output::print_json(out);
    return {};
  }
  if (w.zxid == 0) return fail(ErrorKind::Error, fmt::format("the write of {} did not say its zxid", w.path));
  auto waited = wait_for_gateways(ctx, *reg, w.zxid, {a.service}, std::chrono::milliseconds(a.wait_timeout_ms), out);
  if (ctx.format == output::Format::Json) output::print_json(out);
  return waited;
}

}  // namespace

void setup_split(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<SplitArgs>();
  auto* c = app.add_subcommand("split", "split a service's calls by version (VERSION=PERCENT...), or --clear");
  c->add_option("SVC", a->service, "the service")->required()->type_name("SVC");
  c->add_option("SHARES", a->shares, "VERSION=PERCENT for each version, adding up to 100 (\"=N\": the addresses without a version)")
      ->type_name("VERSION=PERCENT");
  c->add_option("--sticky", a->sticky, "keep each caller on one version: by its key, or by a header's value")
      ->type_name("key|header:NAME");
  c->add_flag("--clear", a->clear, "remove the split: every routable address takes calls by its weight");
  c->add_flag("--force", a->force, "write it even when a version given a share has no routable address");
  c->add_flag("--wait", a->wait, "return once every live gateway's registry view has the change");
  c->add_option("--wait-timeout-ms", a->wait_timeout_ms, "how long --wait waits (then exit 10)")->capture_default_str();
  c->callback([&ctx, a] { ctx.action = [&ctx, a] { return run_split(ctx, *a); }; });
}

}  // namespace svcctl::cmd
