#pragma once
// The one place the evidence for a decision is gathered, for `serve`, `explain` and `verify -c`
// alike. A RequestState walks the stages in IIS order — chain validation against the site's
// trust (with the revocation store), certificate mapping, directory mapping, the Basic /
// two-factor password — then asks auth::decide(). A stage that lacks something (a CRL, an OCSP
// answer or AIA issuer, a directory answer, a password check) stops the walk and says what it
// needs; whoever runs the state meets the need and calls advance() again, which skips the stages
// already done. The server meets needs asynchronously (revocation thread, directory workers,
// password pool: http/connection.cpp), the CLI on the calling thread (run_to_decision()).
// The connection-level reuse of a validation (behaviour.md §6) lives in tls::TlsFacts: a cache
// this state consults and fills, never the place a decision is made.
#include "auth/decide.hpp"
#include "auth/directory.hpp"
#include "directory/directory_service.hpp"
#include "pki/chain_verify.hpp"
#include "revocation/store.hpp"
#include "runtime/clock.hpp"
#include "tls/tls_facts.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::runtime { struct SiteRuntime; }

namespace certgate::pipeline {

// What the walk stopped for. None: decided.
// Certificate: the location negotiates a certificate, the connection's binding is on demand and
// has not asked yet (docs/on-demand.md): ask (or step up), then certificate_answered() /
// use_certificate() / certificate_unavailable().
enum class Need : std::uint8_t { None, Revocation, Directory, Password, Certificate };

// A Basic password to check against its crypt(3) hash before the request can be decided.
struct PasswordCheck {
  std::string_view hash;  // the site's, for its generation's lifetime: copy it to keep it longer
  std::string password;
  std::string cache_key;  // http/basic_auth.hpp: the server's per-loop memory of answers
};

struct Inputs {
  const runtime::SiteRuntime* site = nullptr;
  const auth::LocationPolicy* policy = nullptr;
  tls::TlsFacts* tls = nullptr;             // the connection's certificate state; null: plain HTTP
  revocation::Store* store = nullptr;       // null: local CRLs only
  const runtime::Clock* clock = &runtime::system_clock();
  std::string_view authorization;           // the request's Authorization header
  const pki::TrustStore* trust = nullptr;   // overrides the site's (verify's --revocation, ...)
  pki::Detail detail = pki::Detail::Brief;  // Full: every chain element described (CLI)
  // `explain` on a two-factor location: offer the mapped user's password (Need::Password) when
  // the request carries no Basic credentials of its own.
  bool offer_mapped_user_password = false;
};

class RequestState {
 public:
  explicit RequestState(const Inputs& in);

  // Runs the stages not done yet, up to the decision or the first need.
  Need advance();

  // Need::Revocation: what to fetch. Then advance() validates again (bounded by
  // revocation::kMaxFetchRounds; the last round decides with what there is).
  std::vector<revocation::Need> take_fetches() { return std::move(fetches_); }
  // Need::Directory: the directory's answer for the leaf (kept on the connection until it
  // expires; this request is decided by it even if it may not be kept).
  void directory_answered(directory::Mapped answer);
  // Need::Password: the password to check (moved out: clear it after use), then its answer.
  PasswordCheck take_password() { return std::move(password_); }
  void password_checked(bool ok);
  // Need::Certificate met: the connection's TlsFacts now hold what the client answered (a
  // certificate or none).
  void certificate_answered();
  // Need::Certificate met by a step-up cookie: the certificate it stands for, for this request
  // only (`facts` outlives the state).
  void use_certificate(tls::TlsFacts* facts);
  // Need::Certificate cannot be met: decided 403.7 with `reason`.
  void certificate_unavailable(std::string reason);

  bool decided() const { return stage_ == Stage::Done; }
  const auth::Outcome& outcome() const { return outcome_; }
  auth::Outcome take_outcome() { return std::move(outcome_); }
  // What the stages found (chain report, leaf facts, mapping, password): for explain.
  const auth::RequestEvidence& evidence() const { return ev_; }
  // A password was asked for (explain says whose, and whether it was checked or assumed).
  bool password_asked() const { return password_asked_; }
  const Inputs& inputs() const { return in_; }

 private:
  enum class Stage : std::uint8_t { Chain, Mapping, Directory, Password, Decide, Done };
  const auth::ChainReport* chain_report();
  const auth::Outcome& mapping();

  Inputs in_;
  Stage stage_ = Stage::Chain;
  Need waiting_ = Need::None;
  int fetch_rounds_ = 0;
  bool directory_met_ = false;  // this request's own directory answer: used even if expired
  bool password_asked_ = false;
  bool password_user_known_ = false;  // false: the check runs for its time only (never right)
  auth::RequestEvidence ev_;
  std::vector<revocation::Need> fetches_;
  PasswordCheck password_;
  auth::Outcome outcome_;
};

// The CLI's way: every need met on this thread with the server's own components — the same
// revocation store (fetch_and_wait), the site's directory settings (one search, no cache), and
// `password` checked against the user's hash (nullopt: assumed right, for explain).
struct SyncTrace {
  std::vector<auth::DirectoryTier> directory_plan;
  std::optional<auth::DirectoryAnswer> directory_answer;
  bool password_assumed = false;
};
void run_to_decision(RequestState& state, const std::optional<std::string>& password, SyncTrace* trace = nullptr);

}  // namespace certgate::pipeline
