// `netsh http show sslcert` output: one block per binding, "Label : value" lines. Labels differ
// slightly between Windows versions (e.g. "Negotiate Client Certificate" and, older,
// "Negotiate Client Certificate         : Disabled"); matching is on the label text, trimmed.
#include "iis/import.hpp"

#include <algorithm>
#include <sstream>

namespace certgate::iis {
namespace {

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r");
  auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool enabled(const std::string& v) {
  std::string l = lower(v);
  return l == "enabled" || l == "1" || l == "true" || l == "yes";
}

}  // namespace

std::vector<NetshBinding> parse_netsh(const std::string& text) {
  std::vector<NetshBinding> out;
  std::istringstream in(text);
  for (std::string raw; std::getline(in, raw);) {
    // "Label : value"; the value itself may contain ':' (IPv6, host:port), so split on " : ".
    auto sep = raw.find(" : ");
    if (sep == std::string::npos) continue;
    std::string label = lower(trim(raw.substr(0, sep)));
    std::string value = trim(raw.substr(sep + 3));
    if (label == "ip:port" || label == "hostname:port" || label == "central certificate store" ||
        label == "ccs:port") {
      NetshBinding b;
      b.endpoint = value;
      b.sni = label == "hostname:port";
      out.push_back(b);
      continue;
    }
    if (out.empty()) continue;
    NetshBinding& b = out.back();
    if (label == "certificate hash") b.certificate_hash = value;
    else if (label == "certificate store name") b.store = value;
    else if (label == "verify client certificate revocation") b.verify_revocation = enabled(value);
    else if (label == "verify revocation using cached client certificate only") b.cached_only = enabled(value);
    else if (label == "usage check") b.usage_check = enabled(value);
    else if (label == "revocation freshness time") b.freshness_seconds = std::atol(value.c_str());
    else if (label == "url retrieval timeout") b.url_timeout_ms = std::atol(value.c_str());
    else if (label == "ctl identifier") b.ctl_identifier = value == "(null)" ? "" : value;
    else if (label == "ctl store name") b.ctl_store = value == "(null)" ? "" : value;
    else if (label == "ds mapper usage") b.ds_mapper = enabled(value);
    else if (label == "negotiate client certificate") b.negotiate_client_cert = enabled(value);
  }
  return out;
}

}  // namespace certgate::iis
