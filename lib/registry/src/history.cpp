// The records of svcctl's writes (history.hpp): their encoding, and the plan that undoes one.
#include <svcctl/registry/history.hpp>
#include <svcctl/registry/paths.hpp>

#include <svcctl/model/model.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace svcctl::registry {

using nlohmann::json;

json node_value(std::string_view data) {
  auto obj = model::parse_object(data);
  return obj ? std::move(*obj) : json(std::string(data));
}

std::vector<std::string> Record::services() const {
  std::set<std::string> out;
  for (const auto& c : changes)
    if (auto leaf = paths::parse_leaf(c.path); leaf && !leaf->service.empty()) out.insert(leaf->service);
  return {out.begin(), out.end()};
}

namespace {

std::string_view action_of(const Edit& c) {
  if (c.before.is_null()) return "created";
  if (c.after.is_null()) return "deleted";
  return "updated";
}

json change_json(const Edit& c, bool with_data) {
  json j = {{"path", c.path}, {"version", c.version}};
  if (with_data) {
    j["before"] = c.before;
    j["after"] = c.after;
  } else {
    j["action"] = action_of(c);  // what is left of a cut record's data
  }
  if (c.held) j["held"] = true;
  return j;
}

}  // namespace

json Record::to_json() const {
  json list = json::array();
  for (const auto& c : changes) {
    json j = change_json(c, !cut);
    j["action"] = action_of(c);
    list.push_back(std::move(j));
  }
  json j = {{"id", id},          {"time_ms", time_ms}, {"who", who}, {"command", command},
            {"services", services()}, {"changes", std::move(list)}};
  if (cut) j["cut"] = true;
  return j;
}

std::vector<std::string> Record::lines() const {
  std::vector<std::string> out;
  for (const auto& c : changes) {
    if (cut) {
      out.push_back(fmt::format("{} {} (data not kept: the record was too large)",
                                c.before.is_null() ? '+' : c.after.is_null() ? '-' : '~', c.path));
      continue;
    }
    PlanStep step{c.before.is_null()  ? PlanStep::Kind::Create
                  : c.after.is_null() ? PlanStep::Kind::Delete
                                      : PlanStep::Kind::Update,
                  c.path, c.before, c.after, -1};
    out.push_back(describe(step));
  }
  return out;
}

std::string encode_record(const Author& author, const std::vector<Edit>& changes) {
  json j = {{"who", author.who}, {"command", author.command}, {"changes", json::array()}};
  for (const auto& c : changes) j["changes"].push_back(change_json(c, true));
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() <= k_max_record_bytes) return text;
  j["changes"] = json::array();
  j["cut"] = true;
  for (const auto& c : changes) j["changes"].push_back(change_json(c, false));
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<std::int64_t> record_id(std::string_view name) {
  if (!name.starts_with(k_record_prefix)) return std::nullopt;
  name.remove_prefix(k_record_prefix.size());
  std::int64_t id = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec != std::errc() || end != name.data() + name.size() || name.size() != 10 || id < 0) return std::nullopt;
  return id;
}

std::string record_path(std::int64_t id) { return fmt::format("{}/{}{:010d}", k_history, k_record_prefix, id); }

Expected<Record> decode_record(std::string_view name, const zk::Node& node) {
  auto id = record_id(name);
  if (!id) return fail(ErrorKind::Error, fmt::format("{}/{}: not a record's name", k_history, name));
  auto j = model::parse_object(node.data);
  auto bad = [&](std::string_view why) {
    return fail(ErrorKind::Error, fmt::format("{}: not a record svcctl wrote ({})", record_path(*id), why));
  };
  if (!j) return bad(j.error().message);
  Record r;
  r.id = *id;
  r.time_ms = node.stat.ctime_ms;
  r.who = j->value("who", "");
  r.command = j->value("command", "");
  r.cut = j->value("cut", false);
  auto changes = j->find("changes");
  if (changes == j->end() || !changes->is_array()) return bad("no \"changes\" list");
  for (const auto& c : *changes) {
    if (!c.is_object() || !c.contains("path") || !c["path"].is_string()) return bad("a change without a path");
    Edit ch;
    ch.path = c["path"].get<std::string>();
    ch.version = c.value("version", -1);
    ch.held = c.value("held", false);
    if (r.cut) {
      // Only the action is left: a placeholder stands for the data, so that the kind of
      // change still reads from before and after.
      const std::string action = c.value("action", "updated");
      ch.before = action == "created" ? json() : json::object();
      ch.after = action == "deleted" ? json() : json::object();
    } else {
      ch.before = c.value("before", json());
      ch.after = c.value("after", json());
    }
    r.changes.push_back(std::move(ch));
  }
  return r;
}

// ---- revert --------------------------------------------------------------------------

namespace {

// The containers a node created at `path` needs, roots first: the root, the service's
// container, and for a service node the containers `register` makes with it.
std::vector<std::string> containers_for(const std::string& path) {
  auto leaf = paths::parse_leaf(path);
  if (!leaf) return {};
  const std::string root = "/" + std::string(leaf->kind);
  if (leaf->kind == "service")
    return {root, std::string(paths::k_addresses), std::string(paths::k_apis), paths::addresses(leaf->name),
            paths::apis(leaf->name)};
  if (leaf->kind == "key" || leaf->kind == "gateway") return {root};
  return {root, path.substr(0, path.rfind('/'))};
}

// What `current` holds at a path, said for a conflict.
std::string drift(const Edit& c, const Tree& current) {
  auto it = current.nodes.find(c.path);
  if (c.after.is_null()) return fmt::format("{} exists again (version {})", c.path, it->second.version);
  if (it == current.nodes.end()) return fmt::format("{} is gone", c.path);
  return fmt::format("{} is at version {}, the record left version {}", c.path, it->second.version, c.version);
}

}  // namespace

Expected<Plan> revert_plan(const Record& record, const Tree& current) {
  if (record.cut)
    return fail(ErrorKind::Usage, fmt::format("record {} was too large to keep the data it changed: it cannot be "
                                              "reverted (svcctl history shows what it touched)",
                                              record.id));
  Plan plan;
  std::vector<std::string> changed;
  for (const auto& c : record.changes) {
    auto it = current.nodes.find(c.path);
    const bool there = it != current.nodes.end();
    if (there != !c.after.is_null() || (there && it->second.version != c.version)) {
      changed.push_back(drift(c, current));
      continue;
    }
    if (c.before.is_null()) {
      plan.steps.push_back({PlanStep::Kind::Delete, c.path, it->second.data, nullptr, it->second.version});
    } else if (c.after.is_null()) {
      if (c.held) {
        plan.notes.push_back(fmt::format("{} was held by a live provider: left for it to register again", c.path));
        continue;
      }
      plan.steps.push_back({PlanStep::Kind::Create, c.path, nullptr, c.before, -1});
      for (auto& container : containers_for(c.path))
        if (!current.containers.count(container) &&
            std::find(plan.create_containers.begin(), plan.create_containers.end(), container) ==
                plan.create_containers.end())
          plan.create_containers.push_back(std::move(container));
    } else if (c.before != c.after) {
      plan.steps.push_back({PlanStep::Kind::Update, c.path, it->second.data, c.before, it->second.version});
    }
  }
  if (!changed.empty()) {
    std::string why;
    for (const auto& w : changed) why += "\n  " + w;
    return fail(ErrorKind::Conflict, fmt::format("record {} cannot be reverted, the registry changed since "
                                                 "(revert the later records first, or apply what you want):{}",
                                                 record.id, why));
  }
  // A service node removed takes its containers with it, when nothing is left in them.
  auto deleted = [&](const std::string& path) {
    return std::any_of(plan.steps.begin(), plan.steps.end(),
                       [&](const PlanStep& s) { return s.kind == PlanStep::Kind::Delete && s.path == path; });
  };
  for (const auto& s : std::vector<PlanStep>(plan.steps)) {
    auto leaf = paths::parse_leaf(s.path);
    if (s.kind != PlanStep::Kind::Delete || !leaf || leaf->kind != "service") continue;
    std::size_t left = 0;
    std::vector<std::string> emptied;
    for (const std::string& container :
         {paths::addresses(leaf->name), paths::apis(leaf->name), paths::acls(leaf->name)}) {
      if (!current.containers.count(container)) continue;
      const std::string prefix = container + "/";
      for (auto n = current.nodes.lower_bound(prefix); n != current.nodes.end() && n->first.starts_with(prefix); ++n)
        left += !deleted(n->first);
      emptied.push_back(container);
    }
    if (left == 0) {
      plan.delete_containers.insert(plan.delete_containers.end(), emptied.begin(), emptied.end());
    } else {
      plan.unsafe.push_back(fmt::format("service {}: removes its /service node but keeps {} node{} of it "
                                        "(addresses, interfaces or ACLs registered since)",
                                        leaf->name, left, left == 1 ? "" : "s"));
    }
  }
  std::sort(plan.steps.begin(), plan.steps.end(), [](const PlanStep& a, const PlanStep& b) { return a.path < b.path; });
  judge_safety(current, plan);
  return plan;
}

}  // namespace svcctl::registry
