#include "context.hpp"

#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <mutex>
#include <thread>

#include <pwd.h>
#include <unistd.h>

namespace svcctl::cmd {

namespace {

std::string shell_quote(std::string_view word) {
  const bool plain = !word.empty() && word.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                               "0123456789@%+=:,./_-") == std::string_view::npos;
  if (plain) return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string hide_password(std::string_view credentials) {
  auto colon = credentials.find(':');
  return std::string(credentials.substr(0, colon)) + (colon == std::string_view::npos ? "" : ":***");
}

}  // namespace

std::string shown_command(int argc, const char* const* argv) {
  std::string out = "svcctl";
  for (int i = 1; i < argc; ++i) {
    std::string_view word = argv[i];
    std::string shown(word);
    if (word.starts_with("--auth=")) shown = "--auth=" + hide_password(word.substr(7));
    else if (i > 1 && std::string_view(argv[i - 1]) == "--auth") shown = hide_password(word);
    out += ' ';
    out += shell_quote(shown);
  }
  return out;
}

std::string Context::author() const {
  if (!auth.empty()) return auth.substr(0, auth.find(':'));
  std::string user;
  if (const char* u = std::getenv("USER"); u && *u) user = u;
  else if (const struct passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_name) user = pw->pw_name;
  else user = fmt::format("uid{}", ::geteuid());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) return user;
  return fmt::format("{}@{}", user, host);
}

Expected<zk::Options> Context::zk_options() const {
  if (zk_timeout_ms < 1)
    return fail(ErrorKind::Usage, fmt::format("invalid --zk-timeout {}: use milliseconds ≥ 1", zk_timeout_ms));
  if (zk_session_timeout_ms < 1)
    return fail(ErrorKind::Usage, fmt::format("invalid --zk-session-timeout {}: use milliseconds ≥ 1",
                                              zk_session_timeout_ms));
  if (!auth.empty() && (auth.find(':') == std::string::npos || auth.front() == ':'))
    return fail(ErrorKind::Usage, "invalid --auth: use USER:PASSWORD");
  if (!admin_id.empty()) {
    // ZooKeeper's digest id: the user, then base64 of a 20-byte SHA-1 (28 characters).
    auto colon = admin_id.find(':');
    std::string_view hash = colon == std::string::npos ? std::string_view() : std::string_view(admin_id).substr(colon + 1);
    const bool b64 = hash.size() == 28 && hash.back() == '=' &&
                     hash.substr(0, 27).find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") ==
                         std::string_view::npos;
    if (colon == 0 || !b64)
      return fail(ErrorKind::Usage,
                  "invalid --admin-id: use USER:HASH, the digest id ZooKeeper keeps (HASH is "
                  "base64(sha1(USER:PASSWORD)), e.g. printf %s USER:PASSWORD | openssl dgst -binary -sha1 | base64)");
    if (auth.empty()) return fail(ErrorKind::Usage, "--admin-id needs --auth: without it, nodes are created open to all");
  }
  zk::Options options;
  options.connect = zk;
  options.admin_id = admin_id;
  options.timeout = std::chrono::milliseconds(zk_timeout_ms);
  options.session_timeout = std::chrono::milliseconds(zk_session_timeout_ms);
  options.digest = auth;
  return options;
}

Expected<registry::Registry*> Context::registry() {
  if (m_registry) return m_registry.get();
  SVCCTL_TRY(auto options, zk_options());
  SVCCTL_TRY(m_client, zk::Client::connect(options));
  if (verbose)
    to_stderr(fmt::format("connected to {} (session 0x{:x}, negotiated session timeout {} ms{})\n", zk,
                          m_client->session_id(), m_client->negotiated_session_timeout().count(),
                          m_client->authenticated() ? ", digest authenticated" : ""));
  m_registry = std::make_unique<registry::Registry>(*m_client);
  m_registry->record_as({author(), command_line});
  return m_registry.get();
}

void to_stderr(std::string_view text) { std::fwrite(text.data(), 1, text.size(), stderr); }

void Context::warn(std::string_view message) const {
  if (!quiet) to_stderr(fmt::format("svcctl: warning: {}\n", message));
}

void Context::note(std::string_view message) const {
  if (!quiet) to_stderr(fmt::format("svcctl: note: {}\n", message));
}

std::string Context::read_stdin(std::string_view what) const {
  const bool terminal = ::isatty(STDIN_FILENO) == 1;
  if (terminal) note(fmt::format("reading {} from standard input; end it with Ctrl-D", what));
  std::string text(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>{});
  // A terminal's end of input is not final: a question may follow. std::cin reads through
  // stdin, whose end-of-file is sticky.
  if (terminal) std::clearerr(stdin);
  return text;
}

void Context::warn_problems(const std::vector<std::string>& problems) const {
  for (const auto& p : problems) warn(p);
}

void Context::print_write(const registry::WriteResult& result) const {
  for (const auto& n : result.notes) note(n);
  if (format == output::Format::Json) {
    output::print_json(result.to_json());
    return;
  }
  if (quiet) return;
  using registry::Action;
  switch (result.action) {
    case Action::Created:
    case Action::Updated:
    case Action::Unchanged:
      fmt::print("{} {} (version {})\n", registry::to_string(result.action), result.path,
                 result.version);
      break;
    case Action::Deleted:
      fmt::print("deleted {}", result.path);
      if (result.removed.size() > 1) fmt::print(" ({} nodes removed)", result.removed.size());
      fmt::print("\n");
      break;
  }
}

void add_cache_options(CLI::App* app, CacheArgs& args) {
  app->add_option("--lkg-file", args.lkg_file,
                  "keep the last-known-good registry in this file, and start from it when ZooKeeper is "
                  "unreachable")
      ->type_name("FILE");
  app->add_option("--zk-sessions", args.zk_sessions,
                  "ZooKeeper sessions the registry is read through, 1 to 8 (each service's nodes "
                  "through one)")
      ->check(CLI::Range(1u, 8u).description(""))
      ->type_name("N")
      ->capture_default_str();
}

Expected<registry::Cache::Options> Context::cache_options(const CacheArgs& args) const {
  registry::Cache::Options options;
  SVCCTL_TRY(options.zk, zk_options());
  options.sessions = args.zk_sessions;
  // Refused now rather than found out at the next start with ZooKeeper down, or after the
  // ZooKeeper timeout of this one.
  if (!args.lkg_file.empty()) SVCCTL_CHECK(registry::check_lkg_file(args.lkg_file));
  options.lkg_file = args.lkg_file;
  return options;
}

Expected<void> Context::start_cache(registry::Cache& cache, const CacheArgs& args, std::string_view doing) const {
  SVCCTL_CHECK(cache.start(std::chrono::milliseconds(zk_timeout_ms)));
  if (cache.serving_lkg())
    warn(fmt::format("ZooKeeper at {} is unreachable: {} from {} until it is back", zk, doing, args.lkg_file));
  return {};
}

namespace {
std::atomic<bool> g_stop{false};  // lock-free, so a signal handler may set it
// The first signal asks for a graceful stop; the second ends the process at once (a
// command blocked writing to a reader that stopped reading never sees the first).
void on_stop_signal(int) {
  g_stop = true;
  std::signal(SIGINT, SIG_DFL);  // async-signal-safe
  std::signal(SIGTERM, SIG_DFL);
}
}  // namespace

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

const std::atomic<bool>& stop_on_signals() {
  static std::once_flag installed;  // a second call must not undo the first signal's reset
  std::call_once(installed, [] {
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
  });
  return g_stop;
}

namespace {
std::atomic<bool> g_reopen{false};
void on_reopen_signal(int) { g_reopen = true; }
}  // namespace

void catch_reopen_signal() { std::signal(SIGHUP, on_reopen_signal); }
bool take_reopen_signal() { return g_reopen.exchange(false); }

void wait_for_stop() {
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

}  // namespace svcctl::cmd
