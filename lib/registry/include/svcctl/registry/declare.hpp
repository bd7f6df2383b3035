// The registry as a declarative document, for `svcctl export` and `svcctl apply`.
//
//   {"format": "svcctl-registry-1",
//    "services": {SVC: {...the /service node's fields...,
//                       "addresses":  {HOST:PORT: {fields}},
//                       "interfaces": {IFACE: {fields}},
//                       "acls":       {KEY: {fields}}}},
//    "keys": {KEY: {fields}}}
//
// Applying a document brings every service and key it names to what it says:
// - the fields given are set on the node's object (others are kept; null removes one); a
//   new node starts from the same defaults as `svcctl register`;
// - a section a service has ("addresses", "interfaces", "acls") is the whole truth for
//   that service: nodes it does not list are removed; a section it lacks is left alone;
// - with `prune`, services and keys the document does not name are removed too;
// - ephemeral addresses (held by live providers) are never changed, removed or exported.
//
// make_plan() is pure: it compares a Tree (what ZooKeeper holds) with a document and says
// what to create, change and delete, and what would be unsafe; Registry::apply() runs the
// plan as one ZooKeeper multi-operation whose every write is pinned to the version read.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/zk/session.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace svcctl::registry {

inline constexpr std::string_view k_document_format = "svcctl-registry-1";

// What the registry holds: every leaf node under /service, /address, /api, /key and /acl
// (data that is not a JSON object is kept as a string), and which containers exist.
struct Tree {
  struct Node {
    nlohmann::json data;  // an object, or the raw text when it is not one
    int version = 0;
    bool ephemeral = false;
  };
  std::map<std::string, Node> nodes;
  std::set<std::string> containers;  // "/address/x", "/api/x", "/acl/x", and the roots that exist
};

// The document for `services` (all of them, and every key, when empty; otherwise those
// services and the keys their ACLs name).
nlohmann::json export_document(const Tree& tree, const std::vector<std::string>& services = {});

struct PlanStep {
  enum class Kind { Create, Update, Delete };
  Kind kind = Kind::Create;
  std::string path;
  nlohmann::json before;  // null when created
  nlohmann::json after;   // null when deleted
  int version = -1;       // the version read (update, delete)
};
std::string_view to_string(PlanStep::Kind kind);

struct Plan {
  std::vector<PlanStep> steps;               // nodes, sorted by path
  std::vector<std::string> create_containers;
  std::vector<std::string> delete_containers;
  // Nodes the safety verdict relies on, pinned to the version read: up addresses left
  // in a service that loses or downs others.
  std::vector<std::pair<std::string, int>> checks;
  std::vector<std::string> unsafe;  // why the plan would be refused without force
  std::vector<std::string> notes;   // what was left alone, and why

  bool empty() const { return steps.empty() && create_containers.empty() && delete_containers.empty(); }
  std::size_t count(PlanStep::Kind kind) const;
  // The multi-operation: containers created, nodes created and updated, nodes deleted,
  // containers deleted, then the checks.
  std::vector<zk::Op> ops() const;
  nlohmann::json to_json() const;
  // One line per step for people: "+ path {data}", "~ path field: before → after", "- path".
  std::vector<std::string> lines() const;
};

// A step for people: "+ path {data}", "~ path field: before → after", "- path".
std::string describe(const PlanStep& step);

// The safety verdict of a plan over `tree`, added to plan.unsafe and plan.checks: a
// service that loses more than half of its addresses, or keeps none routable, is unsafe;
// the routable addresses the verdict counts on are pinned at the versions read.
void judge_safety(const Tree& tree, Plan& plan);

struct PlanOptions {
  bool prune = false;
};

// Usage when the document is malformed (unknown sections, bad names, field values that
// `register` would refuse, an ACL for a key that exists nowhere); every problem is named.
Expected<Plan> make_plan(const Tree& current, const nlohmann::json& document, const PlanOptions& options);

}  // namespace svcctl::registry
