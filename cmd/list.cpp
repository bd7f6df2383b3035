// svcctl list [SVC] [--keys]: the services; one service in detail; the keys.
#include "commands.hpp"

#include <svcctl/model/model.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <memory>

namespace svcctl::cmd {

namespace {

using output::Cell;
using output::status_tone;
using output::Table;

struct ListArgs {
  std::string service;
  CLI::Option* service_option = nullptr;
  bool keys = false;
};

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

void print_table(Context& ctx, const Table& table) {
  std::cout << table.render(output::use_color(stdout));
  (void)ctx;
}

Expected<void> list_services(Context& ctx, registry::Registry& reg) {
  SVCCTL_TRY(auto services, reg.list_services());
  for (const auto& s : services) ctx.warn_problems(s.problems);
  if (ctx.format == output::Format::Json) {
    nlohmann::json j = {{"services", nlohmann::json::array()}};
    for (const auto& s : services) j["services"].push_back(s.to_json());
    output::print_json(j);
    return {};
  }
  Table t({"SERVICE", "STATUS", "ADDRESSES", "INTERFACES", "DCS"});
  for (const auto& s : services) {
    std::string status(model::to_string(s.service.status));
    if (!s.registered) status = "unregistered";
    t.add_row({{s.service.name},
               {status, status_tone(status)},
               {fmt::format("{}/{} up", s.addresses_up, s.addresses_total),
                s.addresses_total > 0 && s.addresses_up == 0 ? output::Tone::Bad
                                                             : output::Tone::Plain},
               {std::to_string(s.interfaces)},
               {s.dcs.empty() ? "-" : fmt::format("{}", fmt::join(s.dcs, ","))}});
  }
  if (t.empty() && !ctx.quiet) {
    fmt::print(stderr, "no services registered under {}\n", ctx.zk);
    return {};
  }
  print_table(ctx, t);
  return {};
}

Expected<void> describe_service(Context& ctx, registry::Registry& reg, const std::string& name) {
  SVCCTL_TRY(auto d, reg.describe_service(name));
  ctx.warn_problems(d.problems);
  if (ctx.format == output::Format::Json) {
    output::print_json(d.to_json());
    return {};
  }
  std::string status(model::to_string(d.service.status));
  fmt::print("service {}  status {}  owner {}  desc {}\n\n", d.service.name,
             d.registered ? status : "unregistered", or_dash(d.service.owner),
             or_dash(d.service.desc));
  if (const auto versions = d.versions(); !versions.empty()) {
    fmt::print("split: {}\n", describe_split(d.service));
    Table t({"VERSION", "SHARE", "UP"});
    for (const auto& v : versions)
      t.add_row({{v.version.empty() ? "\"\"" : v.version},
                 {v.share ? fmt::format("{}%", *v.share) : "-"},
                 {fmt::format("{}/{}", v.routable, v.total),
                  v.share && *v.share > 0 && v.routable == 0 ? output::Tone::Bad : output::Tone::Plain}});
    print_table(ctx, t);
    fmt::print("\n");
  }
  Table addrs({"ADDRESS", "DC", "WEIGHT", "STATUS", "VERSION", "TAGS", "KIND"});
  for (const auto& a : d.addresses) {
    std::string st(model::to_string(a.status));
    addrs.add_row({{a.address},
                   {or_dash(a.dc)},
                   {std::to_string(a.weight)},
                   {st, status_tone(st)},
                   {or_dash(a.version)},
                   {a.tags.empty() ? "-" : fmt::format("{}", fmt::join(a.tags, ","))},
                   {a.ephemeral ? "ephemeral" : "persistent"}});
  }
  if (addrs.empty()) fmt::print("no addresses\n");
  else print_table(ctx, addrs);
  fmt::print("\n");
  Table apis({"INTERFACE", "PATH", "ENCODING", "STATUS", "TIMEOUT", "METHOD", "IDEMPOTENT"});
  for (const auto& a : d.apis) {
    std::string st(model::to_string(a.status));
    apis.add_row({{a.name},
                  {or_dash(a.path)},
                  {std::string(model::to_string(a.encoding))},
                  {st, status_tone(st)},
                  {a.timeout_ms ? fmt::format("{}ms", *a.timeout_ms) : "-"},
                  {a.method.empty() ? a.name : a.method},
                  {a.idempotent ? "yes" : "no"}});
  }
  if (apis.empty()) fmt::print("no interfaces\n");
  else print_table(ctx, apis);
  if (!d.acls.empty()) {
    fmt::print("\n");
    Table acls({"KEY", "RATE", "BURST", "APIS", "MODE"});
    for (const auto& a : d.acls)
      acls.add_row({{a.key},
                    {a.rate ? fmt::format("{:g}/s", *a.rate) : "unlimited"},
                    {a.burst ? std::to_string(*a.burst) : "-"},
                    {fmt::format("{}", fmt::join(a.apis, ","))},
                    {a.shadow ? "shadow" : "enforce"}});
    print_table(ctx, acls);
  }
  return {};
}

Expected<void> list_keys(Context& ctx, registry::Registry& reg) {
  SVCCTL_TRY(auto keys, reg.list_keys());
  for (const auto& k : keys) ctx.warn_problems(k.problems);
  if (ctx.format == output::Format::Json) {
    nlohmann::json j = {{"keys", nlohmann::json::array()}};
    for (const auto& k : keys) j["keys"].push_back(k.to_json());
    output::print_json(j);
    return {};
  }
  Table t({"KEY", "STATUS", "OWNER", "SERVICES"});
  for (const auto& k : keys) {
    std::vector<std::string> grants;
    for (const auto& a : k.acls)
      grants.push_back(a.rate ? fmt::format("{}({:g}/s)", a.service, *a.rate) : a.service);
    std::string st(model::to_string(k.key.status));
    t.add_row({{k.key.name},
               {st, status_tone(st)},
               {or_dash(k.key.owner)},
               {grants.empty() ? "-" : fmt::format("{}", fmt::join(grants, ","))}});
  }
  if (t.empty() && !ctx.quiet) {
    fmt::print(stderr, "no keys registered under {}\n", ctx.zk);
    return {};
  }
  print_table(ctx, t);
  return {};
}

}  // namespace

void setup_list(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ListArgs>();
  auto* l = app.add_subcommand("list", "list services, one service in detail, or keys");
  args->service_option =
      l->add_option("SVC", args->service, "show this service's addresses, interfaces and ACLs");
  l->add_flag("--keys", args->keys, "list caller keys and the services they may call");
  l->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Expected<void> {
      const bool one = args->service_option->count() > 0;
      if (args->keys && one) return fail(ErrorKind::Usage, "give either SVC or --keys, not both");
      if (one) SVCCTL_CHECK(model::validate_name("service", args->service));
      SVCCTL_TRY(auto* reg, ctx.registry());
      if (args->keys) return list_keys(ctx, *reg);
      if (one) return describe_service(ctx, *reg, args->service);
      return list_services(ctx, *reg);
    };
  });
}

}  // namespace svcctl::cmd
