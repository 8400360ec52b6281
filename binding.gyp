{
  "targets": [
    {
      "target_name": "livemig",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/mappings.cc",
        "native/memfd.cc",
        "native/userfaultfd.cc",
        "native/fd-watcher.cc",
        "native/fdpass.cc",
        "native/socket.cc",
        "native/fd-io.cc",
        "native/locked-write.cc",
        "native/pagemap.cc",
        "native/page-util.cc",
        "native/page-io.cc",
        "native/ram-records.cc",
        "native/thread.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
