#pragma once
// Running as a system service: systemd's readiness protocol (sd_notify; nothing happens when
// NOTIFY_SOCKET is unset) and the switch to [server] user once listeners are open.
#include <string>

namespace certgate::runtime {

void notify_ready();      // READY=1: listeners are open, requests are served
void notify_reloading();  // RELOADING=1 with MONOTONIC_USEC, before a reload is attempted
void notify_stopping();   // STOPPING=1

// Switches the process (every thread) to `user`'s uid, primary gid and supplementary groups,
// for good: afterwards no file is opened with root's rights, and root cannot be regained.
// Throws std::runtime_error saying why not (unknown user, not started as root).
void drop_privileges(const std::string& user);
// What drop_privileges would refuse that can be known before any port is opened (no such account;
// not root and not that account): the server says so and exits without having listened, so no
// client ever reaches a server about to give up. Throws std::runtime_error as drop_privileges.
void check_account(const std::string& user);

}  // namespace certgate::runtime
