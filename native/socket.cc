// TCP stream sockets for the migration channels (IPv4 and IPv6). Name resolution stays in
// JavaScript (dns.lookup): these calls take numeric addresses only, so nothing here blocks on
// DNS. Unix sockets come from fdpass.cc (listen/connect/accept), and accept4, shutdown, close
// and SO_SNDBUF/SO_RCVBUF there serve both families. Every socket is non-blocking and
// close-on-exec; readiness comes from an FdWatcher.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "errors.h"

namespace livemig {
namespace {

struct InetAddress {
  sockaddr_storage addr = {};
  socklen_t len = 0;
};

// getaddrinfo with AI_NUMERICHOST only parses ("::1", "10.0.0.1", "fe80::1%eth0"); a name
// is refused rather than looked up.
InetAddress Numeric(const Napi::CallbackInfo& info, const char* sc, bool emptyMeansAny = false) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowErrno(env, sc, EINVAL, "host must be a string");
  std::string host = info[0].As<Napi::String>();
  uint64_t port = ArgU64(info, 1, sc);
  if (port > 65535) ThrowErrno(env, sc, EINVAL, "port out of range");
  InetAddress out;
  if (host.empty() && emptyMeansAny) {
    // Every address: "::" dual-stack when the host has IPv6, as Node and QEMU listen.
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_addr = in6addr_any;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    out.len = sizeof(sockaddr_in6);
    return out;
  }
  addrinfo hints = {};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0 || !res) {
    ThrowErrno(env, sc, EINVAL, "not a numeric IPv4/IPv6 address");
  }
  std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
  out.len = res->ai_addrlen;
  freeaddrinfo(res);
  return out;
}

int StreamSocket(Napi::Env env, int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  return fd;
}

[[noreturn]] void CloseAndThrow(Napi::Env env, int fd, const char* sc) {
  int err = errno;
  close(fd);
  ThrowErrno(env, sc, err);
}

// tcpConnect(host, port) → fd with the connection under way. A non-blocking connect finishes
// later: the fd turns writable and socketError(fd) says how it went (0 = connected).
Napi::Value TcpConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  InetAddress a = Numeric(info, "connect");
  int fd = StreamSocket(env, a.addr.ss_family);
  // EINTR on a non-blocking connect: the attempt goes on asynchronously, like EINPROGRESS.
  if (connect(fd, reinterpret_cast<sockaddr*>(&a.addr), a.len) < 0 && errno != EINPROGRESS && errno != EINTR) {
    CloseAndThrow(env, fd, "connect");
  }
  return Napi::Number::New(env, fd);
}

// tcpListen(host, port, backlog) → {fd, host, port}: the bound numeric address, so port 0
// reports the kernel's ephemeral port (query-migrate's socket-address). An empty host listens
// on every address.
Napi::Value TcpListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  InetAddress a = Numeric(info, "bind", true);
  const bool any = info[0].As<Napi::String>().Utf8Value().empty();
  int backlog = static_cast<int>(OptU64(info, 2, 16, "listen"));
  int fd = socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && errno == EAFNOSUPPORT && any) {
    // A host without IPv6: every IPv4 address instead.
    auto* a4 = reinterpret_cast<sockaddr_in*>(&a.addr);
    uint16_t port = reinterpret_cast<sockaddr_in6*>(&a.addr)->sin6_port;
    a.addr = {};
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_ANY);
    a4->sin_port = port;
    a.len = sizeof(sockaddr_in);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) ThrowErrno(env, "socket", errno);
  // A restarted destination must be able to bind while the previous run's connections sit in
  // TIME_WAIT (QEMU's inet_listen_saddr and libuv do the same).
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) CloseAndThrow(env, fd, "setsockopt");
  if (a.addr.ss_family == AF_INET6 && any) {
    int zero = 0;  // "::" also accepts IPv4 (mapped), whatever net.ipv6.bindv6only says
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&a.addr), a.len) < 0) CloseAndThrow(env, fd, "bind");
  if (listen(fd, backlog) < 0) CloseAndThrow(env, fd, "listen");
  sockaddr_storage bound = {};
  socklen_t len = sizeof bound;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) < 0) CloseAndThrow(env, fd, "getsockname");
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&bound), len, host, sizeof host, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    close(fd);
    ThrowErrno(env, "getnameinfo", EINVAL);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("host", Napi::String::New(env, host));
  out.Set("port", Napi::Number::New(env, std::stoi(serv)));
  return out;
}

// socketError(fd) → the pending error (SO_ERROR, which reading clears), 0 when none: how a
// non-blocking connect ended.
Napi::Value SocketError(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "getsockopt");
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) ThrowErrno(info.Env(), "getsockopt", errno);
  return Napi::Number::New(info.Env(), err);
}

// socketType(fd) → SO_TYPE (SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5): a descriptor handed
// over on fd: must be a byte stream.
Napi::Value SocketType(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "getsockopt");
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) ThrowErrno(info.Env(), "getsockopt", errno);
  return Napi::Number::New(info.Env(), type);
}

// setNoDelay(fd, on): TCP_NODELAY. The return path carries small latency-bound messages
// (postcopy page requests) that Nagle would hold back.
Napi::Value SetNoDelay(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "setsockopt");
  int on = info.Length() > 1 && info[1].ToBoolean().Value() ? 1 : 0;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0) ThrowErrno(info.Env(), "setsockopt", errno);
  return info.Env().Undefined();
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("tcpConnect", Napi::Function::New(env, TcpConnect, "tcpConnect"));
  exports.Set("tcpListen", Napi::Function::New(env, TcpListen, "tcpListen"));
  exports.Set("socketError", Napi::Function::New(env, SocketError, "socketError"));
  exports.Set("socketType", Napi::Function::New(env, SocketType, "socketType"));
  exports.Set("setNoDelay", Napi::Function::New(env, SetNoDelay, "setNoDelay"));
}

}  // namespace livemig
