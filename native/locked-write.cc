// lockedWriteAll: whole small messages from several threads on one socket, never interleaved.
// The postcopy return path is written by the main thread (SHUT, PONG, …) and by the fault
// worker (page requests) at the same time; QEMU serialises them with rp_mutex around a
// blocking write. Here every writer takes a process-wide lock for the socket, writes the whole
// message (waiting in poll(2) whenever the socket is full) and releases it; the wait, the lock
// included, is bounded by a timeout so a stuck peer cannot hang a thread forever.
//
// The lock belongs to the open socket, not to the descriptor number: it is keyed by the
// socket's (st_dev, st_ino), so a worker holding dup(fd) shares it with the main thread's fd.
// The map only grows (one small entry per socket ever written this way) and is never freed,
// so a thread still writing at process exit never meets a destroyed mutex.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "errors.h"

namespace livemig {
namespace {

using Clock = std::chrono::steady_clock;

std::timed_mutex& LockFor(dev_t dev, ino_t ino) {
  static std::mutex* registry = new std::mutex;
  static auto* locks = new std::map<std::pair<dev_t, ino_t>, std::unique_ptr<std::timed_mutex>>;
  std::lock_guard<std::mutex> g(*registry);
  auto& slot = (*locks)[{dev, ino}];
  if (!slot) slot = std::make_unique<std::timed_mutex>();
  return *slot;
}

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(std::min<int64_t>(left, INT32_MAX)) : 0;
}

// One send; MSG_DONTWAIT keeps it non-blocking even on a descriptor someone set blocking, and
// MSG_NOSIGNAL turns a vanished peer into EPIPE. A pipe (ENOTSOCK) falls back to write(2).
ssize_t SendSome(int fd, const uint8_t* p, size_t n, bool* isSocket) {
  ssize_t r;
  if (*isSocket) {
    do r = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
    if (r >= 0 || errno != ENOTSOCK) return r;
    *isSocket = false;
  }
  do r = write(fd, p, n); while (r < 0 && errno == EINTR);
  return r;
}

// lockedWriteAll(fd, buf, timeoutMs) → buf's length once all of it is written. ETIMEDOUT when
// the lock or the socket's room did not come in time; some of the message may then be written
// already, so the stream is broken and the caller must fail the channel.
Napi::Value LockedWriteAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "send");
  if (!info[1].IsTypedArray()) ThrowErrno(env, "send", EINVAL, "expected a Uint8Array");
  auto buf = info[1].As<Napi::TypedArray>();
  uint64_t timeoutMs = ArgU64(info, 2, "send");
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(std::min<uint64_t>(timeoutMs, 24ull * 3600 * 1000));
  struct stat st;
  if (fstat(fd, &st) < 0) ThrowErrno(env, "fstat", errno);
  auto* base = static_cast<uint8_t*>(buf.ArrayBuffer().Data());
  const uint8_t* p = base ? base + buf.ByteOffset() : nullptr;
  const size_t len = buf.ByteLength();

  std::timed_mutex& m = LockFor(st.st_dev, st.st_ino);
  if (!m.try_lock_until(deadline)) ThrowErrno(env, "send", ETIMEDOUT, "waiting for the socket's write lock");
  int err = 0;
  const char* sc = "send";
  {
    std::lock_guard<std::timed_mutex> held(m, std::adopt_lock);
    bool isSocket = true;
    size_t off = 0;
    while (off < len) {
      ssize_t n = SendSome(fd, p + off, len - off, &isSocket);
      if (n >= 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (errno != EAGAIN) {
        err = errno;
        if (!isSocket) sc = "write";
        break;
      }
      pollfd pfd = {fd, POLLOUT, 0};
      int rc = poll(&pfd, 1, MillisLeft(deadline));
      if (rc == 0) {
        err = ETIMEDOUT;
        break;
      }
      if (rc < 0 && errno != EINTR) {
        err = errno;
        sc = "poll";
        break;
      }
      // POLLERR/POLLHUP: the next send reports the socket's error.
    }
  }
  // The error object is built after the lock is released: other writers need not wait on it.
  if (err == ETIMEDOUT) ThrowErrno(env, sc, err, "the socket stayed full; part of the message may be written");
  if (err) ThrowErrno(env, sc, err);
  return Napi::Number::New(env, static_cast<double>(len));
}

}  // namespace

void InitLockedWrite(Napi::Env env, Napi::Object exports) {
  exports.Set("lockedWriteAll", Napi::Function::New(env, LockedWriteAll, "lockedWriteAll"));
}

}  // namespace livemig
