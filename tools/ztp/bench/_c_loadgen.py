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

LOADGEN_C = r"""
#define _GNU_SOURCE
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { unsigned char id[256]; size_t idlen; unsigned char psk[64]; size_t psklen;
                 char iccid[128]; } entry_t;
typedef struct { long ok, fail, dhe, status_bad; double *lat; long cap; long next; } worker_t;

static entry_t *g_entries; static long g_n_entries;
static SSL_CTX *g_ctx; static struct sockaddr_in g_addr; static double g_deadline;
static int g_ex_entry, g_ex_dhe;
static long g_counter; static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
                          return ts.tv_sec + ts.tv_nsec / 1e9; }

static size_t unhex(const char *s, unsigned char *out, size_t max) {
    size_t n = 0;
    while (s[0] && s[1] && n < max) { unsigned v; sscanf(s, "%2x", &v); out[n++] = v; s += 2; }
    return n;
}

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

static void *run(void *arg) {
    worker_t *w = arg;
    while (now() < g_deadline) {
        pthread_mutex_lock(&g_lock);
        entry_t *e = &g_entries[g_counter++ % g_n_entries];
        pthread_mutex_unlock(&g_lock);
        double t0 = now();
        if (exchange(w, e)) {
            if (w->next == w->cap) { w->cap = w->cap ? 2 * w->cap : 4096;
                                     w->lat = realloc(w->lat, w->cap * sizeof(double)); }
            w->lat[w->next++] = now() - t0;
            w->ok++;
        } else w->fail++;
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT IDFILE THREADS SECONDS\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[3], "r");
    if (!f) { perror(argv[3]); return 2; }
    char idh[520], pskh[140], icc[128];
    long cap = 1024;
    g_entries = malloc(cap * sizeof(entry_t));
    while (fscanf(f, "%519s %139s %127s", idh, pskh, icc) == 3) {
        if (g_n_entries == cap) { cap *= 2; g_entries = realloc(g_entries, cap * sizeof(entry_t)); }
        entry_t *e = &g_entries[g_n_entries++];
        e->idlen = unhex(idh, e->id, sizeof e->id);
        e->psklen = unhex(pskh, e->psk, sizeof e->psk);
        snprintf(e->iccid, sizeof e->iccid, "%s", icc);
    }
    fclose(f);
    if (!g_n_entries) { fprintf(stderr, "no identities\n"); return 2; }
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &g_addr.sin_addr);
    int threads = atoi(argv[4]);
    double seconds = atof(argv[5]);
    g_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(g_ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(g_ctx, "TLS_AES_128_CCM_SHA256");
    SSL_CTX_set_options(g_ctx, SSL_OP_ALLOW_NO_DHE_KEX);
    SSL_CTX_set1_groups_list(g_ctx, "X25519");
    SSL_CTX_set_psk_use_session_callback(g_ctx, use_cb);
    SSL_CTX_set_msg_callback(g_ctx, msg_cb);
    g_ex_entry = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    g_ex_dhe = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    worker_t *ws = calloc(threads, sizeof(worker_t));
    pthread_t *ts = calloc(threads, sizeof(pthread_t));
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now();
    g_deadline = t0 + seconds;
    for (int i = 0; i < threads; i++) pthread_create(&ts[i], NULL, run, &ws[i]);
    for (int i = 0; i < threads; i++) pthread_join(ts[i], NULL);
    double wall = now() - t0;
    getrusage(RUSAGE_SELF, &r1);
    long ok = 0, fail = 0, dhe = 0, bad = 0, n = 0;
    for (int i = 0; i < threads; i++) { ok += ws[i].ok; fail += ws[i].fail; dhe += ws[i].dhe;
                                        bad += ws[i].status_bad; }
    double *all = malloc((ok ? ok : 1) * sizeof(double));
    for (int i = 0; i < threads; i++) { memcpy(all + n, ws[i].lat, ws[i].next * sizeof(double));
                                        n += ws[i].next; }
    qsort(all, n, sizeof(double), cmp);
    #define TV(t) ((t).tv_sec + (t).tv_usec / 1e6)
    double usr = TV(r1.ru_utime) - TV(r0.ru_utime);
    double cpu = usr + TV(r1.ru_stime) - TV(r0.ru_stime);
    #define PCT(q) (n ? all[(long)((q) / 100.0 * (n - 1) + 0.5)] : 0.0)
    printf("{\"ok\": %ld, \"fail\": %ld, \"dhe\": %ld, \"status_not_200\": %ld, "
           "\"wall_s\": %.6f, \"cpu_s\": %.6f, \"user_s\": %.6f, "
           "\"p50_s\": %.6f, \"p99_s\": %.6f, \"max_s\": %.6f}\n",
           ok, fail, dhe, bad, wall, cpu, usr, PCT(50), PCT(99), n ? all[n - 1] : 0.0);
    return 0;
}
"""
