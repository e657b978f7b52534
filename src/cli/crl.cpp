// `certgate crl status|fetch -c FILE`: the revocation cache of a configuration (its cache_dir):
// which CRLs are held, for whom, until when, and how the last fetch went; `fetch` refreshes them.
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "pki/x509_text.hpp"
#include "revocation/store.hpp"

#include <fmt/format.h>

#include <iostream>

namespace certgate::cli {
namespace {

void print(const revocation::Store& store) {
  const auto crls = store.crls();
  if (crls.empty()) {
    std::cout << "no CRL in the cache\n";
    return;
  }
  const std::int64_t now = store.clock().unix_seconds();
  for (const auto& [url, e] : crls) {
    auto st = store.state("crl " + url);
    std::cout << url << "\n"
              << fmt::format("  issuer:      {}\n", e->issuer_name)
              << fmt::format("  thisUpdate:  {}\n", pki::utc_text(e->this_update))
              << fmt::format("  nextUpdate:  {}{}\n", pki::utc_text(e->next_update),
                             e->next_update && e->next_update <= now ? " (expired)" : "")
              << fmt::format("  fetched:     {} ({} bytes)\n", pki::utc_text(e->fetched_at), e->bytes);
    if (st && st->last_attempt && !st->last_error.empty())
      std::cout << fmt::format("  last fetch:  {} failed: {}\n", pki::utc_text(st->last_attempt), st->last_error);
    else
      std::cout << fmt::format("  last fetch:  {} ok\n", pki::utc_text(st && st->last_attempt ? st->last_attempt : e->fetched_at));
  }
}

}  // namespace

int crl(const CrlArgs& a) {
  config::Config cfg;
  try {
    cfg = config::load(a.config_file);
  } catch (const std::exception& e) {
    std::cerr << "certgate crl: " << e.what() << "\n";
    return kUsage;
  }
  if (cfg.server.cache_dir.empty()) {
    std::cerr << "certgate crl: [server] cache_dir is \"\": this configuration keeps no revocation cache\n";
    return kUsage;
  }
  revocation::Store store(revocation::store_settings(cfg.server));
  if (a.action == "fetch") {
    int failed = 0;
    store.set_recorder([&](const revocation::FetchEvent& e) {
      std::cout << fmt::format("{} {}: {} ({} ms)\n", e.ok ? "fetched" : "FAILED", e.url, e.result, e.elapsed_ms);
      failed += e.ok ? 0 : 1;
    });
    store.refresh_all_and_wait(a.timeout_ms);
    store.set_recorder(nullptr);
    std::cout << "\n";
    print(store);
    return failed ? kRejected : kOk;
  }
  print(store);
  return kOk;
}

}  // namespace certgate::cli
