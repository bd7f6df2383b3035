#include <svcctl/model/model.hpp>
#include <svcctl/registry/declare.hpp>
#include <svcctl/registry/paths.hpp>
#include <svcctl/registry/registry.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace svcctl::registry {

using nlohmann::json;

namespace {

// The kinds of leaf a document names, with their sections and defaults.
struct Section {
  const char* name;        // in a service's object
  std::string_view root;   // where its nodes live
};
constexpr Section k_sections[] = {
    {"addresses", paths::k_addresses},
    {"interfaces", paths::k_apis},
    {"acls", paths::k_acls},
};

json defaults_of(std::string_view kind) {
  if (kind == "service") return model::ServiceFields::defaults();
  if (kind == "address") return model::AddressFields::defaults();
  if (kind == "api") return model::ApiFields::defaults();
  if (kind == "key") return model::KeyFields::defaults();
  return model::AclFields::defaults();
}

// What `register` would say of the node's data once written: its problems, as messages.
std::vector<std::string> problems_of(const paths::Leaf& leaf, const json& data) {
  const std::string text = data.dump();
  std::vector<std::string> out;
  auto take = [&](const auto& d) { out = d.problems; };
  if (leaf.kind == "service") take(model::decode_service(leaf.name, text));
  else if (leaf.kind == "address") take(model::decode_address(leaf.service, leaf.name, text));
  else if (leaf.kind == "key") take(model::decode_key(leaf.name, text));
  else if (leaf.kind == "acl") take(model::decode_acl(leaf.service, leaf.name, text));
  else {
    take(model::decode_api(leaf.service, leaf.name, text));
    auto p = data.find("path");
    if (p == data.end() || !p->is_string()) out.push_back("an interface needs a \"path\"");
    else if (auto ok = model::validate_api_path(p->get<std::string>()); !ok) out.push_back(ok.error().message);
  }
  return out;
}

// Whether the address node at `path` (/address/{svc}/{host:port}) with `data` is routable.
bool routable_address(std::string_view path, const json& data) {
  auto leaf = paths::parse_leaf(path);
  if (!leaf) return false;
  return model::routable(model::decode_address(leaf->service, leaf->name, data.is_object() ? data.dump() : std::string()).value);
}

// Every service name the tree knows: /service nodes and the per-service containers.
std::set<std::string> services_of(const Tree& tree) {
  std::set<std::string> out;
  for (const auto& [path, _] : tree.nodes)
    if (auto leaf = paths::parse_leaf(path); leaf && !leaf->service.empty()) out.insert(leaf->service);
  for (const auto& c : tree.containers)
    for (const auto& s : k_sections)
      if (c.size() > s.root.size() + 1 && c.starts_with(s.root) && c[s.root.size()] == '/')
        out.insert(c.substr(s.root.size() + 1));
  return out;
}

// The plan being built, with the document's problems gathered rather than stopping at the
// first: a pipeline wants to fix its file in one go.
struct Planner {
  const Tree& tree;
  Plan plan;
  std::vector<std::string> errors;
  std::map<std::string, json> desired;  // path → the node's data after the plan
  std::set<std::string> authoritative;  // containers whose listing the document gives whole
  std::set<std::string> roots;          // roots that must exist

  void error(std::string message) { errors.push_back(std::move(message)); }

  // A node the document names, with its fields: merged over what is there.
  void want(const std::string& path, const json& fields) {
    auto leaf = paths::parse_leaf(path);
    if (!fields.is_object()) return error(fmt::format("{}: must be a JSON object", path));
    auto it = tree.nodes.find(path);
    if (it != tree.nodes.end() && it->second.ephemeral) {
      plan.notes.push_back(fmt::format("{} is held by a live provider (ephemeral): left as it is", path));
      desired[path] = it->second.data;
      return;
    }
    json after = it != tree.nodes.end() && it->second.data.is_object() ? it->second.data : defaults_of(leaf->kind);
    after.merge_patch(fields);
    for (const auto& p : problems_of(*leaf, after)) error(fmt::format("{}: {}", path, p));
    desired[path] = std::move(after);
  }

  void read_service(const std::string& svc, const json& body) {
    if (auto ok = model::validate_name("service", svc); !ok) return error(ok.error().message);
    if (!body.is_object()) return error(fmt::format("service {}: must be a JSON object", svc));
    json fields = json::object();
    for (const auto& [k, v] : body.items())
      if (std::none_of(std::begin(k_sections), std::end(k_sections), [&](const Section& s) { return k == s.name; }))
        fields[k] = v;
    want(paths::service(svc), fields);
    roots.insert(std::string(paths::k_services));
    for (const auto& s : k_sections) {
      auto sec = body.find(s.name);
      if (sec == body.end()) continue;  // not managed by this document
      if (!sec->is_object()) {
        error(fmt::format("service {}: \"{}\" must be an object", svc, s.name));
        continue;
      }
      authoritative.insert(paths::under(s.root, svc));
      for (const auto& [name, fields_of] : sec->items()) {
        if (s.root == paths::k_addresses) {
          auto hp = model::parse_host_port(name);
          if (!hp) {
            error(hp.error().message);
            continue;
          }
        } else if (auto ok = model::validate_name(s.root == paths::k_apis ? "interface" : "key", name); !ok) {
          error(ok.error().message);
          continue;
        }
        roots.insert(std::string(s.root));
        want(paths::under(s.root, svc, name), fields_of);
      }
    }
  }

  void read_keys(const json& keys) {
    if (!keys.is_object()) return error("\"keys\" must be an object");
    for (const auto& [key, fields] : keys.items()) {
      if (auto ok = model::validate_name("key", key); !ok) {
        error(ok.error().message);
        continue;
      }
      roots.insert(std::string(paths::k_keys));
      want(paths::key(key), fields);
    }
  }

  // Everything under a pruned service or key goes; ephemeral addresses cannot.
  void prune(const std::set<std::string>& named_services, const std::set<std::string>& named_keys) {
    for (const auto& svc : services_of(tree)) {
      if (named_services.count(svc)) continue;
      for (const auto& s : k_sections) authoritative.insert(paths::under(s.root, svc));
      authoritative.insert(paths::service(svc));  // the node itself: see deletions()
      for (const auto& s : k_sections)
        if (tree.containers.count(paths::under(s.root, svc)))
          plan.delete_containers.push_back(paths::under(s.root, svc));
    }
    for (const auto& [path, node] : tree.nodes) {
      auto leaf = paths::parse_leaf(path);
      if (leaf && leaf->kind == "key" && !named_keys.count(leaf->name)) authoritative.insert(path);
    }
  }

  // Nodes under an authoritative container (or pruned) that the document does not list.
  void deletions() {
    for (const auto& [path, node] : tree.nodes) {
      if (desired.count(path)) continue;
      auto slash = path.rfind('/');
      const bool listed_whole = authoritative.count(path.substr(0, slash)) || authoritative.count(path);
      if (!listed_whole) continue;
      if (node.ephemeral) {
        auto container = path.substr(0, slash);
        if (std::find(plan.delete_containers.begin(), plan.delete_containers.end(), container) !=
            plan.delete_containers.end())
          error(fmt::format("{} is held by a live provider (ephemeral): its service cannot be removed", path));
        else
          plan.notes.push_back(fmt::format("{} is held by a live provider (ephemeral): left as it is", path));
        continue;
      }
      plan.steps.push_back({PlanStep::Kind::Delete, path, node.data, nullptr, node.version});
    }
  }

  void changes() {
    for (const auto& [path, after] : desired) {
      auto it = tree.nodes.find(path);
      if (it == tree.nodes.end()) {
        plan.steps.push_back({PlanStep::Kind::Create, path, nullptr, after, -1});
        auto leaf = paths::parse_leaf(path);
        if (leaf->kind == "service" || leaf->kind == "key") continue;  // right under a root
        auto container = path.substr(0, path.rfind('/'));
        if (!tree.containers.count(container) &&
            std::find(plan.create_containers.begin(), plan.create_containers.end(), container) ==
                plan.create_containers.end())
          plan.create_containers.push_back(container);
      } else if (!it->second.ephemeral && it->second.data != after) {
        plan.steps.push_back({PlanStep::Kind::Update, path, it->second.data, after, it->second.version});
      }
    }
  }

  // Every ACL left must name a key that is left.
  void check_acl_keys() {
    auto key_left = [&](const std::string& key) {
      const std::string kp = paths::key(key);
      return desired.count(kp) || (tree.nodes.count(kp) && !deleted(kp));
    };
    auto check = [&](const std::string& path) {
      auto leaf = paths::parse_leaf(path);
      if (leaf && leaf->kind == "acl" && !key_left(leaf->name))
        error(fmt::format("{}: key {} is neither registered nor kept by the document", path, leaf->name));
    };
    for (const auto& [path, _] : desired) check(path);
    for (const auto& [path, _] : tree.nodes)
      if (!desired.count(path) && !deleted(path)) check(path);
  }

  bool deleted(const std::string& path) const {
    return std::any_of(plan.steps.begin(), plan.steps.end(),
                       [&](const PlanStep& s) { return s.kind == PlanStep::Kind::Delete && s.path == path; });
  }

};

std::string compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

// Per service whose addresses change: more than half removed, or none left up, is unsafe;
// the up addresses the verdict counts on are pinned.
void judge_safety(const Tree& tree, Plan& plan) {
  std::map<std::string, std::vector<const PlanStep*>> by_service;
  for (const auto& s : plan.steps)
    if (auto leaf = paths::parse_leaf(s.path); leaf && leaf->kind == "address") by_service[leaf->service].push_back(&s);
  for (const auto& [svc, steps] : by_service) {
    std::size_t total = 0, up_before = 0, up_after = 0, removed = 0;
    std::vector<std::pair<std::string, int>> kept_up;
    const std::string prefix = paths::addresses(svc) + "/";
    for (const auto& [path, node] : tree.nodes) {
      if (!path.starts_with(prefix)) continue;
      ++total;
      up_before += routable_address(path, node.data);
      auto step = std::find_if(steps.begin(), steps.end(), [&](const PlanStep* s) { return s->path == path; });
      if (step == steps.end()) {
        if (routable_address(path, node.data)) {
          ++up_after;
          if (!node.ephemeral) kept_up.emplace_back(path, node.version);
        }
      } else if ((*step)->kind == PlanStep::Kind::Delete) {
        ++removed;
      } else {
        up_after += routable_address(path, (*step)->after);
      }
    }
    for (const PlanStep* s : steps) up_after += s->kind == PlanStep::Kind::Create && routable_address(s->path, s->after);
    if (total > 0 && removed * 2 > total)
      plan.unsafe.push_back(fmt::format("service {}: removes {} of its {} addresses", svc, removed, total));
    if (up_before > 0 && up_after == 0)
      plan.unsafe.push_back(fmt::format("service {}: leaves no address up (it has {} now)", svc, up_before));
    plan.checks.insert(plan.checks.end(), kept_up.begin(), kept_up.end());
  }
}

std::string_view to_string(PlanStep::Kind kind) {
  switch (kind) {
    case PlanStep::Kind::Create: return "create";
    case PlanStep::Kind::Update: return "update";
    case PlanStep::Kind::Delete: return "delete";
  }
  return "?";
}

json export_document(const Tree& tree, const std::vector<std::string>& services) {
  std::set<std::string> wanted(services.begin(), services.end());
  const bool all = wanted.empty();
  json out_services = json::object();
  std::set<std::string> keys;
  for (const auto& svc : services_of(tree)) {
    if (!all && !wanted.count(svc)) continue;
    auto node = tree.nodes.find(paths::service(svc));
    json body = node != tree.nodes.end() && node->second.data.is_object() ? node->second.data : json::object();
    for (const auto& s : k_sections) body[s.name] = json::object();
    out_services[svc] = std::move(body);
  }
  for (const auto& [path, node] : tree.nodes) {
    auto leaf = paths::parse_leaf(path);
    if (!leaf || leaf->service.empty() || leaf->kind == "service" || node.ephemeral) continue;
    auto svc = out_services.find(leaf->service);
    if (svc == out_services.end()) continue;
    const char* section = leaf->kind == "address" ? "addresses" : leaf->kind == "api" ? "interfaces" : "acls";
    (*svc)[section][leaf->name] = node.data.is_object() ? node.data : json::object();
    if (leaf->kind == "acl") keys.insert(leaf->name);
  }
  json out_keys = json::object();
  for (const auto& [path, node] : tree.nodes) {
    auto leaf = paths::parse_leaf(path);
    if (leaf && leaf->kind == "key" && (all || keys.count(leaf->name)))
      out_keys[leaf->name] = node.data.is_object() ? node.data : json::object();
  }
  return {{"format", k_document_format}, {"services", std::move(out_services)}, {"keys", std::move(out_keys)}};
}

Expected<Plan> make_plan(const Tree& current, const json& document, const PlanOptions& options) {
  if (!document.is_object()) return fail(ErrorKind::Usage, "the document is not a JSON object");
  Planner p{current, {}, {}, {}, {}, {}};
  for (const auto& [k, v] : document.items()) {
    if (k == "format") {
      if (v != k_document_format)
        p.error(fmt::format("\"format\" is {}: this svcctl reads {}", compact(v), k_document_format));
    } else if (k != "services" && k != "keys") {
      p.error(fmt::format("unknown section \"{}\" (a document has \"services\" and \"keys\")", k));
    }
  }
  std::set<std::string> named_services, named_keys;
  if (auto s = document.find("services"); s != document.end()) {
    if (!s->is_object()) p.error("\"services\" must be an object");
    else
      for (const auto& [svc, body] : s->items()) {
        named_services.insert(svc);
        p.read_service(svc, body);
      }
  }
  if (auto k = document.find("keys"); k != document.end()) {
    p.read_keys(*k);
    if (k->is_object())
      for (const auto& [key, _] : k->items()) named_keys.insert(key);
  }
  if (options.prune) p.prune(named_services, named_keys);
  p.changes();
  p.deletions();
  p.check_acl_keys();
  if (!p.errors.empty()) {
    std::string all;
    for (const auto& e : p.errors) all += "\n  " + e;
    return fail(ErrorKind::Usage, fmt::format("the document has {} problem{}:{}", p.errors.size(),
                                              p.errors.size() == 1 ? "" : "s", all));
  }
  std::sort(p.plan.steps.begin(), p.plan.steps.end(),
            [](const PlanStep& a, const PlanStep& b) { return a.path < b.path; });
  judge_safety(current, p.plan);
  for (const auto& r : p.roots)
    if (!current.containers.count(r) && !p.plan.steps.empty()) p.plan.create_containers.insert(p.plan.create_containers.begin(), r);
  return std::move(p.plan);
}

std::size_t Plan::count(PlanStep::Kind kind) const {
  return static_cast<std::size_t>(
      std::count_if(steps.begin(), steps.end(), [&](const PlanStep& s) { return s.kind == kind; }));
}

std::vector<zk::Op> Plan::ops() const {
  std::vector<zk::Op> ops;
  for (const auto& c : create_containers) ops.push_back(zk::Op::create(c, ""));
  for (const auto& s : steps) {
    if (s.kind == PlanStep::Kind::Create) ops.push_back(zk::Op::create(s.path, s.after.dump()));
    else if (s.kind == PlanStep::Kind::Update) ops.push_back(zk::Op::set(s.path, s.after.dump(), s.version));
  }
  for (const auto& s : steps)
    if (s.kind == PlanStep::Kind::Delete) ops.push_back(zk::Op::remove(s.path, s.version));
  for (const auto& c : delete_containers) ops.push_back(zk::Op::remove(c, -1));
  for (const auto& [path, version] : checks) ops.push_back(zk::Op::check(path, version));
  return ops;
}

json Plan::to_json() const {
  json steps_json = json::array();
  for (const auto& s : steps) {
    json j = {{"action", to_string(s.kind)}, {"path", s.path}};
    if (!s.before.is_null()) j["before"] = s.before;
    if (!s.after.is_null()) j["after"] = s.after;
    if (s.version >= 0) j["version"] = s.version;
    steps_json.push_back(std::move(j));
  }
  return {{"steps", std::move(steps_json)},
          {"create_containers", create_containers},
          {"delete_containers", delete_containers},
          {"unsafe", unsafe},
          {"notes", notes},
          {"summary",
           {{"create", count(PlanStep::Kind::Create)},
            {"update", count(PlanStep::Kind::Update)},
            {"delete", count(PlanStep::Kind::Delete)}}}};
}

std::string describe(const PlanStep& s) {
  if (s.kind == PlanStep::Kind::Create) return fmt::format("+ {} {}", s.path, compact(s.after));
  if (s.kind == PlanStep::Kind::Delete) return fmt::format("- {}", s.path);
  std::string what;
  auto field = [&](const std::string& k, const json& b, const json& a) {
    what += fmt::format("{}{}: {} → {}", what.empty() ? "" : ", ", k, b.is_null() ? "(none)" : compact(b),
                        a.is_null() ? "(none)" : compact(a));
  };
  if (!s.before.is_object() || !s.after.is_object()) {
    what = fmt::format("{} → {}", compact(s.before), compact(s.after));
  } else {
    for (const auto& [k, a] : s.after.items())
      if (!s.before.contains(k) || s.before[k] != a) field(k, s.before.value(k, json()), a);
    for (const auto& [k, b] : s.before.items())
      if (!s.after.contains(k)) field(k, b, nullptr);
  }
  return fmt::format("~ {} {}", s.path, what);
}

std::vector<std::string> Plan::lines() const {
  std::vector<std::string> out;
  for (const auto& s : steps) out.push_back(describe(s));
  return out;
}

// ---- reading and applying ------------------------------------------------------------------

namespace {
constexpr int k_read_attempts = 5;
}  // namespace

// Listings and data are read at different moments: a tree whose listings changed while its
// data was read could show a node's new data beside a listing from before the same write.
// So the listings are read again after the data, and the whole read repeats until both
// agree (every write apply makes is also pinned to the versions read).
Expected<Tree> Registry::read_tree() {
  for (int attempt = 0; attempt < k_read_attempts; ++attempt) {
    SVCCTL_TRY(auto tree, read_tree_once());
    std::vector<std::string> listed;
    for (const auto& c : tree.containers) listed.push_back(c);
    auto again = m_zk.children_many(listed);
    bool same = true;
    for (std::size_t i = 0; i < listed.size() && same; ++i) {
      if (!again[i]) {
        if (!zk::is(again[i].error(), zk::Code::NoNode)) return fail(again[i].error());
        same = false;
        continue;
      }
      for (const auto& name : *again[i]) {
        const std::string child = zk::join(listed[i], name);
        if (!tree.nodes.count(child) && !tree.containers.count(child)) same = false;
      }
      const std::string prefix = listed[i] + "/";
      std::size_t before = 0;
      for (auto it = tree.nodes.lower_bound(prefix); it != tree.nodes.end() && it->first.starts_with(prefix); ++it)
        before += it->first.find('/', prefix.size()) == std::string::npos;
      for (auto it = tree.containers.lower_bound(prefix); it != tree.containers.end() && it->starts_with(prefix); ++it)
        before += it->find('/', prefix.size()) == std::string::npos;
      if (before != again[i]->size()) same = false;
    }
    if (same) return tree;
  }
  return fail(ErrorKind::Conflict, fmt::format("the registry changed during each of {} reads; try again", k_read_attempts));
}

Expected<Tree> Registry::read_tree_once() {
  Tree tree;
  std::vector<std::string> leaves;
  std::vector<std::string> containers;
  for (auto root : {paths::k_services, paths::k_keys, paths::k_addresses, paths::k_apis, paths::k_acls}) {
    auto kids = m_zk.children(std::string(root));
    if (!kids) {
      if (zk::is(kids.error(), zk::Code::NoNode)) continue;
      return fail(kids.error());
    }
    tree.containers.insert(std::string(root));
    const bool flat = root == paths::k_services || root == paths::k_keys;
    for (const auto& k : *kids) (flat ? leaves : containers).push_back(paths::under(root, k));
  }
  auto listed = m_zk.children_many(containers);
  for (std::size_t i = 0; i < containers.size(); ++i) {
    if (!listed[i]) {
      if (zk::is(listed[i].error(), zk::Code::NoNode)) continue;  // removed meanwhile
      return fail(listed[i].error());
    }
    tree.containers.insert(containers[i]);
    for (const auto& k : *listed[i]) leaves.push_back(zk::join(containers[i], k));
  }
  auto nodes = m_zk.get_many(leaves);
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (!nodes[i]) {
      if (zk::is(nodes[i].error(), zk::Code::NoNode)) continue;
      return fail(nodes[i].error());
    }
    Tree::Node n;
    auto obj = model::parse_object(nodes[i]->data);
    n.data = obj ? std::move(*obj) : json(nodes[i]->data);
    n.version = nodes[i]->stat.version;
    n.ephemeral = nodes[i]->stat.ephemeral_owner != 0;
    tree.nodes.emplace(leaves[i], std::move(n));
  }
  return tree;
}

Expected<std::int64_t> Registry::apply(const Plan& plan) {
  if (plan.empty()) return std::int64_t{0};
  // The roots (/service, /key...) are made first, as `register` makes them, chroot
  // included: empty containers any writer may create, not part of the atomic step.
  auto ops = plan.ops();
  for (const auto& c : plan.create_containers)
    if (std::count(c.begin(), c.end(), '/') == 1) {
      SVCCTL_CHECK(m_zk.ensure_path(c));
      std::erase_if(ops, [&](const zk::Op& op) { return op.type == zk::Op::Type::Create && op.path == c; });
    }
  std::vector<Edit> changes;
  for (const auto& s : plan.steps)
    changes.push_back({s.path, s.before, s.after,
                       s.kind == PlanStep::Kind::Create   ? 0
                       : s.kind == PlanStep::Kind::Update ? s.version + 1
                                                          : -1});
  auto done = commit(std::move(ops), changes);
  if (!done) {
    Error e = done.error();
    if (e.kind == ErrorKind::Conflict || e.kind == ErrorKind::NotFound)
      return fail(ErrorKind::Conflict,
                  fmt::format("the registry changed since the plan was made ({}); nothing was written: run "
                              "apply again",
                              e.message));
    return fail(std::move(e));
  }
  // Every op of a multi has the same zxid: a node written carries it as mzxid; for a plan
  // that only deletes, the parent's pzxid (or its parent's, when it went too).
  for (const auto& s : plan.steps)
    if (s.kind != PlanStep::Kind::Delete) {
      SVCCTL_TRY(auto st, m_zk.exists(s.path));
      if (st) return st->mzxid;
    }
  std::string parent = plan.steps.empty() ? plan.delete_containers.front() : plan.steps.front().path;
  while (parent.size() > 1) {
    parent = parent.substr(0, std::max<std::size_t>(1, parent.rfind('/')));
    SVCCTL_TRY(auto st, m_zk.exists(parent));
    if (st) return st->pzxid;
  }
  return std::int64_t{0};
}

}  // namespace svcctl::registry
