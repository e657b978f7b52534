#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace certgate::test {

// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("certgate-test-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  std::filesystem::path path_;
};

// The error config::load gives for `toml` written as c.toml, from "c.toml:line:col: ..." on;
// "" when it loads. (Declared here, defined in config_error.cpp: only the tests that link the
// config library use it.)
std::string config_error(const std::string& toml);

inline std::filesystem::path pki(const std::string& name) {
  return std::filesystem::path(TEST_PKI_DIR) / name;
}

}  // namespace certgate::test
