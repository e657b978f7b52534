#include "runtime/service.hpp"

#include <systemd/sd-daemon.h>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <vector>

namespace certgate::runtime {

// unset_environment = 0: the socket is needed again for every reload and at stop.
void notify_ready() { sd_notify(0, "READY=1"); }

void notify_reloading() {
  // systemd 253+ (Type=notify-reload) wants the monotonic time with RELOADING=1, to tell this
  // reload's READY=1 from an earlier one's; older versions ignore it.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const unsigned long long usec =
      static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL + static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

void notify_stopping() { sd_notify(0, "STOPPING=1"); }

namespace {
// The account, or why it cannot be switched to; null when the process already runs as it.
const passwd* account(const std::string& user, passwd& pw, std::vector<char>& buf) {
  passwd* found = nullptr;
  const int err = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr)
    throw std::runtime_error("[server] user = \"" + user + "\": " +
                             (err ? std::string(std::strerror(err)) : "no such account"));
  if (::geteuid() != 0) {
    if (::geteuid() == found->pw_uid) return nullptr;  // already that account (systemd's User=)
    throw std::runtime_error("[server] user = \"" + user + "\": switching accounts needs root; "
                             "start certgate as root or as that account");
  }
  return found;
}
}  // namespace

void check_account(const std::string& user) {
  std::vector<char> buf(16384);
  passwd pw{};
  account(user, pw, buf);
}

void drop_privileges(const std::string& user) {
  std::vector<char> buf(16384);
  passwd pw{};
  const passwd* found = account(user, pw, buf);
  if (!found) return;
  // The supplementary groups first (they need root), so that e.g. ssl-cert membership keeps
  // private keys readable on reload; then the group, then the user.
  if (::initgroups(found->pw_name, found->pw_gid) != 0 || ::setgid(found->pw_gid) != 0 ||
      ::setuid(found->pw_uid) != 0)
    throw std::runtime_error("[server] user = \"" + user + "\": cannot switch: " + std::strerror(errno));
  // glibc applies setuid to every thread; make sure it took and cannot be undone.
  if (::setuid(0) == 0 || ::geteuid() == 0)
    throw std::runtime_error("[server] user = \"" + user + "\": root could be regained after the switch");
}

}  // namespace certgate::runtime
