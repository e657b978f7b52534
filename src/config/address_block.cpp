#include "config/address_block.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

namespace certgate::config {

std::optional<AddressBlock> parse_address_block(std::string_view text) {
  AddressBlock b;
  const auto slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  if (inet_pton(AF_INET, addr.c_str(), b.bytes.data()) == 1) {
    b.prefix = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), b.bytes.data()) == 1) {
    b.v6 = true;
    b.prefix = 128;
  } else {
    return std::nullopt;
  }
  if (slash != std::string_view::npos) {
    const auto bits = text.substr(slash + 1);
    unsigned prefix = 0;
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() || prefix > b.prefix)
      return std::nullopt;
    b.prefix = prefix;
  }
  return b;
}

bool contains(const AddressBlock& block, const std::uint8_t* address, std::size_t length) {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!block.v6 && length == 16 && std::memcmp(address, kMapped, 12) == 0) {
    address += 12;
    length = 4;
  }
  if (length != (block.v6 ? 16u : 4u)) return false;
  unsigned bits = block.prefix;
  for (std::size_t i = 0; bits > 0; ++i, bits = bits >= 8 ? bits - 8 : 0) {
    const std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((address[i] & mask) != (block.bytes[i] & mask)) return false;
  }
  return true;
}

}  // namespace certgate::config
