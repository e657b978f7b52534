#include "state/redis_store.hpp"

#include "state/redis_link.hpp"

#include <boost/asio/post.hpp>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace certgate::state {
namespace {

// Taken, a key stays as a tombstone for the rest of its TTL, so that a second attempt is told
// apart from a key never issued (the caller's log says "replayed", not "unknown"). One script:
// atomic on the Redis server, whichever instance asks.
constexpr const char* kConsume =
    "local v = redis.call('GET', KEYS[1]) "
    "if not v then return {0} end "
    "if string.sub(v, 1, 1) == 'u' then return {1} end "
    "redis.call('SET', KEYS[1], 'u', 'KEEPTTL') "
    "return {2, string.sub(v, 2)}";

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;

// redis://: hiredis's own synchronous context.
class PlainLink final : public RedisLink {
 public:
  explicit PlainLink(ContextPtr c) : c_(std::move(c)) {}
  ReplyPtr command(const std::vector<std::string_view>& argv, std::string& error) override {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (auto a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    ReplyPtr reply(static_cast<redisReply*>(redisCommandArgv(c_.get(), static_cast<int>(argv.size()), ptrs.data(), lens.data())));
    if (!reply) error = std::string("Redis connection failed: ") + c_->errstr;
    return reply;
  }

 private:
  ContextPtr c_;
};

}  // namespace

std::unique_ptr<RedisLink> connect_plain(const config::StateSettings& s, std::string& error) {
  const timeval tv{static_cast<time_t>(s.timeout_ms / 1000), static_cast<suseconds_t>((s.timeout_ms % 1000) * 1000)};
  ContextPtr c(redisConnectWithTimeout(s.host.c_str(), s.port, tv));
  if (!c || c->err) {
    error = "cannot connect to Redis at " + s.host + ":" + std::to_string(s.port) + ": " + (c ? c->errstr : "out of memory");
    return nullptr;
  }
  redisSetTimeout(c.get(), tv);
  return std::make_unique<PlainLink>(std::move(c));
}

namespace {

using LinkPtr = std::unique_ptr<RedisLink>;

class RedisStore final : public Store {
 public:
  explicit RedisStore(const config::StateSettings& s) : s_(s) {
    if (s_.tls) tls_ = make_redis_tls_context(s_);
    for (unsigned i = 0; i < s_.workers; ++i) threads_.emplace_back([this] { run(); });
  }
  ~RedisStore() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    OPENSSL_cleanse(s_.password.data(), s_.password.size());
  }

  void issue(std::string_view ns, std::string_view key, std::string value, std::chrono::seconds ttl,
             boost::asio::any_io_executor ex, Handler done) override {
    Job j{Job::Issue, full_key(ns, key), "v" + std::move(value), ttl, std::move(ex), std::move(done)};
    enqueue(std::move(j));
  }
  void consume(std::string_view ns, std::string_view key, boost::asio::any_io_executor ex, Handler done) override {
    enqueue(Job{Job::Consume, full_key(ns, key), {}, {}, std::move(ex), std::move(done)});
  }
  std::string_view backend() const override { return "redis"; }

 private:
  struct Job {
    enum Kind { Issue, Consume } kind;
    std::string key, value;
    std::chrono::seconds ttl;
    boost::asio::any_io_executor ex;
    Handler done;
  };

  std::string full_key(std::string_view ns, std::string_view key) const {
    std::string k = "certgate:";
    k += ns;
    k += ':';
    k += key;
    return k;
  }

  static void deliver(Job& j, Result r) {
    boost::asio::post(j.ex, [done = std::move(j.done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  void enqueue(Job j) {
    {
      std::lock_guard lock(mu_);
      if (queue_.size() < s_.max_pending && !stopping_) {
        queue_.push_back(std::move(j));
        cv_.notify_one();
        return;
      }
    }
    Result r;
    r.error = "the Redis state store has " + std::to_string(s_.max_pending) + " requests waiting (max_pending)";
    deliver(j, std::move(r));
  }

  void run() {
    LinkPtr ctx;
    for (;;) {
      Job j;
      bool stopping;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        j = std::move(queue_.front());
        queue_.pop_front();
        stopping = stopping_;
      }
      // Shutting down: what is still queued is answered without waiting for Redis again.
      Result r;
      if (stopping) r.error = "the server is stopping";
      else r = execute(ctx, j);
      deliver(j, std::move(r));
    }
  }

  // A connection ready for commands, or null with `error` set.
  RedisLink* connect(LinkPtr& ctx, std::string& error) {
    if (ctx) return ctx.get();
    LinkPtr c = s_.tls ? connect_tls(s_, tls_.get(), error) : connect_plain(s_, error);
    if (!c) return nullptr;
    auto command_ok = [&](std::vector<std::string_view> argv, const char* what) {
      ReplyPtr reply = c->command(argv, error);
      if (reply && reply->type != REDIS_REPLY_ERROR) return true;
      if (reply) error = std::string("Redis refused ") + what + ": " + reply->str;
      return false;
    };
    if (!s_.password.empty() && !command_ok({"AUTH", s_.password}, "AUTH")) return nullptr;
    const std::string db = std::to_string(s_.database);
    if (s_.database != 0 && !command_ok({"SELECT", db}, "SELECT")) return nullptr;
    ctx = std::move(c);
    return ctx.get();
  }

  Result execute(LinkPtr& ctx, const Job& j) {
    Result r;
    RedisLink* c = connect(ctx, r.error);
    if (!c) return r;
    ReplyPtr reply;
    if (j.kind == Job::Issue) {
      const std::string ttl = std::to_string(static_cast<long long>(j.ttl.count()));
      reply = c->command({"SET", j.key, j.value, "NX", "EX", ttl}, r.error);
    } else {
      reply = c->command({"EVAL", kConsume, "1", j.key}, r.error);
    }
    if (!reply) {
      ctx.reset();  // a broken connection answers nothing again: reconnect next time
      return r;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      r.error = std::string("Redis answered an error: ") + reply->str;
      return r;
    }
    if (j.kind == Job::Issue) {
      if (reply->type == REDIS_REPLY_STATUS) r.status = Status::Done;
      else r.error = "the key exists already";
      return r;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_INTEGER) {
      r.error = "Redis answered the consume script with an unexpected reply";
      return r;
    }
    switch (reply->element[0]->integer) {
      case 0: r.status = Status::Unknown; break;
      case 1: r.status = Status::AlreadyUsed; break;
      default:
        if (reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_STRING) {
          r.status = Status::Done;
          r.value.assign(reply->element[1]->str, reply->element[1]->len);
        } else {
          r.error = "Redis answered the consume script with an unexpected reply";
        }
    }
    return r;
  }

  config::StateSettings s_;
  SslCtxPtr tls_;  // rediss:// only; shared by the workers' connections
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<Store> make_redis_store(const config::StateSettings& s) { return std::make_unique<RedisStore>(s); }

}  // namespace certgate::state
