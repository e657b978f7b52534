#pragma once
// The match grammar of IIS many-to-one rules: `*` matches any run of characters (also none);
// every other character is literal; without `*` the whole value must be equal.
#include <string>
#include <string_view>
#include <vector>

namespace certgate::auth {

class Wildcard {
 public:
  Wildcard() = default;
  Wildcard(std::string_view pattern, bool case_sensitive);

  bool matches(std::string_view value) const;
  bool is_exact() const { return exact_; }
  // The literal text before the first '*' ("" when the pattern starts with '*').
  std::string_view literal_prefix() const {
    return leading_star_ || parts_.empty() ? std::string_view() : std::string_view(parts_.front());
  }
  // For an exact pattern: the value to index by (lower-cased when case-insensitive).
  const std::string& exact_key() const { return parts_.front(); }
  bool case_sensitive() const { return case_sensitive_; }

 private:
  std::vector<std::string> parts_;  // literal runs between stars (lower-cased if insensitive)
  bool leading_star_ = false;
  bool trailing_star_ = false;
  bool exact_ = true;
  bool case_sensitive_ = true;
};

// ASCII case folding: certificate attribute values compare the way IIS compares them for the
// Latin letters; other characters must match exactly.
std::string fold(std::string_view s);

}  // namespace certgate::auth
