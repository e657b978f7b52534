// The PROXY protocol header (net/proxy_protocol.hpp): the first bytes of every connection on a
// proxy_protocol listener, from a trusted balancer but parsed as hostile input.
#include "fuzz_util.hpp"
#include "net/proxy_protocol.hpp"

using namespace certgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::bytes(data, size);
  const auto h = net::parse_proxy_header(in);
  using Status = net::ProxyHeader::Status;
  if (h.status == Status::Complete) {
    // Never past the bytes given, never past the bound: the TLS stream starts right after.
    FUZZ_CHECK(h.length >= 15 && h.length <= in.size());
    FUZZ_CHECK(h.length <= (h.version == 1 ? net::kProxyV1MaxBytes : net::kProxyV2MaxBytes));
    // What follows the header does not change the header.
    const auto again = net::parse_proxy_header(in.substr(0, h.length));
    FUZZ_CHECK(again.status == Status::Complete && again.length == h.length);
  }
  if (h.status == Status::Invalid) FUZZ_CHECK(!h.error.empty());
  if (h.status == Status::Incomplete) {
    // More bytes are asked for only while the bound allows them.
    FUZZ_CHECK(in.size() < (h.version == 1 ? net::kProxyV1MaxBytes : net::kProxyV2MaxBytes));
    FUZZ_CHECK(h.v2_total == 0 || (h.v2_total > in.size() && h.v2_total <= net::kProxyV2MaxBytes));
  }
  return 0;
}
