// getOriginalDst(fd): where a connection that iptables REDIRECTed (nat table) was going before, read from
// conntrack with getsockopt(SO_ORIGINAL_DST) — the one socket option Node cannot read itself. Node-API only, so
// one build loads in every Node version.
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

// Kernel ABI constants, defined here rather than from <linux/netfilter_ipv4.h> and
// <linux/netfilter_ipv6/ip6_tables.h>, whose includes clash with glibc's <netinet/in.h> on some systems.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif
#ifndef SOL_IP
#define SOL_IP 0
#endif
#ifndef SOL_IPV6
#define SOL_IPV6 41
#endif

#define CHECK(env, call)                                                                                            \
  do {                                                                                                             \
    if ((call) != napi_ok) {                                                                                       \
      napi_throw_error((env), "WEFT_ERR_ORIG_DST_NAPI", "Node-API call failed: " #call);                           \
      return NULL;                                                                                                 \
    }                                                                                                              \
  } while (0)

static napi_value make_result(napi_env env, const char *address, unsigned port, const char *family) {
  napi_value obj, v;
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &v));
  CHECK(env, napi_set_named_property(env, obj, "address", v));
  CHECK(env, napi_create_uint32(env, port, &v));
  CHECK(env, napi_set_named_property(env, obj, "port", v));
  CHECK(env, napi_create_string_utf8(env, family, NAPI_AUTO_LENGTH, &v));
  CHECK(env, napi_set_named_property(env, obj, "family", v));
  return obj;
}

static napi_value get_original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type;
  int32_t fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_number) {
    napi_throw_type_error(env, "WEFT_ERR_ORIG_DST_ARG", "getOriginalDst(fd): fd must be a number");
    return NULL;
  }
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  if (fd < 0) {
    napi_throw_range_error(env, "WEFT_ERR_ORIG_DST_ARG", "getOriginalDst(fd): fd must be >= 0");
    return NULL;
  }

  char text[INET6_ADDRSTRLEN];
  struct sockaddr_in v4;
  socklen_t len = sizeof(v4);
  memset(&v4, 0, sizeof(v4));
  // IPv4 first: it also answers for IPv4-mapped connections on a dual-stack (AF_INET6) socket.
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &v4, &len) == 0 && v4.sin_family == AF_INET &&
      inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text)) != NULL) {
    return make_result(env, text, ntohs(v4.sin_port), "IPv4");
  }
  int err4 = errno;
  if (err4 == EBADF || err4 == ENOTSOCK) {
    napi_throw_error(env, "WEFT_ERR_ORIG_DST_FD", "getOriginalDst(fd): not an open socket");
    return NULL;
  }

  struct sockaddr_in6 v6;
  len = sizeof(v6);
  memset(&v6, 0, sizeof(v6));
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &v6, &len) == 0 && v6.sin6_family == AF_INET6 &&
      inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text)) != NULL) {
    return make_result(env, text, ntohs(v6.sin6_port), "IPv6");
  }
  // No conntrack entry (ENOENT), not TCP/IP, or the nat modules absent: nothing to report.
  napi_value nul;
  CHECK(env, napi_get_null(env, &nul));
  return nul;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(env, napi_create_function(env, "getOriginalDst", NAPI_AUTO_LENGTH, get_original_dst, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "getOriginalDst", fn));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
