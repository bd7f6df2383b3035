// What every subcommand shares: the global options, the ZooKeeper connection (opened on
// first use), and the printers for results and warnings.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/output/output.hpp>
#include <svcctl/registry/cache.hpp>
#include <svcctl/registry/registry.hpp>
#include <svcctl/zk/client.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace CLI {
class App;
}

namespace svcctl::cmd {

// The options of the commands that mirror the registry (proxy, watch).
struct CacheArgs {
  std::string lkg_file;
  unsigned zk_sessions = 2;
};
void add_cache_options(CLI::App* app, CacheArgs& args);

// The command line as a record of the history shows it: "svcctl" and the arguments, each
// quoted for a POSIX shell where it needs it, --auth's password replaced by "***".
std::string shown_command(int argc, const char* const* argv);

struct Context {
  // Global options (DESIGN §5).
  std::string zk = "127.0.0.1:2181";
  int zk_timeout_ms = 5000;
  int zk_session_timeout_ms = 10000;
  std::string auth;  // user:password
  std::string admin_id;  // user:base64(sha1(user:password)), given all permissions too
  std::string output = "auto";
  bool quiet = false;
  bool verbose = false;

  output::Format format = output::Format::Table;  // resolved after parsing
  // The command line as the history keeps it (shown_command), set by main().
  std::string command_line;
  // Set by the chosen subcommand's parse callback; run by main() after parsing.
  std::function<Expected<void>()> action;

  // The registry over a connection made on first use (Unavailable, Usage on bad options).
  Expected<registry::Registry*> registry();
  // Who the history says wrote: the --auth user, else $USER@host.
  std::string author() const;
  // The ZooKeeper options the global flags describe (Usage when they are wrong).
  Expected<zk::Options> zk_options() const;

  // A warning on stderr, unless -q.
  void warn(std::string_view message) const;
  // A side effect worth telling ("created service ..."), on stderr, unless -q.
  void note(std::string_view message) const;
  // Standard input, read to its end. On a terminal, a note first says what is awaited
  // ("reading <what> from standard input; end it with Ctrl-D").
  std::string read_stdin(std::string_view what) const;
  // note() and warn() as functions, for the libraries that tell as they go.
  std::function<void(std::string_view)> noter() const {
    return [this](std::string_view m) { note(m); };
  }
  std::function<void(std::string_view)> warner() const {
    return [this](std::string_view m) { warn(m); };
  }
  // Prints each problem found in node data as a warning.
  void warn_problems(const std::vector<std::string>& problems) const;
  // Prints a write's result: JSON, or one line for people (nothing with -q).
  void print_write(const registry::WriteResult& result) const;

  // A cache's options from the global ones and the mirroring command's (sessions,
  // last-known-good file); the caller adds on_change. Fails with Error (exit 1) when the
  // last-known-good file could not be written or is there but not one svcctl wrote.
  Expected<registry::Cache::Options> cache_options(const CacheArgs& args) const;
  // Starts a cache (within --zk-timeout); when it came up from the last-known-good file,
  // says so: "ZooKeeper at ... is unreachable: <doing> from <lkg_file> until it is back".
  Expected<void> start_cache(registry::Cache& cache, const CacheArgs& args, std::string_view doing) const;

 private:
  std::unique_ptr<zk::Client> m_client;
  std::unique_ptr<registry::Registry> m_registry;
};

// For commands that run until interrupted (watch, proxy, register --hold, stats --watch):
// from this call on, the first SIGINT or SIGTERM sets the returned flag instead of ending
// the process; a second one ends it.
const std::atomic<bool>& stop_on_signals();
// Writes to stderr and never throws (fmt::print throws when the write fails): for the
// lines of the processes that outlive their readers.
void to_stderr(std::string_view text);
// For the processes that must outlive their readers (proxy, register --hold): a write to a
// closed pipe or socket fails with EPIPE instead of ending the process.
void ignore_sigpipe();
// SIGHUP sets a flag that take_reopen_signal() reads and clears (log files to reopen).
void catch_reopen_signal();
bool take_reopen_signal();
// Sleeps until SIGINT or SIGTERM (stop_on_signals() must have been called).
void wait_for_stop();

}  // namespace svcctl::cmd
