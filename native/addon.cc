// Module init only: each mechanism lives in its own file and registers its functions here.
// The addon is loaded once per JS environment (main thread and each worker_thread); state
// shared across threads (the mapping registry) is process-wide, per-environment state (the
// error class) is instance data.
#include <napi.h>

namespace livemig {
void InitErrors(Napi::Env env, Napi::Object exports);
void InitMemfd(Napi::Env env, Napi::Object exports);
void InitUserfaultfd(Napi::Env env, Napi::Object exports);
void InitFdWatcher(Napi::Env env, Napi::Object exports);
void InitFdPass(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitFdIo(Napi::Env env, Napi::Object exports);
void InitLockedWrite(Napi::Env env, Napi::Object exports);
void InitPagemap(Napi::Env env, Napi::Object exports);
void InitPageIo(Napi::Env env, Napi::Object exports);
void InitRamRecords(Napi::Env env, Napi::Object exports);
void InitThread(Napi::Env env, Napi::Object exports);
}  // namespace livemig

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  livemig::InitErrors(env, exports);
  livemig::InitMemfd(env, exports);
  livemig::InitUserfaultfd(env, exports);
  livemig::InitFdWatcher(env, exports);
  livemig::InitFdPass(env, exports);
  livemig::InitSocket(env, exports);
  livemig::InitFdIo(env, exports);
  livemig::InitLockedWrite(env, exports);
  livemig::InitPagemap(env, exports);
  livemig::InitPageIo(env, exports);
  livemig::InitRamRecords(env, exports);
  livemig::InitThread(env, exports);
  return exports;
}

NODE_API_MODULE(livemig, Init)
