#pragma once
// Session-ticket keys shared by every TLS context of the process (all sites, all configuration
// generations), so a reload does not cost returning clients their resumption. A new key is made
// every hour; tickets made with the two keys before it are still accepted and renewed, tickets
// older than that are not: a leaked key exposes at most three hours of sessions, and no key is
// ever written to disk.
#include "runtime/clock.hpp"

#include <openssl/ssl.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace certgate::tls {

// `clock`: what keys age by (the keys are the process's, so the clock is: the last given).
void use_rotating_ticket_keys(SSL_CTX* ctx, const runtime::Clock& clock);

// The keys in use at `now` (Clock::steady_ms() / 1000), rotating when the newest is an hour old:
// their names, newest first. For tests.
std::vector<std::string> ticket_key_names_at(std::int64_t now);

// Keys an administrator shares between instances behind one load balancer, so that a ticket
// made by one instance resumes on any other (`ticket_key_files`). Each file holds 80 bytes in
// nginx's ssl_session_ticket_key layout: 16 bytes key name, 32 bytes HMAC-SHA256 key, 32 bytes
// AES-256-CBC key (`openssl rand 80 > ticket.key`). The first file encrypts new tickets; every
// file decrypts (tickets under a later file are accepted and renewed under the first): rotate
// by putting a new file first and dropping the last one, then reload each instance.
struct TicketKeyFiles;

// Reads and checks the files (off any event loop: configuration compile). Throws
// std::runtime_error naming the file: unreadable, not 80 bytes, not a regular file, readable or
// writable by others, writable by its group, or plainly not random (a key of one repeated byte).
std::shared_ptr<const TicketKeyFiles> load_ticket_key_files(const std::vector<std::filesystem::path>& files);

// `ctx` encrypts and decrypts its tickets with `keys` (kept alive with the context).
void use_ticket_key_files(SSL_CTX* ctx, std::shared_ptr<const TicketKeyFiles> keys);

}  // namespace certgate::tls
