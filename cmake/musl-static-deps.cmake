# The libraries of a static musl build (cmake/musl-static.cmake, make
# static), included by CMakeLists.txt before anything is found.
#
# Debian ships its static archives built against glibc. Each is linked here
# into a small program with musl-gcc -static first: zlib must link (it is
# required); liburing and OpenSSL are left out when they do not, with
# EK_URING_OFF_REASON / EK_TLS_OFF_REASON saying why (the symbols musl
# lacks), which CMake prints and the binary reports (--version, serve --io
# list). Asking for one with -DEK_URING=ON or -DEK_TLS=ON makes that a
# configure error instead.
#
# Their headers are copied into build-static/musl-include, because the
# directory they live in, /usr/include, is glibc's and must not be on
# musl-gcc's include path.

set(EK_MUSL_INCLUDE ${CMAKE_BINARY_DIR}/musl-include)
set(_host_inc /usr/include)
set(_host_arch_inc /usr/include/${EK_MUSL_HOST_MULTIARCH})
set(_host_lib /usr/lib/${EK_MUSL_HOST_MULTIARCH})
file(REMOVE_RECURSE ${EK_MUSL_INCLUDE} ${CMAKE_BINARY_DIR}/musl-probe)
file(MAKE_DIRECTORY ${EK_MUSL_INCLUDE})
include_directories(SYSTEM ${EK_MUSL_INCLUDE})
# Static archives only: a glibc shared library must never be picked.
set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
# pkg-config (liburing) must not hand out -I/usr/include.
unset(ENV{PKG_CONFIG_ALLOW_SYSTEM_CFLAGS})

# ek_musl_copy(DEST SRC...): copies host header files or directories into
# the private include directory (DEST relative to it); false in
# ek_musl_copy_ok when one is missing.
macro(ek_musl_copy dest)
  foreach(_src ${ARGN})
    if(EXISTS ${_src})
      file(COPY ${_src} DESTINATION ${EK_MUSL_INCLUDE}/${dest})
    else()
      set(ek_musl_copy_ok FALSE)
      list(APPEND ek_musl_missing ${_src})
    endif()
  endforeach()
endmacro()

# ek_musl_probe(NAME WHAT SOURCE LIB...): links SOURCE (a C program) with
# musl-gcc -static against the archives LIB...; sets NAME_LINKS, and when
# it does not link, NAME_WHY: "static musl build: WHAT built for glibc:
# musl lacks SYMBOLS" (the symbols the linker found undefined, "built for
# glibc" when they include glibc's _FORTIFY_SOURCE checks, __*_chk), or
# "WHAT not linkable with musl, which lacks SYMBOLS". WHAT ends with its
# verb ("libz.a is"). The linker's whole output is kept in
# musl-probe/NAME.log.
function(ek_musl_probe name what source)
  set(_dir ${CMAKE_BINARY_DIR}/musl-probe/${name})
  file(WRITE ${_dir}/probe.c "${source}")
  unset(_ek_probe_ok CACHE)
  set(_lc_all "$ENV{LC_ALL}")
  set(ENV{LC_ALL} C) # the linker's messages are parsed
  try_compile(_ek_probe_ok ${_dir}/build ${_dir}/probe.c
              CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${EK_MUSL_INCLUDE}"
              COMPILE_DEFINITIONS -D_GNU_SOURCE
              LINK_LIBRARIES ${ARGN}
              OUTPUT_VARIABLE _out)
  set(ENV{LC_ALL} "${_lc_all}")
  set(_ok ${_ek_probe_ok})
  unset(_ek_probe_ok CACHE)
  file(WRITE ${CMAKE_BINARY_DIR}/musl-probe/${name}.log "${_out}")
  set(${name}_LINKS ${_ok} PARENT_SCOPE)
  if(_ok)
    return()
  endif()
  string(REGEX MATCHALL "undefined reference to `[^']+'" _refs "${_out}")
  set(_syms "")
  set(_glibc FALSE)
  foreach(_ref ${_refs})
    string(REGEX REPLACE "undefined reference to `([^']+)'" "\\1" _sym
                         "${_ref}")
    list(APPEND _syms ${_sym})
    if(_sym MATCHES "^__[a-z0-9_]+_chk$")
      set(_glibc TRUE)
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _syms)
  list(LENGTH _syms _n)
  if(_n EQUAL 0)
    # Not a missing symbol: the compiler's or linker's first error line.
    string(REGEX MATCH "[^\n]*(error|Error)[^\n]*" _first "${_out}")
    string(STRIP "${_first}" _first)
    set(_why "${what} not linkable with musl: ${_first}")
  else()
    set(_shown ${_syms})
    if(_n GREATER 10)
      list(SUBLIST _syms 0 9 _shown)
    endif()
    string(JOIN ", " _list ${_shown})
    if(_n GREATER 10)
      math(EXPR _more "${_n} - 9")
      string(APPEND _list " and ${_more} more")
    endif()
    if(_glibc)
      set(_why "${what} built for glibc: musl lacks ${_list}")
    else()
      set(_why "${what} not linkable with musl, which lacks ${_list}")
    endif()
  endif()
  # The reason ends up in a C string literal (ek_config.h).
  string(REPLACE "\"" "'" _why "${_why}")
  string(REPLACE "\\" "/" _why "${_why}")
  set(${name}_WHY "static musl build: ${_why}" PARENT_SCOPE)
endfunction()

# zlib: required.
set(ek_musl_copy_ok TRUE)
ek_musl_copy(. ${_host_inc}/zlib.h ${_host_inc}/zconf.h)
if(NOT ek_musl_copy_ok OR NOT EXISTS ${_host_lib}/libz.a)
  message(FATAL_ERROR "static musl build: zlib's headers and ${_host_lib}/libz.a are required (Debian: zlib1g-dev)")
endif()
ek_musl_probe(EK_MUSL_ZLIB "${_host_lib}/libz.a is"
  "#include <zlib.h>\nint main(void)\n{\n    z_stream z = {0};\n    int rc = deflateInit(&z, 6);\n    deflateEnd(&z);\n    return rc;\n}\n"
  ${_host_lib}/libz.a)
if(NOT EK_MUSL_ZLIB_LINKS)
  message(FATAL_ERROR "${EK_MUSL_ZLIB_WHY}; zlib is required (see ${CMAKE_BINARY_DIR}/musl-probe/EK_MUSL_ZLIB.log)")
endif()
set(ZLIB_INCLUDE_DIR ${EK_MUSL_INCLUDE} CACHE PATH "zlib headers (private copy)" FORCE)
set(ZLIB_LIBRARY ${_host_lib}/libz.a CACHE FILEPATH "zlib" FORCE)

# liburing: its header includes Linux's uapi headers, which musl does not
# ship; the copy takes linux/, asm-generic/ and the architecture's asm/.
if(EK_LINUX_EXT AND NOT EK_URING STREQUAL "OFF")
  set(ek_musl_copy_ok TRUE)
  set(ek_musl_missing "")
  ek_musl_copy(. ${_host_inc}/liburing.h ${_host_inc}/liburing
               ${_host_inc}/linux ${_host_inc}/asm-generic)
  ek_musl_copy(. ${_host_arch_inc}/asm)
  if(NOT ek_musl_copy_ok OR NOT EXISTS ${_host_lib}/liburing.a)
    set(EK_MUSL_URING_LINKS FALSE)
    set(EK_MUSL_URING_WHY "static musl build: no liburing headers or ${_host_lib}/liburing.a (Debian: liburing-dev)")
  else()
    ek_musl_probe(EK_MUSL_URING "${_host_lib}/liburing.a is"
      "#include <liburing.h>\nint main(void)\n{\n    struct io_uring ring;\n    if (io_uring_queue_init(8, &ring, 0) < 0)\n        return 1;\n    io_uring_prep_nop(io_uring_get_sqe(&ring));\n    io_uring_submit(&ring);\n    io_uring_queue_exit(&ring);\n    return 0;\n}\n"
      ${_host_lib}/liburing.a)
  endif()
  if(NOT EK_MUSL_URING_LINKS)
    if(EK_URING STREQUAL "ON")
      message(FATAL_ERROR "EK_URING=ON: ${EK_MUSL_URING_WHY}")
    endif()
    set(EK_URING OFF)
    set(EK_URING_OFF_REASON "${EK_MUSL_URING_WHY}")
  endif()
endif()

# OpenSSL 3: its headers, and the architecture's opensslconf.h and
# configuration.h beside them.
if(NOT EK_TLS STREQUAL "OFF")
  set(ek_musl_copy_ok TRUE)
  set(ek_musl_missing "")
  ek_musl_copy(. ${_host_inc}/openssl)
  file(GLOB _arch_ssl_headers ${_host_arch_inc}/openssl/*.h)
  ek_musl_copy(openssl ${_arch_ssl_headers})
  if(NOT ek_musl_copy_ok OR NOT _arch_ssl_headers
     OR NOT EXISTS ${_host_lib}/libssl.a OR NOT EXISTS ${_host_lib}/libcrypto.a)
    set(EK_MUSL_TLS_LINKS FALSE)
    set(EK_MUSL_TLS_WHY "static musl build: no OpenSSL 3 headers or static libraries (${_host_lib}/libssl.a, libcrypto.a; Debian: libssl-dev)")
  else()
    ek_musl_probe(EK_MUSL_TLS "OpenSSL's static libraries (libssl.a, libcrypto.a) are"
      "#include <openssl/ssl.h>\nint main(void)\n{\n    SSL_CTX *ctx = SSL_CTX_new(TLS_method());\n    SSL_CTX_free(ctx);\n    return ctx == NULL;\n}\n"
      ${_host_lib}/libssl.a ${_host_lib}/libcrypto.a)
  endif()
  if(EK_MUSL_TLS_LINKS)
    set(OPENSSL_USE_STATIC_LIBS TRUE)
    set(OPENSSL_INCLUDE_DIR ${EK_MUSL_INCLUDE} CACHE PATH "OpenSSL headers (private copy)" FORCE)
    set(OPENSSL_SSL_LIBRARY ${_host_lib}/libssl.a CACHE FILEPATH "libssl" FORCE)
    set(OPENSSL_CRYPTO_LIBRARY ${_host_lib}/libcrypto.a CACHE FILEPATH "libcrypto" FORCE)
  else()
    if(EK_TLS STREQUAL "ON")
      message(FATAL_ERROR "EK_TLS=ON: ${EK_MUSL_TLS_WHY}")
    endif()
    set(EK_TLS OFF)
    set(EK_TLS_OFF_REASON "${EK_MUSL_TLS_WHY}")
  endif()
endif()
