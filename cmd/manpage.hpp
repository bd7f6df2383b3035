// Man pages (mdoc) from the command tree plus hand-written prose (man/<page>.mdoc).
//
// The prose is mdoc, starting with its .Dd line; lines that are only a marker are replaced:
//   @head      .Dt, .Os, NAME (from the command's description) and SYNOPSIS (every form)
//   @options   the OPTIONS section: every option with its value, help text and default
//   @commands  the subcommands, each with its description and page (for svcctl(1))
// @head and @options must each appear once, so a page cannot leave out an option.
#pragma once

#include "cli_tree.hpp"

#include <svcctl/core/expected.hpp>

#include <string>
#include <string_view>

namespace svcctl::cmd::cli {

// The page's name for a command: "svcctl", "svcctl-register".
std::string page_name(const Command& command);

// The page `page` ("svcctl" or "svcctl-<subcommand>"). Usage error when no such command
// exists or a marker is missing or repeated.
Expected<std::string> render_page(const Command& root, std::string_view page, std::string_view prose);

}  // namespace svcctl::cmd::cli
