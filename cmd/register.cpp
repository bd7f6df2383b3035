// svcctl register service|address|api|key|acl: create a node, or update the given fields.
#include "cli_tree.hpp"
#include "commands.hpp"

#include <svcctl/model/model.hpp>
#include <svcctl/registry/holder.hpp>
#include <svcctl/rpc/rpc.hpp>

#include <fmt/format.h>

#include <memory>

namespace svcctl::cmd {

namespace {

// A string option remembered with whether it was given, validated when the action runs so
// every message comes from the model's parsers.
struct Text {
  std::string value;
  CLI::Option* option = nullptr;
  bool given() const { return option && option->count() > 0; }
};

Text& text_option(CLI::App* app, std::unique_ptr<Text>& slot, const std::string& name,
                  const std::string& help) {
  slot = std::make_unique<Text>();
  slot->option = app->add_option(name, slot->value, help);
  return *slot;
}

template <typename T, typename Parse>
Expected<void> assign(std::optional<T>& field, const Text& t, Parse&& parse) {
  if (!t.given()) return {};
  SVCCTL_TRY(field, parse(t.value));
  return {};
}

Expected<void> assign_string(std::optional<std::string>& field, const Text& t) {
  if (t.given()) field = t.value;
  return {};
}

// Options every register subcommand has.
struct Common {
  int if_version = -1;
  CLI::Option* if_version_option = nullptr;
  bool create_service = false;
  bool force = false;

  void add(CLI::App* sub, bool service_child, bool guarded) {
    if_version_option = sub->add_option(
        "--if-version", if_version,
        "update only if the node is at this version (exit 4 otherwise), instead of retrying");
    if (service_child)
      sub->add_flag("--create-service", create_service,
                    "create the service if it does not exist (otherwise exit 3)");
    if (guarded)
      sub->add_flag("--force", force, "allow marking the last up address of a service down");
  }

  registry::WriteOptions options() const {
    registry::WriteOptions o;
    if (if_version_option->count() > 0) o.if_version = if_version;
    o.if_missing = create_service ? registry::IfMissing::CreateService : registry::IfMissing::Refuse;
    o.safety = force ? registry::Safety::Force : registry::Safety::Guarded;
    return o;
  }
};

struct RegisterArgs {
  bool create_service_requested() const { return common.create_service; }
  std::string service;
  std::string name;  // address, interface or key
  Common common;
  std::unique_ptr<Text> status, desc, owner, dc, weight, version, tags, path, encoding, timeout,
      method, rate, burst, apis, pin;
  bool idempotent = false;
  CLI::Option* idempotent_option = nullptr;
  bool shadow = false;
  CLI::Option* shadow_option = nullptr;
  // --hold
  bool hold = false;
  std::string check;
  int interval_ms = 2000;
  int rise = 2;
  int fall = 3;
};

// register address --hold: stay in the foreground holding an ephemeral node.
Expected<void> hold_address(Context& ctx, const RegisterArgs& a, const model::HostPort& hp,
                            const model::AddressFields& f) {
  if (a.common.if_version_option->count() > 0)
    return fail(ErrorKind::Usage, "--if-version does not go with --hold");
  if (a.status->given())
    return fail(ErrorKind::Usage, "--status does not go with --hold: the health check decides it");
  if (a.interval_ms < 10 || a.rise < 1 || a.fall < 1)
    return fail(ErrorKind::Usage, "--interval must be at least 10 ms, --rise and --fall at least 1");
  if (!a.check.empty() && a.check.rfind("http://", 0) != 0 && a.check.rfind("https://", 0) != 0)
    return fail(ErrorKind::Usage, fmt::format("invalid --check \"{}\": give an http:// URL", a.check));
  registry::Holder::Options o = registry::Holder::for_address(a.service, hp, f);
  SVCCTL_TRY(o.zk, ctx.zk_options());
  o.interval = std::chrono::milliseconds(a.interval_ms);
  o.rise = a.rise;
  o.fall = a.fall;
  if (!a.check.empty()) {
    rpc::Timeouts t;
    t.total = std::chrono::milliseconds(std::max(10, a.interval_ms));
    t.connect = std::min(t.connect, t.total);
    o.check = [url = a.check, t] {
      auto r = rpc::http_get(url, t);
      return r && r->status >= 200 && r->status < 300;
    };
  }
  ignore_sigpipe();
  const bool quiet = ctx.quiet;
  o.log = [quiet](std::string_view m) {
    if (!quiet) to_stderr(fmt::format("svcctl: {}\n", m));
  };
  if (a.create_service_requested()) {
    SVCCTL_TRY(auto* reg, ctx.registry());
    auto svc = reg->put_service(a.service, {}, registry::WriteOptions{});
    if (!svc) return fail(svc.error());
  }
  const auto& stop = stop_on_signals();
  registry::Holder holder(std::move(o));
  return holder.run(stop);
}

Expected<void> run_service(Context& ctx, const RegisterArgs& a) {
  model::ServiceFields f;
  SVCCTL_CHECK(model::validate_name("service", a.service));
  SVCCTL_CHECK(assign(f.status, *a.status, model::parse_status));
  SVCCTL_CHECK(assign_string(f.desc, *a.desc));
  SVCCTL_CHECK(assign_string(f.owner, *a.owner));
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto result, reg->put_service(a.service, f, a.common.options()));
  ctx.print_write(result);
  return {};
}

Expected<void> run_address(Context& ctx, const RegisterArgs& a) {
  model::AddressFields f;
  SVCCTL_CHECK(model::validate_name("service", a.service));
  SVCCTL_TRY(auto hp, model::parse_host_port(a.name));
  SVCCTL_CHECK(assign_string(f.dc, *a.dc));
  SVCCTL_CHECK(assign(f.weight, *a.weight, model::parse_weight));
  SVCCTL_CHECK(assign(f.status, *a.status, model::parse_status));
  SVCCTL_CHECK(assign_string(f.version, *a.version));
  SVCCTL_CHECK(assign(f.tags, *a.tags, [](const std::string& t) {
    return t.empty() ? Expected<std::vector<std::string>>(std::vector<std::string>{})
                     : model::parse_name_list("tag", t);
  }));
  if (a.hold) return hold_address(ctx, a, hp, f);
  if (!a.check.empty()) return fail(ErrorKind::Usage, "--check goes with --hold");
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto result, reg->put_address(a.service, hp, f, a.common.options()));
  ctx.print_write(result);
  return {};
}

Expected<void> run_api(Context& ctx, const RegisterArgs& a) {
  model::ApiFields f;
  SVCCTL_CHECK(model::validate_name("service", a.service));
  SVCCTL_CHECK(model::validate_name("interface", a.name));
  if (a.path->given()) SVCCTL_CHECK(model::validate_api_path(a.path->value));
  SVCCTL_CHECK(assign_string(f.path, *a.path));
  SVCCTL_CHECK(assign(f.encoding, *a.encoding, model::parse_encoding));
  SVCCTL_CHECK(assign(f.status, *a.status, model::parse_status));
  SVCCTL_CHECK(assign(f.timeout_ms, *a.timeout, [](const std::string& t) {
    return model::parse_positive("timeout", t, 3'600'000);
  }));
  if (a.method->given()) SVCCTL_CHECK(model::validate_name("method", a.method->value));
  SVCCTL_CHECK(assign_string(f.method, *a.method));
  if (a.idempotent_option->count() > 0) f.idempotent = a.idempotent;
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto result, reg->put_api(a.service, a.name, f, a.common.options()));
  ctx.print_write(result);
  return {};
}

Expected<void> run_key(Context& ctx, const RegisterArgs& a) {
  model::KeyFields f;
  SVCCTL_CHECK(model::validate_name("key", a.name));
  SVCCTL_CHECK(assign_string(f.owner, *a.owner));
  SVCCTL_CHECK(assign(f.status, *a.status, model::parse_status));
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto result, reg->put_key(a.name, f, a.common.options()));
  ctx.print_write(result);
  return {};
}

Expected<void> run_acl(Context& ctx, const RegisterArgs& a) {
  model::AclFields f;
  SVCCTL_CHECK(model::validate_name("service", a.service));
  SVCCTL_CHECK(model::validate_name("key", a.name));
  SVCCTL_CHECK(assign(f.rate, *a.rate, model::parse_rate));
  SVCCTL_CHECK(assign(f.burst, *a.burst, [](const std::string& t) {
    return model::parse_positive("burst", t, 1'000'000'000);
  }));
  SVCCTL_CHECK(assign(f.apis, *a.apis, [](const std::string& t) {
    return model::parse_name_list("interface", t);
  }));
  if (a.shadow_option->count() > 0) f.shadow = a.shadow;
  SVCCTL_CHECK(assign(f.version, *a.pin, [](const std::string& t) -> Expected<std::string> {
    if (auto ok = model::validate_version(t); !ok) return fail(ok.error());
    return t;
  }));
  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto result, reg->put_acl(a.service, a.name, f, a.common.options()));
  ctx.print_write(result);
  return {};
}

}  // namespace

void setup_register(CLI::App& app, Context& ctx) {
  auto* reg = app.add_subcommand("register", "create a registry node, or update the given fields");
  reg->require_subcommand(1);
  // Each subcommand's arguments are owned by its callback, which lives as long as the App.
  auto service = std::make_shared<RegisterArgs>();
  auto address = std::make_shared<RegisterArgs>();
  auto api = std::make_shared<RegisterArgs>();
  auto key = std::make_shared<RegisterArgs>();
  auto acl = std::make_shared<RegisterArgs>();

  auto* s = reg->add_subcommand("service", "register a service");
  s->add_option("SVC", service->service, "service name")->required();
  cli::choices(text_option(s, service->status, "--status", "up or down (new: up)").option, {"up", "down"});
  text_option(s, service->desc, "--desc", "description");
  text_option(s, service->owner, "--owner", "owning team or person");
  service->common.add(s, false, false);
  s->callback([&ctx, service] { ctx.action = [&ctx, service] { return run_service(ctx, *service); }; });

  auto* ad = reg->add_subcommand("address", "register a provider address of a service");
  ad->add_option("SVC", address->service, "service name")->required();
  ad->add_option("HOST:PORT", address->name, "provider address")->required();
  text_option(ad, address->dc, "--dc", "datacenter (new: empty)");
  text_option(ad, address->weight, "--weight", "load-balancing weight, 0 to 1000000 (new: 100)");
  cli::choices(text_option(ad, address->status, "--status", "up or down (new: up)").option, {"up", "down"});
  text_option(ad, address->version, "--provider-version", "version label of the provider build");
  text_option(ad, address->tags, "--tags", "comma-separated tags (empty string clears)");
  address->common.add(ad, true, true);
  ad->add_flag("--hold", address->hold,
               "stay in the foreground holding an ephemeral node while the check passes; "
               "SIGTERM or SIGINT removes it");
  ad->add_option("--check", address->check, "with --hold: health check URL (HTTP GET, 2xx is healthy)");
  ad->add_option("--interval", address->interval_ms, "with --hold: milliseconds between checks")
      ->capture_default_str();
  ad->add_option("--rise", address->rise, "with --hold: passes in a row before it is up")
      ->capture_default_str();
  ad->add_option("--fall", address->fall, "with --hold: failures in a row before it is down")
      ->capture_default_str();
  ad->callback([&ctx, address] { ctx.action = [&ctx, address] { return run_address(ctx, *address); }; });

  auto* ap = reg->add_subcommand("api", "register an interface of a service");
  ap->add_option("SVC", api->service, "service name")->required();
  ap->add_option("IFACE", api->name, "interface name")->required();
  text_option(ap, api->path, "--path", "HTTP path on the provider (required for a new interface)");
  cli::choices(text_option(ap, api->encoding, "--encoding", "json, yar-msgpack or yar-json (new: json)").option,
               {"json", "yar-msgpack", "yar-json"});
  cli::choices(text_option(ap, api->status, "--status", "up or down (new: up)").option, {"up", "down"});
  text_option(ap, api->timeout, "--timeout-ms", "call timeout in milliseconds");
  text_option(ap, api->method, "--method", "Yar method name (default: the interface name)");
  api->idempotent_option = ap->add_flag("--idempotent,!--no-idempotent", api->idempotent,
                                       "whether a sent call may be retried on another address");
  api->common.add(ap, true, false);
  ap->callback([&ctx, api] { ctx.action = [&ctx, api] { return run_api(ctx, *api); }; });

  auto* k = reg->add_subcommand("key", "register a caller's access key");
  k->add_option("KEY", key->name, "the key")->required();
  text_option(k, key->owner, "--owner", "who the key belongs to");
  cli::choices(text_option(k, key->status, "--status", "up or down (new: up)").option, {"up", "down"});
  key->common.add(k, false, false);
  k->callback([&ctx, key] { ctx.action = [&ctx, key] { return run_key(ctx, *key); }; });

  auto* ac = reg->add_subcommand("acl", "allow a key to call a service, at a rate");
  ac->add_option("SVC", acl->service, "service name")->required();
  ac->add_option("KEY", acl->name, "the key")->required();
  text_option(ac, acl->rate, "--rate", "requests per second (absent: unlimited)");
  text_option(ac, acl->burst, "--burst", "bucket size (absent: the rate, at least 1)");
  text_option(ac, acl->apis, "--apis", "comma-separated interfaces, or * for all (new: *)");
  text_option(ac, acl->pin, "--pin-version", "send every call of the key to this version (\"\": no pin)");
  acl->shadow_option = ac->add_flag("--shadow,!--no-shadow", acl->shadow,
                                   "count would-be rejections without rejecting");
  acl->common.add(ac, false, false);
  ac->callback([&ctx, acl] { ctx.action = [&ctx, acl] { return run_acl(ctx, *acl); }; });
}

}  // namespace svcctl::cmd
