// Thread names (prctl PR_SET_NAME): the kernel shows them in /proc/PID/task/TID/comm, top and
// perf, so the CPU time of each of livemig's threads (vCPUs, multifd channels, the populate
// helper) can be told apart — as QEMU names its threads with -name debug-threads=on.
#include <sys/prctl.h>

#include <cerrno>
#include <string>

#include "errors.h"

namespace livemig {
namespace {

// setThreadName(name): the calling thread's name; the kernel keeps 15 bytes.
Napi::Value SetThreadName(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) ThrowErrno(info.Env(), "prctl", EINVAL, "expected a name");
  std::string name = info[0].As<Napi::String>().Utf8Value().substr(0, 15);
  if (prctl(PR_SET_NAME, name.c_str(), 0, 0, 0) < 0) ThrowErrno(info.Env(), "prctl", errno);
  return info.Env().Undefined();
}

}  // namespace

void InitThread(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreadName", Napi::Function::New(env, SetThreadName, "setThreadName"));
}

}  // namespace livemig
