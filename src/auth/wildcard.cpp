#include "auth/wildcard.hpp"

namespace certgate::auth {

std::string fold(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

Wildcard::Wildcard(std::string_view pattern, bool case_sensitive)
    : case_sensitive_(case_sensitive) {
  std::string p = case_sensitive ? std::string(pattern) : fold(pattern);
  exact_ = p.find('*') == std::string::npos;
  leading_star_ = !p.empty() && p.front() == '*';
  trailing_star_ = !p.empty() && p.back() == '*';
  std::size_t pos = 0;
  while (true) {
    auto star = p.find('*', pos);
    std::string part = p.substr(pos, star == std::string::npos ? std::string::npos : star - pos);
    if (!part.empty() || exact_) parts_.push_back(std::move(part));
    if (star == std::string::npos) break;
    pos = star + 1;
  }
}

bool Wildcard::matches(std::string_view raw) const {
  std::string folded;
  std::string_view v = raw;
  if (!case_sensitive_) {
    folded = fold(raw);
    v = folded;
  }
  if (exact_) return v == parts_.front();
  if (parts_.empty()) return true;  // "*", "**": anything
  std::size_t pos = 0;
  std::size_t first = 0, last = parts_.size();
  if (!leading_star_) {  // the first literal run must be a prefix
    if (v.substr(0, parts_[0].size()) != parts_[0]) return false;
    pos = parts_[0].size();
    first = 1;
  }
  if (!trailing_star_) {  // the last literal run must be a suffix, after what came before
    const std::string& tail = parts_.back();
    if (v.size() < pos + tail.size() || v.substr(v.size() - tail.size()) != tail) return false;
    v = v.substr(0, v.size() - tail.size());
    --last;
  }
  for (std::size_t i = first; i < last; ++i) {  // middle runs, leftmost each: greedy is exact
    auto at = v.find(parts_[i], pos);
    if (at == std::string_view::npos) return false;
    pos = at + parts_[i].size();
  }
  return pos <= v.size();
}

}  // namespace certgate::auth
