#pragma once
// An address block ("10.0.0.0/8", "::1/128", or one address) and whether an address falls in it.
// Pure: inet_pton, no resolver.
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace certgate::config {

struct AddressBlock {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // v4: the first 4
  unsigned prefix = 0;                   // bits
};

std::optional<AddressBlock> parse_address_block(std::string_view text);
// `address` as 4 (IPv4) or 16 (IPv6) bytes; an IPv4-mapped IPv6 address matches IPv4 blocks.
bool contains(const AddressBlock& block, const std::uint8_t* address, std::size_t length);

}  // namespace certgate::config
