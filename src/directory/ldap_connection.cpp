#include "directory/ldap_connection.hpp"

#include <ldap.h>
#include <sys/socket.h>
#include <sys/time.h>

namespace certgate::directory {
namespace {

timeval to_timeval(std::uint32_t ms) {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

// Codes that mean "no server to talk to": worth a reconnect, and a 500 (8250) if it persists.
bool unreachable(int rc) {
  return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
         rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY || rc == LDAP_TIMELIMIT_EXCEEDED;
}

std::string describe(LDAP* ld, int rc) {
  std::string out = ldap_err2string(rc);
  char* diag = nullptr;
  if (ld && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS && diag) {
    if (*diag) out += std::string(" (") + diag + ")";
    ldap_memfree(diag);
  }
  return out;
}

std::vector<std::string> values(LDAP* ld, LDAPMessage* entry, const std::string& attr) {
  std::vector<std::string> out;
  if (attr.empty()) return out;
  berval** vals = ldap_get_values_len(ld, entry, attr.c_str());
  for (int i = 0; vals && vals[i]; ++i) out.emplace_back(vals[i]->bv_val, vals[i]->bv_len);
  ldap_value_free_len(vals);
  return out;
}

std::string replace_all(std::string s, std::string_view from, const std::string& to) {
  for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

}  // namespace

std::string first_rdn_value(const std::string& dn) {
  const std::size_t eq = dn.find('=');
  if (eq == std::string::npos) return dn;
  std::string out;
  for (std::size_t i = eq + 1; i < dn.size(); ++i) {
    if (dn[i] == '\\' && i + 1 < dn.size()) {
      out += dn[++i];
      continue;
    }
    if (dn[i] == ',' || dn[i] == '+') break;
    out += dn[i];
  }
  return out;
}

LdapConnection::LdapConnection(const config::DirectoryMapping& settings)
    : s_(settings), callbacks_(std::make_unique<ldap_conncb>()) {
  for (const auto& u : s_.urls) servers_ += (servers_.empty() ? "" : " ") + u;
  callbacks_->lc_arg = this;
  // Runs on the thread doing the bind or search, right after libldap connected: from then on
  // interrupt() can reach the socket; once interrupted, the connection is refused here (a
  // stop that came between our check in connect() and libldap's connect).
  callbacks_->lc_add = [](LDAP*, Sockbuf* sb, LDAPURLDesc*, sockaddr*, ldap_conncb* ctx) -> int {
    auto* self = static_cast<LdapConnection*>(ctx->lc_arg);
    int fd = -1;
    ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd);
    std::lock_guard lock(self->socket_mu_);
    if (self->interrupted_) return -1;
    self->socket_ = fd;
    return 0;
  };
  callbacks_->lc_del = [](LDAP*, Sockbuf*, ldap_conncb* ctx) {
    auto* self = static_cast<LdapConnection*>(ctx->lc_arg);
    std::lock_guard lock(self->socket_mu_);
    self->socket_ = -1;
  };
}

void LdapConnection::interrupt() {
  std::lock_guard lock(socket_mu_);
  interrupted_ = true;
  // shutdown(), not close(): the descriptor stays libldap's (no other socket can take its
  // number), and its blocked poll wakes with the connection ended.
  if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
}

LdapConnection::~LdapConnection() { drop(); }

void LdapConnection::drop() {
  if (ld_) ldap_unbind_ext_s(ld_, nullptr, nullptr);
  ld_ = nullptr;
}

int LdapConnection::connect(std::string& error) {
  {
    std::lock_guard lock(socket_mu_);
    if (interrupted_) {
      error = "certgate is stopping";
      return LDAP_SERVER_DOWN;
    }
  }
  // libldap tries a space-separated URL list in order: that is the failover.
  int rc = ldap_initialize(&ld_, servers_.c_str());
  if (rc != LDAP_SUCCESS) {
    error = describe(nullptr, rc);
    ld_ = nullptr;
    return rc;
  }
  const int version = LDAP_VERSION3;
  ldap_set_option(ld_, LDAP_OPT_PROTOCOL_VERSION, &version);
  ldap_set_option(ld_, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);  // AD referrals would leave the site's servers
  ldap_set_option(ld_, LDAP_OPT_CONNECT_CB, callbacks_.get());
  const timeval connect = to_timeval(s_.connect_timeout_ms);
  ldap_set_option(ld_, LDAP_OPT_NETWORK_TIMEOUT, &connect);
  const timeval op = to_timeval(s_.timeout_ms);
  ldap_set_option(ld_, LDAP_OPT_TIMEOUT, &op);
  if (!s_.ca_file.empty()) {
    const int demand = LDAP_OPT_X_TLS_DEMAND;
    ldap_set_option(ld_, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
    ldap_set_option(ld_, LDAP_OPT_X_TLS_CACERTFILE, s_.ca_file.c_str());
    const int fresh = 0;
    ldap_set_option(ld_, LDAP_OPT_X_TLS_NEWCTX, &fresh);
  }
  berval cred{s_.bind_password.size(), const_cast<char*>(s_.bind_password.data())};
  rc = ldap_sasl_bind_s(ld_, s_.bind_dn.empty() ? nullptr : s_.bind_dn.c_str(), LDAP_SASL_SIMPLE,
                        &cred, nullptr, nullptr, nullptr);
  if (rc != LDAP_SUCCESS) {
    error = "bind" + (s_.bind_dn.empty() ? std::string(" (anonymous)") : " as " + s_.bind_dn) +
            " failed: " + describe(ld_, rc);
    drop();
  }
  return rc;
}

int LdapConnection::search(const std::string& base, const std::string& filter,
                           const std::vector<const char*>& attrs, int size_limit, void** result,
                           std::string& error) {
  timeval tv = to_timeval(s_.timeout_ms);
  LDAPMessage* res = nullptr;
  std::vector<char*> list;
  for (const char* a : attrs) list.push_back(const_cast<char*>(a));
  list.push_back(nullptr);
  int rc = ldap_search_ext_s(ld_, base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), list.data(), 0,
                             nullptr, nullptr, &tv, size_limit, &res);
  // A size limit hit still returns the first entries: enough to see "more than one".
  if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
    error = "search of " + base + " failed: " + describe(ld_, rc);
    if (res) ldap_msgfree(res);
    return rc;
  }
  *result = res;
  return LDAP_SUCCESS;
}

std::vector<std::string> LdapConnection::groups_of(const std::string& dn, void* entry,
                                                   std::string& error) {
  std::vector<std::string> out;
  for (const auto& g : values(ld_, static_cast<LDAPMessage*>(entry), s_.group_attribute))
    out.push_back(first_rdn_value(g));
  if (s_.group_filter.empty()) return out;
  void* res = nullptr;
  const std::string filter = replace_all(s_.group_filter, "{dn}", auth::ldap_escape(dn));
  if (search(s_.group_base_dn, filter, {s_.group_name_attribute.c_str()}, 1000, &res, error) != LDAP_SUCCESS)
    return {};
  auto* msg = static_cast<LDAPMessage*>(res);
  for (LDAPMessage* e = ldap_first_entry(ld_, msg); e; e = ldap_next_entry(ld_, e))
    for (auto& name : values(ld_, e, s_.group_name_attribute)) out.push_back(std::move(name));
  ldap_msgfree(msg);
  return out;
}

auth::DirectoryAnswer LdapConnection::lookup(const std::vector<auth::DirectoryTier>& plan) {
  using Status = auth::DirectoryAnswer::Status;
  auth::DirectoryAnswer a;
  a.server = servers_;
  std::vector<const char*> attrs{s_.user_attribute.c_str()};
  if (!s_.sid_attribute.empty()) attrs.push_back(s_.sid_attribute.c_str());
  if (!s_.group_attribute.empty()) attrs.push_back(s_.group_attribute.c_str());
  for (int attempt = 0; attempt < 2; ++attempt) {
    a.status = Status::Found;
    a.entries.clear();
    a.error.clear();
    const bool reused = ld_ != nullptr;
    if (!ld_) {
      int rc = connect(a.error);
      if (rc != LDAP_SUCCESS) {
        a.status = unreachable(rc) ? Status::Unavailable : Status::Failed;
        return a;
      }
    }
    bool retry = false;
    for (const auto& tier : plan) {
      a.filter = tier.filter;
      a.strong = tier.strong;
      void* res = nullptr;
      int rc = search(s_.base_dn, tier.filter, attrs, 10, &res, a.error);
      if (rc != LDAP_SUCCESS) {
        const bool down = unreachable(rc);
        if (down) drop();
        // A pooled connection the server closed since its last use: reconnect once.
        if (down && reused && attempt == 0) { retry = true; break; }
        a.status = down ? Status::Unavailable : Status::Failed;
        return a;
      }
      auto* msg = static_cast<LDAPMessage*>(res);
      for (LDAPMessage* e = ldap_first_entry(ld_, msg); e; e = ldap_next_entry(ld_, e)) {
        auth::DirectoryEntry entry;
        if (char* dn = ldap_get_dn(ld_, e)) {
          entry.dn = dn;
          ldap_memfree(dn);
        }
        auto users = values(ld_, e, s_.user_attribute);
        if (!users.empty()) entry.user = users.front();
        entry.sids = values(ld_, e, s_.sid_attribute);
        a.entries.push_back(std::move(entry));
      }
      if (a.entries.size() == 1) {
        std::string group_error;
        a.entries.front().groups = groups_of(a.entries.front().dn, ldap_first_entry(ld_, msg), group_error);
        if (!group_error.empty()) {
          ldap_msgfree(msg);
          // Without its groups the account could pass a deny_groups rule: refuse instead.
          a.error = group_error;
          a.status = Status::Failed;
          return a;
        }
      }
      ldap_msgfree(msg);
      if (!a.entries.empty()) return a;
    }
    if (!retry) return a;
  }
  return a;
}

}  // namespace certgate::directory
