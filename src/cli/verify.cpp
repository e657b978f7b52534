// `certgate verify`: the server's validation code path on a certificate file, with the
// verdict as status.substatus and one block per chain element.
#include "auth/decide.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "pki/chain_verify.hpp"
#include "pki/jwt.hpp"
#include "pki/load.hpp"
#include "pki/x509_text.hpp"
#include "runtime/snapshot.hpp"

#include <fmt/format.h>

#include <iostream>

namespace certgate::cli {
namespace {

std::string json_str(std::string_view s) { return pki::json_string(std::string(s)); }

std::shared_ptr<const pki::TrustStore> trust_from_args(const VerifyArgs& a) {
  std::vector<pki::X509Ptr> anchors, untrusted;
  std::vector<pki::X509CrlPtr> crls;
  for (const auto& f : a.cas)
    for (auto& c : pki::load_certificates(f)) anchors.push_back(std::move(c));
  for (const auto& f : a.untrusted)
    for (auto& c : pki::load_certificates(f)) untrusted.push_back(std::move(c));
  for (const auto& f : a.crls)
    for (auto& c : pki::load_crls(f)) crls.push_back(std::move(c));
  pki::TrustOptions o;
  o.revocation = a.revocation == "off" ? pki::RevocationMode::Off : pki::RevocationMode::CacheOnly;
  o.usage_check = !a.no_usage_check;
  o.policies = a.policies;
  o.explicit_policy = a.explicit_policy;
  o.inhibit_policy_mapping = a.inhibit_policy_mapping;
  o.inhibit_any_policy = a.inhibit_any_policy;
  return std::make_shared<pki::TrustStore>(std::move(anchors), std::move(untrusted),
                                           std::move(crls), std::move(o));
}

void print_text(const auth::Outcome& o, const auth::ChainReport& r) {
  const auto& row = o.row();
  if (o.allowed()) std::cout << "200.0 OK\n";
  else std::cout << row.status << "." << row.substatus << " " << o.reason << "\n";
  if (!o.allowed()) std::cout << fmt::format("  win32: {} (0x{:08X}) {}\n", row.win32, row.win32, row.token);
  for (std::size_t i = 0; i < r.elements.size(); ++i) {
    const auto& e = r.elements[i];
    std::cout << fmt::format("  [{}] subject:    {}\n", i, e.subject)
              << fmt::format("      issuer:     {}\n", e.issuer)
              << fmt::format("      serial:     {}\n", e.serial)
              << fmt::format("      valid:      {} .. {}\n", pki::utc_text(e.not_before),
                             pki::utc_text(e.not_after))
              << fmt::format("      revocation: {}\n", e.revocation);
    if (!e.problem.empty()) std::cout << fmt::format("      problem:    {}\n", e.problem);
  }
}

void print_json(const auth::Outcome& o, const auth::ChainReport& r) {
  const auto& row = o.row();
  std::cout << fmt::format(R"({{"status":{},"substatus":{},"win32":{},"token":{},"accepted":{},"reason":{},"chain":[)",
                           row.status, row.substatus, row.win32, json_str(row.token),
                           o.allowed() ? "true" : "false", json_str(o.reason));
  for (std::size_t i = 0; i < r.elements.size(); ++i) {
    const auto& e = r.elements[i];
    std::cout << (i ? "," : "")
              << fmt::format(R"({{"subject":{},"issuer":{},"serial":{},"not_before":{},"not_after":{},"revocation":{},"problem":{}}})",
                             json_str(e.subject), json_str(e.issuer), json_str(e.serial),
                             json_str(pki::utc_text(e.not_before)), json_str(pki::utc_text(e.not_after)),
                             json_str(e.revocation), json_str(e.problem));
  }
  std::cout << "]}\n";
}

}  // namespace

int verify(const VerifyArgs& a) {
  std::shared_ptr<const pki::TrustStore> trust;
  std::shared_ptr<const runtime::Snapshot> snap;
  try {
    if (!a.config_file.empty()) {
      snap = runtime::compile(config::load(a.config_file), 1);
      const runtime::SiteRuntime* site = nullptr;
      for (const auto& s : snap->sites)
        if (s.cfg.name == a.site) site = &s;
      if (site == nullptr) {
        std::cerr << "certgate verify: no site named \"" << a.site << "\" in " << a.config_file << "\n";
        return kUsage;
      }
      if (!site->trust) {
        std::cerr << "certgate verify: site \"" << a.site << "\" trusts no issuer (client_certificates.trusted_cas)\n";
        return kUsage;
      }
      trust = site->trust;
    } else {
      if (a.cas.empty()) {
        std::cerr << "certgate verify: give at least one --ca FILE, or -c FILE --site NAME\n";
        return kUsage;
      }
      trust = trust_from_args(a);
    }
  } catch (const std::exception& e) {
    std::cerr << "certgate verify: " << e.what() << "\n";
    return kUsage;
  }

  std::string bytes;
  try {
    bytes = pki::read_file(a.cert);
  } catch (const pki::LoadError& e) {
    std::cerr << "certgate verify: " << e.what() << "\n";
    return kUsage;
  }
  auto certs = pki::parse_certificates(bytes);
  auth::ChainReport report;
  if (certs.empty()) {
    pki::openssl_errors();  // discard the parser's complaints: the verdict says it plainly
    report.fault = auth::ChainFault::Malformed;
    report.reason = a.cert + " holds no readable certificate (neither PEM nor DER)";
  } else {
    pki::X509StackView presented(sk_X509_new_null());
    for (std::size_t i = 1; i < certs.size(); ++i) sk_X509_push(presented.get(), certs[i].get());
    report = pki::verify_chain(*trust, certs[0].get(), presented.get(), a.at, pki::Detail::Full);
  }
  // The same stage the server runs (auth/stage_chain.cpp), on a location that negotiates.
  auth::LocationPolicy policy{auth::SslFlags{auth::kSslNegotiateCert}, true};
  auth::RequestEvidence ev{true, 256, true, true, &report};
  auth::Outcome outcome = auth::stage_chain(policy, ev).value_or(auth::Outcome{});
  if (a.json) print_json(outcome, report);
  else print_text(outcome, report);
  return outcome.allowed() ? kOk : kRejected;
}

}  // namespace certgate::cli
