"""C source of the GnuTLS load generator for ``ztp bench gateway`` (compiled at bench time).

The second, independent client stack (issue 14): the same exchanges, file format, output and
command line as the OpenSSL one in ``_c_loadgen``, built on GnuTLS (libgnutls28-dev), so a
server that one client library handles badly shows up as two clients disagreeing.

One exchange = TCP connect + TLS 1.3 external-PSK handshake (priority string: TLS 1.3,
TLS_AES_128_CCM_SHA256, key exchange PSK only, i.e. psk_ke without a key_share, as a SIM
sends) + one HTTP GET + read the reply until the server closes + close (no close_notify sent,
as the OpenSSL client). Identities are raw bytes (gnutls_psk_set_client_credentials2), one
credential per identity made before the clock starts. An exchange whose negotiated key
exchange is not plain PSK is counted in ``dhe`` (must be 0).

Usage: loadgen-gnutls HOST PORT IDFILE THREADS SECONDS. Output: one line of JSON, including
the generator's own CPU time (getrusage).
"""

from ._c_harness import c_source

_CLIENT = r"""
static gnutls_priority_t g_prio;

static int exchange(worker_t *w, entry_t *e) {
    char req[512], buf[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, ok = 0, r;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0) { close(fd); return 0; }
    gnutls_session_t s;
    if (gnutls_init(&s, GNUTLS_CLIENT) < 0) { close(fd); return 0; }
    gnutls_priority_set(s, g_prio);
    gnutls_credentials_set(s, GNUTLS_CRD_PSK, e->cred);
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, "gw.example", 10);
    gnutls_transport_set_int(s, fd);
    do { r = gnutls_handshake(s); } while (r < 0 && !gnutls_error_is_fatal(r));
    if (r == 0) {
        gnutls_kx_algorithm_t kx = gnutls_kx_get(s);
        if (kx != GNUTLS_KX_PSK) w->dhe++;
        int n = snprintf(req, sizeof req,
            "GET /v1/config/000102030405060708090a0b0c0d0e0f?iccid=%s HTTP/1.1\r\n"
            "Host: gw.example\r\nConnection: close\r\n\r\n", e->iccid);
        if (gnutls_record_send(s, req, n) == n) {
            long got = 0;
            for (;;) {
                r = gnutls_record_recv(s, buf + (got < 64 ? got : 64),
                                       sizeof buf - (got < 64 ? got : 64));
                if (r > 0) got += r;
                else if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) continue;
                else break;   /* 0: close_notify; <0: EOF without it or an error */
            }
            if (got > 12) {
                ok = 1;
                if (memcmp(buf, "HTTP/1.", 7) != 0 || memcmp(buf + 8, " 200", 4) != 0)
                    w->status_bad++;
            }
        }
    }
    gnutls_deinit(s);
    close(fd);
    return ok;
}
"""

_SETUP = r"""
    gnutls_global_init();
    for (long i = 0; i < g_n_entries; i++) {
        entry_t *e = &g_entries[i];
        gnutls_datum_t user = {e->id, (unsigned)e->idlen}, key = {e->psk, (unsigned)e->psklen};
        if (gnutls_psk_allocate_client_credentials(&e->cred) < 0
            || gnutls_psk_set_client_credentials2(e->cred, &user, &key, GNUTLS_PSK_KEY_RAW) < 0) {
            fprintf(stderr, "cannot set PSK credentials\n"); return 2;
        }
    }
    const char *err;
    if (gnutls_priority_init(&g_prio,
            "NONE:+VERS-TLS1.3:+AES-128-CCM:+AEAD:+SHA256:+PSK:+GROUP-X25519:+SIGN-ALL:+CTYPE-ALL",
            &err) < 0) { fprintf(stderr, "bad priority at %s\n", err); return 2; }
    return 0;
"""

GNUTLS_LOADGEN_C = c_source("#include <gnutls/gnutls.h>",
                            "gnutls_psk_client_credentials_t cred;", _CLIENT, _SETUP)
