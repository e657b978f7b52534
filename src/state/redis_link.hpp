#pragma once
// One connection to Redis as the store's workers see it: a command in, its reply out. redis://
// is hiredis's own synchronous context; rediss:// is a socket of ours under OpenSSL with hiredis
// only encoding commands and parsing replies (Debian's hiredis 0.14 has no TLS). The command
// logic (AUTH, SELECT, SET NX, the consume script) is the store's and the same for both.
#include "config/config.hpp"

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::state {

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

class RedisLink {
 public:
  virtual ~RedisLink() = default;
  // The reply (possibly a Redis error reply), or null with `error` set: the link is broken and
  // is dropped by its owner.
  virtual ReplyPtr command(const std::vector<std::string_view>& argv, std::string& error) = 0;
};

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// rediss://: the client context every worker's connection shares, built once at start (it reads
// ca_file and the client certificate). Throws std::runtime_error naming the file at fault.
SslCtxPtr make_redis_tls_context(const config::StateSettings& s);

// Null with `error` set when Redis cannot be reached (or, over TLS, not verified).
std::unique_ptr<RedisLink> connect_plain(const config::StateSettings& s, std::string& error);
std::unique_ptr<RedisLink> connect_tls(const config::StateSettings& s, SSL_CTX* ctx, std::string& error);

}  // namespace certgate::state
