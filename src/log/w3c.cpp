#include "log/w3c.hpp"

#include "log/utf8.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace certgate::log {

enum class Format::Kind : std::uint8_t {
  Date, Time, SIp, Method, UriStem, UriQuery, SPort, Username, CIp, UserAgent, Referer, Status,
  Substatus, Win32, TimeTaken, SiteName, ComputerName, Version, Host, Cookie, ScBytes, CsBytes,
  RequestId, Reason, RequestHeader, ResponseHeader, Variable
};

void append_value(std::string& out, std::string_view v) {
  if (v.empty()) {
    out += '-';
    return;
  }
  const std::size_t at = out.size();
  out += v;  // then escaped in place: most values have nothing to escape
  for (std::size_t i = at; i < out.size();) {
    const auto u = static_cast<unsigned char>(out[i]);
    if (u < 0x80) {
      if (u <= 0x20 || u == 0x7f) out[i] = '+';
      ++i;
      continue;
    }
    // The log is UTF-8 (as IIS writes it): a byte that is not (a raw Host or URL byte) would make
    // the whole file unreadable to a strict reader.
    std::uint32_t cp = 0;
    const std::size_t n = utf8_at(out, i, cp);
    if (n == 0) out[i++] = '?';
    else i += n;
  }
}

Format::Format(std::vector<std::string> fields) : names_(std::move(fields)) {
  static const std::pair<std::string_view, Kind> kFixed[] = {
      {"date", Kind::Date}, {"time", Kind::Time}, {"s-ip", Kind::SIp},
      {"cs-method", Kind::Method}, {"cs-uri-stem", Kind::UriStem},
      {"cs-uri-query", Kind::UriQuery}, {"s-port", Kind::SPort},
      {"cs-username", Kind::Username}, {"c-ip", Kind::CIp},
      {"cs(User-Agent)", Kind::UserAgent}, {"cs(Referer)", Kind::Referer},
      {"sc-status", Kind::Status}, {"sc-substatus", Kind::Substatus},
      {"sc-win32-status", Kind::Win32}, {"time-taken", Kind::TimeTaken},
      {"s-sitename", Kind::SiteName}, {"s-computername", Kind::ComputerName},
      {"cs-version", Kind::Version}, {"cs-host", Kind::Host}, {"cs(Cookie)", Kind::Cookie},
      {"sc-bytes", Kind::ScBytes}, {"cs-bytes", Kind::CsBytes},
      {"x-request-id", Kind::RequestId}, {"x-reason", Kind::Reason}};
  for (const auto& name : names_) {
    bool fixed = false;
    for (const auto& [n, k] : kFixed)
      if (n == name) {
        fields_.push_back({k, ""});
        fixed = true;
        break;
      }
    if (fixed) continue;
    std::string arg = name.size() > 4 ? name.substr(3, name.size() - 4) : "";
    if (name.rfind("cs(", 0) == 0) fields_.push_back({Kind::RequestHeader, arg});
    else if (name.rfind("sc(", 0) == 0) fields_.push_back({Kind::ResponseHeader, arg});
    else fields_.push_back({Kind::Variable, name.size() > 3 ? name.substr(2, name.size() - 3) : ""});
  }
}

std::string Format::fields_header() const {
  std::string out = "#Fields:";
  for (const auto& n : names_) {
    out += ' ';
    out += n;
  }
  return out;
}

std::string Format::line(const Entry& e) const {
  std::string out;
  out.reserve(256);
  append_line(out, e);
  return out;
}

namespace {

// "2026-11-23" and "08:05:09" for one second, formatted once per second per thread.
struct Stamp {
  std::int64_t second = -1;
  char date[10], time[8];
};

const Stamp& stamp_for(std::int64_t second) {
  thread_local Stamp s;
  if (s.second == second) return s;
  const std::time_t t = static_cast<std::time_t>(second);
  std::tm tm{};
  gmtime_r(&t, &tm);
  auto two = [](char* at, int v) {
    at[0] = static_cast<char>('0' + v / 10 % 10);
    at[1] = static_cast<char>('0' + v % 10);
  };
  const int year = tm.tm_year + 1900;
  two(s.date, year / 100);
  two(s.date + 2, year % 100);
  s.date[4] = '-';
  two(s.date + 5, tm.tm_mon + 1);
  s.date[7] = '-';
  two(s.date + 8, tm.tm_mday);
  two(s.time, tm.tm_hour);
  s.time[2] = ':';
  two(s.time + 3, tm.tm_min);
  s.time[5] = ':';
  two(s.time + 6, tm.tm_sec);
  s.second = second;
  return s;
}

void append_number(std::string& out, std::uint64_t v) {
  char digits[24];
  out.append(digits, static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, v).ptr - digits));
}

}  // namespace

void Format::append_line(std::string& out, const Entry& e) const {
  const Stamp& stamp = stamp_for(e.unix_ms / 1000);
  bool first = true;
  for (const auto& f : fields_) {
    if (!first) out += ' ';
    first = false;
    switch (f.kind) {
      case Kind::Date: out.append(stamp.date, sizeof stamp.date); break;
      case Kind::Time: out.append(stamp.time, sizeof stamp.time); break;
      case Kind::SIp: append_value(out, e.s_ip); break;
      case Kind::Method: append_value(out, e.method); break;
      case Kind::UriStem: append_value(out, e.uri_stem); break;
      case Kind::UriQuery: append_value(out, e.uri_query); break;
      case Kind::SPort: append_number(out, e.s_port); break;
      case Kind::Username: append_value(out, e.username); break;
      case Kind::CIp: append_value(out, e.c_ip); break;
      case Kind::UserAgent: append_value(out, e.user_agent); break;
      case Kind::Referer: append_value(out, e.referer); break;
      case Kind::Status: append_number(out, static_cast<std::uint64_t>(e.status)); break;
      case Kind::Substatus: append_number(out, static_cast<std::uint64_t>(e.substatus)); break;
      case Kind::Win32: append_number(out, e.win32); break;
      case Kind::TimeTaken: append_number(out, e.time_taken_ms); break;
      case Kind::SiteName: append_value(out, e.site_name); break;
      case Kind::ComputerName: append_value(out, e.computer_name); break;
      case Kind::Version: append_value(out, e.version); break;
      case Kind::Host: append_value(out, e.host); break;
      case Kind::Cookie: append_value(out, e.cookie); break;
      case Kind::ScBytes: append_number(out, e.sc_bytes); break;
      case Kind::CsBytes: append_number(out, e.cs_bytes); break;
      case Kind::RequestId: append_value(out, e.request_id); break;
      case Kind::Reason: append_value(out, e.reason); break;
      case Kind::RequestHeader: append_value(out, e.more ? e.more->request_header(f.arg) : ""); break;
      case Kind::ResponseHeader: append_value(out, e.more ? e.more->response_header(f.arg) : ""); break;
      case Kind::Variable: append_value(out, e.more ? e.more->variable(f.arg) : ""); break;
    }
  }
}

std::string file_name(config::LogPeriod period, std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const int yy = tm.tm_year % 100, mm = tm.tm_mon + 1;
  switch (period) {
    case config::LogPeriod::Hourly: return fmt::format("u_ex{:02}{:02}{:02}{:02}.log", yy, mm, tm.tm_mday, tm.tm_hour);
    case config::LogPeriod::Daily: return fmt::format("u_ex{:02}{:02}{:02}.log", yy, mm, tm.tm_mday);
    // IIS numbers weeks within the month, starting at 1, weeks beginning on Sunday.
    case config::LogPeriod::Weekly: {
      int first_wday = (tm.tm_wday - (tm.tm_mday - 1) % 7 + 7) % 7;
      return fmt::format("u_ex{:02}{:02}{:02}.log", yy, mm, (tm.tm_mday - 1 + first_wday) / 7 + 1);
    }
    case config::LogPeriod::Monthly: return fmt::format("u_ex{:02}{:02}.log", yy, mm);
  }
  return "u_ex.log";
}

Writer::Writer() : thread_([this] { run(); }) {}

Writer::~Writer() { stop(); }

std::size_t Writer::add_site(const config::SiteLog& log, std::string software) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < sites_.size(); ++i) {
    const auto& c = sites_[i]->cfg;
    if (c.directory == log.directory && c.period == log.period && c.fields == log.fields &&
        c.enabled == log.enabled)
      return i;
  }
  sites_.push_back(std::make_unique<SiteFile>(
      SiteFile{log, Format(log.fields), std::move(software), "", -1, nullptr, false}));
  return sites_.size() - 1;
}

// Small batches: the writer shares the CPU with the request loops, and writing a large batch
// in one go delays them by milliseconds (seen as the keep-alive p99 in bench/compare.sh).
constexpr std::size_t kBatchLines = 256;

void Writer::write(std::size_t site, std::int64_t unix_seconds, std::string_view line) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    queue_.push_back({site, unix_seconds, queue_text_.size(), line.size() + 2});
    queue_text_ += line;
    queue_text_ += "\r\n";
    ++submitted_;
    wake = queue_.size() >= kBatchLines;
  }
  if (wake) cv_.notify_one();
}

void Writer::flush() {
  std::unique_lock lock(mu_);
  const std::uint64_t target = submitted_;
  cv_.notify_one();
  done_cv_.wait(lock, [&] { return written_ >= target || !thread_.joinable(); });
}

void Writer::reopen() {
  {
    std::lock_guard lock(mu_);
    // A marker in the queue: lines queued before it go to the file open now, later ones to
    // the file opened again by name.
    queue_.push_back({kReopenMarker, 0, 0, 0});
    ++submitted_;
  }
  cv_.notify_one();
}

void Writer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  close_files();
}

void Writer::close_files() {
  std::vector<SiteFile*> files;
  {
    std::lock_guard lock(mu_);  // add_site may grow the list meanwhile
    for (auto& s : sites_) files.push_back(s.get());
  }
  for (auto* f : files)
    if (f->file) {
      std::fclose(f->file);
      f->file = nullptr;
    }
}

void Writer::run() {
  std::vector<Pending> batch;
  std::string text;
  std::unique_lock lock(mu_);
  for (;;) {
    // Wake at least twice a second so a line is on disk within a second.
    cv_.wait_for(lock, std::chrono::milliseconds(500),
                 [&] { return stop_ || queue_.size() >= kBatchLines || written_ < submitted_; });
    batch.swap(queue_);
    text.swap(queue_text_);
    const bool stopping = stop_;
    lock.unlock();
    write_batch(batch, text);
    lock.lock();
    written_ += batch.size();
    batch.clear();
    text.clear();
    done_cv_.notify_all();
    if (stopping && queue_.empty()) return;
  }
}

void Writer::write_batch(std::vector<Pending>& batch, const std::string& text) {
  if (batch.empty()) return;
  std::vector<SiteFile*> files;
  {
    std::lock_guard lock(mu_);  // add_site may grow the list meanwhile
    for (auto& s : sites_) files.push_back(s.get());
  }
  std::vector<bool> touched(files.size(), false);
  for (const auto& p : batch) {
    if (p.site == kReopenMarker) {
      close_files();
      continue;
    }
    if (p.site >= files.size()) continue;
    write_one(*files[p.site], p, std::string_view(text).substr(p.offset, p.length));
    touched[p.site] = true;
  }
  for (std::size_t i = 0; i < files.size(); ++i)
    if (touched[i] && files[i]->file) std::fflush(files[i]->file);
}

namespace {

// The logs name users and client addresses: not for every local account to read. Directories
// certgate creates are 0750; ones the administrator made keep the mode they were given.
void create_log_directories(const std::filesystem::path& dir) {
  std::filesystem::path at;
  for (const auto& part : dir) {
    at /= part;
    if (::mkdir(at.c_str(), 0750) == 0) ::chmod(at.c_str(), 0750);  // whatever the umask
  }
}

// A new log file is 0640 whatever the umask; an existing one keeps its mode (appending to it
// must not undo what its owner chose).
std::FILE* open_log_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd >= 0) ::fchmod(fd, 0640);
  else if (errno == EEXIST) fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return nullptr;
  std::FILE* f = ::fdopen(fd, "ab");
  if (f == nullptr) ::close(fd);
  // A batch of lines goes out in one write (stdio's default 4 KB buffer made it one write per
  // few dozen lines, each a file-system update), as nginx's `access_log ... buffer=64k`.
  else std::setvbuf(f, nullptr, _IOFBF, 64 * 1024);
  return f;
}

}  // namespace

void Writer::write_one(SiteFile& f, const Pending& p, std::string_view line) {
  if (!f.cfg.enabled) return;
  // The file's name is worked out once per second of lines, not once per line.
  if (p.unix_seconds != f.named_second || f.file == nullptr) {
    const std::string name = file_name(f.cfg.period, p.unix_seconds);
    if (name != f.current_name || f.file == nullptr) open_file(f, name);
    if (f.file == nullptr) return;
    f.named_second = p.unix_seconds;
  }
  fwrite_unlocked(line.data(), 1, line.size(), f.file);  // only the writer thread writes to it
}

void Writer::open_file(SiteFile& f, const std::string& name) {
  if (f.file) std::fclose(f.file);
  f.file = nullptr;
  create_log_directories(f.cfg.directory);
  const auto path = f.cfg.directory / name;
  f.file = open_log_file(path);
  if (f.file == nullptr) {
    if (!f.reported_error)
      std::fprintf(stderr, "certgate: cannot write W3C log %s: %s\n", path.c_str(),
                   std::strerror(errno));
    f.reported_error = true;
    return;
  }
  f.reported_error = false;
  f.current_name = name;
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::string head = fmt::format(
      "#Software: {}\r\n#Version: 1.0\r\n#Date: {:04}-{:02}-{:02} {:02}:{:02}:{:02}\r\n{}\r\n",
      f.software, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
      tm.tm_sec, f.format.fields_header());
  std::fwrite(head.data(), 1, head.size(), f.file);
}

}  // namespace certgate::log
