{
  "targets": [
    {
      "target_name": "vswitchd_native",
      "sources": [
        "native/addon.cc",
        "native/afxdp/xsk.cc",
        "native/datapath/datapath.cc",
        "native/datapath/hot_loop.cc",
        "native/fastpath/fastpath.cc",
        "native/fdb/fdb_table.cc",
        "native/system/sd_notify.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native", "bpf/include"],
      "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["<!@(pkg-config --libs libxdp libbpf)"]
    }
  ]
}
