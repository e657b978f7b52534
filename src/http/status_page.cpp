#include "http/status_page.hpp"

#include "auth/verdict.hpp"
#include "http/page_text.hpp"
#include "pki/x509_text.hpp"
#include "revocation/store.hpp"
#include "version.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <map>

namespace certgate::http {
namespace {

static_assert(static_cast<int>(auth::Verdict::Count_) < AnswerStats::kNoVerdict,
              "the answer counters keep a verdict in 8 bits, 255 meaning none");

// Rows shown per table: the page stays small whatever the cache holds.
constexpr std::size_t kMaxRows = 200;
constexpr std::size_t kTopRefusals = 10;

struct Cert {
  std::string site, kind, name, origin;
  std::int64_t not_after = 0;
};

struct CrlRow {
  std::string url, issuer, last_error;
  std::int64_t fetched_at = 0, next_update = 0, last_attempt = 0, last_success = 0;
  std::uint64_t ok = 0, failed = 0;
};

struct OcspRow {
  std::string url, last_error;
  std::size_t answers = 0;
  std::int64_t fetched_at = 0, next_update = 0, last_attempt = 0, last_success = 0;
  std::uint64_t ok = 0, failed = 0;
};

struct SiteRow {
  std::string name;
  int id = 0;
  std::vector<std::string> bindings;
  std::vector<Cert> issuers, mapped;
};

struct Status {
  std::int64_t now = 0;
  std::uint64_t generation = 0;
  std::size_t connections = 0;
  std::vector<SiteRow> sites;
  std::vector<CrlRow> crls;
  std::vector<OcspRow> ocsp;
  std::vector<AnswerStats::Row> answers;
  std::vector<AnswerStats::Row> refusals;
  std::vector<Cert> expiring;
};

Status collect(const ServerState& state, std::int64_t now, bool with_cache = true) {
  Status st;
  st.now = now;
  st.connections = state.connections.load();
  if (auto gen = state.current.load()) {
    const auto& snap = *gen->snap;
    st.generation = snap.generation;
    for (const auto& site : snap.sites) {
      SiteRow row{site.cfg.name, site.cfg.id, {}, {}, {}};
      for (const auto& b : site.cfg.bindings)
        row.bindings.push_back(std::string(b.https ? "https://" : "http://") + b.listen +
                               (b.host.empty() ? "" : " (host " + b.host + ")"));
      if (site.trust)
        for (const auto& ca : site.trust->anchors())
          row.issuers.push_back({site.cfg.name, "trusted-ca", pki::subject_text(ca.get()), "",
                                 pki::to_unix(X509_get0_notAfter(ca.get()))});
      for (const auto& m : site.mapped_certificates)
        row.mapped.push_back({site.cfg.name, "one-to-one", m.user + " (" + m.subject + ")", m.origin, m.not_after});
      for (const auto* list : {&row.issuers, &row.mapped})
        for (const auto& c : *list)
          if (c.not_after - now < kExpiryWarningSeconds) st.expiring.push_back(c);
      st.sites.push_back(std::move(row));
    }
  }
  std::sort(st.expiring.begin(), st.expiring.end(), [](const Cert& a, const Cert& b) { return a.not_after < b.not_after; });
  if (!with_cache) return st;
  if (state.revocation) {
    std::map<std::string, CrlRow> crls;
    std::map<std::string, OcspRow> ocsp;
    for (const auto& [url, e] : state.revocation->crls()) {
      auto& r = crls[url];
      r.url = url;
      r.issuer = e->issuer_name;
      r.fetched_at = e->fetched_at;
      r.next_update = e->next_update;
    }
    for (const auto& e : state.revocation->ocsp_answers()) {
      auto& r = ocsp[e->url];
      r.url = e->url;
      ++r.answers;
      r.fetched_at = std::max(r.fetched_at, e->fetched_at);
      // the answer that goes stale first
      if (r.next_update == 0 || (e->next_update != 0 && e->next_update < r.next_update)) r.next_update = e->next_update;
    }
    for (const auto& s : state.revocation->states()) {
      if (s.kind == revocation::Kind::CaIssuers) continue;
      auto fill = [&s](auto& r) {
        r.url = s.url;
        r.ok += s.ok;
        r.failed += s.failed;
        if (s.last_attempt >= r.last_attempt) {
          r.last_attempt = s.last_attempt;
          r.last_error = s.last_error;
        }
        r.last_success = std::max(r.last_success, s.last_success);
      };
      if (s.kind == revocation::Kind::Crl) fill(crls[s.url]);
      else fill(ocsp[s.url]);
    }
    for (auto& [url, r] : crls)
      if (st.crls.size() < kMaxRows) st.crls.push_back(std::move(r));
    for (auto& [url, r] : ocsp)
      if (st.ocsp.size() < kMaxRows) st.ocsp.push_back(std::move(r));
  }
  // By status.substatus (verdicts folded), and the refusals by reason.
  std::map<std::pair<int, int>, std::uint64_t> by_status;
  for (const auto& r : state.answers.last_hour(now)) {
    by_status[{r.status, r.substatus}] += r.count;
    if (r.status >= 400) st.refusals.push_back(r);
  }
  for (const auto& [k, count] : by_status) st.answers.push_back({k.first, k.second, AnswerStats::kNoVerdict, count});
  if (st.refusals.size() > kTopRefusals) st.refusals.resize(kTopRefusals);
  return st;
}

std::string reason_token(const AnswerStats::Row& r) {
  if (r.verdict == AnswerStats::kNoVerdict || r.verdict >= static_cast<int>(auth::Verdict::Count_))
    return r.substatus ? fmt::format("{}_{}", r.status, r.substatus) : fmt::format("{}", r.status);
  return std::string(auth::info(static_cast<auth::Verdict>(r.verdict)).token);
}

std::string reason_title(const AnswerStats::Row& r) {
  if (r.verdict == AnswerStats::kNoVerdict || r.verdict >= static_cast<int>(auth::Verdict::Count_)) return "";
  return std::string(auth::info(static_cast<auth::Verdict>(r.verdict)).title);
}

std::string iso(std::int64_t t) {
  if (t <= 0) return "";
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string json_time(std::int64_t t) { return t > 0 ? json_text(iso(t)) : "null"; }

std::string cert_json(const Cert& c, std::int64_t now) {
  return fmt::format("{{\"site\":{},\"kind\":{},\"name\":{},\"origin\":{},\"not_after\":{},\"days_left\":{}}}",
                     json_text(c.site), json_text(c.kind), json_text(c.name), json_text(c.origin),
                     json_time(c.not_after), (c.not_after - now) / 86400);
}

template <class T, class F>
std::string json_list(const std::vector<T>& items, F&& each) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += each(items[i]);
  }
  return out + "]";
}

std::string days(std::int64_t not_after, std::int64_t now) {
  const std::int64_t d = (not_after - now) / 86400;
  return not_after - now < 0 ? "expired" : fmt::format("{} days", d);
}

}  // namespace

std::string status_json(const ServerState& state, std::int64_t now) {
  const Status st = collect(state, now);
  std::string out = fmt::format("{{\"version\":{},\"generated_at\":{},\"config_generation\":{},\"connections_open\":{},",
                                json_text(kVersion), json_time(now), st.generation, st.connections);
  out += "\"sites\":" + json_list(st.sites, [&](const SiteRow& s) {
    return fmt::format("{{\"name\":{},\"id\":{},\"bindings\":{},\"trusted_issuers\":{},\"one_to_one\":{}}}",
                       json_text(s.name), s.id,
                       json_list(s.bindings, [](const std::string& b) { return json_text(b); }),
                       json_list(s.issuers, [&](const Cert& c) { return cert_json(c, now); }),
                       json_list(s.mapped, [&](const Cert& c) { return cert_json(c, now); }));
  });
  out += ",\"revocation\":{\"crls\":" + json_list(st.crls, [](const CrlRow& r) {
    return fmt::format("{{\"url\":{},\"issuer\":{},\"cached\":{},\"last_fetch\":{},\"next_update\":{},\"last_attempt\":{},"
                       "\"fetches_ok\":{},\"failures\":{},\"last_error\":{}}}",
                       json_text(r.url), json_text(r.issuer), r.fetched_at > 0 ? "true" : "false",
                       json_time(r.fetched_at), json_time(r.next_update), json_time(r.last_attempt), r.ok, r.failed,
                       json_text(r.last_error));
  });
  out += ",\"ocsp_responders\":" + json_list(st.ocsp, [](const OcspRow& r) {
    return fmt::format("{{\"url\":{},\"cached_answers\":{},\"last_fetch\":{},\"next_update\":{},\"last_attempt\":{},"
                       "\"fetches_ok\":{},\"failures\":{},\"last_error\":{}}}",
                       json_text(r.url), r.answers, json_time(r.fetched_at), json_time(r.next_update),
                       json_time(r.last_attempt), r.ok, r.failed, json_text(r.last_error));
  });
  out += "},\"answers_last_hour\":" + json_list(st.answers, [](const AnswerStats::Row& r) {
    return fmt::format("{{\"status\":{},\"substatus\":{},\"count\":{}}}", r.status, r.substatus, r.count);
  });
  out += ",\"top_refusals\":" + json_list(st.refusals, [](const AnswerStats::Row& r) {
    return fmt::format("{{\"status\":{},\"substatus\":{},\"reason\":{},\"title\":{},\"count\":{}}}", r.status,
                       r.substatus, json_text(reason_token(r)), json_text(reason_title(r)), r.count);
  });
  out += ",\"expiring_within_30_days\":" + json_list(st.expiring, [&](const Cert& c) { return cert_json(c, now); });
  return out + "}\n";
}

std::string status_html(const ServerState& state, std::int64_t now) {
  const Status st = collect(state, now);
  std::string out =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>certgate status</title>\n"
      "<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}"
      "h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:.5em 0}"
      "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f0f0f0}"
      ".warn{background:#fff3cd}.bad{background:#f8d7da}.muted{color:#777}</style></head><body>\n";
  out += fmt::format("<h1>certgate {} &mdash; status</h1>\n<p class=\"muted\">{} &middot; configuration generation {} "
                     "&middot; {} open connection(s) &middot; <a href=\"/status.json\">status.json</a> &middot; "
                     "<a href=\"/metrics\">metrics</a></p>\n",
                     kVersion, iso(now), st.generation, st.connections);
  out += "<h2>Expiring within 30 days</h2>\n";
  if (st.expiring.empty()) {
    out += "<p>No trusted CA and no one-to-one certificate expires within 30 days.</p>\n";
  } else {
    out += "<table id=\"expiring\"><tr><th>Site</th><th>Kind</th><th>Certificate</th><th>Expires</th><th>Left</th></tr>\n";
    for (const auto& c : st.expiring)
      out += fmt::format("<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                         c.not_after < now ? "bad" : "warn", html_text(c.site), c.kind, html_text(c.name),
                         iso(c.not_after), days(c.not_after, now));
    out += "</table>\n";
  }
  for (const auto& s : st.sites) {
    out += fmt::format("<h2>Site &ldquo;{}&rdquo; (id {})</h2>\n<p>Bindings: ", html_text(s.name), s.id);
    for (std::size_t i = 0; i < s.bindings.size(); ++i) {
      if (i) out += ", ";
      out += html_text(s.bindings[i]);
    }
    out += "</p>\n<table><tr><th>Trusted issuer</th><th>Expires</th><th>Left</th></tr>\n";
    for (const auto& c : s.issuers)
      out += fmt::format("<tr{}><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                         c.not_after - now < kExpiryWarningSeconds ? " class=\"warn\"" : "", html_text(c.name),
                         iso(c.not_after), days(c.not_after, now));
    out += "</table>\n";
    if (!s.mapped.empty()) {
      out += "<table><tr><th>One-to-one mapping</th><th>Where</th><th>Expires</th><th>Left</th></tr>\n";
      for (const auto& c : s.mapped)
        out += fmt::format("<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                           c.not_after - now < kExpiryWarningSeconds ? " class=\"warn\"" : "", html_text(c.name),
                           html_text(c.origin), iso(c.not_after), days(c.not_after, now));
      out += "</table>\n";
    }
  }
  out += "<h2>Revocation cache</h2>\n<table><tr><th>CRL</th><th>Last fetch</th><th>nextUpdate</th><th>OK</th>"
         "<th>Failures</th><th>Last error</th></tr>\n";
  for (const auto& r : st.crls)
    out += fmt::format("<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       r.next_update != 0 && r.next_update < now ? " class=\"bad\"" : "", html_text(r.url),
                       iso(r.fetched_at), iso(r.next_update), r.ok, r.failed, html_text(r.last_error));
  out += "</table>\n<table><tr><th>OCSP responder</th><th>Cached answers</th><th>Last fetch</th><th>First nextUpdate</th>"
         "<th>OK</th><th>Failures</th><th>Last error</th></tr>\n";
  for (const auto& r : st.ocsp)
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       html_text(r.url), r.answers, iso(r.fetched_at), iso(r.next_update), r.ok, r.failed,
                       html_text(r.last_error));
  out += "</table>\n<h2>Answers in the last hour</h2>\n<table><tr><th>Status</th><th>Count</th></tr>\n";
  for (const auto& r : st.answers) out += fmt::format("<tr><td>{}.{}</td><td>{}</td></tr>\n", r.status, r.substatus, r.count);
  out += "</table>\n<h2>Most frequent refusals</h2>\n<table><tr><th>Status</th><th>Reason</th><th>Count</th></tr>\n";
  for (const auto& r : st.refusals)
    out += fmt::format("<tr><td>{}.{}</td><td>{} <span class=\"muted\">{}</span></td><td>{}</td></tr>\n", r.status,
                       r.substatus, html_text(reason_title(r)), html_text(reason_token(r)), r.count);
  out += "</table>\n</body></html>\n";
  return out;
}

std::string expiry_metrics(const ServerState& state, std::int64_t now) {
  const Status st = collect(state, now, false);
  std::string out =
      "# HELP certgate_certificate_expiry_seconds Seconds until a trusted CA, or a one-to-one certificate within 30 "
      "days of expiry, expires (negative: expired).\n# TYPE certgate_certificate_expiry_seconds gauge\n";
  auto label = [](std::string_view v) { return revocation::metrics_label(v); };
  std::size_t expiring = 0;
  for (const auto& s : st.sites)
    for (const auto* list : {&s.issuers, &s.mapped})
      for (const auto& c : *list) {
        // Every trusted CA; of the one-to-one certificates (as many as there are users) only
        // those near expiry, so that the series stay few.
        if (c.kind != "trusted-ca" && c.not_after - now >= kExpiryWarningSeconds) continue;
        out += fmt::format("certgate_certificate_expiry_seconds{{site=\"{}\",kind=\"{}\",name=\"{}\"}} {}\n",
                           label(c.site), c.kind, label(c.name), c.not_after - now);
        if (c.not_after - now < kExpiryWarningSeconds) ++expiring;
      }
  out += fmt::format("# HELP certgate_certificates_expiring Trusted CAs and one-to-one certificates expiring within "
                     "30 days (or expired).\n# TYPE certgate_certificates_expiring gauge\n"
                     "certgate_certificates_expiring {}\n", expiring);
  return out;
}

}  // namespace certgate::http
