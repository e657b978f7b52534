#include "http/request_steps.hpp"

#include "http/basic_auth.hpp"
#include "http/file_cache.hpp"
#include "http/path.hpp"
#include "http/step_up.hpp"
#include "pki/jwt.hpp"
#include "pki/x509_text.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>

#include <memory>

namespace certgate::http {
namespace asio = boost::asio;

void meet_need(ServerState& state, Loop& loop, const ConnectionInfo& c, pipeline::RequestState& st,
               pipeline::Need need, std::function<void(NeedMet)> done) {
  switch (need) {
    case pipeline::Need::None: return done({});
    case pipeline::Need::Password: {
      // crypt(3) is slow by design. Bounded: a flood of wrong passwords gets 503 instead of
      // queueing without end.
      pipeline::PasswordCheck job = st.take_password();
      if (auto known = cached_password_result(job.cache_key, *state.clock)) {
        OPENSSL_cleanse(job.password.data(), job.password.size());
        NeedMet met;
        met.password = *known;
        return done(std::move(met));
      }
      if (state.pending_passwords.fetch_add(1) >= c.snap.cfg.server.limits.max_pending_password_checks) {
        state.pending_passwords.fetch_sub(1);
        OPENSSL_cleanse(job.password.data(), job.password.size());
        NeedMet met;
        met.busy = true;
        return done(std::move(met));
      }
      asio::post(*state.passwords, [&state, &loop, hash = std::string(job.hash), job = std::move(job),
                                    done = std::move(done)]() mutable {
        const bool ok = check_password(hash, job.password);
        OPENSSL_cleanse(job.password.data(), job.password.size());
        state.pending_passwords.fetch_sub(1);
        asio::post(loop.io, [&state, key = std::move(job.cache_key), ok, done = std::move(done)]() mutable {
          remember_password_result(key, ok, *state.clock);
          NeedMet met;
          met.password = ok;
          done(std::move(met));
        });
      });
      return;
    }
    case pipeline::Need::Revocation:
      // CRLs, OCSP answers or issuer certificates the validation lacks, fetched on the store's
      // thread (joining fetches already running for the same URL).
      state.revocation->fetch(st.take_fetches(), [&loop, done = std::move(done)]() mutable {
        asio::post(loop.io, [done = std::move(done)]() mutable { done({}); });
      });
      return;
    case pipeline::Need::Certificate:
      // Asking is the connection's own business (post-handshake authentication, renegotiation,
      // a step-up: ask_for_certificate in connection.cpp and h2_connection.cpp). A caller that
      // passes it here anyway gets the request decided without one (403.7), never a request
      // left waiting for a callback that does not come.
      st.certificate_unavailable("the connection cannot ask for a client certificate here");
      return done({});
    case pipeline::Need::Directory:
      // The answer is kept on the connection (TlsFacts) until it expires. The state's site and
      // certificate: a step-up decides for another site than the connection's.
      st.inputs().site->directory->lookup(st.inputs().tls->leaf_facts(), [&loop, done = std::move(done)](directory::Mapped m) mutable {
        asio::post(loop.io, [m = std::move(m), done = std::move(done)]() mutable {
          NeedMet met;
          met.directory = std::move(m);
          done(std::move(met));
        });
      });
      return;
  }
}

bool record_need(pipeline::RequestState& st, NeedMet&& met) {
  if (met.busy) return false;
  if (met.password) st.password_checked(*met.password);
  if (met.directory) st.directory_answered(std::move(*met.directory));
  return true;
}

Response password_busy(const ConnectionInfo& c, std::string_view accept) {
  Response busy = protocol_error(c, auth::Verdict::Http503_PasswordChecksBusy,
                                 "too many password checks are waiting; try again shortly", accept);
  busy.set("Retry-After", "1");
  return busy;
}

RequestIds::RequestIds() {
  static const std::uint32_t process = [] {
    std::uint32_t v = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) v = static_cast<std::uint32_t>(::getpid());
    return v;
  }();
  static std::atomic<unsigned> threads{0};
  const auto text = fmt::format("{:08x}-{}-", process, threads.fetch_add(1, std::memory_order_relaxed));
  prefix_len_ = std::min(text.size(), prefix_.size());
  std::copy_n(text.begin(), prefix_len_, prefix_.begin());
}

std::size_t RequestIds::next(std::array<char, 40>& out) {
  char* p = std::copy(prefix_.begin(), prefix_.begin() + static_cast<std::ptrdiff_t>(prefix_len_), out.data());
  p = std::to_chars(p, out.data() + out.size(), ++count_).ptr;
  return static_cast<std::size_t>(p - out.data());
}

tls::TlsFacts& decided_facts(const Routed& routed, tls::TlsFacts& handshake) {
  if (routed.state && routed.state->inputs().tls) return *routed.state->inputs().tls;
  return handshake;
}

void run_single_use(ServerState& state, Loop& loop, const Handled::SingleUse& op,
                    std::function<void(state::Result)> done) {
  if (!state.single_use) return done(state::Result{state::Status::Unavailable, {}, "no single-use store"});
  // A ticket lives 60 s (http/step_up.hpp); the store keeps it a second longer than it is good.
  if (op.issue)
    state.single_use->issue(kStepUpStoreNamespace, op.key, "", std::chrono::seconds(61), loop.io.get_executor(),
                            std::move(done));
  else
    state.single_use->consume(kStepUpStoreNamespace, op.key, loop.io.get_executor(), std::move(done));
}

void read_static(ServerState& state, Loop& loop, StaticRequest&& job, std::function<void(Response)> done) {
  asio::post(*state.files, [&state, &loop, job = std::move(job), done = std::move(done)]() mutable {
    Response r = serve_static(job);
    asio::post(loop.io, [&state, job = std::move(job), r = std::move(r), done = std::move(done)]() mutable {
      // On the loop thread: the cache is this loop's own.
      remember_file(job, r, state.clock->steady_ms());
      done(std::move(r));
    });
  });
}

namespace {
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void write_request_log(ServerState& state, const Generation& gen, std::size_t site, const Endpoints& ends,
                       const RequestRecord& rec, std::string& line) {
  const std::int64_t finished_ms = now_ms();
  state.answers.record(rec.resp.status, rec.resp.substatus,
                       rec.outcome.verdict == auth::Verdict::Allow ? AnswerStats::kNoVerdict
                                                                   : static_cast<int>(rec.outcome.verdict),
                       finished_ms / 1000);
  if (state.writer == nullptr) return;
  const auto& cfg = gen.snap->sites[site].cfg;
  if (!cfg.log.enabled) return;
  log::Entry e;
  e.unix_ms = finished_ms;
  e.site_name = cfg.name;
  e.computer_name = state.computer_name;
  e.s_ip = ends.s_ip;
  e.c_ip = ends.c_ip;
  e.s_port = ends.s_port;
  e.method = rec.req.method;
  std::string_view target = rec.req.target;
  if (auto form = split_target(target)) target = form->origin;  // absolute-form: the path, as IIS logs
  auto q = target.find('?');
  // The path the policy was decided on, as IIS logs it (decoded, dot segments resolved):
  // `/public/..%2fsecure/x` is an access to /secure/x and must read so in the log. The raw
  // target only for a request refused before its path was understood.
  e.uri_stem = rec.path.empty() ? target.substr(0, q) : rec.path;
  e.uri_query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  e.username = rec.outcome.user;
  e.user_agent = rec.req.header("User-Agent");
  e.referer = rec.req.header("Referer");
  e.cookie = rec.req.header("Cookie");
  e.host = rec.req.header("Host");
  e.version = rec.req.method.empty() ? ""
              : rec.req.version == 20 ? "HTTP/2"
              : rec.req.version == 10 ? "HTTP/1.0"
                                      : "HTTP/1.1";
  e.status = rec.resp.status;
  e.substatus = rec.resp.substatus;
  // A served answer carries its decision's win32 (soft_fail's CRYPT_E_REVOCATION_OFFLINE).
  e.win32 = rec.resp.win32 ? rec.resp.win32 : rec.outcome.row().win32;
  e.time_taken_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - rec.started).count());
  e.sc_bytes = rec.sc_bytes;
  e.cs_bytes = rec.cs_bytes;
  e.request_id = rec.request_id;
  e.reason = rec.resp.reason.empty() ? std::string_view(rec.outcome.reason) : std::string_view(rec.resp.reason);
  e.more = rec.more;
  line.clear();
  gen.formats[site].append_line(line, e);
  state.writer->write(gen.site_log[site], e.unix_ms / 1000, line);
}

std::string request_variable(std::string_view name, const tls::TlsFacts& tls, const X509* leaf, bool https,
                             const auth::Outcome& outcome) {
  if (name == "CERT_SUBJECT") return leaf ? pki::subject_text(leaf) : "";
  if (name == "CERT_ISSUER") return leaf ? pki::issuer_text(leaf) : "";
  if (name == "CERT_SERIALNUMBER") return leaf ? pki::serial_hex(leaf) : "";
  if (name == "CRYPT_PROTOCOL") return tls.protocol;
  if (name == "CRYPT_CIPHER") return tls.cipher;
  if (name == "SERVER_NAME") return tls.sni;
  if (name == "HTTPS") return https ? "on" : "off";
  if (name == "AUTH_TYPE") return outcome.auth_method;
  return "";
}

}  // namespace certgate::http

namespace certgate::http {
std::string AssertionCache::get(const runtime::SiteRuntime& site, const auth::Outcome& who, X509* leaf,
                                tls::TlsFacts& tls, const runtime::Clock& clock) {
  const auto* signer = site.signer.get();
  if (!signer || who.user.empty()) return "";
  const auto& a = site.cfg.forward.assertion;
  const std::int64_t now = clock.unix_seconds();
  // Reused only for a request whose claims it states exactly: the same user may be
  // authenticated another way (two-factor at one location, the certificate alone at
  // another) or with other directory groups on the same connection.
  if (user_ == who.user && site_ == site.index && cert_ == (leaf != nullptr) && method_ == who.auth_method &&
      groups_ == who.groups && now < refresh_)
    return assertion_;
  pki::Claims c;
  c.issuer = a.issuer;
  c.audience = a.audience;
  c.subject = who.user;
  c.auth_method = who.auth_method;
  if (const auto* groups = site.auth.groups_of(who.user)) c.groups = *groups;
  c.groups.insert(c.groups.end(), who.groups.begin(), who.groups.end());  // directory
  if (leaf) c.cert_thumbprint = tls.leaf_facts().der_sha256;
  c.issued_at = now;
  c.expires = now + a.lifetime_seconds;
  assertion_ = signer->sign(c);
  user_ = who.user;
  site_ = site.index;
  cert_ = leaf != nullptr;
  method_ = who.auth_method;
  groups_ = who.groups;
  refresh_ = now + a.lifetime_seconds / 2;
  return assertion_;
}

std::optional<std::size_t> site_after_reload(const runtime::Snapshot& snap, std::size_t listener_index,
                                             const std::string& name) {
  for (const auto& r : snap.listeners[listener_index].routes)
    if (snap.sites[r.site].cfg.name == name) return r.site;
  return std::nullopt;
}
}  // namespace certgate::http
