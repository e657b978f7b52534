#include "http/static_files.hpp"

#include "auth/verdict.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace certgate::http {
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kInlineBytes = 256 * 1024;  // larger files are streamed in slices

// An empty-bodied error; http::finish_static() makes the page.
Response plain(auth::Verdict answer) {
  const auto& row = auth::info(answer);
  Response r;
  r.status = row.status;
  r.substatus = row.substatus;
  r.win32 = row.win32;
  return r;
}

bool under_root(const fs::path& canonical_root, const fs::path& canonical_file) {
  auto r = canonical_root.native();
  auto f = canonical_file.native();
  return f == r || (f.size() > r.size() && f.compare(0, r.size(), r) == 0 &&
                    (r.back() == '/' || f[r.size()] == '/'));
}

std::string etag_for(const struct stat& st) {
  return fmt::format("\"{:x}{:09x}:{:x}\"", st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size);
}

}  // namespace

bool etag_matches(std::string_view list, std::string_view etag) {
  if (list.find('*') != std::string_view::npos) return true;
  std::size_t pos = 0;
  while (pos < list.size()) {
    auto comma = list.find(',', pos);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view item = list.substr(pos, comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.substr(0, 2) == "W/") item.remove_prefix(2);
    if (item == etag) return true;
    pos = comma + 1;
  }
  return false;
}

namespace {

std::int64_t parse_http_date(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return -1;
  return static_cast<std::int64_t>(timegm(&tm));
}

}  // namespace

std::string_view content_type_for(const fs::path& file) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
      {".css", "text/css"}, {".js", "text/javascript"}, {".mjs", "text/javascript"},
      {".json", "application/json"}, {".txt", "text/plain; charset=utf-8"},
      {".xml", "application/xml"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
      {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".gif", "image/gif"},
      {".ico", "image/x-icon"}, {".webp", "image/webp"}, {".pdf", "application/pdf"},
      {".zip", "application/zip"}, {".gz", "application/gzip"}, {".wasm", "application/wasm"},
      {".woff", "font/woff"}, {".woff2", "font/woff2"}, {".mp4", "video/mp4"},
      {".csv", "text/csv"}, {".md", "text/markdown; charset=utf-8"},
      {".crt", "application/pkix-cert"}, {".cer", "application/pkix-cert"},
      {".crl", "application/pkix-crl"}, {".pem", "application/x-pem-file"}};
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  for (const auto& [e, t] : kTypes)
    if (e == ext) return t;
  return "application/octet-stream";
}

std::optional<ByteRange> parse_range(std::string_view h, std::uint64_t size, bool& unsat) {
  unsat = false;
  if (h.substr(0, 6) != "bytes=") return std::nullopt;
  h.remove_prefix(6);
  if (h.find(',') != std::string_view::npos) return std::nullopt;  // multi-range: send all
  auto dash = h.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto num = [](std::string_view s, std::uint64_t& v) {
    if (s.empty() || s.size() > 19) return false;
    v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
  };
  std::string_view a = h.substr(0, dash), b = h.substr(dash + 1);
  std::uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix range: the last N bytes
    if (!num(b, last)) return std::nullopt;
    if (last == 0) { unsat = true; return std::nullopt; }
    std::uint64_t n = std::min(last, size);
    return ByteRange{size - n, n};
  }
  if (!num(a, first)) return std::nullopt;
  if (b.empty()) last = size ? size - 1 : 0;
  else if (!num(b, last) || last < first) return std::nullopt;
  if (first >= size) { unsat = true; return std::nullopt; }
  last = std::min(last, size - 1);
  return ByteRange{first, last - first + 1};
}

Response serve_static(const StaticRequest& req) {
  std::error_code ec;
  const fs::path root = fs::canonical(*req.root, ec);
  if (ec) return plain(auth::Verdict::Http404_NotFound);
  fs::path target = root;
  if (req.path != "/") target /= fs::path(req.path.substr(1));
  fs::path file = fs::canonical(target, ec);
  if (ec || !under_root(root, file)) return plain(auth::Verdict::Http404_NotFound);

  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return plain(auth::Verdict::Http404_NotFound);
  if (S_ISDIR(st.st_mode)) {
    if (!req.trailing_slash && req.path != "/") {
      Response r;
      r.status = 301;
      r.set("Location", req.path + "/" + (req.query.empty() ? "" : "?" + req.query));
      return r;
    }
    bool found = false;
    for (const auto& doc : *req.default_documents) {
      fs::path candidate = fs::canonical(file / doc, ec);
      struct stat dst {};
      if (!ec && under_root(root, candidate) && ::stat(candidate.c_str(), &dst) == 0 &&
          S_ISREG(dst.st_mode)) {
        file = candidate;
        st = dst;
        found = true;
        break;
      }
    }
    if (!found) return plain(auth::Verdict::Http403_14_ListingDenied);
  } else if (req.trailing_slash) {
    return plain(auth::Verdict::Http404_NotFound);
  }
  if (!S_ISREG(st.st_mode)) return plain(auth::Verdict::Http404_NotFound);

  const std::string etag = etag_for(st);
  Response r;
  r.set("Content-Type", std::string(content_type_for(file)));
  r.set("ETag", etag);
  r.set("Last-Modified", http_date(st.st_mtim.tv_sec));
  r.set("Accept-Ranges", "bytes");
  if (!req.if_none_match.empty()) {
    if (etag_matches(req.if_none_match, etag)) {
      r.status = 304;
      return r;
    }
  } else if (!req.if_modified_since.empty()) {
    std::int64_t since = parse_http_date(req.if_modified_since);
    if (since >= 0 && st.st_mtim.tv_sec <= since) {
      r.status = 304;
      return r;
    }
  }

  const auto size = static_cast<std::uint64_t>(st.st_size);
  ByteRange slice{0, size};
  bool range_applies = !req.range.empty() &&
                       (req.if_range.empty() || req.if_range == etag);
  if (range_applies) {
    bool unsat = false;
    if (auto br = parse_range(req.range, size, unsat)) {
      slice = *br;
      r.status = 206;
      r.set("Content-Range", fmt::format("bytes {}-{}/{}", br->offset,
                                         br->offset + br->length - 1, size));
    } else if (unsat) {
      Response bad = plain(auth::Verdict::Http416_RangeNotSatisfiable);
      bad.set("Content-Range", fmt::format("bytes */{}", size));
      return bad;
    }
  }
  r.head_only = req.head;

  auto open = std::make_shared<OpenFile>();
  open->fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (open->fd < 0) return plain(auth::Verdict::Http404_NotFound);
  if (slice.length <= kInlineBytes) {
    r.body.resize(slice.length);
    std::uint64_t done = 0;
    while (done < slice.length) {
      ssize_t n = ::pread(open->fd, r.body.data() + done, slice.length - done,
                          static_cast<off_t>(slice.offset + done));
      if (n <= 0) return plain(auth::Verdict::Http500_FileUnreadable);
      done += static_cast<std::uint64_t>(n);
    }
  } else {
    r.file = FileSlice{open, slice.offset, slice.length};
  }
  return r;
}

}  // namespace certgate::http
