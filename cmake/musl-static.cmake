# CMake toolchain file: a fully static x86_64 echokit on musl (make static).
#
#   cmake -S . -B build-static -DCMAKE_TOOLCHAIN_FILE=cmake/musl-static.cmake
#
# musl-gcc (Debian: musl-tools) is the host's gcc with musl's headers and
# libraries in place of glibc's. The libraries echokit links (zlib, and
# liburing or OpenSSL where they link) are Debian's glibc-built static
# archives; cmake/musl-static-deps.cmake, which CMakeLists.txt includes
# when EK_MUSL_STATIC is set, finds out which of them link with musl and
# gives them private copies of their headers: glibc's /usr/include must
# never be on musl-gcc's include path (its headers clash with musl's).
set(CMAKE_C_COMPILER musl-gcc)
# Every executable (and every link check CMake makes) static.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(EK_MUSL_STATIC ON)
# The glibc multiarch directory holding the static archives and the headers
# of the libraries linked: musl-gcc wraps x86_64-linux-gnu-gcc.
set(EK_MUSL_HOST_MULTIARCH x86_64-linux-gnu)
