// ZooKeeper's four-letter words ("cons", "dump", "srvr"): what a server says of its sessions
// and connections, which the client protocol does not tell. Servers answer only the words
// in their 4lw.commands.whitelist; the others get a one-line refusal.
#pragma once

#include <svcctl/core/expected.hpp>

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::zk {

// The servers of a connect string: "a:2181,b:2181/chroot" → {"a:2181", "b:2181"}.
std::vector<std::string> servers_of(std::string_view connect);

// Sends `word` to `server` (host:port) and returns all it answers until it closes.
// Unavailable when it cannot be reached or does not finish within `timeout`.
Expected<std::string> four_letter(const std::string& server, std::string_view word,
                                  std::chrono::milliseconds timeout);

// Whether the answer is the refusal of a word missing from the whitelist.
bool not_whitelisted(std::string_view answer);

// "srvr": the server's mode ("standalone", "leader", "follower", "observer"); empty if absent.
std::string parse_mode(std::string_view srvr);

// "cons": the ids of the sessions connected to that server.
std::set<std::int64_t> parse_cons(std::string_view cons);

// "dump" (meaningful on the leader or a standalone server): the sessions its session
// tracker holds.
struct Dump {
  bool has_sessions = false;  // the "SessionTracker dump" section was there
  std::set<std::int64_t> sessions;
};
Dump parse_dump(std::string_view dump);

}  // namespace svcctl::zk
