#include "auth/mapping.hpp"

#include <algorithm>

namespace certgate::auth {
namespace {

std::string tag(OneToOneKey k) { return std::string(1, static_cast<char>('0' + static_cast<int>(k))); }

std::string hex_only(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ':' || c == ' ' || c == '-') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return "";
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string strip_leading_zeros(std::string hex) {
  auto nz = hex.find_first_not_of('0');
  return nz == std::string::npos ? "0" : hex.substr(nz);
}

const std::vector<NameAttr>& attrs(Field f, const CertFacts& facts) {
  return f == Field::Subject ? facts.subject : facts.issuer;
}

// Index key of an exact rule: field, label, value (folded when the rule is case-insensitive).
std::string exact_key(Field f, std::string_view label, bool cs, std::string_view value) {
  std::string k;
  k += f == Field::Subject ? 'S' : 'I';
  k += cs ? 'c' : 'i';
  k += label;
  k += '\0';
  k += value;
  return k;
}

}  // namespace

std::string canonical_label(std::string_view w) {
  std::string u;
  for (char c : w) u += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (u == "CN" || u == "O" || u == "OU" || u == "L" || u == "C" || u == "E" || u == "DC" ||
      u == "GN" || u == "SN" || u == "T" || u == "I" || u == "S")
    return u;
  if (u == "ST") return "S";
  if (u == "EMAILADDRESS" || u == "EMAIL") return "E";
  if (u == "TITLE") return "T";
  if (u == "INITIALS") return "I";
  if (u == "SERIALNUMBER") return "SERIALNUMBER";
  if (u == "GIVENNAME") return "GN";
  if (u == "SURNAME") return "SN";
  return "";
}

std::string_view to_string(OneToOneKey k) {
  switch (k) {
    case OneToOneKey::Certificate: return "certificate";
    case OneToOneKey::PublicKey: return "public-key";
    case OneToOneKey::IssuerSerial: return "issuer-serial";
    case OneToOneKey::Ski: return "ski";
    case OneToOneKey::Upn: return "upn";
    case OneToOneKey::Email: return "email";
  }
  return "?";
}

std::string normalize_one_to_one_value(OneToOneKey k, std::string_view text) {
  switch (k) {
    case OneToOneKey::Certificate:
    case OneToOneKey::PublicKey: {
      std::string h = hex_only(text);
      return h.size() == 64 ? h : "";
    }
    case OneToOneKey::Ski: return hex_only(text);
    case OneToOneKey::IssuerSerial: {
      // "SERIAL;ISSUER DN": serial in hex, then the issuer as certgate prints it.
      auto semi = text.find(';');
      if (semi == std::string_view::npos) return "";
      std::string serial = hex_only(text.substr(0, semi));
      std::string_view issuer = text.substr(semi + 1);
      while (!issuer.empty() && issuer.front() == ' ') issuer.remove_prefix(1);
      if (serial.empty() || issuer.empty()) return "";
      return strip_leading_zeros(serial) + ";" + fold(issuer);
    }
    case OneToOneKey::Upn:
    case OneToOneKey::Email: return text.empty() ? "" : fold(text);
  }
  return "";
}

std::vector<std::string> one_to_one_values(OneToOneKey k, const CertFacts& f) {
  switch (k) {
    case OneToOneKey::Certificate: return {f.der_sha256};
    case OneToOneKey::PublicKey: return {f.spki_sha256};
    case OneToOneKey::IssuerSerial:
      return {strip_leading_zeros(fold(f.serial_hex)) + ";" + fold(f.issuer_dn)};
    case OneToOneKey::Ski:
      if (f.ski_hex.empty()) return {};
      return {f.ski_hex};
    case OneToOneKey::Upn: {
      std::vector<std::string> out;
      for (const auto& u : f.upns) out.push_back(fold(u));
      return out;
    }
    case OneToOneKey::Email: {
      std::vector<std::string> out;
      for (const auto& e : f.emails) out.push_back(fold(e));
      return out;
    }
  }
  return {};
}

std::optional<std::string> OneToOneIndex::add(OneToOneEntry e) {
  const std::size_t pos = entries_.size();
  if (e.enabled) {
    auto [it, fresh] = index_.emplace(tag(e.key) + e.value, pos);
    if (!fresh) return entries_[it->second].origin;
    keys_in_use_ |= static_cast<std::uint8_t>(1u << static_cast<int>(e.key));
  }
  entries_.push_back(std::move(e));
  return std::nullopt;
}

const OneToOneEntry* OneToOneIndex::find(const CertFacts& facts) const {
  for (int k = 0; k <= static_cast<int>(OneToOneKey::Email); ++k) {
    if ((keys_in_use_ & (1u << k)) == 0) continue;
    const auto key = static_cast<OneToOneKey>(k);
    for (const auto& v : one_to_one_values(key, facts)) {
      auto it = index_.find(tag(key) + v);
      if (it != index_.end()) return &entries_[it->second];
    }
  }
  return nullptr;
}

bool rule_matches(const Rule& r, const CertFacts& facts) {
  for (const auto& a : attrs(r.field, facts))
    if (a.label == r.label && r.pattern.matches(a.value)) return true;
  return false;
}

void ManyToOneTable::add(ManyToOneMapping m) {
  mappings_.push_back(std::move(m));
  index(mappings_.size() - 1, nullptr);
}

namespace {
// A rule's anchor key: its exact value, or its literal prefix ("" when it has neither).
std::string anchor_key(const Rule& r) {
  if (r.pattern.is_exact())
    return "=" + exact_key(r.field, r.label, r.pattern.case_sensitive(), r.pattern.exact_key());
  if (r.pattern.literal_prefix().empty()) return "";
  return "^" + exact_key(r.field, r.label, r.pattern.case_sensitive(), r.pattern.literal_prefix());
}
}  // namespace

void ManyToOneTable::index(std::size_t pos, const std::unordered_map<std::string, std::size_t>* counts) {
  const ManyToOneMapping& m = mappings_[pos];
  if (!m.enabled || m.rules.empty()) return;  // never matches: not a candidate at all
  // The anchor is the rule shared by the fewest mappings (exact values before prefixes when
  // no counts are known yet).
  std::string best;
  std::size_t best_count = 0;
  for (const auto& r : m.rules) {
    std::string key = anchor_key(r);
    if (key.empty()) continue;
    std::size_t n = counts ? counts->at(key) : (key[0] == '=' ? 0 : 1);
    if (best.empty() || n < best_count) best = std::move(key), best_count = n;
  }
  if (best.empty()) {
    scan_.push_back(pos);
  } else if (best[0] == '=') {
    exact_[best.substr(1)].push_back(pos);
  } else {
    std::string key = best.substr(1);
    const std::size_t len = key.size() - (key.find('\0') + 1);  // the prefix after the label
    prefix_[std::move(key)].push_back(pos);
    if (std::find(prefix_lengths_.begin(), prefix_lengths_.end(), len) == prefix_lengths_.end())
      prefix_lengths_.push_back(len);
  }
}

void ManyToOneTable::seal() {
  std::unordered_map<std::string, std::size_t> counts;
  for (const auto& m : mappings_)
    if (m.enabled)
      for (const auto& r : m.rules)
        if (auto key = anchor_key(r); !key.empty()) ++counts[key];
  exact_.clear();
  prefix_.clear();
  prefix_lengths_.clear();
  scan_.clear();
  for (std::size_t i = 0; i < mappings_.size(); ++i) index(i, &counts);
}

bool ManyToOneTable::matches(const ManyToOneMapping& m, const CertFacts& facts) const {
  if (!m.enabled || m.rules.empty()) return false;  // a mapping with no rules never matches
  for (const auto& r : m.rules)
    if (!rule_matches(r, facts)) return false;
  return true;
}

const ManyToOneMapping* ManyToOneTable::find(const CertFacts& facts) const {
  // Candidates: every scanned mapping, plus indexed mappings whose exact rule value occurs in
  // the certificate. Evaluated in configuration order: the first full match decides.
  std::vector<std::size_t> candidates = scan_;
  if (!exact_.empty() || !prefix_.empty()) {
    for (Field f : {Field::Subject, Field::Issuer}) {
      for (const auto& a : attrs(f, facts)) {
        for (bool cs : {true, false}) {
          const std::string value = cs ? a.value : fold(a.value);
          auto add = [&](const auto& map, std::string_view v) {
            auto it = map.find(exact_key(f, a.label, cs, v));
            if (it != map.end()) candidates.insert(candidates.end(), it->second.begin(), it->second.end());
          };
          if (!exact_.empty()) add(exact_, value);
          for (std::size_t len : prefix_lengths_)
            if (len <= value.size()) add(prefix_, std::string_view(value).substr(0, len));
        }
      }
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  }
  for (std::size_t i : candidates)
    if (matches(mappings_[i], facts)) return &mappings_[i];
  return nullptr;
}

const ManyToOneMapping* ManyToOneTable::find_traced(const CertFacts& facts,
                                                    std::vector<MappingTrace>& out) const {
  for (const auto& m : mappings_) {
    MappingTrace t{&m, false, "", {}};
    if (!m.enabled) {
      t.why = "disabled";
    } else if (m.rules.empty()) {
      t.why = "has no rules (a mapping without rules never matches)";
    } else {
      std::size_t failed = 0;
      for (std::size_t i = 0; i < m.rules.size(); ++i) {
        const Rule& r = m.rules[i];
        RuleTrace rt{&r, rule_matches(r, facts), {}};
        for (const auto& a : attrs(r.field, facts))
          if (a.label == r.label) rt.values.push_back(a.value);
        if (!rt.matched && failed == 0) failed = i + 1;
        t.rules.push_back(std::move(rt));
      }
      t.matched = failed == 0;
      t.why = t.matched ? "all " + std::to_string(m.rules.size()) + " rule(s) matched"
                        : "rule " + std::to_string(failed) + " did not match";
    }
    out.push_back(std::move(t));
    if (out.back().matched) return &m;
  }
  return nullptr;
}

}  // namespace certgate::auth
