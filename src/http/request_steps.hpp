#pragma once
// The per-request steps HTTP/1.1 (http/connection.cpp) and HTTP/2 (http/h2_connection.cpp)
// share once a request is parsed: meeting the evidence pipeline's needs without blocking the
// loop, reading a static file on the file pool, and the request's W3C line.
#include "http/connection.hpp"
#include "http/handler.hpp"
#include "log/w3c.hpp"
#include "state/store.hpp"

#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace certgate::http {

// What met a need: a password check's answer, the directory's, or (neither) fetches finished.
struct NeedMet {
  bool busy = false;  // too many password checks already wait: answer password_busy()
  std::optional<bool> password;
  std::optional<directory::Mapped> directory;
};

// Meets `need` of `st` (a request on `c`) off the loop: crypt(3) on the password pool (its
// answer remembered on this loop), revocation fetches on the store's thread, the directory on
// its workers. `done` runs on the loop's thread, at once for a remembered password or a refusal.
void meet_need(ServerState& state, Loop& loop, const ConnectionInfo& c, pipeline::RequestState& st,
               pipeline::Need need, std::function<void(NeedMet)> done);
// Hands what was met to `st`; false when the need was refused (busy).
bool record_need(pipeline::RequestState& st, NeedMet&& met);
// 503 for a password check refused because too many wait.
Response password_busy(const ConnectionInfo& c, std::string_view accept);

// Request ids: a prefix drawn once per process, this loop thread's number, and a count of the
// requests this thread has started ("9f3c2a7e-1-4711"), HTTP/1.1 requests and HTTP/2 streams
// alike. Unique within a process's life and, with the random prefix, across restarts and
// instances; made without allocating or sharing a counter between loops.
class RequestIds {
 public:
  static RequestIds& mine() {
    thread_local RequestIds ids;
    return ids;
  }
  // Writes the next id into `out` and returns its length.
  std::size_t next(std::array<char, 40>& out);

 private:
  RequestIds();
  std::array<char, 20> prefix_{};
  std::size_t prefix_len_ = 0;
  std::uint64_t count_ = 0;
};

// The certificate a request is decided on: the handshake's (`handshake`), or the one a
// token-login or step-up cookie, or a signed response, stands for (the pipeline state's). The
// server variables (CERT_SUBJECT, ...) and the signed assertion must name that one.
tls::TlsFacts& decided_facts(const Routed& routed, tls::TlsFacts& handshake);

// Need::Certificate became a step-up (http/step_up.hpp) that takes or issues a ticket in the
// single-use store: runs `op` there (refused as unavailable without a store); `done` runs on the
// loop's thread, then the caller applies step_up_after_store().
void run_single_use(ServerState& state, Loop& loop, const Handled::SingleUse& op,
                    std::function<void(state::Result)> done);

// Reads `job` on the file pool; `done` gets the answer (remembered in this loop's cache when
// small) on the loop's thread. Callers try cached_file() first.
void read_static(ServerState& state, Loop& loop, StaticRequest&& job, std::function<void(Response)> done);

struct Endpoints {
  std::string_view s_ip, c_ip;
  std::uint16_t s_port = 0;
};

// One request's W3C line, as the writer thread receives it; also counted for the status page.
struct RequestRecord {
  const Request& req;
  std::string_view path;  // normalised; empty: refused before its path was understood
  const auth::Outcome& outcome;
  const Response& resp;
  std::uint64_t cs_bytes = 0, sc_bytes = 0;
  std::chrono::steady_clock::time_point started;
  const log::FieldSource* more = nullptr;
  std::string_view request_id;  // x-request-id, also shown on the error page
};
// `line`: a string the connection reuses for every line.
void write_request_log(ServerState& state, const Generation& gen, std::size_t site, const Endpoints& ends,
                       const RequestRecord& rec, std::string& line);

// The server variables of a W3C custom field (CERT_SUBJECT, CRYPT_PROTOCOL, ...).
// `leaf`: the certificate the request was decided with (the handshake's, or the one a step-up
// or token-login cookie stood for).
std::string request_variable(std::string_view name, const tls::TlsFacts& tls, const X509* leaf, bool https,
                             const auth::Outcome& outcome);

}  // namespace certgate::http

namespace certgate::http {
// The signed assertion (JWT) for a connection's user, re-signed when half its life is gone.
class AssertionCache {
 public:
  // `leaf`: the certificate the decision validated and mapped (null: the assertion names none).
  // "" when the site signs none or the caller is anonymous.
  std::string get(const runtime::SiteRuntime& site, const auth::Outcome& who, X509* leaf, tls::TlsFacts& tls,
                  const runtime::Clock& clock);
  void forget() {
    user_.clear();
    refresh_ = 0;
  }

 private:
  std::string assertion_, user_, method_;
  std::vector<std::string> groups_;
  std::int64_t refresh_ = 0;
  std::size_t site_ = 0;
  bool cert_ = false;
};

// After a reload: the site called `name` on listener `listener_index` of `snap` (listeners
// cannot change on reload), or nullopt when the reload removed it from that address.
std::optional<std::size_t> site_after_reload(const runtime::Snapshot& snap, std::size_t listener_index,
                                             const std::string& name);
}  // namespace certgate::http
