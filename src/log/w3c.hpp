#pragma once
// W3C extended log files, byte-compatible with IIS (spec: behaviour.md §8).
// Formatting happens on the request loop (cheap, no I/O); a single writer thread owns the
// files, so writing the log never blocks request handling.
#include "config/config.hpp"

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace certgate::log {

// Values a field may need beyond the fixed ones: request/response headers, server variables.
class FieldSource {
 public:
  virtual ~FieldSource() = default;
  virtual std::string request_header(std::string_view name) const = 0;
  virtual std::string response_header(std::string_view name) const = 0;
  virtual std::string variable(std::string_view name) const = 0;  // CERT_SUBJECT, ...
};

struct Entry {
  std::int64_t unix_ms = 0;  // when the last byte was sent
  std::string_view site_name, computer_name, s_ip, c_ip, method, uri_stem, uri_query, username,
      user_agent, referer, cookie, host, version;
  // certgate's own fields: the id shown on the error page and why the request was refused.
  std::string_view request_id, reason;
  std::uint16_t s_port = 0;
  int status = 0, substatus = 0;
  std::uint32_t win32 = 0;
  std::uint64_t time_taken_ms = 0, sc_bytes = 0, cs_bytes = 0;
  const FieldSource* more = nullptr;
};

// One site's field list, compiled once.
class Format {
 public:
  explicit Format(std::vector<std::string> fields);
  std::string line(const Entry& e) const;  // without the newline
  void append_line(std::string& out, const Entry& e) const;  // the same, appended to `out`
  std::string fields_header() const;       // "#Fields: date time ..."
  const std::vector<std::string>& fields() const { return names_; }

 private:
  enum class Kind : std::uint8_t;
  struct Field {
    Kind kind;
    std::string arg;
  };
  std::vector<std::string> names_;
  std::vector<Field> fields_;
};

// IIS escaping of one value: "-" when empty, spaces and control characters as '+'.
void append_value(std::string& out, std::string_view v);
// "u_ex261123.log" for the period containing `unix_seconds` (UTC).
std::string file_name(config::LogPeriod period, std::int64_t unix_seconds);

class Writer {
 public:
  Writer();
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Registers a site's log; returns the handle to write with. The same directory, period and
  // fields give the same handle, so a reload keeps writing the files it had open.
  std::size_t add_site(const config::SiteLog& log, std::string software);
  // Queues one line (thread-safe; takes a mutex to copy it into the queue, never waits on disk).
  void write(std::size_t site, std::int64_t unix_seconds, std::string_view line);
  // Writes everything queued so far and fflushes; returns when done.
  void flush();
  // Closes every file after the lines queued so far are written, so the next line opens its
  // file by name again: a file logrotate (or an administrator) moved or deleted is recreated at
  // its path (SIGUSR1). Returns at once; the writer thread does the closing.
  void reopen();
  void stop();  // flush and end the writer thread

 private:
  // A line (with its CRLF) is `length` bytes at `offset` in the queue's text: the queue's two buffers keep their
  // capacity from batch to batch, so queuing a line allocates nothing.
  static constexpr std::size_t kReopenMarker = static_cast<std::size_t>(-1);
  struct Pending {
    std::size_t site;
    std::int64_t unix_seconds;
    std::size_t offset, length;
  };
  struct SiteFile {
    config::SiteLog cfg;
    Format format;
    std::string software;
    std::string current_name;
    std::int64_t named_second = -1;  // current_name is the file for this second
    std::FILE* file = nullptr;
    bool reported_error = false;
  };
  void run();
  void write_batch(std::vector<Pending>& batch, const std::string& text);
  void write_one(SiteFile& f, const Pending& p, std::string_view line);
  void open_file(SiteFile& f, const std::string& name);  // f.file null when it cannot
  void close_files();  // writer thread only (or after it ended)

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::vector<Pending> queue_;
  std::string queue_text_;
  std::vector<std::unique_ptr<SiteFile>> sites_;  // stable addresses: the writer thread holds them
  std::uint64_t submitted_ = 0, written_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace certgate::log
