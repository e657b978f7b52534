#pragma once
// The clock `certgate serve` decides by: the system's, unless the environment names a test
// clock file (CERTGATE_TEST_CLOCK_FILE). Then the time is the system's shifted by the whole
// seconds the file holds, re-read by a thread of its own (never a request loop) every 50 ms, so
// an end-to-end test can move the server past a certificate's or a cache's expiry without
// sleeping. Test-only (docs/testing.md): the server says so loudly at startup and at each change.
#include "runtime/clock.hpp"

namespace certgate::runtime {

const Clock& process_clock();

}  // namespace certgate::runtime
