{
  "targets": [
    {
      "target_name": "orig_dst",
      "sources": ["orig_dst.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
