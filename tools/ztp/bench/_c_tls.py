"""C source of the OpenSSL reference harness for ``ztp bench tls`` (compiled at bench time).

The harness runs TLS 1.3 external-PSK handshakes between an OpenSSL client and an OpenSSL
server joined by an in-memory BIO pair, and times only the server's calls
(CLOCK_THREAD_CPUTIME_ID for CPU, CLOCK_MONOTONIC for wall time). psk_ke is obtained the only
way an OpenSSL 3.0 client allows: the client offers psk_ke and psk_dhe_ke with an x25519
key_share and the server, given SSL_OP_ALLOW_NO_DHE_KEX and only P-256 as its group, cannot use
the share and falls back to psk_ke without asking for a retry. The server's msg callback reads
its own ServerHello to prove which mode was negotiated (key_share extension present or not).
Tickets are off (SSL_CTX_set_num_tickets(0)), as in our engine, which issues none.

Output: one line of JSON.
"""

TLS_HARNESS_C = r"""
#define _GNU_SOURCE
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const unsigned char IDENTITY[10] = {0x98,0x44,0x05,0x52,0x90,0x81,0x36,0x98,0x36,0xf5};
static const unsigned char PSK[16] = {0x00,0x11,0x22,0x33,0x44,0x55,0x66,0x77,
                                      0x88,0x99,0xaa,0xbb,0xcc,0xdd,0xee,0xff};
static int g_key_share = -1;      /* ServerHello carried key_share: 1, did not: 0 */

static SSL_SESSION *make_session(SSL *ssl) {
    const unsigned char id[2] = {0x13, 0x04};  /* TLS_AES_128_CCM_SHA256 */
    const SSL_CIPHER *c = SSL_CIPHER_find(ssl, id);
    SSL_SESSION *s = SSL_SESSION_new();
    if (!c || !s || !SSL_SESSION_set1_master_key(s, PSK, sizeof PSK)
        || !SSL_SESSION_set_cipher(s, c) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))
        return NULL;
    return s;
}

static int use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                  SSL_SESSION **sess) {
    (void)md;
    *sess = make_session(ssl);
    *id = IDENTITY;
    *idlen = sizeof IDENTITY;
    return *sess != NULL;
}

static int find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess) {
    if (idlen != sizeof IDENTITY || memcmp(id, IDENTITY, idlen) != 0) { *sess = NULL; return 1; }
    *sess = make_session(ssl);
    return *sess != NULL;
}

/* Server side: look at our own ServerHello for the key_share extension (0x0033). */
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg) {
    (void)version; (void)ssl; (void)arg;
    const unsigned char *p = buf;
    if (!write_p || content_type != SSL3_RT_HANDSHAKE || len < 44 || p[0] != 2) return;
    size_t off = 4 + 2 + 32;
    off += 1 + p[off];            /* legacy_session_id_echo */
    off += 2 + 1;                 /* cipher_suite, legacy_compression_method */
    if (off + 2 > len) return;
    size_t end = off + 2 + ((size_t)p[off] << 8 | p[off + 1]);
    off += 2;
    g_key_share = 0;
    while (off + 4 <= end && end <= len) {
        unsigned type = (unsigned)p[off] << 8 | p[off + 1];
        size_t elen = (size_t)p[off + 2] << 8 | p[off + 3];
        if (type == 0x0033) g_key_share = 1;
        off += 4 + elen;
    }
}

static double now(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s ke|dhe N\n", argv[0]); return 2; }
    int dhe = strcmp(argv[1], "dhe") == 0;
    long n = atol(argv[2]);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(sctx, "TLS_AES_128_CCM_SHA256");
    SSL_CTX_set_ciphersuites(cctx, "TLS_AES_128_CCM_SHA256");
    SSL_CTX_set_options(sctx, SSL_OP_ALLOW_NO_DHE_KEX);
    SSL_CTX_set_options(cctx, SSL_OP_ALLOW_NO_DHE_KEX);
    SSL_CTX_set1_groups_list(cctx, "X25519");
    SSL_CTX_set1_groups_list(sctx, dhe ? "X25519" : "P-256");
    SSL_CTX_set_num_tickets(sctx, 0);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_psk_find_session_callback(sctx, find_cb);
    SSL_CTX_set_psk_use_session_callback(cctx, use_cb);
    SSL_CTX_set_msg_callback(sctx, msg_cb);
    double cpu = 0, wall = 0;
    long server_bytes = 0, client_bytes = 0;
    for (long i = 0; i < n; i++) {
        SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
        BIO *cb, *sb;
        BIO_new_bio_pair(&cb, 1 << 15, &sb, 1 << 15);
        SSL_set_bio(c, cb, cb);
        SSL_set_bio(s, sb, sb);
        SSL_set_tlsext_host_name(c, "gw.example");
        SSL_set_connect_state(c);
        SSL_set_accept_state(s);
        int cdone = 0, sdone = 0;
        for (int round = 0; round < 10 && !(cdone && sdone); round++) {
            if (!cdone) {
                int r = SSL_do_handshake(c);
                if (r == 1) cdone = 1;
                else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ) goto fail;
            }
            if (!sdone) {
                double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
                int r = SSL_do_handshake(s);
                cpu += now(CLOCK_THREAD_CPUTIME_ID) - c0;
                wall += now(CLOCK_MONOTONIC) - w0;
                if (r == 1) sdone = 1;
                else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ) goto fail;
            }
        }
        if (!(cdone && sdone) || !SSL_session_reused(s)) goto fail;
        server_bytes += BIO_number_written(sb);
        client_bytes += BIO_number_written(cb);
        SSL_free(c);
        SSL_free(s);
        continue;
    fail:
        ERR_print_errors_fp(stderr);
        fprintf(stderr, "handshake %ld failed\n", i);
        return 1;
    }
    printf("{\"n\": %ld, \"server_cpu_s\": %.9f, \"server_wall_s\": %.9f, "
           "\"server_bytes\": %ld, \"client_bytes\": %ld, \"key_share\": %d, "
           "\"version\": \"%s\"}\n",
           n, cpu, wall, server_bytes / (n ? n : 1), client_bytes / (n ? n : 1), g_key_share,
           OpenSSL_version(OPENSSL_VERSION));
    return 0;
}
"""
