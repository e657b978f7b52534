#include "state/redis_store.hpp"

#include <boost/asio/post.hpp>
#include <hiredis/hiredis.h>
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

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;
struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;

class RedisStore final : public Store {
 public:
  explicit RedisStore(const config::StateSettings& s) : s_(s) {
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
    ContextPtr ctx;
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
  redisContext* connect(ContextPtr& ctx, std::string& error) {
    if (ctx) return ctx.get();
    const timeval tv{static_cast<time_t>(s_.timeout_ms / 1000), static_cast<suseconds_t>((s_.timeout_ms % 1000) * 1000)};
    ContextPtr c(redisConnectWithTimeout(s_.host.c_str(), s_.port, tv));
    if (!c || c->err) {
      error = "cannot connect to Redis at " + s_.host + ":" + std::to_string(s_.port) + ": " +
              (c ? c->errstr : "out of memory");
      return nullptr;
    }
    redisSetTimeout(c.get(), tv);
    auto command_ok = [&](ReplyPtr reply, const char* what) {
      if (reply && reply->type != REDIS_REPLY_ERROR) return true;
      error = std::string("Redis refused ") + what + ": " + (reply ? reply->str : c->errstr);
      return false;
    };
    if (!s_.password.empty() &&
        !command_ok(ReplyPtr(static_cast<redisReply*>(redisCommand(c.get(), "AUTH %b", s_.password.data(), s_.password.size()))),
                    "AUTH"))
      return nullptr;
    if (s_.database != 0 &&
        !command_ok(ReplyPtr(static_cast<redisReply*>(redisCommand(c.get(), "SELECT %d", s_.database))), "SELECT"))
      return nullptr;
    ctx = std::move(c);
    return ctx.get();
  }

  Result execute(ContextPtr& ctx, const Job& j) {
    Result r;
    redisContext* c = connect(ctx, r.error);
    if (!c) return r;
    ReplyPtr reply;
    if (j.kind == Job::Issue) {
      reply.reset(static_cast<redisReply*>(redisCommand(c, "SET %b %b NX EX %lld", j.key.data(), j.key.size(),
                                                        j.value.data(), j.value.size(),
                                                        static_cast<long long>(j.ttl.count()))));
    } else {
      reply.reset(static_cast<redisReply*>(redisCommand(c, "EVAL %s 1 %b", kConsume, j.key.data(), j.key.size())));
    }
    if (!reply) {
      r.error = std::string("Redis connection failed: ") + c->errstr;
      ctx.reset();  // a broken context answers nothing again: reconnect next time
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
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<Store> make_redis_store(const config::StateSettings& s) { return std::make_unique<RedisStore>(s); }

}  // namespace certgate::state
