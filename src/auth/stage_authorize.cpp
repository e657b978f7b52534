#include "auth/decide.hpp"

#include <algorithm>

namespace certgate::auth {
namespace {

bool names(const std::vector<std::string>& list, std::string_view user, bool anonymous) {
  return std::any_of(list.begin(), list.end(), [&](const std::string& n) {
    if (n == "*") return true;  // IIS: all users, anonymous included
    if (n == "?") return anonymous;
    return !anonymous && fold(n) == fold(user);
  });
}

bool shares(const std::vector<std::string>& list, const std::vector<std::string>* groups) {
  if (groups == nullptr) return false;
  return std::any_of(list.begin(), list.end(), [&](const std::string& g) {
    return std::any_of(groups->begin(), groups->end(),
                       [&](const std::string& mine) { return fold(mine) == fold(g); });
  });
}

}  // namespace

const std::vector<std::string>* SiteAuth::groups_of(std::string_view user) const {
  auto it = groups.find(fold(user));
  return it == groups.end() ? nullptr : &it->second;
}

// spec: behaviour.md §1 step 8, as issue 14 item 7 settles it with IIS's log: a logged-on user
// (certificate mapping, Basic, or both) refused by a rule gets 401.3, "unauthorized due to ACL
// on resource" (win32 5); a request that offered no credentials this location could log on
// with is the anonymous user and gets 401.2, so a browser can still offer some
// (docs/configuration.md, "Authorization").
std::optional<Outcome> stage_authorize(const LocationPolicy& policy, const Outcome& who) {
  const AccessRules& a = policy.access;
  if (a.empty()) return std::nullopt;
  const bool anonymous = who.user.empty();
  const auto* groups = (policy.site && !anonymous) ? policy.site->groups_of(who.user) : nullptr;
  // Groups come from the site's groups_file and from the mapper (directory memberOf).
  const auto* found = anonymous ? nullptr : &who.groups;
  const bool denied = names(a.deny_users, who.user, anonymous) || shares(a.deny_groups, groups) ||
                      shares(a.deny_groups, found);
  const bool has_allow = !a.allow_users.empty() || !a.allow_groups.empty();
  const bool allowed = !has_allow || names(a.allow_users, who.user, anonymous) ||
                       shares(a.allow_groups, groups) || shares(a.allow_groups, found);
  if (!denied && allowed) return std::nullopt;
  if (anonymous)
    return Outcome{.verdict = Verdict::Deny401_2_NoMethod,
                   .reason = "this location is open to authenticated users only",
                   .challenge = policy.site && policy.site->basic_enabled};
  // Only a Basic user can answer a challenge with other credentials: a mapped certificate is
  // tried before Basic, so for its user a challenge could not change the answer.
  return Outcome{.verdict = Verdict::Deny401_3_AccessDenied,
                 .reason = "user '" + who.user + "' is " +
                           (denied ? "denied" : "not allowed") +
                           " by the authorization rules of this location",
                 .user = who.user, .auth_method = who.auth_method,
                 .challenge = who.auth_method == "Basic"};
}

}  // namespace certgate::auth
