// `certgate import-iis`: write a certgate configuration from IIS's files, with a report on
// stderr of what was imported, what was ignored and why, and what behaves differently.
#include "cli/commands.hpp"
#include "cli/file_edit.hpp"
#include "iis/import.hpp"

#include <iostream>

namespace certgate::cli {
namespace {

bool split_at(const std::string& s, char sep, bool last, std::string& a, std::string& b) {
  auto at = last ? s.rfind(sep) : s.find(sep);
  if (at == std::string::npos || at == 0 || at + 1 >= s.size()) return false;
  a = s.substr(0, at);
  b = s.substr(at + 1);
  return true;
}

}  // namespace

int import_iis(const ImportArgs& a) {
  iis::ImportOptions o;
  o.applicationhost = a.applicationhost;
  o.netsh = a.netsh;
  o.only_site = a.site;
  o.trusted_cas = a.trusted_cas;
  o.crl_files = a.crl_files;
  for (const auto& w : a.web_configs) {
    std::string scope, file;
    if (!split_at(w, '=', true, scope, file)) {
      std::cerr << "certgate import-iis: --web-config wants SITE/PATH=FILE, got \"" << w << "\"\n";
      return kUsage;
    }
    o.web_configs.emplace_back(scope, file);
  }
  for (const auto& m : a.path_maps) {
    std::string from, to;
    if (!split_at(m, '=', false, from, to)) {
      std::cerr << "certgate import-iis: --path-map wants 'C:\\windows\\path=/linux/path', got \"" << m << "\"\n";
      return kUsage;
    }
    o.path_maps.emplace_back(from, to);
  }
  for (const auto& c : a.certificates) {
    std::string binding, files, cert, key;
    if (!split_at(c, '=', false, binding, files)) {
      std::cerr << "certgate import-iis: --certificate wants BINDING=CERT.pem[:KEY.pem], got \"" << c << "\"\n";
      return kUsage;
    }
    if (!split_at(files, ':', true, cert, key)) cert = files, key.clear();
    o.certificates.push_back({binding, cert, key});
  }
  iis::ImportResult r;
  try {
    r = iis::import_iis(o);
  } catch (const iis::ImportError& e) {
    std::cerr << "certgate import-iis: " << e.what() << "\n";
    return kUsage;
  }
  auto section = [](const char* title, const std::vector<std::string>& lines) {
    std::cerr << title << " (" << lines.size() << "):\n";
    for (const auto& l : lines) std::cerr << "  - " << l << "\n";
  };
  section("imported", r.report.imported);
  section("ignored", r.report.ignored);
  section("behaves differently", r.report.differences);
  if (a.output == "-") {
    std::cout << r.toml;
  } else {
    try {
      write_text_atomically(a.output, r.toml, 0644);
    } catch (const std::exception& e) {
      std::cerr << "certgate import-iis: " << e.what() << "\n";
      return kUsage;
    }
    std::cerr << "wrote " << a.output << "; check it with: certgate check-config -c " << a.output << "\n";
  }
  return kOk;
}

}  // namespace certgate::cli
