// The /metrics exposition of the store: fetch counters by kind (never per URL), queue and
// table sizes, and the ages of the most recently used cached CRLs (a bounded label set). What
// it needs is copied under the store's lock; sorting and formatting happen after.
#include "revocation/store_impl.hpp"

#include <algorithm>
#include <sstream>

namespace certgate::revocation {

std::string metrics_label(std::string_view v) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

std::string Store::metrics() const {
  const std::int64_t now = impl_->clock.unix_seconds();
  struct CrlRow {
    std::int64_t used, fetched_at, next_update;
    std::string url;
  };
  std::vector<CrlRow> rows;
  std::array<std::uint64_t, 3> ok_total{}, error_total{};
  std::array<std::int64_t, 3> elapsed_ms_total{};
  std::uint64_t rejected_total = 0;
  std::size_t active = 0, queued = 0, tracked = 0, n_crls = 0, n_ocsps = 0, n_issuers = 0, crl_bytes = 0;
  {
    std::lock_guard lock(impl_->mu);
    rows.reserve(impl_->crls.size());
    for (const auto& [url, e] : impl_->crls) rows.push_back({impl_->last_used(url), e->fetched_at, e->next_update, url});
    ok_total = impl_->ok_total;
    error_total = impl_->error_total;
    elapsed_ms_total = impl_->elapsed_ms_total;
    rejected_total = impl_->rejected_total;
    active = impl_->active;
    queued = impl_->queued.size() + impl_->queued_aia.size();
    tracked = impl_->states.size();
    n_crls = impl_->crls.size();
    n_ocsps = impl_->ocsps.size();
    n_issuers = impl_->issuers.size();
    crl_bytes = impl_->crl_bytes;
  }
  std::ostringstream out;
  static constexpr Kind kKinds[] = {Kind::Crl, Kind::Ocsp, Kind::CaIssuers};
  out << "# HELP certgate_revocation_fetches_total Revocation fetches (CRL, OCSP, AIA) by kind and result.\n"
         "# TYPE certgate_revocation_fetches_total counter\n";
  for (Kind k : kKinds) {
    const auto i = static_cast<std::size_t>(k);
    out << "certgate_revocation_fetches_total{kind=\"" << to_string(k) << "\",result=\"ok\"} " << ok_total[i] << "\n"
        << "certgate_revocation_fetches_total{kind=\"" << to_string(k) << "\",result=\"error\"} " << error_total[i] << "\n";
  }
  out << "# HELP certgate_revocation_fetch_seconds_total Time spent in revocation fetches, by kind.\n"
         "# TYPE certgate_revocation_fetch_seconds_total counter\n";
  for (Kind k : kKinds)
    out << "certgate_revocation_fetch_seconds_total{kind=\"" << to_string(k) << "\"} "
        << static_cast<double>(elapsed_ms_total[static_cast<std::size_t>(k)]) / 1000.0 << "\n";
  out << "# HELP certgate_revocation_fetches_rejected_total Fetches refused before they started (too many waiting, no memory).\n"
         "# TYPE certgate_revocation_fetches_rejected_total counter\n"
      << "certgate_revocation_fetches_rejected_total " << rejected_total << "\n"
      << "# HELP certgate_revocation_fetches_in_flight Fetches running now.\n"
         "# TYPE certgate_revocation_fetches_in_flight gauge\n"
      << "certgate_revocation_fetches_in_flight " << active << "\n"
      << "# HELP certgate_revocation_fetches_queued Fetches waiting for a free slot.\n"
         "# TYPE certgate_revocation_fetches_queued gauge\n"
      << "certgate_revocation_fetches_queued " << queued << "\n"
      << "# HELP certgate_revocation_tracked_urls Fetch outcomes remembered (URL and issuer) for retry pacing.\n"
         "# TYPE certgate_revocation_tracked_urls gauge\n"
      << "certgate_revocation_tracked_urls " << tracked << "\n";
  // Per-URL series only for the most recently used cached CRLs: a bounded label set.
  const std::size_t shown = std::min(rows.size(), kMetricsUrlSeries);
  std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(shown), rows.end(),
                    [](const auto& a, const auto& b) { return a.used > b.used || (a.used == b.used && a.url < b.url); });
  rows.resize(shown);
  out << "# HELP certgate_crl_cache_age_seconds Age of each cached CRL (since it was fetched; the "
      << kMetricsUrlSeries << " most recently used).\n"
         "# TYPE certgate_crl_cache_age_seconds gauge\n";
  for (const auto& r : rows)
    out << "certgate_crl_cache_age_seconds{url=\"" << metrics_label(r.url) << "\"} " << now - r.fetched_at << "\n";
  out << "# HELP certgate_crl_next_update_seconds Seconds until each cached CRL's nextUpdate (negative: expired).\n"
         "# TYPE certgate_crl_next_update_seconds gauge\n";
  for (const auto& r : rows)
    out << "certgate_crl_next_update_seconds{url=\"" << metrics_label(r.url) << "\"} " << r.next_update - now << "\n";
  out << "# HELP certgate_revocation_cache_entries Cached CRLs, OCSP answers and AIA certificates.\n"
         "# TYPE certgate_revocation_cache_entries gauge\n"
      << "certgate_revocation_cache_entries{kind=\"crl\"} " << n_crls << "\n"
      << "certgate_revocation_cache_entries{kind=\"ocsp\"} " << n_ocsps << "\n"
      << "certgate_revocation_cache_entries{kind=\"ca-issuers\"} " << n_issuers << "\n"
      << "# HELP certgate_crl_cache_bytes Bytes of cached CRLs.\n# TYPE certgate_crl_cache_bytes gauge\n"
      << "certgate_crl_cache_bytes " << crl_bytes << "\n";
  return out.str();
}

std::vector<std::shared_ptr<const OcspEntry>> Store::ocsp_answers() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::shared_ptr<const OcspEntry>> out;
  out.reserve(impl_->ocsps.size());
  for (const auto& [key, e] : impl_->ocsps) out.push_back(e);
  return out;
}

}  // namespace certgate::revocation
