// svcctl watch [SVC...]: the registry's current state (as "added" events), then every
// change as it happens, through reconnects and session expiries, until interrupted.
#include "cli_tree.hpp"
#include "commands.hpp"

#include <svcctl/model/model.hpp>
#include <svcctl/registry/cache.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <set>

namespace svcctl::cmd {

namespace {

struct WatchArgs {
  std::vector<std::string> services;
  CacheArgs cache;
};

nlohmann::json data_of(const registry::CacheEntry& e) {
  auto j = nlohmann::json::parse(e.data, nullptr, false);
  if (j.is_discarded()) return e.data;  // not JSON: shown as the raw text
  return j;
}

std::string compact(const registry::CacheEntry& e) {
  return data_of(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Expected<void> run_watch(Context& ctx, const WatchArgs& a) {
  for (const auto& s : a.services) SVCCTL_CHECK(model::validate_name("service", s));
  std::set<std::string> only(a.services.begin(), a.services.end());
  const bool json = ctx.format == output::Format::Json;
  const bool color = !json && output::use_color(stdout) == output::Color::On;

  SVCCTL_TRY(registry::Cache::Options options, ctx.cache_options(a.cache));
  options.on_change = [&](const std::vector<registry::Change>& batch, const registry::Snapshot& snap) {
    // The first load comes as one batch in no particular order: shown in path order.
    std::vector<const registry::Change*> changes;
    changes.reserve(batch.size());
    for (const auto& c : batch) changes.push_back(&c);
    if (snap.generation == 1)
      std::sort(changes.begin(), changes.end(), [](auto* x, auto* y) { return x->path < y->path; });
    for (const registry::Change* cp : changes) {
      const registry::Change& c = *cp;
      if (c.kind == registry::Change::Kind::Synced) {
        if (json)
          fmt::print("{}\n", nlohmann::json{{"event", "synced"}}.dump());
        else
          fmt::print("{}synced{}    (the view is complete again)\n", color ? "\x1b[33m" : "",
                     color ? "\x1b[0m" : "");
        continue;
      }
      if (c.kind == registry::Change::Kind::Resync) {
        if (json)
          fmt::print("{}\n", nlohmann::json{{"event", "resync"}, {"gap", true}, {"reason", c.reason}}.dump());
        else
          fmt::print("{}resync{}    ({}; changes in between may have been coalesced)\n",
                     color ? "\x1b[33m" : "", color ? "\x1b[0m" : "", c.reason);
        continue;
      }
      auto named = registry::paths::parse_leaf(c.path);
      if (!named) continue;
      if (!only.empty() && !only.count(named->service)) continue;
      auto kind = registry::to_string(c.kind);
      if (json) {
        nlohmann::json j = {{"event", kind}, {"path", c.path}, {"kind", named->kind}};
        if (!named->service.empty()) j["service"] = named->service;
        j["name"] = named->name;
        if (c.before) j["before"] = data_of(*c.before);
        if (c.after) j["data"] = data_of(*c.after);
        if (c.after && c.after->ephemeral_owner) j["ephemeral"] = true;
        j["zxid"] = snap.max_zxid;
        fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      } else {
        const char* tone = c.kind == registry::Change::Kind::Added      ? "\x1b[32m"
                           : c.kind == registry::Change::Kind::Deleted ? "\x1b[31m"
                                                                       : "\x1b[36m";
        std::string detail = c.kind == registry::Change::Kind::Modified
                                 ? fmt::format("{} -> {}", compact(*c.before), compact(*c.after))
                             : c.after ? compact(*c.after)
                                       : "";
        fmt::print("{}{:<8}{}  {}  {}\n", color ? tone : "", kind, color ? "\x1b[0m" : "", c.path,
                   detail);
      }
    }
    std::fflush(stdout);
  };

  // Session transitions on stderr, and with -o json in the event stream too.
  options.on_session = [&ctx, json](const registry::SessionEvent& e) {
    if (!ctx.quiet) to_stderr(fmt::format("svcctl watch: {}\n", registry::describe(e)));
    if (!json) return;
    fmt::print("{}\n", registry::to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    std::fflush(stdout);
  };

  stop_on_signals();
  registry::Cache cache(std::move(options));
  SVCCTL_CHECK(ctx.start_cache(cache, a.cache, "showing the last-known-good state"));
  if (ctx.verbose) {
    auto snap = cache.snapshot();
    to_stderr(fmt::format("watching {} (sessions {:#x}, {} nodes)\n", ctx.zk, fmt::join(snap->session_ids, " "),
                          snap->size()));
  }
  wait_for_stop();
  return {};
}

}  // namespace

void setup_watch(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<WatchArgs>();
  auto* w = app.add_subcommand("watch", "print the registry, then every change as it happens");
  w->add_option("SVC", args->services, "only these services (keys and gateways are then left out)");
  add_cache_options(w, args->cache);
  w->callback([&ctx, args] { ctx.action = [&ctx, args] { return run_watch(ctx, *args); }; });
}

}  // namespace svcctl::cmd
