#pragma once
// Shared by the fuzz harnesses: invariant checks that abort (libFuzzer then keeps the input),
// and a private scratch folder for the loaders that only read files.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                             \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

namespace certgate::fuzz {

inline std::string_view bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// One folder per process, removed at exit; /dev/shm when present keeps the writes in memory.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "certgate-fuzz-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(scratch(), ec); });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

inline std::filesystem::path write_file(const std::string& name, std::string_view content) {
  auto p = scratch() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(content.data(),
                                                              static_cast<std::streamsize>(content.size()));
  return p;
}

// Splits `in` at the first `sep` (the part after it is empty when `sep` is absent).
inline std::pair<std::string_view, std::string_view> split(std::string_view in, std::string_view sep) {
  auto at = in.find(sep);
  if (at == std::string_view::npos) return {in, {}};
  return {in.substr(0, at), in.substr(at + sep.size())};
}

}  // namespace certgate::fuzz
