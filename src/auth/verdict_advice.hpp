#pragma once
// The catalogue's words for people: what an error page tells the person in front of the
// browser about each answer — one sentence saying what happened, the most likely causes and the
// things they can try. Written for that person, not for the administrator (who has the details
// table and the log). The title stays in the catalogue's rows (auth/verdict_table.cpp); this is
// the text around it, kept beside them so that every answer is described in one place.
#include "auth/verdict.hpp"

#include <cstdint>
#include <span>
#include <string_view>

namespace certgate::auth {

struct Advice {
  std::string_view sentence;
  std::span<const std::string_view> causes;
  std::span<const std::string_view> things_to_try;
};

// Never fails: answers without their own text get their status's, or a general one.
const Advice& advice_for(Verdict answer);

// "ERROR_LOGON_FAILURE" for 1326, "CERT_E_UNTRUSTEDROOT" for 0x800B0109; "" when unknown.
std::string_view win32_name(std::uint32_t code);

}  // namespace certgate::auth
