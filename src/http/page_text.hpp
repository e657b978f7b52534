#pragma once
// Text from the request or a certificate (Host, URL, subject, a CRL server's error) as the error
// pages and the status page show it. Two things beyond HTML/JSON escaping: bytes that are not
// UTF-8 (a raw Host byte) become U+FFFD, so a JSON answer stays JSON that strict parsers accept;
// and the Unicode bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C)
// are shown as "\u202E" text, so a subject cannot reorder what the page shows around it.
#include <string>
#include <string_view>

namespace certgate::http {

// Appends `s` HTML-escaped (& < > " ').
void append_html(std::string& out, std::string_view s);
std::string html_text(std::string_view s);

// `s` as a JSON string literal, quotes included.
std::string json_text(std::string_view s);

// `s` for a text/plain page: the same UTF-8 repair and visible bidirectional controls.
std::string plain_text(std::string_view s);

}  // namespace certgate::http
