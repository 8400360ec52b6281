// A dedicated unix-socket endpoint for passing file descriptors (SCM_RIGHTS, unix(7)): the
// cpr-transfer channel and any hand-over of memfds between processes. Node's net.Socket is not
// used for this: once Node reads from its fd the ancillary data is consumed and the passed fds
// are silently dropped. Every socket is non-blocking and close-on-exec; readiness comes from an
// FdWatcher. sendmsg/recvmsg/accept return "would block" as a value, not an error, because it is
// the normal case of a non-blocking socket.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"

namespace livemig {
namespace {

constexpr int kMaxFds = 253;  // SCM_MAX_FD in the kernel

int SocketType(const Napi::CallbackInfo& info, size_t i, const char* sc) {
  int type = static_cast<int>(OptU64(info, i, SOCK_STREAM, sc));
  if (type != SOCK_STREAM && type != SOCK_SEQPACKET) ThrowErrno(info.Env(), sc, EPROTOTYPE);
  return type | SOCK_NONBLOCK | SOCK_CLOEXEC;
}

sockaddr_un Address(const Napi::CallbackInfo& info, const char* sc) {
  if (!info[0].IsString()) ThrowErrno(info.Env(), sc, EINVAL, "path must be a string");
  std::string path = info[0].As<Napi::String>();
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    ThrowErrno(info.Env(), sc, ENAMETOOLONG, "unix socket path empty or too long");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// socketPair(type) → [fd, fd]
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SocketType(info, 0, "socketpair"), 0, sv) < 0) {
    ThrowErrno(info.Env(), "socketpair", errno);
  }
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, sv[0]);
  a.Set(1u, sv[1]);
  return a;
}

// listen(path, type, backlog) → listening fd. The caller removes a stale path first.
Napi::Value Listen(const Napi::CallbackInfo& info) {
  sockaddr_un addr = Address(info, "bind");
  int fd = socket(AF_UNIX, SocketType(info, 1, "socket"), 0);
  if (fd < 0) ThrowErrno(info.Env(), "socket", errno);
  int backlog = static_cast<int>(OptU64(info, 2, 16, "listen"));
  const char* failed = nullptr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) failed = "bind";
  else if (listen(fd, backlog) < 0) failed = "listen";
  if (failed) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), failed, err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// accept(fd) → connected fd, or -1 when no connection is pending.
Napi::Value Accept(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "accept4");
  int c;
  do c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC); while (c < 0 && errno == EINTR);
  if (c < 0 && errno != EAGAIN) ThrowErrno(info.Env(), "accept4", errno);
  return Napi::Number::New(info.Env(), c);
}

// connect(path, type) → connected fd. A unix-socket connect completes at once or fails
// (EAGAIN when the listener's backlog is full, ECONNREFUSED when nobody listens).
Napi::Value Connect(const Napi::CallbackInfo& info) {
  sockaddr_un addr = Address(info, "connect");
  int fd = socket(AF_UNIX, SocketType(info, 1, "socket"), 0);
  if (fd < 0) ThrowErrno(info.Env(), "socket", errno);
  int rc;
  do rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)); while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), "connect", err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// sendMsg(fd, payload, fds) → bytes sent, or -1 when the socket is full. The fds ride with the
// first byte (SCM_RIGHTS); on a stream socket a short send has already passed them.
Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "sendmsg");
  if (!info[1].IsTypedArray()) ThrowErrno(env, "sendmsg", EINVAL, "payload must be a Uint8Array");
  auto payload = info[1].As<Napi::TypedArray>();
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto arr = info[2].As<Napi::Array>();
    if (arr.Length() > kMaxFds) ThrowErrno(env, "sendmsg", EINVAL, "too many fds");
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsNumber()) ThrowErrno(env, "sendmsg", EBADF);
      fds.push_back(v.As<Napi::Number>().Int32Value());
    }
  }
  iovec iov = {static_cast<uint8_t*>(payload.ArrayBuffer().Data()) + payload.ByteOffset(),
               payload.ByteLength()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) ThrowErrno(env, "sendmsg", errno);
  return Napi::Number::New(env, static_cast<double>(n));
}

// recvMsg(fd, buffer) → {bytes, fds, truncated} or null when nothing is pending. bytes 0 is
// end of stream. Received fds are close-on-exec; the caller owns them.
Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "recvmsg");
  if (!info[1].IsTypedArray()) ThrowErrno(env, "recvmsg", EINVAL, "buffer must be a Uint8Array");
  auto buf = info[1].As<Napi::TypedArray>();
  iovec iov = {static_cast<uint8_t*>(buf.ArrayBuffer().Data()) + buf.ByteOffset(), buf.ByteLength()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds));
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return env.Null();
    ThrowErrno(env, "recvmsg", errno);
  }
  Napi::Array fds = Napi::Array::New(env);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int r;
      std::memcpy(&r, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.Set(fds.Length(), r);
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(n)));
  o.Set("fds", fds);
  o.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0));
  return o;
}

// shutdownWrite(fd): the peer reads end of stream; receiving still works.
Napi::Value ShutdownWrite(const Napi::CallbackInfo& info) {
  if (shutdown(ArgFd(info, 0, "shutdown"), SHUT_WR) < 0) ThrowErrno(info.Env(), "shutdown", errno);
  return info.Env().Undefined();
}

// shutdown(fd): SHUT_RDWR — the connection ends for every descriptor of it, dups in other
// threads included (closing ours alone would leave it open while a dup lives).
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  if (shutdown(ArgFd(info, 0, "shutdown"), SHUT_RDWR) < 0) ThrowErrno(info.Env(), "shutdown", errno);
  return info.Env().Undefined();
}

// close(fd): any fd this addon handed out (memfd, userfaultfd, socket, pagemap).
Napi::Value Close(const Napi::CallbackInfo& info) {
  // close(2) on Linux releases the fd even when it reports EINTR: never retry.
  if (close(ArgFd(info, 0, "close")) < 0 && errno != EINTR) ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

// setSocketBuffers(fd, sndbuf, rcvbuf): SO_SNDBUF / SO_RCVBUF on any socket (Node offers no
// way to size a stream socket's kernel buffers). The kernel caps them at wmem_max/rmem_max
// and doubles what it grants; 0 leaves one unchanged. Returns the effective sizes.
Napi::Value SetSocketBuffers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "setsockopt");
  int want[2] = {static_cast<int>(ArgU64(info, 1, "setsockopt")), static_cast<int>(ArgU64(info, 2, "setsockopt"))};
  int opt[2] = {SO_SNDBUF, SO_RCVBUF};
  Napi::Object out = Napi::Object::New(env);
  for (int i = 0; i < 2; i++) {
    if (want[i] > 0 && setsockopt(fd, SOL_SOCKET, opt[i], &want[i], sizeof want[i]) < 0) {
      ThrowErrno(env, "setsockopt", errno);
    }
    int got = 0;
    socklen_t len = sizeof got;
    if (getsockopt(fd, SOL_SOCKET, opt[i], &got, &len) < 0) ThrowErrno(env, "getsockopt", errno);
    out.Set(i == 0 ? "sndbuf" : "rcvbuf", Napi::Number::New(env, got));
  }
  return out;
}

}  // namespace

void InitFdPass(Napi::Env env, Napi::Object exports) {
  exports.Set("socketPair", Napi::Function::New(env, SocketPair, "socketPair"));
  exports.Set("setSocketBuffers", Napi::Function::New(env, SetSocketBuffers, "setSocketBuffers"));
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("accept", Napi::Function::New(env, Accept, "accept"));
  exports.Set("connect", Napi::Function::New(env, Connect, "connect"));
  exports.Set("sendMsg", Napi::Function::New(env, SendMsg, "sendMsg"));
  exports.Set("recvMsg", Napi::Function::New(env, RecvMsg, "recvMsg"));
  exports.Set("shutdownWrite", Napi::Function::New(env, ShutdownWrite, "shutdownWrite"));
  exports.Set("shutdown", Napi::Function::New(env, Shutdown, "shutdown"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
}

}  // namespace livemig
