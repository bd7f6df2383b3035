// The history of the writes svcctl makes (README, "History").
//
// A Registry given an Author (Registry::record_as) adds to each write one persistent
// sequential node, /history/r-NNNNNNNNNN, in the same ZooKeeper multi-operation as the
// write: the record exists exactly when the write happened, whole or not at all. Its
// data is JSON:
//
//   {"who": "alice", "command": "svcctl register address hello 127.0.0.1:9101 --weight 3",
//    "changes": [{"path": "/address/hello/127.0.0.1:9101",
//                 "before": {...} or null, "after": {...} or null, "version": 4}]}
//
// A node's data is kept as the JSON object it holds (or its raw text when it is not
// JSON); null stands for "did not exist" (before) or "removed" (after); "version" is the
// node's version the write left (-1 when removed), what a revert is pinned to. When is
// the node's ctime: ZooKeeper's clock, the same for every writer. A record whose data
// would pass k_max_record_bytes keeps paths and versions only ("cut": true) and cannot
// be reverted. The oldest records beyond /history's "keep" (k_default_keep when its
// data does not say) are removed by the writer that finds the folder 10 % over it.
//
// What is not recorded: containers (/address/{svc}...), the nodes a holder keeps
// (`register --hold`'s address, a gateway's /gateway/{id}: they come and go with their
// process), and writes made by other clients than svcctl.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/registry/declare.hpp>
#include <svcctl/zk/session.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::registry {

inline constexpr std::string_view k_history = "/history";
inline constexpr std::string_view k_record_prefix = "r-";
inline constexpr std::size_t k_default_keep = 1000;
inline constexpr std::size_t k_max_record_bytes = 256 * 1024;

// Who writes, and by which command line (passwords already hidden).
struct Author {
  std::string who;
  std::string command;
};

// One node a write changed.
struct Edit {
  std::string path;
  nlohmann::json before;  // null: the node did not exist
  nlohmann::json after;   // null: the write removed it
  int version = -1;       // the node's version after the write; -1 when removed
  bool held = false;      // the node removed was ephemeral (a provider's held address)
};

struct Record {
  std::int64_t id = 0;       // the sequence number in its node's name
  std::int64_t time_ms = 0;  // when ZooKeeper took the write (the node's ctime)
  std::string who;
  std::string command;
  std::vector<Edit> changes;
  bool cut = false;  // too large to keep the data: paths and versions only

  // The services its changes touch (from their paths), sorted.
  std::vector<std::string> services() const;
  nlohmann::json to_json() const;
  // One line per change, as a plan shows them ("~ path field: before → after").
  std::vector<std::string> lines() const;
};

// A node's data as a record keeps it: the JSON it holds, or its text when it is not JSON.
nlohmann::json node_value(std::string_view data);

// The data of the record node for these changes (cut when too large).
std::string encode_record(const Author& author, const std::vector<Edit>& changes);
// A record from its node's name ("r-0000000042") and node; Error when it is not one.
Expected<Record> decode_record(std::string_view name, const zk::Node& node);
// 42 for "r-0000000042"; nullopt for a name that is not a record's.
std::optional<std::int64_t> record_id(std::string_view name);
std::string record_path(std::int64_t id);

// The plan that undoes `record` over `current` (pure): each node it changed brought back
// to its data before, pinned to the version the record left. Conflict when a node has
// changed since (each named; nothing is planned), Usage for a cut record. A held address
// it removed is not recreated (a note says so: its provider registers it again). The
// plan's safety verdict is apply's.
Expected<Plan> revert_plan(const Record& record, const Tree& current);

}  // namespace svcctl::registry
