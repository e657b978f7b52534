#pragma once
// One connection to the account directory (libldap), used by one thread at a time: the
// directory service's workers each own one, `certgate explain` makes its own. Synchronous
// calls bounded by the configured timeouts; it never runs on a request loop.
#include "auth/directory.hpp"
#include "config/config.hpp"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

typedef struct ldap LDAP;
struct ldap_conncb;

namespace certgate::directory {

class LdapConnection {
 public:
  explicit LdapConnection(const config::DirectoryMapping& settings);
  ~LdapConnection();
  LdapConnection(const LdapConnection&) = delete;
  LdapConnection& operator=(const LdapConnection&) = delete;

  // Runs the plan's searches in order and stops at the first tier that finds an account
  // (then reads that account's groups). Connects and binds on first use; a connection the
  // server dropped is re-established once per call, so a restarted server is picked up.
  auth::DirectoryAnswer lookup(const std::vector<auth::DirectoryTier>& plan);

  // The servers this connection tries, as configured ("ldap://a ldap://b").
  const std::string& servers() const { return servers_; }

  // From another thread, when stopping: a bind or search in progress fails at once (its socket
  // is shut down) and no connection is made again, so a directory that never answers cannot
  // hold the thread for the length of the timeouts.
  void interrupt();

 private:
  const config::DirectoryMapping& s_;
  std::string servers_;
  LDAP* ld_ = nullptr;
  std::unique_ptr<ldap_conncb> callbacks_;  // tells us the socket libldap connected
  std::mutex socket_mu_;
  int socket_ = -1;  // while libldap holds a connected socket
  bool interrupted_ = false;

  int connect(std::string& error);  // LDAP result code
  void drop();
  int search(const std::string& base, const std::string& filter,
             const std::vector<const char*>& attrs, int size_limit, void** result,
             std::string& error);
  std::vector<std::string> groups_of(const std::string& dn, void* entry, std::string& error);
};

// The first RDN's value of a DN: "CN=Web Admins,OU=Groups,DC=corp" → "Web Admins".
std::string first_rdn_value(const std::string& dn);

}  // namespace certgate::directory
