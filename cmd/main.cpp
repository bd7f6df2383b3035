// svcctl: service governance on ZooKeeper. Parses the command line, runs the chosen
// subcommand's action, and maps its error to the documented exit code.
#include "cli_tree.hpp"
#include "commands.hpp"

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#ifndef SVCCTL_VERSION
#define SVCCTL_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  using namespace svcctl;
  // SIGPIPE keeps its default: a command whose reader goes away (`svcctl watch | head`)
  // ends as any filter does. The long-running ones (proxy, register --hold) ignore it.

  cmd::Context ctx;
  ctx.command_line = cmd::shown_command(argc, argv);
  if (const char* env = std::getenv("SVCCTL_ZK"); env && *env) ctx.zk = env;
  if (const char* env = std::getenv("SVCCTL_AUTH"); env && *env) ctx.auth = env;
  if (const char* env = std::getenv("SVCCTL_ADMIN_ID"); env && *env) ctx.admin_id = env;

  CLI::App app{"svcctl: service registry, gateway and tools on ZooKeeper", "svcctl"};
  app.set_version_flag("--version", std::string("svcctl ") + SVCCTL_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options are accepted after the subcommand too
  app.add_option("--zk", ctx.zk,
                 "ZooKeeper connect string host:port[,host:port...][/chroot] (env SVCCTL_ZK)")
      ->capture_default_str();
  app.add_option("--zk-timeout", ctx.zk_timeout_ms,
                 "connect and per-request timeout in milliseconds")
      ->capture_default_str();
  app.add_option("--zk-session-timeout", ctx.zk_session_timeout_ms,
                 "ZooKeeper session timeout to ask for, in milliseconds (the server bounds it)")
      ->capture_default_str();
  app.add_option("--auth", ctx.auth,
                 "ZooKeeper digest credentials USER:PASSWORD (env SVCCTL_AUTH); nodes created "
                 "carry an ACL: everyone reads, only this identity writes");
  app.add_option("--admin-id", ctx.admin_id,
                 "with --auth, a ZooKeeper digest id USER:HASH that may also change and remove the "
                 "nodes created (env SVCCTL_ADMIN_ID)");
  app.add_option("-o,--output", ctx.output, "output format: table, json, or auto (table on a "
                                            "terminal, json otherwise)")
      ->capture_default_str();
  app.add_flag("-q,--quiet", ctx.quiet, "print no warnings or confirmations");
  app.add_flag("-v,--verbose", ctx.verbose, "say on stderr which ZooKeeper session is used");
  cmd::cli::choices(app.get_option("--output"), {"table", "json", "auto"});

  for (const auto& command : cmd::k_commands) command.setup(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and --version are "errors" with exit code 0; everything else is a usage error.
    int code = app.exit(e);
    return code == 0 ? 0 : exit_code(ErrorKind::Usage);
  }

  auto format = output::parse_format(ctx.output, output::stdout_is_tty());
  if (!format) {
    fmt::print(stderr, "svcctl: error: invalid --output \"{}\": use table, json or auto\n",
               ctx.output);
    return exit_code(ErrorKind::Usage);
  }
  ctx.format = *format;
  if (!ctx.action) return exit_code(ErrorKind::Usage);  // unreachable: a subcommand is required

  auto result = ctx.action();
  if (!result) {
    cmd::to_stderr(fmt::format("svcctl: error: {}\n", result.error().message));
    return exit_code(result.error().kind);
  }
  return 0;
}
