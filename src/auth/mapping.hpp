#pragma once
// IIS iisClientCertificateMappingAuthentication, compiled once per configuration generation
// (spec: behaviour.md §3). Lookups do not grow with the number of one-to-one entries, and
// many-to-one mappings are indexed by one exact rule each, so thousands stay cheap.
#include "auth/cert_facts.hpp"
#include "auth/wildcard.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace certgate::auth {

// What a one-to-one entry compares. `Certificate` is IIS's exact DER; the others survive a
// certificate renewal (README "One-to-one match keys" explains the trade-offs).
enum class OneToOneKey : std::uint8_t { Certificate, PublicKey, IssuerSerial, Ski, Upn, Email };

struct OneToOneEntry {
  std::string user;
  OneToOneKey key = OneToOneKey::Certificate;
  std::string value;  // normalized: see one_to_one_value()
  bool enabled = true;
  std::string origin;  // "sites[0].mapping.one_to_one[3]" for explain and errors
};

// The normalized lookup value of `facts` for `key` ("" when the certificate has none).
std::vector<std::string> one_to_one_values(OneToOneKey key, const CertFacts& facts);
// Normalizes an administrator-written value the same way ("" when malformed).
std::string normalize_one_to_one_value(OneToOneKey key, std::string_view text);
std::string_view to_string(OneToOneKey key);

class OneToOneIndex {
 public:
  // Fails (returns the origin of the earlier entry) when two enabled entries claim one value.
  std::optional<std::string> add(OneToOneEntry entry);
  // Strongest key first: Certificate, PublicKey, IssuerSerial, Ski, Upn, Email.
  const OneToOneEntry* find(const CertFacts& facts) const;
  const std::vector<OneToOneEntry>& entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<OneToOneEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;  // key tag + value → entry
  std::uint8_t keys_in_use_ = 0;                        // bit per OneToOneKey
};

enum class Field : std::uint8_t { Subject, Issuer };

struct Rule {
  Field field = Field::Subject;
  std::string label;  // canonical (CN, O, OU, S, E, ...)
  std::string pattern_text;
  Wildcard pattern;
};

struct ManyToOneMapping {
  std::string name;
  std::string description;
  std::string user;
  bool allow = true;  // permission: Allow or Deny
  bool enabled = true;
  std::vector<Rule> rules;
  std::string origin;
};

// How one rule fared against a certificate, for `certgate explain`.
struct RuleTrace {
  const Rule* rule;
  bool matched;
  std::vector<std::string> values;  // the certificate's values of that field and label
};
struct MappingTrace {
  const ManyToOneMapping* mapping;
  bool matched;
  std::string why;  // "disabled", "no rules", "rule 2 did not match", "all 3 rules matched"
  std::vector<RuleTrace> rules;
};

class ManyToOneTable {
 public:
  void add(ManyToOneMapping m);
  // Re-indexes every mapping under its most selective rule: the least common exact value,
  // else the longest literal prefix of a wildcard. Call once all mappings are added; before
  // that, lookups are still correct, only less selective.
  void seal();
  // The first enabled mapping, in configuration order, whose rules all match (nullptr if none).
  const ManyToOneMapping* find(const CertFacts& facts) const;
  // The same decision, recording every mapping up to and including the one that decided.
  const ManyToOneMapping* find_traced(const CertFacts& facts, std::vector<MappingTrace>& out) const;
  const std::vector<ManyToOneMapping>& mappings() const { return mappings_; }

 private:
  bool matches(const ManyToOneMapping& m, const CertFacts& facts) const;
  void index(std::size_t pos, const std::unordered_map<std::string, std::size_t>* counts);
  std::vector<ManyToOneMapping> mappings_;
  // A mapping matches only if every rule does, so one rule is enough to find candidates:
  // each enabled mapping sits under one exact value, or one literal prefix, or is scanned.
  std::unordered_map<std::string, std::vector<std::size_t>> exact_;
  std::unordered_map<std::string, std::vector<std::size_t>> prefix_;
  std::vector<std::size_t> prefix_lengths_;  // the distinct prefix lengths in prefix_
  std::vector<std::size_t> scan_;
};

// Whether a rule matches: any value of the field's label matches (absent label: no match).
bool rule_matches(const Rule& r, const CertFacts& facts);

}  // namespace certgate::auth
