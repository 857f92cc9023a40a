"""C source of the load generator for ``ztp bench gateway`` (compiled at bench time).

One exchange = TCP connect + TLS 1.3 external-PSK handshake (OpenSSL client,
TLS_AES_128_CCM_SHA256) + one HTTP GET + read the reply until the server closes + close.
T threads each run exchanges back to back for D seconds, identities taken round robin from a
file of lines ``<identity hex> <psk hex> <request iccid hex>``. Latency is wall time from
connect() to the server's close. The client offers psk_ke and psk_dhe_ke with an x25519
key_share (OpenSSL 3.0 cannot do otherwise); a msg callback reads each ServerHello and counts
the exchanges whose server chose a key_share (psk_dhe_ke), which the benchmark requires to be 0.

A status line other than ``HTTP/1.x 200`` counts as ``status_not_200`` (the floor,
``openssl s_server -WWW``, answers HTTP/1.0).

Usage: loadgen HOST PORT IDFILE THREADS SECONDS. Output: one line of JSON, including the
generator's own CPU time (getrusage), so a saturated client cannot pass for a slow server.
"""

from ._c_harness import c_source

_CLIENT = r"""
static SSL_CTX *g_ctx;
static int g_ex_entry, g_ex_dhe;

static int use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                  SSL_SESSION **sess) {
    (void)md;
    entry_t *e = SSL_get_ex_data(ssl, g_ex_entry);
    const unsigned char cid[2] = {0x13, 0x04};
    const SSL_CIPHER *c = SSL_CIPHER_find(ssl, cid);
    SSL_SESSION *s = SSL_SESSION_new();
    if (!c || !s || !SSL_SESSION_set1_master_key(s, e->psk, e->psklen)
        || !SSL_SESSION_set_cipher(s, c) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))
        return 0;
    *sess = s; *id = e->id; *idlen = e->idlen;
    return 1;
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg) {
    (void)version; (void)arg;
    const unsigned char *p = buf;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 44 || p[0] != 2) return;
    size_t off = 4 + 2 + 32; off += 1 + p[off]; off += 3;
    if (off + 2 > len) return;
    size_t end = off + 2 + ((size_t)p[off] << 8 | p[off + 1]); off += 2;
    while (off + 4 <= end && end <= len) {
        if (((unsigned)p[off] << 8 | p[off + 1]) == 0x0033)
            SSL_set_ex_data(ssl, g_ex_dhe, (void *)1);
        off += 4 + ((size_t)p[off + 2] << 8 | p[off + 3]);
    }
}

static int exchange(worker_t *w, entry_t *e) {
    char req[512], buf[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, ok = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0) { close(fd); return 0; }
    SSL *ssl = SSL_new(g_ctx);
    SSL_set_ex_data(ssl, g_ex_entry, e);
    SSL_set_ex_data(ssl, g_ex_dhe, NULL);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "gw.example");
    if (SSL_connect(ssl) == 1) {
        int n = snprintf(req, sizeof req,
            "GET /v1/config/000102030405060708090a0b0c0d0e0f?iccid=%s HTTP/1.1\r\n"
            "Host: gw.example\r\nConnection: close\r\n\r\n", e->iccid);
        if (SSL_write(ssl, req, n) == n) {
            long got = 0; int r;
            /* keep the first 64 bytes (status line), overwrite the rest */
            while ((r = SSL_read(ssl, buf + (got < 64 ? got : 64),
                                 (int)sizeof buf - (got < 64 ? got : 64))) > 0) got += r;
            if (got > 12) {
                ok = 1;
                if (memcmp(buf, "HTTP/1.", 7) != 0 || memcmp(buf + 8, " 200", 4) != 0)
                    w->status_bad++;
            }
        }
    }
    if (SSL_get_ex_data(ssl, g_ex_dhe)) w->dhe++;
    SSL_free(ssl);
    close(fd);
    return ok;
}
"""

_SETUP = r"""
    g_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(g_ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(g_ctx, "TLS_AES_128_CCM_SHA256");
    SSL_CTX_set_options(g_ctx, SSL_OP_ALLOW_NO_DHE_KEX);
    SSL_CTX_set1_groups_list(g_ctx, "X25519");
    SSL_CTX_set_psk_use_session_callback(g_ctx, use_cb);
    SSL_CTX_set_msg_callback(g_ctx, msg_cb);
    g_ex_entry = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    g_ex_dhe = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    return g_ctx ? 0 : 2;
"""

LOADGEN_C = c_source("#include <openssl/ssl.h>\n#include <openssl/err.h>", "", _CLIENT, _SETUP)
