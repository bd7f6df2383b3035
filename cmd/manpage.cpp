#include "manpage.hpp"

#include <fmt/format.h>

#include <cctype>

namespace svcctl::cmd::cli {

namespace {

// A word on a macro line: escaped so that mdoc takes it as text, not as a macro name
// ("Dc", "No") or a delimiter ("|").
std::string arg(std::string_view word) {
  std::string out;
  const bool macro_like = word.size() >= 2 && word.size() <= 3 && std::isupper(static_cast<unsigned char>(word[0])) &&
                          std::islower(static_cast<unsigned char>(word[1]));
  const bool delimiter = word.size() == 1 && std::string_view(".,:;()[]?!|").find(word[0]) != std::string_view::npos;
  if (macro_like || delimiter) out = "\\&";
  for (char c : word) out += c == '\\' ? std::string("\\e") : std::string(1, c);
  return word.empty() ? std::string("\"\"") : out;
}

// mandoc's lint wants text lines of at most 80 bytes.
constexpr std::size_t k_max_line = 80;

// One sentence as text lines, broken at spaces.
std::string wrap(std::string_view sentence) {
  std::string out, line;
  std::size_t start = 0;
  while (start <= sentence.size()) {
    auto space = sentence.find(' ', start);
    if (space == std::string_view::npos) space = sentence.size();
    auto word = sentence.substr(start, space - start);
    if (!line.empty() && line.size() + 1 + word.size() > k_max_line) {
      out += line + "\n";
      line.clear();
    }
    if (!line.empty()) line += ' ';
    if (line.empty() && !word.empty() && (word.front() == '.' || word.front() == '\'')) line += "\\&";
    line += word;
    start = space + 1;
  }
  return out + line + "\n";
}

// Help text as text lines: one sentence per line (as mdoc wants), no backslash taken for
// an escape, nothing a line may not start with.
std::string text(std::string_view s) {
  std::string escaped;
  for (char c : s) escaped += c == '\\' ? std::string("\\e") : std::string(1, c);
  std::string out;
  std::size_t start = 0;
  for (std::size_t i = 0; i + 2 < escaped.size(); ++i) {
    if (escaped[i] == '.' && escaped[i + 1] == ' ' && std::isupper(static_cast<unsigned char>(escaped[i + 2]))) {
      out += wrap(std::string_view(escaped).substr(start, i + 1 - start));
      start = i + 2;
    }
  }
  return out + wrap(std::string_view(escaped).substr(start));
}

// A help text as a sentence of the page: "print no warnings" → "Print no warnings."
std::string sentence(std::string s) {
  if (s.empty()) return s;
  s.front() = static_cast<char>(std::toupper(static_cast<unsigned char>(s.front())));
  if (std::string_view(".!?").find(s.back()) == std::string_view::npos) s += '.';
  return text(s);
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool is_help(const Option& o) {
  for (const auto& n : o.names)
    if (n == "--help") return true;
  return false;
}

// "Fl o , Fl -output" ("-o, --output"); a flag with a negated name: "Fl -shadow | Fl -no-shadow".
std::string names_macro(const Option& o, std::string_view separator) {
  std::string out;
  for (const auto& n : o.names) {
    if (!out.empty()) out += fmt::format(" {} ", separator);
    out += "Fl " + arg(std::string_view(n).substr(1));
  }
  return out;
}

std::string value_macro(const Option& o) { return o.value.empty() ? "" : " Ar " + arg(o.value); }

std::string synopsis_option(const Option& o) {
  std::string body;
  if (o.value.empty())
    body = names_macro(o, "|");
  else
    body = "Fl " + arg(std::string_view(o.names.front()).substr(1)) + value_macro(o);
  return (o.required ? "." : ".Op ") + body + "\n";
}

std::string synopsis_positional(const Positional& p) {
  std::string body = "Ar " + arg(p.name) + (p.repeats ? " No ..." : "");
  return (p.required ? "." : ".Op ") + body + "\n";
}

// The commands a page shows a form of: the command itself, or each command below it that
// takes no further subcommand.
void leaves(const Command& c, std::vector<const Command*>& out) {
  if (c.subcommands.empty()) {
    out.push_back(&c);
    return;
  }
  for (const auto& sub : c.subcommands) leaves(sub, out);
}

std::string synopsis_form(const Command& c) {
  std::string out = ".Nm svcctl\n";
  if (!c.path.empty()) {
    std::string words;
    for (const auto& p : c.path) words += (words.empty() ? "" : " ") + arg(p);
    out += ".Cm " + words + "\n";
  }
  for (const auto& p : c.positionals) out += synopsis_positional(p);
  for (const auto& o : c.options)
    if (!is_help(o)) out += synopsis_option(o);
  return out;
}

std::string root_synopsis(const Command& root) {
  std::string out = ".Nm svcctl\n";
  for (const auto& o : root.options)
    if (!is_help(o)) out += synopsis_option(o);
  out += ".Ar command\n.Op Ar argument No ...\n";
  return out;
}

std::string head(const Command& c) {
  const auto name = page_name(c);
  // svcctl's own description starts with its name ("svcctl: service registry, ..."), which
  // NAME already says.
  std::string_view description = c.description;
  if (description.substr(0, name.size() + 2) == name + ": ") description.remove_prefix(name.size() + 2);
  std::string out = fmt::format(".Dt {} 1\n.Os\n.Sh NAME\n.Nm {}\n.Nd {}", upper(name), name, text(description));
  out += ".Sh SYNOPSIS\n";
  if (c.path.empty()) return out + root_synopsis(c);
  std::vector<const Command*> forms;
  leaves(c, forms);
  for (const auto* f : forms) out += synopsis_form(*f);
  return out;
}

std::string option_items(const Command& c) {
  std::string out;
  for (const auto& p : c.positionals) out += ".It Ar " + arg(p.name) + "\n" + sentence(p.description);
  for (const auto& o : c.options) {
    out += ".It " + names_macro(o, ",") + value_macro(o) + "\n" + sentence(o.description);
    if (!o.default_value.empty()) out += text("Default: " + o.default_value + ".");
    if (o.required) out += "Required.\n";
  }
  return out;
}

std::string option_list(const Command& c) {
  return ".Bl -tag -width Ds\n" + option_items(c) + ".El\n";
}

// Each form's options under its own heading; the command's own (--help) first.
std::string options_section(const Command& c) {
  std::string out = ".Sh OPTIONS\n";
  if (c.path.empty()) return out + "Global options, accepted before or after the command:\n" + option_list(c);
  std::vector<const Command*> forms;
  leaves(c, forms);
  const std::string globals = ".Pp\nThe global options of\n.Xr svcctl 1\nare accepted too, before or after the command.\n";
  if (forms.size() == 1 && forms.front() == &c) return out + option_list(c) + globals;
  out += option_list(c) + globals;
  for (const auto* f : forms) out += ".Ss " + text(f->display_name()) + option_list(*f);
  return out;
}

std::string commands_list(const Command& c) {
  std::string out = ".Bl -tag -width Ds\n";
  for (const auto& sub : c.subcommands)
    out += ".It Cm " + arg(sub.path.back()) + "\n" + sentence(sub.description) + "See\n.Xr " + page_name(sub) + " 1 .\n";
  return out + ".El\n";
}

const Command* find_page(const Command& root, std::string_view page) {
  if (page == "svcctl") return &root;
  if (page.substr(0, 7) != "svcctl-") return nullptr;
  return root.find(page.substr(7));
}

}  // namespace

std::string page_name(const Command& command) {
  return command.path.empty() ? std::string("svcctl") : "svcctl-" + command.path.front();
}

Expected<std::string> render_page(const Command& root, std::string_view page, std::string_view prose) {
  const Command* c = find_page(root, page);
  if (!c) return fail(ErrorKind::Usage, fmt::format("no command for man page \"{}\"", page));
  std::string out = fmt::format(".\\\" Generated by svcctl __man from man/{}.mdoc: edit that file.\n", page);
  int heads = 0, options = 0;
  std::size_t start = 0;
  while (start < prose.size()) {
    auto end = prose.find('\n', start);
    if (end == std::string_view::npos) end = prose.size();
    auto line = prose.substr(start, end - start);
    start = end + 1;
    if (line == "@head") {
      ++heads;
      out += head(*c);
    } else if (line == "@options") {
      ++options;
      out += options_section(*c);
    } else if (line == "@commands") {
      out += commands_list(*c);
    } else {
      out += std::string(line) + "\n";
    }
  }
  if (heads != 1 || options != 1)
    return fail(ErrorKind::Usage, fmt::format("man/{}.mdoc: needs the lines @head and @options once each", page));
  return out;
}

}  // namespace svcctl::cmd::cli
