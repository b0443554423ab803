/*
 * ek_transports: the table of transports, by enum ek_tp_id (ek_transport.h).
 *
 * Alone in its file on purpose: a unit test that defines ek_transports
 * itself (tests/test_conn.c, a scripted transport in a slot) links
 * against the library without this object, and drives ek_conn.c's echo
 * policy through it.
 */
#include "ek_transport.h"

const struct ek_transport *const ek_transports[EK_TP_COUNT] = {
    [EK_TP_SOCKET] = &ek_transport_socket,
#ifdef EK_HAVE_TLS
    [EK_TP_TLS] = &ek_transport_tls,
    [EK_TP_TLS_MEM] = &ek_transport_tls_mem,
#endif
};
