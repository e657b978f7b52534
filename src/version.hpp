#pragma once
namespace certgate {
inline constexpr const char* kVersion = "0.1.0";
}
