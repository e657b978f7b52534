#pragma once
// Small, careful file edits for the admin commands: read lines, write them back atomically
// (temporary file in the same folder, fsync, rename), so a crash never leaves half a file.
#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

namespace certgate::cli {

std::vector<std::string> read_lines_if_exists(const std::filesystem::path& file);
std::string read_text(const std::filesystem::path& file);
void write_text_atomically(const std::filesystem::path& file, const std::string& text, mode_t mode);
void write_lines_atomically(const std::filesystem::path& file, const std::vector<std::string>& lines,
                            mode_t mode);

}  // namespace certgate::cli
