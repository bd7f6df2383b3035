#include <svcctl/output/output.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <unistd.h>

namespace svcctl::output {

std::optional<Format> parse_format(std::string_view text, bool is_tty) {
  if (text.empty() || text == "auto") return is_tty ? Format::Table : Format::Json;
  if (text == "table") return Format::Table;
  if (text == "json") return Format::Json;
  return std::nullopt;
}

bool stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

Color use_color(std::FILE* stream) {
  const char* no_color = std::getenv("NO_COLOR");
  if (no_color && *no_color) return Color::Off;
  const char* term = std::getenv("TERM");
  if (term && std::strcmp(term, "dumb") == 0) return Color::Off;
  return ::isatty(::fileno(stream)) == 1 ? Color::On : Color::Off;
}

namespace {

std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // code points, not bytes
  return n;
}

std::string_view color_of(Tone tone) {
  switch (tone) {
    case Tone::Good: return "\x1b[32m";
    case Tone::Bad: return "\x1b[31m";
    case Tone::Dim: return "\x1b[2m";
    case Tone::Plain: return "";
  }
  return "";
}

}  // namespace

std::string Table::render(Color colors) const {
  const bool color = colors == Color::On;
  std::vector<std::size_t> width(m_headers.size(), 0);
  for (std::size_t c = 0; c < m_headers.size(); ++c) width[c] = display_width(m_headers[c]);
  for (const auto& row : m_rows)
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c)
      width[c] = std::max(width[c], display_width(row[c].text));

  std::string out;
  auto line = [&](auto&& text_of, auto&& tone_of, std::size_t columns) {
    for (std::size_t c = 0; c < columns; ++c) {
      std::string_view text = text_of(c);
      std::string_view code = color ? color_of(tone_of(c)) : "";
      out += code;
      out += text;
      if (!code.empty()) out += "\x1b[0m";
      if (c + 1 < columns) out.append(width[c] - display_width(text) + 2, ' ');
    }
    out += '\n';
  };
  line([&](std::size_t c) -> std::string_view { return m_headers[c]; },
       [&](std::size_t) { return color ? Tone::Dim : Tone::Plain; }, m_headers.size());
  for (const auto& row : m_rows)
    line([&](std::size_t c) { return c < row.size() ? std::string_view(row[c].text) : std::string_view(); },
         [&](std::size_t c) { return c < row.size() ? row[c].tone : Tone::Plain; },
         m_headers.size());
  return out;
}

Tone status_tone(std::string_view status) {
  if (status == "up") return Tone::Good;
  if (status == "down") return Tone::Bad;
  return Tone::Plain;
}

void print_json(const nlohmann::json& value) {
  std::cout << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

}  // namespace svcctl::output
