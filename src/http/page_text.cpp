#include "http/page_text.hpp"

#include "log/utf8.hpp"

#include <fmt/format.h>

#include <cstdint>

namespace certgate::http {
namespace {

bool bidi_control(std::uint32_t cp) {
  return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f ||
         cp == 0x061c;
}

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

// Calls plain(bytes) for each well-formed character that is neither a bidirectional control nor
// ASCII, ascii(c) for each ASCII byte, and shown(text) for what replaces the others.
template <class Ascii, class Plain, class Shown>
void each_char(std::string_view s, Ascii&& ascii, Plain&& plain, Shown&& shown) {
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = log::utf8_at(s, i, cp);
    if (n == 0) {
      shown(kReplacement);
      ++i;
    } else if (n == 1) {
      ascii(s[i++]);
    } else {
      if (bidi_control(cp)) shown(fmt::format("\\u{:04X}", cp));
      else plain(s.substr(i, n));
      i += n;
    }
  }
}

}  // namespace

void append_html(std::string& out, std::string_view s) {
  const auto add = [&out](std::string_view t) { out += t; };
  each_char(
      s,
      [&out](char c) {
        switch (c) {
          case '&': out += "&amp;"; break;
          case '<': out += "&lt;"; break;
          case '>': out += "&gt;"; break;
          case '"': out += "&quot;"; break;
          case '\'': out += "&#39;"; break;
          default: out += c;
        }
      },
      add, add);
}

std::string html_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_html(out, s);
  return out;
}

std::string json_text(std::string_view s) {
  std::string out = "\"";
  out.reserve(s.size() + 2);
  each_char(
      s,
      [&out](char c) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
          out += '\\';
          out += c;
        } else if (u < 0x20 || u == 0x7f) {
          out += fmt::format("\\u{:04x}", u);
        } else {
          out += c;
        }
      },
      // U+FFFD as is; a bidirectional control's "\u202E" is the JSON escape of the same character:
      // the data stays whole for the program that reads it, the raw text shows the escape.
      [&out](std::string_view t) { out += t; }, [&out](std::string_view t) { out += t; });
  return out + "\"";
}

std::string plain_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto add = [&out](std::string_view t) { out += t; };
  each_char(s, [&out](char c) { out += c; }, add, add);
  return out;
}

}  // namespace certgate::http
