// What certificate mapping costs per request at scale (README "Mapping cost"):
// 100,000 one-to-one entries and 10,000 many-to-one mappings.
#include "auth/decide.hpp"
#include "auth/mapping.hpp"

#include <benchmark/benchmark.h>

#include <random>

namespace {

using namespace certgate::auth;

std::string hex64(std::mt19937_64& rng) {
  static const char* d = "0123456789abcdef";
  std::string s(64, '0');
  for (auto& c : s) c = d[rng() & 15];
  return s;
}

CertFacts client(std::mt19937_64& rng, int ou) {
  CertFacts f;
  f.der_sha256 = hex64(rng);
  f.spki_sha256 = hex64(rng);
  f.serial_hex = "1A2B3C";
  f.issuer_dn = "CN=Issuing CA 7, O=Corp, C=US";
  f.subject_dn = "CN=someone";
  f.subject = {{"C", "US"}, {"O", "Corp"}, {"OU", "Dept " + std::to_string(ou)}, {"CN", "someone"},
               {"E", "someone@corp.example"}};
  f.issuer = {{"C", "US"}, {"O", "Corp"}, {"CN", "Issuing CA 7"}};
  return f;
}

struct Site {
  SiteAuth auth;
  std::vector<CertFacts> mapped, unmapped;
};

// `exact_share`: how many of the many-to-one mappings have at least one rule without '*'.
Site build(std::size_t one_to_one, std::size_t many_to_one, double exact_share) {
  std::mt19937_64 rng(42);
  Site s;
  s.auth.mapping_enabled = true;
  for (std::size_t i = 0; i < one_to_one; ++i) {
    CertFacts f = client(rng, static_cast<int>(i));
    s.auth.one_to_one.add({"user" + std::to_string(i), OneToOneKey::Certificate, f.der_sha256, true,
                           "o2o[" + std::to_string(i) + "]"});
    if (i % (one_to_one / 100 + 1) == 0) s.mapped.push_back(f);
  }
  for (std::size_t i = 0; i < many_to_one; ++i) {
    // rules: Issuer O = "Corp" (shared by all) AND Subject OU = <pattern of this mapping>
    bool exact = static_cast<double>(i) < exact_share * static_cast<double>(many_to_one);
    std::string ou = exact ? "Dept " + std::to_string(1000000 + i) : "Dept " + std::to_string(1000000 + i) + "*";
    if (exact_share < 0) ou = "*" + std::to_string(1000000 + i);  // nothing literal to index by
    s.auth.many_to_one.add({"m" + std::to_string(i), "", "group" + std::to_string(i), true, true,
                            {{Field::Issuer, "O", "Corp", Wildcard("Corp", true)},
                             {Field::Subject, "OU", ou, Wildcard(ou, false)}},
                            "m2o"});
  }
  s.auth.many_to_one.seal();
  for (int i = 0; i < 100; ++i) s.unmapped.push_back(client(rng, 5000000 + i));
  return s;
}

void BM_OneToOneHit(benchmark::State& state) {
  static Site s = build(static_cast<std::size_t>(state.range(0)), 0, 1.0);
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(map_certificate(s.auth, s.mapped[i++ % s.mapped.size()]));
}
BENCHMARK(BM_OneToOneHit)->Arg(100000);

void BM_ManyToOneMiss(benchmark::State& state) {
  // Worst case: the certificate matches nothing, so every candidate is tried.
  Site s = build(100000, static_cast<std::size_t>(state.range(0)), static_cast<double>(state.range(1)) / 100);
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(map_certificate(s.auth, s.unmapped[i++ % s.unmapped.size()]));
  state.SetLabel(state.range(1) < 0 ? "every rule starts with '*': all scanned"
                                    : std::to_string(state.range(1)) + "% exact rules, the rest 'prefix*'");
}
BENCHMARK(BM_ManyToOneMiss)->Args({10000, 100})->Args({10000, 90})->Args({10000, 0})->Args({10000, -1});

void BM_DecideFull(benchmark::State& state) {
  static Site s = build(100000, 10000, 1.0);
  static const ChainReport good{ChainFault::None, "", {}};
  LocationPolicy p{SslFlags{kSsl | kSslNegotiateCert | kSslRequireCert}, true, false, {}, &s.auth};
  std::size_t i = 0;
  for (auto _ : state) {
    RequestEvidence ev{true, 256, true, true, &good, &s.mapped[i++ % s.mapped.size()]};
    benchmark::DoNotOptimize(decide(p, ev));
  }
}
BENCHMARK(BM_DecideFull);

}  // namespace

BENCHMARK_MAIN();
