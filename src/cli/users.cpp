// `certgate users add/remove`: the Basic authentication users file ("user:hash" lines).
// Only hashes are written; the file is replaced atomically; comments and order are kept.
#include "cli/commands.hpp"
#include "cli/file_edit.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>

namespace certgate::cli {
namespace {

std::string read_password(bool from_stdin) {
  std::string pw;
  if (from_stdin || !isatty(STDIN_FILENO)) {
    std::getline(std::cin, pw);
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    return pw;
  }
  termios old{};
  tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  std::cerr << "Password: " << std::flush;
  std::getline(std::cin, pw);
  std::string again;
  std::cerr << "\nAgain: " << std::flush;
  std::getline(std::cin, again);
  tcsetattr(STDIN_FILENO, TCSANOW, &old);
  std::cerr << "\n";
  if (pw != again) pw.clear(), std::cerr << "certgate users: the passwords differ\n";
  OPENSSL_cleanse(again.data(), again.size());
  return pw;
}

bool valid_user(const std::string& u) {
  if (u.empty() || u.size() > 256) return false;
  for (unsigned char c : u)
    if (c < 0x21 || c == ':' || c == 0x7f) return false;
  return true;
}

std::string user_of(const std::string& line) {
  if (line.empty() || line[0] == '#') return "";
  auto colon = line.find(':');
  return colon == std::string::npos ? "" : line.substr(0, colon);
}

}  // namespace

int users(const UsersArgs& a) {
  if (!valid_user(a.user)) {
    std::cerr << "certgate users: \"" << a.user << "\" is not a valid user name (no spaces, no ':')\n";
    return kUsage;
  }
  std::vector<std::string> lines;
  try {
    lines = read_lines_if_exists(a.file);
  } catch (const std::exception& e) {
    std::cerr << "certgate users: " << e.what() << "\n";
    return kUsage;
  }
  auto same = [&](const std::string& line) { return user_of(line) == a.user; };
  auto it = std::find_if(lines.begin(), lines.end(), same);
  const bool existed = it != lines.end();
  if (a.remove) {
    if (it == lines.end()) {
      std::cerr << "certgate users: no user \"" << a.user << "\" in " << a.file << "\n";
      return kRejected;
    }
    lines.erase(it);
  } else {
    std::string pw = read_password(a.password_stdin);
    if (pw.empty()) {
      std::cerr << "certgate users: empty password refused\n";
      return kUsage;
    }
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$2b$", 12, nullptr, 0, setting, sizeof setting) == nullptr) {
      std::cerr << "certgate users: cannot make a bcrypt salt\n";
      return kUsage;
    }
    auto data = std::make_unique<crypt_data>();
    const char* hash = crypt_r(pw.c_str(), setting, data.get());
    OPENSSL_cleanse(pw.data(), pw.size());
    if (hash == nullptr || hash[0] == '*') {
      std::cerr << "certgate users: hashing failed\n";
      return kUsage;
    }
    std::string line = a.user + ":" + hash;
    if (it != lines.end()) *it = line;
    else lines.push_back(line);
  }
  try {
    write_lines_atomically(a.file, lines, 0600);
  } catch (const std::exception& e) {
    std::cerr << "certgate users: " << e.what() << "\n";
    return kUsage;
  }
  std::cout << (a.remove ? "removed " : (existed ? "set " : "added ")) << a.user << " in "
            << a.file << "\n";
  return kOk;
}

}  // namespace certgate::cli
