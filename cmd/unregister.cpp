// svcctl unregister service|address|api|key|acl: remove registry nodes, with guard rails.
#include "commands.hpp"

#include <svcctl/model/model.hpp>

#include <memory>

namespace svcctl::cmd {

namespace {

struct UnregisterArgs {
  std::string service;
  std::string name;
  bool recursive = false;
  bool force = false;
};

registry::Safety safety(const UnregisterArgs& a) {
  return a.force ? registry::Safety::Force : registry::Safety::Guarded;
}

// Runs one removal and prints its result.
template <typename Remove>
std::function<Expected<void>()> removal(Context& ctx, std::shared_ptr<UnregisterArgs> args,
                                        Remove remove) {
  return [&ctx, args, remove]() -> Expected<void> {
    SVCCTL_TRY(auto* reg, ctx.registry());
    SVCCTL_TRY(auto result, remove(*reg, *args));
    ctx.print_write(result);
    return {};
  };
}

}  // namespace

void setup_unregister(CLI::App& app, Context& ctx) {
  auto* un = app.add_subcommand("unregister", "remove registry nodes");
  un->require_subcommand(1);

  auto service = std::make_shared<UnregisterArgs>();
  auto* s = un->add_subcommand("service", "remove a service");
  s->add_option("SVC", service->service, "service name")->required();
  s->add_flag("--recursive", service->recursive,
              "also remove its addresses, interfaces and ACLs (otherwise a non-empty service is "
              "refused, exit 9)");
  s->callback([&ctx, service] {
    ctx.action = removal(ctx, service, [](registry::Registry& r, const UnregisterArgs& a)
                                           -> Expected<registry::WriteResult> {
      SVCCTL_CHECK(model::validate_name("service", a.service));
      return r.remove_service(a.service, a.recursive ? registry::Depth::Recursive
                                                     : registry::Depth::NodeOnly);
    });
  });

  auto address = std::make_shared<UnregisterArgs>();
  auto* ad = un->add_subcommand("address", "remove a provider address");
  ad->add_option("SVC", address->service, "service name")->required();
  ad->add_option("HOST:PORT", address->name, "provider address")->required();
  ad->add_flag("--force", address->force,
               "allow removing the last up address of the service (otherwise exit 9)");
  ad->callback([&ctx, address] {
    ctx.action = removal(ctx, address, [](registry::Registry& r, const UnregisterArgs& a)
                                           -> Expected<registry::WriteResult> {
      SVCCTL_CHECK(model::validate_name("service", a.service));
      SVCCTL_TRY(auto hp, model::parse_host_port(a.name));
      return r.remove_address(a.service, hp, safety(a));
    });
  });

  auto api = std::make_shared<UnregisterArgs>();
  auto* ap = un->add_subcommand("api", "remove an interface");
  ap->add_option("SVC", api->service, "service name")->required();
  ap->add_option("IFACE", api->name, "interface name")->required();
  ap->callback([&ctx, api] {
    ctx.action = removal(ctx, api, [](registry::Registry& r, const UnregisterArgs& a) {
      return r.remove_api(a.service, a.name);
    });
  });

  auto key = std::make_shared<UnregisterArgs>();
  auto* k = un->add_subcommand("key", "remove a caller's key");
  k->add_option("KEY", key->name, "the key")->required();
  k->add_flag("--force", key->force,
              "also remove the ACLs that name the key (otherwise such a key is refused, exit 9)");
  k->callback([&ctx, key] {
    ctx.action = removal(ctx, key, [](registry::Registry& r, const UnregisterArgs& a) {
      return r.remove_key(a.name, safety(a));
    });
  });

  auto acl = std::make_shared<UnregisterArgs>();
  auto* ac = un->add_subcommand("acl", "remove what a key may call on a service");
  ac->add_option("SVC", acl->service, "service name")->required();
  ac->add_option("KEY", acl->name, "the key")->required();
  ac->callback([&ctx, acl] {
    ctx.action = removal(ctx, acl, [](registry::Registry& r, const UnregisterArgs& a) {
      return r.remove_acl(a.service, a.name);
    });
  });
}

}  // namespace svcctl::cmd
