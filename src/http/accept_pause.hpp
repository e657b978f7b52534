#pragma once
// Out of descriptors (or kernel memory), a listening socket stays readable and an immediate
// retry of accept fails again at once: a busy loop on the event loop that owns the acceptor.
// Every acceptor (the client listeners and the admin listener) pauses instead; the pending
// connections wait in the kernel's backlog until a descriptor is free again.
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>

namespace certgate::http {

inline constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

inline bool out_of_resources(const boost::system::error_code& ec) {
  namespace asio = boost::asio;
  return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory || ec == boost::system::errc::too_many_files_open_in_system;
}

}  // namespace certgate::http
