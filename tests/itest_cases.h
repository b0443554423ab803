/*
 * The integration cases. tests/CMakeLists.txt reads this file to register
 * one CTest test per MODEL_CASE and I/O model ("<model>.<case>") and one
 * per GLOBAL_CASE ("cli.<case>"); the number is the CTest timeout (s).
 * itest.c expands it into its dispatch table.
 */
MODEL_CASE(tutorial, 60)
MODEL_CASE(payload_1b, 60)
MODEL_CASE(payload_1k, 60)
MODEL_CASE(payload_1m, 60)
MODEL_CASE(payload_64m, 180)
MODEL_CASE(concurrent_200, 180)
MODEL_CASE(pipelined, 60)
MODEL_CASE(slow_reader, 180)
MODEL_CASE(half_close, 60)
MODEL_CASE(reset, 60)
MODEL_CASE(idle_memory, 120)
MODEL_CASE(ipv6, 60)
MODEL_CASE(unix_socket, 60)
MODEL_CASE(localhost, 60)
MODEL_CASE(max_conns, 60)
MODEL_CASE(drain, 60)
MODEL_CASE(drain_timeout, 60)
MODEL_CASE(second_signal, 60)
MODEL_CASE(fd_exhaustion, 90)
MODEL_CASE(many_fds, 180)
GLOBAL_CASE(serve_usage, 60)
GLOBAL_CASE(serve_errors, 60)
GLOBAL_CASE(send_usage, 60)
GLOBAL_CASE(send_exit_codes, 60)
GLOBAL_CASE(send_pipe, 60)
